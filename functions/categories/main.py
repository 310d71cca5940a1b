"""Categories function: CRUD with the palette and guarded deletion (service/categories.py)."""

import flask
import functions_framework

from valorize import bootstrap
from valorize.entrypoints.http import FunctionApp
from valorize.entrypoints.routes import Resource
from valorize.entrypoints.schemas import CategoryOut
from valorize.service import requests as r

resource = Resource("/api/categories", "category_id", lambda s: s.categories, CategoryOut)

app = FunctionApp(
    "categories",
    [
        resource.list("List the caller's categories by name", cached=True),
        resource.create(
            "Create a category (names unique per user, case-insensitive)",
            body=r.CreateCategory,
            errors=(409,),
        ),
        resource.get("One category", cached=True),
        resource.update("Change a category", body=r.UpdateCategory, errors=(404, 409)),
        resource.delete(
            "Delete a category; in use it needs ?reassign_to=<id> or ?uncategorize=true",
            query=r.DeleteCategory,
            errors=(404, 409),
        ),
    ],
    bootstrap.build(),
)


@functions_framework.http
def categories(request: flask.Request) -> flask.Response:
    return app(request)
