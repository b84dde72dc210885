//! The `LoadTest` custom resource (`hatchery.io/v1alpha1`, short name `lt`).
//!
//! The Rust types are the source of truth: `crdgen` prints [`crd_yaml`] into
//! `deploy/crd.yaml`, and a test fails when the two drift apart. Every field maps to one
//! `hatchery` flag or one pod setting; nothing is a command string except `extraArgs`.
//!
//! The schema must be accepted by a Kubernetes 1.20 API server: no CEL rules, every `$ref`
//! inlined (kube's schema settings do that), and all checks that a schema cannot express on
//! 1.20 (durations, the plan itself) live in [`crate::resources::Blueprint::new`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvFromSource, EnvVar, LocalObjectReference, PodSecurityContext,
    ResourceRequirements, SecurityContext, Toleration, TopologySpreadConstraint, Volume,
    VolumeMount,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A distributed load test: one master, `workers` workers, one plan.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "hatchery.io",
    version = "v1alpha1",
    kind = "LoadTest",
    namespaced,
    shortname = "lt",
    category = "hatchery",
    status = "LoadTestStatus",
    derive = "PartialEq",
    // `kubectl scale lt/NAME --replicas N` and a HorizontalPodAutoscaler set `workers`.
    scale(
        spec_replicas_path = ".spec.workers",
        status_replicas_path = ".status.workersConnected",
        label_selector_path = ".status.workerSelector"
    ),
    doc = "A distributed Hatchery load test: a master, its workers and a plan.",
    // Raw JSON rather than printcolumn(...): clippy takes the repeated keys of the
    // structured form for duplicated attributes.
    printcolumn = r#"{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}"#,
    printcolumn = r#"{"name": "Workers", "type": "string", "jsonPath": ".status.workers", "description": "connected/expected workers"}"#,
    printcolumn = r#"{"name": "Users", "type": "integer", "jsonPath": ".status.users"}"#,
    printcolumn = r#"{"name": "RPS", "type": "number", "jsonPath": ".status.rps", "description": "requests per second (current while running, over the run once finished)"}"#,
    printcolumn = r#"{"name": "Fail%", "type": "number", "jsonPath": ".status.failPercent", "description": "failed requests, percent of all"}"#,
    printcolumn = r#"{"name": "P95", "type": "number", "jsonPath": ".status.p95", "description": "95th percentile response time, ms"}"#,
    printcolumn = r#"{"name": "Verdict", "type": "string", "jsonPath": ".status.verdict", "description": "passed, or what failed: the plan's thresholds when it has them, else any failed request"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct LoadTestSpec {
    /// The plan to run: exactly one of `inline` or `configMap`.
    pub plan: PlanSource,
    /// Base URL for relative paths, overriding the plan's `host` (`-H`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Peak concurrent users (`-u`). Omit for a plan with a load shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<u32>,
    /// Users started per second (`-r`), more than 0. Omit for a plan with a load shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawn_rate: Option<f64>,
    /// Stop after this long (`-t`): `30s`, `5m`, `1h30m`. Omitted: until stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_time: Option<String>,
    /// Worker pods (the StatefulSet's replicas), at least 1.
    #[schemars(range(min = 1))]
    pub workers: u32,
    /// Workers the master waits for before it starts (`--expect-workers`), 1 to `workers`.
    /// Default: `workers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub expect_workers: Option<u32>,
    /// Give up when the expected workers have not connected within this long
    /// (`--expect-workers-max-wait`); the test then fails. Omitted: 10m (never an endless wait).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_workers_max_wait: Option<String>,
    /// Start the test as soon as the workers are connected. `false`: start it from the web UI.
    #[serde(default = "default_headless")]
    pub headless: bool,
    /// Only run tasks with one of these tags (`--tags`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Never run tasks with one of these tags (`--exclude-tags`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_tags: Vec<String>,
    /// The `hatchery` image that master and workers run, e.g. `hatchery:0.1.0`.
    pub image: String,
    /// The containers' image pull policy.
    #[serde(default)]
    pub image_pull_policy: PullPolicy,
    /// Pod settings of both roles: a role's own setting replaces it (maps such as labels are
    /// merged key by key, the role's value winning; lists such as env, volumes and tolerations
    /// are the shared entries followed by the role's). `extraArgs` belongs in `spec.extraArgs`.
    #[serde(default, skip_serializing_if = "RoleSpec::is_empty")]
    pub pod: RoleSpec,
    /// Pod settings of the master.
    #[serde(default, skip_serializing_if = "RoleSpec::is_empty")]
    pub master: RoleSpec,
    /// Pod settings of each worker.
    #[serde(default, skip_serializing_if = "RoleSpec::is_empty")]
    pub worker: RoleSpec,
    /// Flags appended to both the master's and the workers' command line. Do not repeat a flag
    /// that a typed field sets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
    /// A Secret in this namespace whose key `token` holds the token workers present to the
    /// master (`HATCHERY_AUTH_TOKEN`). Omitted: the operator creates `<name>-token` with a random
    /// token, owned by the LoadTest, so only this test's workers can join its master.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token_secret: Option<String>,
    /// TLS between master and workers and on the master's web port: the master serves
    /// `--tls-cert`/`--tls-key`, workers trust `--tls-ca`, the operator reads the master over
    /// HTTPS. `{}`: the operator makes a CA and a certificate for `<name>-master` and
    /// `<name>-ui` in Secret `<name>-tls`, owned by the LoadTest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// HTTP basic authentication of the master's web UI and API (`--web-auth`); the operator
    /// reads the credentials from their Secret and uses them. `{}`: the operator makes Secret
    /// `<name>-web-auth` (type `kubernetes.io/basic-auth`: user `hatchery`, a random password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_auth: Option<WebAuthSpec>,
    /// Scale the master and workers to zero this long after the test finished; the LoadTest
    /// and its status stay. Omitted: keep them running until the LoadTest is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<u32>,
}

