//! JSON bodies whose strings (and keys) may hold templates.

use std::fmt;

use serde_json::Value;

use super::{Resolver, Scope, Template, TemplateError};

/// A JSON body whose strings may hold templates. Static bodies are serialized once.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonTemplate {
    static_bytes: Option<Vec<u8>>,
    /// The document as serialized bytes between the templated strings; empty when static.
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Raw(Vec<u8>),
    /// A string (value or key): rendered, escaped and quoted.
    Quoted(Template),
    /// A string value that is exactly one `{{ rand.int(..) }}`: rendered bare, as a JSON number.
    Number(Template),
}

impl JsonTemplate {
    /// A body with nothing to render.
    pub fn literal(value: &Value) -> JsonTemplate {
        let mut bytes = Vec::new();
        write_static(value, &mut bytes);
        JsonTemplate {
            static_bytes: Some(bytes),
            parts: Vec::new(),
        }
    }

    /// Compiles every string of `value` (object keys included) as a template. Errors carry byte
    /// offsets into the string they come from.
    pub fn compile(
        value: &Value,
        resolver: &Resolver<'_>,
    ) -> Result<JsonTemplate, Vec<TemplateError>> {
        let mut builder = Builder {
            resolver,
            parts: Vec::new(),
            raw: Vec::new(),
            errors: Vec::new(),
        };
        builder.value(value);
        if !builder.errors.is_empty() {
            return Err(builder.errors);
        }
        if builder.parts.is_empty() {
            return Ok(JsonTemplate {
                static_bytes: Some(builder.raw),
                parts: Vec::new(),
            });
        }
        builder.flush();
        Ok(JsonTemplate {
            static_bytes: None,
            parts: builder.parts,
        })
    }

    /// The serialized body, when nothing in it needs rendering.
    pub fn as_static(&self) -> Option<&[u8]> {
        self.static_bytes.as_deref()
    }

    /// Appends the rendered JSON document to `out`.
    pub fn render(&self, scope: &mut Scope<'_>, out: &mut Vec<u8>) {
        if let Some(b) = &self.static_bytes {
            out.extend_from_slice(b);
            return;
        }
        for part in &self.parts {
            match part {
                Part::Raw(bytes) => out.extend_from_slice(bytes),
                Part::Quoted(t) => {
                    out.push(b'"');
                    t.render_to(scope, &mut Escaped(out));
                    out.push(b'"');
                }
                Part::Number(t) => t.render_to(scope, &mut Bytes(out)),
            }
        }
    }
}

struct Builder<'r, 'a> {
    resolver: &'r Resolver<'a>,
    parts: Vec<Part>,
    /// Serialized bytes not yet moved into `parts`.
    raw: Vec<u8>,
    errors: Vec<TemplateError>,
}

impl Builder<'_, '_> {
    fn value(&mut self, value: &Value) {
        match value {
            Value::String(s) => self.string(s, true),
            Value::Array(items) => {
                self.raw.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.raw.push(b',');
                    }
                    self.value(item);
                }
                self.raw.push(b']');
            }
            Value::Object(map) => {
                self.raw.push(b'{');
                for (i, (key, item)) in map.iter().enumerate() {
                    if i > 0 {
                        self.raw.push(b',');
                    }
                    self.string(key, false);
                    self.raw.push(b':');
                    self.value(item);
                }
                self.raw.push(b'}');
            }
            other => write_static(other, &mut self.raw),
        }
    }

    fn string(&mut self, s: &str, may_be_number: bool) {
        match Template::compile(s, self.resolver) {
            Ok(t) => {
                if let Some(text) = t.as_static() {
                    write_json_string(text, &mut self.raw);
                } else {
                    self.flush();
                    let is_number = may_be_number && t.is_single_int();
                    self.parts.push(if is_number {
                        Part::Number(t)
                    } else {
                        Part::Quoted(t)
                    });
                }
            }
            Err(e) => self.errors.extend(e),
        }
    }

    fn flush(&mut self) {
        if !self.raw.is_empty() {
            self.parts.push(Part::Raw(std::mem::take(&mut self.raw)));
        }
    }
}

fn write_static(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::String(s) => write_json_string(s, out),
        // Numbers, booleans and null have one compact spelling; containers recurse.
        Value::Null | Value::Bool(_) | Value::Number(_) => {
            out.extend_from_slice(value.to_string().as_bytes())
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_static(item, out);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_string(key, out);
                out.push(b':');
                write_static(item, out);
            }
            out.push(b'}');
        }
    }
}

fn write_json_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    escape_into(s, out);
    out.push(b'"');
}

fn escape_into(s: &str, out: &mut Vec<u8>) {
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                let hex = b"0123456789abcdef";
                let n = c as usize;
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', hex[n >> 4], hex[n & 0xF]]);
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// Writes text as the inside of a JSON string.
struct Escaped<'a>(&'a mut Vec<u8>);

impl fmt::Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_into(s, self.0);
        Ok(())
    }
}

/// Writes text as UTF-8 bytes.
struct Bytes<'a>(&'a mut Vec<u8>);

impl fmt::Write for Bytes<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}
