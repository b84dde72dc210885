//! Pure builders: a [`LoadTest`] in, the objects that run it out. No I/O, no clock.
//!
//! [`Blueprint::new`] checks everything the CRD schema cannot (durations, the inline plan,
//! names that must fit in Service and StatefulSet names) and returns an [`Error`] naming the
//! field; after that every builder is infallible. Each object carries the common labels and a
//! controller owner reference to the LoadTest, so deleting the LoadTest deletes them.
//!
//! | object | name | why |
//! |---|---|---|
//! | ConfigMap | `<name>-plan` | an inline plan, mounted at `/plan/plan.yaml` |
//! | Deployment | `<name>-master` | one master; its pod's readiness gate opens when the workers are in |
//! | Service | `<name>-master` | 5557 with `publishNotReadyAddresses`: workers reach the gated master |
//! | Service | `<name>-ui` | 8089, a normal Service: it routes once the gate is open |
//! | Service | `<name>-workers` | headless, governs the StatefulSet |
//! | StatefulSet | `<name>-workers` | the workers, all started at once (`Parallel`) |
//! | Secret | `<name>-token` | the worker token, random, unless `authTokenSecret` names one |
//! | Secret | `<name>-tls` | with `tls: {}`: a CA and the master's certificate ([`secure`]) |
//! | Secret | `<name>-web-auth` | with `webAuth: {}`: the web UI's user and a random password |

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use hatchery_core::{duration, limits, Diagnostics, Plan};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, StatefulSet, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, PodReadinessGate, PodSpec, PodTemplateSpec, Probe, Secret, SecretKeySelector,
    Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;

use crate::crd::{LoadTest, PLAN_KEY};

mod pod;
pub mod secure;
use pod::PodSettings;

/// The gate timeout when the spec sets none: no LoadTest waits for its workers forever.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(600);

/// The pod condition the master's readiness gate waits for; the reconciler sets it to True
/// once [`crate::status::gate_open`] says so.
pub const GATE_CONDITION: &str = "hatchery.io/workers-connected";
/// Label naming the LoadTest on every child and pod.
pub const LABEL_LOADTEST: &str = "hatchery.io/loadtest";
/// Label naming the pod's role: `master` or `worker`.
pub const LABEL_ROLE: &str = "hatchery.io/role";
/// The master's gRPC port for workers (`--master-bind-port`).
pub const MASTER_PORT: i32 = 5557;
/// The master's web UI and HTTP API (`--web-port`).
pub const WEB_PORT: i32 = 8089;
/// The key of the worker token in its Secret.
pub const TOKEN_KEY: &str = "token";

/// The operator: field manager of every server-side apply, and `managed-by` of its objects.
pub const MANAGER: &str = "hatchery-operator";
const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const CONTAINER: &str = "hatchery";
const PLAN_DIR: &str = "/plan";
const GRPC_PORT_NAME: &str = "grpc";
const WEB_PORT_NAME: &str = "http";
/// The master ends its run and writes its reports in well under this.
const GRACE_SECONDS: i64 = 10;
/// `<name>-workers` must leave room for the `-<hash>` of the StatefulSet's
/// `controller-revision-hash` label (63 characters at most): 44 + 8 + 11 = 63.
const MAX_NAME_LEN: usize = 44;

/// A LoadTest that cannot be turned into objects. The message names the field.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the LoadTest has no {0}")]
    MissingMetadata(&'static str),
    #[error("the LoadTest's name {name:?} cannot name its Services and StatefulSet: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("spec.plan sets neither inline nor configMap")]
    PlanMissing,
    #[error("spec.plan sets both inline and configMap: choose one")]
    PlanAmbiguous,
    #[error("spec.plan.inline is not a valid plan:\n{0}")]
    InvalidPlan(Diagnostics),
    #[error("spec.{field}: {message}")]
    InvalidSpec { field: String, message: String },
}

impl Error {
    /// A CamelCase reason for a status condition.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::MissingMetadata(_) => "MissingMetadata",
            Error::InvalidName { .. } => "InvalidName",
            Error::PlanMissing | Error::PlanAmbiguous => "InvalidPlanSource",
            Error::InvalidPlan(_) => "InvalidPlan",
            Error::InvalidSpec { .. } => "InvalidSpec",
        }
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
    Error::InvalidSpec {
        field: field.into(),
        message: message.into(),
    }
}

