//! The plan: a load test described in YAML, parsed and validated into typed, compiled form.
//!
//! [`Plan::parse`] reads the YAML with positions, reports every problem at once as
//! [`Diagnostics`] (line, column, what is wrong, a hint) and compiles every template, so nothing is
//! parsed again while the test runs. The reference is docs/plan.md.

mod bundle;
mod csv;
mod diagnostics;
mod parse;
mod request;
mod script;
mod yaml;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use bundle::Bundle;
pub use diagnostics::{Diagnostic, Diagnostics};
pub use script::{Call, Script, DEFAULT_MEMORY, DEFAULT_TIMEOUT};

use crate::jsonpath::JsonPath;
use crate::template::{JsonTemplate, Table, Template, VarId};
use crate::Method;

/// A validated, compiled plan. Cheap to share (`Arc<Plan>`) between users.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Base URL (`http(s)://host[:port][/base]`) for relative request paths; `--host` overrides it.
    pub host: Option<String>,
    /// Response body bytes kept for checks and captures at most (`max_body`); `None` is the
    /// worker's default, 16 MiB.
    pub max_body: Option<u64>,
    /// Users speak HTTP/2 (`http2: true`): by ALPN over TLS, by prior knowledge (h2c) over
    /// cleartext; a class's own `http2` overrides it.
    pub http2: bool,
    pub users: Vec<UserClass>,
    /// The feeders' tables (`data:`), indexed by [`FeederId`](crate::template::FeederId);
    /// templates refer to them by index.
    pub feeders: Vec<Table>,
    pub shape: Option<Shape>,
    pub thresholds: Vec<Threshold>,
}

/// One kind of simulated user (Locust's `User` class).
#[derive(Debug, Clone)]
pub struct UserClass {
    pub name: String,
    /// Relative share of the users that are not fixed; >= 1.
    pub weight: u32,
    /// When set, exactly this many users of the class run, whatever the total (Locust's
    /// `fixed_count`); they are started before the weighted ones.
    pub fixed_count: Option<u32>,
    pub wait: Wait,
    /// Overrides the plan's host for this class.
    pub host: Option<String>,
    /// Steps run once when a user starts, before its first task.
    pub on_start: Vec<Step>,
    /// Steps run once when a user is stopped gracefully.
    pub on_stop: Vec<Step>,
    /// Non-empty after validation (unless tag filtering removed every task, see
    /// [`Plan::filter_tags`]).
    pub tasks: Vec<Task>,
    /// Names of the class's variables, indexed by [`VarId`]: every capture target, and every
    /// `vars.NAME` its script names.
    pub vars: Vec<String>,
    /// The Luau script whose functions `call:` steps run (docs/scripting.md).
    pub script: Option<Script>,
    /// Each user keeps a cookie jar (`cookies: false` turns it off), as Locust's HttpUser keeps
    /// a `requests.Session`.
    pub cookies: bool,
    /// The class's own `http2`, when it sets one (see [`UserClass::http2`]).
    pub http2: Option<bool>,
}

/// How long a user waits after each task (Locust's `wait_time`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wait {
    /// `constant: 1s`
    Constant(Duration),
    /// `between: [1s, 3s]`, uniform, inclusive.
    Between(Duration, Duration),
    /// `pacing: 2s` (Locust's `constant_pacing`): task *k* of a user is due this long times *k*
    /// after its first; a user behind its schedule starts tasks at once until it catches up.
    Pacing(Duration),
    /// `throughput: 5` (Locust's `constant_throughput`): tasks per second per user; pacing of
    /// `1/throughput` seconds.
    Throughput(f64),
}

/// A weighted unit of work: one step, or a sequence run in order.
#[derive(Debug, Clone)]
pub struct Task {
    /// Relative chance that this task is picked next; >= 1.
    pub weight: u32,
    pub tags: Vec<String>,
    /// One step for `{get: ...}` or `{call: ...}`; several for `sequence: [...]`.
    pub steps: Vec<Step>,
}

