use std::fmt;

/// One problem in a plan, at a 1-based line and column (0 when the problem has no position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: u32,
    pub column: u32,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(line: u32, column: u32, message: impl Into<String>) -> Self {
        Diagnostic {
            line,
            column,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Every problem found in one plan, in source order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    pub origin: String,
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn single(origin: &str, d: Diagnostic) -> Self {
        Diagnostics {
            origin: origin.to_string(),
            items: vec![d],
        }
    }
}

impl fmt::Display for Diagnostics {
    /// `plan.yaml:3:5: unknown key "wieght" in a user class` and an indented hint line each.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.items {
            if d.line == 0 {
                writeln!(f, "{}: {}", self.origin, d.message)?;
            } else {
                writeln!(f, "{}:{}:{}: {}", self.origin, d.line, d.column, d.message)?;
            }
            if let Some(h) = &d.hint {
                writeln!(f, "  hint: {h}")?;
            }
        }
        let n = self.items.len();
        write!(
            f,
            "{n} problem{} in {}",
            if n == 1 { "" } else { "s" },
            self.origin
        )
    }
}

impl std::error::Error for Diagnostics {}
