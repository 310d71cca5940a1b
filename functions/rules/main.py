"""Rules function: CRUD of ordered rules, and on-demand runs over existing transactions (a job
whose pages run as Cloud Tasks on this function's internal endpoint) (service/rules.py)."""

from typing import Any

import flask
import functions_framework

from valorize import bootstrap
from valorize.entrypoints.http import FunctionApp
from valorize.entrypoints.routes import Call, Idempotency, Resource, Route, task
from valorize.entrypoints.rule_schemas import ApplyAcceptedOut, ApplyJobOut, ApplyPageOut, RuleOut
from valorize.service.requests import automations as a
from valorize.service.requests import rules as r

resource = Resource("/api/rules", "rule_id", lambda s: s.rules, RuleOut)


def start_apply(call: Call) -> Any:
    return call.services.rules.start_apply(call.user_id, call.body)


def get_apply(call: Call) -> Any:
    return call.services.rules.job(call.user_id, call.params["job_id"])


def run_apply_page(call: Call) -> Any:
    body: a.ApplyRulesPage = call.body
    return call.services.rules.run_apply_page(body.user_id, body.job_id, body.page, body.cursor)


app = FunctionApp(
    "rules",
    [
        # Cached in the rules scope: every write to the rule store (rules, and the jobs' pages
        # as the worker runs them) bumps it (service/cache_scopes.py).
        resource.list(
            "The caller's rules in run order (enabled or not)", cached=True, cache_scope="rules"
        ),
        resource.create(
            "Create a rule; `position` inserts it there (the later rules move down one), "
            "omitted = last",
            body=r.CreateRule,
            idempotency=Idempotency.CLAIM,
        ),
        Route(
            "POST",
            "/api/rules/apply",
            start_apply,
            "Run the rules over existing transactions (optional filters) as a background job",
            body=r.ApplyRules,
            response=ApplyAcceptedOut,
            status=202,
            idempotency=Idempotency.CLAIM,
        ),
        Route(
            "GET",
            "/api/rules/apply/<job_id>",
            get_apply,
            "A rules job's status and counts",
            response=ApplyJobOut,
            errors=(404,),
            cached=True,
            cache_scope="rules",
        ),
        task(
            "/api/rules/apply/run",
            run_apply_page,
            "Internal (Cloud Tasks): one page of a rules job",
            body=a.ApplyRulesPage,
            response=ApplyPageOut,
        ),
        resource.get("One rule", cached=True, cache_scope="rules"),
        resource.update(
            "Change a rule; `position` moves it (the others shift), lists replace",
            body=r.UpdateRule,
        ),
        resource.delete("Delete a rule (the later rules move up one)"),
    ],
    bootstrap.build(),
)


@functions_framework.http
def rules(request: flask.Request) -> flask.Response:
    return app(request)
