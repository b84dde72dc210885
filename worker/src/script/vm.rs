//! One Luau VM per worker thread, shared by the scripted users assigned to it: the sandbox,
//! the limits (time without awaiting, memory), each class's script loaded once, and per user
//! an environment, a `user` table and, while a call runs, a coroutine.
//!
//! A call runs as a coroutine that the user's own task resumes. `user.http:get(...)` and
//! `user:sleep(s)` yield to that task, which sends the request on the user's connection (or
//! sleeps) with no Lua state held and resumes the coroutine with the answer; `user.cookies`'
//! methods yield to it too, and it answers them at once from the user's jar. So Lua never
//! awaits: the VM's lock (mlua's `send`) is held only while Lua code runs, and a user's task
//! may move between runtime threads between two resumes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hatchery_core::Method;
use mlua::{Function, Lua, LuaOptions, StdLib, Table, Thread, ThreadStatus, Value};

use super::http::{Outgoing, Pending};
use super::{position, Compiled};
use crate::prepare::PreparedRequest;
use crate::recorder::Recorder;
use crate::user::fmt_duration;
use crate::user::User;

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

/// Interrupts between two looks at the clock: Luau interrupts at every call and loop
/// back-edge, and a clock read costs more than a loop iteration.
const TICKS_PER_CLOCK: u64 = 256;

/// The longest a call's Lua runs before it gives way to the other tasks of its thread and the
/// other users of its VM (it yields to its task, which lets them run and goes on): so a script
/// that computes for long adds at most about this to their latency, instead of up to its
/// `script_timeout`. A turn costs a few microseconds; at 2 ms that is ~0.2% of a long loop.
pub(super) const TURN: Duration = Duration::from_millis(2);

/// Finished coroutines a VM keeps to run the next calls in.
const SPARE_THREADS: usize = 256;

/// The code a yield carries for `user:sleep` (requests carry their method's index).
const SLEEP: i64 = -1;

/// A clock not started yet ([`Slice::start`]).
const UNSET: u64 = u64::MAX;

/// How long the running script has run since it last awaited, against its class's
/// `script_timeout`, and how long since it last gave way to other tasks. One per VM: one
/// coroutine runs in a VM at a time.
#[derive(Debug)]
pub(super) struct Slice {
    base: Instant,
    /// When the budget runs out; [`UNSET`] until the first look at the clock.
    deadline_ns: AtomicU64,
    /// What is left of the budget when the clock starts.
    left_ns: AtomicU64,
    budget_ns: AtomicU64,
    ticks: AtomicU64,
    /// When the running call's coroutine is to give way (yield to its task) next.
    turn_end_ns: AtomicU64,
    /// The call's coroutine that may be made to give way (its pointer), 0 when none may.
    yielder: AtomicUsize,
    /// Set when the interrupt asked the running coroutine to give way.
    gave_way: AtomicBool,
}

impl Slice {
    fn new() -> Slice {
        Slice {
            base: Instant::now(),
            deadline_ns: AtomicU64::new(UNSET),
            left_ns: AtomicU64::new(u64::MAX),
            budget_ns: AtomicU64::new(u64::MAX),
            ticks: AtomicU64::new(0),
            turn_end_ns: AtomicU64::new(UNSET),
            yielder: AtomicUsize::new(0),
            gave_way: AtomicBool::new(false),
        }
    }

    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// A script runs from now for at most `left` of its `budget` (a call starts, an await
    /// ended, or a call that gave way goes on), and for at most [`TURN`] before it gives way;
    /// `yielder` is the coroutine that may give way (0: none, as a user's top level).
    ///
    /// The clocks start at the interrupt's first look at the clock, [`TICKS_PER_CLOCK`]
    /// interrupts later (microseconds of Lua): most resumes end before that, and reading the
    /// clock at each of a call's two resumes would cost ~1% of a scripted request.
    fn start(&self, budget: Duration, left: Duration, yielder: usize) {
        self.left_ns
            .store(left.as_nanos() as u64, Ordering::Relaxed);
        self.deadline_ns.store(UNSET, Ordering::Relaxed);
        self.turn_end_ns.store(UNSET, Ordering::Relaxed);
        self.ticks.store(1, Ordering::Relaxed);
        self.budget_ns
            .store(budget.as_nanos() as u64, Ordering::Relaxed);
        self.yielder.store(yielder, Ordering::Relaxed);
        self.gave_way.store(false, Ordering::Relaxed);
    }

