//! Feeder files: CSV per RFC 4180 with a header row.
//!
//! Fields are separated by `,` and records by LF or CRLF; a field in double quotes may hold
//! commas, line breaks and `""` for a quote. Blank lines are skipped, and a UTF-8 byte order
//! mark is ignored. Every record must have as many fields as the header.

/// A CSV file's header and rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// What is wrong with a CSV file, at a 1-based line of that file (0 for the whole file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CsvError {
    pub line: usize,
    pub message: String,
}

impl CsvError {
    fn new(line: usize, message: impl Into<String>) -> Self {
        CsvError {
            line,
            message: message.into(),
        }
    }
}

pub(super) fn parse(text: &str) -> Result<Table, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Records::new(text);
    let Some((header_line, columns)) = records.next_record()? else {
        return Err(CsvError::new(
            0,
            "the file is empty; it needs a header row and at least one row",
        ));
    };
    check_header(header_line, &columns)?;
    let mut rows = Vec::new();
    while let Some((line, fields)) = records.next_record()? {
        if fields.len() != columns.len() {
            return Err(CsvError::new(
                line,
                format!(
                    "this row has {} fields but the header has {}",
                    fields.len(),
                    columns.len()
                ),
            ));
        }
        rows.push(fields);
    }
    if rows.is_empty() {
        return Err(CsvError::new(
            header_line,
            "the file has a header but no rows",
        ));
    }
    Ok(Table { columns, rows })
}

fn check_header(line: usize, columns: &[String]) -> Result<(), CsvError> {
    for (i, c) in columns.iter().enumerate() {
        if c.trim().is_empty() {
            return Err(CsvError::new(
                line,
                format!("column {} of the header has no name", i + 1),
            ));
        }
        if columns[..i].contains(c) {
            return Err(CsvError::new(
                line,
                format!("the header names column `{c}` twice"),
            ));
        }
    }
    Ok(())
}

struct Records<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
}

impl<'a> Records<'a> {
    fn new(text: &'a str) -> Self {
        Records {
            chars: text.chars().peekable(),
            line: 1,
        }
    }

    /// The next non-blank record and the line it starts on.
    fn next_record(&mut self) -> Result<Option<(usize, Vec<String>)>, CsvError> {
        loop {
            if self.chars.peek().is_none() {
                return Ok(None);
            }
            let start = self.line;
            let fields = self.record()?;
            if !(fields.len() == 1 && fields[0].is_empty()) {
                return Ok(Some((start, fields)));
            }
        }
    }

    /// Reads fields up to the end of the record (line break or end of text).
    fn record(&mut self) -> Result<Vec<String>, CsvError> {
        let mut fields = Vec::new();
        loop {
            let field = if self.chars.peek() == Some(&'"') {
                self.chars.next();
                self.quoted()?
            } else {
                self.plain()?
            };
            fields.push(field);
            match self.chars.next() {
                Some(',') => continue,
                Some('\r') => {
                    self.chars.next_if_eq(&'\n');
                    self.line += 1;
                    return Ok(fields);
                }
                Some('\n') => {
                    self.line += 1;
                    return Ok(fields);
                }
                None => return Ok(fields),
                Some(c) => {
                    return Err(CsvError::new(
                        self.line,
                        format!("unexpected {c:?} after a quoted field; expected `,` or the end of the line"),
                    ))
                }
            }
        }
    }

    fn plain(&mut self) -> Result<String, CsvError> {
        let mut field = String::new();
        while let Some(&c) = self.chars.peek() {
            match c {
                ',' | '\r' | '\n' => break,
                '"' => {
                    return Err(CsvError::new(
                        self.line,
                        "a quote inside an unquoted field; quote the whole field and double the quote (\"\")",
                    ))
                }
                c => {
                    field.push(c);
                    self.chars.next();
                }
            }
        }
        Ok(field)
    }

    fn quoted(&mut self) -> Result<String, CsvError> {
        let start = self.line;
        let mut field = String::new();
        loop {
            match self.chars.next() {
                None => return Err(CsvError::new(start, "a quoted field is not closed")),
                Some('"') if self.chars.next_if_eq(&'"').is_some() => field.push('"'),
                Some('"') => return Ok(field),
                Some(c) => {
                    if c == '\n' {
                        self.line += 1;
                    }
                    field.push(c);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table(text: &str) -> Table {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
    }

    fn rows(v: &[&[&str]]) -> Vec<Vec<String>> {
        v.iter()
            .map(|r| r.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    #[test]
    fn a_header_and_rows_are_read() {
        let t = table("user,password\nalice,a1\nbob,b2\n");
        assert_eq!(t.columns, ["user", "password"]);
        assert_eq!(t.rows, rows(&[&["alice", "a1"], &["bob", "b2"]]));
    }

    #[test]
    fn crlf_no_final_newline_blank_lines_and_bom_are_accepted() {
        let t = table("\u{feff}a,b\r\n1,2\r\n\r\n3,4");
        assert_eq!(t.columns, ["a", "b"]);
        assert_eq!(t.rows, rows(&[&["1", "2"], &["3", "4"]]));
    }

    #[test]
    fn quoted_fields_hold_commas_quotes_and_line_breaks() {
        let t = table("a,b\n\"x, y\",\"say \"\"hi\"\"\"\n\"two\nlines\",\"\"\n");
        assert_eq!(
            t.rows,
            rows(&[&["x, y", "say \"hi\""], &["two\nlines", ""]])
        );
    }

    #[test]
    fn empty_fields_are_kept() {
        assert_eq!(table("a,b,c\n,,\n").rows, rows(&[&["", "", ""]]));
    }

    #[test]
    fn a_row_with_the_wrong_number_of_fields_names_its_line() {
        let e = parse("a,b\n1,2\n\"multi\nline\",2\n3\n").unwrap_err();
        assert_eq!(
            e,
            CsvError::new(5, "this row has 1 fields but the header has 2")
        );
    }

    #[test]
    fn empty_files_and_header_only_files_are_rejected() {
        assert_eq!(parse("").unwrap_err().line, 0);
        assert_eq!(parse("\n\n").unwrap_err().line, 0);
        assert_eq!(
            parse("a,b\n").unwrap_err().message,
            "the file has a header but no rows"
        );
    }

    #[test]
    fn malformed_quoting_and_headers_are_rejected() {
        assert!(parse("a\n\"open\n")
            .unwrap_err()
            .message
            .contains("not closed"));
        assert!(parse("a\nx\"y\n")
            .unwrap_err()
            .message
            .contains("quote inside"));
        assert!(parse("a\n\"x\"y\n")
            .unwrap_err()
            .message
            .contains("after a quoted field"));
        assert!(parse("a,a\n1,2\n").unwrap_err().message.contains("twice"));
        assert!(parse("a,\n1,2\n").unwrap_err().message.contains("no name"));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "[a,\"\r\n ]{0,40}") {
            let _ = parse(&s);
        }

        #[test]
        fn written_rows_read_back(cells in proptest::collection::vec(proptest::collection::vec("[a-z,\" \n]{0,6}", 2), 1..5)) {
            let quote = |s: &String| format!("\"{}\"", s.replace('"', "\"\""));
            let mut text = String::from("x,y\n");
            for row in &cells {
                text.push_str(&row.iter().map(quote).collect::<Vec<_>>().join(","));
                text.push('\n');
            }
            prop_assert_eq!(parse(&text).unwrap().rows, cells);
        }
    }
}