/// The role of a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Master,
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Worker => "worker",
        }
    }
}

/// Every object one LoadTest needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Children {
    /// Only for an inline plan.
    pub plan: Option<ConfigMap>,
    pub master: Deployment,
    pub master_service: Service,
    pub ui_service: Service,
    pub workers_service: Service,
    pub workers: StatefulSet,
}

/// Where the master reads the plan.
#[derive(Debug, Clone, PartialEq)]
struct PlanMount {
    config_map: String,
    key: String,
    inline: Option<String>,
}

/// A checked LoadTest, ready to be turned into objects.
#[derive(Debug, Clone)]
pub struct Blueprint<'a> {
    lt: &'a LoadTest,
    name: String,
    owner: OwnerReference,
    plan: PlanMount,
    run_time: Option<Duration>,
    max_wait: Option<Duration>,
    expect_workers: u32,
    master_pod: PodSettings,
    worker_pod: PodSettings,
    /// The master pod's IP, once it has one: the workers dial it besides the master's Service.
    master_address: Option<IpAddr>,
}

impl<'a> Blueprint<'a> {
    /// Checks `lt` and everything derived from it; the first problem found is returned.
    pub fn new(lt: &'a LoadTest) -> Result<Self, Error> {
        let name = lt
            .metadata
            .name
            .clone()
            .ok_or(Error::MissingMetadata("metadata.name"))?;
        check_name(&name)?;
        let mut owner = lt
            .controller_owner_ref(&())
            .ok_or(Error::MissingMetadata("metadata.uid"))?;
        owner.block_owner_deletion = Some(true);
        let spec = &lt.spec;
        if spec.workers == 0 {
            return Err(invalid("workers", "must be at least 1"));
        }
        let expect_workers = spec.expect_workers.unwrap_or(spec.workers);
        if expect_workers == 0 || expect_workers > spec.workers {
            return Err(invalid(
                "expectWorkers",
                format!(
                    "must be between 1 and workers ({}), not {expect_workers}",
                    spec.workers
                ),
            ));
        }
        check_spec(lt)?;
        let master_pod = pod::settings(&spec.pod, &spec.master, Role::Master)?;
        let worker_pod = pod::settings(&spec.pod, &spec.worker, Role::Worker)?;
        Ok(Blueprint {
            master_pod,
            worker_pod,
            plan: plan_mount(lt, &name)?,
            run_time: positive_duration("runTime", spec.run_time.as_deref())?,
            max_wait: positive_duration(
                "expectWorkersMaxWait",
                spec.expect_workers_max_wait.as_deref(),
            )?
            .or(Some(DEFAULT_MAX_WAIT)),
            lt,
            name,
            owner,
            expect_workers,
            master_address: None,
        })
    }

    /// The workers get `--master-address IP`, the master pod's IP: they reach the master as
    /// soon as it listens, where its Service's address is refused until the cluster routes it
    /// (up to 4 s later on the local cluster; see docs/operator.md "Start latency").
    pub fn with_master_address(mut self, ip: Option<IpAddr>) -> Self {
        self.master_address = ip;
        self
    }

    /// Whether the workers' StatefulSet can be made: once the master pod has its address.
    pub fn knows_master_address(&self) -> bool {
        self.master_address.is_some()
    }

    /// The LoadTest's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Workers the master waits for.
    pub fn expect_workers(&self) -> u32 {
        self.expect_workers
    }

    /// How long the workers may take to connect, if bounded: the gate timeout.
    pub fn expect_workers_max_wait(&self) -> Option<Duration> {
        self.max_wait
    }

    /// `<name>-master`: the master's Deployment and its workers' Service.
    pub fn master_name(&self) -> String {
        master_name(&self.name)
    }

    /// `<name>-workers`: the workers' StatefulSet and its headless Service.
    pub fn workers_name(&self) -> String {
        workers_name(&self.name)
    }

    /// `<name>-ui`: the Service in front of the web UI and API.
    pub fn ui_name(&self) -> String {
        format!("{}-ui", self.name)
    }

    /// The Secret holding the worker token: `authTokenSecret`, or `<name>-token`.
    pub fn token_secret_name(&self) -> String {
        match &self.lt.spec.auth_token_secret {
            Some(name) => name.clone(),
            None => format!("{}-token", self.name),
        }
    }

