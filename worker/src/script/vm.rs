//! One user's Luau VM: the sandbox, the limits (time without awaiting, memory), the `user`
//! table, and the loop that serves its requests while a call runs.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlua::{Function, Lua, LuaOptions, StdLib, Table, Value, VmState};
use tokio::sync::mpsc;

use super::http::{self, Op, Pending};
use super::{libs, position, Compiled};
use crate::recorder::Recorder;
use crate::user::{fmt_duration, User};
use crate::Shared;

/// The libraries a script gets: Luau's safe ones (no `io`; Luau's `os` has only time and date).
fn libraries() -> StdLib {
    StdLib::COROUTINE
        | StdLib::TABLE
        | StdLib::STRING
        | StdLib::UTF8
        | StdLib::BIT
        | StdLib::BUFFER
        | StdLib::MATH
        | StdLib::OS
}

/// Globals removed before the sandbox closes: mlua's file-system `require`, compiling text at
/// run time, and environment tricks that would defeat Luau's sandbox optimisations.
const REMOVED: [&str; 4] = ["require", "loadstring", "getfenv", "setfenv"];

/// Interrupts between two looks at the clock: Luau interrupts at every call and loop
/// back-edge, and a clock read costs more than a loop iteration.
const TICKS_PER_CLOCK: u32 = 256;

/// How long the script has run since it last awaited, against `script_timeout`.
#[derive(Debug)]
pub(super) struct Slice {
    base: Instant,
    deadline_ns: AtomicU64,
    budget: Duration,
    ticks: AtomicU32,
}

impl Slice {
    fn new(budget: Duration) -> Slice {
        Slice {
            base: Instant::now(),
            deadline_ns: AtomicU64::new(u64::MAX),
            budget,
            ticks: AtomicU32::new(0),
        }
    }

    /// The script runs from now (a call starts, or an await ended).
    pub(super) fn start(&self) {
        let deadline = (self.base.elapsed() + self.budget).as_nanos() as u64;
        self.deadline_ns.store(deadline, Ordering::Relaxed);
    }

    fn over(&self) -> bool {
        if self.ticks.fetch_add(1, Ordering::Relaxed) % TICKS_PER_CLOCK != 0 {
            return false;
        }
        self.base.elapsed().as_nanos() as u64 > self.deadline_ns.load(Ordering::Relaxed)
    }
}

/// What the VM's Rust functions share (the Lua state's app data).
#[derive(Debug)]
pub(super) struct Ctx {
    pub ops: mpsc::Sender<Op>,
    pub recorder: Arc<Recorder>,
    pub slice: Arc<Slice>,
    /// The last response, until the script settles it or the next request or the call's end
    /// records it as it is.
    pub pending: Option<Pending>,
    pub next_seq: u64,
}

impl Ctx {
    pub(super) fn flush(&mut self) {
        if let Some(p) = self.pending.take() {
            p.record(&self.recorder);
        }
    }
}

/// One user's VM, with the script loaded.
pub(crate) struct Vm {
    lua: Lua,
    user: Table,
    vars: Table,
    ops: mpsc::Receiver<Op>,
    compiled: Arc<Compiled>,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("script", &self.compiled.script.origin)
            .finish_non_exhaustive()
    }
}

impl Vm {
    /// A user's VM. `Err` is the message of an error as the script loaded.
    pub(crate) fn new(compiled: Arc<Compiled>, shared: &Shared, id: u64) -> Result<Vm, String> {
        Vm::build(compiled, shared.recorder.clone(), id)
    }

    /// A VM like a user's, for checking the script when the plan is prepared.
    pub(super) fn check(compiled: &Compiled) -> Result<Vm, String> {
        let compiled = Arc::new(Compiled {
            script: compiled.script.clone(),
            bytecode: compiled.bytecode.clone(),
        });
        Vm::build(compiled, Arc::new(Recorder::new(1, String::new())), 0)
    }

