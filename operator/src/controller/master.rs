//! Reading the master through the API server's pod proxy (it works whether the operator runs
//! in the cluster or not, and whether the pod is Ready or not): its live numbers, and a
//! finished test's result, stored in the `<name>-result` ConfigMap.

use hatchery_core::secret::{basic_authorization, WEB_AUTH_PROXY_HEADER};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::runtime::events::EventType;
use kube::Api;
use serde_json::Value;

use super::{event, ssa, Context, Error};
use crate::crd::LoadTest;
use crate::resources::secure::{PASSWORD, USERNAME};
use crate::resources::{Blueprint, WEB_PORT};
use crate::result;
use crate::status::{MasterReport, MasterState, ThresholdResult};

/// How the operator reaches a master's web port through the API server's pod proxy: over
/// HTTPS when the master serves TLS (the proxy's `https:` scheme; the API server does not
/// check the pod's certificate, as for any pod proxy), and with the web UI's credentials when
/// it asks for them, in [`WEB_AUTH_PROXY_HEADER`]: the API server authenticates the operator
/// by `Authorization` and removes it before it proxies.
#[derive(Debug, Clone, Default)]
pub(super) struct Access {
    https: bool,
    /// The web-auth Secret (`ns/name`, the cache's key) and the header's value.
    auth: Option<(String, String)>,
}

impl Access {
    /// Over HTTPS when `bp` has TLS, without credentials.
    pub(super) fn without_credentials(bp: &Blueprint<'_>) -> Access {
        Access {
            https: bp.tls_secret_name().is_some(),
            auth: None,
        }
    }
}

/// How to reach the master of `bp`: its web-auth Secret is read once and then kept in memory
/// (a look at a running test every 5 s must not read a Secret each time); see [`forget`].
pub(super) async fn access(ctx: &Context, ns: &str, bp: &Blueprint<'_>) -> Result<Access, Error> {
    let Some(secret) = bp.web_auth_secret_name() else {
        return Ok(Access::without_credentials(bp));
    };
    let key = format!("{ns}/{secret}");
    let known = ctx
        .credentials
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned();
    let value = match known {
        Some(v) => v,
        None => {
            let found: Secret = Api::namespaced(ctx.client.clone(), ns).get(&secret).await?;
            let v = credentials(&found).ok_or_else(|| {
                Error::WebAuth(format!(
                    "Secret {secret} has no {USERNAME} and {PASSWORD} keys"
                ))
            })?;
            ctx.credentials
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key.clone(), v.clone());
            v
        }
    };
    Ok(Access {
        auth: Some((key, value)),
        ..Access::without_credentials(bp)
    })
}

