//! The pod settings of one role: the spec's shared `pod` settings and the role's own, merged,
//! with the parts kept as written ([`Lenient`]) decoded, and the "restricted" Pod Security
//! level's settings where the spec sets none.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, EnvFromSource, EnvVar, LocalObjectReference, PodSecurityContext,
    ResourceRequirements, SeccompProfile, SecurityContext, Toleration, TopologySpreadConstraint,
    Volume, VolumeMount,
};

use super::{invalid, Error, Role};
use crate::crd::{Lenient, RoleSpec};

/// The user and group the image runs as (deploy/Dockerfile: `USER 65532:65532`).
const IMAGE_USER: i64 = 65532;

/// One role's pod settings, checked and merged.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct PodSettings {
    pub image: Option<String>,
    pub resources: Option<ResourceRequirements>,
    pub node_selector: BTreeMap<String, String>,
    pub tolerations: Vec<Toleration>,
    pub affinity: Option<Affinity>,
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    pub priority_class_name: Option<String>,
    pub image_pull_secrets: Vec<LocalObjectReference>,
    pub service_account_name: Option<String>,
    pub pod_security_context: PodSecurityContext,
    pub security_context: SecurityContext,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub env: Vec<EnvVar>,
    pub env_from: Vec<EnvFromSource>,
    pub volumes: Vec<Volume>,
    pub volume_mounts: Vec<VolumeMount>,
}

/// The settings of `role` from the spec's shared `pod` and the role's own (`own`): a role's
/// setting replaces the shared one, maps merge key by key (the role winning), lists are the
/// shared entries then the role's. A part that does not decode fails with its field's name.
pub(super) fn settings(
    shared: &RoleSpec,
    own: &RoleSpec,
    role: Role,
) -> Result<PodSettings, Error> {
    let field = |name: &str| format!("{}.{name}", role.as_str());
    let pick = |name: &str| (format!("pod.{name}"), field(name));
    let (affinity, topology, pod_security, security, volumes) = (
        pick("affinity"),
        pick("topologySpreadConstraints"),
        pick("podSecurityContext"),
        pick("securityContext"),
        pick("volumes"),
    );
    Ok(PodSettings {
        image: own.image.clone().or_else(|| shared.image.clone()),
        resources: own.resources.clone().or_else(|| shared.resources.clone()),
        node_selector: merged(&shared.node_selector, &own.node_selector),
        tolerations: concat(&shared.tolerations, &own.tolerations),
        affinity: either(&affinity, &shared.affinity, &own.affinity)?,
        topology_spread_constraints: both(
            &topology,
            &shared.topology_spread_constraints,
            &own.topology_spread_constraints,
        )?,
        priority_class_name: own
            .priority_class_name
            .clone()
            .or_else(|| shared.priority_class_name.clone()),
        image_pull_secrets: concat(&shared.image_pull_secrets, &own.image_pull_secrets),
        service_account_name: own
            .service_account_name
            .clone()
            .or_else(|| shared.service_account_name.clone()),
        pod_security_context: either(
            &pod_security,
            &shared.pod_security_context,
            &own.pod_security_context,
        )?
        .unwrap_or_else(restricted_pod),
        security_context: either(&security, &shared.security_context, &own.security_context)?
            .unwrap_or_else(restricted_container),
        labels: merged(&shared.labels, &own.labels),
        annotations: merged(&shared.annotations, &own.annotations),
        env: concat(&shared.env, &own.env),
        env_from: concat(&shared.env_from, &own.env_from),
        volumes: both(&volumes, &shared.volumes, &own.volumes)?,
        volume_mounts: concat(&shared.volume_mounts, &own.volume_mounts),
    })
}

fn merged(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = a.clone();
    out.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
    out
}

fn concat<T: Clone>(a: &[T], b: &[T]) -> Vec<T> {
    [a, b].concat()
}

/// The role's part if it has one, else the shared one; `fields` are their names for errors.
fn either<T>(
    fields: &(String, String),
    shared: &Option<Lenient<T>>,
    own: &Option<Lenient<T>>,
) -> Result<Option<T>, Error>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let shared = decode(&fields.0, shared.as_ref())?;
    Ok(decode(&fields.1, own.as_ref())?.or(shared))
}

/// The shared list's entries, then the role's.
fn both<T>(
    fields: &(String, String),
    shared: &Option<Lenient<Vec<T>>>,
    own: &Option<Lenient<Vec<T>>>,
) -> Result<Vec<T>, Error>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let mut out = decode(&fields.0, shared.as_ref())?.unwrap_or_default();
    out.extend(decode(&fields.1, own.as_ref())?.unwrap_or_default());
    Ok(out)
}

/// Decodes a part kept as written, naming the field (`worker.affinity`) when it does not fit.
fn decode<T>(field: &str, part: Option<&Lenient<T>>) -> Result<Option<T>, Error>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    part.map(|p| p.decode().map_err(|e| invalid(field, e.to_string())))
        .transpose()
}

