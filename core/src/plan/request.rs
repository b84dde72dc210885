//! User classes, their tasks and requests: the part of the walk that compiles templates, so it
//! knows each class's variables before it reads a request.

use std::time::Duration;

use saphyr::{Scalar, YamlData};

use super::parse::{check_name, host};
use super::script;
use super::yaml::{self, data, Ctx, Fields, Node};
use super::{
    Body, Capture, CaptureSource, Check, FilePart, Multipart, Request, Step, Task, UserClass, Wait,
    MAX_PART_FILE,
};
use crate::jsonpath::JsonPath;
use crate::template::{JsonTemplate, Resolver, Template, VarId};
use crate::validate;
use crate::Method;

const CLASS_KEYS: [&str; 13] = [
    "name",
    "weight",
    "fixed_count",
    "wait",
    "host",
    "on_start",
    "on_stop",
    "tasks",
    "script",
    "script_timeout",
    "script_memory",
    "cookies",
    "http2",
];
const METHOD_KEYS: [&str; 6] = ["get", "post", "put", "patch", "delete", "head"];
const REQUEST_KEYS: [&str; 11] = [
    "name",
    "headers",
    "query",
    "json",
    "body",
    "form",
    "multipart",
    "timeout",
    "check",
    "capture",
    "follow_redirects",
];
const TASK_KEYS: [&str; 3] = ["weight", "tags", "sequence"];
/// What may sit beside `call` in a task.
const CALL_TASK_KEYS: [&str; 2] = ["weight", "tags"];
const WAIT_KEYS: [&str; 4] = ["constant", "between", "pacing", "throughput"];
const CHECK_KEYS: [&str; 4] = ["status", "body_contains", "json", "max_time"];
const CAPTURE_KEYS: [&str; 3] = ["json", "header", "regex"];
const BODY_KEYS: [&str; 4] = ["json", "body", "form", "multipart"];
const MULTIPART_KEYS: [&str; 2] = ["fields", "files"];
const FILE_KEYS: [&str; 2] = ["path", "content_type"];

pub(super) fn user_classes(
    cx: &mut Ctx<'_>,
    node: &Node<'_>,
    plan: &Resolver<'_>,
) -> Vec<UserClass> {
    let Some(items) = cx.list(node, "`users`") else {
        return Vec::new();
    };
    if items.is_empty() {
        cx.error_hint(
            node,
            "`users` needs at least one user class",
            "e.g. - {name: Reader, tasks: [{get: /}]}",
        );
    }
    let mut classes: Vec<UserClass> = Vec::new();
    for item in items {
        let Some((class, name_node)) = user_class(cx, item, plan) else {
            continue;
        };
        if classes.iter().any(|c| c.name == class.name) {
            cx.error(
                name_node,
                format!("two user classes are named `{}`", class.name),
            );
            continue;
        }
        classes.push(class);
    }
    classes
}

/// A class and the node of its name (for the uniqueness check).
fn user_class<'n, 'i>(
    cx: &mut Ctx<'_>,
    node: &'n Node<'i>,
    plan: &Resolver<'_>,
) -> Option<(UserClass, &'n Node<'i>)> {
    let f = cx.fields(node, "a user class", &CLASS_KEYS)?;
    let name = match f.get("name") {
        Some(n) => cx.text(n, "`name`"),
        None => {
            cx.error(node, "a user class needs a `name`");
            None
        }
    };
    let weight = f
        .get("weight")
        .map_or(Some(1), |n| cx.uint(n, "`weight`", 1));
    let fixed_count = f.get("fixed_count").map(|n| cx.uint(n, "`fixed_count`", 0));
    let wait = f
        .get("wait")
        .map_or(Some(Wait::Constant(Duration::ZERO)), |n| wait(cx, n));
    let class_host = f.get("host").map(|n| host(cx, n));
    let cookies = f
        .get("cookies")
        .map_or(Some(true), |n| cx.boolean(n, "`cookies`"));
    let http2 = f.get("http2").map(|n| cx.boolean(n, "`http2`"));
    let script = script::script(cx, &f);
    let mut vars = capture_targets(&f);
    if let Some(Some(s)) = &script {
        for name in script::variables(&s.source) {
            if !vars.contains(&name) {
                vars.push(name);
            }
        }
    }
    let resolver = Resolver {
        vars: &vars,
        ..*plan
    };
    let on_start = f
        .get("on_start")
        .map(|n| requests(cx, n, "`on_start`", &resolver));
    let on_stop = f
        .get("on_stop")
        .map(|n| requests(cx, n, "`on_stop`", &resolver));
    let tasks = match f.get("tasks") {
        Some(n) => tasks(cx, n, &resolver),
        None => {
            cx.error_hint(node, "a user class needs `tasks`", "e.g. tasks: [{get: /}]");
            None
        }
    };
    let class = UserClass {
        name: name?,
        weight: weight?,
        fixed_count: fixed_count.map_or(Some(None), |c| c.map(Some))?,
        wait: wait?,
        host: class_host.map_or(Some(None), |h| h.map(Some))?,
        on_start: on_start.unwrap_or(Some(Vec::new()))?,
        on_stop: on_stop.unwrap_or(Some(Vec::new()))?,
        tasks: tasks?,
        vars,
        script: script?,
        cookies: cookies?,
        http2: http2.map_or(Some(None), |h| h.map(Some))?,
    };
    script::check_calls(cx, &class);
    Some((class, f.get("name")?))
}

