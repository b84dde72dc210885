//! `user.http:get(url, opts)` and its siblings: the options a script passes, the request they
//! encode to, its exchange through the user's own [`User::send`], and the response object.
//!
//! A response is recorded when the script settles it (`r:success()`, `r:failure(msg)`:
//! Locust's `catch_response`), or else as it is (failed on a transport error or a status of 400
//! or more, as a YAML request without checks) when the script sends its next request or the
//! call ends.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hatchery_core::plan::{self, Request};
use hatchery_core::stats::Sample;
use hatchery_core::template::Template;
use hatchery_core::timestamp::unix_now;
use hatchery_core::Method;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::HeaderMap;
use mlua::{Lua, MetaMethod, Table, UserData, UserDataFields, UserDataMethods, Value};

use super::vm::{Ctx, Vm};
use crate::prepare::{build, Base, PreparedBody, PreparedRequest};
use crate::recorder::Recorder;
use crate::user::User;

const OPTIONS: [&str; 10] = [
    "name",
    "headers",
    "query",
    "json",
    "body",
    "form",
    "multipart",
    "timeout",
    "follow_redirects",
    "check",
];

/// The forms of `check`, as the plan's request key.
const CHECKS: [&str; 4] = ["status", "body_contains", "json", "max_time"];

#[derive(Debug)]
pub(super) struct Outgoing {
    pub method: Method,
    pub url: String,
    pub opts: Opts,
}

/// The options of `user.http:get(url, opts)`.
#[derive(Debug)]
pub(super) struct Opts {
    pub name: Option<String>,
    pub headers: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub body: Option<Payload>,
    pub timeout: Option<Duration>,
    /// Follow redirects (default), as a YAML request does.
    pub follow_redirects: bool,
    /// What makes the response a failure (the plan's `check`).
    pub check: plan::Check,
}

/// A request's body, encoded, and the `content-type` it adds unless `headers` gives one.
#[derive(Debug, PartialEq)]
pub(super) struct Payload {
    pub bytes: Vec<u8>,
    pub content_type: Option<Cow<'static, str>>,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts {
            name: None,
            headers: Vec::new(),
            query: Vec::new(),
            body: None,
            timeout: None,
            follow_redirects: true,
            check: plan::Check::default(),
        }
    }
}

impl PartialEq for Opts {
    fn eq(&self, o: &Opts) -> bool {
        fn c(c: &plan::Check) -> impl PartialEq + '_ {
            let json: Vec<_> = c.json.iter().map(|(p, v)| (p.as_str(), v)).collect();
            (&c.status, &c.body_contains, json, c.max_time)
        }
        (&self.name, &self.headers, &self.query, &self.body)
            == (&o.name, &o.headers, &o.query, &o.body)
            && (self.timeout, self.follow_redirects) == (o.timeout, o.follow_redirects)
            && c(&self.check) == c(&o.check)
    }
}

impl Opts {
    pub(super) fn parse(lua: &Lua, table: Option<Table>) -> Result<Opts, String> {
        let Some(t) = table else {
            return Ok(Opts::default());
        };
        for pair in t.pairs::<Value, Value>() {
            let (key, _) = pair.map_err(|e| e.to_string())?;
            let key = key.to_string().unwrap_or_default();
            if !OPTIONS.contains(&key.as_str()) {
                return Err(format!(
                    "unknown request option `{key}`: the options are {}",
                    OPTIONS.join(", ")
                ));
            }
        }
        let get = |key: &str| t.raw_get::<Value>(key).map_err(|e| e.to_string());
        let name = match get("name")? {
            Value::Nil => None,
            v => Some(text("name", v)?),
        };
        let bodies = ["json", "body", "form", "multipart"];
        let mut given = Vec::new();
        for key in bodies {
            match get(key)? {
                Value::Nil => {}
                v => given.push((key, v)),
            }
        }
        let body = match given.pop() {
            None => None,
            Some((key, v)) if given.is_empty() => Some(payload(lua, key, v)?),
            Some((key, _)) => {
                return Err(format!(
                    "a request has one body, found `{}` and `{key}`",
                    given[0].0
                ))
            }
        };
        let timeout = match get("timeout")? {
            Value::Nil => None,
            v => Some(duration("timeout", v)?),
        };
        let follow_redirects = match get("follow_redirects")? {
            Value::Nil => true,
            Value::Boolean(b) => b,
            other => {
                return Err(format!(
                    "`follow_redirects` must be true or false, found {}",
                    other.type_name()
                ))
            }
        };
        Ok(Opts {
            name,
            headers: pairs("headers", get("headers")?)?,
            query: pairs("query", get("query")?)?,
            body,
            timeout,
            follow_redirects,
            check: check(lua, get("check")?)?,
        })
    }
}