    /// The clock, at every [`TICKS_PER_CLOCK`]th interrupt.
    fn tick(&self) -> Option<u64> {
        if self.ticks.fetch_add(1, Ordering::Relaxed) % TICKS_PER_CLOCK != 0 {
            return None;
        }
        // The interrupt runs again, so a yield it asked for last time did not happen (the
        // coroutine was not at a point it can yield from, such as inside a `table.sort`).
        self.gave_way.store(false, Ordering::Relaxed);
        let now = self.now_ns();
        if self.deadline_ns.load(Ordering::Relaxed) == UNSET {
            let left = self.left_ns.load(Ordering::Relaxed);
            self.deadline_ns
                .store(now.saturating_add(left).min(UNSET - 1), Ordering::Relaxed);
            self.turn_end_ns
                .store(now + TURN.as_nanos() as u64, Ordering::Relaxed);
        }
        Some(now)
    }

    fn over(&self, now: u64) -> bool {
        now > self.deadline_ns.load(Ordering::Relaxed)
    }

    /// Whether the running coroutine has had its turn and may give way: it is the call's own
    /// coroutine (a coroutine of the script's own would yield to the script's `resume`).
    fn turn_over(&self, now: u64, lua: &Lua) -> bool {
        if now <= self.turn_end_ns.load(Ordering::Relaxed) {
            return false;
        }
        let yielder = self.yielder.load(Ordering::Relaxed);
        yielder != 0 && lua.current_thread().to_pointer() as usize == yielder
    }

    /// What is left of the budget.
    fn left(&self) -> Duration {
        match self.deadline_ns.load(Ordering::Relaxed) {
            UNSET => Duration::from_nanos(self.left_ns.load(Ordering::Relaxed)),
            deadline => Duration::from_nanos(deadline.saturating_sub(self.now_ns())),
        }
    }

    fn budget(&self) -> Duration {
        Duration::from_nanos(self.budget_ns.load(Ordering::Relaxed))
    }
}

/// What the VM keeps of one scripted user.
#[derive(Debug)]
pub(super) struct UserState {
    pub id: u64,
    /// The user's own `math.random`, seeded from its number.
    pub rng: fastrand::Rng,
    /// The last response, until the script settles it or the next request or the call's end
    /// records it as it is.
    pub pending: Option<Pending>,
    pub next_seq: u64,
    timeout: Duration,
    /// The token's check part: a token of a user gone does not name the user now in its slot.
    nonce: u32,
}

/// A user's token as Lua carries it: slot and nonce in one number (exact in a double).
fn token(slot: usize, nonce: u32) -> i64 {
    (i64::from(nonce) << 20) | slot as i64
}

/// Users per VM before tokens would not fit (slot bits of [`token`]).
const MAX_SLOTS: usize = 1 << 20;

/// What the VM's Rust functions share (the Lua state's app data).
#[derive(Debug)]
pub(super) struct Ctx {
    pub recorder: Arc<Recorder>,
    slice: Arc<Slice>,
    /// The slot of the user whose code runs.
    pub current: usize,
    users: Vec<Option<UserState>>,
    free: Vec<usize>,
    spare: Vec<Thread>,
}

impl Ctx {
    /// The user a token names, if it is still there.
    pub(super) fn user(&mut self, token: i64) -> Option<&mut UserState> {
        let slot = (token & (MAX_SLOTS as i64 - 1)) as usize;
        let nonce = (token >> 20) as u32;
        self.users
            .get_mut(slot)?
            .as_mut()
            .filter(|u| u.nonce == nonce)
    }

    /// The user whose code runs now.
    pub(super) fn running(&mut self) -> Option<&mut UserState> {
        self.users.get_mut(self.current)?.as_mut()
    }

    /// Records the user's pending response as it is.
    pub(super) fn flush(&mut self, token: i64) {
        let recorder = self.recorder.clone();
        if let Some(p) = self.user(token).and_then(|u| u.pending.take()) {
            p.record(&recorder);
        }
    }

