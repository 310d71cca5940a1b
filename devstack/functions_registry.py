"""Which Cloud Functions the local stack runs: function folder under functions/ -> target.

Owned by the lead: add an entry when a new function folder appears. Order matters: the stack
command gives function N the port ``functions-port + N``.
"""

FUNCTIONS: dict[str, str] = {
    "auth": "auth",
    "accounts": "accounts",
    "categories": "categories",
    "transactions": "transactions",
    "dashboard": "dashboard",
    "budgets": "budgets",
    "rules": "rules",
    "recurrences": "recurrences",
    "automate": "automate",
    "notify": "notify",
    "notifications": "notifications",
    "ingest": "ingest",
}

# API resources served by a function of another name (CONTRACT.md's /api/imports is the ingest
# function), as the production load balancer routes them: /api/<resource> -> function folder.
RESOURCES: dict[str, str] = {
    "imports": "ingest",
    "automations": "automate",
}