/// Every capture target of the class, in order of first appearance: its variables. Read before
/// the walk, so a template may use a variable captured further down. Malformed parts are
/// skipped here; the walk reports them.
fn capture_targets(class: &Fields<'_, '_>) -> Vec<String> {
    fn requests_in<'n, 'i>(node: &'n Node<'i>, out: &mut Vec<&'n Node<'i>>) {
        if let YamlData::Sequence(items) = data(node) {
            for item in items {
                match data(item) {
                    YamlData::Mapping(m) => match m
                        .iter()
                        .find(|(k, _)| yaml::scalar_text(k).as_deref() == Some("sequence"))
                    {
                        Some((_, steps)) => requests_in(steps, out),
                        None => out.push(item),
                    },
                    _ => continue,
                }
            }
        }
    }
    let mut requests = Vec::new();
    for key in ["on_start", "tasks", "on_stop"] {
        if let Some(n) = class.get(key) {
            requests_in(n, &mut requests);
        }
    }
    let mut vars: Vec<String> = Vec::new();
    for request in requests {
        let YamlData::Mapping(m) = data(request) else {
            continue;
        };
        let captures = m
            .iter()
            .find(|(k, _)| yaml::scalar_text(k).as_deref() == Some("capture"));
        if let Some((_, YamlData::Mapping(targets))) = captures.map(|(k, v)| (k, data(v))) {
            for name in targets.keys().filter_map(yaml::scalar_text) {
                if !vars.contains(&name) {
                    vars.push(name);
                }
            }
        }
    }
    vars
}

fn wait(cx: &mut Ctx<'_>, node: &Node<'_>) -> Option<Wait> {
    let f = cx.fields(node, "`wait`", &WAIT_KEYS)?;
    let [(kind, _, value)] = f.entries.as_slice() else {
        cx.error_hint(
            node,
            "`wait` takes exactly one of `constant`, `between`, `pacing` or `throughput`",
            "e.g. wait: {between: [1s, 3s]}",
        );
        return None;
    };
    match kind.as_str() {
        "constant" => cx.duration(value, "`constant`").map(Wait::Constant),
        "pacing" => cx.duration(value, "`pacing`").map(Wait::Pacing),
        "throughput" => {
            let rate = cx.number(value, "`throughput`")?;
            if rate <= 0.0 {
                cx.error_hint(
                    value,
                    format!("`throughput` must be greater than 0, found {rate}"),
                    "it is tasks per second per user",
                );
                return None;
            }
            Some(Wait::Throughput(rate))
        }
        "between" => {
            let bounds = cx.list(value, "`between`")?;
            let [low, high] = bounds else {
                cx.error_hint(
                    value,
                    "`between` takes two durations",
                    "e.g. between: [1s, 3s]",
                );
                return None;
            };
            let (low, high) = (
                cx.duration(low, "`between`"),
                cx.duration(high, "`between`"),
            );
            let (low, high) = (low?, high?);
            if low > high {
                cx.error(value, "`between` needs the shorter duration first");
                return None;
            }
            Some(Wait::Between(low, high))
        }
        _ => None,
    }
}