/// Drops the kept credentials after the master refused them (the Secret was replaced): the
/// next look reads the Secret again.
fn forget(ctx: &Context, access: &Access) {
    if let Some((key, _)) = &access.auth {
        ctx.credentials
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// The `Basic ...` value for a `kubernetes.io/basic-auth` Secret.
pub fn credentials(secret: &Secret) -> Option<String> {
    let data = secret.data.as_ref()?;
    let text = |k: &str| String::from_utf8(data.get(k)?.0.clone()).ok();
    let (user, password) = (text(USERNAME)?, text(PASSWORD)?);
    (!user.is_empty() && !user.contains(':'))
        .then(|| basic_authorization(&format!("{user}:{password}")))
}

/// A request to `path` of the master's web port.
fn request(access: &Access, ns: &str, pod: &str, path: &str) -> http::request::Builder {
    let scheme = if access.https { "https:" } else { "" };
    let proxy = format!("/api/v1/namespaces/{ns}/pods/{scheme}{pod}:{WEB_PORT}/proxy{path}");
    let mut req = http::Request::builder().uri(proxy);
    if let Some((_, value)) = &access.auth {
        req = req.header(WEB_AUTH_PROXY_HEADER, value);
    }
    req
}

/// Sends `req`; a 401 from the master drops the kept credentials.
async fn send(
    ctx: &Context,
    access: &Access,
    req: http::Request<Vec<u8>>,
) -> Result<String, kube::Error> {
    let answer = ctx.client.request_text(req).await;
    if let Err(kube::Error::Api(e)) = &answer {
        if e.code == 401 {
            forget(ctx, access);
        }
    }
    answer
}

/// GET `path` of the master's web port.
async fn get(
    ctx: &Context,
    access: &Access,
    ns: &str,
    pod: &str,
    path: &str,
) -> Result<String, kube::Error> {
    let req = request(access, ns, pod, path)
        .method(http::Method::GET)
        .body(Vec::new())
        .map_err(kube::Error::HttpError)?;
    send(ctx, access, req).await
}

/// The master's `/stats/requests`.
pub(super) async fn report(
    ctx: &Context,
    access: &Access,
    ns: &str,
    pod: &Pod,
    expected: u32,
) -> Option<MasterReport> {
    let name = pod.metadata.name.as_deref()?;
    let text = get(ctx, access, ns, name, "/stats/requests").await.ok()?;
    let doc: Value = serde_json::from_str(&text).ok()?;
    parse_report(&doc, expected)
}

/// Reads Locust's `/stats/requests` shape (plus `worker_count`).
pub fn parse_report(doc: &Value, expected: u32) -> Option<MasterReport> {
    let state: MasterState = doc["state"].as_str()?.parse().ok()?;
    let workers = doc["worker_count"].as_u64().unwrap_or(0) as u32;
    let aggregated = doc["stats"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["name"] == "Aggregated"));
    let p95_ms = aggregated
        .filter(|r| r["num_requests"].as_u64().unwrap_or(0) > 0)
        .and_then(|r| r["response_time_percentile_0.95"].as_f64());
    Some(MasterReport {
        ready: workers >= expected,
        state,
        workers,
        expected_workers: expected,
        users: doc["user_count"].as_u64().unwrap_or(0) as u32,
        current_rps: doc["current_rps"].as_f64().unwrap_or(0.0),
        total_rps: doc["total_rps"].as_f64().unwrap_or(0.0),
        fail_ratio: doc["fail_ratio"].as_f64().unwrap_or(0.0),
        p95_ms,
        thresholds: doc["thresholds"]
            .as_array()
            .map(|list| list.iter().filter_map(threshold).collect())
            .unwrap_or_default(),
    })
}

fn threshold(t: &Value) -> Option<ThresholdResult> {
    Some(ThresholdResult {
        description: t["description"].as_str()?.to_owned(),
        measured: t["measured"].as_str().map(str::to_owned),
        passed: t["passed"].as_bool()?,
    })
}

/// Retargets the running test: Locust's `POST /swarm` with the new user count and rate;
/// returns the master's message.
pub(super) async fn swarm(
    ctx: &Context,
    access: &Access,
    ns: &str,
    pod: &Pod,
    users: u32,
    rate: f64,
) -> Result<String, Error> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let form = format!("user_count={users}&spawn_rate={rate}");
    let req = request(access, ns, name, "/swarm")
        .method(http::Method::POST)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(form.into_bytes())
        .map_err(kube::Error::HttpError)?;
    let text = send(ctx, access, req).await?;
    let doc: Value = serde_json::from_str(&text).unwrap_or_default();
    let message = doc["message"].as_str().unwrap_or(&text).to_string();
    if doc["success"] == Value::Bool(true) {
        Ok(message)
    } else {
        Err(Error::Master(format!("/swarm refused: {message}")))
    }
}

