"""Synthesize infra/cdktf and check the Terraform JSON it produces.

cdktf's ``Testing.synth_scope`` cannot be called from Python, so the real app is synthesized
once per module (in a subprocess, exactly as ``python main.py`` runs it) into a temp dir and the
tests read ``cdk.tf.json``. Expectations come from ``infra/cdktf/config.py`` so adding a function
there is covered without touching this file.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

INFRA_DIR = Path(__file__).resolve().parents[2] / "infra" / "cdktf"
STACK = "valorize"


def _missing_toolchain() -> str | None:
    for module in ("cdktf", "cdktf_cdktf_provider_google"):
        if importlib.util.find_spec(module) is None:
            return (
                f"{module} is not importable: install infra/cdktf/requirements.txt "
                "(pip install -r infra/cdktf/requirements.txt) to run the infra tests"
            )
    if shutil.which("node") is None:
        return "Node.js is not on PATH: cdktf's jsii runtime needs it"
    return None


pytestmark = [
    pytest.mark.infra,
    pytest.mark.skipif(_missing_toolchain() is not None, reason=str(_missing_toolchain())),
]


def _load_config() -> ModuleType:
    # Loaded under a unique name: a bare `import config` could pick up another package's module.
    spec = importlib.util.spec_from_file_location("valorize_infra_config", INFRA_DIR / "config.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


cfg = _load_config()

Resource = dict[str, Any]
REF = re.compile(r"^\$\{([a-z0-9_]+)\.([A-Za-z0-9_]+)\.[A-Za-z0-9_\[\]\.]+\}$")


@pytest.fixture(scope="module")
def tf(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("cdktf-out")
    env = {
        **os.environ,
        "CDKTF_OUTDIR": str(out),
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    env.pop("VALORIZE_TF_STATE_BUCKET", None)
    proc = subprocess.run(
        [sys.executable, "main.py"],
        cwd=INFRA_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, f"synth failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return json.loads((out / "stacks" / STACK / "cdk.tf.json").read_text())


def resources(tf: dict[str, Any], rtype: str) -> dict[str, Resource]:
    return tf["resource"].get(rtype, {})


def deref(tf: dict[str, Any], expr: str, rtype: str) -> Resource:
    """The resource an interpolation like ``${google_x.name.id}`` points at, checked by type."""
    m = REF.match(expr)
    assert m, f"not a single resource reference: {expr!r}"
    assert m.group(1) == rtype, f"{expr} should reference a {rtype}"
    return resources(tf, rtype)[m.group(2)]


def functions_by_name(tf: dict[str, Any]) -> dict[str, Resource]:
    return {r["name"]: r for r in resources(tf, "google_cloudfunctions2_function").values()}


def iam_members(tf: dict[str, Any]) -> Iterator[tuple[str, str, Resource]]:
    for rtype, items in tf["resource"].items():
        if rtype.endswith(("_iam_member", "_iam_binding")):
            for lid, r in items.items():
                yield rtype, lid, r


def route_table(tf: dict[str, Any]) -> dict[str, Resource]:
    """Path -> backend service of the URL map that serves the domain."""
    url_map = resources(tf, "google_compute_url_map")["url_map"]
    (matcher,) = url_map["path_matcher"]
    table: dict[str, Resource] = {}
    for rule in matcher["path_rule"]:
        backend = deref(tf, rule["service"], "google_compute_backend_service")
        for path in rule["paths"]:
            assert path not in table, f"{path} routed twice"
            table[path] = backend
    return table


def neg_of(tf: dict[str, Any], backend: Resource) -> Resource:
    (b,) = backend["backend"]
    return deref(tf, b["group"], "google_compute_region_network_endpoint_group")


# ------------------------------------------------------------------------- functions


def test_every_configured_function_is_deployed_with_its_sizing(tf: dict[str, Any]) -> None:
    deployed = functions_by_name(tf)
    assert set(deployed) == set(cfg.FUNCTIONS)
    for name, spec in cfg.FUNCTIONS.items():
        svc = deployed[name]["service_config"]
        assert svc["available_memory"] == "256Mi", name
        assert svc["max_instance_request_concurrency"] == 80, name
        assert svc["available_cpu"] == "1", name
        assert svc["min_instance_count"] == 0, name
        assert svc["max_instance_count"] == spec.max_instances, name
        assert svc["timeout_seconds"] == spec.timeout_seconds, name
        assert svc["vpc_connector"].startswith("${google_vpc_access_connector."), name
        build = deployed[name]["build_config"]
        assert build["entry_point"] == spec.entry_point
        assert build["source"]["storage_source"]["object"] == f"functions/{name}.zip"


def test_each_function_runs_as_its_own_service_account(tf: dict[str, Any]) -> None:
    emails = [f["service_config"]["service_account_email"] for f in functions_by_name(tf).values()]
    assert len(set(emails)) == len(emails)
    for email in emails:
        deref(tf, email, "google_service_account")


# ------------------------------------------------------------------------- load balancer


def test_url_map_routes_every_public_function(tf: dict[str, Any]) -> None:
    table = route_table(tf)
    for name, spec in cfg.FUNCTIONS.items():
        if not spec.public:
            continue
        for route in cfg.routes_of(name):
            for path in (f"/api/{route}", f"/api/{route}/*"):
                assert path in table, f"{path} is not routed"
                neg = neg_of(tf, table[path])
                assert neg["network_endpoint_type"] == "SERVERLESS"
                fn = deref(tf, neg["cloud_function"]["function"], "google_cloudfunctions2_function")
                assert fn["name"] == name, f"{path} reaches {fn['name']}, expected {name}"


def test_url_map_covers_contract_resources(tf: dict[str, Any]) -> None:
    # CONTRACT.md "Addressing": the LB routes these /api/<resource> prefixes.
    contract = [
        "auth",
        "accounts",
        "transactions",
        "categories",
        "budgets",
        "rules",
        "recurrences",
        "imports",
        "dashboard",
        "notifications",
        "automations",
    ]
    table = route_table(tf)
    for resource in contract:
        assert f"/api/{resource}/*" in table, resource


def test_socket_io_goes_to_realtime_with_session_affinity(tf: dict[str, Any]) -> None:
    table = route_table(tf)
    for path in ("/socket.io", "/socket.io/*"):
        neg = neg_of(tf, table[path])
        run = deref(tf, neg["cloud_run"]["service"], "google_cloud_run_v2_service")
        assert run["name"] == "realtime"
    realtime = resources(tf, "google_cloud_run_v2_service")["realtime"]["template"]
    assert realtime["session_affinity"] is True
    assert realtime["scaling"] == {"min_instance_count": 1, "max_instance_count": 10}
    assert realtime["timeout"] == "3600s"
    assert realtime["max_instance_request_concurrency"] == 1000
    assert realtime["vpc_access"]["connector"].startswith("${google_vpc_access_connector.")


def test_private_functions_are_not_exposed(tf: dict[str, Any]) -> None:
    table = route_table(tf)
    private = [n for n, s in cfg.FUNCTIONS.items() if not s.public]
    assert private, "notify is expected to be internal-only"
    for name in private:
        assert not any(p.startswith(f"/api/{name}") for p in table)
        for rtype, lid, r in iam_members(tf):
            if rtype == "google_cloud_run_v2_service_iam_member" and r["member"] == "allUsers":
                assert f"fn_{name}." not in r["name"], f"{lid} makes {name} public"


def test_https_frontend_has_managed_certificate(tf: dict[str, Any]) -> None:
    (cert,) = resources(tf, "google_compute_managed_ssl_certificate").values()
    assert cert["managed"]["domains"] == ["${var.domain}"]
    ports = {
        r["port_range"] for r in resources(tf, "google_compute_global_forwarding_rule").values()
    }
    assert ports == {"443", "80"}


# ------------------------------------------------------------------------- scheduler + tasks


def test_scheduler_jobs_post_to_automate_with_oidc(tf: dict[str, Any]) -> None:
    jobs = resources(tf, "google_cloud_scheduler_job")
    by_cron = {j["schedule"]: j for j in jobs.values()}
    assert set(by_cron) == {"0 3 * * *", "0 4 1 * *"}
    kinds = {}
    for cron, job in by_cron.items():
        target = job["http_target"]
        assert target["http_method"] == "POST"
        assert target["uri"].endswith("/api/automations/run")
        assert "google_cloudfunctions2_function.fn_automate." in target["uri"]
        oidc = target["oidc_token"]
        sa = deref(tf, oidc["service_account_email"], "google_service_account")
        assert sa["account_id"] == "scheduler-invoker"
        assert oidc["audience"]
        kinds[cron] = json.loads(base64.b64decode(target["body"]))["kind"]
    assert kinds == {"0 3 * * *": "daily", "0 4 1 * *": "month_start"}


def test_queues_have_retry_and_rate_limits(tf: dict[str, Any]) -> None:
    queues = {q["name"]: q for q in resources(tf, "google_cloud_tasks_queue").values()}
    assert set(queues) == {"imports", "automations", "notifications"}
    for name, q in queues.items():
        retry = q["retry_config"]
        assert retry["max_attempts"] >= 1, name
        assert retry["min_backoff"].endswith("s") and retry["max_backoff"].endswith("s"), name
        assert q["rate_limits"]["max_dispatches_per_second"] > 0, name
        assert q["rate_limits"]["max_concurrent_dispatches"] > 0, name


# ------------------------------------------------------------------------- storage + data


def test_statements_bucket_is_locked_down_and_expires(tf: dict[str, Any]) -> None:
    bucket = resources(tf, "google_storage_bucket")["statements"]
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert "cors" not in bucket
    rules = bucket["lifecycle_rule"]
    assert {"action": {"type": "Delete"}, "condition": {"age": 90}} in rules


def test_firestore_native_database_and_transaction_indexes(tf: dict[str, Any]) -> None:
    (db,) = resources(tf, "google_firestore_database").values()
    assert db["name"] == "(default)"
    assert db["type"] == "FIRESTORE_NATIVE"
    # The list queries order and page by sort_key (adapters/firestore_store.py).
    tail = [{"field_path": "sort_key", "order": "DESCENDING"}]
    indexes = [i for i in resources(tf, "google_firestore_index").values()]
    fields = [i["fields"] for i in indexes if i["collection"] == "transactions"]
    for eq in ("account_id", "type", "import_id"):
        assert [{"field_path": eq, "order": "ASCENDING"}, *tail] in fields, eq
    assert [{"field_path": "category_ids", "array_config": "CONTAINS"}, *tail] in fields
    window = [
        {"field_path": "account_id", "order": "ASCENDING"},
        {"field_path": "date", "order": "DESCENDING"},
    ]
    assert window in fields  # the import worker's duplicate window


def test_recurrences_next_due_is_indexed_for_the_schedulers_collection_group_query(
    tf: dict[str, Any],
) -> None:
    fields = {
        (f["collection"], f["field"]): f for f in resources(tf, "google_firestore_field").values()
    }
    next_due = fields[("recurrences", "next_due")]
    scopes = {(i["query_scope"], i["order"]) for i in next_due["index_config"]["indexes"]}
    # Both: the override replaces the automatic collection-scope index of the field.
    assert scopes == {("COLLECTION", "ASCENDING"), ("COLLECTION_GROUP", "ASCENDING")}


def test_functions_with_internal_endpoints_are_task_targets() -> None:
    # Their internal routes are Cloud Tasks targets: rules jobs, the automate fan-out.
    assert cfg.FUNCTIONS["rules"].task_target and cfg.FUNCTIONS["automate"].task_target
    assert "automations" in cfg.FUNCTIONS["rules"].enqueues


def test_redis_tier_follows_environment(tf: dict[str, Any]) -> None:
    (redis,) = resources(tf, "google_redis_instance").values()
    assert "var.environment" in redis["tier"]
    assert "STANDARD_HA" in redis["tier"] and "BASIC" in redis["tier"]
    assert redis["connect_mode"] == "DIRECT_PEERING"


# ------------------------------------------------------------------------- IAM


def test_no_service_account_gets_owner_or_editor(tf: dict[str, Any]) -> None:
    for rtype, lid, r in iam_members(tf):
        assert r["role"] not in {"roles/owner", "roles/editor"}, f"{rtype}.{lid}"


def test_project_wide_roles_are_on_an_allow_list(tf: dict[str, Any]) -> None:
    allowed = {"roles/datastore.user", "roles/logging.logWriter", "roles/artifactregistry.writer"}
    roles = {r["role"] for r in resources(tf, "google_project_iam_member").values()}
    assert roles <= allowed, roles - allowed


def test_statements_bucket_access_only_for_ingest(tf: dict[str, Any]) -> None:
    grants = [
        r
        for r in resources(tf, "google_storage_bucket_iam_member").values()
        if "google_storage_bucket.statements." in r["bucket"]
    ]
    assert [g["member"] for g in grants] == ["${google_service_account.sa_fn_ingest.member}"]
    assert grants[0]["role"] == "roles/storage.objectAdmin"


def test_invoker_service_accounts_only_reach_their_targets(tf: dict[str, Any]) -> None:
    invokers: dict[str, set[str]] = {"tasks_invoker": set(), "scheduler_invoker": set()}
    for r in resources(tf, "google_cloud_run_v2_service_iam_member").values():
        assert r["role"] == "roles/run.invoker"
        for sa in invokers:
            if r["member"] == f"${{google_service_account.sa_{sa}.member}}":
                invokers[sa].add(r["name"])
    fn = "${{google_cloudfunctions2_function.fn_{}.service_config[0].service}}"
    tasks = {fn.format(n) for n, s in cfg.FUNCTIONS.items() if s.task_target}
    assert invokers["tasks_invoker"] == tasks
    assert invokers["scheduler_invoker"] == {fn.format("automate")}


def test_enqueuers_hold_queue_scoped_roles(tf: dict[str, Any]) -> None:
    grants = {
        (r["member"], r["name"])
        for r in resources(tf, "google_cloud_tasks_queue_iam_member").values()
        if r["role"] == "roles/cloudtasks.enqueuer"
    }
    expected = {
        (
            f"${{google_service_account.sa_fn_{n}.member}}",
            f"${{google_cloud_tasks_queue.queue_{q}.name}}",
        )
        for n, s in cfg.FUNCTIONS.items()
        for q in s.enqueues
    }
    assert grants == expected


# ------------------------------------------------------------------------- interface


def test_variables_and_outputs(tf: dict[str, Any]) -> None:
    variables = tf["variable"]
    assert {"project", "region", "domain", "environment"} <= set(variables)
    assert variables["region"]["default"] == "us-central1"
    outputs = tf["output"]
    assert {"lb_ip", "function_urls", "realtime_url"} <= set(outputs)
    assert set(outputs["function_urls"]["value"]) == set(cfg.FUNCTIONS)
