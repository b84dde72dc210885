//! A simulated user: its own connections, variables and random numbers; a loop that picks a
//! weighted task, runs its requests, and waits.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hatchery_core::plan::{CaptureSource, Wait};
use hatchery_core::stats::Sample;
use hatchery_core::template::Scope;
use http::header::{HOST, USER_AGENT};
use http::HeaderValue;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::sync::watch;

use crate::http::{with_causes, Origin, Pool};
use crate::prepare::{append_query, resolve, PreparedBody, PreparedRequest, Url};
use crate::Shared;

/// The state one user carries between requests.
pub struct User {
    shared: Arc<Shared>,
    class: usize,
    id: u64,
    vars: Vec<Option<String>>,
    rows: Vec<usize>,
    rng: fastrand::Rng,
    pool: Pool,
    /// Scratch buffers reused across requests.
    text: String,
    bytes: Vec<u8>,
}

impl User {
    pub fn new(shared: Arc<Shared>, class: usize, id: u64) -> User {
        let plan = &shared.prepared.plan;
        let vars = vec![None; plan.users[class].vars.len()];
        let rows = plan
            .feeders
            .iter()
            .map(|f| (id as usize) % f.rows.len().max(1))
            .collect();
        User {
            shared,
            class,
            id,
            vars,
            rows,
            rng: fastrand::Rng::new(),
            pool: Pool::default(),
            text: String::new(),
            bytes: Vec::new(),
        }
    }

    /// Runs until `stop` turns true: `on_start`, then tasks and waits; `on_stop` when stopped
    /// between tasks. A stop that must not wait for the current task aborts this future instead.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let shared = self.shared.clone();
        let class = &shared.prepared.classes[self.class];
        let wait = shared.prepared.plan.users[self.class].wait;
        for req in &class.on_start {
            if *stop.borrow() {
                break;
            }
            self.execute(req).await;
        }
        let total_weight = class.cumulative_weights.last().copied().unwrap_or(0);
        while !*stop.borrow() && total_weight > 0 {
            let started = Instant::now();
            let pick = self.rng.u64(0..total_weight);
            let task = class.cumulative_weights.partition_point(|&w| w <= pick);
            for req in &class.tasks[task] {
                self.execute(req).await;
            }
            let pause = self.wait_time(wait, started);
            if pause.is_zero() {
                // A zero wait still yields, so a user hammering a fast target cannot starve the
                // runtime's timers and the reporter.
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        for req in &class.on_stop {
            self.execute(req).await;
        }
    }

    fn wait_time(&mut self, wait: Wait, task_started: Instant) -> Duration {
        match wait {
            Wait::Constant(d) => d,
            Wait::Between(lo, hi) => {
                let (lo, hi) = (lo.as_nanos() as u64, hi.as_nanos() as u64);
                Duration::from_nanos(self.rng.u64(lo..=hi.max(lo)))
            }
            Wait::Pacing(every) => every.saturating_sub(task_started.elapsed()),
            Wait::Throughput(per_s) => {
                Duration::from_secs_f64(1.0 / per_s).saturating_sub(task_started.elapsed())
            }
        }
    }

    /// Sends one request and records its outcome. Failures are data, not errors.
    async fn execute(&mut self, req: &PreparedRequest) {
        let (origin, target) = match self.target(req) {
            Ok(t) => t,
            Err(message) => {
                let message = format!("{message} (line {})", req.source.line);
                self.shared.recorder.exception(&message);
                return;
            }
        };
        let name: &str = req.name.as_deref().unwrap_or(&target);
        let request = match self.build(req, &origin, &target) {
            Ok(r) => r,
            Err(message) => {
                self.shared.recorder.exception(&message);
                return;
            }
        };
        let timeout = req.source.timeout.unwrap_or(self.shared.default_timeout);
        let started = Instant::now();
        // Pinned here, so the timeout wraps a pointer instead of moving the whole future.
        let result = {
            let exchange = self.exchange(&origin, request, req);
            tokio::pin!(exchange);
            tokio::time::timeout(timeout, &mut exchange).await
        };
        let elapsed = started.elapsed();
        let outcome = match result {
            Ok(o) => o,
            Err(_) => {
                // The connection may still carry the late response: never reuse it.
                self.pool.discard(&origin);
                Outcome::failed(0, format!("timeout after {}", fmt_duration(timeout)))
            }
        };
        let error = outcome
            .error
            .or_else(|| self.check(req, &outcome.response, elapsed));
        self.shared.recorder.record(
            req.core_method,
            name,
            Sample {
                response_time_us: elapsed.as_micros() as u64,
                content_length: outcome.content_length,
                at_unix_s: unix_now(),
                error: error.as_deref(),
            },
        );
    }

    /// Where the request goes: the prepared target (borrowed, nothing copied), or the rendered
    /// one.
    fn target<'r>(
        &mut self,
        req: &'r PreparedRequest,
    ) -> Result<(Cow<'r, Origin>, Cow<'r, str>), String> {
        match &req.url {
            Url::Static { origin, target } => Ok((Cow::Borrowed(origin), Cow::Borrowed(target))),
            Url::Dynamic { base } => {
                let mut url = String::new();
                let mut scope = self.scope();
                req.source.url.render(&mut scope, &mut url);
                let rendered: Vec<(String, String)> = req
                    .source
                    .query
                    .iter()
                    .map(|(k, v)| {
                        let mut s = String::new();
                        v.render(&mut scope, &mut s);
                        (k.clone(), s)
                    })
                    .collect();
                append_query(
                    &mut url,
                    rendered.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                );
                resolve(&url, base.as_ref()).map(|(o, t)| (Cow::Owned(o), Cow::Owned(t)))
            }
        }
    }

