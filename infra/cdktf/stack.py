"""The ValorizeAI Google Cloud stack, described with CDK Terrain (the maintained fork of CDK
for Terraform; same constructs, same cdk.tf.json).

One stack per GCP project: dev and prod are separate projects, so resource names carry no
environment suffix; ``var.environment`` only switches sizes and safety settings.

Secure by default: functions are reachable only through the load balancer and from inside the
project (Cloud Tasks, Cloud Scheduler); internal functions only by their invoker service
accounts; Cloud Armor in front of every backend; one service account per function with the
roles its registry entry implies; secrets pinned to versions; Redis with AUTH and TLS.
"""

from __future__ import annotations

import base64
import json
import re

from cdktn import (
    Fn,
    GcsBackend,
    LocalBackend,
    Op,
    TerraformOutput,
    TerraformResource,
    TerraformStack,
    TerraformVariable,
    TerraformVariableValidationConfig,
    Token,
)
from cdktn_provider_google.cloud_run_v2_service import (
    CloudRunV2Service,
    CloudRunV2ServiceTemplate,
    CloudRunV2ServiceTemplateContainers,
    CloudRunV2ServiceTemplateContainersEnv,
    CloudRunV2ServiceTemplateContainersEnvValueSource,
    CloudRunV2ServiceTemplateContainersEnvValueSourceSecretKeyRef,
    CloudRunV2ServiceTemplateContainersPorts,
    CloudRunV2ServiceTemplateContainersResources,
    CloudRunV2ServiceTemplateContainersVolumeMounts,
    CloudRunV2ServiceTemplateScaling,
    CloudRunV2ServiceTemplateVolumes,
    CloudRunV2ServiceTemplateVolumesSecret,
    CloudRunV2ServiceTemplateVolumesSecretItems,
    CloudRunV2ServiceTemplateVpcAccess,
)
from cdktn_provider_google.cloud_run_v2_service_iam_member import (
    CloudRunV2ServiceIamMember,
)
from cdktn_provider_google.cloud_scheduler_job import (
    CloudSchedulerJob,
    CloudSchedulerJobHttpTarget,
    CloudSchedulerJobHttpTargetOidcToken,
    CloudSchedulerJobRetryConfig,
)
from cdktn_provider_google.cloud_tasks_queue import (
    CloudTasksQueue,
    CloudTasksQueueRateLimits,
    CloudTasksQueueRetryConfig,
    CloudTasksQueueStackdriverLoggingConfig,
)
from cdktn_provider_google.cloud_tasks_queue_iam_member import CloudTasksQueueIamMember
from cdktn_provider_google.cloudfunctions2_function import (
    Cloudfunctions2Function,
    Cloudfunctions2FunctionBuildConfig,
    Cloudfunctions2FunctionBuildConfigSource,
    Cloudfunctions2FunctionBuildConfigSourceStorageSource,
    Cloudfunctions2FunctionServiceConfig,
    Cloudfunctions2FunctionServiceConfigSecretEnvironmentVariables,
    Cloudfunctions2FunctionServiceConfigSecretVolumes,
    Cloudfunctions2FunctionServiceConfigSecretVolumesVersions,
)
from cdktn_provider_google.compute_backend_service import (
    ComputeBackendService,
    ComputeBackendServiceBackend,
    ComputeBackendServiceLogConfig,
)
from cdktn_provider_google.compute_global_address import ComputeGlobalAddress
from cdktn_provider_google.compute_global_forwarding_rule import (
    ComputeGlobalForwardingRule,
)
from cdktn_provider_google.compute_managed_ssl_certificate import (
    ComputeManagedSslCertificate,
    ComputeManagedSslCertificateManaged,
)
from cdktn_provider_google.compute_network import ComputeNetwork
from cdktn_provider_google.compute_region_network_endpoint_group import (
    ComputeRegionNetworkEndpointGroup,
    ComputeRegionNetworkEndpointGroupCloudFunction,
    ComputeRegionNetworkEndpointGroupCloudRun,
)
from cdktn_provider_google.compute_security_policy import (
    ComputeSecurityPolicy,
    ComputeSecurityPolicyRule,
    ComputeSecurityPolicyRuleMatch,
    ComputeSecurityPolicyRuleMatchConfig,
    ComputeSecurityPolicyRuleMatchExpr,
    ComputeSecurityPolicyRuleRateLimitOptions,
    ComputeSecurityPolicyRuleRateLimitOptionsRateLimitThreshold,
)
from cdktn_provider_google.compute_target_http_proxy import ComputeTargetHttpProxy
from cdktn_provider_google.compute_target_https_proxy import ComputeTargetHttpsProxy
from cdktn_provider_google.compute_url_map import (
    ComputeUrlMap,
    ComputeUrlMapDefaultUrlRedirect,
    ComputeUrlMapHostRule,
    ComputeUrlMapPathMatcher,
    ComputeUrlMapPathMatcherPathRule,
)
from cdktn_provider_google.data_google_project import DataGoogleProject
from cdktn_provider_google.firestore_backup_schedule import (
    FirestoreBackupSchedule,
    FirestoreBackupScheduleDailyRecurrence,
)
from cdktn_provider_google.firestore_database import FirestoreDatabase
from cdktn_provider_google.firestore_field import (
    FirestoreField,
    FirestoreFieldIndexConfig,
    FirestoreFieldIndexConfigIndexes,
)
from cdktn_provider_google.firestore_index import FirestoreIndex, FirestoreIndexFields
from cdktn_provider_google.project_iam_member import ProjectIamMember
from cdktn_provider_google.project_service import ProjectService
from cdktn_provider_google.provider import GoogleProvider
from cdktn_provider_google.redis_instance import RedisInstance
from cdktn_provider_google.secret_manager_secret import (
    SecretManagerSecret,
    SecretManagerSecretReplication,
    SecretManagerSecretReplicationAuto,
)
from cdktn_provider_google.secret_manager_secret_iam_member import (
    SecretManagerSecretIamMember,
)
from cdktn_provider_google.secret_manager_secret_version import SecretManagerSecretVersion
from cdktn_provider_google.service_account import ServiceAccount
from cdktn_provider_google.service_account_iam_member import ServiceAccountIamMember
from cdktn_provider_google.storage_bucket import (
    StorageBucket,
    StorageBucketLifecycleRule,
    StorageBucketLifecycleRuleAction,
    StorageBucketLifecycleRuleCondition,
    StorageBucketVersioning,
)
from cdktn_provider_google.storage_bucket_iam_member import StorageBucketIamMember
from cdktn_provider_google.vpc_access_connector import VpcAccessConnector
from constructs import Construct