/// `v` as text for `key`: a string, or a number or boolean turned into text.
pub(super) fn text(key: &str, v: Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.to_str().map_err(|e| e.to_string())?.to_string()),
        Value::Integer(i) => Ok(i.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!("`{key}` must be text, found {}", other.type_name())),
    }
}

/// `{name = value}` for `key`, as text pairs sorted by name: a table has no order, and a sorted
/// one keeps requests the same every time.
pub(super) fn pairs(key: &str, v: Value) -> Result<Vec<(String, String)>, String> {
    match v {
        Value::Nil => Ok(Vec::new()),
        Value::Table(m) => {
            let mut out = Vec::new();
            for pair in m.pairs::<String, Value>() {
                let (k, v) = pair.map_err(|_| format!("`{key}` keys must be text"))?;
                let v = text(&format!("{key}.{k}"), v)?;
                out.push((k, v));
            }
            out.sort();
            Ok(out)
        }
        other => Err(format!(
            "`{key}` must be a table, found {}",
            other.type_name()
        )),
    }
}

/// The body option `key` (one of `json`, `body`, `form`, `multipart`), encoded.
fn payload(lua: &Lua, key: &str, v: Value) -> Result<Payload, String> {
    let typed = |bytes, content_type| Payload {
        bytes,
        content_type: Some(Cow::Borrowed(content_type)),
    };
    match (key, v) {
        ("json", v) => {
            let value = super::libs::to_json(lua, v)
                .map_err(|e| format!("`json` cannot be sent as JSON: {e}"))?;
            let bytes = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
            Ok(typed(bytes, "application/json"))
        }
        ("body", Value::String(s)) => Ok(Payload {
            bytes: s.as_bytes().to_vec(),
            content_type: None,
        }),
        ("body", other) => Err(format!(
            "`body` must be a string, found {}",
            other.type_name()
        )),
        ("form", v) => {
            let mut bytes = Vec::new();
            let fields = pairs("form", v)?;
            crate::body::form(
                &mut bytes,
                fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
            Ok(typed(bytes, crate::body::FORM_TYPE))
        }
        (_, v) => super::forms::multipart(v),
    }
}

/// Seconds above 0 or a duration text (`"500ms"`), for `key`.
fn duration(key: &str, v: Value) -> Result<Duration, String> {
    match v {
        Value::Integer(i) if i > 0 => Ok(Duration::from_secs(i as u64)),
        Value::Number(n) if n > 0.0 => {
            Duration::try_from_secs_f64(n).map_err(|_| format!("{key} {n} is too long"))
        }
        Value::String(s) => hatchery_core::duration::parse(&s.to_string_lossy())
            .map_err(|e| format!("`{key}`: {e}")),
        other => Err(format!(
            "`{key}` must be seconds above 0 or a duration like \"5s\", found {}",
            other
                .to_string()
                .unwrap_or_else(|_| other.type_name().to_string())
        )),
    }
}

/// `check = {status = ..., body_contains = ..., json = {...}, max_time = ...}`: the plan's check
/// forms, a single value or a list where the plan takes a list.
fn check(lua: &Lua, v: Value) -> Result<plan::Check, String> {
    let t = match v {
        Value::Nil => return Ok(plan::Check::default()),
        Value::Table(t) => t,
        other => {
            return Err(format!(
                "`check` must be a table, found {}",
                other.type_name()
            ))
        }
    };
    let mut check = plan::Check::default();
    for pair in t.pairs::<Value, Value>() {
        let (key, value) = pair.map_err(|e| e.to_string())?;
        let key = key.to_string().unwrap_or_default();
        match key.as_str() {
            "status" => {
                let codes = list(value)?
                    .into_iter()
                    .map(|v| match v {
                        Value::Integer(i) => u16::try_from(i).ok(),
                        Value::Number(n) if n.fract() == 0.0 => u16::try_from(n as i64).ok(),
                        _ => None,
                    })
                    .map(|c| c.filter(|c| (100..=599).contains(c)))
                    .collect::<Option<Vec<u16>>>()
                    .ok_or("`check.status` must be a status code or a list of them (100 to 599)")?;
                check.status = Some(codes);
            }
            "body_contains" => {
                for v in list(value)? {
                    match v {
                        Value::String(s) => check.body_contains.push(s.to_string_lossy()),
                        other => {
                            return Err(format!(
                                "`check.body_contains` must be text or a list of texts, found {}",
                                other.type_name()
                            ))
                        }
                    }
                }
            }
            "json" => {
                let Value::Table(paths) = value else {
                    return Err("`check.json` must be a table of {[\"$.path\"] = value}".into());
                };
                for pair in paths.pairs::<String, Value>() {
                    let (path, expected) =
                        pair.map_err(|_| "`check.json` keys must be JSON paths".to_string())?;
                    let parsed = hatchery_core::jsonpath::JsonPath::parse(&path)
                        .map_err(|e| format!("`check.json` path {path:?}: {e}"))?;
                    let expected = super::libs::to_json(lua, expected)
                        .map_err(|e| format!("`check.json` value at {path:?}: {e}"))?;
                    check.json.push((parsed, expected));
                }
                check.json.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
            }
            "max_time" => check.max_time = Some(duration("check.max_time", value)?),
            other => {
                return Err(format!(
                    "unknown check `{other}`: the checks are {}",
                    CHECKS.join(", ")
                ))
            }
        }
    }
    Ok(check)
}

/// A value or a list of values (a table used as an array).
fn list(v: Value) -> Result<Vec<Value>, String> {
    match v {
        Value::Table(t) => t
            .sequence_values::<Value>()
            .collect::<mlua::Result<_>>()
            .map_err(|e| e.to_string()),
        other => Ok(vec![other]),
    }
}

/// A response's entry in the statistics, until it is recorded.
#[derive(Debug)]
pub(super) struct Pending {
    seq: u64,
    method: Method,
    name: String,
    response_time_us: u64,
    corrected_response_time_us: Option<u64>,
    content_length: u64,
    at_unix_s: u64,
    error: Option<String>,
}

impl Pending {
    pub(super) fn record(self, recorder: &Recorder) {
        recorder.record(
            self.method,
            &self.name,
            Sample {
                response_time_us: self.response_time_us,
                corrected_response_time_us: self.corrected_response_time_us,
                content_length: self.content_length,
                at_unix_s: self.at_unix_s,
                error: self.error.as_deref(),
            },
        );
    }
}

impl Opts {
    /// Whether the request is its method and URL alone (a `name` aside), so that its prepared
    /// form is the same for every user of the class.
    pub(super) fn plain(&self) -> bool {
        self.headers.is_empty()
            && self.query.is_empty()
            && self.body.is_none()
            && self.timeout.is_none()
            && self.follow_redirects
            && self.check.status.is_none()
            && self.check.body_contains.is_empty()
            && self.check.json.is_empty()
            && self.check.max_time.is_none()
    }
}

/// What of a response a class's script may read, from the words in its text (as `user.vars`
/// names are found): parsing headers into a map and keeping a body cost ~1 us a request
/// between them, so a script that never reads them does not pay.
#[derive(Debug, Clone, Copy)]
pub(super) struct Wants {
    /// `headers` (`r.headers`) is in the text.
    pub headers: bool,
    /// `body` or `json` (`r.body`, `r:json()`) is in the text.
    pub body: bool,
}

impl Wants {
    pub(super) const ALL: Wants = Wants {
        headers: true,
        body: true,
    };

    pub(super) fn of(source: &str) -> Wants {
        Wants {
            headers: source.contains("headers"),
            body: source.contains("body") || source.contains("json"),
        }
    }
}

/// The request as the YAML path prepares one (its URL, query and headers checked the same
/// way), so that it goes out through the same session: the user's cookies, redirects, and a
/// body decoded for the script.
pub(super) fn prepare(
    req: &Outgoing,
    base: Option<&Base>,
    wants: Wants,
) -> Result<PreparedRequest, String> {
    let literal = |pairs: &[(String, String)]| -> Vec<(String, Template)> {
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Template::literal(v.as_str())))
            .collect()
    };
    let source = Request {
        method: req.method,
        url: Template::literal(req.url.as_str()),
        name: None,
        headers: literal(&req.opts.headers),
        query: literal(&req.opts.query),
        body: plan::Body::Empty,
        timeout: req.opts.timeout,
        check: req.opts.check.clone(),
        captures: Vec::new(),
        follow_redirects: req.opts.follow_redirects,
        line: 0,
    };
    let mut prepared = build(&source, base, |add_content_type, headers| {
        let Some(body) = &req.opts.body else {
            return PreparedBody::Static(Bytes::new());
        };
        let content_type = body.content_type.as_deref().filter(|_| add_content_type);
        if let Some(value) = content_type.and_then(|t| HeaderValue::from_str(t).ok()) {
            headers.push((CONTENT_TYPE, value));
        }
        PreparedBody::Static(Bytes::copy_from_slice(&body.bytes))
    })?;
    // The script may read anything of the response.
    // Kept for the script when its text reads them; a `check` that reads the body keeps it too.
    prepared.needs_body |= wants.body;
    prepared.needs_headers = wants.headers;
    Ok(prepared)
}

