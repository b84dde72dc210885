//! The libraries a script gets besides Luau's own: `json`, `crypto`, `base64`, `uuid()`,
//! `log`, `print` (to the log) and `metric(name, ms)`.

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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn install(lua: &Lua, user_id: u64) -> mlua::Result<()> {
    let globals = lua.globals();

    let json = lua.create_table()?;
    json.raw_set(
        "encode",
        lua.create_function(|lua, v: Value| {
            let value: serde_json::Value = lua.from_value(v)?;
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
        lua.create_function(move |_, message: String| {
            tracing::info!(user = user_id, "{message}");
            Ok(())
        })?,
    )?;
    log.raw_set(
        "warn",
        lua.create_function(move |_, message: String| {
            tracing::warn!(user = user_id, "{message}");
            Ok(())
        })?,
    )?;
    globals.raw_set("log", log)?;
    globals.raw_set(
        "print",
        lua.create_function(move |_, values: mlua::Variadic<Value>| {
            let text: Vec<String> = values
                .iter()
                .map(|v| v.to_string().unwrap_or_else(|_| v.type_name().to_string()))
                .collect();
            tracing::info!(user = user_id, "{}", text.join("\t"));
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
                    Method::Get,
                    &name,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(src: &str) -> String {
        let lua = Lua::new();
        install(&lua, 1).unwrap();
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
