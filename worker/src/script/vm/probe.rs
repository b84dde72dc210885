//! What a scripted user costs and what a call's round trip to Rust costs, in this design and
//! in the ones it replaced (the numbers in docs/architecture.md):
//! `cargo test --release -p hatchery-worker --lib script::vm::probe -- --ignored --nocapture`.

use std::hint::black_box;

use super::*;

const SRC: &str = "function hit(user)\n  local r = user.http:get('/')\nend";
const CALLS: u32 = 200_000;

fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn compiled() -> Arc<Compiled> {
    let source = SRC;
    Arc::new(Compiled {
        script: hatchery_core::plan::Script {
            source: source.to_string(),
            origin: "plan.yaml".to_string(),
            plan: "plan.yaml".to_string(),
            first_line: 1,
            column: 1,
            timeout: Duration::from_secs(1),
            memory: 1 << 30,
        },
        bytecode: mlua::Compiler::new().compile(source).unwrap(),
        wants: crate::script::http::Wants::ALL,
    })
}

fn vm() -> Arc<Vm> {
    let recorder = Arc::new(Recorder::new(1, String::new()));
    let world = super::super::World::default();
    Arc::new(Vm::new(&[Some(compiled())], recorder, &world, 1 << 30).unwrap())
}

#[test]
#[ignore = "a measurement, not a check"]
fn memory_per_user() {
    let vm = vm();
    vm.lua.gc_collect().unwrap();
    let (m0, r0) = (vm.lua.used_memory(), rss());
    let users: Vec<Scripted> = (0..10_000).map(|id| vm.add_user(0, id).unwrap()).collect();
    vm.lua.gc_collect().unwrap();
    eprintln!(
        "10,000 users in one VM: {} bytes/user counted by Luau, RSS +{} bytes/user",
        (vm.lua.used_memory() - m0) / 10_000,
        (rss() - r0) / 10_000
    );
    drop(users);
}

/// The script loaded in `lua` and a `user` whose `http.get` is `get`.
fn async_user(lua: &Lua, get: Function) -> (Function, Table) {
    let http = lua.create_table().unwrap();
    http.set("get", get).unwrap();
    let user = lua.create_table().unwrap();
    user.set("http", http).unwrap();
    lua.load(SRC).exec().unwrap();
    (lua.globals().get("hit").unwrap(), user)
}

#[test]
#[ignore = "a measurement, not a check"]
fn a_calls_round_trip() {
    // This design: the call's coroutine yields the request to the driver, which resumes it.
    let vm = vm();
    let user = vm.add_user(0, 1).unwrap();
    let f = user.function("hit").unwrap();
    let started = Instant::now();
    for _ in 0..CALLS {
        let thread = vm.thread().unwrap();
        let _gate = vm.try_enter();
        let y = vm.resume(
            &thread,
            user.token,
            Turn::Fresh,
            (f.clone(), user.user.clone()),
        );
        assert!(matches!(y, Ok(Yielded::Request { .. })));
        let y = vm.resume(&thread, user.token, Turn::Fresh, Value::Nil);
        assert!(matches!(y, Ok(Yielded::Done)));
        vm.recycle(thread, true);
    }
    let yielding = started.elapsed() / CALLS;

    // The first slice: mlua's async call, the request sent over a channel to the user's
    // task and answered over a oneshot (one VM per user).
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let channel = rt.block_on(async {
        let lua = Lua::new();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<()>>(1);
        let get = lua
            .create_async_function(move |_, (_, _url): (Value, String)| {
                let tx = tx.clone();
                async move {
                    let (reply, answer) = tokio::sync::oneshot::channel();
                    tx.send(reply).await.map_err(mlua::Error::external)?;
                    answer.await.map_err(mlua::Error::external)?;
                    Ok(())
                }
            })
            .unwrap();
        let (f, user) = async_user(&lua, get);
        let started = Instant::now();
        for _ in 0..CALLS {
            let call = f.call_async::<()>(user.clone());
            tokio::pin!(call);
            loop {
                tokio::select! {
                    biased;
                    r = &mut call => { r.unwrap(); break }
                    Some(reply) = rx.recv() => { let _ = reply.send(()); }
                }
            }
        }
        started.elapsed() / CALLS
    });

    // mlua's async call whose Rust future is ready at once: the floor of that design.
    let ready = rt.block_on(async {
        let lua = Lua::new();
        let get = lua
            .create_async_function(|_, (_, _url): (Value, String)| async move { Ok(()) })
            .unwrap();
        let (f, user) = async_user(&lua, get);
        let started = Instant::now();
        for _ in 0..CALLS {
            f.call_async::<()>(user.clone()).await.unwrap();
        }
        started.elapsed() / CALLS
    });
    eprintln!(
        "per call with one request: yield to the user's task {yielding:?}; mlua async + channel {channel:?}; mlua async, ready at once {ready:?}"
    );
    black_box((yielding, channel, ready));
}
