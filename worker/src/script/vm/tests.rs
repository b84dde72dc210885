//! The VM's unit tests: sandbox, users' own state, limits, giving way.

use std::time::Duration;

use hatchery_core::plan::Script;

use super::*;

fn compiled(source: &str) -> Arc<Compiled> {
    Arc::new(Compiled {
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
        wants: crate::script::http::Wants::ALL,
    })
}

fn vm(source: &str) -> Arc<Vm> {
    let recorder = Arc::new(Recorder::new(1, String::new()));
    let world = super::super::World::default();
    Arc::new(Vm::new(&[Some(compiled(source))], recorder, &world, 2 << 20).unwrap())
}

fn load(source: &str) -> Result<Scripted, String> {
    vm(source).add_user(0, 0)
}

#[test]
fn the_sandbox_has_no_files_processes_or_loading() {
    let user = load(
        "function f(u) end\nassert(require == nil and loadstring == nil and io == nil)\nassert(os.exit == nil and os.execute == nil and getfenv == nil)",
    )
    .unwrap();
    assert_eq!(user.functions(), ["f"]);
    let err = load("string.upper = nil").unwrap_err();
    assert!(err.starts_with("plan.yaml:10: "), "{err}");
}

#[test]
fn math_random_is_the_same_for_the_same_user_and_users_share_no_globals() {
    let vm = vm("x = math.random(1, 1000000)\ny = (y or 0) + 1");
    let draw = |id: u64| {
        let user = vm.add_user(0, id).unwrap();
        let x = user.env.raw_get::<i64>("x").unwrap();
        assert_eq!(user.env.raw_get::<i64>("y").unwrap(), 1);
        x
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
fn a_script_over_its_memory_limit_fails_and_the_vm_serves_the_next_user() {
    let vm = vm("if (n or 0) == 0 then n = 1 end\nfunction f() end");
    let hog = "local t = {}\nfor i = 1, 1e8 do t[i] = string.rep('x', 100) .. i end";
    let err = Vm::new(
        &[Some(compiled(hog))],
        Arc::new(Recorder::new(1, String::new())),
        &super::super::World::default(),
        2 << 20,
    )
    .unwrap();
    let err = Arc::new(err).add_user(0, 1).unwrap_err();
    assert!(err.contains("out of memory"), "{err}");
    assert_eq!(vm.add_user(0, 2).unwrap().functions(), ["f"]);
}

#[test]
fn a_call_that_computes_for_long_gives_way_each_turn_and_keeps_its_budget() {
    // 30 ms of computing in the call, and 10 ms in a coroutine of the script's own and in
    // a `table.sort` comparator, where it cannot give way (a yield there would reach the
    // script's `resume` or cross a C call).
    let vm = vm(
        "function spin(s) local t = os.clock() while os.clock() - t < s do end end
function f(user)
  local co = coroutine.wrap(function() spin(0.01) return 'inner' end)
  assert(co() == 'inner')
  table.sort({3, 2, 1}, function(a, b) spin(0.005) return a < b end)
  spin(0.03)
end
function forever(user) while true do end end",
    );
    let user = vm.add_user(0, 1).unwrap();
    let _gate = vm.try_enter();
    let call = |name: &str| {
        let thread = vm.thread().unwrap();
        let mut next = vm.resume(
            &thread,
            user.token,
            Turn::Fresh,
            (user.function(name), user.user.clone()),
        );
        let mut turns = Vec::new();
        loop {
            match next {
                Ok(Yielded::GaveWay(left)) => {
                    turns.push(left);
                    next = vm.resume(&thread, user.token, Turn::Left(left), ());
                }
                other => break (other.map(|y| y.is_done()), turns),
            }
        }
    };
    let (done, turns) = call("f");
    assert_eq!(done.ok(), Some(true));
    // Turns of 2 ms, the clock read every 256 interrupts (coarser in a debug build).
    assert!(turns.len() >= 3, "{} turns", turns.len());
    assert!(turns.windows(2).all(|w| w[1] < w[0]), "{turns:?}");
    // The budget (100 ms here) runs on across turns: a loop is still interrupted.
    let (err, turns) = call("forever");
    let err = err.unwrap_err().to_string();
    assert!(err.contains("ran 100ms without awaiting"), "{err}");
    assert!(turns.len() >= 8, "{} turns", turns.len());
}

#[test]
fn a_users_slot_is_freed_when_it_goes_and_its_token_then_names_no_one() {
    let vm = vm("function f() end");
    let first = vm.add_user(0, 1).unwrap();
    let token = first.token;
    drop(first);
    let second = vm.add_user(0, 2).unwrap();
    let mut ctx = vm.ctx().unwrap();
    assert!(ctx.user(token).is_none());
    assert_eq!(ctx.user(second.token).map(|u| u.id), Some(2));
}

#[test]
fn the_methods_users_share_through_their_metatable_are_not_one_users_to_change() {
    let vm = vm("function f(user) end");
    let (a, b) = (vm.add_user(0, 1).unwrap(), vm.add_user(0, 2).unwrap());
    let run = |src: &str| vm.lua.load(src).call::<()>(a.user.clone());
    for src in [
        "getmetatable(...).__index.http = nil",
        "getmetatable(...).__index = {}",
    ] {
        let err = run(src).unwrap_err().to_string();
        assert!(err.contains("readonly"), "{src}: {err}");
    }
    // What a user does to its own table stays its own.
    run("local u = ...; u.http = nil; setmetatable(u, nil)").unwrap();
    assert!(a.user.get::<Value>("cookies").unwrap().is_nil());
    for name in ["http", "cookies", "sleep"] {
        assert!(!b.user.get::<Value>(name).unwrap().is_nil(), "{name}");
    }
    assert_eq!(b.user.get::<u64>("id").unwrap(), 2);
}
