//! Reading the marked YAML tree: loading with positions, typed accessors that report a
//! [`Diagnostic`] instead of failing, and mapping template offsets back to lines and columns.

use std::collections::HashSet;
use std::time::Duration;

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};

use super::{Diagnostic, FileSource};
use crate::duration;
use crate::suggest;
use crate::template::{Resolver, Template, TemplateError};

pub(super) type Node<'i> = MarkedYaml<'i>;

/// How many times a source is patched to get past duplicate keys before giving up.
const MAX_DUPLICATES: usize = 64;
/// Characters tried in turn to rename a duplicate key; one of them makes it unique.
const RENAMES: &str = "ZQXJKVWYBCDFGHLMNPRST";
/// Deeper JSON bodies than this are surely a mistake, and recursion must stay bounded.
const MAX_JSON_DEPTH: usize = 64;

/// The text to build the tree from, and where the duplicate keys sit in it.
pub(super) struct Source {
    pub text: String,
    /// Character offsets of keys that repeat an earlier key of their mapping.
    pub duplicate_keys: HashSet<usize>,
}

/// Checks that `src` is well-formed YAML and finds every duplicate key.
///
/// saphyr rejects a duplicate key as a fatal error, which would hide every other problem. So
/// each reported duplicate is recorded and renamed in place (same length, so positions hold)
/// and the load is retried; the walk then skips the renamed keys.
pub(super) fn prepare(src: &str, diags: &mut Vec<Diagnostic>) -> Option<Source> {
    let mut text = src.to_string();
    let mut duplicate_keys = HashSet::new();
    let mut renames = RENAMES.chars().cycle().take(RENAMES.len() * MAX_DUPLICATES);
    loop {
        let error = match MarkedYaml::load_from_str(&text) {
            Ok(_) => {
                return Some(Source {
                    text,
                    duplicate_keys,
                })
            }
            Err(e) => e,
        };
        let at = error.marker().index();
        let line = error.marker().line() as u32;
        let column = error.marker().col() as u32 + 1;
        if error.info() != "duplicated key in mapping" {
            diags.push(Diagnostic::new(
                line,
                column,
                format!("invalid YAML: {}", error.info()),
            ));
            return None;
        }
        if duplicate_keys.insert(at) {
            let key = key_text(src, at);
            diags.push(
                Diagnostic::new(line, column, format!("duplicate key `{key}`"))
                    .with_hint("a key may appear once in a mapping; remove or rename one"),
            );
        }
        let renamed = renames
            .next()
            .and_then(|c| rename_key(&text, at, c))
            .filter(|_| duplicate_keys.len() <= MAX_DUPLICATES);
        text = renamed?;
    }
}

/// The key starting at character `at`, as written (for messages).
fn key_text(src: &str, at: usize) -> String {
    let rest: String = src.chars().skip(at).take(80).collect();
    let end = rest.find([':', ',', '\n', '}']).unwrap_or(rest.len());
    rest[..end].trim().trim_matches(['"', '\'']).to_string()
}

/// `text` with one character of the key at character `at` replaced by `with`, or `None` when the
/// key cannot be renamed safely (an escape or an empty quoted key).
fn rename_key(text: &str, at: usize, with: char) -> Option<String> {
    let mut chars = text.char_indices().skip(at);
    let (first_at, first) = chars.next()?;
    let (target_at, target) = if matches!(first, '"' | '\'') {
        chars.next()?
    } else {
        (first_at, first)
    };
    let unsafe_char = matches!(target, '\\' | '"' | '\'' | '\n' | '\r')
        || (first_at == target_at && !target.is_alphanumeric());
    if unsafe_char {
        return None;
    }
    if target == with {
        // Unchanged: the retry meets the same duplicate and tries the next character.
        return Some(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..target_at]);
    out.push(with);
    out.push_str(&text[target_at + target.len_utf8()..]);
    Some(out)
}

/// The node's data with any tag (`!foo`) removed.
pub(super) fn data<'n, 'i>(node: &'n Node<'i>) -> &'n YamlData<'i, Node<'i>> {
    let mut d = &node.data;
    while let YamlData::Tagged(_, inner) = d {
        d = &inner.data;
    }
    d
}

