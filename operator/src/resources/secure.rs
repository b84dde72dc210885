//! TLS and web authentication of a LoadTest (`spec.tls`, `spec.webAuth`): the Secrets the
//! operator makes, and what the master and worker pods get from them.
//!
//! TLS: the master serves `tls.crt`/`tls.key` on both ports (`--tls-cert`, `--tls-key`), the
//! workers trust `ca.crt` (`--tls-ca`), the kubelet probes over HTTPS, and the operator reads
//! the master through the pod proxy's `https:` scheme. Web auth: the master takes
//! `HATCHERY_WEB_AUTH=user:password`, composed by the kubelet from the Secret's two keys, so the
//! password is in no spec and no command line.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EnvVar, EnvVarSource, KeyToPath, Secret, SecretKeySelector, SecretVolumeSource, Volume,
    VolumeMount,
};

use super::Blueprint;

/// Where the TLS Secret's files are mounted, in both roles.
pub const TLS_DIR: &str = "/etc/hatchery/tls";
/// The keys of a `kubernetes.io/tls` Secret, and cert-manager's CA key.
pub const TLS_CERT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";
pub const TLS_CA: &str = "ca.crt";
/// The keys of a `kubernetes.io/basic-auth` Secret.
pub const USERNAME: &str = "username";
pub const PASSWORD: &str = "password";
/// The user of the operator's web-auth Secret.
pub const WEB_USER: &str = "hatchery";
const VOLUME: &str = "tls";