    /// Makes `token`'s user the running one, its clocks started for `turn` of coroutine
    /// `yielder` (its pointer).
    fn enter(&mut self, token: i64, turn: Turn, yielder: usize) -> bool {
        let Some(user) = self.user(token) else {
            return false;
        };
        let timeout = user.timeout;
        self.current = (token & (MAX_SLOTS as i64 - 1)) as usize;
        match turn {
            Turn::TopLevel => self.slice.start(timeout, timeout, 0),
            Turn::Fresh => self.slice.start(timeout, timeout, yielder),
            Turn::Left(left) => self.slice.start(timeout, left, yielder),
            Turn::Continued => {}
        }
        true
    }
}

/// How a resume starts the clocks of [`Slice`].
#[derive(Debug, Clone, Copy)]
pub(super) enum Turn {
    /// A user's top level: its whole `script_timeout`, and it never gives way (the caller may
    /// not be able to await).
    TopLevel,
    /// A call starts, or an await ended: its whole `script_timeout`.
    Fresh,
    /// A call that gave way goes on with what was left of its `script_timeout`.
    Left(Duration),
    /// A call goes on after an answer that did not await (`user.cookies`): its clocks run on,
    /// as if the answer had been a function of its own.
    Continued,
}

/// One worker thread's VM, with every class's script loaded.
pub(crate) struct Vm {
    lua: Lua,
    /// The clocks of the running script (the interrupt's and [`Ctx`]'s too).
    slice: Arc<Slice>,
    /// The memory limit, bytes.
    memory: usize,
    /// Held while Lua runs (a resume, a user's top level, a full collection). mlua's own lock
    /// (`send`) blocks the thread that waits for it; this one suspends the waiting task, so a
    /// user whose script runs long on one thread does not block another runtime thread.
    gate: tokio::sync::Mutex<()>,
    /// Per class of the plan, its script's chunk (`None` for a class without a script).
    chunks: Vec<Option<(Function, Arc<Compiled>)>>,
    /// Every user's `user` table reads `user.http`, `user.cookies` and `user:sleep` through
    /// this: shared by every user, the yield tells whose it was.
    user_meta: Table,
    run: Function,
    /// What a call's coroutine yields when the call has returned.
    done: Table,
    /// Every user's environment reads the shared globals through this.
    env_meta: Table,
    /// Requests of a method and URL alone, prepared once per class: most scripts send the same
    /// few again and again. Bounded: past [`MAX_PREPARED`] a request is prepared each time.
    prepared: std::sync::Mutex<Prepared>,
}

/// Requests prepared once per class, method and URL; looked up by the URL as the script gave it,
/// with no key to allocate per request.
#[derive(Debug, Default)]
struct Prepared {
    by: HashMap<(usize, Method), HashMap<String, Arc<PreparedRequest>>>,
    count: usize,
}

/// Prepared requests a VM keeps, and the longest URL it keeps one for.
const MAX_PREPARED: usize = 1024;
const MAX_PREPARED_URL: usize = 512;

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm").finish_non_exhaustive()
    }
}

/// A scripted user's part of a VM: its environment (the script's globals, its own), its
/// `user` table and `user.vars`. Dropping it frees the user's slot.
pub(crate) struct Scripted {
    pub(super) vm: Arc<Vm>,
    pub(super) token: i64,
    pub(super) class: usize,
    env: Table,
    user: Table,
    vars: Table,
}

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scripted")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        if let Some(mut ctx) = self.vm.lua.app_data_mut::<Ctx>() {
            let slot = (self.token & (MAX_SLOTS as i64 - 1)) as usize;
            if let Some(s) = ctx.users.get_mut(slot) {
                *s = None;
                ctx.free.push(slot);
            }
        }
    }
}

/// What a coroutine did when it stopped: finished its call, or yielded a request or a sleep.
pub(super) enum Yielded {
    Done,
    Request {
        method: Method,
        url: Value,
        opts: Value,
    },
    Sleep(Value),
    /// A method of `user.cookies`, with its arguments.
    Cookies(super::cookies::Op, [Value; 3]),
    /// The call ran for its [`TURN`] and gave way; resume it with [`Turn::Left`] of this.
    GaveWay(Duration),
    /// Something else yielded (the script called `coroutine.yield` itself).
    Stray,
}