/// A script's request that went out, before it is handed back to the script.
pub(super) struct Answered {
    method: Method,
    name: String,
    status: u16,
    response: crate::session::Response,
    elapsed: Duration,
    corrected_us: Option<u64>,
    size: u64,
    /// Why no response came.
    error: Option<String>,
    /// Why it failed: no response, or the plan's check of it.
    failed: Option<String>,
}

/// Sends a script's request as the user (its connection, cookies, timer and lateness) and
/// checks the response. Touches no Lua state: the caller does not hold the VM meanwhile.
pub(super) async fn send(user: &mut User, vm: &Vm, req: Outgoing) -> Result<Answered, String> {
    let prepared = vm.prepared(user, &req)?;
    let sent = user.send(&prepared).await?;
    let (outcome, elapsed, size) = (sent.outcome, sent.elapsed, sent.size);
    // The plan's check of a response (a status >= 400 fails unless `check.status` allows it).
    let failed = outcome
        .error
        .clone()
        .or_else(|| user.check(&prepared, &outcome.response, elapsed));
    Ok(Answered {
        method: req.method,
        name: super::clip(req.opts.name.unwrap_or(req.url), super::MAX_NAME),
        status: outcome.response.status,
        response: outcome.response,
        elapsed,
        corrected_us: user.lateness.map(|l| (l + elapsed).as_micros() as u64),
        size,
        error: outcome.error,
        failed,
    })
}

