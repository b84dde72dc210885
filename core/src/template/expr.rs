//! One `{{ ... }}` expression: tokens, then a name or call resolved to a [`Segment`].

use super::{FeederId, Resolver, Segment, TemplateError, VarId};
use crate::suggest;

/// Longest `rand.string(n)`: long enough for any payload padding, short enough to stay a typo
/// guard.
const MAX_RAND_STRING: i64 = 1 << 20;
const RAND_FUNCTIONS: [&str; 4] = ["int", "uuid", "string", "choice"];
const NOW_FIELDS: [&str; 3] = ["unix", "unix_ms", "rfc3339"];

/// The byte offset of the `}}` closing an expression that starts at `from`, skipping string
/// literals so `{{ "}}" }}` works.
pub(super) fn closing_braces(src: &str, from: usize) -> Option<usize> {
    let bytes = src.as_bytes();
    let mut i = from;
    let mut in_string = false;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b'}' if !in_string && bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Str(String),
    Int(i64),
    Dot,
    Open,
    Close,
    Comma,
}

/// `(token, byte offset in the whole template)`.
type Spanned = (Token, usize);

/// Compiles the text between `{{` and `}}`; `base` is its byte offset in the template.
pub(super) fn compile(text: &str, base: usize, r: &Resolver<'_>) -> Result<Segment, TemplateError> {
    let tokens = tokenize(text, base)?;
    let Some((first, first_at)) = tokens.first().cloned() else {
        return Err(TemplateError::new(base, "empty `{{ }}` expression"));
    };
    if let Token::Str(s) = first {
        return match tokens.get(1) {
            None => Ok(Segment::Literal(s)),
            Some((_, at)) => Err(TemplateError::new(*at, "unexpected text after the string")),
        };
    }
    let (path, call, after) = path_and_call(&tokens)?;
    if let Some((_, at)) = tokens.get(after) {
        return Err(TemplateError::new(*at, "unexpected text in the expression"));
    }
    resolve(&path, call, first_at, r)
}

fn tokenize(text: &str, base: usize) -> Result<Vec<Spanned>, TemplateError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let at = base + i;
        let token = match c {
            c if c.is_whitespace() => continue,
            '.' => Token::Dot,
            '(' => Token::Open,
            ')' => Token::Close,
            ',' => Token::Comma,
            '"' => Token::Str(string_literal(&mut chars, at)?),
            '-' | '0'..='9' => {
                let mut digits = c.to_string();
                while let Some((_, d)) = chars.next_if(|(_, d)| d.is_ascii_digit()) {
                    digits.push(d);
                }
                Token::Int(digits.parse().map_err(|_| {
                    TemplateError::new(
                        at,
                        format!("`{digits}` is not a whole number that fits in 64 bits"),
                    )
                })?)
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut name = c.to_string();
                while let Some((_, d)) =
                    chars.next_if(|(_, d)| d.is_alphanumeric() || matches!(d, '_' | '-'))
                {
                    name.push(d);
                }
                Token::Ident(name)
            }
            c => {
                return Err(TemplateError::new(
                    at,
                    format!("unexpected {c:?} in the expression"),
                ))
            }
        };
        tokens.push((token, at));
    }
    Ok(tokens)
}

fn string_literal(
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
    at: usize,
) -> Result<String, TemplateError> {
    let mut s = String::new();
    loop {
        match chars.next() {
            None => return Err(TemplateError::new(at, "the string is not closed by `\"`")),
            Some((_, '"')) => return Ok(s),
            Some((_, '\\')) => match chars.next() {
                Some((_, 'n')) => s.push('\n'),
                Some((_, 't')) => s.push('\t'),
                Some((_, c @ ('"' | '\\'))) => s.push(c),
                _ => {
                    return Err(TemplateError::new(at, "unknown escape in the string")
                        .with_hint("a string may use \\\" \\\\ \\n and \\t"))
                }
            },
            Some((_, c)) => s.push(c),
        }
    }
}