/// TLS for a LoadTest.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// A Secret in this namespace with `tls.crt`, `tls.key` and `ca.crt` (type
    /// `kubernetes.io/tls`, as cert-manager writes it) whose certificate names `<name>-master`.
    /// Omitted: the operator makes `<name>-tls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// Basic authentication of a LoadTest's web UI and API.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebAuthSpec {
    /// A Secret in this namespace with keys `username` and `password` (type
    /// `kubernetes.io/basic-auth`). Omitted: the operator makes `<name>-web-auth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

fn default_headless() -> bool {
    true
}

/// Where the plan comes from.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanSource {
    /// The plan's YAML. It is validated before anything is created, and cannot read files
    /// (feeder CSVs): use `configMap` for those.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    /// A ConfigMap in the LoadTest's namespace that holds the plan under `key`. It is mounted
    /// whole, so the plan's feeder files can sit beside it in the same ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<PlanConfigMap>,
}

/// A plan in a ConfigMap.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct PlanConfigMap {
    /// The ConfigMap's name.
    pub name: String,
    /// The key that holds the plan's YAML.
    #[serde(default = "default_plan_key")]
    pub key: String,
}

/// The key of the plan in the generated `<name>-plan` ConfigMap, and the default key of a
/// referenced one.
pub const PLAN_KEY: &str = "plan.yaml";

fn default_plan_key() -> String {
    PLAN_KEY.to_string()
}

/// Kubernetes' image pull policies. The default is `IfNotPresent` whatever the image's tag
/// (Kubernetes would pick `Always` for `:latest`).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// Settings of one role's pods (master or worker), or of both (`spec.pod`).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleSpec {
    /// The image of this role, instead of `spec.image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The `hatchery` container's resource requests and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// A pod `affinity`, as in a pod spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub affinity: Option<Lenient<Affinity>>,
    /// `topologySpreadConstraints`, as in a pod spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_list")]
    pub topology_spread_constraints: Option<Lenient<Vec<TopologySpreadConstraint>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Secrets to pull the image from a private registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// The pods' ServiceAccount (a workload identity). Omitted: the namespace's `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// The pod's `securityContext`. Omitted: the "restricted" Pod Security level's
    /// (`runAsNonRoot`, user and group 65532 as in the image, `seccompProfile: RuntimeDefault`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub pod_security_context: Option<Lenient<PodSecurityContext>>,
    /// The `hatchery` container's `securityContext`. Omitted: the "restricted" level's
    /// (`allowPrivilegeEscalation: false`, every capability dropped, `runAsNonRoot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub security_context: Option<Lenient<SecurityContext>>,
    /// Labels of the pods (the operator's own labels win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations of the pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Environment of the `hatchery` container (`HATCHERY_*` variables set flags).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Variables of the `hatchery` container from ConfigMaps and Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_from: Vec<EnvFromSource>,
    /// Volumes of the pods, as in a pod spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_list")]
    pub volumes: Option<Lenient<Vec<Volume>>>,
    /// Where the `hatchery` container mounts them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    /// Flags appended to this role's command line, after `spec.extraArgs`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<String>,
}

/// A part of a pod spec kept as the JSON it was written in and decoded when the LoadTest is
/// reconciled. Its full schema would make the CRD several times as large, so the API server
/// keeps it as it is (`x-kubernetes-preserve-unknown-fields`); decoding it with the LoadTest
/// would make one malformed LoadTest fail the operator's whole list and stall every other.
/// Decoded here, it fails its own LoadTest only, naming the field ([`Lenient::decode`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Lenient<T> {
    value: serde_json::Value,
    #[serde(skip)]
    kind: std::marker::PhantomData<T>,
}

