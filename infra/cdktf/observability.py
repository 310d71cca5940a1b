"""Production is not blind: the dashboard, alert policies, uptime checks, the log-based metric
of dropped events and the billing budget, as code (the original built its dashboards by hand).

Every objective comes from ``config.SLO`` (../shared/spec/TARGETS.md): P95 latency and the 5xx
share per function, task queue depth and failed attempts, realtime connections and Redis
memory. A 2nd-gen function is a Cloud Run service of the same name, so the Cloud Run metrics
(``run.googleapis.com/...``, resource ``cloud_run_revision``) serve functions and the realtime
server alike; each condition is grouped by service, so an incident names the function.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from cdktn_provider_google.billing_budget import (
    BillingBudget,
    BillingBudgetAllUpdatesRule,
    BillingBudgetAmount,
    BillingBudgetAmountSpecifiedAmount,
    BillingBudgetBudgetFilter,
    BillingBudgetThresholdRules,
)
from cdktn_provider_google.logging_metric import (
    LoggingMetric,
    LoggingMetricMetricDescriptor,
    LoggingMetricMetricDescriptorLabels,
)
from cdktn_provider_google.monitoring_alert_policy import (
    MonitoringAlertPolicy,
    MonitoringAlertPolicyAlertStrategy,
    MonitoringAlertPolicyConditions,
    MonitoringAlertPolicyConditionsConditionThreshold,
    MonitoringAlertPolicyConditionsConditionThresholdAggregations,
    MonitoringAlertPolicyConditionsConditionThresholdDenominatorAggregations,
    MonitoringAlertPolicyDocumentation,
)
from cdktn_provider_google.monitoring_dashboard import MonitoringDashboard
from cdktn_provider_google.monitoring_notification_channel import (
    MonitoringNotificationChannel,
)
from cdktn_provider_google.monitoring_uptime_check_config import (
    MonitoringUptimeCheckConfig,
    MonitoringUptimeCheckConfigHttpCheck,
    MonitoringUptimeCheckConfigMonitoredResource,
)

import config

if TYPE_CHECKING:
    from stack import ValorizeStack

Aggregation = MonitoringAlertPolicyConditionsConditionThresholdAggregations
REALTIME_SERVICE = "realtime"
FIVE_XX = ' AND metric.labels.response_code_class = "5xx"'


def _one_of(values: list[str]) -> str:
    return "one_of(" + ", ".join(f'"{v}"' for v in values) + ")"


def run_filter(metric: str, services: list[str], extra: str = "") -> str:
    """A Cloud Run metric of the given services (functions are Cloud Run services)."""
    return (
        f'metric.type = "run.googleapis.com/{metric}" AND resource.type = "cloud_run_revision" '
        f"AND resource.labels.service_name = {_one_of(services)}{extra}"
    )


def subscriber_failures_metric_type() -> str:
    return f"logging.googleapis.com/user/{config.SUBSCRIBER_FAILURES_METRIC}"


class Observability:
    def __init__(self, stack: ValorizeStack) -> None:
        self.stack = stack
        self.functions = list(config.FUNCTIONS)
        self.window = f"{config.SLO.window_seconds}s"
        self.channel = MonitoringNotificationChannel(
            stack,
            "alert_channel",
            display_name="ValorizeAI on-call",
            type="email",
            labels={"email_address": stack.alert_email},
            depends_on=stack.apis,
        )

    # ------------------------------------------------------------------ building blocks
    def policy(
        self,
        id_: str,
        name: str,
        runbook: str,
        conditions: list[MonitoringAlertPolicyConditions],
    ) -> MonitoringAlertPolicy:
        return MonitoringAlertPolicy(
            self.stack,
            f"alert_{id_}",
            display_name=name,
            combiner="OR",
            conditions=conditions,
            notification_channels=[self.channel.id],
            documentation=MonitoringAlertPolicyDocumentation(
                content=runbook, mime_type="text/markdown"
            ),
            alert_strategy=MonitoringAlertPolicyAlertStrategy(auto_close="86400s"),
            depends_on=self.stack.apis,
        )

    def threshold(
        self,
        name: str,
        filter_: str,
        value: float,
        aligner: str,
        reducer: str,
        group_by: list[str],
        duration: str | None = None,
        denominator: str | None = None,
    ) -> MonitoringAlertPolicyConditions:
        aggregation = {
            "alignment_period": self.window,
            "per_series_aligner": aligner,
            "cross_series_reducer": reducer,
            "group_by_fields": group_by,
        }
        return MonitoringAlertPolicyConditions(
            display_name=name,
            condition_threshold=MonitoringAlertPolicyConditionsConditionThreshold(
                filter=filter_,
                comparison="COMPARISON_GT",
                threshold_value=value,
                duration=duration or self.window,
                aggregations=[Aggregation(**aggregation)],
                denominator_filter=denominator,
                denominator_aggregations=(
                    [
                        MonitoringAlertPolicyConditionsConditionThresholdDenominatorAggregations(
                            **aggregation
                        )
                    ]
                    if denominator
                    else None
                ),
            ),
        )

    # ------------------------------------------------------------------ the pieces
    def slo_alerts(self) -> None:
        slo, by_service = config.SLO, ["resource.labels.service_name"]
        self.policy(
            "latency_p95",
            f"API latency P95 above {slo.latency_p95_ms} ms",
            "A function's P95 latency broke the SLO (TARGETS.md) for 5 minutes. Check its "
            "dashboard row, recent deploys, Firestore and Redis latency.",
            [
                self.threshold(
                    "P95 request latency per function",
                    run_filter("request_latencies", self.functions),
                    slo.latency_p95_ms,
                    "ALIGN_DELTA",
                    "REDUCE_PERCENTILE_95",
                    by_service,
                )
            ],
        )
        self.policy(
            "error_rate",
            f"5xx above {slo.error_ratio:.1%} of requests",
            "A function answers more than the SLO's share of 5xx (TARGETS.md). Its logs "
            "carry the stack traces (severity ERROR).",
            [
                self.threshold(
                    "5xx share per function",
                    run_filter(
                        "request_count",
                        self.functions,
                        ' AND metric.labels.response_code_class = "5xx"',
                    ),
                    slo.error_ratio,
                    "ALIGN_RATE",
                    "REDUCE_SUM",
                    by_service,
                    denominator=run_filter("request_count", self.functions),
                )
            ],
        )
        queues = _one_of(list(config.QUEUES))
        self.policy(
            "queue_backlog",
            "Task queue not draining",
            f"A Cloud Tasks queue has held more than {slo.queue_depth} tasks for "
            f"{slo.backlog_minutes} minutes: its target is failing or too slow.",
            [
                self.threshold(
                    "Queue depth",
                    'metric.type = "cloudtasks.googleapis.com/queue/depth" AND resource.type = '
                    f'"cloud_tasks_queue" AND resource.labels.queue_id = {queues}',
                    slo.queue_depth,
                    "ALIGN_MEAN",
                    "REDUCE_SUM",
                    ["resource.labels.queue_id"],
                    duration=f"{slo.backlog_minutes * 60}s",
                )
            ],
        )
        self.policy(
            "task_failures",
            "Task delivery attempts failing",
            "Tasks are being retried: their target answers non-2xx. Handlers are idempotent, "
            "so retries are safe, but a steady rate means lost time and, at max attempts, "
            "dropped work.",
            [
                self.threshold(
                    "Failed attempts per second",
                    'metric.type = "cloudtasks.googleapis.com/queue/task_attempt_count" AND '
                    f'resource.type = "cloud_tasks_queue" AND resource.labels.queue_id = {queues}'
                    ' AND metric.labels.response_code != "ok"',
                    slo.failed_attempts_per_second,
                    "ALIGN_RATE",
                    "REDUCE_SUM",
                    ["resource.labels.queue_id"],
                )
            ],
        )
        rt = config.REALTIME
        capacity = rt.max_instances * rt.concurrency * slo.realtime_connections_ratio
        self.policy(
            "realtime_connections",
            "Realtime connections near capacity",
            f"Open Socket.IO connections passed {slo.realtime_connections_ratio:.0%} of what "
            f"{rt.max_instances} instances x {rt.concurrency} can hold: raise max instances.",
            [
                self.threshold(
                    "Open connections (sum of per-instance concurrency)",
                    run_filter("container/max_request_concurrencies", [REALTIME_SERVICE]),
                    capacity,
                    "ALIGN_PERCENTILE_99",
                    "REDUCE_SUM",
                    by_service,
                )
            ],
        )
        self.policy(
            "redis_memory",
            f"Redis memory above {slo.redis_memory_ratio:.0%}",
            "Memorystore is filling up: the cache and realtime log evict, then writes fail. "
            "Check the realtime log window and cache TTLs, or resize.",
            [
                self.threshold(
                    "Memory usage ratio",
                    'metric.type = "redis.googleapis.com/stats/memory/usage_ratio" AND '
                    'resource.type = "redis_instance"',
                    slo.redis_memory_ratio,
                    "ALIGN_MEAN",
                    "REDUCE_MAX",
                    ["resource.labels.instance_id"],
                )
            ],
        )

    def dropped_events(self) -> None:
        """No silent loss: every failed bus subscriber and every unannounced revocation is
        counted and alerted on."""
        LoggingMetric(
            self.stack,
            "metric_subscriber_failures",
            name=config.SUBSCRIBER_FAILURES_METRIC,
            description=(
                "Work dropped or a safeguard off: failed domain-event subscribers, unannounced "
                "token revocations, rules skipped for their CPU budget, rate limits and the "
                "login throttle failing open (infra/cdktf/config.py DROPPED_MARKERS)"
            ),
            filter=(
                "severity >= ERROR AND jsonPayload.valorize_event = ("
                + " OR ".join(f'"{m}"' for m in config.DROPPED_MARKERS)
                + ")"
            ),
            metric_descriptor=LoggingMetricMetricDescriptor(
                metric_kind="DELTA",
                value_type="INT64",
                unit="1",
                labels=[
                    LoggingMetricMetricDescriptorLabels(key="marker", value_type="STRING"),
                    LoggingMetricMetricDescriptorLabels(key="event_type", value_type="STRING"),
                    LoggingMetricMetricDescriptorLabels(key="subscriber", value_type="STRING"),
                ],
            ),
            label_extractors={
                "marker": "EXTRACT(jsonPayload.valorize_event)",
                "event_type": "EXTRACT(jsonPayload.event_type)",
                "subscriber": "EXTRACT(jsonPayload.subscriber)",
            },
            depends_on=self.stack.apis,
        )
        self.policy(
            "dropped_events",
            "Work dropped",
            "A subscriber (alerts, realtime push, cache invalidation) failed after a write "
            "committed (valorize_event=subscriber_failed: the log entry has the event; alerts "
            "are idempotent, so re-running its write path is safe), or a token revocation "
            "could not be announced to the other instances (valorize_event="
            "revocation_unannounced: they honour the token until their token cache expires, "
            "VALORIZE_TOKEN_CACHE_SECONDS), or a rules change could not be announced "
            "(rules_change_unannounced: other instances apply the rules they keep until "
            "VALORIZE_NEAR_CACHE_SECONDS), or a cache bump failed (cache_bump_failed: that "
            "user's cached answers of its scope stay until their TTL, "
            "VALORIZE_CACHE_TTL_SECONDS), or rules were skipped for a transaction's CPU "
            "budget (rules_skipped: the transaction's notes say so), or Redis is unreachable "
            "and the rate limits or the login throttle fail open (rate_limits_unavailable, "
            "login_throttle_unavailable), or live events were not published "
            "(realtime_unavailable, then realtime_events_dropped with the count: open apps "
            "see those changes on their next refetch).",
            [
                self.threshold(
                    "Failed subscribers",
                    f'metric.type = "{subscriber_failures_metric_type()}" AND '
                    'resource.type = "cloud_run_revision"',
                    0,
                    "ALIGN_SUM",
                    "REDUCE_SUM",
                    ["metric.labels.marker", "metric.labels.subscriber"],
                    duration="0s",
                )
            ],
        )

    def uptime(self) -> list[str]:
        """One HTTPS check per public function, through the load balancer (its only way in)."""
        ids = []
        for name, spec in config.FUNCTIONS.items():
            if not spec.public:
                continue
            check = MonitoringUptimeCheckConfig(
                self.stack,
                f"uptime_{name}",
                display_name=f"{name} healthz",
                timeout="10s",
                period="300s",
                http_check=MonitoringUptimeCheckConfigHttpCheck(
                    path=f"/api/{name}/healthz",
                    port=443,
                    use_ssl=True,
                    validate_ssl=True,
                ),
                monitored_resource=MonitoringUptimeCheckConfigMonitoredResource(
                    type="uptime_url",
                    labels={"project_id": self.stack.project, "host": self.stack.domain},
                ),
                depends_on=self.stack.apis,
            )
            ids.append(check.uptime_check_id)
        self.policy(
            "uptime",
            "Public function down",
            "A public function's /healthz failed from several regions through the load "
            "balancer (DNS, certificate, Cloud Armor, or the function itself).",
            [
                self.threshold(
                    "Failed uptime checks",
                    'metric.type = "monitoring.googleapis.com/uptime_check/check_passed" AND '
                    'resource.type = "uptime_url"',
                    1,
                    "ALIGN_NEXT_OLDER",
                    "REDUCE_COUNT_FALSE",
                    ["metric.labels.check_id"],
                )
            ],
        )
        return ids

    def budget(self) -> None:
        thresholds = [
            BillingBudgetThresholdRules(threshold_percent=p, spend_basis="CURRENT_SPEND")
            for p in config.BUDGET_THRESHOLDS
        ]
        thresholds.append(
            BillingBudgetThresholdRules(
                threshold_percent=config.BUDGET_FORECAST_THRESHOLD,
                spend_basis="FORECASTED_SPEND",
            )
        )
        BillingBudget(
            self.stack,
            "budget",
            billing_account=self.stack.billing_account,
            display_name="ValorizeAI monthly",
            budget_filter=BillingBudgetBudgetFilter(
                projects=[f"projects/{self.stack.project_number}"],
                calendar_period="MONTH",
            ),
            amount=BillingBudgetAmount(
                specified_amount=BillingBudgetAmountSpecifiedAmount(
                    currency_code=self.stack.budget_currency,
                    units=self.stack.monthly_budget,
                )
            ),
            threshold_rules=thresholds,
            all_updates_rule=BillingBudgetAllUpdatesRule(
                monitoring_notification_channels=[self.channel.id],
                disable_default_iam_recipients=False,
            ),
            depends_on=self.stack.apis,
        )

    def dashboard(self) -> None:
        def chart(
            title: str, filter_: str, aligner: str, reducer: str, group: str
        ) -> dict[str, Any]:
            return {
                "title": title,
                "xyChart": {
                    "dataSets": [
                        {
                            "plotType": "LINE",
                            "timeSeriesQuery": {
                                "timeSeriesFilter": {
                                    "filter": filter_,
                                    "aggregation": {
                                        "alignmentPeriod": "60s",
                                        "perSeriesAligner": aligner,
                                        "crossSeriesReducer": reducer,
                                        "groupByFields": [group],
                                    },
                                }
                            },
                        }
                    ]
                },
            }

        service = "resource.labels.service_name"
        queue = "resource.labels.queue_id"
        fns = self.functions
        tiles = [
            chart("P95 latency (ms) per function", run_filter("request_latencies", fns),
                  "ALIGN_DELTA", "REDUCE_PERCENTILE_95", service),
            chart("Requests/s per function", run_filter("request_count", fns),
                  "ALIGN_RATE", "REDUCE_SUM", service),
            chart("5xx/s per function", run_filter("request_count", fns, FIVE_XX),
                  "ALIGN_RATE", "REDUCE_SUM", service),
            chart("Instances per function", run_filter("container/instance_count", fns),
                  "ALIGN_MAX", "REDUCE_SUM", service),
            chart("Task queue depth",
                  'metric.type = "cloudtasks.googleapis.com/queue/depth" AND '
                  'resource.type = "cloud_tasks_queue"', "ALIGN_MEAN", "REDUCE_SUM", queue),
            chart("Failed task attempts/s",
                  'metric.type = "cloudtasks.googleapis.com/queue/task_attempt_count" AND '
                  'resource.type = "cloud_tasks_queue" AND metric.labels.response_code != "ok"',
                  "ALIGN_RATE", "REDUCE_SUM", queue),
            chart("Realtime connections",
                  run_filter("container/max_request_concurrencies", [REALTIME_SERVICE]),
                  "ALIGN_PERCENTILE_99", "REDUCE_SUM", service),
            chart("Redis memory usage ratio",
                  'metric.type = "redis.googleapis.com/stats/memory/usage_ratio" AND '
                  'resource.type = "redis_instance"', "ALIGN_MEAN", "REDUCE_MAX",
                  "resource.labels.instance_id"),
            chart("Failed event subscribers",
                  f'metric.type = "{subscriber_failures_metric_type()}"', "ALIGN_SUM",
                  "REDUCE_SUM", "metric.labels.subscriber"),
        ]  # fmt: skip
        width = 6
        layout = {
            "displayName": "ValorizeAI",
            "mosaicLayout": {
                "columns": 12,
                "tiles": [
                    {
                        "xPos": (i % 2) * width,
                        "yPos": (i // 2) * 4,
                        "width": width,
                        "height": 4,
                        "widget": tile,
                    }
                    for i, tile in enumerate(tiles)
                ],
            },
        }
        MonitoringDashboard(
            self.stack,
            "dashboard",
            dashboard_json=json.dumps(layout),
            depends_on=self.stack.apis,
        )


def add(stack: ValorizeStack) -> None:
    o = Observability(stack)
    o.slo_alerts()
    o.dropped_events()
    o.uptime()
    o.budget()
    o.dashboard()