/// One thing a user does in a task or hook: a request of the plan, or a call of a function of
/// the class's script. Lists of them keep the order they are written in.
#[derive(Debug, Clone)]
// Built once per plan and read in place: boxing the request would only add an indirection.
#[allow(clippy::large_enum_variant)]
pub enum Step {
    Request(Request),
    Call(Call),
}

impl Step {
    /// The request, when the step is one.
    pub fn request(&self) -> Option<&Request> {
        match self {
            Step::Request(r) => Some(r),
            Step::Call(_) => None,
        }
    }
}

/// One HTTP request with its checks and captures.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// A path (joined to the host) or an absolute `http(s)://` URL.
    pub url: Template,
    /// The stats entry name. When absent the rendered URL (path and query) is the name.
    pub name: Option<String>,
    pub headers: Vec<(String, Template)>,
    pub query: Vec<(String, Template)>,
    pub body: Body,
    pub timeout: Option<Duration>,
    pub check: Check,
    pub captures: Vec<Capture>,
    /// Follow redirects (default), as requests does; `false` makes the 3xx the response.
    pub follow_redirects: bool,
    /// Where the request is written in the plan (1-based), for messages at run time.
    pub line: u32,
}

#[derive(Debug, Clone, Default)]
pub enum Body {
    #[default]
    Empty,
    /// `json: {...}`: sent with `content-type: application/json` unless a header says otherwise.
    Json(JsonTemplate),
    /// `body: "..."`: sent as is.
    Text(Template),
    /// `form: {k: v}`: sent `application/x-www-form-urlencoded`; values are templates.
    Form(Vec<(String, Template)>),
    /// `multipart: {fields: ..., files: ...}`: sent `multipart/form-data`.
    Multipart(Multipart),
}

/// A `multipart/form-data` body: text fields (templates), then files.
#[derive(Debug, Clone, Default)]
pub struct Multipart {
    pub fields: Vec<(String, Template)>,
    pub files: Vec<FilePart>,
}

/// A file sent as one part of a multipart body, read when the plan is loaded (and shipped to
/// workers with it).
#[derive(Debug, Clone)]
pub struct FilePart {
    /// The form field's name.
    pub name: String,
    /// The file name sent (the path's last component, as requests sends it).
    pub filename: String,
    /// The part's `content-type`; none unless the plan gives one (as requests).
    pub content_type: Option<String>,
    pub content: std::sync::Arc<[u8]>,
}

/// The largest file a multipart body may carry: every worker holds it in memory.
pub const MAX_PART_FILE: usize = 16 * 1024 * 1024;

/// What makes a response a failure. With no `status`, any status >= 400 fails (as in Locust).
#[derive(Debug, Clone, Default)]
pub struct Check {
    pub status: Option<Vec<u16>>,
    pub body_contains: Vec<String>,
    /// Each JSON path must select a value equal to the given one.
    pub json: Vec<(JsonPath, serde_json::Value)>,
    pub max_time: Option<Duration>,
}

/// Stores part of a response in a user variable; a capture that finds nothing fails the request.
#[derive(Debug, Clone)]
pub struct Capture {
    pub var: VarId,
    pub from: CaptureSource,
}

#[derive(Debug, Clone)]
pub enum CaptureSource {
    /// `{json: $.token}`: a string is stored as is, any other value as its JSON text.
    Json(JsonPath),
    /// `{header: x-request-id}` (case-insensitive).
    Header(String),
    /// `{regex: 'id="(\d+)"'}`: the first group, or the whole match when there is none.
    Regex(regex_lite::Regex),
}

/// A load shape: stages run one after another; each ramps to `users` at `spawn_rate` and holds
/// until its `duration` (counted from the stage's start) ends. The run ends after the last stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub users: u32,
    pub spawn_rate: f64,
}

/// A pass/fail rule checked on the final statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub metric: Metric,
    /// Restricts the rule to entries with this name (any method); `None` means Aggregated.
    pub name: Option<String>,
    pub max: Option<f64>,
    pub min: Option<f64>,
}

