//! Reconcile scenarios against kube's tower-test mock API server, for branches a real cluster
//! cannot easily produce on demand: every request the reconciler makes is checked in order,
//! and nothing else may be asked. (The real-cluster path is tests/k8s/e2e.sh.)

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use http::{Method, Request, Response};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

use super::{reconcile, Context};
use crate::crd::{LoadTest, LoadTestStatus, Phase};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn mock() -> (Arc<Context>, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (
        Arc::new(Context::new(
            Client::new(service, "default"),
            Default::default(),
        )),
        handle,
    )
}

fn loadtest() -> LoadTest {
    LoadTest::test()
}

fn respond(send: tower_test::mock::SendResponse<Response<Body>>, code: u16, body: Value) {
    let bytes = serde_json::to_vec(&body).expect("json");
    send.send_response(
        Response::builder()
            .status(code)
            .body(Body::from(bytes))
            .expect("response"),
    );
}

/// The next request: its method, path and JSON body (null when empty).
async fn expect(
    handle: &mut Handle,
) -> (
    Method,
    String,
    Value,
    tower_test::mock::SendResponse<Response<Body>>,
) {
    let (req, send) = tokio::time::timeout(Duration::from_secs(1), handle.next_request())
        .await
        .expect("the reconciler made no further request within 1 s")
        .expect("the mock service is alive");
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let bytes = req.into_body().collect_bytes().await.expect("request body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (method, path, body, send)
}

/// Answers an event (the recorder's POST); its content is not part of the scenario.
async fn expect_event(handle: &mut Handle, reason: &str) {
    let (method, path, body, send) = expect(handle).await;
    assert_eq!(method, Method::POST, "{path}");
    assert!(path.ends_with("/events"), "{path}");
    assert_eq!(body["reason"], reason, "{body}");
    respond(send, 201, body);
}

/// Nothing was asked beyond the scenario (`Some(None)`: every client is gone, also fine).
fn assert_no_more(handle: &mut Handle) {
    if let Some(Some((req, _))) = handle.next_request().now_or_never() {
        panic!("an unexpected request: {} {}", req.method(), req.uri());
    }
}

const LT_PATH: &str = "/apis/hatchery.io/v1alpha1/namespaces/default/loadtests/smoke";

#[tokio::test]
async fn an_invalid_spec_fails_the_test_without_creating_anything() {
    let (ctx, mut handle) = mock();
    let mut lt = loadtest();
    lt.spec.run_time = Some("soon".into());
    let reconciling = tokio::spawn(reconcile(Arc::new(lt.clone()), ctx));
    let (method, path, body, send) = expect(&mut handle).await;
    assert_eq!(
        (method, path.as_str()),
        (Method::PATCH, format!("{LT_PATH}/status").as_str())
    );
    assert_eq!(body["status"]["phase"], "Failed", "{body}");
    let spec = body["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "SpecValid"))
        .cloned()
        .expect("a SpecValid condition");
    assert_eq!(spec["status"], "False");
    assert!(
        spec["message"]
            .as_str()
            .unwrap_or_default()
            .contains("soon"),
        "{spec}"
    );
    respond(send, 200, serde_json::to_value(&lt).unwrap());
    expect_event(&mut handle, "Failed").await;
    reconciling.await.expect("join").expect("reconcile");
    assert_no_more(&mut handle);
}

fn finished(lt: &mut LoadTest, completed_secs_ago: i64) {
    let done = k8s_openapi::jiff::Timestamp::now()
        - k8s_openapi::jiff::SignedDuration::from_secs(completed_secs_ago);
    lt.status = Some(LoadTestStatus {
        phase: Phase::Succeeded,
        start_time: Some(Time(done)),
        completion_time: Some(Time(done)),
        observed_generation: lt.metadata.generation,
        verdict: Some("passed".into()),
        ..LoadTestStatus::default()
    });
}

#[tokio::test]
async fn a_finished_test_is_scaled_to_zero_once_its_ttl_passed() {
    let (ctx, mut handle) = mock();
    let mut lt = loadtest();
    lt.spec.ttl_seconds_after_finished = Some(60);
    finished(&mut lt, 120);
    let reconciling = tokio::spawn(reconcile(Arc::new(lt), ctx));
    let deploy = "/apis/apps/v1/namespaces/default/deployments/smoke-master";
    let (method, path, _, send) = expect(&mut handle).await;
    assert_eq!((method, path.as_str()), (Method::GET, deploy));
    respond(
        send,
        200,
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "smoke-master"}, "spec": {"replicas": 1, "selector": {}, "template": {}}}),
    );
    for target in [
        deploy,
        "/apis/apps/v1/namespaces/default/statefulsets/smoke-workers",
    ] {
        let (method, path, body, send) = expect(&mut handle).await;
        assert_eq!((method, path.as_str()), (Method::PATCH, target));
        assert_eq!(body, json!({"spec": {"replicas": 0}}));
        respond(send, 200, json!({"metadata": {"name": "x"}}));
    }
    expect_event(&mut handle, "ScaledDown").await;
    reconciling.await.expect("join").expect("reconcile");
    assert_no_more(&mut handle);
}

