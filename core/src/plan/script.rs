//! A user class's script (`script:`, inline or `{file: ...}`), its limits, and the `call:`
//! steps that run its functions. Core only reads the text and knows where each of its lines
//! sits in the plan; the worker compiles and runs it (worker/src/script).

use std::time::Duration;

use super::parse::parse_size;
use super::yaml::{self, Ctx, Fields, Node};
use super::{Diagnostic, Plan, Step, UserClass};

/// Default bound on how long a script may run without awaiting (`script_timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Default memory limit of a worker thread's script VM (`script_memory`), which every scripted
/// user on that thread shares: room for about 100,000 idle users (a few KiB each) and their
/// calls' garbage.
pub const DEFAULT_MEMORY: u64 = 512 << 20;
/// Largest `script_memory`: each runtime thread of a worker may hold this much.
const MAX_MEMORY: u64 = 16 << 30;

/// A user class's script: Luau source, and where it came from for messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    pub source: String,
    /// Names the script in messages: the script file as written in the plan, or the plan's own
    /// origin for an inline script.
    pub origin: String,
    /// The plan's origin, for messages about `call:` steps.
    pub plan: String,
    /// Where the script's line 1 is in `origin`, and the column its lines start at.
    pub first_line: u32,
    pub column: u32,
    /// How long the script may run without awaiting before it is interrupted.
    pub timeout: Duration,
    /// Bytes one user's VM may allocate.
    pub memory: u64,
}

impl Script {
    /// Where line `line` (1-based) of the script is in [`Script::origin`].
    pub fn position(&self, line: u32) -> (u32, u32) {
        (
            self.first_line.saturating_add(line.saturating_sub(1)),
            self.column,
        )
    }
}

/// `call: NAME`: runs the script's function `NAME(user)` as a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub function: String,
    /// Where the step is written in the plan.
    pub line: u32,
    pub column: u32,
}

/// The class's `script`, `script_timeout` and `script_memory`.
pub(super) fn script(cx: &mut Ctx<'_>, class: &Fields<'_, '_>) -> Option<Option<Script>> {
    let timeout = class.get("script_timeout").map(|n| timeout(cx, n));
    let memory = class.get("script_memory").map(|n| memory(cx, n));
    let Some(node) = class.get("script") else {
        for key in ["script_timeout", "script_memory"] {
            if let Some(k) = class.key(key) {
                cx.error_hint(
                    k,
                    format!("`{key}` needs a `script`"),
                    "it limits the class's script",
                );
            }
        }
        return Some(None);
    };
    let (source, origin, first_line, column) = match yaml::data(node) {
        saphyr::YamlData::Mapping(_) => {
            let f = cx.fields(node, "`script`", &["file"])?;
            let Some(path_node) = f.get("file") else {
                cx.error_hint(
                    node,
                    "`script` needs `file`",
                    "e.g. script: {file: shop.luau}",
                );
                return None;
            };
            let path = cx.string(path_node, "`file`")?;
            match cx.files.read(&path) {
                Ok(text) => (text, path, 1, 1),
                Err(e) => {
                    cx.error_hint(
                        path_node,
                        format!("cannot read script file `{path}`: {e}"),
                        "script paths are relative to the plan's folder",
                    );
                    return None;
                }
            }
        }
        _ => {
            let text = cx.string(node, "`script`")?;
            let (line, column) = scalar_start(cx.source(), node);
            (text, String::new(), line, column)
        }
    };
    let (timeout, memory) = (
        timeout.unwrap_or(Some(DEFAULT_TIMEOUT)),
        memory.unwrap_or(Some(DEFAULT_MEMORY)),
    );
    Some(Some(Script {
        source,
        origin,
        plan: String::new(),
        first_line,
        column,
        timeout: timeout?,
        memory: memory?,
    }))
}

fn timeout(cx: &mut Ctx<'_>, node: &Node<'_>) -> Option<Duration> {
    let d = cx.duration(node, "`script_timeout`")?;
    if d.is_zero() {
        cx.error(node, "`script_timeout` must be longer than 0s");
        return None;
    }
    Some(d)
}

fn memory(cx: &mut Ctx<'_>, node: &Node<'_>) -> Option<u64> {
    let text = cx.text(node, "`script_memory`")?;
    match parse_size(&text) {
        Some(n) if (1 << 20..=MAX_MEMORY).contains(&n) => Some(n),
        _ => {
            cx.error_hint(
                node,
                format!("`script_memory` must be a size from 1MiB to 16GiB, found {text:?}"),
                "write e.g. 256MiB or 1GiB",
            );
            None
        }
    }
}