/// What a threshold measures. Times are in milliseconds, ratios in 0..=1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// Failures / requests.
    FailRatio,
    /// Requests per second over the run.
    Rps,
    /// A response-time percentile, e.g. `p95` is `Percentile(0.95)`, `p99.9` is `Percentile(0.999)`.
    Percentile(f64),
    /// Mean response time.
    AvgResponseTime,
    /// Largest response time.
    MaxResponseTime,
}

/// Where a plan's referenced files (feeder CSVs) come from: the plan's folder on disk, or the
/// files a master shipped along with the plan.
pub trait FileSource {
    /// Reads `path` exactly as written in the plan.
    fn read(&self, path: &str) -> io::Result<String>;

    /// Reads `path` as bytes (a multipart file need not be text).
    fn read_bytes(&self, path: &str) -> io::Result<Vec<u8>> {
        self.read(path).map(String::into_bytes)
    }
}

/// Files relative to a folder (the plan file's folder).
#[derive(Debug, Clone)]
pub struct Dir(pub PathBuf);

impl FileSource for Dir {
    fn read(&self, path: &str) -> io::Result<String> {
        std::fs::read_to_string(self.0.join(path))
    }

    fn read_bytes(&self, path: &str) -> io::Result<Vec<u8>> {
        let path = self.0.join(path);
        let size = std::fs::metadata(&path)?.len();
        if size > MAX_PART_FILE as u64 {
            return Err(io::Error::other(format!(
                "{size} bytes is more than the {} MiB a plan's file may hold",
                MAX_PART_FILE >> 20
            )));
        }
        std::fs::read(path)
    }
}

/// Files held in memory, keyed by the path written in the plan; a file that is not UTF-8 is
/// held in base64 under [`bundle::binary_key`].
impl FileSource for HashMap<String, String> {
    fn read(&self, path: &str) -> io::Result<String> {
        self.get(path).cloned().ok_or_else(|| not_shipped(path))
    }

    fn read_bytes(&self, path: &str) -> io::Result<Vec<u8>> {
        if let Some(text) = self.get(path) {
            return Ok(text.clone().into_bytes());
        }
        let encoded = self
            .get(&bundle::binary_key(path))
            .ok_or_else(|| not_shipped(path))?;
        bundle::decode_binary(encoded)
    }
}

fn not_shipped(path: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{path} was not shipped"))
}

impl Plan {
    /// Whether the users of `class` speak HTTP/2: the class's `http2`, else the plan's.
    pub fn http2(&self, class: &UserClass) -> bool {
        class.http2.unwrap_or(self.http2)
    }

    /// Parses and validates a plan. `origin` names the source in messages (usually its path).
    /// Every problem found is reported, not just the first.
    pub fn parse(src: &str, origin: &str, files: &dyn FileSource) -> Result<Plan, Diagnostics> {
        parse::parse(src, origin, files)
    }

    /// Reads a plan file; feeder paths are relative to its folder.
    pub fn load(path: &Path) -> Result<Plan, Diagnostics> {
        Bundle::load(path).map(|(_, plan)| plan)
    }

    /// Keeps the tasks selected by Locust's `--tags` / `--exclude-tags` rules: with `include`
    /// non-empty only tasks with one of those tags stay; tasks with an excluded tag go. Classes
    /// left without tasks are dropped. Returns the names of the dropped classes.
    pub fn filter_tags(&mut self, include: &[String], exclude: &[String]) -> Vec<String> {
        let keep = |t: &Task| {
            (include.is_empty() || t.tags.iter().any(|g| include.contains(g)))
                && !t.tags.iter().any(|g| exclude.contains(g))
        };
        let mut dropped = Vec::new();
        for class in &mut self.users {
            class.tasks.retain(keep);
        }
        self.users.retain(|c| {
            if c.tasks.is_empty() {
                dropped.push(c.name.clone());
                false
            } else {
                true
            }
        });
        dropped
    }
}

#[cfg(test)]
mod session_tests;
#[cfg(test)]
mod tests;