#[tokio::test]
async fn a_finished_test_waits_for_its_ttl_without_touching_anything() {
    let (ctx, mut handle) = mock();
    let mut lt = loadtest();
    lt.spec.ttl_seconds_after_finished = Some(600);
    finished(&mut lt, 10);
    let action = reconcile(Arc::new(lt), ctx).await.expect("reconcile");
    assert_no_more(&mut handle);
    let wait = format!("{action:?}");
    assert!(
        wait.contains("requeue_after: Some(5"),
        "requeued at the TTL: {wait}"
    );
}

#[tokio::test]
async fn an_edit_after_the_end_is_refused_and_nothing_is_applied() {
    let (ctx, mut handle) = mock();
    let mut lt = loadtest();
    finished(&mut lt, 10);
    lt.metadata.generation = Some(2);
    let reconciling = tokio::spawn(reconcile(Arc::new(lt.clone()), ctx));
    expect_event(&mut handle, "SpecChangeIgnored").await;
    let (method, path, body, send) = expect(&mut handle).await;
    assert_eq!(
        (method, path.as_str()),
        (Method::PATCH, format!("{LT_PATH}/status").as_str())
    );
    assert_eq!(body["status"]["observedGeneration"], 2);
    assert_eq!(body["status"]["phase"], "Succeeded");
    respond(send, 200, serde_json::to_value(&lt).unwrap());
    reconciling.await.expect("join").expect("reconcile");
    assert_no_more(&mut handle);
}

#[tokio::test]
async fn the_finalizer_of_earlier_versions_is_removed_and_nothing_else_is_done() {
    let (ctx, mut handle) = mock();
    let mut lt = loadtest();
    lt.metadata.resource_version = Some("41".into());
    lt.metadata.finalizers = Some(vec!["other.io/keep".into(), "hatchery.io/cleanup".into()]);
    let reconciling = tokio::spawn(reconcile(Arc::new(lt.clone()), ctx));
    let (method, path, body, send) = expect(&mut handle).await;
    assert_eq!((method, path.as_str()), (Method::PATCH, LT_PATH));
    assert_eq!(
        body,
        json!({"metadata": {"finalizers": ["other.io/keep"], "resourceVersion": "41"}})
    );
    respond(send, 200, serde_json::to_value(&lt).unwrap());
    reconciling.await.expect("join").expect("reconcile");
    assert_no_more(&mut handle);
}

/// Runs one reconcile, answering every request it makes (an apply with what it sent, the
/// status patch with the LoadTest); returns "METHOD PATH" of each.
async fn reconcile_answering(lt: &LoadTest, ctx: Arc<Context>, handle: &mut Handle) -> Vec<String> {
    let seen = reconcile_answering_bodies(lt, ctx, handle).await;
    seen.into_iter().map(|(request, _)| request).collect()
}

/// [`reconcile_answering`], with the body of each request.
async fn reconcile_answering_bodies(
    lt: &LoadTest,
    ctx: Arc<Context>,
    handle: &mut Handle,
) -> Vec<(String, Value)> {
    let as_stored = serde_json::to_value(lt).unwrap();
    let mut reconciling = tokio::spawn(reconcile(Arc::new(lt.clone()), ctx));
    let mut seen = Vec::new();
    loop {
        tokio::select! {
            done = &mut reconciling => {
                done.expect("join").expect("reconcile");
                return seen;
            }
            Some((req, send)) = handle.next_request() => {
                let path = req.uri().path().to_string();
                let request = format!("{} {path}", req.method());
                let bytes = req.into_body().collect_bytes().await.expect("body");
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(json!({}));
                seen.push((request, body.clone()));
                let answer = if path.contains("/loadtests/") { as_stored.clone() } else { body };
                respond(send, 200, answer);
            }
        }
    }
}