/// A call's arguments, each with its offset.
type Args = Vec<Spanned>;

/// Splits `a.b.c(args)` into its names and arguments; returns the index of the next token.
fn path_and_call(tokens: &[Spanned]) -> Result<(Vec<Spanned>, Option<Args>, usize), TemplateError> {
    let mut path = Vec::new();
    let mut i = 0;
    loop {
        match tokens.get(i) {
            Some((Token::Ident(_), _)) => path.push(tokens[i].clone()),
            Some((_, at)) => return Err(TemplateError::new(*at, "expected a name")),
            None => {
                let at = tokens.last().map_or(0, |t| t.1);
                return Err(TemplateError::new(at, "expected a name after `.`"));
            }
        }
        i += 1;
        if !matches!(tokens.get(i), Some((Token::Dot, _))) {
            break;
        }
        i += 1;
    }
    if !matches!(tokens.get(i), Some((Token::Open, _))) {
        return Ok((path, None, i));
    }
    let open_at = tokens[i].1;
    i += 1;
    let mut args = Vec::new();
    loop {
        match tokens.get(i) {
            Some((Token::Close, _)) if args.is_empty() => return Ok((path, Some(args), i + 1)),
            Some((Token::Int(_) | Token::Str(_), _)) => args.push(tokens[i].clone()),
            Some((_, at)) => {
                return Err(TemplateError::new(
                    *at,
                    "expected a number or a \"string\" argument",
                ))
            }
            None => return Err(TemplateError::new(open_at, "`(` is not closed by `)`")),
        }
        i += 1;
        match tokens.get(i) {
            Some((Token::Comma, _)) => i += 1,
            Some((Token::Close, _)) => return Ok((path, Some(args), i + 1)),
            Some((_, at)) => return Err(TemplateError::new(*at, "expected `,` or `)`")),
            None => return Err(TemplateError::new(open_at, "`(` is not closed by `)`")),
        }
    }
}

fn resolve(
    path: &[Spanned],
    call: Option<Args>,
    at: usize,
    r: &Resolver<'_>,
) -> Result<Segment, TemplateError> {
    let names: Vec<&str> = path
        .iter()
        .map(|(t, _)| match t {
            Token::Ident(s) => s.as_str(),
            _ => "",
        })
        .collect();
    let name_at = |i: usize| path.get(i).map_or(at, |t| t.1);
    match (names.as_slice(), call) {
        (["rand", function], Some(args)) => rand_call(function, &args, name_at(1)),
        (["rand", function], None) if RAND_FUNCTIONS.contains(function) => Err(TemplateError::new(
            at,
            format!("`rand.{function}` is a function"),
        )
        .with_hint(format!("call it: rand.{function}(...)"))),
        (["user", "id"], None) => Ok(Segment::UserId),
        (["worker", "index"], None) => Ok(Segment::WorkerIndex),
        (["worker", "count"], None) => Ok(Segment::WorkerCount),
        (["now", "unix"], None) => Ok(Segment::NowUnix),
        (["now", "unix_ms"], None) => Ok(Segment::NowUnixMs),
        (["now", "rfc3339"], None) => Ok(Segment::NowRfc3339),
        (["now", field], None) => Err(TemplateError::new(
            name_at(1),
            format!("unknown `now.{field}`"),
        )
        .with_hint(suggest::hint(field, &NOW_FIELDS))),
        (["row", feeder, column], None) => row(feeder, column, name_at(1), name_at(2), r),
        (["row", ..], None) => Err(TemplateError::new(
            at,
            "a feeder value is written row.<feeder>.<column>",
        )),
        ([name], None) => variable(name, at, r),
        (_, Some(_)) => Err(TemplateError::new(
            at,
            format!("unknown function `{}`", names.join(".")),
        )
        .with_hint(
            "functions are rand.int(a, b), rand.uuid(), rand.string(n) and rand.choice(\"a\", ...)",
        )),
        _ => Err(
            TemplateError::new(at, format!("unknown name `{}`", names.join(".")))
                .with_hint(
                    "expected a variable, row.<feeder>.<column>, rand.*, user.id, worker.index, worker.count or now.*",
                ),
        ),
    }
}