/// A scalar as text (numbers and booleans spelt as in YAML); `None` for null and collections.
pub(super) fn scalar_text(node: &Node<'_>) -> Option<String> {
    match data(node) {
        YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
        YamlData::Value(Scalar::Integer(i)) => Some(i.to_string()),
        YamlData::Value(Scalar::FloatingPoint(f)) => Some(f.to_string()),
        YamlData::Value(Scalar::Boolean(b)) => Some(b.to_string()),
        _ => None,
    }
}

/// What a node is, for "expected X, found Y" messages.
pub(super) fn describe(node: &Node<'_>) -> String {
    match data(node) {
        YamlData::Value(Scalar::String(s)) if s.chars().count() > 40 => {
            let head: String = s.chars().take(40).collect();
            format!("string {head:?}...")
        }
        YamlData::Value(Scalar::String(s)) => format!("string {s:?}"),
        YamlData::Value(Scalar::Integer(i)) => format!("number {i}"),
        YamlData::Value(Scalar::FloatingPoint(f)) => format!("number {f}"),
        YamlData::Value(Scalar::Boolean(b)) => format!("`{b}`"),
        YamlData::Value(Scalar::Null) => "nothing".to_string(),
        YamlData::Sequence(_) => "a list".to_string(),
        YamlData::Mapping(_) => "a mapping".to_string(),
        _ => "an unsupported value".to_string(),
    }
}

pub(super) fn is_null(node: &Node<'_>) -> bool {
    matches!(
        data(node),
        YamlData::Value(Scalar::Null) | YamlData::BadValue
    )
}

/// 1-based line of a node.
pub(super) fn line(node: &Node<'_>) -> u32 {
    node.span.start.line() as u32
}

/// A mapping's entries with keys as text, in source order, duplicates left out.
#[derive(Debug)]
pub(super) struct Fields<'n, 'i> {
    pub node: &'n Node<'i>,
    pub entries: Vec<(String, &'n Node<'i>, &'n Node<'i>)>,
}

impl<'n, 'i> Fields<'n, 'i> {
    pub fn get(&self, key: &str) -> Option<&'n Node<'i>> {
        self.entries.iter().find(|e| e.0 == key).map(|e| e.2)
    }

    pub fn key(&self, key: &str) -> Option<&'n Node<'i>> {
        self.entries.iter().find(|e| e.0 == key).map(|e| e.1)
    }

    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|e| e.0 == key)
    }
}

/// The walk's state: where the text is, where the files it names are read from, and every
/// problem found so far.
pub(super) struct Ctx<'s> {
    text: &'s str,
    duplicate_keys: &'s HashSet<usize>,
    pub files: &'s dyn FileSource,
    pub diags: Vec<Diagnostic>,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("diags", &self.diags)
            .finish_non_exhaustive()
    }
}

impl<'s> Ctx<'s> {
    pub fn new(source: &'s Source, files: &'s dyn FileSource, diags: Vec<Diagnostic>) -> Self {
        Ctx {
            text: &source.text,
            duplicate_keys: &source.duplicate_keys,
            files,
            diags,
        }
    }

