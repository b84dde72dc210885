//! `{{ ... }}` templates: compiled once when the plan loads, rendered per request without parsing.
//!
//! Compiling resolves every name to an index (a [`VarId`], a [`FeederId`] and column) or, for
//! the plan's constant `vars`, to literal text, so rendering only walks a list of segments and
//! pushes text into the caller's buffer. The expression language is described in docs/plan.md.

mod expr;
mod json;

use std::fmt;
use std::sync::Arc;

use crate::timestamp::{unix_now, unix_now_ms, write_rfc3339};

pub use json::JsonTemplate;

/// Index of a variable in a user class's variables ([`Resolver::vars`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VarId(pub u32);

/// Index of a feeder's table in [`Resolver::feeders`] and [`Scope::feeders`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FeederId(pub u32);

/// A feeder's data as templates read it (`row.<name>.<column>`): rows handed to users in
/// turn, user *n* gets row *n mod rows*.
#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub columns: Vec<String>,
    /// Non-empty, each row as long as `columns`.
    pub rows: Arc<Vec<Vec<String>>>,
}

/// A compiled template: literal text and expressions.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Var(VarId),
    Column { feeder: FeederId, column: usize },
    RandInt { low: i64, high: i64 },
    Uuid,
    RandString(usize),
    Choice(Vec<String>),
    UserId,
    WorkerIndex,
    WorkerCount,
    NowUnix,
    NowUnixMs,
    NowRfc3339,
}

/// What a template can read while it renders: the user's own state.
#[derive(Debug)]
pub struct Scope<'a> {
    /// The user's variables, indexed by `VarId` (`None` until captured).
    pub vars: &'a [Option<String>],
    /// For each feeder (by `FeederId`), the row this user was handed.
    pub rows: &'a [usize],
    pub feeders: &'a [Table],
    /// The user's number within the run (0-based, unique among the run's live users on every
    /// worker), `{{ user.id }}`.
    pub user_id: u64,
    /// The worker's place in the fleet, `{{ worker.index }}` (0-based) and `{{ worker.count }}`.
    pub worker_index: u32,
    pub worker_count: u32,
    pub rng: &'a mut fastrand::Rng,
}

/// The names a template may use, as known when the plan is compiled.
#[derive(Debug, Clone, Copy, Default)]
pub struct Resolver<'a> {
    /// The user class's variables (its capture targets), indexed by [`VarId`].
    pub vars: &'a [String],
    /// The plan's `vars`: constants, inlined at compile time. A class variable of the same name
    /// wins.
    pub constants: &'a [(String, String)],
    /// The plan's feeders, indexed by [`FeederId`].
    pub feeders: &'a [Table],
}