fn variable(name: &str, at: usize, r: &Resolver<'_>) -> Result<Segment, TemplateError> {
    if let Some(i) = r.vars.iter().position(|v| v == name) {
        return Ok(Segment::Var(VarId(i as u32)));
    }
    if let Some((_, value)) = r.constants.iter().find(|(k, _)| k == name) {
        return Ok(Segment::Literal(value.clone()));
    }
    let known = r.vars.iter().chain(r.constants.iter().map(|(k, _)| k));
    let hint = match suggest::closest(name, known.map(String::as_str)) {
        Some(c) => format!("did you mean `{c}`?"),
        None => "a variable is a `capture:` target of a request of this user class, or a key of \
                 the plan's `vars:`"
            .to_string(),
    };
    Err(TemplateError::new(at, format!("unknown variable `{name}`")).with_hint(hint))
}

fn row(
    feeder: &str,
    column: &str,
    feeder_at: usize,
    column_at: usize,
    r: &Resolver<'_>,
) -> Result<Segment, TemplateError> {
    let Some(f) = r.feeders.iter().position(|f| f.name == feeder) else {
        let names: Vec<&str> = r.feeders.iter().map(|f| f.name.as_str()).collect();
        let hint = if names.is_empty() {
            "feeders are declared under `data:`, e.g. data: {accounts: {csv: accounts.csv}}"
                .to_string()
        } else {
            suggest::hint(feeder, &names)
        };
        return Err(
            TemplateError::new(feeder_at, format!("unknown feeder `{feeder}`")).with_hint(hint),
        );
    };
    let columns: Vec<&str> = r.feeders[f].columns.iter().map(String::as_str).collect();
    match columns.iter().position(|c| *c == column) {
        Some(c) => Ok(Segment::Column {
            feeder: FeederId(f as u32),
            column: c,
        }),
        None => Err(TemplateError::new(
            column_at,
            format!("feeder `{feeder}` has no column `{column}`"),
        )
        .with_hint(suggest::hint(column, &columns))),
    }
}

fn rand_call(function: &str, args: &[Spanned], at: usize) -> Result<Segment, TemplateError> {
    let ints: Vec<i64> = args
        .iter()
        .filter_map(|(t, _)| match t {
            Token::Int(n) => Some(*n),
            _ => None,
        })
        .collect();
    let strings: Vec<String> = args
        .iter()
        .filter_map(|(t, _)| match t {
            Token::Str(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    match (function, ints.as_slice(), strings.len()) {
        ("int", &[low, high], 0) if low <= high => Ok(Segment::RandInt { low, high }),
        ("int", &[_, _], 0) => Err(TemplateError::new(at, "rand.int(a, b) needs a <= b")),
        ("int", _, _) => Err(TemplateError::new(
            at,
            "rand.int takes two whole numbers: rand.int(1, 100)",
        )),
        ("uuid", [], 0) => Ok(Segment::Uuid),
        ("uuid", _, _) => Err(TemplateError::new(
            at,
            "rand.uuid takes no arguments: rand.uuid()",
        )),
        ("string", &[n], 0) if (0..=MAX_RAND_STRING).contains(&n) => {
            Ok(Segment::RandString(n as usize))
        }
        ("string", _, _) => Err(TemplateError::new(
            at,
            format!("rand.string takes one length from 0 to {MAX_RAND_STRING}: rand.string(16)"),
        )),
        ("choice", [], n) if n > 0 => Ok(Segment::Choice(strings)),
        ("choice", _, _) => Err(TemplateError::new(
            at,
            "rand.choice takes one or more strings: rand.choice(\"a\", \"b\")",
        )),
        (other, _, _) => Err(
            TemplateError::new(at, format!("unknown function `rand.{other}`"))
                .with_hint(suggest::hint(other, &RAND_FUNCTIONS)),
        ),
    }
}