impl<T: serde::de::DeserializeOwned + Serialize> Lenient<T> {
    pub fn new(value: &T) -> Lenient<T> {
        Lenient {
            value: serde_json::to_value(value).unwrap_or_default(),
            kind: std::marker::PhantomData,
        }
    }

    /// The value as `T`, or what is wrong with it.
    pub fn decode(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.value)
    }
}

/// A list of objects the API server keeps as they are.
fn any_list(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "array",
        "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
    })
}

/// An object the API server keeps as it is (`x-kubernetes-preserve-unknown-fields`).
fn any_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

impl RoleSpec {
    fn is_empty(&self) -> bool {
        self == &RoleSpec::default()
    }
}

/// Where a test is in its life.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// The children are being created, or the master does not answer yet.
    #[default]
    Pending,
    /// The master answers; fewer workers than expected are connected.
    WaitingForWorkers,
    /// Users are being spawned or run (with `headless: false`: the fleet is up and serves tests).
    Running,
    /// The master is stopping the users.
    Stopping,
    /// The run ended and passed.
    Succeeded,
    /// The run failed, could not start, or its pods are stuck.
    Failed,
}

impl Phase {
    /// Succeeded and Failed are final: nothing that happens later changes the status.
    pub fn is_finished(self) -> bool {
        matches!(self, Phase::Succeeded | Phase::Failed)
    }
}

/// What the operator observed, as `kubectl get lt` shows it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadTestStatus {
    #[serde(default)]
    pub phase: Phase,
    /// Connected and expected workers, `3/4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers_connected: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers_expected: Option<u32>,
    /// Running users; once the run ended, the last count seen while it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<u32>,
    /// Requests per second: current while running, the whole run's average once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rps: Option<f64>,
    /// Failed requests over all requests, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_ratio: Option<f64>,
    /// `failRatio` in percent, rounded to 0.01 (for the printer column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_percent: Option<f64>,
    /// 95th percentile response time of the whole run, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95: Option<f64>,
    /// When the run started (users began to spawn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the test reached Succeeded or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// `passed`, or `failed: <reason>`, once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// The label selector of the worker pods (the scale subresource's, for an autoscaler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_selector: Option<String>,
    /// The ConfigMap holding the finished test's statistics (`<name>-result`), once stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status was derived from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The CustomResourceDefinition, as `deploy/crd.yaml` holds it.
pub fn crd() -> CustomResourceDefinition {
    LoadTest::crd()
}

