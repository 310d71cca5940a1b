"""functions/registry.py is the one source of what each function serves and may touch: these
checks tie it to the code (main.py's routes, the requirements, the shared package's settings)
and to what packaging ships."""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

from functions import package, registry
from functions.registry import FUNCTIONS, QUEUES
from valorize import config
from valorize.entrypoints.http import FunctionApp

ROOT = Path(__file__).resolve().parents[2]


@cache
def app_of(name: str) -> FunctionApp:
    path = ROOT / "functions" / name / "main.py"
    spec = importlib.util.spec_from_file_location(f"registry_check_{name}", path)
    assert spec and spec.loader
    module: ModuleType = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    app: FunctionApp = module.app
    return app


def test_the_environment_names_agree_with_the_shared_package() -> None:
    assert registry.ALLOWED_QUEUES_ENV == config.ALLOWED_QUEUES_ENV
    assert registry.INTERNAL_CALLERS_ENV == config.INTERNAL_CALLERS_ENV
    assert registry.INTERNAL_AUDIENCES_ENV == config.INTERNAL_AUDIENCES_ENV
    assert registry.WARM_CLIENTS_ENV == config.WARM_CLIENTS_ENV


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_internal_paths_are_exactly_the_routes_main_py_marks_internal(name: str) -> None:
    function = FUNCTIONS[name]
    for route in app_of(name).routes:
        assert route.internal == function.is_internal_path(route.path), (
            f"{name}: {route.method} {route.path} is internal={route.internal} in main.py "
            "but not so in functions/registry.py"
        )
        if route.internal:
            assert function.task_target or function.scheduler_target, route.path


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_a_function_is_public_exactly_when_it_has_a_user_route(name: str) -> None:
    function = FUNCTIONS[name]
    user_routes = [
        r
        for r in app_of(name).routes
        if not r.internal and not r.path.endswith(("/healthz", "/openapi.json"))
    ]
    assert bool(user_routes) == function.public, [r.path for r in user_routes]
    for route in user_routes:
        prefix = route.path.split("/")[2]
        assert prefix in function.prefixes, f"{route.path} is not under {function.prefixes}"


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_requirements_name_the_extras_the_registry_implies(name: str) -> None:
    function = FUNCTIONS[name]
    text = (ROOT / "functions" / name / "requirements.txt").read_text()
    (line,) = [ln for ln in text.splitlines() if package.SHARED_LINE.match(ln.strip())]
    extras = set((package.SHARED_LINE.match(line.strip())["extras"] or "").split(",")) - {""}
    implied = {
        "tasks": bool(function.enqueues),
        "storage": function.statements_access,
        "oidc": bool(function.internal_paths),
    }
    assert extras == {extra for extra, needed in implied.items() if needed}, name


def test_every_queue_is_used_and_every_prefix_routed_once() -> None:
    used = {q for f in FUNCTIONS.values() for q in f.enqueues}
    assert used == set(QUEUES)
    routes = registry.public_routes()
    assert "automations" not in routes and "notify" not in routes
    assert routes["imports"] == "ingest" and routes["ingest"] == "ingest"
    assert set(registry.internal_paths()) == {
        "/api/rules/apply/run",
        "/api/ingest/tasks/",
        "/api/accounts/tasks/",
    }


def test_runtime_env_carries_the_queues_and_the_callers() -> None:
    emails = {registry.TASKS_INVOKER: "t@x", registry.SCHEDULER_INVOKER: "s@x"}
    assert registry.runtime_env(FUNCTIONS["automate"], emails) == {
        config.ALLOWED_QUEUES_ENV: "automations,notifications",
        config.INTERNAL_CALLERS_ENV: "t@x,s@x",
        config.WARM_CLIENTS_ENV: "firestore,redis,tasks",
    }
    assert registry.runtime_env(FUNCTIONS["auth"], emails) == {
        config.ALLOWED_QUEUES_ENV: "",
        config.INTERNAL_CALLERS_ENV: "",
        config.WARM_CLIENTS_ENV: "firestore,redis,revocations",
    }


# --- packaging --------------------------------------------------------------------------------


def test_every_archive_is_self_contained_and_reproducible(tmp_path: Path) -> None:
    for name in FUNCTIONS:
        first = package.build(name, tmp_path / "a")
        second = package.build(name, tmp_path / "b")
        assert first.read_bytes() == second.read_bytes(), name
        with zipfile.ZipFile(first) as archive:
            names = set(archive.namelist())
            assert {"main.py", "requirements.txt", "valorize/__init__.py"} <= names
            assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
            requirements = archive.read("requirements.txt").decode()
        lines = [ln for ln in requirements.splitlines() if ln and not ln.startswith("#")]
        assert lines[0].startswith("functions-framework"), name
        assert not any(package.FROM_TREE.search(ln) or "valorize" in ln for ln in lines), lines
        assert ("google-cloud-tasks>=2.16,<3" in lines) == bool(FUNCTIONS[name].enqueues), name


@pytest.mark.parametrize(
    "line",
    ["./shared", "-e ./shared", "../shared", "/abs/shared", "file:../shared", "x @ file:///x"],
)
def test_a_requirement_from_the_repository_tree_is_refused(line: str) -> None:
    text = f"functions-framework\nvalorize-shared\n{line}\n"
    with pytest.raises(package.PackagingError, match="repository tree"):
        package.render_requirements("auth", text, package.SharedPackage.read())


def test_an_unknown_extra_or_a_missing_shared_line_is_refused() -> None:
    shared = package.SharedPackage.read()
    with pytest.raises(package.PackagingError, match="no extra"):
        package.render_requirements("auth", "valorize-shared[nope]\n", shared)
    with pytest.raises(package.PackagingError, match="does not name"):
        package.render_requirements("auth", "functions-framework\n", shared)
