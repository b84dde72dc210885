//! `{{ ... }}` templates: compiled once when the plan loads, rendered per request without parsing.
//! To be written: see docs/plan.md for the expression language.

use crate::plan::Feeder;

/// A compiled template: literal text and expressions.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
}

/// What a template can read while it renders: the user's own state.
#[derive(Debug)]
pub struct Scope<'a> {
    /// The user's variables, indexed by `VarId` (`None` until captured).
    pub vars: &'a [Option<String>],
    /// For each feeder (by `FeederId`), the row this user was handed.
    pub rows: &'a [usize],
    pub feeders: &'a [Feeder],
    /// The user's number within the run (0-based), `{{ user.id }}`.
    pub user_id: u64,
    pub rng: &'a mut fastrand::Rng,
}

impl Template {
    /// A template of literal text only.
    pub fn literal(s: impl Into<String>) -> Template {
        Template {
            segments: vec![Segment::Literal(s.into())],
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

    /// Appends the rendered text to `out`.
    pub fn render(&self, _scope: &mut Scope<'_>, out: &mut String) {
        for s in &self.segments {
            match s {
                Segment::Literal(l) => out.push_str(l),
            }
        }
    }
}

/// A JSON body whose strings may hold templates. Static bodies are serialized once.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonTemplate {
    static_bytes: Option<Vec<u8>>,
}

impl JsonTemplate {
    /// The serialized body, when nothing in it needs rendering.
    pub fn as_static(&self) -> Option<&[u8]> {
        self.static_bytes.as_deref()
    }

    /// Appends the rendered JSON document to `out`.
    pub fn render(&self, _scope: &mut Scope<'_>, out: &mut Vec<u8>) {
        if let Some(b) = &self.static_bytes {
            out.extend_from_slice(b);
        }
    }
}
