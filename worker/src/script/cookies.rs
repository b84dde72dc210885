//! `user.cookies`: the user's own cookie jar, read and set from a script (Locust's
//! `self.client.cookies`). A method yields to the user's task, which holds the user and so its
//! jar, answers at once (no await) and resumes the call with its clocks running on: the jar
//! never leaves the user, and no copy of it is made for a call.

use hatchery_core::timestamp::unix_now;
use mlua::{Lua, Table, Value};
use url::Url;

use crate::jar::{url_of, Jar, Setting};
use crate::prepare::{resolve, Base};
use crate::user::User;

/// The methods of `user.cookies`; the yield of each carries its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    Get,
    Set,
    Clear,
    All,
}

/// The options of `user.cookies:set(name, value, opts)`.
const SET_OPTIONS: [&str; 6] = ["url", "domain", "path", "secure", "max_age", "expires"];

/// The longest URL a script may name for its cookies.
const MAX_URL: usize = 8192;

impl Op {
    pub(super) const ALL: [Op; 4] = [Op::Get, Op::Set, Op::Clear, Op::All];

    /// The code its yield carries: below `user:sleep`'s -1 (requests are 0 and up).
    pub(super) fn code(self) -> i64 {
        -2 - self as i64
    }

    pub(super) fn of(code: i64) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.code() == code)
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::Clear => "clear",
            Op::All => "all",
        }
    }

    /// How a script calls it, to begin its errors with.
    fn call(self) -> &'static str {
        match self {
            Op::Get => "user.cookies:get(name, url)",
            Op::Set => "user.cookies:set(name, value, opts)",
            Op::Clear => "user.cookies:clear()",
            Op::All => "user.cookies:all(url)",
        }
    }

    /// How many arguments it takes.
    fn arity(self) -> usize {
        match self {
            Op::Get => 2,
            Op::Set => 3,
            Op::Clear => 0,
            Op::All => 1,
        }
    }
}

/// Answers `op` with the user's jar. The caller holds the VM's gate; `Err` is the message the
/// script's call raises, which names the method.
pub(super) fn answer(
    lua: &Lua,
    user: &mut User,
    op: Op,
    args: [Value; 3],
) -> Result<Value, String> {
    apply(lua, user, op, args).map_err(|e| format!("{}: {e}", op.call()))
}

fn apply(lua: &Lua, user: &mut User, op: Op, args: [Value; 3]) -> Result<Value, String> {
    if let Some(extra) = args[op.arity()..].iter().find(|a| !a.is_nil()) {
        let most = match op.arity() {
            0 => "no arguments".to_string(),
            1 => "at most one argument".to_string(),
            n => format!("at most {n} arguments"),
        };
        return Err(format!("takes {most}, found one more ({})", kind(extra)));
    }
    let shared = user.shared.clone();
    let base = shared.prepared.classes[user.class].base.as_ref();
    let class = &shared.prepared.plan.users[user.class].name;
    let Some(jar) = user.jar() else {
        return Err(format!(
            "the user class `{class}` has `cookies: false`, so its users keep no cookies"
        ));
    };
    let [a, b, c] = args;
    let made = |r: mlua::Result<Value>| r.map_err(|e| e.to_string());
    match op {
        Op::Get => {
            let name = text("name", &a, crate::jar::MAX_COOKIE_BYTES)?;
            let url = url(base, &b)?;
            match jar.as_deref().and_then(|j| j.get(&name, &url)) {
                Some(value) => made(lua.create_string(value).map(Value::String)),
                None => Ok(Value::Nil),
            }
        }
        Op::Set => {
            set(jar, base, &a, &b, c)?;
            Ok(Value::Nil)
        }
        Op::Clear => {
            *jar = None;
            Ok(Value::Nil)
        }
        Op::All => {
            let url = url(base, &a)?;
            let values = jar.as_deref().map(|j| j.values(&url)).unwrap_or_default();
            made(all(lua, &values).map(Value::Table))
        }
    }
}

