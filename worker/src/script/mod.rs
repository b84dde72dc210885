//! Scripted users: a class's Luau script, compiled once per plan and loaded once per VM; one
//! sandboxed VM per worker thread ([`Pool`]), shared by its users; per user an environment and
//! a `user` table; a `call:` step runs a script function in a coroutine that the user's task
//! resumes, whose requests go out through the user's own connection, timer and statistics
//! (docs/scripting.md).
//!
//! - `position`: Luau's `CHUNK:LINE:` moved to where the script is written.
//! - `vm`: one worker thread's VM: sandbox, limits, users' slots, environments, coroutines.
//! - `http`: `user.http:get(url, opts)`: options, encoding, the response object.
//! - `forms`: the `multipart` option of a request.
//! - `cookies`: `user.cookies`: the user's own jar, read and set.
//! - `libs`: `json`, `crypto`, `base64`, `uuid`, `log`, `metric`.

mod cookies;
mod forms;
mod http;
mod libs;
mod position;
mod vm;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hatchery_core::plan::{Call, Diagnostic, Diagnostics, Script, UserClass};
use hatchery_core::stats::Sample;
use hatchery_core::timestamp::unix_now;
use hatchery_core::Method;

use crate::recorder::Recorder;
use crate::user::User;
pub(crate) use vm::Scripted;
use vm::{Turn, Vm, Yielded};

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
    /// What of a response the script may read.
    wants: http::Wants,
}

/// What scripts read of the worker: the plan's feeders (`row`) and its place (`worker`).
#[derive(Debug, Clone, Default)]
pub(crate) struct World {
    pub feeders: Vec<hatchery_core::template::Table>,
    pub place: Arc<crate::PlaceCell>,
}

/// The VMs of a worker, one per runtime thread; user *n* runs in VM *n mod count*.
#[derive(Debug)]
pub(crate) struct Pool {
    vms: Vec<Arc<Vm>>,
}

impl Pool {
    /// `count` VMs with every class's script loaded; `None` when no class has a script.
    pub(crate) fn new(
        classes: &[Option<Arc<Compiled>>],
        recorder: &Arc<Recorder>,
        world: &World,
        count: usize,
    ) -> Result<Option<Pool>, String> {
        let Some(memory) = classes.iter().flatten().map(|c| c.script.memory).max() else {
            return Ok(None);
        };
        let memory = usize::try_from(memory).unwrap_or(usize::MAX);
        let vms = (0..count.max(1))
            .map(|_| Vm::new(classes, recorder.clone(), world, memory).map(Arc::new))
            .collect::<Result<_, _>>()?;
        Ok(Some(Pool { vms }))
    }

    /// Forgets the requests prepared against the old host (`SetHost`, between tests).
    pub(crate) fn host_changed(&self) {
        for vm in &self.vms {
            vm.forget_prepared();
        }
    }

    fn vm(&self, id: u64) -> &Arc<Vm> {
        &self.vms[(id % self.vms.len() as u64) as usize]
    }
}

impl Compiled {
    /// Compiles the script and loads it once in a VM like a user's, so that `--check` and a
    /// worker's start report what every user would meet.
    pub(crate) fn new(
        script: &Script,
        class: &UserClass,
        world: &World,
    ) -> Result<Compiled, Vec<Diagnostics>> {
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
        let compiled = Arc::new(Compiled {
            script: script.clone(),
            bytecode,
            wants: http::Wants::of(&script.source),
        });
        let loaded = Vm::new(
            &[Some(compiled.clone())],
            Arc::new(Recorder::new(1, String::new())),
            world,
            usize::try_from(script.memory).unwrap_or(usize::MAX),
        )
        .map(Arc::new)
        .and_then(|vm| {
            let _alone = vm.try_enter();
            vm.add_user(0, 0)
        });
        let user = loaded.map_err(|e| {
            let (line, text) = position::split_line(&e, script);
            vec![at_script(line, format!("script error as it loads: {text}"))]
        })?;
        let functions = user.functions();
        drop(user);
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
        Ok(Compiled {
            script: compiled.script.clone(),
            bytecode: compiled.bytecode.clone(),
            wants: compiled.wants,
        })
    }
}

