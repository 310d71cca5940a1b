"""Synthesize infra/cdktf (CDK Terrain) and check the Terraform JSON it produces.

``Testing.synth_scope`` cannot be called from Python, so the real app is synthesized once per
module (in a subprocess, exactly as ``python main.py`` runs it) into a temp dir and the tests
read ``cdk.tf.json``. Expectations come from ``functions/registry.py`` (through
``infra/cdktf/config.py``), so adding a function there is covered without touching this file.
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
from typing import Any

import pytest

from tests.infra import INFRA_DIR, load_config

STACK = "valorize"


def _missing_toolchain() -> str | None:
    for module in ("cdktn", "cdktn_provider_google"):
        if importlib.util.find_spec(module) is None:
            return (
                f"{module} is not importable: install infra/cdktf/requirements.txt "
                "(uv pip install -r infra/cdktf/requirements.txt) to run the infra tests"
            )
    if shutil.which("node") is None:
        return "Node.js is not on PATH: CDK Terrain's jsii runtime needs it"
    return None


pytestmark = [
    pytest.mark.infra,
    pytest.mark.skipif(_missing_toolchain() is not None, reason=str(_missing_toolchain())),
]


cfg = load_config()

Resource = dict[str, Any]
RUN_URL = "https://{}-${{data.google_project.project_info.number}}.${{var.region}}.run.app"
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
    # Offline on purpose: synthesis must not need the network (CI, a fresh clone).
    for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env[proxy] = "http://127.0.0.1:9"
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
    # ../shared/spec/CONTRACT.md "Addressing": the LB routes these /api/<resource> prefixes.
    # /api/automations is not among them: every automate route is a scheduler or task target.
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
        # The run.app URL (internal ingress admits Cloud Scheduler there) and, as audience,
        # exactly what the function verifies.
        automate = functions_by_name(tf)["automate"]["service_config"]["environment_variables"]
        audience = automate["VALORIZE_INTERNAL_AUDIENCES"]
        assert audience == RUN_URL.format("automate")
        assert target["uri"] == audience + "/api/automations/run"
        assert "google_cloudfunctions2_function.fn_automate" in job["depends_on"]
        oidc = target["oidc_token"]
        sa = deref(tf, oidc["service_account_email"], "google_service_account")
        assert sa["account_id"] == "scheduler-invoker"
        assert oidc["audience"] == audience
        kinds[cron] = json.loads(base64.b64decode(target["body"]))["kind"]
    assert kinds == {"0 3 * * *": "daily", "0 4 1 * *": "month_start"}


def test_queues_have_retry_and_rate_limits(tf: dict[str, Any]) -> None:
    queues = {q["name"]: q for q in resources(tf, "google_cloud_tasks_queue").values()}
    assert set(queues) == set(cfg.QUEUES)
    for name, q in queues.items():
        spec = cfg.QUEUES[name]
        assert q["retry_config"] == {
            "max_attempts": spec.max_attempts,
            "min_backoff": spec.min_backoff,
            "max_backoff": spec.max_backoff,
            "max_doublings": spec.max_doublings,
        }, name
        assert q["rate_limits"] == {
            "max_dispatches_per_second": spec.max_dispatches_per_second,
            "max_concurrent_dispatches": spec.max_concurrent_dispatches,
        }, name
        assert q["stackdriver_logging_config"] == {"sampling_ratio": 1}, name


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
    # The list queries order and page by sort_key (adapters/firestore/ledger.py).
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


# ------------------------------------------------------------------------- ingress + invokers


def test_functions_and_realtime_are_reachable_only_through_the_load_balancer(
    tf: dict[str, Any],
) -> None:
    for name, fn in functions_by_name(tf).items():
        expected = (
            "ALLOW_INTERNAL_AND_GCLB" if cfg.FUNCTIONS[name].public else "ALLOW_INTERNAL_ONLY"
        )
        assert fn["service_config"]["ingress_settings"] == expected, name
    realtime = resources(tf, "google_cloud_run_v2_service")["realtime"]
    assert realtime["ingress"] == "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"
    assert "ALLOW_ALL" not in json.dumps(tf) and "INGRESS_TRAFFIC_ALL" not in json.dumps(tf)


def test_only_public_functions_and_realtime_have_a_public_invoker(tf: dict[str, Any]) -> None:
    public = {
        r["name"]
        for r in resources(tf, "google_cloud_run_v2_service_iam_member").values()
        if r["member"] in ("allUsers", "allAuthenticatedUsers")
    }
    fn = "${{google_cloudfunctions2_function.fn_{}.service_config[0].service}}"
    expected = {fn.format(n) for n, s in cfg.FUNCTIONS.items() if s.public}
    assert public == expected | {"${google_cloud_run_v2_service.realtime.name}"}


def test_cloud_armor_guards_every_backend_and_never_forwards_internal_paths(
    tf: dict[str, Any],
) -> None:
    (policy,) = resources(tf, "google_compute_security_policy").values()
    assert "count" not in policy, "Cloud Armor is on in every environment"
    for lid, backend in resources(tf, "google_compute_backend_service").items():
        assert backend["security_policy"] == "${google_compute_security_policy.armor.id}", lid
        assert backend["load_balancing_scheme"] == "EXTERNAL_MANAGED", lid
    rules = {r["priority"]: r for r in policy["rule"]}
    throttle = next(r for r in rules.values() if r["action"] == "throttle")
    options = throttle["rate_limit_options"]
    assert options["enforce_on_key"] == "IP" and options["exceed_action"] == "deny(429)"
    assert options["rate_limit_threshold"] == {
        "count": "${var.armor_requests_per_minute}",
        "interval_sec": 60,
    }
    deny = next(r for r in rules.values() if r["action"] == "deny(404)")
    assert deny["priority"] < throttle["priority"]
    expression = deny["match"]["expr"]["expression"]
    pattern = re.fullmatch(r"request\.path\.matches\('(.*)'\)", expression)
    assert pattern, expression
    internal = re.compile(pattern.group(1))
    for function in cfg.FUNCTIONS.values():
        for path in function.internal_paths:
            concrete = path + "process" if path.endswith("/") else path
            assert internal.match(concrete) or not function.public, concrete
    for public in (
        "/api/rules",
        "/api/rules/apply",
        "/api/imports/x/commit",
        "/api/ingest/healthz",
    ):
        assert not internal.match(public), public


# ------------------------------------------------------------------------- identities


def grants_of(tf: dict[str, Any], sa: str) -> set[tuple[str, str, str]]:
    """(resource type, role, target) of every IAM grant to one service account."""
    member = f"${{google_service_account.{sa}.member}}"
    found = set()
    for rtype, _, r in iam_members(tf):
        if r["member"] != member:
            continue
        target = next(
            (r[k] for k in ("name", "bucket", "secret_id", "service_account_id") if k in r),
            r.get("project", ""),
        )
        found.add((rtype, r["role"], target))
    return found


@pytest.mark.parametrize("name", list(cfg.FUNCTIONS))
def test_each_function_gets_exactly_the_roles_its_registry_entry_implies(
    tf: dict[str, Any], name: str
) -> None:
    spec = cfg.FUNCTIONS[name]
    expected = {("google_project_iam_member", "roles/datastore.user", "${var.project}")}
    for queue in spec.enqueues:
        expected.add(
            (
                "google_cloud_tasks_queue_iam_member",
                "roles/cloudtasks.enqueuer",
                f"${{google_cloud_tasks_queue.queue_{queue}.name}}",
            )
        )
    if spec.enqueues:
        expected.add(
            (
                "google_service_account_iam_member",
                "roles/iam.serviceAccountUser",
                "${google_service_account.sa_tasks_invoker.name}",
            )
        )
    if spec.statements_access:
        expected.add(
            (
                "google_storage_bucket_iam_member",
                "roles/storage.objectAdmin",
                "${google_storage_bucket.statements.name}",
            )
        )
    for sid in (*spec.secrets, *cfg.REDIS_SECRETS):
        expected.add(
            (
                "google_secret_manager_secret_iam_member",
                "roles/secretmanager.secretAccessor",
                f"${{google_secret_manager_secret.secret_{sid.replace('-', '_')}.id}}",
            )
        )
    assert grants_of(tf, f"sa_fn_{name}") == expected


@pytest.mark.parametrize("name", list(cfg.FUNCTIONS))
def test_the_function_environment_follows_the_registry(tf: dict[str, Any], name: str) -> None:
    spec = cfg.FUNCTIONS[name]
    env = functions_by_name(tf)[name]["service_config"]["environment_variables"]
    assert env["VALORIZE_TASK_QUEUES"] == ",".join(spec.enqueues)
    queues = {k.removeprefix("TASKS_QUEUE_").lower() for k in env if k.startswith("TASKS_QUEUE_")}
    assert queues == set(spec.enqueues)
    callers = {
        "tasks-invoker": "${google_service_account.sa_tasks_invoker.email}",
        "scheduler-invoker": "${google_service_account.sa_scheduler_invoker.email}",
    }
    assert env["VALORIZE_INTERNAL_CALLERS"] == ",".join(callers[c] for c in spec.internal_callers)
    if spec.internal_paths:
        assert env["VALORIZE_INTERNAL_AUDIENCES"] == RUN_URL.format(name)
    assert ("TASKS_INVOKER_SA" in env) == bool(spec.enqueues)
    # Tasks are addressed (and their OIDC audience set, adapters/tasks.py) to exactly the
    # URL each target verifies.
    for target, other in cfg.FUNCTIONS.items():
        if other.task_target:
            assert env[f"FUNCTION_URL_{target.upper()}"] == RUN_URL.format(target)
    # No shared secret in production: internal endpoints accept only OIDC tokens there.
    assert not any("SECRET" in k for k in env if k != "VALORIZE_INTERNAL_SECRET")
    assert "VALORIZE_INTERNAL_SECRET" not in env


def test_secrets_come_from_secret_manager_at_pinned_versions(tf: dict[str, Any]) -> None:
    text = json.dumps(tf)
    assert '"latest"' not in text
    assert "INTERNAL_SHARED_SECRET" not in text and "internal-shared-secret" not in text
    pinned = re.compile(
        r'^\$\{(var\.secret_versions\["[a-z-]+"\]|'
        r"google_secret_manager_secret_version\.[a-z_]+\.version)\}$"
    )
    versions = []
    for fn in functions_by_name(tf).values():
        svc = fn["service_config"]
        versions += [s["version"] for s in svc.get("secret_environment_variables", [])]
        versions += [v["version"] for s in svc.get("secret_volumes", []) for v in s["versions"]]
        assert {s["key"] for s in svc["secret_environment_variables"]} >= {"REDIS_URL"}
    realtime = resources(tf, "google_cloud_run_v2_service")["realtime"]["template"]
    (container,) = realtime["containers"]
    versions += [e["value_source"]["secret_key_ref"]["version"] for e in container["env"]
                 if "value_source" in e]  # fmt: skip
    versions += [i["version"] for v in realtime["volumes"] for i in v["secret"]["items"]]
    assert versions and all(pinned.match(v) for v in versions), versions
    assert tf["variable"]["secret_versions"]["type"] == "map(string)"


def test_redis_requires_auth_and_tls(tf: dict[str, Any]) -> None:
    (redis,) = resources(tf, "google_redis_instance").values()
    assert redis["auth_enabled"] is True
    assert redis["transit_encryption_mode"] == "SERVER_AUTHENTICATION"
    value = resources(tf, "google_secret_manager_secret_version")["secret_redis_url_value"]
    url = value["secret_data"]
    assert url.startswith("rediss://:${urlencode(google_redis_instance.redis.auth_string)}@")
    assert ":6378/0?ssl_cert_reqs=required&ssl_ca_certs=/etc/secrets/redis-ca/ca.pem" in url
    for fn in functions_by_name(tf).values():
        env = fn["service_config"]["environment_variables"]
        assert "REDIS_URL" not in env, "the URL carries the AUTH string: a secret, not a var"


def test_firestore_has_point_in_time_recovery_and_daily_backups(tf: dict[str, Any]) -> None:
    (db,) = resources(tf, "google_firestore_database").values()
    assert db["point_in_time_recovery_enablement"] == "POINT_IN_TIME_RECOVERY_ENABLED"
    (backups,) = resources(tf, "google_firestore_backup_schedule").values()
    assert backups["daily_recurrence"] == {}
    assert int(backups["retention"].removesuffix("s")) >= 7 * 24 * 3600
    assert backups["database"] == "${google_firestore_database.firestore.name}"


def test_no_bucket_is_public(tf: dict[str, Any]) -> None:
    for lid, bucket in resources(tf, "google_storage_bucket").items():
        assert bucket["public_access_prevention"] == "enforced", lid
        assert bucket["uniform_bucket_level_access"] is True, lid
    for rtype, lid, r in iam_members(tf):
        if rtype.startswith("google_storage"):
            assert r["member"] not in ("allUsers", "allAuthenticatedUsers"), lid
    assert not resources(tf, "google_storage_bucket_acl")
    assert not resources(tf, "google_storage_object_acl")


# ------------------------------------------------------------------------- observability


def alert_filters(tf: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {
        lid: [c["condition_threshold"] for c in p["conditions"]]
        for lid, p in resources(tf, "google_monitoring_alert_policy").items()
    }


def test_slo_alert_policies_cover_every_function(tf: dict[str, Any]) -> None:
    policies = alert_filters(tf)
    channel = "${google_monitoring_notification_channel.alert_channel.id}"
    for lid, policy in resources(tf, "google_monitoring_alert_policy").items():
        assert policy["notification_channels"] == [channel], lid
        assert policy["documentation"]["content"], lid
    names = ", ".join(f'"{n}"' for n in cfg.FUNCTIONS)
    (latency,) = policies["alert_latency_p95"]
    assert "run.googleapis.com/request_latencies" in latency["filter"]
    assert f"one_of({names})" in latency["filter"]
    assert latency["threshold_value"] == cfg.SLO.latency_p95_ms == 300
    assert latency["aggregations"][0]["cross_series_reducer"] == "REDUCE_PERCENTILE_95"
    assert latency["aggregations"][0]["group_by_fields"] == ["resource.labels.service_name"]
    (errors,) = policies["alert_error_rate"]
    assert 'response_code_class = "5xx"' in errors["filter"]
    assert f"one_of({names})" in errors["denominator_filter"]
    assert errors["threshold_value"] == cfg.SLO.error_ratio == 0.005
    (depth,) = policies["alert_queue_backlog"]
    assert "cloudtasks.googleapis.com/queue/depth" in depth["filter"]
    (failed,) = policies["alert_task_failures"]
    assert "task_attempt_count" in failed["filter"] and 'response_code != "ok"' in failed["filter"]
    (connections,) = policies["alert_realtime_connections"]
    assert "max_request_concurrencies" in connections["filter"]
    assert '"realtime"' in connections["filter"]
    (memory,) = policies["alert_redis_memory"]
    assert "redis.googleapis.com/stats/memory/usage_ratio" in memory["filter"]
    (uptime,) = policies["alert_uptime"]
    assert "uptime_check/check_passed" in uptime["filter"]


def test_dropped_events_are_counted_and_alerted(tf: dict[str, Any]) -> None:
    from valorize.adapters.cache import BUMP_FAILED
    from valorize.adapters.near_rules import UNANNOUNCED as RULES_UNANNOUNCED
    from valorize.adapters.rate_limits import RATE_LIMITS_UNAVAILABLE
    from valorize.adapters.realtime import REALTIME_DROPPED, REALTIME_UNAVAILABLE
    from valorize.adapters.revocations import UNANNOUNCED
    from valorize.service.messagebus import SUBSCRIBER_FAILED
    from valorize.service.rules import RULES_SKIPPED
    from valorize.service.task_pushes import TASK_PUSHES_LOST

    (metric,) = resources(tf, "google_logging_metric").values()
    assert "jsonPayload.valorize_event = (" in metric["filter"]
    markers = (
        SUBSCRIBER_FAILED,
        UNANNOUNCED,
        RULES_UNANNOUNCED,
        BUMP_FAILED,
        RULES_SKIPPED,
        RATE_LIMITS_UNAVAILABLE,
        REALTIME_UNAVAILABLE,
        REALTIME_DROPPED,
        TASK_PUSHES_LOST,
    )
    for marker in (*markers, "login_throttle_unavailable"):
        assert f'"{marker}"' in metric["filter"]
    assert "severity >= ERROR" in metric["filter"]
    assert metric["metric_descriptor"]["metric_kind"] == "DELTA"
    (condition,) = alert_filters(tf)["alert_dropped_events"]
    assert f"logging.googleapis.com/user/{metric['name']}" in condition["filter"]
    assert condition["threshold_value"] == 0


def test_every_public_function_has_an_uptime_check_through_the_load_balancer(
    tf: dict[str, Any],
) -> None:
    checks = {
        c["http_check"]["path"]: c
        for c in resources(tf, "google_monitoring_uptime_check_config").values()
    }
    expected = {f"/api/{n}/healthz" for n, s in cfg.FUNCTIONS.items() if s.public}
    assert set(checks) == expected
    for check in checks.values():
        assert check["monitored_resource"]["labels"]["host"] == "${var.domain}"
        assert check["http_check"]["use_ssl"] is True and check["http_check"]["port"] == 443


def test_the_dashboard_shows_each_slo(tf: dict[str, Any]) -> None:
    (dashboard,) = resources(tf, "google_monitoring_dashboard").values()
    layout = json.loads(dashboard["dashboard_json"])
    filters = " ".join(
        ds["timeSeriesQuery"]["timeSeriesFilter"]["filter"]
        for tile in layout["mosaicLayout"]["tiles"]
        for ds in tile["widget"]["xyChart"]["dataSets"]
    )
    for metric in (
        "run.googleapis.com/request_latencies",
        "run.googleapis.com/request_count",
        "cloudtasks.googleapis.com/queue/depth",
        "cloudtasks.googleapis.com/queue/task_attempt_count",
        "run.googleapis.com/container/max_request_concurrencies",
        "redis.googleapis.com/stats/memory/usage_ratio",
        "logging.googleapis.com/user/valorize/subscriber_failures",
    ):
        assert metric in filters, metric


def test_the_billing_budget_alerts_at_thresholds(tf: dict[str, Any]) -> None:
    (budget,) = resources(tf, "google_billing_budget").values()
    assert budget["billing_account"] == "${var.billing_account}"
    assert budget["budget_filter"]["projects"] == [
        "projects/${data.google_project.project_info.number}"
    ]
    rules = {(r["threshold_percent"], r["spend_basis"]) for r in budget["threshold_rules"]}
    assert rules == {
        (0.5, "CURRENT_SPEND"),
        (0.9, "CURRENT_SPEND"),
        (1, "CURRENT_SPEND"),
        (1, "FORECASTED_SPEND"),
    }
    assert budget["all_updates_rule"]["monitoring_notification_channels"] == [
        "${google_monitoring_notification_channel.alert_channel.id}"
    ]


def test_the_provider_is_google_8(tf: dict[str, Any]) -> None:
    google = tf["terraform"]["required_providers"]["google"]
    assert google["source"] == "hashicorp/google"
    assert google["version"].startswith("8.")