/// The pod `securityContext` of the "restricted" Pod Security level, as the image runs.
fn restricted_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(IMAGE_USER),
        run_as_group: Some(IMAGE_USER),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            localhost_profile: None,
        }),
        ..PodSecurityContext::default()
    }
}

/// The container `securityContext` of the "restricted" Pod Security level.
fn restricted_container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            add: None,
        }),
        run_as_non_root: Some(true),
        ..SecurityContext::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::LoadTest;
    use crate::resources::Blueprint;

    fn spec_from(json: serde_json::Value) -> RoleSpec {
        serde_json::from_value(json).expect("a role spec")
    }

    #[test]
    fn a_roles_setting_replaces_the_shared_one_maps_merge_and_lists_add_up() {
        let shared = spec_from(serde_json::json!({
            "image": "shared:1", "serviceAccountName": "loadtests",
            "labels": {"team": "a", "tier": "x"}, "env": [{"name": "A", "value": "1"}],
            "imagePullSecrets": [{"name": "regcred"}],
            "volumes": [{"name": "data", "emptyDir": {}}], "priorityClassName": "low",
        }));
        let own = spec_from(serde_json::json!({
            "image": "worker:2", "labels": {"tier": "y"}, "env": [{"name": "B", "value": "2"}],
            "volumes": [{"name": "more", "emptyDir": {}}],
        }));
        let s = settings(&shared, &own, Role::Worker).unwrap();
        assert_eq!(s.image.as_deref(), Some("worker:2"));
        assert_eq!(s.service_account_name.as_deref(), Some("loadtests"));
        assert_eq!(s.priority_class_name.as_deref(), Some("low"));
        let labels: Vec<_> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(labels, ["team=a", "tier=y"]);
        let env: Vec<_> = s.env.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(env, ["A", "B"]);
        let volumes: Vec<_> = s.volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(volumes, ["data", "more"]);
        assert_eq!(s.image_pull_secrets[0].name, "regcred");
    }

    #[test]
    fn without_security_settings_pods_meet_the_restricted_level() {
        let s = settings(&RoleSpec::default(), &RoleSpec::default(), Role::Master).unwrap();
        // The "restricted" Pod Security Standard's checks that concern these pods.
        let pod = &s.pod_security_context;
        assert_eq!(pod.run_as_non_root, Some(true));
        assert_eq!(pod.run_as_user, Some(65532), "the image's USER");
        let seccomp = pod.seccomp_profile.as_ref().unwrap();
        assert_eq!(seccomp.type_, "RuntimeDefault");
        let c = &s.security_context;
        assert_eq!(c.allow_privilege_escalation, Some(false));
        let caps = c.capabilities.as_ref().unwrap();
        assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
        assert_eq!(caps.add, None);
        assert_eq!(c.privileged, None);
    }

    #[test]
    fn a_spec_security_context_replaces_the_default() {
        let own = spec_from(serde_json::json!({
            "podSecurityContext": {"runAsUser": 1000, "fsGroup": 2000},
        }));
        let s = settings(&RoleSpec::default(), &own, Role::Worker).unwrap();
        assert_eq!(s.pod_security_context.run_as_user, Some(1000));
        assert_eq!(s.pod_security_context.run_as_non_root, None);
    }

    #[test]
    fn a_part_that_does_not_decode_fails_its_load_test_naming_the_field() {
        let mut lt = LoadTest::test();
        // What the issue measured: the schema keeps it, so only decoding can refuse it.
        lt.spec.worker = spec_from(serde_json::json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": "not-an-object"}}}));
        let e = Blueprint::new(&lt).expect_err("refused").to_string();
        assert!(
            e.starts_with("spec.worker.affinity: invalid type: string"),
            "{e}"
        );
        let mut lt = LoadTest::test();
        lt.spec.pod = spec_from(serde_json::json!({"volumes": [{"name": 3}]}));
        let e = Blueprint::new(&lt).expect_err("refused").to_string();
        assert!(e.starts_with("spec.pod.volumes: "), "{e}");
    }

    #[test]
    fn a_load_test_with_a_malformed_part_still_decodes_as_a_load_test() {
        // One such LoadTest in a list must not fail the list (the operator's watch).
        let json = serde_json::json!({
            "apiVersion": "hatchery.io/v1alpha1", "kind": "LoadTest",
            "metadata": {"name": "bad", "namespace": "default", "uid": "1"},
            "spec": {"plan": {"inline": "users: []"}, "workers": 1, "image": "h:1",
                     "worker": {"affinity": {"nodeAffinity": {
                         "requiredDuringSchedulingIgnoredDuringExecution": "not-an-object"}}}}
        });
        let lt: LoadTest = serde_json::from_value(json).expect("decodes");
        assert!(lt.spec.worker.affinity.unwrap().decode().is_err());
    }
}
