//! The libraries a script gets besides Luau's own: `json`, `crypto`, `base64`, `uuid()`,
//! `log`, `print` (to the log), `metric(name, ms)`, and `math.random` per user.

use base64::Engine;
use hatchery_core::stats::Sample;
use hatchery_core::timestamp::unix_now;
use hatchery_core::Method;
use mlua::{Lua, LuaSerdeExt, SerializeOptions, Value};

use super::vm::Ctx;

/// JSON as Lua: `null` is `nil`, arrays keep a marker so they encode back as arrays.
pub(super) fn to_lua(lua: &Lua, value: &serde_json::Value) -> mlua::Result<Value> {
    let options = SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false);
    lua.to_value_with(value, options)
}

/// Deepest Lua table [`to_json`] takes (serde_json reads no deeper either).
const MAX_DEPTH: usize = 128;

/// A Lua value as JSON. Deeper tables are refused before conversion: the conversion recurses,
/// and a script must not be able to overflow the worker's stack.
pub(super) fn to_json(lua: &Lua, value: Value) -> mlua::Result<serde_json::Value> {
    fn depth_ok(value: &Value, depth: usize) -> mlua::Result<()> {
        let Value::Table(t) = value else {
            return Ok(());
        };
        if depth >= MAX_DEPTH {
            return Err(mlua::Error::runtime(format!(
                "a table nested deeper than {MAX_DEPTH} levels cannot be JSON"
            )));
        }
        for pair in t.pairs::<Value, Value>() {
            let (_, v) = pair?;
            depth_ok(&v, depth + 1)?;
        }
        Ok(())
    }
    depth_ok(&value, 0)?;
    lua.from_value(value)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The running user's number, for the log.
fn running_id(lua: &Lua) -> Option<u64> {
    lua.app_data_mut::<Ctx>()
        .and_then(|mut c| c.running().map(|u| u.id))
}

pub(super) fn install(lua: &Lua) -> mlua::Result<()> {
    let globals = lua.globals();
    install_math(lua, &globals)?;

    let json = lua.create_table()?;
    json.raw_set(
        "encode",
        lua.create_function(|lua, v: Value| {
            let value = to_json(lua, v)?;
            serde_json::to_string(&value).map_err(mlua::Error::external)
        })?,
    )?;
    json.raw_set(
        "decode",
        lua.create_function(|lua, text: mlua::String| {
            let value: serde_json::Value = serde_json::from_slice(&text.as_bytes())
                .map_err(|e| mlua::Error::runtime(format!("json.decode: {e}")))?;
            to_lua(lua, &value)
        })?,
    )?;
    globals.raw_set("json", json)?;

    let crypto = lua.create_table()?;
    crypto.raw_set(
        "sha256",
        lua.create_function(|_, data: mlua::String| {
            Ok(hex(ring::digest::digest(
                &ring::digest::SHA256,
                &data.as_bytes(),
            )
            .as_ref()))
        })?,
    )?;
    crypto.raw_set(
        "hmac_sha256",
        lua.create_function(|_, (key, data): (mlua::String, mlua::String)| {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key.as_bytes());
            Ok(hex(ring::hmac::sign(&key, &data.as_bytes()).as_ref()))
        })?,
    )?;
    globals.raw_set("crypto", crypto)?;

    let b64 = lua.create_table()?;
    b64.raw_set(
        "encode",
        lua.create_function(|_, data: mlua::String| {
            Ok(base64::engine::general_purpose::STANDARD.encode(data.as_bytes()))
        })?,
    )?;
    b64.raw_set(
        "decode",
        lua.create_function(|lua, text: mlua::String| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.as_bytes())
                .map_err(|e| mlua::Error::runtime(format!("base64.decode: {e}")))?;
            lua.create_string(bytes)
        })?,
    )?;
    globals.raw_set("base64", b64)?;

    globals.raw_set(
        "uuid",
        lua.create_function(|_, ()| {
            let mut b = fastrand::u128(..).to_be_bytes();
            b[6] = (b[6] & 0x0f) | 0x40;
            b[8] = (b[8] & 0x3f) | 0x80;
            let h = hex(&b);
            Ok(format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            ))
        })?,
    )?;

    let log = lua.create_table()?;
    log.raw_set(
        "info",
        lua.create_function(move |lua, message: String| {
            tracing::info!(user = running_id(lua), "{message}");
            Ok(())
        })?,
    )?;
    log.raw_set(
        "warn",
        lua.create_function(move |lua, message: String| {
            tracing::warn!(user = running_id(lua), "{message}");
            Ok(())
        })?,
    )?;
    globals.raw_set("log", log)?;
    globals.raw_set(
        "print",
        lua.create_function(move |lua, values: mlua::Variadic<Value>| {
            let text: Vec<String> = values
                .iter()
                .map(|v| v.to_string().unwrap_or_else(|_| v.type_name().to_string()))
                .collect();
            tracing::info!(user = running_id(lua), "{}", text.join("\t"));
            Ok(())
        })?,
    )?;

    globals.raw_set(
        "metric",
        lua.create_function(|lua, (name, ms): (String, f64)| {
            if !(ms.is_finite() && ms >= 0.0) {
                return Err(mlua::Error::runtime(format!(
                    "metric({name:?}, {ms}): milliseconds must be a number >= 0"
                )));
            }
            if let Some(c) = lua.app_data_ref::<Ctx>() {
                c.recorder.record(
                    Method::Script,
                    &super::clip(name, super::MAX_NAME),
                    Sample {
                        response_time_us: (ms * 1000.0) as u64,
                        corrected_response_time_us: None,
                        content_length: 0,
                        at_unix_s: unix_now(),
                        error: None,
                    },
                );
            }
            Ok(())
        })?,
    )?;
    Ok(())
}

