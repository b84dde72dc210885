use std::fmt;

/// The type of a statistics entry: the HTTP methods a plan can use ([`Method::ALL`]), and two
/// that are not HTTP, for the entries a script makes (Locust's `request_type` of a custom
/// event): `SCRIPT` for `metric()`, `CALL` for a failed `call:` step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Script,
    Call,
}

impl Method {
    pub const ALL: [Method; 6] = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Patch,
        Method::Delete,
        Method::Head,
    ];

    /// Every type of a statistics entry: the HTTP methods, then `SCRIPT` and `CALL`.
    pub const TYPES: [Method; 8] = {
        let mut types = [Method::Script; 8];
        let mut i = 0;
        while i < Method::ALL.len() {
            types[i] = Method::ALL[i];
            i += 1;
        }
        types[7] = Method::Call;
        types
    };

    /// The upper-case name used on the wire and in Locust's `Type` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            Method::Script => "SCRIPT",
            Method::Call => "CALL",
        }
    }

    /// The lower-case key that introduces a request in a plan (`get: /path`); `SCRIPT` and
    /// `CALL` have none (no plan key takes them: [`Method::parse`] knows only HTTP methods).
    pub fn plan_key(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Put => "put",
            Method::Patch => "patch",
            Method::Delete => "delete",
            Method::Head => "head",
            Method::Script => "script",
            Method::Call => "call",
        }
    }

    /// Parses either spelling (`GET` or `get`) of an HTTP method.
    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