    fn scope(&mut self) -> Scope<'_> {
        Scope {
            vars: &self.vars,
            rows: &self.rows,
            feeders: &self.shared.prepared.plan.feeders,
            user_id: self.id,
            rng: &mut self.rng,
        }
    }

    fn build(
        &mut self,
        req: &PreparedRequest,
        origin: &Origin,
        target: &str,
    ) -> Result<http::Request<Full<Bytes>>, String> {
        let body = match &req.body {
            PreparedBody::Static(b) => b.clone(),
            PreparedBody::Json => {
                let mut out = std::mem::take(&mut self.bytes);
                out.clear();
                if let hatchery_core::plan::Body::Json(j) = &req.source.body {
                    j.render(&mut self.scope(), &mut out);
                }
                let b = Bytes::copy_from_slice(&out);
                self.bytes = out;
                b
            }
            PreparedBody::Text => {
                let mut out = std::mem::take(&mut self.text);
                out.clear();
                if let hatchery_core::plan::Body::Text(t) = &req.source.body {
                    t.render(&mut self.scope(), &mut out);
                }
                let b = Bytes::copy_from_slice(out.as_bytes());
                self.text = out;
                b
            }
        };
        let mut builder = http::Request::builder()
            .method(req.method.clone())
            .uri(target)
            .header(HOST, origin.authority.clone())
            .header(USER_AGENT, HeaderValue::from_static(crate::USER_AGENT));
        for (k, v) in &req.static_headers {
            builder = builder.header(k, v.clone());
        }
        for (k, t) in &req.dynamic_headers {
            let mut s = String::new();
            t.render(&mut self.scope(), &mut s);
            let v = HeaderValue::from_str(&s)
                .map_err(|_| format!("header {k} rendered to an invalid value {s:?}"))?;
            builder = builder.header(k, v);
        }
        builder
            .body(Full::new(body))
            .map_err(|e| format!("cannot build the request to {target}: {e}"))
    }

    async fn exchange(
        &mut self,
        origin: &Origin,
        request: http::Request<Full<Bytes>>,
        req: &PreparedRequest,
    ) -> Outcome {
        let conn = match self.pool.get(&self.shared.connector, origin).await {
            Ok(c) => c,
            Err(e) => return Outcome::failed(0, e.to_string()),
        };
        let response = match conn.sender.send_request(request).await {
            Ok(r) => r,
            Err(e) => {
                self.pool.discard(origin);
                return Outcome::failed(0, format!("request error: {}", with_causes(&e)));
            }
        };
        let (parts, body) = response.into_parts();
        match read_body(body, req.needs_body).await {
            Ok((content_length, bytes)) => Outcome {
                error: None,
                content_length,
                response: Response {
                    status: parts.status.as_u16(),
                    headers: parts.headers,
                    body: bytes,
                },
            },
            Err(e) => {
                self.pool.discard(origin);
                Outcome::failed(
                    parts.status.as_u16(),
                    format!("response body error: {}", with_causes(&e)),
                )
            }
        }
    }

    /// Applies the request's checks and captures; the first failure is the request's error.
    fn check(
        &mut self,
        req: &PreparedRequest,
        resp: &Response,
        elapsed: Duration,
    ) -> Option<String> {
        let check = &req.source.check;
        match &check.status {
            Some(allowed) if !allowed.contains(&resp.status) => {
                return Some(format!(
                    "check failed: status {} not in {allowed:?}",
                    resp.status
                ));
            }
            None if resp.status >= 400 => {
                let reason = http::StatusCode::from_u16(resp.status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("");
                return Some(
                    format!("HTTP {} {reason}", resp.status)
                        .trim_end()
                        .to_string(),
                );
            }
            _ => {}
        }
        if let Some(max) = check.max_time {
            if elapsed > max {
                return Some(format!(
                    "check failed: took longer than max_time {}",
                    fmt_duration(max)
                ));
            }
        }
        for needle in &check.body_contains {
            if !contains(&resp.body, needle.as_bytes()) {
                return Some(format!("check failed: body does not contain {needle:?}"));
            }
        }
        let json: Option<serde_json::Value> = if req.needs_json {
            match serde_json::from_slice(&resp.body) {
                Ok(v) => Some(v),
                Err(e) => return Some(format!("check failed: body is not JSON ({e})")),
            }
        } else {
            None
        };
        for (path, expected) in &check.json {
            let found = json.as_ref().and_then(|j| path.select(j));
            if found != Some(expected) {
                return Some(match found {
                    Some(v) => format!(
                        "check failed: {} is {v}, expected {expected}",
                        path.as_str()
                    ),
                    None => format!("check failed: {} not found", path.as_str()),
                });
            }
        }
        let class = &self.shared.prepared.plan.users[self.class];
        for cap in &req.source.captures {
            let value = match &cap.from {
                CaptureSource::Json(path) => {
                    json.as_ref().and_then(|j| path.select(j)).map(|v| match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                }
                CaptureSource::Header(h) => resp
                    .headers
                    .get(h.as_str())
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
                CaptureSource::Regex(re) => std::str::from_utf8(&resp.body).ok().and_then(|text| {
                    re.captures(text).map(|c| {
                        c.get(1)
                            .or_else(|| c.get(0))
                            .map_or(String::new(), |m| m.as_str().to_string())
                    })
                }),
            };
            let var = &class.vars[cap.var.0 as usize];
            match value {
                Some(v) => self.vars[cap.var.0 as usize] = Some(v),
                None => return Some(format!("capture {var}: nothing found")),
            }
        }
        None
    }
}

struct Response {
    status: u16,
    headers: http::HeaderMap,
    body: Bytes,
}

struct Outcome {
    error: Option<String>,
    content_length: u64,
    response: Response,
}

impl Outcome {
    fn failed(status: u16, error: String) -> Outcome {
        Outcome {
            error: Some(error),
            content_length: 0,
            response: Response {
                status,
                headers: http::HeaderMap::new(),
                body: Bytes::new(),
            },
        }
    }
}

/// Reads the whole body (a keep-alive connection can only be reused after it), keeping it only
/// when checks or captures need it.
async fn read_body(mut body: Incoming, keep: bool) -> Result<(u64, Bytes), hyper::Error> {
    if keep {
        let bytes = body.collect().await?.to_bytes();
        return Ok((bytes.len() as u64, bytes));
    }
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            len += data.len() as u64;
        }
    }
    Ok((len, Bytes::new()))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
