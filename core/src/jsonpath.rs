//! The JSON path subset used by checks and captures: `$` then any chain of `.key`, `['key']`,
//! `["key"]` and `[n]` (a negative `n` counts from the end). Each path selects at most one value;
//! there are no wildcards, filters or recursive descent.

use serde_json::Value;

/// A compiled JSON path such as `$.data.items[0].id`.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    source: String,
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(i64),
}

impl JsonPath {
    /// Compiles `src`; the error says what is wrong and where (as a character position).
    pub fn parse(src: &str) -> Result<JsonPath, String> {
        let Some(rest) = src.strip_prefix('$') else {
            return Err(format!("JSON path {src:?} must start with `$`"));
        };
        let chars: Vec<char> = rest.chars().collect();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let at = i + 1;
            let (step, next) = match chars[i] {
                '.' => dotted_key(&chars, i + 1),
                '[' => bracket(&chars, i + 1),
                c => Err(format!("unexpected {c:?}; expected `.key` or `[...]`")),
            }
            .map_err(|e| format!("JSON path {src:?}, at character {}: {e}", at + 1))?;
            steps.push(step);
            i = next;
        }
        Ok(JsonPath {
            source: src.to_string(),
            steps,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The selected value, if the path matches.
    pub fn select<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        self.steps
            .iter()
            .try_fold(value, |v, step| match (step, v) {
                (Step::Key(k), Value::Object(map)) => map.get(k),
                (Step::Index(n), Value::Array(items)) => {
                    let index = if *n < 0 {
                        items
                            .len()
                            .checked_sub(usize::try_from(n.unsigned_abs()).ok()?)?
                    } else {
                        usize::try_from(*n).ok()?
                    };
                    items.get(index)
                }
                _ => None,
            })
    }
}

fn dotted_key(chars: &[char], start: usize) -> Result<(Step, usize), String> {
    let end = chars[start..]
        .iter()
        .position(|c| matches!(c, '.' | '['))
        .map_or(chars.len(), |p| start + p);
    if end == start {
        return Err("a key is missing after `.`".to_string());
    }
    Ok((Step::Key(chars[start..end].iter().collect()), end))
}

fn bracket(chars: &[char], start: usize) -> Result<(Step, usize), String> {
    match chars.get(start) {
        Some(&quote @ ('\'' | '"')) => {
            let mut key = String::new();
            let mut i = start + 1;
            loop {
                match chars.get(i) {
                    None => return Err("the quoted key is not closed".to_string()),
                    Some('\\') => {
                        key.extend(chars.get(i + 1));
                        i += 2;
                    }
                    Some(&c) if c == quote => break,
                    Some(&c) => {
                        key.push(c);
                        i += 1;
                    }
                }
            }
            if chars.get(i + 1) != Some(&']') {
                return Err("expected `]` after the quoted key".to_string());
            }
            Ok((Step::Key(key), i + 2))
        }
        _ => {
            let end = chars[start..]
                .iter()
                .position(|&c| c == ']')
                .map(|p| start + p)
                .ok_or("`[` is not closed by `]`")?;
            let text: String = chars[start..end].iter().collect();
            let n = text.trim().parse::<i64>().map_err(|_| {
                format!("expected an index like [0] or [-1], or a quoted key like ['{text}']")
            })?;
            Ok((Step::Index(n), end + 1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn select(path: &str, v: &Value) -> Option<Value> {
        JsonPath::parse(path).unwrap().select(v).cloned()
    }

    #[test]
    fn dollar_alone_selects_the_whole_document() {
        let doc = json!({"a": 1});
        assert_eq!(select("$", &doc), Some(doc.clone()));
    }

    #[test]
    fn keys_and_indices_chain() {
        let doc = json!({"data": {"items": [{"id": 7}, {"id": 8}]}, "token": "t"});
        assert_eq!(select("$.token", &doc), Some(json!("t")));
        assert_eq!(select("$.data.items[0].id", &doc), Some(json!(7)));
        assert_eq!(select("$.data.items[1]", &doc), Some(json!({"id": 8})));
        assert_eq!(
            select("$['data'][\"items\"][0]['id']", &doc),
            Some(json!(7))
        );
    }

    #[test]
    fn negative_indices_count_from_the_end() {
        let doc = json!([1, 2, 3]);
        assert_eq!(select("$[-1]", &doc), Some(json!(3)));
        assert_eq!(select("$[-3]", &doc), Some(json!(1)));
        assert_eq!(select("$[-4]", &doc), None);
        assert_eq!(select("$[3]", &doc), None);
    }

    #[test]
    fn quoted_keys_may_hold_dots_brackets_and_escaped_quotes() {
        let doc = json!({"a.b": {"c]": {"it's": 1}}});
        assert_eq!(select("$['a.b']['c]']['it\\'s']", &doc), Some(json!(1)));
        assert_eq!(select("$[\"a.b\"][\"c]\"][\"it's\"]", &doc), Some(json!(1)));
    }

    #[test]
    fn a_mismatched_type_selects_nothing() {
        let doc = json!({"a": [1], "s": "text"});
        assert_eq!(select("$.a.b", &doc), None);
        assert_eq!(select("$[0]", &doc), None);
        assert_eq!(select("$.s[0]", &doc), None);
        assert_eq!(select("$.missing", &doc), None);
    }

    #[test]
    fn malformed_paths_are_rejected_with_a_reason() {
        for bad in [
            "", "a.b", "$.", "$..a", "$[", "$[x]", "$['a'", "$['a'x", "$a", "$.a[",
        ] {
            assert!(JsonPath::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let e = JsonPath::parse("$.a[x]").unwrap_err();
        assert!(e.contains("character 4"), "{e}");
    }

    #[test]
    fn as_str_returns_the_path_as_written() {
        assert_eq!(JsonPath::parse("$.a[0]").unwrap().as_str(), "$.a[0]");
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\$[.\\[\\]'\"a0-9-]{0,12}") {
            if let Ok(p) = JsonPath::parse(&s) {
                let _ = p.select(&json!({"a": [1, {"a": 2}]}));
            }
        }
    }
}