fn requests(cx: &mut Ctx<'_>, node: &Node<'_>, label: &str, r: &Resolver<'_>) -> Option<Vec<Step>> {
    let items = cx.list(node, label)?;
    let all: Vec<Option<Step>> = items
        .iter()
        .map(|item| step(cx, item, "a request", r))
        .collect();
    all.into_iter().collect()
}

fn tasks(cx: &mut Ctx<'_>, node: &Node<'_>, r: &Resolver<'_>) -> Option<Vec<Task>> {
    let items = cx.list(node, "`tasks`")?;
    if items.is_empty() {
        cx.error_hint(
            node,
            "`tasks` needs at least one task",
            "e.g. tasks: [{get: /}]",
        );
        return None;
    }
    let all: Vec<Option<Task>> = items.iter().map(|item| task(cx, item, r)).collect();
    all.into_iter().collect()
}

fn task(cx: &mut Ctx<'_>, node: &Node<'_>, r: &Resolver<'_>) -> Option<Task> {
    let allowed: Vec<&str> = METHOD_KEYS
        .iter()
        .chain(&REQUEST_KEYS)
        .chain(&TASK_KEYS)
        .chain(&["call"])
        .copied()
        .collect();
    let f = cx.fields(node, "a task", &allowed)?;
    let weight = f
        .get("weight")
        .map_or(Some(1), |n| cx.uint(n, "`weight`", 1));
    let tags = f
        .get("tags")
        .map_or(Some(Vec::new()), |n| cx.strings(n, "`tags`"));
    let steps = match (f.get("sequence"), f.has("call")) {
        (Some(sequence), _) => steps(cx, &f, sequence, r),
        (None, true) => script::call(cx, &f, &CALL_TASK_KEYS).map(|c| vec![Step::Call(c)]),
        (None, false) => request_from(cx, &f, r, true).map(|request| vec![Step::Request(request)]),
    };
    Some(Task {
        weight: weight?,
        tags: tags?,
        steps: steps?,
    })
}

fn steps(
    cx: &mut Ctx<'_>,
    task: &Fields<'_, '_>,
    sequence: &Node<'_>,
    r: &Resolver<'_>,
) -> Option<Vec<Step>> {
    for (key, key_node, _) in &task.entries {
        if !TASK_KEYS.contains(&key.as_str()) {
            cx.error_hint(
                key_node,
                format!("`{key}` cannot sit beside `sequence`"),
                "a task is either one request or a `sequence:` of requests; move it into a step",
            );
        }
    }
    let items = cx.list(sequence, "`sequence`")?;
    if items.is_empty() {
        cx.error(sequence, "`sequence` needs at least one request");
        return None;
    }
    let all: Vec<Option<Step>> = items
        .iter()
        .map(|item| step(cx, item, "a step of a sequence", r))
        .collect();
    all.into_iter().collect()
}

/// A request, or a `{call: NAME}` of a script function.
fn step(cx: &mut Ctx<'_>, node: &Node<'_>, what: &str, r: &Resolver<'_>) -> Option<Step> {
    let allowed: Vec<&str> = METHOD_KEYS
        .iter()
        .chain(&REQUEST_KEYS)
        .chain(&["call"])
        .copied()
        .collect();
    let f = cx.fields(node, what, &allowed)?;
    if f.has("call") {
        return script::call(cx, &f, &[]).map(Step::Call);
    }
    request_from(cx, &f, r, false).map(Step::Request)
}