import config
import observability

# /28 reserved for the Serverless VPC Access connector; must not overlap Redis' peering range.
CONNECTOR_CIDR = "10.8.0.0/28"
STATEMENTS_RETENTION_DAYS = 90
# Cloud Armor per-client ceiling: far above one person's UI use, low enough to blunt scripts.
ARMOR_REQUESTS_PER_MINUTE = 1200
# Memorystore's TLS port (6379 is plain text, closed once transit encryption is on).
REDIS_TLS_PORT = 6378


class ValorizeStack(TerraformStack):
    """Functions, realtime server, data stores, queues, schedules, IAM and the load balancer."""

    def __init__(self, scope: Construct, id_: str, *, state_bucket: str | None = None) -> None:
        super().__init__(scope, id_)
        if state_bucket:
            # Remote state so CI and developers share one view of each project.
            GcsBackend(self, bucket=state_bucket, prefix=f"valorize/{id_}")
        else:
            # Relative to where terraform runs (cdktf.out/stacks/<id>); cdktf's default would
            # bake the synthesizing machine's absolute path into the output.
            LocalBackend(self, path="terraform.tfstate")

        self._variables()
        GoogleProvider(self, "google", project=self.project, region=self.region)
        project_info = DataGoogleProject(self, "project_info", project_id=self.project)
        self.project_number = project_info.number
        self.apis: list[TerraformResource] = [
            ProjectService(self, f"api_{api.split('.')[0]}", service=api, disable_on_destroy=False)
            for api in config.APIS
        ]

        self._network()
        self._firestore()
        self._buckets()
        self._secrets()
        self._queues()
        self._service_accounts()
        self._functions()
        self._realtime()
        self._invokers()
        self._schedules()
        self._load_balancer()
        observability.add(self)
        self._outputs()

    # ---------------------------------------------------------------- variables
    def _variables(self) -> None:
        self.project = TerraformVariable(
            self, "project", type="string", description="GCP project id (one per environment)"
        ).string_value
        self.region = TerraformVariable(
            self, "region", type="string", default="us-central1", description="GCP region"
        ).string_value
        self.domain = TerraformVariable(
            self, "domain", type="string", description="Public domain served by the LB"
        ).string_value
        env = TerraformVariable(
            self,
            "environment",
            type="string",
            default="dev",
            description="dev or prod: switches Redis tier, deletion protection and PITR",
            validation=[
                TerraformVariableValidationConfig(
                    # Raw expression: the variable cannot reference its own token while built.
                    condition='${contains(["dev", "prod"], var.environment)}',
                    error_message="environment must be dev or prod",
                )
            ],
        )
        self.environment = env.string_value
        self.is_prod = Op.eq(self.environment, "prod")
        self.realtime_image = TerraformVariable(
            self,
            "realtime_image",
            type="string",
            description="Container image of realtime_server (Artifact Registry path:tag)",
        ).string_value
        # Terraform cannot see a changed zip behind an unchanged object name; passing the new
        # object generation per function is what makes `apply` rebuild just that function.
        TerraformVariable(
            self,
            "source_generations",
            type="map(string)",
            default={},
            description="Function name -> GCS generation of functions/<name>.zip to deploy",
        )
        # Operator-written secrets are mounted at an explicit version, never "latest": a new
        # value reaches the functions only through a reviewed apply, and a rollback is one.
        TerraformVariable(
            self,
            "secret_versions",
            type="map(string)",
            default={},
            description='Secret id -> version to mount, e.g. {"smtp-credentials": "3"}',
        )
        self.armor_rpm = TerraformVariable(
            self,
            "armor_requests_per_minute",
            type="number",
            default=ARMOR_REQUESTS_PER_MINUTE,
            description="Cloud Armor: requests per minute one client IP may make",
        ).number_value
        self.alert_email = TerraformVariable(
            self,
            "alert_email",
            type="string",
            description="Where alert policies and budget alerts are sent",
        ).string_value
        self.billing_account = TerraformVariable(
            self,
            "billing_account",
            type="string",
            description="Billing account id (XXXXXX-XXXXXX-XXXXXX) the budget watches",
        ).string_value
        self.monthly_budget = TerraformVariable(
            self,
            "monthly_budget",
            type="string",
            default="200",
            description="Monthly budget in the billing account's currency (whole units)",
        ).string_value
        self.budget_currency = TerraformVariable(
            self,
            "budget_currency",
            type="string",
            default="USD",
            description="Currency of the billing account (ISO-4217)",
        ).string_value

    def _by_env(self, prod: str, dev: str) -> str:
        return Token.as_string(Fn.conditional(self.is_prod, prod, dev))

    def _by_env_num(self, prod: float, dev: float) -> float:
        return Token.as_number(Fn.conditional(self.is_prod, prod, dev))

    # ---------------------------------------------------------------- network + Redis
    def _network(self) -> None:
        self.network = ComputeNetwork(
            self,
            "network",
            name="valorize",
            auto_create_subnetworks=False,
            depends_on=self.apis,
        )
        # A connector rather than Direct VPC egress: google_cloudfunctions2_function only
        # exposes vpc_connector, and one connector keeps functions and realtime alike.
        self.connector = VpcAccessConnector(
            self,
            "connector",
            name="valorize-connector",
            region=self.region,
            network=self.network.name,
            ip_cidr_range=CONNECTOR_CIDR,
            machine_type="e2-micro",
            min_instances=2,
            max_instances=self._by_env_num(10, 3),
            depends_on=self.apis,
        )
        # Redis holds only the dashboard cache and the Socket.IO backplane (nothing durable),
        # so no persistence; prod gets a replica for failover, dev the cheap basic tier.
        # AUTH and TLS even inside the VPC: anything on the network (a compromised function,
        # a peered range) would otherwise read and write every user's cache and sessions.
        self.redis = RedisInstance(
            self,
            "redis",
            name="valorize-cache",
            region=self.region,
            tier=self._by_env("STANDARD_HA", "BASIC"),
            memory_size_gb=self._by_env_num(2, 1),
            redis_version="REDIS_7_2",
            authorized_network=self.network.id,
            connect_mode="DIRECT_PEERING",
            auth_enabled=True,
            transit_encryption_mode="SERVER_AUTHENTICATION",
            depends_on=self.apis,
        )

    # ---------------------------------------------------------------- Firestore
    def _firestore(self) -> None:
        self.firestore = FirestoreDatabase(
            self,
            "firestore",
            name="(default)",
            location_id=self.region,
            type="FIRESTORE_NATIVE",
            delete_protection_state=self._by_env(
                "DELETE_PROTECTION_ENABLED", "DELETE_PROTECTION_DISABLED"
            ),
            # Seven days of any-moment recovery in every environment: the cheapest insurance
            # against a bad deploy or import, and dev is where those happen first.
            point_in_time_recovery_enablement="POINT_IN_TIME_RECOVERY_ENABLED",
            # Destroying the stack must never drop user data in prod.
            deletion_policy=self._by_env("ABANDON", "DELETE"),
            depends_on=self.apis,
        )
        # Daily backups beyond PITR's seven days (restorable into a new database).
        FirestoreBackupSchedule(
            self,
            "firestore_backups",
            database=self.firestore.name,
            retention=config.FIRESTORE_BACKUP_RETENTION,
            daily_recurrence=FirestoreBackupScheduleDailyRecurrence(),
        )
        for i, spec in enumerate(config.FIRESTORE_INDEXES):
            FirestoreIndex(
                self,
                f"index_{spec.collection}_{i}",
                database=self.firestore.name,
                collection=spec.collection,
                query_scope="COLLECTION",
                fields=[
                    FirestoreIndexFields(
                        field_path=f.path,
                        order=None if f.array_contains else f.order,
                        array_config="CONTAINS" if f.array_contains else None,
                    )
                    for f in spec.fields
                ],
            )
        for spec in config.FIRESTORE_FIELD_INDEXES:
            FirestoreField(
                self,
                f"field_{spec.collection}_{spec.field}",
                database=self.firestore.name,
                collection=spec.collection,
                field=spec.field,
                index_config=FirestoreFieldIndexConfig(
                    indexes=[
                        FirestoreFieldIndexConfigIndexes(order=spec.order, query_scope=scope)
                        for scope in spec.scopes
                    ]
                ),
            )

    # ---------------------------------------------------------------- buckets
    def _buckets(self) -> None:
        self.statements = StorageBucket(
            self,
            "statements",
            name=f"{self.project}-valorize-statements",
            location=self.region,
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            force_destroy=Op.not_(self.is_prod),
            # Statements are only needed until the import is committed or abandoned.
            lifecycle_rule=[
                StorageBucketLifecycleRule(
                    action=StorageBucketLifecycleRuleAction(type="Delete"),
                    condition=StorageBucketLifecycleRuleCondition(age=STATEMENTS_RETENTION_DAYS),
                )
            ],
            depends_on=self.apis,
        )
        self.source = StorageBucket(
            self,
            "source",
            name=f"{self.project}-valorize-source",
            location=self.region,
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            # Keeps the previous zip so a bad deploy can be rolled back by generation.
            versioning=StorageBucketVersioning(enabled=True),
            lifecycle_rule=[
                StorageBucketLifecycleRule(
                    action=StorageBucketLifecycleRuleAction(type="Delete"),
                    condition=StorageBucketLifecycleRuleCondition(num_newer_versions=10),
                )
            ],
            depends_on=self.apis,
        )

    # ---------------------------------------------------------------- secrets
    def _secrets(self) -> None:
        # Operator secrets are created empty on purpose: their values never pass through
        # Terraform state. The managed ones hold what the state has anyway (Redis' AUTH).
        self.secrets = {
            sid: SecretManagerSecret(
                self,
                f"secret_{sid.replace('-', '_')}",
                secret_id=sid,
                replication=SecretManagerSecretReplication(
                    auto=SecretManagerSecretReplicationAuto()
                ),
                labels={"app": "valorize"},
                depends_on=self.apis,
            )
            for sid in config.SECRETS
        }
        ca_file = "/".join(config.SECRETS["redis-ca"].mount or ())
        redis_url = (
            f"rediss://:{Fn.urlencode(self.redis.auth_string)}@{self.redis.host}:"
            f"{REDIS_TLS_PORT}/0?ssl_cert_reqs=required&ssl_ca_certs={ca_file}"
        )
        managed = {
            "redis-url": redis_url,
            "redis-ca": self.redis.server_ca_certs.get(0).cert,
        }
        # Each managed secret's version resource: mounting its `version` pins the functions
        # to exactly what this apply wrote.
        self.secret_values = {
            sid: SecretManagerSecretVersion(
                self,
                f"secret_{sid.replace('-', '_')}_value",
                secret=self.secrets[sid].id,
                secret_data=value,
            )
            for sid, value in managed.items()
        }

    def _secret_version(self, sid: str) -> str:
        """The pinned version of a secret: the one this stack wrote, or the operator's."""
        if sid in self.secret_values:
            return self.secret_values[sid].version
        # No default: a missing pin fails the plan instead of mounting "latest".
        return f'${{var.secret_versions["{sid}"]}}'

    # ---------------------------------------------------------------- Cloud Tasks
    def _queues(self) -> None:
        self.queues = {
            name: CloudTasksQueue(
                self,
                f"queue_{name}",
                name=name,
                location=self.region,
                rate_limits=CloudTasksQueueRateLimits(
                    max_dispatches_per_second=q.max_dispatches_per_second,
                    max_concurrent_dispatches=q.max_concurrent_dispatches,
                ),
                retry_config=CloudTasksQueueRetryConfig(
                    max_attempts=q.max_attempts,
                    min_backoff=q.min_backoff,
                    max_backoff=q.max_backoff,
                    max_doublings=q.max_doublings,
                ),
                # Sampled task logs are what the queue-drain SLO (failed attempts) is read from.
                stackdriver_logging_config=CloudTasksQueueStackdriverLoggingConfig(
                    sampling_ratio=1.0
                ),
                depends_on=self.apis,
            )
            for name, q in config.QUEUES.items()
        }

    # ---------------------------------------------------------------- service accounts
    def _sa(self, id_: str, account_id: str, display: str) -> ServiceAccount:
        return ServiceAccount(
            self, id_, account_id=account_id, display_name=display, depends_on=self.apis
        )

    def _service_accounts(self) -> None:
        self.tasks_invoker = self._sa("sa_tasks_invoker", "tasks-invoker", "Cloud Tasks OIDC")
        self.scheduler_invoker = self._sa(
            "sa_scheduler_invoker", "scheduler-invoker", "Cloud Scheduler OIDC"
        )
        # Builds run as their own SA instead of the default compute SA (which is Editor).
        self.builder = self._sa("sa_builder", "function-builder", "Function source builds")
        for role in ("roles/logging.logWriter", "roles/artifactregistry.writer"):
            ProjectIamMember(
                self,
                f"builder_{role.split('/')[1].replace('.', '_')}",
                project=self.project,
                role=role,
                member=self.builder.member,
            )
        StorageBucketIamMember(
            self,
            "builder_source_reader",
            bucket=self.source.name,
            role="roles/storage.objectViewer",
            member=self.builder.member,
        )

        self.function_sas: dict[str, ServiceAccount] = {}
        for name, spec in config.FUNCTIONS.items():
            sa = self._sa(f"sa_fn_{name}", f"fn-{name}", f"Runtime of function {name}")
            self.function_sas[name] = sa
            ProjectIamMember(
                self,
                f"fn_{name}_datastore_user",
                project=self.project,
                role="roles/datastore.user",
                member=sa.member,
            )
            if spec.statements_access:
                StorageBucketIamMember(
                    self,
                    f"fn_{name}_statements_admin",
                    bucket=self.statements.name,
                    role="roles/storage.objectAdmin",
                    member=sa.member,
                )
            for queue in spec.enqueues:
                CloudTasksQueueIamMember(
                    self,
                    f"fn_{name}_enqueue_{queue}",
                    name=self.queues[queue].name,
                    location=self.region,
                    role="roles/cloudtasks.enqueuer",
                    member=sa.member,
                )
            if spec.enqueues:
                # Creating a task that carries an OIDC token of tasks-invoker is "acting as" it.
                ServiceAccountIamMember(
                    self,
                    f"fn_{name}_acts_as_tasks_invoker",
                    service_account_id=self.tasks_invoker.name,
                    role="roles/iam.serviceAccountUser",
                    member=sa.member,
                )
            for sid in (*spec.secrets, *config.REDIS_SECRETS):
                self._secret_access(f"fn_{name}", sid, sa)

        self.realtime_sa = self._sa("sa_realtime", "realtime-runtime", "Realtime server")
        # Validates connect tokens against their stored hashes.
        ProjectIamMember(
            self,
            "realtime_datastore_user",
            project=self.project,
            role="roles/datastore.user",
            member=self.realtime_sa.member,
        )
        for sid in config.REDIS_SECRETS:
            self._secret_access("realtime", sid, self.realtime_sa)

    def _secret_access(self, who: str, sid: str, sa: ServiceAccount) -> None:
        SecretManagerSecretIamMember(
            self,
            f"{who}_secret_{sid.replace('-', '_')}",
            secret_id=self.secrets[sid].id,
            role="roles/secretmanager.secretAccessor",
            member=sa.member,
        )

    # ---------------------------------------------------------------- functions
    def _run_url(self, service: str) -> str:
        # Cloud Run's deterministic URL: known before the service exists, so a function can
        # target itself or another function with Cloud Tasks without a dependency cycle.
        return f"https://{service}-{self.project_number}.{self.region}.run.app"

    def _common_env(self) -> dict[str, str]:
        env = {
            "GOOGLE_CLOUD_PROJECT": self.project,
            "GCP_REGION": self.region,
            "VALORIZE_TASKS_LOCATION": self.region,
            "ENVIRONMENT": self.environment,
            "STATEMENTS_BUCKET": self.statements.name,
            "PUBLIC_BASE_URL": f"https://{self.domain}",
            # The load balancer appends "<client ip>, <lb ip>" to X-Forwarded-For.
            "VALORIZE_TRUSTED_PROXY_HOPS": "2",
        }
        # Where tasks are sent: the task targets' run.app URLs (internal ingress admits Cloud
        # Tasks there, and the OIDC audience is the same URL).
        for name, spec in config.FUNCTIONS.items():
            if spec.task_target:
                env[f"FUNCTION_URL_{name.upper()}"] = self._run_url(name)
        return env

    def _function_env(self, spec: config.Function) -> dict[str, str]:
        """What the registry entry implies: the queues it may enqueue on (and their paths),
        the invoker its tasks carry, who may call its internal paths and the audience."""
        invokers = {
            config.TASKS_INVOKER: self.tasks_invoker.email,
            config.SCHEDULER_INVOKER: self.scheduler_invoker.email,
        }
        env = {**config.runtime_env(spec, invokers), "FUNCTION_NAME": spec.name}
        for queue in spec.enqueues:
            env[f"TASKS_QUEUE_{queue.upper()}"] = self.queues[queue].id
        if spec.enqueues:
            env["TASKS_INVOKER_SA"] = self.tasks_invoker.email
        if spec.internal_paths:
            env[config.INTERNAL_AUDIENCES_ENV] = self._run_url(spec.name)
        return env

    def _functions(self) -> None:
        common_env = self._common_env()
        self.functions: dict[str, Cloudfunctions2Function] = {}
        for name, spec in config.FUNCTIONS.items():
            generation = Token.as_number(f'${{lookup(var.source_generations, "{name}", null)}}')
            self.functions[name] = Cloudfunctions2Function(
                self,
                f"fn_{name}",
                name=name,
                location=self.region,
                description=f"ValorizeAI {name}",
                build_config=Cloudfunctions2FunctionBuildConfig(
                    runtime=config.FUNCTION_RUNTIME,
                    entry_point=spec.entry_point,
                    service_account=self.builder.id,
                    source=Cloudfunctions2FunctionBuildConfigSource(
                        storage_source=Cloudfunctions2FunctionBuildConfigSourceStorageSource(
                            bucket=self.source.name,
                            object=config.SOURCE_OBJECT_TEMPLATE.format(name=name),
                            generation=generation,
                        )
                    ),
                ),
                service_config=Cloudfunctions2FunctionServiceConfig(
                    available_memory=spec.memory,
                    available_cpu=spec.cpu,
                    max_instance_request_concurrency=spec.concurrency,
                    min_instance_count=spec.min_instances,
                    max_instance_count=spec.max_instances,
                    timeout_seconds=spec.timeout_seconds,
                    service_account_email=self.function_sas[name].email,
                    # Public functions: only the load balancer (Cloud Armor in front) and
                    # the project's own Cloud Tasks / Scheduler; internal ones: only those.
                    ingress_settings=(
                        "ALLOW_INTERNAL_AND_GCLB" if spec.public else "ALLOW_INTERNAL_ONLY"
                    ),
                    vpc_connector=self.connector.id,
                    # Only Redis goes through the VPC; Google APIs stay on the fast path.
                    vpc_connector_egress_settings="PRIVATE_RANGES_ONLY",
                    all_traffic_on_latest_revision=True,
                    environment_variables={**common_env, **self._function_env(spec)},
                    secret_environment_variables=[
                        Cloudfunctions2FunctionServiceConfigSecretEnvironmentVariables(
                            key=str(config.SECRETS[sid].env_var),
                            project_id=self.project,
                            secret=self.secrets[sid].secret_id,
                            version=self._secret_version(sid),
                        )
                        for sid in (*spec.secrets, *config.REDIS_SECRETS)
                        if config.SECRETS[sid].env_var
                    ],
                    secret_volumes=[
                        Cloudfunctions2FunctionServiceConfigSecretVolumes(
                            mount_path=mount[0],
                            project_id=self.project,
                            secret=self.secrets[sid].secret_id,
                            versions=[
                                Cloudfunctions2FunctionServiceConfigSecretVolumesVersions(
                                    path=mount[1], version=self._secret_version(sid)
                                )
                            ],
                        )
                        for sid in (*spec.secrets, *config.REDIS_SECRETS)
                        if (mount := config.SECRETS[sid].mount)
                    ],
                ),
                depends_on=[*self.apis, self.firestore],
            )

    # ---------------------------------------------------------------- realtime server
    def _realtime(self) -> None:
        rt = config.REALTIME
        env = [
            CloudRunV2ServiceTemplateContainersEnv(name=k, value=v)
            for k, v in {
                "GOOGLE_CLOUD_PROJECT": self.project,
                "ENVIRONMENT": self.environment,
                **rt.extra_env,
            }.items()
        ]
        env.append(
            CloudRunV2ServiceTemplateContainersEnv(
                name=str(config.SECRETS["redis-url"].env_var),
                value_source=CloudRunV2ServiceTemplateContainersEnvValueSource(
                    secret_key_ref=CloudRunV2ServiceTemplateContainersEnvValueSourceSecretKeyRef(
                        secret=self.secrets["redis-url"].secret_id,
                        version=self._secret_version("redis-url"),
                    )
                ),
            )
        )
        ca_folder, ca_file = config.SECRETS["redis-ca"].mount or ("", "")
        self.realtime = CloudRunV2Service(
            self,
            "realtime",
            name="realtime",
            location=self.region,
            # Only through the load balancer (Cloud Armor, the session-affinity cookie).
            ingress="INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
            deletion_protection=self.is_prod,
            template=CloudRunV2ServiceTemplate(
                service_account=self.realtime_sa.email,
                # Socket.IO's polling handshake must reach the instance holding the session.
                session_affinity=True,
                # WebSockets live at most one request timeout; clients reconnect after it.
                timeout=rt.timeout,
                max_instance_request_concurrency=rt.concurrency,
                scaling=CloudRunV2ServiceTemplateScaling(
                    min_instance_count=rt.min_instances,
                    max_instance_count=rt.max_instances,
                ),
                vpc_access=CloudRunV2ServiceTemplateVpcAccess(
                    connector=self.connector.id, egress="PRIVATE_RANGES_ONLY"
                ),
                volumes=[
                    CloudRunV2ServiceTemplateVolumes(
                        name="redis-ca",
                        secret=CloudRunV2ServiceTemplateVolumesSecret(
                            secret=self.secrets["redis-ca"].secret_id,
                            items=[
                                CloudRunV2ServiceTemplateVolumesSecretItems(
                                    path=ca_file, version=self._secret_version("redis-ca")
                                )
                            ],
                        ),
                    )
                ],
                containers=[
                    CloudRunV2ServiceTemplateContainers(
                        image=self.realtime_image,
                        ports=CloudRunV2ServiceTemplateContainersPorts(container_port=rt.port),
                        resources=CloudRunV2ServiceTemplateContainersResources(
                            limits={"cpu": rt.cpu, "memory": rt.memory},
                            # Open sockets need CPU between requests (Redis subscriber,
                            # heartbeats), so no CPU throttling when idle.
                            cpu_idle=False,
                            startup_cpu_boost=True,
                        ),
                        env=env,
                        volume_mounts=[
                            CloudRunV2ServiceTemplateContainersVolumeMounts(
                                name="redis-ca", mount_path=ca_folder
                            )
                        ],
                    )
                ],
            ),
            depends_on=self.apis,
        )

    # ---------------------------------------------------------------- invoker IAM
    def _invoke(self, id_: str, service: str, member: str) -> None:
        CloudRunV2ServiceIamMember(
            self,
            id_,
            location=self.region,
            name=service,
            role="roles/run.invoker",
            member=member,
        )

    def _invokers(self) -> None:
        for name, spec in config.FUNCTIONS.items():
            service = self.functions[name].service_config.service
            if spec.public:
                # End-user auth is the bearer token checked in our code, not Cloud Run IAM;
                # ingress admits only the load balancer and the project's own services.
                self._invoke(f"fn_{name}_invoker_public", service, "allUsers")
            if spec.task_target:
                self._invoke(f"fn_{name}_invoker_tasks", service, self.tasks_invoker.member)
            if spec.scheduler_target:
                self._invoke(f"fn_{name}_invoker_scheduler", service, self.scheduler_invoker.member)
        self._invoke("realtime_invoker_public", self.realtime.name, "allUsers")

    # ---------------------------------------------------------------- Cloud Scheduler
    def _schedules(self) -> None:
        targets = [n for n, s in config.FUNCTIONS.items() if s.scheduler_target]
        assert len(targets) == 1, "exactly one function must own /api/automations/run"
        # The run.app URL Cloud Scheduler may reach under internal ingress, and the audience
        # the function verifies (the same deterministic URL the tasks use).
        automate_url = self._run_url(targets[0])
        for key, sched in config.SCHEDULES.items():
            body = json.dumps({"kind": sched.kind}).encode()
            CloudSchedulerJob(
                self,
                f"schedule_{key.replace('-', '_')}",
                name=f"automations-{key}",
                region=self.region,
                schedule=sched.cron,
                time_zone=config.SCHEDULE_TIME_ZONE,
                attempt_deadline="320s",
                retry_config=CloudSchedulerJobRetryConfig(
                    retry_count=3, min_backoff_duration="30s", max_backoff_duration="600s"
                ),
                http_target=CloudSchedulerJobHttpTarget(
                    uri=f"{automate_url}{config.AUTOMATIONS_RUN_PATH}",
                    http_method="POST",
                    headers={"Content-Type": "application/json"},
                    body=base64.b64encode(body).decode(),
                    oidc_token=CloudSchedulerJobHttpTargetOidcToken(
                        service_account_email=self.scheduler_invoker.email,
                        audience=automate_url,
                    ),
                ),
                depends_on=[*self.apis, self.functions[targets[0]]],
            )

    # ---------------------------------------------------------------- load balancer
    def _armor(self) -> str:
        """One policy on every backend, in every environment: the load balancer never
        forwards an internal path (Cloud Tasks / Scheduler targets of public functions; the
        function still verifies OIDC there), and each client IP is rate limited."""
        internal = "|".join(
            re.escape(p) + (".*" if p.endswith("/") else "") for p in config.internal_paths()
        )
        policy = ComputeSecurityPolicy(
            self,
            "armor",
            name="valorize-armor",
            rule=[
                ComputeSecurityPolicyRule(
                    priority=100,
                    action="deny(404)",
                    description="Internal paths (task and scheduler targets) are not routed",
                    match=ComputeSecurityPolicyRuleMatch(
                        expr=ComputeSecurityPolicyRuleMatchExpr(
                            expression=f"request.path.matches('^({internal})$')"
                        )
                    ),
                ),
                ComputeSecurityPolicyRule(
                    priority=1000,
                    action="throttle",
                    description="Per-IP rate limit",
                    match=ComputeSecurityPolicyRuleMatch(
                        versioned_expr="SRC_IPS_V1",
                        config=ComputeSecurityPolicyRuleMatchConfig(src_ip_ranges=["*"]),
                    ),
                    rate_limit_options=ComputeSecurityPolicyRuleRateLimitOptions(
                        conform_action="allow",
                        exceed_action="deny(429)",
                        enforce_on_key="IP",
                        rate_limit_threshold=(
                            ComputeSecurityPolicyRuleRateLimitOptionsRateLimitThreshold(
                                count=self.armor_rpm, interval_sec=60
                            )
                        ),
                    ),
                ),
                ComputeSecurityPolicyRule(
                    priority=2147483647,
                    action="allow",
                    description="Default allow",
                    match=ComputeSecurityPolicyRuleMatch(
                        versioned_expr="SRC_IPS_V1",
                        config=ComputeSecurityPolicyRuleMatchConfig(src_ip_ranges=["*"]),
                    ),
                ),
            ],
            depends_on=self.apis,
        )
        return policy.id

    def _backend(self, id_: str, neg: ComputeRegionNetworkEndpointGroup, armor: str) -> str:
        return ComputeBackendService(
            self,
            f"backend_{id_}",
            name=f"valorize-{id_}",
            load_balancing_scheme="EXTERNAL_MANAGED",
            protocol="HTTPS",
            backend=[ComputeBackendServiceBackend(group=neg.id)],
            security_policy=armor,
            log_config=ComputeBackendServiceLogConfig(enable=True, sample_rate=1.0),
        ).id

    def _load_balancer(self) -> None:
        armor = self._armor()
        self.backends: dict[str, str] = {}
        for name, spec in config.FUNCTIONS.items():
            if not spec.public:
                continue
            neg = ComputeRegionNetworkEndpointGroup(
                self,
                f"neg_{name}",
                name=f"valorize-{name}",
                region=self.region,
                network_endpoint_type="SERVERLESS",
                cloud_function=ComputeRegionNetworkEndpointGroupCloudFunction(
                    function=self.functions[name].name
                ),
                depends_on=self.apis,
            )
            self.backends[name] = self._backend(name, neg, armor)

        realtime_neg = ComputeRegionNetworkEndpointGroup(
            self,
            "neg_realtime",
            name="valorize-realtime",
            region=self.region,
            network_endpoint_type="SERVERLESS",
            cloud_run=ComputeRegionNetworkEndpointGroupCloudRun(service=self.realtime.name),
            depends_on=self.apis,
        )
        # Affinity comes from Cloud Run's own session-affinity cookie (set on the service);
        # backend services with serverless NEGs do not take a session_affinity of their own.
        self.backends["realtime"] = self._backend("realtime", realtime_neg, armor)

        path_rules = [
            ComputeUrlMapPathMatcherPathRule(
                paths=[p for r in config.routes_of(name) for p in (f"/api/{r}", f"/api/{r}/*")],
                service=self.backends[name],
            )
            for name, spec in config.FUNCTIONS.items()
            if spec.public
        ]
        path_rules.append(
            ComputeUrlMapPathMatcherPathRule(
                paths=["/socket.io", "/socket.io/*"], service=self.backends["realtime"]
            )
        )
        default = self.backends[config.DEFAULT_FUNCTION]
        url_map = ComputeUrlMap(
            self,
            "url_map",
            name="valorize",
            default_service=default,
            host_rule=[ComputeUrlMapHostRule(hosts=[self.domain], path_matcher="api")],
            path_matcher=[
                ComputeUrlMapPathMatcher(name="api", default_service=default, path_rule=path_rules)
            ],
        )
        self.address = ComputeGlobalAddress(
            self, "lb_address", name="valorize-lb", depends_on=self.apis
        )
        cert = ComputeManagedSslCertificate(
            self,
            "cert",
            name="valorize-cert",
            managed=ComputeManagedSslCertificateManaged(domains=[self.domain]),
            depends_on=self.apis,
            # A cert in use cannot be deleted; a domain change must create the new one first.
            lifecycle={"create_before_destroy": True},
        )
        https_proxy = ComputeTargetHttpsProxy(
            self,
            "https_proxy",
            name="valorize-https",
            url_map=url_map.id,
            ssl_certificates=[cert.id],
        )
        ComputeGlobalForwardingRule(
            self,
            "https_rule",
            name="valorize-https",
            target=https_proxy.id,
            ip_address=self.address.address,
            port_range="443",
            ip_protocol="TCP",
            load_balancing_scheme="EXTERNAL_MANAGED",
        )
        redirect_map = ComputeUrlMap(
            self,
            "http_redirect",
            name="valorize-http-redirect",
            default_url_redirect=ComputeUrlMapDefaultUrlRedirect(
                https_redirect=True,
                strip_query=False,
                redirect_response_code="MOVED_PERMANENTLY_DEFAULT",
            ),
        )
        http_proxy = ComputeTargetHttpProxy(
            self, "http_proxy", name="valorize-http", url_map=redirect_map.id
        )
        ComputeGlobalForwardingRule(
            self,
            "http_rule",
            name="valorize-http",
            target=http_proxy.id,
            ip_address=self.address.address,
            port_range="80",
            ip_protocol="TCP",
            load_balancing_scheme="EXTERNAL_MANAGED",
        )

    # ---------------------------------------------------------------- outputs
    def _outputs(self) -> None:
        TerraformOutput(self, "lb_ip", value=self.address.address)
        TerraformOutput(
            self,
            "function_urls",
            value={name: fn.service_config.uri for name, fn in self.functions.items()},
        )
        TerraformOutput(self, "realtime_url", value=self.realtime.uri)
        TerraformOutput(self, "redis_host", value=self.redis.host)
