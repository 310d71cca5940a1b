"""The defaults of the limits on what one user may keep and cost (README "Limits"). Plain
numbers with no imports: config.Settings reads its defaults from here at every cold start.
The services get the values in force from Settings; domain/limits.py has the refusal."""

from __future__ import annotations

from typing import Final

MAX_ACCOUNTS: Final = 100
MAX_CATEGORIES: Final = 200
MAX_RECURRENCES: Final = 200
# Also the most a rule set is ever read at (the API's and the rules store's bound): the
# setting may lower it, not raise it.
MAX_RULES: Final = 200
# CPU one transaction's rules may cost. RE2 runs a pattern in time linear in the
# description, ~5 us a search here; 200 rules x 20 conditions of the slowest patterns found
# (`.{0,100}a.{0,100}b`, ~0.1 ms each) would take ~0.4 s without it.
RULES_BUDGET_SECONDS: Final = 0.05
# Recurrences: a start at most this many days back (ten years: a mortgage or a salary entered
# late, and the history people import), and at most this many occurrences of one recurrence per
# scheduler run, so a daily one started ten years ago catches up over ten daily runs instead of
# writing 3,650 transactions in one (0001-01-01 would have written 740,000 over the years).
RECURRENCE_BACKDATE_DAYS: Final = 3660
OCCURRENCES_PER_RUN: Final = 400