/// Reads the finished test's statistics from its master and stores them in `<name>-result`;
/// returns the ConfigMap's name, or `None` (and a Warning event) when it could not be stored.
/// Parts the master did not serve are named in the ConfigMap's notes.
pub(super) async fn store_result(
    ctx: &Context,
    access: &Access,
    lt: &LoadTest,
    ns: &str,
    bp: &Blueprint<'_>,
    pod: &Pod,
) -> Option<String> {
    let name = pod.metadata.name.as_deref()?;
    let mut parts = Vec::with_capacity(result::PARTS.len());
    for (key, path) in result::PARTS {
        let read = get(ctx, access, ns, name, path)
            .await
            .map_err(|e| e.to_string());
        parts.push((key, read));
    }
    let cm = result::config_map(bp, result::pack(parts, result::MAX_BYTES));
    let cm_name = cm.metadata.name.clone();
    match ssa::<ConfigMap>(ctx, ns, &cm).await {
        Ok(()) => cm_name,
        Err(e) => {
            let note = format!("the result could not be stored in a ConfigMap: {e}");
            event(ctx, lt, EventType::Warning, "ResultNotStored", note).await;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_masters_stats_become_a_report() {
        let doc = json!({
            "state": "running", "worker_count": 3, "user_count": 12,
            "current_rps": 40.5, "total_rps": 38.0, "fail_ratio": 0.01,
            "stats": [
                {"name": "/a", "num_requests": 10, "response_time_percentile_0.95": 9.0},
                {"name": "Aggregated", "num_requests": 10, "response_time_percentile_0.95": 12.5}
            ]
        });
        let r = parse_report(&doc, 4).unwrap();
        assert_eq!(r.state, MasterState::Running);
        assert!(!r.ready, "3 of 4 workers");
        assert_eq!((r.workers, r.users), (3, 12));
        assert_eq!(r.p95_ms, Some(12.5));
        assert!(parse_report(&json!({"state": "weird"}), 1).is_none());
    }

    #[test]
    fn the_masters_threshold_results_are_read() {
        let doc = json!({"state": "stopped", "worker_count": 1, "thresholds": [
            {"metric": "p95", "name": null, "limit": {"min": null, "max": 1.0}, "value": 3.2,
             "measured": "3.20 ms", "passed": false, "description": "p95 <= 1 ms"},
            {"metric": "rps", "name": "/a", "limit": {"min": 1.0, "max": null}, "value": null,
             "measured": null, "passed": false, "description": "rps of /a >= 1/s (no request named /a ran)"},
            {"passed": true}
        ]});
        let r = parse_report(&doc, 1).unwrap();
        assert_eq!(
            r.thresholds,
            vec![
                ThresholdResult {
                    description: "p95 <= 1 ms".into(),
                    measured: Some("3.20 ms".into()),
                    passed: false
                },
                ThresholdResult {
                    description: "rps of /a >= 1/s (no request named /a ran)".into(),
                    measured: None,
                    passed: false
                },
            ],
            "an entry without a description is skipped"
        );
        assert!(parse_report(&json!({"state": "ready"}), 1)
            .unwrap()
            .thresholds
            .is_empty());
    }

    #[test]
    fn a_basic_auth_secret_becomes_the_header_the_master_takes() {
        use k8s_openapi::ByteString;
        let secret = |user: &str, password: &str| Secret {
            data: Some(std::collections::BTreeMap::from([
                ("username".to_string(), ByteString(user.as_bytes().to_vec())),
                (
                    "password".to_string(),
                    ByteString(password.as_bytes().to_vec()),
                ),
            ])),
            ..Secret::default()
        };
        assert_eq!(
            credentials(&secret("Aladdin", "open sesame")).as_deref(),
            Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
        );
        // A password may hold a colon; a user may not (RFC 7617), nor be empty.
        assert!(credentials(&secret("u", "a:b")).is_some());
        assert!(credentials(&secret("a:b", "p")).is_none());
        assert!(credentials(&secret("", "p")).is_none());
        assert!(credentials(&Secret::default()).is_none());
    }

    #[test]
    fn no_request_yet_means_no_p95() {
        let doc = json!({"state": "ready", "worker_count": 1, "stats": [{"name": "Aggregated", "num_requests": 0, "response_time_percentile_0.95": 0.0}]});
        assert_eq!(parse_report(&doc, 1).unwrap().p95_ms, None);
    }
}
