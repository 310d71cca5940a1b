"""Categories function: CRUD with the palette and guarded deletion."""

import flask
import functions_framework

from valorize import bootstrap
from valorize.entrypoints.http import Call, FunctionApp, Route
from valorize.entrypoints.schemas import CategoryOut, ListOf, dump
from valorize.service import requests as c


def render(category: object) -> object:
    return dump(CategoryOut.of(category))  # type: ignore[arg-type]


def list_categories(call: Call) -> object:
    page = bootstrap.services().categories.list(call.user_id, call.query.limit, call.query.cursor)
    return dump(
        ListOf[CategoryOut](
            data=[CategoryOut.of(x) for x in page.items], next_cursor=page.next_cursor
        )
    )


def create_category(call: Call) -> object:
    return bootstrap.services().categories.create(call.user_id, call.body, call.idem)


def get_category(call: Call) -> object:
    return bootstrap.services().categories.get(call.user_id, call.params["category_id"])


def update_category(call: Call) -> object:
    return bootstrap.services().categories.update(
        call.user_id, call.params["category_id"], call.body
    )


def delete_category(call: Call) -> None:
    q = call.query
    bootstrap.services().categories.delete(
        call.user_id, call.params["category_id"], q.reassign_to, q.uncategorize
    )


app = FunctionApp(
    "categories",
    [
        Route(
            "GET",
            "/api/categories",
            list_categories,
            "List the caller's categories by name",
            query=c.Page,
            response=ListOf[CategoryOut],
        ),
        Route(
            "POST",
            "/api/categories",
            create_category,
            "Create a category (names unique per user, case-insensitive)",
            body=c.CreateCategory,
            response=CategoryOut,
            render=render,
            status=201,
            errors=(409,),
        ),
        Route(
            "GET",
            "/api/categories/<category_id>",
            get_category,
            "One category",
            response=CategoryOut,
            render=render,
            errors=(404,),
        ),
        Route(
            "PATCH",
            "/api/categories/<category_id>",
            update_category,
            "Change a category",
            body=c.UpdateCategory,
            response=CategoryOut,
            render=render,
            errors=(404, 409),
        ),
        Route(
            "DELETE",
            "/api/categories/<category_id>",
            delete_category,
            "Delete a category; in use it needs ?reassign_to=<id> or ?uncategorize=true",
            query=c.DeleteCategory,
            errors=(404, 409),
        ),
    ],
)


@functions_framework.http
def categories(request: flask.Request) -> flask.Response:
    return app(request)
