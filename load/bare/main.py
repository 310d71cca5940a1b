"""The baseline for `load/coldstart.py`: the smallest functions-framework function there is."""

import functions_framework


@functions_framework.http
def hello(request: object) -> str:
    return "ok"