    /// The plan text the nodes point into.
    pub fn source(&self) -> &'s str {
        self.text
    }

    pub fn error(&mut self, node: &Node<'_>, message: impl Into<String>) {
        let (line, column) = position(node);
        self.diags.push(Diagnostic::new(line, column, message));
    }

    pub fn error_hint(
        &mut self,
        node: &Node<'_>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let (line, column) = position(node);
        self.diags
            .push(Diagnostic::new(line, column, message).with_hint(hint));
    }

    /// `node` as a mapping; `what` names it in messages ("a user class").
    pub fn mapping<'n, 'i>(&mut self, node: &'n Node<'i>, what: &str) -> Option<Fields<'n, 'i>> {
        let YamlData::Mapping(map) = data(node) else {
            self.error(
                node,
                format!("expected {what} (a mapping), found {}", describe(node)),
            );
            return None;
        };
        let mut entries = Vec::with_capacity(map.len());
        for (key, value) in map {
            if self.duplicate_keys.contains(&key.span.start.index()) {
                continue;
            }
            match scalar_text(key) {
                Some(k) => entries.push((k, key, value)),
                None => self.error(key, format!("a key must be text, found {}", describe(key))),
            }
        }
        Some(Fields { node, entries })
    }

    /// Like [`Ctx::mapping`], reporting every key not in `allowed`.
    pub fn fields<'n, 'i>(
        &mut self,
        node: &'n Node<'i>,
        what: &str,
        allowed: &[&str],
    ) -> Option<Fields<'n, 'i>> {
        let fields = self.mapping(node, what)?;
        for (key, key_node, _) in &fields.entries {
            if !allowed.contains(&key.as_str()) {
                self.error_hint(
                    key_node,
                    format!("unknown key `{key}` in {what}"),
                    suggest::hint(key, allowed),
                );
            }
        }
        Some(fields)
    }

    pub fn list<'n, 'i>(&mut self, node: &'n Node<'i>, label: &str) -> Option<&'n [Node<'i>]> {
        match data(node) {
            YamlData::Sequence(items) => Some(items),
            _ => {
                self.error(
                    node,
                    format!("{label} must be a list, found {}", describe(node)),
                );
                None
            }
        }
    }

    /// A string, and only a string.
    pub fn string(&mut self, node: &Node<'_>, label: &str) -> Option<String> {
        match data(node) {
            YamlData::Value(Scalar::String(s)) => Some(s.to_string()),
            _ => {
                self.error(
                    node,
                    format!("{label} must be a string, found {}", describe(node)),
                );
                None
            }
        }
    }

    /// Any scalar but null, as text: `name: 404` is the string "404".
    pub fn text(&mut self, node: &Node<'_>, label: &str) -> Option<String> {
        let text = scalar_text(node);
        if text.is_none() {
            self.error(
                node,
                format!("{label} must be a string, found {}", describe(node)),
            );
        }
        text
    }

    /// One string or a list of strings.
    pub fn strings(&mut self, node: &Node<'_>, label: &str) -> Option<Vec<String>> {
        if let YamlData::Sequence(items) = data(node) {
            let all: Vec<Option<String>> = items.iter().map(|i| self.text(i, label)).collect();
            return all.into_iter().collect();
        }
        self.text(node, label).map(|s| vec![s])
    }

    /// `true` or `false`, and only those.
    pub fn boolean(&mut self, node: &Node<'_>, label: &str) -> Option<bool> {
        match data(node) {
            YamlData::Value(Scalar::Boolean(b)) => Some(*b),
            _ => {
                self.error(
                    node,
                    format!("{label} must be true or false, found {}", describe(node)),
                );
                None
            }
        }
    }

    pub fn uint(&mut self, node: &Node<'_>, label: &str, min: u32) -> Option<u32> {
        match data(node) {
            YamlData::Value(Scalar::Integer(i))
                if *i >= i64::from(min) && *i <= i64::from(u32::MAX) =>
            {
                Some(*i as u32)
            }
            _ => {
                self.error(
                    node,
                    format!(
                        "{label} must be a whole number >= {min}, found {}",
                        describe(node)
                    ),
                );
                None
            }
        }
    }

    pub fn number(&mut self, node: &Node<'_>, label: &str) -> Option<f64> {
        match data(node) {
            YamlData::Value(Scalar::Integer(i)) => Some(*i as f64),
            YamlData::Value(Scalar::FloatingPoint(f)) if f.is_finite() => Some(f.into_inner()),
            _ => {
                self.error(
                    node,
                    format!("{label} must be a number, found {}", describe(node)),
                );
                None
            }
        }
    }

    /// `250ms`, `1m30s`, or a bare number of seconds.
    pub fn duration(&mut self, node: &Node<'_>, label: &str) -> Option<Duration> {
        let parsed = match data(node) {
            YamlData::Value(Scalar::Integer(i)) => u64::try_from(*i)
                .map(Duration::from_secs)
                .map_err(|_| "a duration cannot be negative".to_string()),
            YamlData::Value(Scalar::FloatingPoint(f)) => {
                Duration::try_from_secs_f64(f.into_inner())
                    .map_err(|_| format!("{f} is not a valid duration"))
            }
            YamlData::Value(Scalar::String(s)) => duration::parse(s),
            _ => Err(format!("found {}", describe(node))),
        };
        parsed
            .map_err(|e| {
                self.error_hint(
                    node,
                    format!("{label} must be a duration: {e}"),
                    "write e.g. 250ms, 10s, 1m30s or 2h",
                )
            })
            .ok()
    }

    /// Compiles a scalar as a template, reporting each error at its place inside the scalar.
    pub fn template(
        &mut self,
        node: &Node<'_>,
        label: &str,
        resolver: &Resolver<'_>,
    ) -> Option<Template> {
        let text = self.text(node, label)?;
        Template::compile(&text, resolver)
            .map_err(|errors| self.template_errors(node, &text, errors))
            .ok()
    }

    fn template_errors(&mut self, node: &Node<'_>, text: &str, errors: Vec<TemplateError>) {
        for e in errors {
            let (line, column) = self.offset_position(node, text, e.offset);
            let mut d = Diagnostic::new(line, column, e.message);
            d.hint = e.hint;
            self.diags.push(d);
        }
    }

    /// Where byte `offset` of a scalar's value is in the source. Exact for one-line plain and
    /// quoted scalars without escapes; otherwise the scalar's start.
    fn offset_position(&self, node: &Node<'_>, value: &str, offset: usize) -> (u32, u32) {
        let (line, column) = position(node);
        let (start, end) = (node.span.start, node.span.end);
        if start.line() != end.line() || !value.is_char_boundary(offset) {
            return (line, column);
        }
        let length = end.index().saturating_sub(start.index());
        let written: String = self.text.chars().skip(start.index()).take(length).collect();
        let before = value[..offset].chars().count() as u32;
        let quoted = written.starts_with(['"', '\''])
            && written.len() == value.len() + 2
            && written.get(1..written.len() - 1) == Some(value);
        if written == value {
            (line, column + before)
        } else if quoted {
            (line, column + 1 + before)
        } else {
            (line, column)
        }
    }

    /// A YAML value as JSON. With a resolver, every string is checked as a template so errors
    /// point into the YAML.
    pub fn json(
        &mut self,
        node: &Node<'_>,
        resolver: Option<&Resolver<'_>>,
    ) -> Option<serde_json::Value> {
        self.json_at(node, resolver, 0)
    }

    fn json_at(
        &mut self,
        node: &Node<'_>,
        resolver: Option<&Resolver<'_>>,
        depth: usize,
    ) -> Option<serde_json::Value> {
        use serde_json::Value;
        if depth > MAX_JSON_DEPTH {
            self.error(
                node,
                format!("JSON nested deeper than {MAX_JSON_DEPTH} levels"),
            );
            return None;
        }
        match data(node) {
            YamlData::Value(Scalar::Null) => Some(Value::Null),
            YamlData::Value(Scalar::Boolean(b)) => Some(Value::Bool(*b)),
            YamlData::Value(Scalar::Integer(i)) => Some(Value::from(*i)),
            YamlData::Value(Scalar::FloatingPoint(f)) => {
                match serde_json::Number::from_f64(f.into_inner()) {
                    Some(n) => Some(Value::Number(n)),
                    None => {
                        self.error(node, format!("JSON has no number {f}"));
                        None
                    }
                }
            }
            YamlData::Value(Scalar::String(s)) => {
                if let Some(r) = resolver {
                    self.template(node, "a JSON string", r)?;
                }
                Some(Value::String(s.to_string()))
            }
            YamlData::Sequence(items) => {
                let values: Vec<Option<Value>> = items
                    .iter()
                    .map(|i| self.json_at(i, resolver, depth + 1))
                    .collect();
                values
                    .into_iter()
                    .collect::<Option<Vec<_>>>()
                    .map(Value::Array)
            }
            YamlData::Mapping(_) => {
                let fields = self.mapping(node, "a JSON object")?;
                let mut object = serde_json::Map::new();
                let mut ok = true;
                for (key, key_node, value) in &fields.entries {
                    if let Some(r) = resolver {
                        ok &= self.template(key_node, "a JSON key", r).is_some();
                    }
                    match self.json_at(value, resolver, depth + 1) {
                        Some(v) => drop(object.insert(key.clone(), v)),
                        None => ok = false,
                    }
                }
                ok.then_some(Value::Object(object))
            }
            _ => {
                self.error(
                    node,
                    format!("expected a JSON value, found {}", describe(node)),
                );
                None
            }
        }
    }
}

/// 1-based line and column of a node's start.
pub(super) fn position(node: &Node<'_>) -> (u32, u32) {
    (
        node.span.start.line() as u32,
        node.span.start.col() as u32 + 1,
    )
}