fn request_from(
    cx: &mut Ctx<'_>,
    f: &Fields<'_, '_>,
    r: &Resolver<'_>,
    in_task: bool,
) -> Option<Request> {
    let methods: Vec<_> = f
        .entries
        .iter()
        .filter_map(|(k, key, value)| {
            Some((
                Method::parse(k).filter(|_| METHOD_KEYS.contains(&k.as_str()))?,
                *key,
                *value,
            ))
        })
        .collect();
    let (method, url_node) = match methods.as_slice() {
        [] => {
            let hint = if in_task {
                "add one of `get`, `post`, `put`, `patch`, `delete`, `head` with the URL, or `sequence:` for several requests"
            } else {
                "add one of `get`, `post`, `put`, `patch`, `delete`, `head` with the URL, e.g. get: /"
            };
            cx.error_hint(f.node, "a request needs a method key", hint);
            return None;
        }
        [(method, _, url)] => (*method, *url),
        [(first, ..), (second, key, _), ..] => {
            let message = format!(
                "a request has one method, found `{}` and `{}`",
                first.plan_key(),
                second.plan_key()
            );
            cx.error_hint(key, message, "split it into two requests");
            return None;
        }
    };
    let url = url(cx, url_node, r);
    let name = f.get("name").map(|n| cx.text(n, "`name`"));
    let headers = f.get("headers").map(|n| pairs(cx, n, "`headers`", r, true));
    let query = f.get("query").map(|n| pairs(cx, n, "`query`", r, false));
    let body = body(cx, f, r);
    let timeout = f.get("timeout").map(|n| cx.duration(n, "`timeout`"));
    let check = f.get("check").map(|n| check(cx, n));
    let captures = f.get("capture").map(|n| captures(cx, n, r.vars));
    let follow_redirects = f
        .get("follow_redirects")
        .map_or(Some(true), |n| cx.boolean(n, "`follow_redirects`"));
    Some(Request {
        method,
        url: url?,
        name: name.map_or(Some(None), |n| n.map(Some))?,
        headers: headers.unwrap_or(Some(Vec::new()))?,
        query: query.unwrap_or(Some(Vec::new()))?,
        body: body?,
        timeout: timeout.map_or(Some(None), |t| t.map(Some))?,
        check: check.unwrap_or(Some(Check::default()))?,
        captures: captures.unwrap_or(Some(Vec::new()))?,
        follow_redirects: follow_redirects?,
        line: yaml::line(f.node),
    })
}

fn url(cx: &mut Ctx<'_>, node: &Node<'_>, r: &Resolver<'_>) -> Option<Template> {
    let template = cx.template(node, "the URL", r)?;
    let text = yaml::scalar_text(node).unwrap_or_default();
    let lower = text.to_ascii_lowercase();
    let fine = ["/", "http://", "https://", "{{"]
        .iter()
        .any(|p| lower.starts_with(p));
    if !fine {
        cx.error_hint(
            node,
            format!("the URL `{text}` must be a path starting with `/` or an absolute http:// or https:// URL"),
            format!("write /{}", text.trim_start_matches('/')),
        );
        return None;
    }
    Some(template)
}

/// `headers` and `query`: names to templates; scalar values are taken as text.
fn pairs(
    cx: &mut Ctx<'_>,
    node: &Node<'_>,
    label: &str,
    r: &Resolver<'_>,
    headers: bool,
) -> Option<Vec<(String, Template)>> {
    let fields = cx.mapping(node, label)?;
    let all: Vec<Option<(String, Template)>> = fields
        .entries
        .iter()
        .map(|(k, key, v)| {
            let template = cx.template(v, &format!("the value of `{k}`"), r)?;
            if headers && !sendable_header(cx, (k, key), (&template, v)) {
                return None;
            }
            Some((k.clone(), template))
        })
        .collect();
    all.into_iter().collect()
}