/// `row(feeder)`: the running user's row of a feeder (user *n* gets row *n mod rows*, as
/// templates' `row.FEEDER.COLUMN`), a table of column = value; and `worker.index` and
/// `worker.count`, the worker's place in the fleet as its latest assignment said.
pub(super) fn install_world(lua: &Lua, world: &super::World) -> mlua::Result<()> {
    let globals = lua.globals();
    let feeders = world.feeders.clone();
    globals.raw_set(
        "row",
        lua.create_function(move |lua, name: String| {
            let Some(feeder) = feeders.iter().find(|f| f.name == name) else {
                let names: Vec<&str> = feeders.iter().map(|f| f.name.as_str()).collect();
                let known = match names.is_empty() {
                    true => "the plan has no feeders (`data:`)".to_string(),
                    false => format!("the feeders are {}", names.join(", ")),
                };
                return Err(mlua::Error::runtime(format!(
                    "row({name:?}): no feeder named {name:?}; {known}"
                )));
            };
            let id = lua
                .app_data_mut::<Ctx>()
                .and_then(|mut c| c.running().map(|u| u.id))
                .ok_or_else(|| mlua::Error::runtime("row: no user runs"))?;
            let row = &feeder.rows[(id % feeder.rows.len().max(1) as u64) as usize];
            let out = lua.create_table_with_capacity(0, row.len())?;
            for (column, value) in feeder.columns.iter().zip(row) {
                out.raw_set(column.as_str(), value.as_str())?;
            }
            Ok(out)
        })?,
    )?;
    globals.raw_set("worker", Worker(world.place.clone()))
}

/// `worker`: read at each access, since the place changes when the fleet does.
struct Worker(std::sync::Arc<crate::PlaceCell>);

impl mlua::UserData for Worker {
    fn add_fields<F: mlua::UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("index", |_, w| Ok(w.0.get().index));
        fields.add_field_method_get("count", |_, w| Ok(w.0.get().count));
    }
}

/// `math` with `random` and `randomseed` drawing from the running user's own generator
/// (seeded from its number): the VM is shared, a user's draws must not depend on the others'.
fn install_math(lua: &Lua, globals: &mlua::Table) -> mlua::Result<()> {
    let luau: mlua::Table = globals.get("math")?;
    let math = lua.create_table()?;
    for pair in luau.pairs::<Value, Value>() {
        let (k, v) = pair?;
        math.raw_set(k, v)?;
    }
    math.raw_set(
        "random",
        lua.create_function(|lua, (m, n): (Option<i64>, Option<i64>)| {
            let mut ctx = lua
                .app_data_mut::<Ctx>()
                .ok_or_else(|| mlua::Error::runtime("the script's state is gone"))?;
            let rng = &mut ctx
                .running()
                .ok_or_else(|| mlua::Error::runtime("math.random: no user runs"))?
                .rng;
            let (lo, hi) = match (m, n) {
                (None, _) => return Ok(Value::Number(rng.f64())),
                (Some(m), None) => (1, m),
                (Some(m), Some(n)) => (m, n),
            };
            if lo > hi {
                return Err(mlua::Error::runtime(
                    "bad argument to 'random' (interval is empty)",
                ));
            }
            Ok(Value::Number(rng.i64(lo..=hi) as f64))
        })?,
    )?;
    math.raw_set(
        "randomseed",
        lua.create_function(|lua, seed: f64| {
            if let Some(u) = lua.app_data_mut::<Ctx>().as_mut().and_then(|c| c.running()) {
                u.rng.seed(seed as i64 as u64);
            }
            Ok(())
        })?,
    )?;
    globals.raw_set("math", math)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(src: &str) -> String {
        let lua = Lua::new();
        install(&lua).unwrap();
        lua.load(src).eval().unwrap()
    }

    #[test]
    fn crypto_gives_the_published_test_vectors_in_hex() {
        assert_eq!(
            eval("return crypto.sha256('abc')"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // RFC 4231, test case 2.
        assert_eq!(
            eval("return crypto.hmac_sha256('Jefe', 'what do ya want for nothing?')"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_cyclic_or_very_deep_table_is_an_error_not_a_stack_overflow() {
        let lua = Lua::new();
        install(&lua).unwrap();
        let err = |src: &str| lua.load(src).eval::<String>().unwrap_err().to_string();
        assert!(err("local t = {}; t.t = t; return json.encode(t)").contains("deeper than 128"));
        let deep = "local t = {}; local c = t; for i = 1, 100000 do c.n = {}; c = c.n end; return json.encode(t)";
        assert!(err(deep).contains("deeper than 128"));
    }

    #[test]
    fn json_and_base64_round_trip() {
        assert_eq!(
            eval(r#"return json.encode(json.decode('{"a":[1,2,{"b":"c"}]}'))"#),
            r#"{"a":[1,2,{"b":"c"}]}"#
        );
        assert_eq!(
            eval("return base64.decode(base64.encode('hi there'))"),
            "hi there"
        );
        assert_eq!(eval("return base64.encode('hi')"), "aGk=");
        let id = eval("return uuid()");
        assert_eq!((id.len(), &id[14..15]), (36, "4"));
    }
}