    /// The Secret the operator creates with `token` in it; `None` when the spec names its own.
    /// Created once and never updated: the token must not change under running workers.
    pub fn token_secret(&self, token: &str) -> Option<Secret> {
        if self.lt.spec.auth_token_secret.is_some() {
            return None;
        }
        Some(Secret {
            metadata: self.meta(self.token_secret_name(), None),
            string_data: Some(BTreeMap::from([(TOKEN_KEY.to_string(), token.to_string())])),
            type_: Some("Opaque".to_string()),
            ..Secret::default()
        })
    }

    /// `<name>-plan`: the ConfigMap of an inline plan.
    pub fn plan_name(&self) -> String {
        format!("{}-plan", self.name)
    }

    /// The labels that select the pods of `role` (Services, workload selectors, pod lists).
    pub fn selector(&self, role: Role) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_LOADTEST.to_string(), self.name.clone()),
            (LABEL_ROLE.to_string(), role.as_str().to_string()),
        ])
    }

    /// [`Blueprint::selector`] as a label selector query (`k=v,k=v`), for listing the pods.
    pub fn selector_query(&self, role: Role) -> String {
        let pairs: Vec<String> = self
            .selector(role)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        pairs.join(",")
    }

    /// Every object, in the order they are best applied.
    pub fn children(&self) -> Children {
        Children {
            plan: self.plan_config_map(),
            master: self.master_deployment(),
            master_service: self.master_service(),
            ui_service: self.ui_service(),
            workers_service: self.workers_service(),
            workers: self.workers_stateful_set(),
        }
    }

    /// The ConfigMap that holds an inline plan under `plan.yaml`; `None` for a referenced one.
    /// The metadata of the `<name>-result` ConfigMap ([`crate::result`]).
    pub fn result_meta(&self) -> ObjectMeta {
        self.meta(result_name(&self.name), None)
    }

    pub fn plan_config_map(&self) -> Option<ConfigMap> {
        let yaml = self.plan.inline.clone()?;
        Some(ConfigMap {
            metadata: self.meta(self.plan_name(), None),
            data: Some(BTreeMap::from([(PLAN_KEY.to_string(), yaml)])),
            ..ConfigMap::default()
        })
    }

    /// The master's command line after the binary name.
    pub fn master_args(&self) -> Vec<String> {
        let spec = &self.lt.spec;
        let mut args = vec![
            "-f".to_string(),
            format!("{PLAN_DIR}/{}", self.plan.key),
            "--master".to_string(),
        ];
        if spec.headless {
            // Not --headless: the master must keep serving its API and UI after the run, so
            // the Deployment never restarts it into a second run.
            args.push("--autostart".to_string());
        }
        let mut flag = |name: &str, value: Option<String>| {
            if let Some(v) = value {
                args.push(name.to_string());
                args.push(v);
            }
        };
        flag("-u", spec.users.map(|u| u.to_string()));
        flag("-r", spec.spawn_rate.map(|r| r.to_string()));
        flag("-t", self.run_time.map(duration::format));
        flag("--expect-workers", Some(self.expect_workers.to_string()));
        flag(
            "--expect-workers-max-wait",
            self.max_wait.map(duration::format),
        );
        flag("--web-port", Some(WEB_PORT.to_string()));
        flag("--master-bind-port", Some(MASTER_PORT.to_string()));
        flag("-H", spec.host.clone());
        // One `--tags=a,b` token: the flag takes several values and would swallow what follows.
        if !spec.tags.is_empty() {
            args.push(format!("--tags={}", spec.tags.join(",")));
        }
        if !spec.exclude_tags.is_empty() {
            args.push(format!("--exclude-tags={}", spec.exclude_tags.join(",")));
        }
        args.extend(self.master_tls_args());
        args.extend(spec.extra_args.iter().cloned());
        args.extend(spec.master.extra_args.iter().cloned());
        args
    }

    /// A worker's command line after the binary name.
    pub fn worker_args(&self) -> Vec<String> {
        let spec = &self.lt.spec;
        let mut args = vec![
            "--worker".to_string(),
            "--master-host".to_string(),
            self.master_name(),
            "--master-port".to_string(),
            MASTER_PORT.to_string(),
        ];
        if let Some(ip) = self.master_address {
            args.extend(["--master-address".to_string(), ip.to_string()]);
        }
        args.extend(self.worker_tls_args());
        args.extend(spec.extra_args.iter().cloned());
        args.extend(spec.worker.extra_args.iter().cloned());
        args
    }

    /// The master: one replica, recreated (never two masters), gated on the workers.
    pub fn master_deployment(&self) -> Deployment {
        let mut container = self.container(&self.master_pod, self.master_args());
        container.ports = Some(vec![
            container_port(GRPC_PORT_NAME, MASTER_PORT),
            container_port(WEB_PORT_NAME, WEB_PORT),
        ]);
        // Readiness only says the process serves; the gate holds the pod NotReady until the
        // workers are connected.
        let https = self.lt.spec.tls.is_some();
        container.readiness_probe = Some(healthz(2, 3, https));
        // Generous: a liveness kill restarts the master, and with it the whole run.
        container.liveness_probe = Some(Probe {
            initial_delay_seconds: Some(10),
            ..healthz(10, 6, https)
        });
        container
            .env
            .get_or_insert_default()
            .extend(self.web_auth_env());
        let tls = self.tls_volume(&[secure::TLS_CERT, secure::TLS_KEY]);
        let mut mounts = vec![VolumeMount {
            name: "plan".to_string(),
            mount_path: PLAN_DIR.to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        }];
        mounts.extend(tls.as_ref().map(|(_, m)| m.clone()));
        mounts.extend(self.master_pod.volume_mounts.iter().cloned());
        container.volume_mounts = Some(mounts);
        let mut pod = self.pod_spec(&self.master_pod, container);
        pod.readiness_gates = Some(vec![PodReadinessGate {
            condition_type: GATE_CONDITION.to_string(),
        }]);
        let mut volumes = vec![Volume {
            name: "plan".to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: self.plan.config_map.clone(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        }];
        volumes.extend(tls.map(|(v, _)| v));
        volumes.extend(self.master_pod.volumes.iter().cloned());
        pod.volumes = Some(volumes);
        Deployment {
            metadata: self.meta(self.master_name(), Some(Role::Master)),
            spec: Some(DeploymentSpec {
                replicas: Some(1),
                selector: self.label_selector(Role::Master),
                strategy: Some(DeploymentStrategy {
                    type_: Some("Recreate".to_string()),
                    rolling_update: None,
                }),
                template: self.pod_template(Role::Master, pod),
                ..DeploymentSpec::default()
            }),
            status: None,
        }
    }

    /// The workers, all started at once; they dial `<name>-master:5557`.
    pub fn workers_stateful_set(&self) -> StatefulSet {
        let mut container = self.container(&self.worker_pod, self.worker_args());
        let tls = self.tls_volume(&[secure::TLS_CA]);
        if let Some((_, mount)) = &tls {
            container
                .volume_mounts
                .get_or_insert_default()
                .insert(0, mount.clone());
        }
        let mut pod = self.pod_spec(&self.worker_pod, container);
        if let Some((volume, _)) = tls {
            pod.volumes.get_or_insert_default().insert(0, volume);
        }
        StatefulSet {
            metadata: self.meta(self.workers_name(), Some(Role::Worker)),
            spec: Some(StatefulSetSpec {
                replicas: Some(i32::try_from(self.lt.spec.workers).unwrap_or(i32::MAX)),
                service_name: Some(self.workers_name()),
                pod_management_policy: Some("Parallel".to_string()),
                selector: self.label_selector(Role::Worker),
                template: self.pod_template(Role::Worker, pod),
                ..StatefulSetSpec::default()
            }),
            status: None,
        }
    }

    /// The workers' way in: routes to the master before it is Ready, which the gate holds
    /// until the workers are in (a normal Service would deadlock here).
    pub fn master_service(&self) -> Service {
        Service {
            metadata: self.meta(self.master_name(), Some(Role::Master)),
            spec: Some(ServiceSpec {
                selector: Some(self.selector(Role::Master)),
                ports: Some(vec![service_port(GRPC_PORT_NAME, MASTER_PORT)]),
                publish_not_ready_addresses: Some(true),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    /// The web UI and HTTP API, once the master is Ready.
    pub fn ui_service(&self) -> Service {
        Service {
            metadata: self.meta(self.ui_name(), Some(Role::Master)),
            spec: Some(ServiceSpec {
                selector: Some(self.selector(Role::Master)),
                ports: Some(vec![service_port(WEB_PORT_NAME, WEB_PORT)]),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    /// The headless Service that governs the workers' StatefulSet.
    pub fn workers_service(&self) -> Service {
        Service {
            metadata: self.meta(self.workers_name(), Some(Role::Worker)),
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".to_string()),
                selector: Some(self.selector(Role::Worker)),
                ..ServiceSpec::default()
            }),
            status: None,
        }
    }

    fn labels(&self, role: Option<Role>) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            ("app.kubernetes.io/name".to_string(), "hatchery".to_string()),
            ("app.kubernetes.io/instance".to_string(), self.name.clone()),
            (LABEL_MANAGED_BY.to_string(), MANAGER.to_string()),
            (LABEL_LOADTEST.to_string(), self.name.clone()),
        ]);
        if let Some(role) = role {
            labels.insert(
                "app.kubernetes.io/component".to_string(),
                role.as_str().to_string(),
            );
            labels.insert(LABEL_ROLE.to_string(), role.as_str().to_string());
        }
        labels
    }

    fn meta(&self, name: String, role: Option<Role>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: self.lt.metadata.namespace.clone(),
            labels: Some(self.labels(role)),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }

    fn label_selector(&self, role: Role) -> LabelSelector {
        LabelSelector {
            match_labels: Some(self.selector(role)),
            match_expressions: None,
        }
    }

    fn pod_template(&self, role: Role, spec: PodSpec) -> PodTemplateSpec {
        let settings = match role {
            Role::Master => &self.master_pod,
            Role::Worker => &self.worker_pod,
        };
        // The spec's labels, then the operator's: its selectors must keep matching.
        let mut labels = settings.labels.clone();
        labels.extend(self.labels(Some(role)));
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels),
                annotations: non_empty(settings.annotations.clone()),
                ..ObjectMeta::default()
            }),
            spec: Some(spec),
        }
    }

    fn container(&self, settings: &PodSettings, args: Vec<String>) -> Container {
        let image = settings.image.as_ref().unwrap_or(&self.lt.spec.image);
        Container {
            name: CONTAINER.to_string(),
            image: Some(image.clone()),
            image_pull_policy: Some(self.lt.spec.image_pull_policy.as_str().to_string()),
            args: Some(args),
            env: Some(self.env(settings)),
            env_from: non_empty_list(&settings.env_from),
            resources: settings.resources.clone(),
            security_context: Some(settings.security_context.clone()),
            volume_mounts: non_empty_list(&settings.volume_mounts),
            ..Container::default()
        }
    }

    /// The role's own variables, then the worker token from its Secret.
    fn env(&self, settings: &PodSettings) -> Vec<EnvVar> {
        let mut env = settings.env.clone();
        env.push(EnvVar {
            name: "HATCHERY_AUTH_TOKEN".to_string(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: self.token_secret_name(),
                    key: TOKEN_KEY.to_string(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
        });
        env
    }

    fn pod_spec(&self, settings: &PodSettings, container: Container) -> PodSpec {
        PodSpec {
            containers: vec![container],
            node_selector: non_empty(settings.node_selector.clone()),
            tolerations: non_empty_list(&settings.tolerations),
            affinity: settings.affinity.clone(),
            topology_spread_constraints: non_empty_list(&settings.topology_spread_constraints),
            priority_class_name: settings.priority_class_name.clone(),
            image_pull_secrets: non_empty_list(&settings.image_pull_secrets),
            service_account_name: settings.service_account_name.clone(),
            security_context: Some(settings.pod_security_context.clone()),
            volumes: non_empty_list(&settings.volumes),
            // Service links would inject HATCHERY_MASTER_PORT=tcp://... for a Service named
            // `hatchery-master`, and clap reads HATCHERY_* variables as flags.
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(GRACE_SECONDS),
            ..PodSpec::default()
        }
    }
}

/// The label selector of every object the operator made (what its controller watches).
pub fn managed_selector() -> String {
    format!("{LABEL_MANAGED_BY}={MANAGER}")
}

/// The master's Deployment of the LoadTest named `loadtest` (also what a finished test, which
/// needs no valid spec any more, scales down).
pub fn master_name(loadtest: &str) -> String {
    format!("{loadtest}-master")
}

/// The ConfigMap that keeps the result of the LoadTest named `loadtest`.
pub fn result_name(loadtest: &str) -> String {
    format!("{loadtest}-result")
}

/// The workers' StatefulSet of the LoadTest named `loadtest`.
pub fn workers_name(loadtest: &str) -> String {
    format!("{loadtest}-workers")
}

fn non_empty_list<T: Clone>(list: &[T]) -> Option<Vec<T>> {
    (!list.is_empty()).then(|| list.to_vec())
}

fn non_empty(map: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then_some(map)
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        container_port: port,
        protocol: Some("TCP".to_string()),
        ..ContainerPort::default()
    }
}

