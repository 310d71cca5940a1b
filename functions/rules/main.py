"""Rules function: CRUD of ordered rules, and on-demand runs over existing transactions (a job
whose pages run as Cloud Tasks on this function's internal endpoint)."""

import flask
import functions_framework

from valorize import bootstrap
from valorize.entrypoints.http import Call, FunctionApp, Route
from valorize.entrypoints.rule_schemas import (
    ApplyAcceptedOut,
    ApplyJobOut,
    ApplyPageOut,
    RuleList,
    RuleOut,
)
from valorize.entrypoints.schemas import dump
from valorize.service.requests import automations as a
from valorize.service.requests import rules as r
from valorize.service.requests import Page


def render(rule: object) -> object:
    return r.rule_json(rule)  # type: ignore[arg-type]


def list_rules(call: Call) -> object:
    page = bootstrap.services().rules.list(call.user_id, call.query.limit, call.query.cursor)
    return {"data": [r.rule_json(x) for x in page.items], "next_cursor": page.next_cursor}


def create_rule(call: Call) -> object:
    return bootstrap.services().rules.create(call.user_id, call.body)


def get_rule(call: Call) -> object:
    return bootstrap.services().rules.get(call.user_id, call.params["rule_id"])


def update_rule(call: Call) -> object:
    return bootstrap.services().rules.update(call.user_id, call.params["rule_id"], call.body)


def delete_rule(call: Call) -> None:
    bootstrap.services().rules.delete(call.user_id, call.params["rule_id"])


def start_apply(call: Call) -> object:
    return bootstrap.services().rules.start_apply(call.user_id, call.body)


def render_accepted(job: object) -> object:
    return {"id": job.id, "status": job.status.value}  # type: ignore[attr-defined]


def get_apply(call: Call) -> object:
    job = bootstrap.services().rules.job(call.user_id, call.params["job_id"])
    return dump(ApplyJobOut.of(job))


def run_apply_page(call: Call) -> object:
    body: a.ApplyRulesPage = call.body
    return bootstrap.services().rules.run_apply_page(
        body.user_id, body.job_id, body.page, body.cursor
    )


app = FunctionApp(
    "rules",
    [
        Route(
            "GET",
            "/api/rules",
            list_rules,
            "The caller's rules in run order (enabled or not)",
            query=Page,
            response=RuleList,
        ),
        Route(
            "POST",
            "/api/rules",
            create_rule,
            "Create a rule; `position` inserts it there (the later rules move down one), "
            "omitted = last",
            body=r.CreateRule,
            response=RuleOut,
            render=render,
            status=201,
            idempotency="claim",
        ),
        Route(
            "POST",
            "/api/rules/apply",
            start_apply,
            "Run the rules over existing transactions (optional filters) as a background job",
            body=r.ApplyRules,
            response=ApplyAcceptedOut,
            render=render_accepted,
            status=202,
            idempotency="claim",
        ),
        Route(
            "GET",
            "/api/rules/apply/<job_id>",
            get_apply,
            "A rules job's status and counts",
            response=ApplyJobOut,
            errors=(404,),
        ),
        Route(
            "POST",
            "/api/rules/apply/run",
            run_apply_page,
            "Internal (Cloud Tasks): one page of a rules job",
            body=a.ApplyRulesPage,
            response=ApplyPageOut,
            internal=True,
            auth=False,
            errors=(401,),
        ),
        Route(
            "GET",
            "/api/rules/<rule_id>",
            get_rule,
            "One rule",
            response=RuleOut,
            render=render,
            errors=(404,),
        ),
        Route(
            "PATCH",
            "/api/rules/<rule_id>",
            update_rule,
            "Change a rule; `position` moves it (the others shift), lists replace",
            body=r.UpdateRule,
            response=RuleOut,
            render=render,
            errors=(404,),
        ),
        Route(
            "DELETE",
            "/api/rules/<rule_id>",
            delete_rule,
            "Delete a rule (the later rules move up one)",
            errors=(404,),
        ),
    ],
)


@functions_framework.http
def rules(request: flask.Request) -> flask.Response:
    return app(request)