impl Blueprint<'_> {
    /// The Secret with the master's certificate, when the LoadTest has TLS.
    pub fn tls_secret_name(&self) -> Option<String> {
        let tls = self.lt.spec.tls.as_ref()?;
        Some(
            tls.secret_name
                .clone()
                .unwrap_or_else(|| format!("{}-tls", self.name)),
        )
    }

    /// The names the operator's certificate is for: the master's two Services, short and
    /// qualified (workers dial `<name>-master`), and localhost for a port-forward.
    pub fn tls_hosts(&self) -> Vec<String> {
        let ns = self.lt.metadata.namespace.as_deref().unwrap_or("default");
        let mut hosts = Vec::new();
        for service in [self.master_name(), self.ui_name()] {
            hosts.push(format!("{service}.{ns}.svc.cluster.local"));
            hosts.push(format!("{service}.{ns}.svc"));
            hosts.push(format!("{service}.{ns}"));
            hosts.push(service);
        }
        hosts.extend(["localhost".to_string(), "127.0.0.1".to_string()]);
        hosts
    }

    /// Whether the operator makes the TLS Secret (`tls: {}` without a `secretName`).
    pub fn makes_tls_secret(&self) -> bool {
        self.lt
            .spec
            .tls
            .as_ref()
            .is_some_and(|t| t.secret_name.is_none())
    }

    /// The TLS Secret the operator creates from `issued` (see [`Blueprint::tls_hosts`]);
    /// `None` without TLS or when the spec names its own Secret. Created once, never updated.
    pub fn tls_secret(&self, issued: &hatchery_core::certs::Issued) -> Option<Secret> {
        if !self.makes_tls_secret() {
            return None;
        }
        Some(Secret {
            metadata: self.meta(self.tls_secret_name()?, None),
            string_data: Some(BTreeMap::from([
                (TLS_CERT.to_string(), issued.cert.clone()),
                (TLS_KEY.to_string(), issued.key.clone()),
                (TLS_CA.to_string(), issued.ca.clone()),
            ])),
            type_: Some("kubernetes.io/tls".to_string()),
            ..Secret::default()
        })
    }

    /// The Secret with the web UI's user and password, when the LoadTest has web auth.
    pub fn web_auth_secret_name(&self) -> Option<String> {
        let auth = self.lt.spec.web_auth.as_ref()?;
        Some(
            auth.secret_name
                .clone()
                .unwrap_or_else(|| format!("{}-web-auth", self.name)),
        )
    }

    /// The web-auth Secret the operator creates with `password`; `None` without web auth or
    /// when the spec names its own Secret. Created once, never updated.
    pub fn web_auth_secret(&self, password: &str) -> Option<Secret> {
        let auth = self.lt.spec.web_auth.as_ref()?;
        if auth.secret_name.is_some() {
            return None;
        }
        Some(Secret {
            metadata: self.meta(self.web_auth_secret_name()?, None),
            string_data: Some(BTreeMap::from([
                (USERNAME.to_string(), WEB_USER.to_string()),
                (PASSWORD.to_string(), password.to_string()),
            ])),
            type_: Some("kubernetes.io/basic-auth".to_string()),
            ..Secret::default()
        })
    }

    /// The master's TLS flags.
    pub(super) fn master_tls_args(&self) -> Vec<String> {
        if self.lt.spec.tls.is_none() {
            return Vec::new();
        }
        vec![
            "--tls-cert".to_string(),
            format!("{TLS_DIR}/{TLS_CERT}"),
            "--tls-key".to_string(),
            format!("{TLS_DIR}/{TLS_KEY}"),
        ]
    }

    /// A worker's TLS flags.
    pub(super) fn worker_tls_args(&self) -> Vec<String> {
        if self.lt.spec.tls.is_none() {
            return Vec::new();
        }
        vec!["--tls-ca".to_string(), format!("{TLS_DIR}/{TLS_CA}")]
    }

    /// The TLS Secret as a volume (only `keys` of it) and its mount, when the LoadTest has TLS.
    pub(super) fn tls_volume(&self, keys: &[&str]) -> Option<(Volume, VolumeMount)> {
        let secret = self.tls_secret_name()?;
        let items = keys
            .iter()
            .map(|k| KeyToPath {
                key: (*k).to_string(),
                path: (*k).to_string(),
                mode: None,
            })
            .collect();
        let volume = Volume {
            name: VOLUME.to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret),
                items: Some(items),
                optional: Some(false),
                default_mode: None,
            }),
            ..Volume::default()
        };
        let mount = VolumeMount {
            name: VOLUME.to_string(),
            mount_path: TLS_DIR.to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        };
        Some((volume, mount))
    }

    /// The master's web-auth variables: the Secret's two keys, and `HATCHERY_WEB_AUTH` made of
    /// them by the kubelet's `$(VAR)` expansion.
    pub(super) fn web_auth_env(&self) -> Vec<EnvVar> {
        let Some(secret) = self.web_auth_secret_name() else {
            return Vec::new();
        };
        let from = |name: &str, key: &str| EnvVar {
            name: name.to_string(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.clone(),
                    key: key.to_string(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
        };
        vec![
            from("WEB_AUTH_USERNAME", USERNAME),
            from("WEB_AUTH_PASSWORD", PASSWORD),
            EnvVar {
                name: "HATCHERY_WEB_AUTH".to_string(),
                value: Some("$(WEB_AUTH_USERNAME):$(WEB_AUTH_PASSWORD)".to_string()),
                value_from: None,
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodSpec;

    use super::*;
    use crate::crd::{LoadTest, TlsSpec, WebAuthSpec};
    use crate::resources::Error;

    fn secured(tls: Option<&str>, auth: Option<&str>) -> LoadTest {
        let mut lt = LoadTest::test();
        lt.spec.tls = Some(TlsSpec {
            secret_name: tls.map(String::from),
        });
        lt.spec.web_auth = Some(WebAuthSpec {
            secret_name: auth.map(String::from),
        });
        lt
    }

    fn pods(lt: &LoadTest) -> (PodSpec, PodSpec) {
        let bp = Blueprint::new(lt).expect("valid");
        let pod = |t: Option<k8s_openapi::api::core::v1::PodTemplateSpec>| {
            t.and_then(|t| t.spec).expect("a pod")
        };
        (
            pod(bp.master_deployment().spec.map(|s| s.template)),
            pod(bp.workers_stateful_set().spec.map(|s| s.template)),
        )
    }

    fn tls_items(pod: &PodSpec) -> Vec<String> {
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == VOLUME)
            .expect("the tls volume");
        let secret = volume.secret.as_ref().expect("a secret volume");
        assert_eq!(secret.secret_name.as_deref(), Some("smoke-tls"));
        let mount = pod.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == VOLUME)
            .expect("mounted");
        assert_eq!(
            (mount.mount_path.as_str(), mount.read_only),
            (TLS_DIR, Some(true))
        );
        secret
            .items
            .iter()
            .flatten()
            .map(|i| i.key.clone())
            .collect()
    }

    #[test]
    fn with_tls_the_master_serves_the_certificate_and_the_workers_trust_only_the_ca() {
        let lt = secured(None, None);
        let (master, worker) = pods(&lt);
        let args = master.containers[0].args.clone().unwrap_or_default();
        let at = args
            .iter()
            .position(|a| a == "--tls-cert")
            .expect("--tls-cert");
        assert_eq!(args[at + 1], "/etc/hatchery/tls/tls.crt");
        assert!(args
            .windows(2)
            .any(|w| w == ["--tls-key", "/etc/hatchery/tls/tls.key"]));
        assert_eq!(tls_items(&master), ["tls.crt", "tls.key"]);
        let probe = master.containers[0].readiness_probe.clone().unwrap();
        assert_eq!(probe.http_get.unwrap().scheme.as_deref(), Some("HTTPS"));
        let args = worker.containers[0].args.clone().unwrap_or_default();
        assert!(args
            .windows(2)
            .any(|w| w == ["--tls-ca", "/etc/hatchery/tls/ca.crt"]));
        assert_eq!(
            tls_items(&worker),
            ["ca.crt"],
            "a worker never gets the key"
        );
    }

    #[test]
    fn without_tls_or_web_auth_nothing_changes() {
        let lt = LoadTest::test();
        let bp = Blueprint::new(&lt).expect("valid");
        assert!(bp.tls_secret_name().is_none() && bp.web_auth_secret_name().is_none());
        let (master, worker) = pods(&lt);
        let args = master.containers[0].args.clone().unwrap_or_default();
        assert!(!args.iter().any(|a| a.starts_with("--tls")));
        assert!(master.containers[0]
            .readiness_probe
            .clone()
            .and_then(|p| p.http_get)
            .is_some_and(|h| h.scheme.is_none()));
        assert!(!master.containers[0]
            .env
            .iter()
            .flatten()
            .any(|e| e.name == "HATCHERY_WEB_AUTH"));
        assert!(worker.volumes.is_none());
    }

    #[test]
    fn the_operators_tls_secret_names_the_master_services_and_holds_the_three_files() {
        let lt = secured(None, None);
        let bp = Blueprint::new(&lt).expect("valid");
        let hosts = bp.tls_hosts();
        for h in [
            "smoke-master",
            "smoke-master.default.svc",
            "smoke-ui",
            "localhost",
        ] {
            assert!(hosts.iter().any(|x| x == h), "{h} in {hosts:?}");
        }
        let issued = hatchery_core::certs::issue(&hosts).expect("issued");
        let secret = bp.tls_secret(&issued).expect("made by the operator");
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(secret.metadata.name.as_deref(), Some("smoke-tls"));
        let data = secret.string_data.expect("data");
        assert_eq!(
            data.keys().collect::<Vec<_>>(),
            ["ca.crt", "tls.crt", "tls.key"]
        );
        assert!(secret.metadata.owner_references.is_some());
    }

    #[test]
    fn named_secrets_are_used_and_none_is_made() {
        let lt = secured(Some("my-cert"), Some("ui-login"));
        let bp = Blueprint::new(&lt).expect("valid");
        assert!(!bp.makes_tls_secret());
        let issued = hatchery_core::certs::issue(&["x".to_string()]).expect("issued");
        assert!(bp.tls_secret(&issued).is_none());
        assert!(bp.web_auth_secret("pw").is_none());
        assert_eq!(bp.tls_secret_name().as_deref(), Some("my-cert"));
        let (master, _) = pods(&lt);
        let refs: Vec<String> = master.containers[0]
            .env
            .iter()
            .flatten()
            .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
            .map(|r| format!("{}/{}", r.name, r.key))
            .collect();
        assert!(refs.contains(&"ui-login/username".to_string()), "{refs:?}");
        assert!(refs.contains(&"ui-login/password".to_string()), "{refs:?}");
    }

    #[test]
    fn with_web_auth_the_kubelet_composes_the_flag_from_the_secret() {
        let lt = secured(None, None);
        let bp = Blueprint::new(&lt).expect("valid");
        let secret = bp.web_auth_secret("s3cret").expect("made by the operator");
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/basic-auth"));
        let data = secret.string_data.expect("data");
        assert_eq!(data.get("username").map(String::as_str), Some(WEB_USER));
        assert_eq!(data.get("password").map(String::as_str), Some("s3cret"));
        let (master, worker) = pods(&lt);
        let env = master.containers[0].env.clone().unwrap_or_default();
        let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
        // $(VAR) expands only variables defined before it.
        let at = |n: &str| names.iter().position(|x| *x == n).expect(n);
        assert!(at("WEB_AUTH_USERNAME") < at("HATCHERY_WEB_AUTH"));
        assert!(at("WEB_AUTH_PASSWORD") < at("HATCHERY_WEB_AUTH"));
        assert_eq!(
            env[at("HATCHERY_WEB_AUTH")].value.as_deref(),
            Some("$(WEB_AUTH_USERNAME):$(WEB_AUTH_PASSWORD)")
        );
        let worker_env = worker.containers[0].env.clone().unwrap_or_default();
        assert!(!worker_env
            .iter()
            .any(|e| e.name.starts_with("WEB_AUTH") || e.name == "HATCHERY_WEB_AUTH"));
    }

    #[test]
    fn a_secret_name_that_cannot_be_one_is_refused() {
        for (tls, auth, field) in [
            (Some("My_Cert"), None, "spec.tls.secretName"),
            (None, Some(""), "spec.webAuth.secretName"),
            (None, Some("-x"), "spec.webAuth.secretName"),
        ] {
            let e = Blueprint::new(&secured(tls, auth)).expect_err("refused");
            assert!(matches!(e, Error::InvalidSpec { .. }), "{e}");
            assert!(e.to_string().starts_with(field), "{e}");
        }
    }
}