/// A header as a worker can send it: a token for a name, and a value (when it needs no
/// rendering) of visible ASCII.
fn sendable_header(
    cx: &mut Ctx<'_>,
    (name, key): (&str, &Node<'_>),
    (value, node): (&Template, &Node<'_>),
) -> bool {
    if let Err(e) = validate::header_name(name) {
        cx.error(key, e);
        return false;
    }
    match value.as_static().map(|v| validate::header_value(name, v)) {
        Some(Err(e)) => {
            cx.error(node, e);
            false
        }
        _ => true,
    }
}

/// The one body of a request: `json`, `body`, `form` or `multipart`.
fn body(cx: &mut Ctx<'_>, f: &Fields<'_, '_>, r: &Resolver<'_>) -> Option<Body> {
    let given: Vec<(&str, &Node<'_>, &Node<'_>)> = f
        .entries
        .iter()
        .filter(|(k, ..)| BODY_KEYS.contains(&k.as_str()))
        .map(|(k, key, value)| (k.as_str(), *key, *value))
        .collect();
    match given.as_slice() {
        [] => Some(Body::Empty),
        [(kind, _, value)] => match *kind {
            "json" => {
                let value = cx.json(value, Some(r))?;
                // Each string was compiled (and its errors reported) while converting.
                JsonTemplate::compile(&value, r).ok().map(Body::Json)
            }
            "body" => cx.template(value, "`body`", r).map(Body::Text),
            "form" => pairs(cx, value, "`form`", r, false).map(Body::Form),
            _ => multipart(cx, value, r).map(Body::Multipart),
        },
        [(first, ..), (second, key, _), ..] => {
            cx.error_hint(
                key,
                format!("a request has one body, found `{first}` and `{second}`"),
                "`json` sends a JSON document, `body` text as is, `form` a URL-encoded form, `multipart` fields and files",
            );
            None
        }
    }
}

/// `multipart: {fields: {k: v}, files: {k: path}}`.
fn multipart(cx: &mut Ctx<'_>, node: &Node<'_>, r: &Resolver<'_>) -> Option<Multipart> {
    let f = cx.fields(node, "`multipart`", &MULTIPART_KEYS)?;
    if f.entries.is_empty() {
        cx.error_hint(
            node,
            "`multipart` needs `fields` or `files`",
            "e.g. multipart: {fields: {title: report}, files: {upload: report.pdf}}",
        );
        return None;
    }
    let fields = f.get("fields").map(|n| pairs(cx, n, "`fields`", r, false));
    let files = f.get("files").map(|n| file_parts(cx, n));
    Some(Multipart {
        fields: fields.unwrap_or(Some(Vec::new()))?,
        files: files.unwrap_or(Some(Vec::new()))?,
    })
}

/// `files`: field names to a path (relative to the plan) or `{path, content_type}`.
fn file_parts(cx: &mut Ctx<'_>, node: &Node<'_>) -> Option<Vec<FilePart>> {
    let fields = cx.mapping(node, "`files`")?;
    let all: Vec<Option<FilePart>> = fields
        .entries
        .iter()
        .map(|(name, _, spec)| file_part(cx, name, spec))
        .collect();
    all.into_iter().collect()
}

fn file_part(cx: &mut Ctx<'_>, name: &str, spec: &Node<'_>) -> Option<FilePart> {
    let (path_node, content_type) = match data(spec) {
        YamlData::Mapping(_) => {
            let f = cx.fields(spec, "a file", &FILE_KEYS)?;
            let Some(path) = f.get("path") else {
                cx.error_hint(
                    spec,
                    format!("file `{name}` needs `path`"),
                    "e.g. upload: {path: report.pdf, content_type: application/pdf}",
                );
                return None;
            };
            let content_type = f.get("content_type").map(|n| {
                let text = cx.string(n, "`content_type`")?;
                validate::header_value("content-type", &text)
                    .map_err(|e| cx.error(n, e))
                    .ok()
                    .map(|_| text)
            });
            (path, content_type.map_or(Some(None), |c| c.map(Some))?)
        }
        _ => (spec, None),
    };
    let path = cx.string(path_node, "a file's path")?;
    let content = match cx.files.read_bytes(&path) {
        Ok(bytes) if bytes.len() <= MAX_PART_FILE => bytes,
        Ok(bytes) => {
            let message = format!(
                "file `{path}` is {} bytes, more than the {} MiB a plan's file may hold",
                bytes.len(),
                MAX_PART_FILE >> 20
            );
            cx.error(path_node, message);
            return None;
        }
        Err(e) => {
            cx.error_hint(
                path_node,
                format!("cannot read file `{path}`: {e}"),
                "file paths are relative to the plan's folder",
            );
            return None;
        }
    };
    let filename = std::path::Path::new(&path)
        .file_name()
        .map_or_else(|| name.to_string(), |f| f.to_string_lossy().into_owned());
    Some(FilePart {
        name: name.to_string(),
        filename,
        content_type,
        content: content.into(),
    })
}

fn check(cx: &mut Ctx<'_>, node: &Node<'_>) -> Option<Check> {
    let f = cx.fields(node, "`check`", &CHECK_KEYS)?;
    let status = f.get("status").map(|n| statuses(cx, n));
    let body_contains = f
        .get("body_contains")
        .map(|n| cx.strings(n, "`body_contains`"));
    let json = f.get("json").map(|n| json_checks(cx, n));
    let max_time = f.get("max_time").map(|n| cx.duration(n, "`max_time`"));
    Some(Check {
        status: status.map_or(Some(None), |s| s.map(Some))?,
        body_contains: body_contains.unwrap_or(Some(Vec::new()))?,
        json: json.unwrap_or(Some(Vec::new()))?,
        max_time: max_time.map_or(Some(None), |t| t.map(Some))?,
    })
}

fn statuses(cx: &mut Ctx<'_>, node: &Node<'_>) -> Option<Vec<u16>> {
    let items: Vec<&Node<'_>> = match data(node) {
        YamlData::Sequence(items) if !items.is_empty() => items.iter().collect(),
        _ => vec![node],
    };
    let all: Vec<Option<u16>> = items
        .into_iter()
        .map(|item| match data(item) {
            YamlData::Value(Scalar::Integer(code)) if (100..=599).contains(code) => {
                Some(*code as u16)
            }
            _ => {
                let found = yaml::describe(item);
                cx.error_hint(
                    item,
                    format!("`status` must be an HTTP status from 100 to 599, found {found}"),
                    "e.g. status: 200 or status: [200, 201]",
                );
                None
            }
        })
        .collect();
    all.into_iter().collect()
}

fn json_checks(cx: &mut Ctx<'_>, node: &Node<'_>) -> Option<Vec<(JsonPath, serde_json::Value)>> {
    let fields = cx.mapping(node, "`json` checks")?;
    let all: Vec<Option<(JsonPath, serde_json::Value)>> = fields
        .entries
        .iter()
        .map(|(path, key, value)| {
            let path = json_path(cx, key, path);
            let value = cx.json(value, None);
            Some((path?, value?))
        })
        .collect();
    all.into_iter().collect()
}

fn json_path(cx: &mut Ctx<'_>, node: &Node<'_>, text: &str) -> Option<JsonPath> {
    JsonPath::parse(text)
        .map_err(|e| cx.error_hint(node, e, "e.g. $.token, $.items[0].id, $['key with spaces']"))
        .ok()
}

fn captures(cx: &mut Ctx<'_>, node: &Node<'_>, vars: &[String]) -> Option<Vec<Capture>> {
    let fields = cx.mapping(node, "`capture`")?;
    let all: Vec<Option<Capture>> = fields
        .entries
        .iter()
        .map(|(name, key, spec)| {
            let valid = check_name(cx, key, name, "a captured variable");
            let from = capture_source(cx, spec);
            let var = vars.iter().position(|v| v == name)?;
            valid.then_some(Capture {
                var: VarId(var as u32),
                from: from?,
            })
        })
        .collect();
    all.into_iter().collect()
}

fn capture_source(cx: &mut Ctx<'_>, node: &Node<'_>) -> Option<CaptureSource> {
    let f = cx.fields(node, "a capture", &CAPTURE_KEYS)?;
    let [(kind, _, value)] = f.entries.as_slice() else {
        cx.error_hint(
            node,
            "a capture takes exactly one of `json`, `header` or `regex`",
            "e.g. token: {json: $.token}",
        );
        return None;
    };
    let text = cx.string(value, &format!("`{kind}`"))?;
    match kind.as_str() {
        "json" => json_path(cx, value, &text).map(CaptureSource::Json),
        "header" if text.trim().is_empty() => {
            cx.error(value, "`header` needs a header name");
            None
        }
        "header" => Some(CaptureSource::Header(text.trim().to_ascii_lowercase())),
        "regex" => match regex_lite::Regex::new(&text) {
            Ok(re) => Some(CaptureSource::Regex(re)),
            Err(e) => {
                let reason = e.to_string();
                let reason = reason.lines().last().unwrap_or("").trim().to_string();
                cx.error(value, format!("invalid regex: {reason}"));
                None
            }
        },
        _ => None,
    }
}