    fn build(compiled: Arc<Compiled>, recorder: Arc<Recorder>, id: u64) -> Result<Vm, String> {
        let script = &compiled.script;
        let describe = |e: mlua::Error| super::describe(&e, script);
        let lua = Lua::new_with(libraries(), LuaOptions::new()).map_err(describe)?;
        let (tx, ops) = mpsc::channel(1);
        let slice = Arc::new(Slice::new(script.timeout));
        let (user, vars) = setup(&lua, id, &slice).map_err(describe)?;
        lua.set_app_data(Ctx {
            ops: tx,
            recorder,
            slice: slice.clone(),
            pending: None,
            next_seq: 0,
        });
        let timeout = script.timeout;
        let origin = script.origin.clone();
        let running = slice.clone();
        lua.set_interrupt(move |lua| {
            if !running.over() {
                return Ok(VmState::Continue);
            }
            let line = lua.inspect_stack(0, |d| d.current_line()).flatten();
            let at = line.map_or(String::new(), |l| format!(":{l}"));
            Err(mlua::Error::runtime(format!(
                "{origin}{at}: ran {} without awaiting (script_timeout)",
                fmt_duration(timeout)
            )))
        });
        lua.sandbox(true).map_err(describe)?;
        lua.set_memory_limit(script.memory as usize)
            .map_err(describe)?;
        slice.start();
        lua.load(&compiled.bytecode[..])
            .set_name(position::chunk_name(script))
            .set_mode(mlua::ChunkMode::Binary)
            .exec()
            .map_err(describe)?;
        Ok(Vm {
            lua,
            user,
            vars,
            ops,
            compiled,
        })
    }

    /// The global functions the script defines, by name.
    pub(super) fn functions(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .lua
            .globals()
            .pairs::<String, Value>()
            .filter_map(Result::ok)
            .filter(|(_, v)| v.is_function())
            .map(|(k, _)| k)
            .collect();
        names.sort();
        names
    }

    /// Runs `name(user)` until it returns, serving its requests on the user's connection.
    pub(crate) async fn run(&mut self, user: &mut User, name: &str) -> Result<(), String> {
        let script = &self.compiled.script;
        self.vars_in(user)
            .map_err(|e| super::describe(&e, script))?;
        let function: Function = match self.lua.globals().get(name) {
            Ok(f) => f,
            Err(_) => return Err(format!("{}: no function `{name}`", script.origin)),
        };
        self.with_ctx(|c| c.slice.start());
        let call = function.call_async::<()>(self.user.clone());
        tokio::pin!(call);
        let result = loop {
            tokio::select! {
                biased;
                r = &mut call => break r,
                Some(op) = self.ops.recv() => {
                    let reply = http::serve(user, &self.lua, op.request).await;
                    let _ = op.reply.send(reply);
                }
            }
        };
        self.with_ctx(Ctx::flush);
        if result.is_err() {
            // What a failed call left behind (a table that hit the memory limit) must not fail
            // the next call before it starts.
            let _ = self.lua.gc_collect();
        }
        let out = self.vars_out(user);
        result.and(out).map_err(|e| super::describe(&e, script))
    }

    fn with_ctx<R>(&self, f: impl FnOnce(&mut Ctx) -> R) -> Option<R> {
        self.lua.app_data_mut::<Ctx>().map(|mut c| f(&mut c))
    }

    /// The user's variables (captures, templates) into `user.vars`.
    fn vars_in(&self, user: &User) -> mlua::Result<()> {
        let names = &user.shared.prepared.plan.users[user.class].vars;
        for (name, value) in names.iter().zip(&user.vars) {
            self.vars.raw_set(name.as_str(), value.as_deref())?;
        }
        Ok(())
    }