/// Keeps the answer's entry pending for the script to settle, and makes the response it sees.
/// The caller holds the VM's gate.
pub(super) fn respond(ctx: &mut Ctx, token: i64, a: Answered) -> Result<Response, String> {
    let state = ctx
        .user(token)
        .ok_or_else(|| "the user's script state is gone".to_string())?;
    let seq = state.next_seq;
    state.next_seq += 1;
    let ok = a.failed.is_none();
    state.pending = Some(Pending {
        seq,
        method: a.method,
        name: a.name,
        response_time_us: a.elapsed.as_micros() as u64,
        corrected_response_time_us: a.corrected_us,
        content_length: a.size,
        at_unix_s: unix_now(),
        error: a.failed,
    });
    Ok(Response {
        token,
        seq,
        status: a.status,
        // Shared only when there are any: a script that does not read them gets none kept
        // (`Wants`), and needs no allocation for them.
        headers: (!a.response.headers.is_empty()).then(|| Arc::new(a.response.headers)),
        body: a.response.body,
        elapsed_ms: a.elapsed.as_secs_f64() * 1000.0,
        error: a.error,
        ok,
    })
}

/// What a script sees of a response.
#[derive(Debug)]
pub(super) struct Response {
    /// The user it came to.
    token: i64,
    seq: u64,
    status: u16,
    headers: Option<Arc<HeaderMap>>,
    body: Bytes,
    elapsed_ms: f64,
    error: Option<String>,
    ok: bool,
}