/// Why a template does not compile, and where: `offset` is a byte offset into the template text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl TemplateError {
    fn new(offset: usize, message: impl Into<String>) -> Self {
        TemplateError {
            offset,
            message: message.into(),
            hint: None,
        }
    }

    fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl Template {
    /// A template of literal text only.
    pub fn literal(s: impl Into<String>) -> Template {
        Template {
            segments: vec![Segment::Literal(s.into())],
        }
    }

    /// Compiles `src`, resolving names with `resolver`. Every bad expression is reported.
    pub fn compile(src: &str, resolver: &Resolver<'_>) -> Result<Template, Vec<TemplateError>> {
        let mut segments: Vec<Segment> = Vec::new();
        let mut errors = Vec::new();
        let mut rest_at = 0;
        while let Some(found) = src[rest_at..].find("{{") {
            let open = rest_at + found;
            push_literal(&mut segments, &src[rest_at..open]);
            let Some(close) = expr::closing_braces(src, open + 2) else {
                errors.push(
                    TemplateError::new(open, "`{{` is not closed by `}}`")
                        .with_hint("write a literal `{{` as {{ \"{{\" }}"),
                );
                return Err(errors);
            };
            match expr::compile(&src[open + 2..close], open + 2, resolver) {
                Ok(Segment::Literal(text)) => push_literal(&mut segments, &text),
                Ok(segment) => segments.push(segment),
                Err(e) => errors.push(e),
            }
            rest_at = close + 2;
        }
        push_literal(&mut segments, &src[rest_at..]);
        if errors.is_empty() {
            Ok(Template { segments })
        } else {
            Err(errors)
        }
    }

    /// The text, when the template has no expressions (so it can be used without rendering).
    pub fn as_static(&self) -> Option<&str> {
        match self.segments.as_slice() {
            [] => Some(""),
            [Segment::Literal(s)] => Some(s),
            _ => None,
        }
    }

    /// Appends the rendered text to `out`. An unset variable renders as nothing.
    pub fn render(&self, scope: &mut Scope<'_>, out: &mut String) {
        self.render_to(scope, out);
    }

    /// True for exactly one `{{ rand.int(..) }}` and nothing else: such a JSON string value is
    /// sent as a number.
    pub(crate) fn is_single_int(&self) -> bool {
        matches!(self.segments.as_slice(), [Segment::RandInt { .. }])
    }

    /// Renders into any text sink, so JSON bodies escape while they render instead of going
    /// through a temporary string.
    fn render_to<W: fmt::Write>(&self, scope: &mut Scope<'_>, out: &mut W) {
        for segment in &self.segments {
            // Sinks used here never fail: a String, a byte vector, or an escaper over one.
            let _ = render_segment(segment, scope, out);
        }
    }
}

fn push_literal(segments: &mut Vec<Segment>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(Segment::Literal(last)) = segments.last_mut() {
        last.push_str(text);
    } else {
        segments.push(Segment::Literal(text.to_string()));
    }
}

fn render_segment<W: fmt::Write>(
    segment: &Segment,
    scope: &mut Scope<'_>,
    out: &mut W,
) -> fmt::Result {
    match segment {
        Segment::Literal(text) => out.write_str(text),
        Segment::Var(id) => {
            let value = scope.vars.get(id.0 as usize).and_then(Option::as_deref);
            out.write_str(value.unwrap_or(""))
        }
        Segment::Column { feeder, column } => {
            let index = feeder.0 as usize;
            let cell = scope.feeders.get(index).and_then(|f| {
                let row = scope.rows.get(index).copied().unwrap_or(0);
                f.rows.get(row % f.rows.len().max(1))?.get(*column)
            });
            out.write_str(cell.map_or("", String::as_str))
        }
        Segment::RandInt { low, high } => write!(out, "{}", scope.rng.i64(*low..=*high)),
        Segment::Uuid => write_uuid(scope.rng.u128(..), out),
        Segment::RandString(len) => {
            (0..*len).try_for_each(|_| out.write_char(scope.rng.alphanumeric()))
        }
        Segment::Choice(options) => out.write_str(&options[scope.rng.usize(..options.len())]),
        Segment::UserId => write!(out, "{}", scope.user_id),
        Segment::WorkerIndex => write!(out, "{}", scope.worker_index),
        Segment::WorkerCount => write!(out, "{}", scope.worker_count),
        Segment::NowUnix => write!(out, "{}", unix_now()),
        Segment::NowUnixMs => write!(out, "{}", unix_now_ms()),
        Segment::NowRfc3339 => write_rfc3339(unix_now(), out),
    }
}

/// A version 4 (random) UUID from 128 random bits: lowercase, hyphenated.
fn write_uuid<W: fmt::Write>(bits: u128, out: &mut W) -> fmt::Result {
    let v = (bits & !(0xF << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    write!(
        out,
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        v >> 96,
        (v >> 80) & 0xFFFF,
        (v >> 64) & 0xFFFF,
        (v >> 48) & 0xFFFF,
        v & 0xFFFF_FFFF_FFFF
    )
}

#[cfg(test)]
mod tests;
