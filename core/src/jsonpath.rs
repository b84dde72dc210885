//! The JSON path subset used by checks and captures. To be written.

/// A compiled JSON path such as `$.data.items[0].id`.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    source: String,
}

impl JsonPath {
    pub fn parse(src: &str) -> Result<JsonPath, String> {
        Ok(JsonPath {
            source: src.to_string(),
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The selected value, if the path matches.
    pub fn select<'v>(&self, _value: &'v serde_json::Value) -> Option<&'v serde_json::Value> {
        None
    }
}