/// The CRD as YAML: what `crdgen` prints and `deploy/crd.yaml` contains.
pub fn crd_yaml() -> String {
    let yaml = serde_saphyr::to_string(&crd()).unwrap_or_else(|e| {
        // Serializing a value built from our own types cannot fail short of a bug.
        unreachable!("the CRD does not serialize to YAML: {e}")
    });
    format!("# Generated by `cargo run -p hatchery-operator --bin crdgen`; do not edit.\n{yaml}")
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use kube::api::ObjectMeta;

    /// A small valid plan against the demo target.
    pub const PLAN: &str =
        "host: http://demo-target:8080\nusers:\n  - name: Reader\n    tasks:\n      - get: /\n";

    impl LoadTest {
        /// A valid LoadTest as the API server would hand it over: `smoke` in `default`, with
        /// a uid, 2 workers, 10 users at 5/s for 1m, an inline plan.
        pub fn test() -> Self {
            let mut lt = LoadTest::new(
                "smoke",
                LoadTestSpec {
                    plan: PlanSource {
                        inline: Some(PLAN.to_string()),
                        config_map: None,
                    },
                    host: None,
                    users: Some(10),
                    spawn_rate: Some(5.0),
                    run_time: Some("1m".to_string()),
                    workers: 2,
                    expect_workers: None,
                    expect_workers_max_wait: None,
                    headless: true,
                    tags: vec![],
                    exclude_tags: vec![],
                    image: "hatchery:test".to_string(),
                    image_pull_policy: PullPolicy::IfNotPresent,
                    pod: RoleSpec::default(),
                    master: RoleSpec::default(),
                    worker: RoleSpec::default(),
                    extra_args: vec![],
                    auth_token_secret: None,
                    tls: None,
                    web_auth: None,
                    ttl_seconds_after_finished: None,
                },
            );
            lt.metadata = ObjectMeta {
                name: Some("smoke".to_string()),
                namespace: Some("default".to_string()),
                uid: Some("8d3b6c1e-0000-4000-8000-000000000001".to_string()),
                generation: Some(1),
                ..ObjectMeta::default()
            };
            lt
        }

        pub fn name(mut self, name: &str) -> Self {
            self.metadata.name = Some(name.to_string());
            self
        }

        pub fn workers(mut self, n: u32) -> Self {
            self.spec.workers = n;
            self
        }

        pub fn expect_workers(mut self, n: u32) -> Self {
            self.spec.expect_workers = Some(n);
            self
        }

        pub fn users(mut self, n: u32) -> Self {
            self.spec.users = Some(n);
            self
        }

        pub fn run_time(mut self, t: &str) -> Self {
            self.spec.run_time = Some(t.to_string());
            self
        }

        pub fn headless(mut self, on: bool) -> Self {
            self.spec.headless = on;
            self
        }

        pub fn inline_plan(mut self, yaml: &str) -> Self {
            self.spec.plan = PlanSource {
                inline: Some(yaml.to_string()),
                config_map: None,
            };
            self
        }

        pub fn plan_config_map(mut self, name: &str, key: &str) -> Self {
            self.spec.plan = PlanSource {
                inline: None,
                config_map: Some(PlanConfigMap {
                    name: name.to_string(),
                    key: key.to_string(),
                }),
            };
            self
        }

        pub fn without_uid(mut self) -> Self {
            self.metadata.uid = None;
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version() -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinitionVersion{
        crd().spec.versions.remove(0)
    }

    #[test]
    fn crd_names_group_kind_and_short_name() {
        let crd = crd();
        assert_eq!(crd.metadata.name.as_deref(), Some("loadtests.hatchery.io"));
        assert_eq!(crd.spec.group, "hatchery.io");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.kind, "LoadTest");
        assert_eq!(crd.spec.names.plural, "loadtests");
        assert_eq!(crd.spec.names.short_names, Some(vec!["lt".to_string()]));
        let v = version();
        assert_eq!(v.name, "v1alpha1");
        assert!(v.served && v.storage);
    }

    #[test]
    fn crd_enables_the_status_and_scale_subresources() {
        let sub = version().subresources.expect("subresources");
        assert!(sub.status.is_some());
        let scale = sub
            .scale
            .expect("scale: kubectl scale and an HPA set spec.workers");
        assert_eq!(scale.spec_replicas_path, ".spec.workers");
        assert_eq!(scale.status_replicas_path, ".status.workersConnected");
        assert_eq!(
            scale.label_selector_path.as_deref(),
            Some(".status.workerSelector")
        );
    }

    #[test]
    fn crd_prints_phase_workers_users_rps_fail_p95_verdict_and_age() {
        let cols = version()
            .additional_printer_columns
            .expect("printer columns");
        let cols: Vec<(&str, &str, &str)> = cols
            .iter()
            .map(|c| (c.name.as_str(), c.type_.as_str(), c.json_path.as_str()))
            .collect();
        assert_eq!(
            cols,
            [
                ("Phase", "string", ".status.phase"),
                ("Workers", "string", ".status.workers"),
                ("Users", "integer", ".status.users"),
                ("RPS", "number", ".status.rps"),
                ("Fail%", "number", ".status.failPercent"),
                ("P95", "number", ".status.p95"),
                ("Verdict", "string", ".status.verdict"),
                ("Age", "date", ".metadata.creationTimestamp"),
            ]
        );
    }

    #[test]
    fn spec_defaults_headless_to_true_and_leaves_expect_workers_unset() {
        let spec: LoadTestSpec = serde_json::from_value(serde_json::json!({
            "plan": {"inline": fixtures::PLAN},
            "workers": 3,
            "image": "hatchery:1",
        }))
        .unwrap();
        assert!(spec.headless);
        assert_eq!(spec.expect_workers, None);
        assert_eq!(spec.master, RoleSpec::default());
    }

    #[test]
    fn spec_fields_use_the_documented_camel_case_names() {
        let lt = LoadTest::test().expect_workers(1);
        let json = serde_json::to_value(&lt.spec).unwrap();
        for key in [
            "plan",
            "users",
            "spawnRate",
            "runTime",
            "workers",
            "expectWorkers",
            "headless",
            "image",
        ] {
            assert!(json.get(key).is_some(), "{key} missing in {json}");
        }
    }

    #[test]
    fn a_config_map_plan_reference_defaults_its_key_to_plan_yaml() {
        let plan: PlanSource =
            serde_json::from_value(serde_json::json!({"configMap": {"name": "plans"}})).unwrap();
        assert_eq!(plan.config_map.unwrap().key, PLAN_KEY);
    }

    #[test]
    fn status_phases_serialize_as_their_names() {
        let s = LoadTestStatus {
            phase: Phase::WaitingForWorkers,
            ..LoadTestStatus::default()
        };
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::json!({"phase": "WaitingForWorkers"})
        );
    }

    #[test]
    fn crd_yaml_starts_with_a_do_not_edit_header() {
        let yaml = crd_yaml();
        assert!(yaml.starts_with("# Generated by"));
        assert!(yaml.contains("kind: CustomResourceDefinition"));
    }
}