/// `{call: NAME}` (with `weight` and `tags` beside it in a task).
pub(super) fn call(cx: &mut Ctx<'_>, f: &Fields<'_, '_>, beside: &[&str]) -> Option<Call> {
    let node = f.get("call")?;
    for (key, key_node, _) in &f.entries {
        if key != "call" && !beside.contains(&key.as_str()) {
            cx.error_hint(
                key_node,
                format!("`{key}` cannot sit beside `call`"),
                "a step is either a request or a `call:` of a script function",
            );
        }
    }
    let function = cx.string(node, "`call`")?;
    let mut chars = function.chars();
    let identifier = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !identifier {
        cx.error_hint(
            node,
            format!("`call: {function}` is not a function name"),
            "name a global function of the class's script, e.g. call: browse",
        );
        return None;
    }
    let (line, column) = yaml::position(node);
    Some(Call {
        function,
        line,
        column,
    })
}

/// A `call:` in a class without a script is reported at the call.
pub(super) fn check_calls(cx: &mut Ctx<'_>, class: &UserClass) {
    if class.script.is_some() {
        return;
    }
    let tasks = class.tasks.iter().flat_map(|t| &t.steps);
    for step in class.on_start.iter().chain(tasks).chain(&class.on_stop) {
        if let Step::Call(c) = step {
            cx.diags.push(
                Diagnostic::new(
                    c.line,
                    c.column,
                    format!("`call: {}` needs a `script` in the user class", c.function),
                )
                .with_hint("add script: | with the function, or script: {file: x.luau}"),
            );
        }
    }
}

/// Inline scripts are named after the plan they are written in.
pub(super) fn name_origins(plan: &mut Plan, origin: &str) {
    for script in plan.users.iter_mut().filter_map(|c| c.script.as_mut()) {
        if script.origin.is_empty() {
            script.origin = origin.to_string();
        }
        script.plan = origin.to_string();
    }
}

