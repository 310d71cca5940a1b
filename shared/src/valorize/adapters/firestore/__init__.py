"""The service layer's ports on Cloud Firestore: one module per port, and the helpers they
share (the mapping of every document, the contention runner, the ledger's unit of work).

Layout (everything a user owns lives under their document, so a path can never reach
another user's data):

    credentials/{key_of(email)}          email, user_id, password_hash (emails are unique)
    tokens/{token_id}                    user_id, name, secret_hash, expires_at, last_used_at
    users/{uid}                          profile
    users/{uid}/accounts/{id}            balance, transaction_count kept by field increments
    users/{uid}/categories/{id}
    users/{uid}/category_names/{key_of(name_key)}  name_key, category_id: names unique per
                                         user (case-insensitive)
    users/{uid}/transactions/{id}        sort_key = "<date>#<id>" orders lists, newest first
    users/{uid}/months/{YYYY-MM}         the read model of the month (currencies: ...)
    users/{uid}/totals/all               the all-time read model
    users/{uid}/idempotency/{key_hash}   written in the same batch as the effect it guards
    users/{uid}/budgets/{category_id}    one envelope per category
    users/{uid}/settings/budget_income   months: {YYYY-MM: amount}, allocation_writes
    users/{uid}/rules/{id}               name, rank (order key; positions are derived),
                                         enabled, match, stop, conditions/actions
    users/{uid}/settings/rules           count (of rules: holds MAX_RULES without a read)
    users/{uid}/rule_jobs/{id}           params (ApplyRules JSON), status, processed,
                                         changed, pages
    users/{uid}/rule_jobs/{id}/pages/{n} cursor, next_cursor, processed, changed, done
    users/{uid}/recurrences/{id}         the API's fields, schedule JSON, start/end,
                                         materialized_through and next_due ("YYYY-MM-DD" or
                                         null: the scheduler's collection-group query)
    users/{uid}/automation_runs/{kind-date}  runs, created, last_run_at (a run log)
    users/{uid}/notifications/{id}       see notifications.py
    users/{uid}/settings/notifications   the notification preferences
    users/{uid}/imports/{id}[/rows/{row}]  see imports.py

Balances and counters change through `Increment` in the same batch as the transaction
write: atomic, and free of the read-modify-write contention a hot account document would
suffer. Every read-then-write runs through contention.py (preconditioned batches, retried;
no Firestore transactions). Every write that touches the ledger stages it through
ledger_batch.py, which also refuses one that would take a balance or a read-model sum out of
the safe range (domain/limits.py).

Ids reach these modules checked against the forms the API issues (domain/ids.py); text
(emails, category names) is never an id, only hashed into one (`ids.key_of`).

google-cloud-firestore is imported by the modules, not here: importing this package is free.
"""
