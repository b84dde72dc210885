//! Scripted users: a class's Luau script, compiled once per plan; one sandboxed VM per user;
//! `call:` steps run a script function as an async Lua call whose requests go out through the
//! user's own connection, timer and statistics (docs/scripting.md).
//!
//! - `position`: Luau's `CHUNK:LINE:` moved to where the script is written.
//! - `vm`: one user's VM: sandbox, limits, the `user` table and the libraries.
//! - `http`: `user.http:get(url, opts)`: options, encoding, the response object.
//! - `libs`: `json`, `crypto`, `base64`, `uuid`, `log`, `metric`.

mod http;
mod libs;
mod position;
mod vm;

use std::time::{Duration, Instant};

use hatchery_core::plan::{Call, Diagnostic, Diagnostics, Script, UserClass};
use hatchery_core::stats::Sample;
use hatchery_core::timestamp::unix_now;
use hatchery_core::Method;

use crate::user::User;
pub(crate) use vm::Vm;

/// Longest statistics entry name a script may give (`name`, `metric`); longer ones are cut.
pub(super) const MAX_NAME: usize = 1024;
/// Longest failure message a script may give (`r:failure`, a script error); longer ones are cut.
pub(super) const MAX_MESSAGE: usize = 4096;

/// `text` cut to at most `max` bytes (at a character boundary, marked with `...`): the
/// statistics keep every distinct name and message, so a script must not make them huge.
pub(super) fn clip(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max.saturating_sub(3);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

/// A class's script compiled to bytecode, checked to load and to define every function its
/// `call:` steps name.
#[derive(Debug)]
pub struct Compiled {
    pub(crate) script: Script,
    bytecode: Vec<u8>,
}

impl Compiled {
    /// Compiles the script and loads it once in a VM like a user's, so that `--check` and a
    /// worker's start report what every user would meet.
    pub fn new(script: &Script, class: &UserClass) -> Result<Compiled, Vec<Diagnostics>> {
        let at_script = |line: Option<u32>, message: String| {
            let (line, column) = line.map_or((0, 0), |l| script.position(l));
            Diagnostics::single(&script.origin, Diagnostic::new(line, column, message))
        };
        let bytecode = match mlua::Compiler::new().compile(&script.source) {
            Ok(b) => b,
            Err(e) => {
                let message = message_of(&e, script);
                let (line, text) = position::split_line(&message, script);
                return Err(vec![at_script(
                    line,
                    format!("script syntax error: {text}"),
                )]);
            }
        };
        let compiled = Compiled {
            script: script.clone(),
            bytecode,
        };
        let vm = vm::Vm::check(&compiled).map_err(|e| {
            let (line, text) = position::split_line(&e, script);
            vec![at_script(line, format!("script error as it loads: {text}"))]
        })?;
        let functions = vm.functions();
        let mut missing = Vec::new();
        let tasks = class.tasks.iter().flat_map(|t| &t.steps);
        for step in class.on_start.iter().chain(tasks).chain(&class.on_stop) {
            let hatchery_core::plan::Step::Call(c) = step else {
                continue;
            };
            if !functions.contains(&c.function) {
                let hint = match functions.is_empty() {
                    true => "the script defines no global function".to_string(),
                    false => format!("the script defines {}", functions.join(", ")),
                };
                missing.push(
                    Diagnostic::new(
                        c.line,
                        c.column,
                        format!("the script has no function `{}`", c.function),
                    )
                    .with_hint(hint),
                );
            }
        }
        if !missing.is_empty() {
            missing.dedup();
            return Err(vec![Diagnostics {
                origin: script.plan.clone(),
                items: missing,
            }]);
        }
        Ok(compiled)
    }
}

/// Every class's script, compiled and checked; every problem of every class when any fails,
/// one [`Diagnostics`] per file in the order met.
pub(crate) fn compile_all(
    plan: &hatchery_core::Plan,
) -> Result<Vec<Option<std::sync::Arc<Compiled>>>, Vec<Diagnostics>> {
    let mut problems: Vec<Diagnostics> = Vec::new();
    let mut compiled = Vec::with_capacity(plan.users.len());
    for class in &plan.users {
        let Some(script) = &class.script else {
            compiled.push(None);
            continue;
        };
        match Compiled::new(script, class) {
            Ok(c) => compiled.push(Some(std::sync::Arc::new(c))),
            Err(found) => {
                for d in found {
                    match problems.iter_mut().find(|p| p.origin == d.origin) {
                        Some(p) => p.items.extend(d.items),
                        None => problems.push(d),
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        return Ok(compiled);
    }
    for p in &mut problems {
        p.items.sort_by_key(|d| (d.line, d.column));
    }
    Err(problems)
}

/// Makes the user's VM when its class has a script. A script that fails as it loads for this
/// user (it did for none at prepare time, but it may branch on `user.id`) is an exception, and
/// the user's calls then fail.
pub(crate) fn start(user: &mut User) {
    let shared = user.shared.clone();
    let Some(compiled) = &shared.prepared.classes[user.class].script else {
        return;
    };
    match Vm::new(compiled.clone(), &shared, user.id) {
        Ok(vm) => user.script = Some(Box::new(vm)),
        Err(e) => shared.recorder.exception(&format!(
            "script error: {}",
            position::relocate(&e, &compiled.script)
        )),
    }
}

/// Runs one `call:` step. A script error fails the step (an exception and a failed entry named
/// after the call) and leaves the user running.
pub(crate) async fn call(user: &mut User, call: &Call) {
    let started = Instant::now();
    let result = match user.script.take() {
        Some(mut vm) => {
            let result = vm.run(user, &call.function).await;
            user.script = Some(vm);
            result
        }
        None => Err("the user's script did not load (see the exceptions)".to_string()),
    };
    if let Err(message) = result {
        let message = clip(format!("script error: {message}"), MAX_MESSAGE);
        user.shared.recorder.exception(&message);
        record(
            user,
            &format!("call {}", call.function),
            started.elapsed(),
            Some(&message),
        );
    }
}

/// Records a failed call as an entry of the stats (type GET until the stats know other types).
fn record(user: &User, name: &str, elapsed: Duration, error: Option<&str>) {
    user.shared.recorder.record(
        Method::Get,
        name,
        Sample {
            response_time_us: elapsed.as_micros() as u64,
            corrected_response_time_us: None,
            content_length: 0,
            at_unix_s: unix_now(),
            error,
        },
    );
}

/// The message of an error, without mlua's wrapping (callback tracebacks, "runtime error:").
fn message_of(e: &mlua::Error, script: &Script) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => message_of(cause, script),
        mlua::Error::WithContext { cause, .. } => message_of(cause, script),
        mlua::Error::RuntimeError(m) | mlua::Error::SyntaxError { message: m, .. } => m.clone(),
        mlua::Error::MemoryError(_) => format!(
            "out of memory: over script_memory ({} KiB)",
            script.memory >> 10
        ),
        mlua::Error::ExternalError(e) => e.to_string(),
        other => other.to_string(),
    }
}

/// A script error as `ORIGIN:LINE: message`, at the line where it is written. An error raised
/// in one of our functions carries no position itself: it takes the script's innermost line
/// from the traceback.
fn describe(e: &mlua::Error, script: &Script) -> String {
    let message = message_of(e, script);
    let message = match position::split_line(&message, script) {
        (Some(_), _) => message,
        (None, _) => match traceback_line(e, script) {
            Some(line) => format!("{}:{line}: {message}", script.origin),
            None => format!("{}: {message}", script.origin),
        },
    };
    position::relocate(&message, script)
}

/// The first `ORIGIN:LINE:` in a callback error's traceback.
fn traceback_line(e: &mlua::Error, script: &Script) -> Option<u32> {
    let mlua::Error::CallbackError { traceback, cause } = e else {
        return match e {
            mlua::Error::WithContext { cause, .. } => traceback_line(cause, script),
            _ => None,
        };
    };
    let prefix = format!("{}:", script.origin);
    let found = traceback.split(&prefix).skip(1).find_map(|rest| {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        rest[..digits].parse().ok()
    });
    found.or_else(|| traceback_line(cause, script))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_and_messages_are_cut_at_a_character_boundary() {
        assert_eq!(clip("short".into(), 10), "short");
        assert_eq!(clip("abcdefghijkl".into(), 10), "abcdefg...");
        let cut = clip("é".repeat(10), 10);
        assert_eq!(cut, "ééé...");
        assert!(cut.len() <= 10);
    }
}