#[tokio::test]
async fn a_starting_test_applies_its_children_once_not_at_every_look() {
    let (ctx, mut handle) = mock();
    let lt = loadtest();
    let seen = reconcile_answering(&lt, ctx.clone(), &mut handle).await;
    let applies = seen.iter().filter(|r| r.starts_with("PATCH /api")).count();
    assert!(
        seen.iter()
            .any(|r| r.starts_with("POST ") && r.ends_with("/secrets")),
        "{seen:?}"
    );
    assert!(applies >= 5, "children applied: {seen:?}");
    // The next look (the poll) finds the same children wanted: no apply, no Secret.
    let seen = reconcile_answering(&lt, ctx, &mut handle).await;
    assert!(
        seen.iter().all(|r| !r.ends_with("/secrets")
            && !r.contains("/apps/v1/")
            && !r.contains("/services/")),
        "{seen:?}"
    );
}

/// A web-auth Secret without `username` and `password` does not stop the reconcile: the
/// master is looked at without credentials and the status is still written.
#[tokio::test]
async fn a_web_auth_secret_without_credentials_does_not_stop_the_reconcile() {
    let (ctx, mut handle) = mock();
    let mut lt = loadtest();
    lt.spec.web_auth = Some(crate::crd::WebAuthSpec {
        secret_name: Some("ui-login".to_string()),
    });
    let seen = reconcile_answering(&lt, ctx, &mut handle).await;
    assert!(
        seen.iter()
            .any(|r| r == "GET /api/v1/namespaces/default/secrets/ui-login"),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|r| r.starts_with("PATCH ") && r.ends_with("/smoke/status")),
        "the status is written: {seen:?}"
    );
}

/// The workers' StatefulSet is made once the master pod has its IP, and its workers dial that
/// IP besides the master's Service (made with the master, they waited for the cluster to
/// route the Service: docs/operator.md "Start latency").
#[tokio::test]
async fn the_workers_are_made_once_the_master_pod_has_its_address_and_dial_it() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let (pods, mut writer) = kube::runtime::reflector::store::<Pod>();
    let ctx = Arc::new(Context::with_caches(
        Client::new(service, "default"),
        Default::default(),
        pods,
        kube::runtime::reflector::store().0,
    ));
    let lt = loadtest();
    let sets = "PATCH /apis/apps/v1/namespaces/default/statefulsets/smoke-workers";
    let seen = reconcile_answering(&lt, ctx.clone(), &mut handle).await;
    assert!(
        seen.iter()
            .any(|r| r.ends_with("/deployments/smoke-master")),
        "{seen:?}"
    );
    assert!(
        !seen.iter().any(|r| r == sets),
        "made before the master's address: {seen:?}"
    );

    let master: Pod = serde_json::from_value(json!({
        "metadata": {"name": "smoke-master-abc", "namespace": "default", "labels": {
            "hatchery.io/loadtest": "smoke", "hatchery.io/role": "master"}},
        "status": {"podIP": "10.244.0.9"}
    }))
    .unwrap();
    assert!(super::addressed_master_of(&master).is_some());
    writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(master));
    let seen = reconcile_answering_bodies(&lt, ctx, &mut handle).await;
    let (_, set) = seen
        .iter()
        .find(|(r, _)| r == sets)
        .unwrap_or_else(|| panic!("no StatefulSet applied: {seen:?}"));
    // Only the workers: the master's side is as it was applied.
    let applied: Vec<&str> = seen
        .iter()
        .map(|(r, _)| r.as_str())
        .filter(|r| {
            ["/apps/v1/", "/services/", "/configmaps/", "/secrets"]
                .iter()
                .any(|kind| r.contains(kind))
        })
        .collect();
    assert_eq!(applied, [sets], "{seen:?}");
    let args = &set["spec"]["template"]["spec"]["containers"][0]["args"];
    let args: Vec<&str> = args
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let at = args
        .iter()
        .position(|a| *a == "--master-address")
        .expect("--master-address");
    assert_eq!(args[at + 1], "10.244.0.9", "{args:?}");
}