    /// `user.vars` back into the user's variables that templates read.
    fn vars_out(&self, user: &mut User) -> mlua::Result<()> {
        let shared = user.shared.clone();
        let names = &shared.prepared.plan.users[user.class].vars;
        for (name, slot) in names.iter().zip(user.vars.iter_mut()) {
            *slot = match self.vars.raw_get::<Value>(name.as_str())? {
                Value::Nil => None,
                Value::String(s) => Some(s.to_str()?.to_string()),
                Value::Integer(i) => Some(i.to_string()),
                Value::Number(n) => Some(n.to_string()),
                Value::Boolean(b) => Some(b.to_string()),
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
}

/// The globals and the `user` table (with `user.vars`), before the sandbox closes.
fn setup(lua: &Lua, id: u64, slice: &Arc<Slice>) -> mlua::Result<(Table, Table)> {
    let globals = lua.globals();
    for name in REMOVED {
        globals.raw_set(name, Value::Nil)?;
    }
    libs::install(lua, id)?;
    let math: Table = globals.get("math")?;
    math.get::<Function>("randomseed")?.call::<()>(id as f64)?;
    let user = lua.create_table()?;
    let vars = lua.create_table()?;
    user.raw_set("id", id)?;
    user.raw_set("vars", &vars)?;
    http::install(lua, &user, slice)?;
    Ok((user, vars))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hatchery_core::plan::Script;

    use super::*;

    fn compiled(source: &str) -> Compiled {
        Compiled {
            script: Script {
                source: source.to_string(),
                origin: "plan.yaml".to_string(),
                plan: "plan.yaml".to_string(),
                first_line: 10,
                column: 7,
                timeout: Duration::from_millis(100),
                memory: 2 << 20,
            },
            bytecode: mlua::Compiler::new().compile(source).unwrap(),
        }
    }

    fn load(source: &str) -> Result<Vm, String> {
        Vm::check(&compiled(source))
    }

    #[test]
    fn the_sandbox_has_no_files_processes_or_loading() {
        let vm = load(
            "function f(u) end\nassert(require == nil and loadstring == nil and io == nil)\nassert(os.exit == nil and os.execute == nil and getfenv == nil)",
        )
        .unwrap();
        assert_eq!(vm.functions(), ["f"]);
        let err = load("string.upper = nil").unwrap_err();
        assert!(err.starts_with("plan.yaml:10: "), "{err}");
    }

    #[test]
    fn math_random_is_the_same_for_the_same_user() {
        let draw = |id: u64| {
            let c = Arc::new(compiled("x = math.random(1, 1000000)"));
            let vm = Vm::build(c, Arc::new(Recorder::new(1, String::new())), id).unwrap();
            vm.lua.globals().get::<i64>("x").unwrap()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn a_loop_that_never_awaits_is_interrupted_at_its_line() {
        let started = Instant::now();
        let err = load("local n = 0\nwhile true do\n  n += 1\nend").unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            err.starts_with("plan.yaml:12: ran 100ms without awaiting")
                || err.starts_with("plan.yaml:11: ran 100ms without awaiting"),
            "{err}"
        );
    }

    #[test]
    fn a_script_over_its_memory_limit_fails_and_the_process_does_not() {
        let err = load("local t = {}\nfor i = 1, 1e8 do t[i] = string.rep('x', 100) .. i end")
            .unwrap_err();
        assert!(err.contains("out of memory"), "{err}");
    }
}

/// What a scripted user costs, one VM each against one coroutine each in a shared VM (the
/// numbers in docs/scripting.md): `cargo test -p hatchery-worker --lib vm_memory -- --ignored
/// --nocapture`.
#[cfg(test)]
mod probe {
    fn rss() -> u64 {
        let s = std::fs::read_to_string("/proc/self/statm").unwrap();
        s.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 4096
    }
    #[test]
    #[ignore = "a measurement, not a check"]
    fn vm_memory() {
        use mlua::{Lua, LuaOptions};
        let src = "function browse(user)\n  local r = user.http:get('/')\n  if r.status ~= 200 then return end\nend";
        let bc = mlua::Compiler::new().compile(src).unwrap();
        let r0 = rss();
        let t = std::time::Instant::now();
        let v: Vec<Lua> = (0..1000)
            .map(|_| {
                let l = Lua::new_with(super::libraries(), LuaOptions::new()).unwrap();
                l.sandbox(true).unwrap();
                l.load(&bc[..])
                    .set_mode(mlua::ChunkMode::Binary)
                    .exec()
                    .unwrap();
                l
            })
            .collect();
        eprintln!(
            "1000 VMs with the script: {:?}, rss +{} bytes/VM",
            t.elapsed(),
            (rss() - r0) / 1000
        );
        drop(v);
        let l = Lua::new_with(super::libraries(), LuaOptions::new()).unwrap();
        l.sandbox(true).unwrap();
        l.gc_collect().unwrap();
        let m0 = l.used_memory();
        let r0 = rss();
        let t = std::time::Instant::now();
        let f = l.create_function(|_, ()| Ok(())).unwrap();
        let v: Vec<(mlua::Thread, mlua::Table)> = (0..1000)
            .map(|_| {
                let th = l.create_thread(f.clone()).unwrap();
                let env = l.create_table().unwrap();
                let mt = l.create_table().unwrap();
                mt.raw_set("__index", l.globals()).unwrap();
                env.set_metatable(Some(mt)).unwrap();
                l.load(&bc[..])
                    .set_mode(mlua::ChunkMode::Binary)
                    .set_environment(env.clone())
                    .exec()
                    .unwrap();
                (th, env)
            })
            .collect();
        l.gc_collect().unwrap();
        eprintln!(
            "1000 coroutines + env in one VM: {:?}, {} bytes/user (Lua count), rss +{}/user",
            t.elapsed(),
            (l.used_memory() - m0) / 1000,
            (rss() - r0) / 1000
        );
        drop(v);
    }
}
