//! What a VM is set up with before its sandbox closes: the globals removed, the Lua prelude
//! whose yields reach the user's task, and the tables and functions every user shares.

use hatchery_core::Method;
use mlua::{Function, Lua, Table, Value};

use super::super::{cookies, libs};

/// Globals removed before the sandbox closes: mlua's file-system `require`, compiling text at
/// run time, and environment tricks that would defeat Luau's sandbox optimisations.
const REMOVED: [&str; 4] = ["require", "loadstring", "getfenv", "setfenv"];

/// The Lua side of a call: the request functions, `sleep` and `user.cookies`' methods yield to
/// the user's task, and a coroutine runs calls one after another, parking on a yield of `done`
/// (a table no script can reach) between two calls so that the next call needs no new
/// coroutine.
const PRELUDE: &str = r#"
local yield = ...
local done = {}
local function request(code)
  return function(_, url, opts)
    local r, e = yield(code, url, opts)
    if e ~= nil then error(e, 2) end
    return r
  end
end
local function sleep(_, seconds)
  local _, e = yield(-1, seconds)
  if e ~= nil then error(e, 2) end
end
local function run(f, user)
  while true do
    f(user)
    f, user = yield(done)
  end
end
local cookies = {}
local function cookie(code, name)
  return function(self, a, b, c)
    if self ~= cookies then error("call user.cookies:" .. name .. "(...) with `:`, not `.`", 2) end
    local r, e = yield(code, a, b, c)
    if e ~= nil then error(e, 2) end
    return r
  end
end
return request, sleep, run, done, cookie, cookies
"#;

/// What every user of a VM shares: the metatable of its `user` table, through which it reads
/// `user.http`, `user.cookies` and `user:sleep` (each user's table then holds only `id` and
/// `vars`: two slots of Luau's hash part where five would take eight, ~130 bytes a user), the
/// function a call's coroutine runs and what it yields between calls.
pub(super) struct Setup {
    pub user_meta: Table,
    pub run: Function,
    pub done: Table,
}

/// The globals before the sandbox closes, and what the users share.
pub(super) fn setup(lua: &Lua, world: &super::super::World) -> mlua::Result<Setup> {
    let globals = lua.globals();
    for name in REMOVED {
        globals.raw_set(name, Value::Nil)?;
    }
    libs::install(lua)?;
    libs::install_world(lua, world)?;
    let coroutine: Table = globals.get("coroutine")?;
    let yield_: Function = coroutine.get("yield")?;
    let (request, sleep, run, done, cookie, jar): (
        Function,
        Function,
        Function,
        Table,
        Function,
        Table,
    ) = lua.load(PRELUDE).set_name("=hatchery").call(yield_)?;
    let http = lua.create_table()?;
    for (i, method) in Method::ALL.iter().enumerate() {
        http.raw_set(method.plan_key(), request.call::<Function>(i as i64)?)?;
    }
    http.set_readonly(true);
    for op in cookies::Op::ALL {
        let method = cookie.call::<Function>((op.code(), op.name()))?;
        jar.raw_set(op.name(), method)?;
    }
    jar.set_readonly(true);
    let shared = lua.create_table_with_capacity(0, 3)?;
    shared.raw_set("http", http)?;
    shared.raw_set("cookies", jar)?;
    shared.raw_set("sleep", sleep)?;
    shared.set_readonly(true);
    let user_meta = lua.create_table_with_capacity(0, 1)?;
    user_meta.raw_set("__index", shared)?;
    user_meta.set_readonly(true);
    Ok(Setup {
        user_meta,
        run,
        done,
    })
}
