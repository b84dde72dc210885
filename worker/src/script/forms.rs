//! `multipart = {fields = {...}, files = {...}}` of a script's request: the plan's `multipart`
//! (requests' `files=` with `data=`), with each file's content given by the script (a script
//! reads no files).

use std::borrow::Cow;

use hatchery_core::plan::FilePart;
use mlua::{Table, Value};

use super::http::{pairs, text, Payload};
use crate::body;

const KEYS: [&str; 2] = ["fields", "files"];
const FILE_KEYS: [&str; 3] = ["content", "filename", "content_type"];

/// The `multipart` option, encoded between a fresh boundary.
pub(super) fn multipart(v: Value) -> Result<Payload, String> {
    let Value::Table(t) = v else {
        return Err(format!(
            "`multipart` must be a table of `fields` and `files`, found {}",
            v.type_name()
        ));
    };
    known(&t, "multipart", &KEYS)?;
    let get = |key: &str| t.raw_get::<Value>(key).map_err(|e| e.to_string());
    let fields = pairs("multipart.fields", get("fields")?)?;
    let files = files(get("files")?)?;
    let boundary = body::boundary();
    let mut bytes = Vec::new();
    let fields = fields.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    body::multipart(&mut bytes, &boundary, fields, &files);
    Ok(Payload {
        bytes,
        content_type: Some(Cow::Owned(body::multipart_type(&boundary))),
    })
}

/// `files = {name = content}` or `{name = {content = ..., filename = ..., content_type = ...}}`,
/// sorted by name; a file's name is its field's unless `filename` says otherwise (as requests
/// names a file given as bytes).
fn files(v: Value) -> Result<Vec<FilePart>, String> {
    let m = match v {
        Value::Nil => return Ok(Vec::new()),
        Value::Table(m) => m,
        other => {
            return Err(format!(
                "`multipart.files` must be a table, found {}",
                other.type_name()
            ))
        }
    };
    let mut files = Vec::new();
    for pair in m.pairs::<String, Value>() {
        let (name, spec) = pair.map_err(|_| "`multipart.files` keys must be text".to_string())?;
        let key = format!("multipart.files.{name}");
        let part = match spec {
            Value::String(s) => FilePart {
                filename: name.clone(),
                name,
                content_type: None,
                content: s.as_bytes().as_ref().into(),
            },
            Value::Table(f) => file(&key, name, &f)?,
            other => {
                return Err(format!(
                    "`{key}` must be the file's content or a table of {}, found {}",
                    FILE_KEYS.join(", "),
                    other.type_name()
                ))
            }
        };
        files.push(part);
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

fn file(key: &str, name: String, f: &Table) -> Result<FilePart, String> {
    known(f, key, &FILE_KEYS)?;
    let get = |k: &str| f.raw_get::<Value>(k).map_err(|e| e.to_string());
    let content = match get("content")? {
        Value::String(s) => s.as_bytes().as_ref().into(),
        other => {
            return Err(format!(
                "`{key}.content` must be a string, found {}",
                other.type_name()
            ))
        }
    };
    let filename = match get("filename")? {
        Value::Nil => name.clone(),
        v => text(&format!("{key}.filename"), v)?,
    };
    let content_type = match get("content_type")? {
        Value::Nil => None,
        v => {
            let t = text(&format!("{key}.content_type"), v)?;
            hatchery_core::validate::header_value("content-type", &t)
                .map_err(|e| format!("`{key}.content_type`: {e}"))?;
            Some(t)
        }
    };
    Ok(FilePart {
        name,
        filename,
        content_type,
        content,
    })
}

/// Refuses a key of `t` (the option `what`) that is not one of `keys`.
fn known(t: &Table, what: &str, keys: &[&str]) -> Result<(), String> {
    for pair in t.pairs::<Value, Value>() {
        let (key, _) = pair.map_err(|e| e.to_string())?;
        let key = key.to_string().unwrap_or_default();
        if !keys.contains(&key.as_str()) {
            return Err(format!(
                "unknown key `{key}` in `{what}`: the keys are {}",
                keys.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use mlua::Lua;

    use super::*;

    fn multipart_of(src: &str) -> Result<Payload, String> {
        let lua = Lua::new();
        multipart(lua.load(src).eval().unwrap())
    }

    #[test]
    fn a_multipart_body_holds_the_sorted_fields_then_the_sorted_files() {
        let p = multipart_of(
            r#"{fields = {title = "holiday", n = 2}, files = {
                photo = {content = "\0\255", filename = "beach.jpg", content_type = "image/jpeg"},
                notes = "some text"}}"#,
        )
        .unwrap();
        let content_type = p.content_type.unwrap();
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .unwrap();
        assert_eq!(boundary.len(), 32);
        let mut expected = Vec::new();
        let fields = [("n", "2"), ("title", "holiday")].into_iter();
        let files = [
            FilePart {
                name: "notes".into(),
                filename: "notes".into(),
                content_type: None,
                content: (&b"some text"[..]).into(),
            },
            FilePart {
                name: "photo".into(),
                filename: "beach.jpg".into(),
                content_type: Some("image/jpeg".into()),
                content: (&[0u8, 255][..]).into(),
            },
        ];
        body::multipart(&mut expected, boundary, fields, &files);
        assert_eq!(p.bytes, expected);
    }

    #[test]
    fn bad_multipart_options_are_clear_errors() {
        let err = |src| multipart_of(src).unwrap_err();
        assert!(err("'x'").contains("`multipart` must be a table of `fields` and `files`"));
        assert!(err("{feilds = {}}").contains("unknown key `feilds` in `multipart`"));
        assert!(err("{files = 1}").contains("`multipart.files` must be a table"));
        assert!(err("{files = {a = 1}}").contains("`multipart.files.a` must be the file's content"));
        assert!(err("{files = {a = {}}}").contains("`multipart.files.a.content` must be a string"));
        assert!(err("{files = {a = {content = 'x', type = 'y'}}}")
            .contains("unknown key `type` in `multipart.files.a`"));
        assert!(
            err("{files = {a = {content = 'x', content_type = 'a\\r\\nX-Evil: 1'}}}")
                .contains("`multipart.files.a.content_type`")
        );
        assert!(err("{fields = {a = {}}}").contains("`multipart.fields.a` must be text"));
    }
}