fn set(
    jar: &mut Option<Box<Jar>>,
    base: Option<&Base>,
    name: &Value,
    value: &Value,
    opts: Value,
) -> Result<(), String> {
    let name = text("name", name, crate::jar::MAX_COOKIE_BYTES)?;
    let value = match value {
        Value::Integer(i) => i.to_string(),
        Value::Number(n) => n.to_string(),
        v => text("value", v, crate::jar::MAX_COOKIE_BYTES)?,
    };
    let opts = match opts {
        Value::Nil => None,
        Value::Table(t) => Some(t),
        other => return Err(format!("opts must be a table, found {}", kind(&other))),
    };
    let opt = |key: &str| -> Result<Value, String> {
        match &opts {
            Some(t) => t.raw_get(key).map_err(|e| e.to_string()),
            None => Ok(Value::Nil),
        }
    };
    if let Some(t) = &opts {
        known_keys(t)?;
    }
    let maybe_text = |key: &str, max: usize| -> Result<Option<String>, String> {
        match opt(key)? {
            Value::Nil => Ok(None),
            v => text(&format!("opts.{key}"), &v, max).map(Some),
        }
    };
    let domain = maybe_text("domain", MAX_URL)?;
    let path = maybe_text("path", MAX_URL)?;
    let secure = match opt("secure")? {
        Value::Nil => false,
        Value::Boolean(b) => b,
        other => {
            return Err(format!(
                "opts.secure must be true or false, found {}",
                kind(&other)
            ))
        }
    };
    let max_age = match (opt("max_age")?, opt("expires")?) {
        (Value::Nil, Value::Nil) => None,
        (max_age, Value::Nil) => Some(seconds("opts.max_age", max_age)?),
        (Value::Nil, expires) => {
            let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
            Some(seconds("opts.expires", expires)?.saturating_sub(now))
        }
        _ => return Err("give opts.max_age or opts.expires, not both".to_string()),
    };
    let url = url(base, &opt("url")?)?;
    let setting = Setting {
        name: &name,
        value: &value,
        domain: domain.as_deref(),
        path: path.as_deref(),
        secure,
        max_age,
    };
    jar.get_or_insert_with(Box::default)
        .set(&setting, &url)
        .map_err(|e| e.to_string())
}

/// Refuses a key of `set`'s options that is not one.
fn known_keys(t: &Table) -> Result<(), String> {
    for pair in t.pairs::<Value, Value>() {
        let (key, _) = pair.map_err(|e| e.to_string())?;
        let known = match &key {
            Value::String(s) => SET_OPTIONS
                .iter()
                .any(|o| s.as_bytes().as_ref() == o.as_bytes()),
            _ => false,
        };
        if !known {
            let key = match &key {
                Value::String(s) => format!("`{}`", s.to_string_lossy()),
                other => format!("of type {}", kind(other)),
            };
            return Err(format!(
                "unknown option {key}: the options are {}",
                SET_OPTIONS.join(", ")
            ));
        }
    }
    Ok(())
}

/// A whole number of seconds (a fraction is dropped), for `what`.
fn seconds(what: &str, v: Value) -> Result<i64, String> {
    match v {
        Value::Integer(i) => Ok(i),
        // `as` saturates at i64's ends; a cookie that lives that long is not told apart.
        Value::Number(n) if n.is_finite() => Ok(n.trunc() as i64),
        other => Err(format!(
            "{what} must be a number of seconds, found {}",
            kind(&other)
        )),
    }
}

/// `v` as text of at most `max` bytes, checked before it is copied.
fn text(what: &str, v: &Value, max: usize) -> Result<String, String> {
    let Value::String(s) = v else {
        return Err(format!("{what} must be text, found {}", kind(v)));
    };
    let len = s.as_bytes().len();
    if len > max {
        return Err(format!("{what} of {len} bytes is over the most, {max}"));
    }
    let text = s
        .to_str()
        .map_err(|_| format!("{what} is not UTF-8 text"))?;
    Ok(text.to_string())
}

/// The URL a method looks at: `url` as `user.http` takes one (relative to the class's host,
/// or absolute), the host itself when `nil`.
fn url(base: Option<&Base>, url: &Value) -> Result<Url, String> {
    let given = match url {
        Value::Nil => None,
        v => Some(text("url", v, MAX_URL)?),
    };
    let (origin, target) = resolve(given.as_deref().unwrap_or("/"), base)?;
    url_of(&origin, &target).ok_or_else(|| format!("{} is not a URL", given.unwrap_or_default()))
}

/// The type a script would say `v` has (`type(v)`: an integer is a number too).
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Integer(_) => "number",
        v => v.type_name(),
    }
}