impl Yielded {
    fn is_done(&self) -> bool {
        matches!(self, Yielded::Done)
    }
}

impl Vm {
    /// A VM with every class's script loaded, under `memory` bytes.
    pub(crate) fn new(
        classes: &[Option<Arc<Compiled>>],
        recorder: Arc<Recorder>,
        world: &super::World,
        memory: usize,
    ) -> Result<Vm, String> {
        let lua = Lua::new_with(libraries(), LuaOptions::new()).map_err(|e| e.to_string())?;
        let slice = Arc::new(Slice::new());
        let Setup {
            user_meta,
            run,
            done,
        } = setup(&lua, world).map_err(|e| e.to_string())?;
        lua.set_app_data(Ctx {
            recorder,
            slice: slice.clone(),
            current: usize::MAX,
            users: Vec::new(),
            free: Vec::new(),
            spare: Vec::new(),
        });
        let clock = slice.clone();
        lua.set_interrupt(move |lua| {
            let Some(now) = clock.tick() else {
                return Ok(mlua::VmState::Continue);
            };
            if !clock.over(now) {
                if clock.turn_over(now, lua) {
                    clock.gave_way.store(true, Ordering::Relaxed);
                    return Ok(mlua::VmState::Yield);
                }
                return Ok(mlua::VmState::Continue);
            }
            let at = lua
                .inspect_stack(0, |d| {
                    let source = d
                        .source()
                        .source
                        .map(|s| s.trim_start_matches('=').to_string());
                    source.zip(d.current_line())
                })
                .flatten()
                .map_or(String::new(), |(s, l)| format!("{s}:{l}: "));
            Err(mlua::Error::runtime(format!(
                "{at}ran {} without awaiting (script_timeout)",
                fmt_duration(clock.budget())
            )))
        });
        let base = lua.globals();
        lua.sandbox(true).map_err(|e| e.to_string())?;
        let env_meta = lua.create_table().map_err(|e| e.to_string())?;
        env_meta
            .raw_set("__index", base)
            .map_err(|e| e.to_string())?;
        env_meta.set_readonly(true);
        let mut chunks = Vec::with_capacity(classes.len());
        for class in classes {
            let Some(compiled) = class else {
                chunks.push(None);
                continue;
            };
            let chunk = lua
                .load(&compiled.bytecode[..])
                .set_name(position::chunk_name(&compiled.script))
                .set_mode(mlua::ChunkMode::Binary)
                .into_function()
                .map_err(|e| super::describe(&e, &compiled.script))?;
            chunks.push(Some((chunk, compiled.clone())));
        }
        lua.set_memory_limit(memory).map_err(|e| e.to_string())?;
        Ok(Vm {
            lua,
            slice,
            memory,
            gate: tokio::sync::Mutex::new(()),
            prepared: std::sync::Mutex::default(),
            chunks,
            user_meta,
            run,
            done,
            env_meta,
        })
    }

    pub(super) fn lua(&self) -> &Lua {
        &self.lua
    }