/// The variables a script names as `vars.NAME` or `vars["NAME"]` (`user.vars.token = ...`):
/// the plan's templates may read them, like capture targets. Names a template cannot hold
/// (reserved ones, odd characters) are left to the script.
pub(super) fn variables(source: &str) -> Vec<String> {
    let Ok(pattern) = regex_lite::Regex::new(
        r#"\bvars\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*["']([A-Za-z_][A-Za-z0-9_]*)["']\s*\])"#,
    ) else {
        return Vec::new();
    };
    let mut names: Vec<String> = Vec::new();
    for c in pattern.captures_iter(source) {
        let Some(name) = c.get(1).or_else(|| c.get(2)) else {
            continue;
        };
        let name = name.as_str();
        if !super::parse::RESERVED.contains(&name) && !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

/// Where the first line of a scalar's value is: for a block scalar (`|`, `>`) the line after
/// its header, at the block's indentation; otherwise the scalar's own position (after a quote).
pub(super) fn scalar_start(text: &str, node: &Node<'_>) -> (u32, u32) {
    let (line, column) = yaml::position(node);
    let start = node.span.start.index();
    let written: String = text.chars().skip(start).take(2).collect();
    if written.starts_with(['|', '>']) {
        let next = text.lines().nth(line as usize).unwrap_or("");
        let indent = next.len() - next.trim_start_matches(' ').len();
        (line + 1, indent as u32 + 1)
    } else if written.starts_with(['"', '\'']) {
        (line, column + 1)
    } else {
        (line, column)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::plan::{Diagnostics, Plan};

    fn parse(src: &str) -> Result<Plan, Diagnostics> {
        let files = HashMap::from([(
            "shop.luau".to_string(),
            "function browse(user)\nend\n".to_string(),
        )]);
        Plan::parse(src, "plan.yaml", &files)
    }

    const INLINE: &str = "\
host: http://127.0.0.1:1
users:
  - name: Shopper
    script: |
      function browse(user)
        local r = user.http:get('/')
      end
    on_start: [{call: browse}]
    tasks:
      - {weight: 3, call: browse, tags: [shop]}
      - sequence: [{get: /a}, {call: browse}]
";

    #[test]
    fn an_inline_block_script_starts_on_the_line_after_its_key() {
        let plan = parse(INLINE).unwrap_or_else(|e| panic!("{e}"));
        let script = plan.users[0].script.as_ref().unwrap();
        assert!(script.source.starts_with("function browse(user)\n"));
        assert_eq!(
            (script.origin.as_str(), script.plan.as_str()),
            ("plan.yaml", "plan.yaml")
        );
        assert_eq!(script.position(1), (5, 7));
        assert_eq!(script.position(2), (6, 7));
        assert_eq!(script.timeout, DEFAULT_TIMEOUT);
        assert_eq!(script.memory, DEFAULT_MEMORY);
    }

    #[test]
    fn calls_mix_with_requests_in_tasks_sequences_and_hooks() {
        let plan = parse(INLINE).unwrap_or_else(|e| panic!("{e}"));
        let class = &plan.users[0];
        let call = |s: &Step| match s {
            Step::Call(c) => Some((c.function.clone(), c.line, c.column)),
            Step::Request(_) => None,
        };
        assert_eq!(call(&class.on_start[0]), Some(("browse".into(), 8, 23)));
        assert_eq!(class.tasks[0].weight, 3);
        assert_eq!(
            call(&class.tasks[0].steps[0]),
            Some(("browse".into(), 10, 27))
        );
        assert!(call(&class.tasks[1].steps[0]).is_none());
        assert_eq!(call(&class.tasks[1].steps[1]).map(|c| c.1), Some(11));
    }

    #[test]
    fn a_one_line_script_keeps_its_own_position() {
        let src = "host: http://h\nusers: [{name: U, script: \"function f(u) end\", tasks: [{call: f}]}]\n";
        let script = parse(src).unwrap().users[0].script.clone().unwrap();
        assert_eq!(script.position(1), (2, 28));
    }

    #[test]
    fn a_script_file_is_read_through_the_file_source_and_keeps_its_lines() {
        let src = "host: http://h\nusers: [{name: U, script: {file: shop.luau}, script_timeout: 250ms, script_memory: 4MiB, tasks: [{call: browse}]}]\n";
        let script = parse(src).unwrap().users[0].script.clone().unwrap();
        assert_eq!(
            (script.origin.as_str(), script.plan.as_str()),
            ("shop.luau", "plan.yaml")
        );
        assert_eq!(script.position(3), (3, 1));
        assert_eq!(script.timeout, Duration::from_millis(250));
        assert_eq!(script.memory, 4 << 20);
    }

    #[test]
    fn a_bundle_ships_the_script_file_and_parses_without_the_disk() {
        let dir = std::env::temp_dir().join(format!("hatchery-script-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("shop.luau"), "function browse(user) end\n").unwrap();
        let path = dir.join("plan.yaml");
        std::fs::write(
            &path,
            "host: http://h\nusers: [{name: U, script: {file: shop.luau}, tasks: [{call: browse}]}]\n",
        )
        .unwrap();
        let (bundle, _) = crate::plan::Bundle::load(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(bundle.files.keys().collect::<Vec<_>>(), ["shop.luau"]);
        let script = bundle.parse().unwrap().users[0].script.clone().unwrap();
        assert_eq!(script.source, "function browse(user) end\n");
    }

    #[test]
    fn the_variables_a_script_names_are_found_once_each() {
        let source = "user.vars.token = r:json().token\nlocal v = u.vars['cart']\nu.vars.token = nil\nuser.vars.user = 1\nx.vars2 = 3";
        assert_eq!(variables(source), ["token", "cart"]);
    }

    #[test]
    fn a_template_reads_a_variable_the_script_sets() {
        let src = "host: http://h\nusers: [{name: U, script: 'function f(user) user.vars.token = \"t\" end', tasks: [{call: f}, {get: '/{{ token }}'}]}]\n";
        let plan = parse(src).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.users[0].vars, ["token"]);
    }

    fn problems(src: &str) -> Vec<(u32, u32, String)> {
        let e = parse(src).expect_err("expected problems");
        e.items
            .into_iter()
            .map(|d| (d.line, d.column, d.message))
            .collect()
    }

    #[test]
    fn bad_scripts_and_calls_are_reported_where_they_are_written() {
        let missing = problems(
            "host: http://h\nusers: [{name: U, script: {file: nope.luau}, tasks: [{call: f}]}]\n",
        );
        assert!(
            missing[0].2.contains("cannot read script file `nope.luau`"),
            "{missing:?}"
        );
        let no_script = problems("host: http://h\nusers: [{name: U, tasks: [{call: f}]}]\n");
        assert_eq!(
            no_script,
            [(
                2,
                34,
                "`call: f` needs a `script` in the user class".to_string()
            )]
        );
        let beside = problems(
            "host: http://h\nusers: [{name: U, script: 'x = 1', tasks: [{call: f, get: /}]}]\n",
        );
        assert_eq!(beside[0].2, "`get` cannot sit beside `call`");
        let name = problems(
            "host: http://h\nusers: [{name: U, script: 'x = 1', tasks: [{call: 'a.b'}]}]\n",
        );
        assert_eq!(name[0].2, "`call: a.b` is not a function name");
        let limits = problems(
            "host: http://h\nusers: [{name: U, script: 'x = 1', script_timeout: 0s, script_memory: 10, tasks: [{call: f}]}]\n",
        );
        assert_eq!(limits.len(), 2, "{limits:?}");
        let orphan =
            problems("host: http://h\nusers: [{name: U, script_timeout: 2s, tasks: [{get: /}]}]\n");
        assert_eq!(orphan[0].2, "`script_timeout` needs a `script`");
    }
}