fn service_port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port,
        target_port: Some(IntOrString::String(name.to_string())),
        // Server-side apply on 1.20 rejects a Service port without it.
        protocol: Some("TCP".to_string()),
        ..ServicePort::default()
    }
}

/// `/healthz` on the web port; over HTTPS when the master serves TLS (the kubelet does not
/// check the certificate of a probe).
fn healthz(period_seconds: i32, failure_threshold: i32, https: bool) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/healthz".to_string()),
            port: IntOrString::String(WEB_PORT_NAME.to_string()),
            scheme: https.then(|| "HTTPS".to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        timeout_seconds: Some(5),
        failure_threshold: Some(failure_threshold),
        ..Probe::default()
    }
}

/// Children are `<name>-workers` and friends: Service names must be DNS-1035 labels.
fn check_name(name: &str) -> Result<(), Error> {
    let bad = |reason: &str| Error::InvalidName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.len() > MAX_NAME_LEN {
        return Err(bad(&format!("it is longer than {MAX_NAME_LEN} characters")));
    }
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.ends_with('-');
    if !valid {
        return Err(bad(
            "use lower-case letters, digits and '-', starting with a letter",
        ));
    }
    Ok(())
}

/// A DNS-1123 subdomain: what a Secret may be called.
fn is_object_name(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    name.len() <= 253
        && edge(name.chars().next())
        && edge(name.chars().last())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

fn check_spec(lt: &LoadTest) -> Result<(), Error> {
    let spec = &lt.spec;
    if spec.image.trim().is_empty() {
        return Err(invalid("image", "must name an image"));
    }
    if let Some(rate) = spec.spawn_rate {
        if let Err(e) = limits::check_spawn_rate(rate) {
            return Err(invalid("spawnRate", e.to_string()));
        }
    }
    if let Some(users) = spec.users {
        // The master runs with the default --max-users.
        if let Err(e) = limits::check_users(u64::from(users), limits::DEFAULT_MAX_USERS) {
            return Err(invalid("users", e.to_string()));
        }
    }
    if let Some(host) = &spec.host {
        if let Err(problem) = hatchery_core::validate::host_url(host) {
            return Err(invalid("host", format!("{host:?} {problem}")));
        }
    }
    if !spec.pod.extra_args.is_empty() {
        return Err(invalid(
            "pod.extraArgs",
            "flags for both roles go in spec.extraArgs",
        ));
    }
    check_master_api_stays_readable(lt)?;
    check_workers_find_their_master(lt)?;
    let secrets = [
        ("authTokenSecret", spec.auth_token_secret.as_ref()),
        (
            "tls.secretName",
            spec.tls.as_ref().and_then(|t| t.secret_name.as_ref()),
        ),
        (
            "webAuth.secretName",
            spec.web_auth.as_ref().and_then(|a| a.secret_name.as_ref()),
        ),
    ];
    for (field, name) in secrets {
        if let Some(name) = name.filter(|n| !is_object_name(n)) {
            return Err(invalid(
                field,
                format!("{name:?} is not a Secret name (lower-case letters, digits, '-' and '.', at most 253)"),
            ));
        }
    }
    for (field, tags) in [("tags", &spec.tags), ("excludeTags", &spec.exclude_tags)] {
        if let Some(t) = tags.iter().find(|t| t.is_empty() || t.contains(',')) {
            return Err(invalid(
                field,
                format!("{t:?} is not a tag (empty or with a comma)"),
            ));
        }
    }
    Ok(())
}

/// Flags (and their variables) that would close the master's API to the operator, which reads
/// `/stats/requests` on 8089 at `/` through the API server's pod proxy, and what to use instead.
const CLOSES_THE_API: [(&str, &str, &str); 5] = [
    ("--web-auth", "HATCHERY_WEB_AUTH", "use spec.webAuth: the operator then knows the credentials"),
    ("--tls-cert", "HATCHERY_TLS_CERT", "use spec.tls: the operator then reads the master over HTTPS and the workers trust its CA"),
    ("--tls-key", "HATCHERY_TLS_KEY", "use spec.tls"),
    ("--tls-ca", "HATCHERY_TLS_CA", "use spec.tls"),
    ("--web-base-path", "HATCHERY_WEB_BASE_PATH", "the operator reads the master's API at / through the pod proxy, so it is not supported under the operator"),
];

/// Refuses a spec whose master would lock the operator out (it would wait for numbers that
/// never come, and fail on the gate timeout with a misleading reason).
fn check_master_api_stays_readable(lt: &LoadTest) -> Result<(), Error> {
    let spec = &lt.spec;
    let fields = [
        ("extraArgs", &spec.extra_args),
        ("master.extraArgs", &spec.master.extra_args),
    ];
    if let Some((field, (f, _, why))) = find_flag(&fields, |flag| {
        CLOSES_THE_API.iter().find(|(f, _, _)| *f == flag)
    }) {
        return Err(invalid(field, format!("{f}: {why}")));
    }
    for (field, env) in [("pod.env", &spec.pod.env), ("master.env", &spec.master.env)] {
        for var in env {
            if let Some((_, v, why)) = CLOSES_THE_API.iter().find(|(_, v, _)| *v == var.name) {
                return Err(invalid(field, format!("{v}: {why}")));
            }
        }
    }
    Ok(())
}

/// The flags with which the operator tells each worker where its master is.
const WORKER_MASTER_FLAGS: [&str; 3] = ["--master-host", "--master-port", "--master-address"];

/// Refuses extra arguments that would name another master for the workers (or name it twice,
/// which the worker refuses at its start, crash-looping).
fn check_workers_find_their_master(lt: &LoadTest) -> Result<(), Error> {
    let spec = &lt.spec;
    let fields = [
        ("extraArgs", &spec.extra_args),
        ("worker.extraArgs", &spec.worker.extra_args),
    ];
    match find_flag(&fields, |flag| {
        WORKER_MASTER_FLAGS.iter().find(|f| **f == flag)
    }) {
        Some((field, flag)) => Err(invalid(
            field,
            format!("{flag}: the operator sets it (the workers dial the LoadTest's own master)"),
        )),
        None => Ok(()),
    }
}

/// The first argument of `fields` (a flag, or `--flag=value`) that `pick` picks, with its field.
fn find_flag<'f, T>(
    fields: &[(&'static str, &Vec<String>)],
    pick: impl Fn(&str) -> Option<&'f T>,
) -> Option<(&'static str, &'f T)> {
    fields.iter().find_map(|(field, args)| {
        args.iter().find_map(|arg| {
            let flag = arg.split('=').next().unwrap_or(arg);
            pick(flag).map(|found| (*field, found))
        })
    })
}

fn positive_duration(field: &'static str, text: Option<&str>) -> Result<Option<Duration>, Error> {
    let Some(text) = text else { return Ok(None) };
    match duration::parse(text) {
        Ok(d) if d.is_zero() => Err(invalid(field, "must be more than 0")),
        Ok(d) => Ok(Some(d)),
        Err(message) => Err(invalid(field, message)),
    }
}

fn plan_mount(lt: &LoadTest, name: &str) -> Result<PlanMount, Error> {
    match (&lt.spec.plan.inline, &lt.spec.plan.config_map) {
        (None, None) => Err(Error::PlanMissing),
        (Some(_), Some(_)) => Err(Error::PlanAmbiguous),
        (Some(yaml), None) => {
            let origin = format!("LoadTest {name}");
            Plan::parse(yaml, &origin, &HashMap::<String, String>::new())
                .map_err(Error::InvalidPlan)?;
            Ok(PlanMount {
                config_map: format!("{name}-plan"),
                key: PLAN_KEY.to_string(),
                inline: Some(yaml.clone()),
            })
        }
        (None, Some(reference)) => {
            if reference.name.is_empty() {
                return Err(invalid("plan.configMap.name", "must name a ConfigMap"));
            }
            let key_ok = !reference.key.is_empty()
                && reference.key != "."
                && reference.key != ".."
                && reference
                    .key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
            if !key_ok {
                return Err(invalid(
                    "plan.configMap.key",
                    format!("{:?} is not a ConfigMap key", reference.key),
                ));
            }
            Ok(PlanMount {
                config_map: reference.name.clone(),
                key: reference.key.clone(),
                inline: None,
            })
        }
    }
}

#[cfg(test)]
mod tests;