impl Response {
    /// Records the response now, failed with `error` or succeeded.
    fn settle(&mut self, lua: &Lua, error: Option<String>) -> mlua::Result<()> {
        let mut ctx = lua
            .app_data_mut::<Ctx>()
            .ok_or_else(|| mlua::Error::runtime("the script's state is gone"))?;
        let recorder = ctx.recorder.clone();
        let Some(user) = ctx.user(self.token) else {
            return Err(mlua::Error::runtime("this response's user is gone"));
        };
        match user.pending.take() {
            Some(mut p) if p.seq == self.seq => {
                self.ok = error.is_none();
                p.error = error;
                p.record(&recorder);
                Ok(())
            }
            other => {
                user.pending = other;
                Err(mlua::Error::runtime(
                    "this response is already recorded: call r:failure() or r:success() before the next request",
                ))
            }
        }
    }
}

impl UserData for Response {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("status", |_, r| Ok(r.status));
        fields.add_field_method_get("body", |lua, r| lua.create_string(&r.body));
        fields.add_field_method_get("elapsed_ms", |_, r| Ok(r.elapsed_ms));
        fields.add_field_method_get("ok", |_, r| Ok(r.ok));
        fields.add_field_method_get("error", |_, r| Ok(r.error.clone()));
        fields.add_field_method_get("headers", |_, r| {
            Ok(Headers(r.headers.clone().unwrap_or_default()))
        });
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("json", |lua, r, ()| {
            let value: serde_json::Value = serde_json::from_slice(&r.body)
                .map_err(|e| mlua::Error::runtime(format!("the body is not JSON: {e}")))?;
            super::libs::to_lua(lua, &value)
        });
        methods.add_method_mut("failure", |lua, r, message: String| {
            r.settle(lua, Some(super::clip(message, super::MAX_MESSAGE)))
        });
        methods.add_method_mut("success", |lua, r, ()| r.settle(lua, None));
    }
}

/// A response's headers, looked up by name in any case: `r.headers["content-type"]`.
#[derive(Debug)]
struct Headers(Arc<HeaderMap>);