    /// Runs `f`, which makes the engine's own small objects (a response, the called function's
    /// name), with the memory limit lifted. Under a limit mlua makes every step that may
    /// allocate a protected call (a new C closure and a `pcall` each), which cost about 1 us
    /// of a scripted request's ~5. No script code runs inside (the caller holds the gate and
    /// resumes nothing), and what `f` makes is counted: if it takes the VM over its limit,
    /// the script's next allocation fails as before.
    pub(super) fn unlimited<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Restore<'a>(&'a Vm);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                let _ = self.0.lua.set_memory_limit(self.0.memory);
            }
        }
        let _ = self.lua.set_memory_limit(0);
        let _restore = Restore(self);
        f()
    }

    /// `req` prepared to go out as `user`'s: from the VM's cache when it is plain.
    pub(super) fn prepared(
        &self,
        user: &User,
        req: &Outgoing,
    ) -> Result<Arc<PreparedRequest>, String> {
        let base = user.shared.prepared.classes[user.class].base.as_ref();
        let wants = match self.chunks.get(user.class) {
            Some(Some((_, c))) => c.wants,
            _ => super::http::Wants::ALL,
        };
        let prepare = || super::http::prepare(req, base, wants).map(Arc::new);
        if !req.opts.plain() || req.url.len() > MAX_PREPARED_URL {
            return prepare();
        }
        let key = (user.class, req.method);
        let known = self.prepared.lock().ok().and_then(|c| {
            let by_url = c.by.get(&key)?;
            by_url.get(req.url.as_str()).cloned()
        });
        if let Some(p) = known {
            return Ok(p);
        }
        let p = prepare()?;
        if let Ok(mut cache) = self.prepared.lock() {
            if cache.count < MAX_PREPARED {
                cache.count += 1;
                let by_url = cache.by.entry(key).or_default();
                by_url.insert(req.url.clone(), p.clone());
            }
        }
        Ok(p)
    }

    pub(super) fn forget_prepared(&self) {
        if let Ok(mut cache) = self.prepared.lock() {
            *cache = Prepared::default();
        }
    }

    /// Waits for the VM to be free of other users' Lua: hold the guard while Lua runs, never
    /// across a request or a sleep.
    pub(super) async fn enter(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.gate.lock().await
    }

    /// The gate for code that cannot await (a check at prepare time, tests).
    pub(super) fn try_enter(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        self.gate.try_lock().ok()
    }

    /// Adds user `id` of `class`: its slot, environment and `user` table, and runs the script's
    /// top level in its environment. `Err` is the script's error as it loaded. The caller holds
    /// the gate ([`Vm::enter`]).
    pub(crate) fn add_user(self: &Arc<Vm>, class: usize, id: u64) -> Result<Scripted, String> {
        let Some(Some((chunk, compiled))) = self.chunks.get(class) else {
            return Err("the class has no script".to_string());
        };
        let script = &compiled.script;
        let describe = |e: mlua::Error| super::describe(&e, script);
        let token = {
            let mut ctx = self.ctx()?;
            let slot = match ctx.free.pop() {
                Some(slot) => slot,
                None if ctx.users.len() < MAX_SLOTS => {
                    ctx.users.push(None);
                    ctx.users.len() - 1
                }
                None => return Err(format!("more than {MAX_SLOTS} scripted users in one VM")),
            };
            let nonce = fastrand::u32(..1 << 30);
            ctx.users[slot] = Some(UserState {
                id,
                rng: fastrand::Rng::with_seed(id),
                pending: None,
                next_seq: 0,
                timeout: script.timeout,
                nonce,
            });
            token(slot, nonce)
        };
        let lua = &self.lua;
        let made = (|| {
            let env = lua.create_table()?;
            env.set_metatable(Some(self.env_meta.clone()))?;
            env.set_safeenv(true);
            let vars = lua.create_table()?;
            let user = lua.create_table_with_capacity(0, 2)?;
            user.raw_set("id", id)?;
            user.raw_set("vars", &vars)?;
            user.set_metatable(Some(self.user_meta.clone()))?;
            Ok((env, user, vars))
        })();
        // From here the slot is the user's: dropping `Scripted` frees it.
        let (env, user, vars) = match made {
            Ok(t) => t,
            Err(e) => {
                self.release(token);
                return Err(describe(e));
            }
        };
        let scripted = Scripted {
            vm: self.clone(),
            token,
            class,
            env,
            user,
            vars,
        };
        let top = (|| {
            let top = chunk.deep_clone()?;
            top.set_environment(scripted.env.clone())?;
            Ok(top)
        })()
        .map_err(describe)?;
        let thread = self.thread().map_err(describe)?;
        let ran = self.resume(&thread, token, Turn::TopLevel, (top, Value::Nil));
        let done = matches!(ran, Ok(Yielded::Done));
        self.recycle(thread, done);
        if ran.map_err(describe)?.is_done() {
            return Ok(scripted);
        }
        Err(format!(
            "{}: the script's top level cannot send requests or sleep (there is no user yet)",
            script.origin
        ))
    }

    fn release(&self, token: i64) {
        if let Ok(mut ctx) = self.ctx() {
            let slot = (token & (MAX_SLOTS as i64 - 1)) as usize;
            ctx.users[slot] = None;
            ctx.free.push(slot);
        }
    }

    pub(super) fn ctx(&self) -> Result<mlua::AppDataRefMut<'_, Ctx>, String> {
        self.lua
            .app_data_mut::<Ctx>()
            .ok_or_else(|| "the script's state is gone".to_string())
    }

    /// A coroutine ready to run a call: a spare one, or a new one.
    pub(super) fn thread(&self) -> mlua::Result<Thread> {
        let spare = self
            .lua
            .app_data_mut::<Ctx>()
            .and_then(|mut c| c.spare.pop());
        match spare {
            Some(t) => Ok(t),
            None => self.lua.create_thread(self.run.clone()),
        }
    }

    /// Keeps a coroutine whose call has ended for the next call: as it is when the call
    /// returned (`done`: it is parked between calls), reset when it failed.
    pub(super) fn recycle(&self, thread: Thread, done: bool) {
        if !done && thread.reset(self.run.clone()).is_err() {
            return;
        }
        if let Some(mut c) = self.lua.app_data_mut::<Ctx>() {
            if c.spare.len() < SPARE_THREADS {
                c.spare.push(thread);
            }
        }
    }

    /// Resumes a call's coroutine as `token`'s user and says what it stopped for. The caller
    /// holds the gate, so no other user's Lua runs in between.
    pub(super) fn resume(
        &self,
        thread: &Thread,
        token: i64,
        turn: Turn,
        args: impl mlua::IntoLuaMulti,
    ) -> mlua::Result<Yielded> {
        let yielder = thread.to_pointer() as usize;
        if !self
            .lua
            .app_data_mut::<Ctx>()
            .is_some_and(|mut c| c.enter(token, turn, yielder))
        {
            return Err(mlua::Error::runtime("the user's script state is gone"));
        }
        let (code, a, b, c) = thread.resume::<(Value, Value, Value, Value)>(args)?;
        if thread.status() != ThreadStatus::Resumable {
            // Only `run` returns, and it never does: a coroutine that ended is not reused.
            return Ok(Yielded::Stray);
        }
        // The interrupt's yield carries no values and sets the flag; a bare `coroutine.yield()`
        // of the script's own does not set it (it is cleared at each resume and at each look at
        // the clock, so only a yield the interrupt asked for where Luau could not yield, such as
        // in a `table.sort` comparator, then a bare yield before the next look, would pass).
        if self.slice.gave_way.swap(false, Ordering::Relaxed)
            && (code.is_nil() && a.is_nil() && b.is_nil() && c.is_nil())
        {
            return Ok(Yielded::GaveWay(self.slice.left()));
        }
        let code = match code {
            Value::Table(t) if t == self.done => return Ok(Yielded::Done),
            Value::Integer(i) => i,
            Value::Number(n) if n.fract() == 0.0 => n as i64,
            _ => return Ok(Yielded::Stray),
        };
        if let Some(op) = super::cookies::Op::of(code) {
            return Ok(Yielded::Cookies(op, [a, b, c]));
        }
        Ok(match code {
            SLEEP => Yielded::Sleep(a),
            i => match usize::try_from(i).ok().and_then(|i| Method::ALL.get(i)) {
                Some(&method) => Yielded::Request {
                    method,
                    url: a,
                    opts: b,
                },
                None => Yielded::Stray,
            },
        })
    }
}

impl Scripted {
    /// The global functions the user's script defines, by name.
    pub(super) fn functions(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .env
            .pairs::<String, Value>()
            .filter_map(Result::ok)
            .filter(|(_, v)| v.is_function())
            .map(|(k, _)| k)
            .collect();
        names.sort();
        names
    }

    /// The function `name` of the user's script.
    pub(super) fn function(&self, name: &str) -> Option<Function> {
        self.env.raw_get::<Function>(name).ok()
    }

    pub(super) fn user(&self) -> &Table {
        &self.user
    }

    pub(super) fn vars(&self) -> &Table {
        &self.vars
    }

    pub(super) fn compiled(&self) -> Option<&Arc<Compiled>> {
        match self.vm.chunks.get(self.class) {
            Some(Some((_, c))) => Some(c),
            _ => None,
        }
    }
}

mod setup;
use setup::{setup, Setup};

#[cfg(test)]
mod tests;

/// Measurements, run by hand (ignored tests).
#[cfg(test)]
mod probe;
