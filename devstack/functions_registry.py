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
}