impl UserData for Headers {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_meta_method(MetaMethod::Index, |_, h, name: String| {
            Ok(h.0
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
                .map(str::to_string))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(src: &str) -> Result<Opts, String> {
        let lua = Lua::new();
        let table: Option<Table> = lua.load(src).eval().unwrap();
        Opts::parse(&lua, table)
    }

    #[test]
    fn options_parse_into_sorted_pairs_a_body_and_a_timeout() {
        let o = opts(r#"{name = "/items/[id]", headers = {["X-B"] = "2", ["X-A"] = 1}, query = {page = 2}, json = {a = 1}, timeout = 0.5}"#).unwrap();
        assert_eq!(o.name.as_deref(), Some("/items/[id]"));
        assert_eq!(
            o.headers,
            [("X-A".into(), "1".into()), ("X-B".into(), "2".into())]
        );
        assert_eq!(o.query, [("page".to_string(), "2".to_string())]);
        let json = Payload {
            bytes: br#"{"a":1}"#.to_vec(),
            content_type: Some("application/json".into()),
        };
        assert_eq!(o.body, Some(json));
        let form = opts(r#"{form = {user = "a b", pw = "x&y=z"}}"#)
            .unwrap()
            .body
            .unwrap();
        assert_eq!(form.bytes, b"pw=x%26y%3Dz&user=a+b");
        assert_eq!(form.content_type.as_deref(), Some(crate::body::FORM_TYPE));
        assert_eq!(o.timeout, Some(Duration::from_millis(500)));
        assert_eq!(
            opts(r#"{body = "x", timeout = "2s"}"#).unwrap().timeout,
            Some(Duration::from_secs(2))
        );
        assert_eq!(opts("nil").unwrap(), Opts::default());
        assert!(!opts("{follow_redirects = false}").unwrap().follow_redirects);
    }

    #[test]
    fn a_check_takes_the_plans_forms_as_one_value_or_a_list() {
        let o = opts(r#"{check = {status = {200, 404}, body_contains = "ok", json = {["$.a.b"] = 1}, max_time = "2s"}}"#)
            .unwrap();
        assert_eq!(o.check.status, Some(vec![200, 404]));
        assert_eq!(o.check.body_contains, ["ok"]);
        assert_eq!(o.check.json[0].0.as_str(), "$.a.b");
        assert_eq!(o.check.json[0].1, serde_json::json!(1));
        assert_eq!(o.check.max_time, Some(Duration::from_secs(2)));
        assert!(!o.plain());
        let o = opts("{check = {status = 201, body_contains = {'a', 'b'}}}").unwrap();
        assert_eq!(
            (o.check.status, o.check.body_contains),
            (Some(vec![201]), vec!["a".to_string(), "b".to_string()])
        );
        assert!(opts("{name = 'x'}").unwrap().plain());
        let err = |src| opts(src).unwrap_err();
        assert!(err("{check = {staus = 200}}").contains("unknown check `staus`"));
        assert!(err("{check = {status = 1000}}").contains("`check.status` must be"));
        assert!(err("{check = {json = {['a..'] = 1}}}").contains("`check.json` path"));
        assert!(err("{check = 200}").contains("`check` must be a table"));
    }

    #[test]
    fn bad_options_are_clear_errors() {
        let err = |src| opts(src).unwrap_err();
        assert!(err("{nmae = 'x'}").contains("unknown request option `nmae`"));
        assert_eq!(
            err("{json = {}, body = 'x'}"),
            "a request has one body, found `json` and `body`"
        );
        assert_eq!(
            err("{form = {}, multipart = {}}"),
            "a request has one body, found `form` and `multipart`"
        );
        assert!(err("{form = 'a=1'}").contains("`form` must be a table"));
        assert!(err("{timeout = -1}").contains("`timeout` must be seconds above 0"));
        assert!(err("{headers = 'x'}").contains("`headers` must be a table"));
        assert!(err("{body = {}}").contains("`body` must be a string"));
        assert!(err("{follow_redirects = 1}").contains("`follow_redirects` must be true or false"));
    }

    #[test]
    fn a_scripted_request_encodes_like_a_plan_request() {
        let base = Base::parse("http://127.0.0.1:8080/api").unwrap();
        let req = Outgoing {
            method: Method::Post,
            url: "/items".into(),
            opts: Opts {
                query: vec![("q".into(), "a b".into())],
                headers: vec![("x-id".into(), "7".into())],
                body: Some(Payload {
                    bytes: b"{}".to_vec(),
                    content_type: Some("application/json".into()),
                }),
                ..Opts::default()
            },
        };
        let prepared = prepare(&req, Some(&base), Wants::ALL).unwrap();
        let crate::prepare::Url::Static { origin, .. } = &prepared.url else {
            panic!("a script's URL is resolved when it is prepared");
        };
        assert_eq!((origin.port, &prepared.method), (8080, &http::Method::POST));
        assert!(prepared.source.follow_redirects && prepared.needs_body);
        let text = String::from_utf8(prepared.wire.unwrap()).unwrap();
        assert!(
            text.starts_with("POST /api/items?q=a%20b HTTP/1.1\r\n"),
            "{text}"
        );
        assert!(
            text.contains("x-id: 7\r\n") && text.contains("content-type: application/json\r\n"),
            "{text}"
        );
        assert!(text.ends_with("\r\n\r\n{}"), "{text}");
        let bad = Outgoing {
            opts: Opts {
                headers: vec![("x".into(), "a\nb".into())],
                ..Opts::default()
            },
            ..req
        };
        assert!(prepare(&bad, Some(&base), Wants::ALL).is_err());
        let bare = Outgoing {
            method: Method::Get,
            url: "/".into(),
            opts: Opts::default(),
        };
        let wants = Wants::of("function f(user) user.http:get('/') end");
        let prepared = prepare(&bare, Some(&base), wants).unwrap();
        assert!(!prepared.needs_body && !prepared.needs_headers);
        let wants = Wants::of(
            "function f(user) local r = user.http:get('/'); return r.headers.x, r:json() end",
        );
        assert!(wants.headers && wants.body);
    }
}