/// `{name = value, ...}` for `all`.
fn all(lua: &Lua, values: &[(&str, &str)]) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, values.len())?;
    for (name, value) in values {
        t.raw_set(*name, *value)?;
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::Duration;

    use hatchery_core::plan::Call;

    use super::*;
    use crate::recorder::Recorder;

    const HOST: &str = "http://shop.example.com:8080";

    /// A started user of a plan whose one class has `script` (which defines `f`, the class's
    /// task) and `cookies`.
    async fn user(script: &str, cookies: bool) -> User {
        let script: String = script.lines().map(|l| format!("      {l}\n")).collect();
        let yaml = format!(
            "host: {HOST}\nusers:\n  - name: Shopper\n    cookies: {cookies}\n    script_timeout: 200ms\n    script: |\n{script}    tasks: [{{call: f}}]\n"
        );
        let plan = hatchery_core::Plan::parse(&yaml, "plan.yaml", &HashMap::new()).unwrap();
        let prepared = crate::prepare::Prepared::new(Arc::new(plan), None).unwrap();
        let recorder = Arc::new(Recorder::new(1, "n".into()));
        let classes: Vec<_> = prepared.classes.iter().map(|c| c.script.clone()).collect();
        let world = super::super::World::default();
        let pool = super::super::Pool::new(&classes, &recorder, &world, 1).unwrap();
        let shared = Arc::new(crate::Shared {
            prepared,
            recorder,
            connector: crate::http::Connector::default(),
            default_timeout: Duration::from_secs(1),
            place: Arc::default(),
            scripts: pool.map(Arc::new),
        });
        let mut user = User::new(shared, 0, 0);
        super::super::start(&mut user).await;
        assert!(user.script.is_some(), "the script did not load");
        user
    }

    /// Runs the call `function` and returns the exceptions it raised.
    async fn call(user: &mut User, function: &str) -> Vec<String> {
        let call = Call {
            function: function.to_string(),
            line: 0,
            column: 0,
        };
        let ran = tokio::time::timeout(Duration::from_secs(30), super::super::call(user, &call));
        ran.await.expect("the call ended");
        let stats = user.shared.recorder.take();
        stats.exceptions().map(|(m, _)| m.to_string()).collect()
    }

    fn var<'u>(user: &'u User, name: &str) -> Option<&'u str> {
        let names = &user.shared.prepared.plan.users[user.class].vars;
        let at = names.iter().position(|n| n == name)?;
        user.vars[at].as_deref()
    }

    /// The `cookie` header the user's next request to `path` carries.
    fn sent(user: &mut User, path: &str) -> String {
        let mut out = String::new();
        if let Some(Some(jar)) = user.jar() {
            jar.header(&Url::parse(&format!("{HOST}{path}")).unwrap(), &mut out);
        }
        let mut parts: Vec<&str> = out.split("; ").collect();
        parts.sort();
        parts.join("; ")
    }

    #[tokio::test]
    async fn a_script_sets_reads_lists_and_clears_its_users_own_jar() {
        let mut user = user(
            r#"function f(user)
  assert(user.cookies:get("sid") == nil)
  user.cookies:set("sid", "abc")
  user.cookies:set("n", 42, {path = "/cart", max_age = 60})
  user.vars.sid = user.cookies:get("sid")
  user.vars.n = user.cookies:get("n", "/cart/1")
  user.vars.home_n = user.cookies:get("n") or "none"
  local all = user.cookies:all("/cart")
  user.vars.all = all.sid .. "," .. all.n .. "," .. tostring(all.other)
end
function read(user)
  user.vars.server = user.cookies:get("server")
  user.vars.count = 0
  for _ in user.cookies:all() do user.vars.count += 1 end
end
function clear(user)
  user.cookies:clear()
  user.vars.after = tostring(user.cookies:get("sid"))
end"#,
            true,
        )
        .await;
        assert_eq!(call(&mut user, "f").await, Vec::<String>::new());
        assert_eq!(var(&user, "sid"), Some("abc"));
        assert_eq!(var(&user, "n"), Some("42"));
        assert_eq!(var(&user, "home_n"), Some("none"));
        assert_eq!(var(&user, "all"), Some("abc,42,nil"));
        // The jar the user's requests carry holds them: there is no other copy.
        assert_eq!(sent(&mut user, "/cart/x"), "n=42; sid=abc");
        assert_eq!(sent(&mut user, "/"), "sid=abc");
        // A cookie the host set, as a response's `set-cookie` stores it, reads back.
        let jar = user.jar().unwrap().as_deref_mut().unwrap();
        jar.store(b"server=s1; Path=/", &Url::parse(HOST).unwrap());
        assert_eq!(call(&mut user, "read").await, Vec::<String>::new());
        assert_eq!(var(&user, "server"), Some("s1"));
        assert_eq!(var(&user, "count"), Some("2"));
        assert_eq!(call(&mut user, "clear").await, Vec::<String>::new());
        assert_eq!(var(&user, "after"), Some("nil"));
        assert!(user.jar().unwrap().is_none(), "a cleared jar is dropped");
    }

    #[tokio::test]
    async fn with_cookies_off_every_method_fails_naming_the_class_and_the_setting() {
        let mut user = user(
            "function f(user) user.cookies:get('sid') end\nfunction set(user) user.cookies:set('a', '1') end",
            false,
        )
        .await;
        for function in ["f", "set"] {
            let errors = call(&mut user, function).await;
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(
                errors[0].contains(
                    "the user class `Shopper` has `cookies: false`, so its users keep no cookies"
                ),
                "{errors:?}"
            );
        }
        assert!(user.jar().is_none());
    }

    #[tokio::test]
    async fn whatever_a_script_passes_fails_only_its_call_with_a_message_naming_the_method() {
        let cases = [
            ("user.cookies:get()", "user.cookies:get(name, url): name must be text, found nil"),
            ("user.cookies.get('sid')", "call user.cookies:get(...) with `:`, not `.`"),
            ("user.cookies:get(5)", "name must be text, found number"),
            ("user.cookies:get('\\255')", "name is not UTF-8 text"),
            ("user.cookies:get('a', 'ftp://x/')", "user.cookies:get(name, url): URL \"ftp://x/\""),
            ("user.cookies:get('a', string.rep('x', 1e5))", "url of 100000 bytes is over the most, 8192"),
            ("user.cookies:set('a', string.rep('x', 1e6))", "user.cookies:set(name, value, opts): value of 1000000 bytes is over the most, 4096"),
            ("user.cookies:set('a', {})", "value must be text, found table"),
            ("user.cookies:set('a', nil)", "value must be text, found nil"),
            ("user.cookies:set('a', '1', 5)", "opts must be a table, found number"),
            ("user.cookies:set('a', '1', {domian = 'x'})", "unknown option `domian`: the options are url, domain, path, secure, max_age, expires"),
            ("user.cookies:set('a', '1', {[1] = 'x'})", "unknown option of type number"),
            ("user.cookies:set('a', '1', {max_age = 1, expires = 2})", "give opts.max_age or opts.expires, not both"),
            ("user.cookies:set('a', '1', {max_age = 'soon'})", "opts.max_age must be a number of seconds, found string"),
            ("user.cookies:set('a', '1', {max_age = 0/0})", "opts.max_age must be a number of seconds, found number"),
            ("user.cookies:set('a', '1', {secure = 'yes'})", "opts.secure must be true or false, found string"),
            ("user.cookies:set('a', '1\\r\\nX-Evil: 1')", "the value holds '\\r', which a cookie cannot carry"),
            ("user.cookies:set('a', '1', {domain = 'other.com'})", "shop.example.com cannot set a cookie for the domain \"other.com\""),
            ("user.cookies:set('a', '1', {path = {}})", "opts.path must be text, found table"),
            ("user.cookies:clear(1)", "user.cookies:clear(): takes no arguments, found one more (number)"),
            ("user.cookies:all(nil, 1)", "user.cookies:all(url): takes at most one argument, found one more (number)"),
            ("for i = 1, 65 do user.cookies:set('c' .. i, 'v') end", "the jar holds 64 cookies for shop.example.com already"),
        ];
        let mut script = String::from("function f(user) end\n");
        for (i, (code, _)) in cases.iter().enumerate() {
            script.push_str(&format!("function case{i}(user) {code} end\n"));
        }
        let mut user = user(&script, true).await;
        for (i, (code, expected)) in cases.iter().enumerate() {
            let errors = call(&mut user, &format!("case{i}")).await;
            assert_eq!(errors.len(), 1, "{code}: {errors:?}");
            let line = 8 + i;
            assert!(
                errors[0].starts_with(&format!("script error: plan.yaml:{line}: "))
                    && errors[0].contains(expected),
                "{code}: {errors:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_loop_of_cookie_calls_still_meets_script_timeout() {
        let mut user = user(
            "function f(user) while true do user.cookies:get('sid') end end",
            true,
        )
        .await;
        let errors = call(&mut user, "f").await;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("ran 200ms without awaiting"),
            "{errors:?}"
        );
    }
}