/// Every class's script, compiled and checked; every problem of every class when any fails,
/// one [`Diagnostics`] per file in the order met. The classes share each worker thread's VM,
/// so each script is checked under the VM's memory limit: the largest `script_memory`.
pub(crate) fn compile_all(
    plan: &hatchery_core::Plan,
) -> Result<Vec<Option<Arc<Compiled>>>, Vec<Diagnostics>> {
    let mut problems: Vec<Diagnostics> = Vec::new();
    let mut compiled = Vec::with_capacity(plan.users.len());
    let scripts = plan.users.iter().filter_map(|c| c.script.as_ref());
    let memory = scripts.map(|s| s.memory).max().unwrap_or_default();
    let world = World {
        feeders: plan.feeders.clone(),
        ..World::default()
    };
    for class in &plan.users {
        let Some(script) = &class.script else {
            compiled.push(None);
            continue;
        };
        let script = Script {
            memory,
            ..script.clone()
        };
        match Compiled::new(&script, class, &world) {
            Ok(c) => compiled.push(Some(Arc::new(c))),
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

/// Adds the user to its VM when its class has a script. A script that fails as it loads for
/// this user (it did for none at prepare time, but it may branch on `user.id`) is an exception,
/// and the user's calls then fail.
pub(crate) async fn start(user: &mut User) {
    let shared = user.shared.clone();
    let (Some(pool), Some(compiled)) =
        (&shared.scripts, &shared.prepared.classes[user.class].script)
    else {
        return;
    };
    let vm = pool.vm(user.id);
    let added = {
        let _gate = vm.enter().await;
        vm.add_user(user.class, user.id)
    };
    match added {
        Ok(s) => user.script = Some(Box::new(s)),
        Err(e) => shared.recorder.exception(&clip(
            format!("script error: {}", position::relocate(&e, &compiled.script)),
            MAX_MESSAGE,
        )),
    }
}

/// Runs one `call:` step. A script error fails the step (an exception and a failed entry named
/// after the call) and leaves the user running.
pub(crate) async fn call(user: &mut User, call: &Call) {
    let started = Instant::now();
    let result = match user.script.take() {
        Some(s) => {
            let result = run(&s, user, &call.function).await;
            user.script = Some(s);
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

/// Runs `name(user)` in a coroutine of the user's VM until it returns: each request it yields
/// goes out on the user's connection, each sleep on the user's task, and the coroutine resumes
/// with the answer. Everything that touches the VM does so holding its gate; requests and
/// sleeps never do.
async fn run(s: &Scripted, user: &mut User, name: &str) -> Result<(), String> {
    let Some(compiled) = s.compiled().cloned() else {
        return Err("the class has no script".to_string());
    };
    let script = &compiled.script;
    let describe = |e: mlua::Error| describe(&e, script);
    let vm = &s.vm;
    let mut gate = Some(vm.enter().await);
    vars_in(s, user).map_err(describe)?;
    let Some(function) = vm.unlimited(|| s.function(name)) else {
        return Err(format!("{}: no function `{name}`", script.origin));
    };
    let thread = vm.thread().map_err(describe)?;
    let mut next = vm.resume(&thread, s.token, Turn::Fresh, (function, s.user().clone()));
    let result = loop {
        let answer = match next {
            Err(e) => break Err(e),
            Ok(Yielded::Done) => break Ok(()),
            Ok(Yielded::Request { method, url, opts }) => {
                let outgoing = outgoing(s, method, url, opts);
                drop(gate.take());
                let answered = match outgoing {
                    Ok(o) => http::send(user, vm, o).await,
                    Err(e) => Err(e),
                };
                gate = Some(vm.enter().await);
                answered.and_then(|a| {
                    let mut ctx = vm.ctx()?;
                    let response = http::respond(&mut ctx, s.token, a)?;
                    drop(ctx);
                    vm.unlimited(|| vm.lua().create_userdata(response))
                        .map(mlua::Value::UserData)
                        .map_err(|e| e.to_string())
                })
            }
            Ok(Yielded::Cookies(op, args)) => {
                // Answered at once, with the user's own jar: the call goes on, gate held.
                let answer = cookies::answer(vm.lua(), user, op, args);
                next = reply(vm, &thread, s.token, Turn::Continued, answer);
                continue;
            }
            Ok(Yielded::Sleep(seconds)) => {
                drop(gate.take());
                let slept = sleep(seconds).await;
                gate = Some(vm.enter().await);
                slept
            }
            Ok(Yielded::GaveWay(left)) => {
                // Other tasks of this thread and other users of this VM run meanwhile.
                drop(gate.take());
                give_way().await;
                gate = Some(vm.enter().await);
                next = vm.resume(&thread, s.token, Turn::Left(left), ());
                continue;
            }
            Ok(Yielded::Stray) => {
                break Err(mlua::Error::runtime(
                    "the call yielded its coroutine itself: use user:sleep to wait, and coroutine.yield only inside coroutines of the script's own",
                ))
            }
        };
        next = reply(vm, &thread, s.token, Turn::Fresh, answer);
    };
    vm.recycle(thread, result.is_ok());
    if let Ok(mut ctx) = vm.ctx() {
        ctx.flush(s.token);
    }
    if matches!(result, Err(mlua::Error::MemoryError(_))) {
        // What a failed call left behind (a table that hit the memory limit) must not fail
        // the next calls, this user's or another's, before they start.
        let _ = vm.lua().gc_collect();
    }
    let out = vars_out(s, user);
    drop(gate);
    result.and(out).map_err(describe)
}

/// Resumes the call with the answer to what it yielded: the value, or `nil` and the message
/// its function raises.
fn reply(
    vm: &Vm,
    thread: &mlua::Thread,
    token: i64,
    turn: Turn,
    answer: Result<mlua::Value, String>,
) -> mlua::Result<Yielded> {
    match answer {
        Ok(value) => vm.resume(thread, token, turn, value),
        Err(message) => vm.resume(thread, token, turn, (mlua::Value::Nil, message)),
    }
}

/// A request the script yielded, its options read (from the script's tables: the caller holds
/// the gate), and the user's previous response recorded as it is if the script left it.
fn outgoing(
    s: &Scripted,
    method: Method,
    url: mlua::Value,
    opts: mlua::Value,
) -> Result<http::Outgoing, String> {
    if let Ok(mut ctx) = s.vm.ctx() {
        ctx.flush(s.token);
    }
    let verb = method.plan_key();
    let url = match url {
        mlua::Value::String(u) => u.to_str().map_err(|e| e.to_string())?.to_string(),
        other => {
            return Err(format!(
            "user.http:{verb}(url, opts): url must be text, found {} (call it with `:`, not `.`)",
            other.type_name()
        ))
        }
    };
    let opts = match opts {
        mlua::Value::Nil => None,
        mlua::Value::Table(t) => Some(t),
        other => {
            return Err(format!(
                "user.http:{verb}(url, opts): opts must be a table, found {}",
                other.type_name()
            ))
        }
    };
    let opts = http::Opts::parse(s.vm.lua(), opts)?;
    Ok(http::Outgoing { method, url, opts })
}

/// Lets the other tasks of this runtime thread run, those a response woke included. tokio's
/// `yield_now` alone resumes the task after the I/O driver is polled, but ahead of the tasks
/// that poll woke (it takes the thread's next-task slot), so they would wait one more turn;
/// waking itself once more puts the task at the back of the thread's queue, behind them.
async fn give_way() {
    tokio::task::yield_now().await;
    let mut woken = false;
    std::future::poll_fn(|cx| {
        if woken {
            return std::task::Poll::Ready(());
        }
        woken = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

async fn sleep(seconds: mlua::Value) -> Result<mlua::Value, String> {
    let seconds = match seconds {
        mlua::Value::Integer(i) => i as f64,
        mlua::Value::Number(n) => n,
        other => {
            return Err(format!(
                "user:sleep(seconds): seconds must be a number, found {}",
                other.type_name()
            ))
        }
    };
    let pause = Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("user:sleep({seconds}): seconds must be >= 0"))?;
    tokio::time::sleep(pause).await;
    Ok(mlua::Value::Nil)
}

/// The user's variables (captures, templates) into `user.vars`.
fn vars_in(s: &Scripted, user: &User) -> mlua::Result<()> {
    let names = &user.shared.prepared.plan.users[user.class].vars;
    for (name, value) in names.iter().zip(&user.vars) {
        s.vars().raw_set(name.as_str(), value.as_deref())?;
    }
    Ok(())
}

/// `user.vars` back into the user's variables that templates read.
fn vars_out(s: &Scripted, user: &mut User) -> mlua::Result<()> {
    let shared = user.shared.clone();
    let names = &shared.prepared.plan.users[user.class].vars;
    for (name, slot) in names.iter().zip(user.vars.iter_mut()) {
        *slot = match s.vars().raw_get::<mlua::Value>(name.as_str())? {
            mlua::Value::Nil => None,
            mlua::Value::String(v) => Some(v.to_str()?.to_string()),
            mlua::Value::Integer(i) => Some(i.to_string()),
            mlua::Value::Number(n) => Some(n.to_string()),
            mlua::Value::Boolean(b) => Some(b.to_string()),
            other => {
                return Err(mlua::Error::runtime(format!(
                    "user.vars.{name} must be text, a number or a boolean for the plan's templates, found {}",
                    other.type_name()
                )))
            }
        };
    }
    Ok(())
}

/// Records a failed call as an entry of the stats, of type `CALL`.
fn record(user: &User, name: &str, elapsed: Duration, error: Option<&str>) {
    user.shared.recorder.record(
        Method::Call,
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
            "out of memory: over script_memory ({} KiB, this worker thread's scripted users together)",
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
