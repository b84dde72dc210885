//! What lets a Locust user's command lines, Dockerfiles and Helm values keep working: Locust's
//! `LOCUST_*` environment variables and `locust.conf` as fallbacks after Hatchery's own
//! settings, Step Load as a load shape, and the choice of user classes (positional names,
//! `--config-users`) as the master's claims.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use hatchery_core::apportion::Claim;
use hatchery_core::plan::{Shape, Stage};
use hatchery_core::Plan;

/// Locust's environment variable for each option Hatchery shares with it (Locust's own names:
/// most are `LOCUST_` and the flag, some are not, as `LOCUST_MASTER_NODE_PORT`, named so that
/// Kubernetes' service variables such as `LOCUST_MASTER_PORT=tcp://...` are not read).
const ENV: &[(&str, &str)] = &[
    ("LOCUST_LOCUSTFILE", "plan"),
    ("LOCUST_HOST", "host"),
    ("LOCUST_USERS", "users"),
    ("LOCUST_SPAWN_RATE", "spawn-rate"),
    ("LOCUST_HATCH_RATE", "spawn-rate"),
    ("LOCUST_RUN_TIME", "run-time"),
    ("LOCUST_WEB_HOST", "web-host"),
    ("LOCUST_WEB_PORT", "web-port"),
    ("LOCUST_HEADLESS", "headless"),
    ("LOCUST_AUTOSTART", "autostart"),
    ("LOCUST_AUTOQUIT", "autoquit"),
    ("LOCUST_WEB_AUTH", "web-auth"),
    ("LOCUST_WEB_BASE_PATH", "web-base-path"),
    ("LOCUST_TLS_CERT", "tls-cert"),
    ("LOCUST_TLS_KEY", "tls-key"),
    ("LOCUST_USERCLASS_PICKER", "class-picker"),
    ("LOCUST_MODE_MASTER", "master"),
    ("LOCUST_MASTER_BIND_HOST", "master-bind-host"),
    ("LOCUST_MASTER_BIND_PORT", "master-bind-port"),
    ("LOCUST_EXPECT_WORKERS", "expect-workers"),
    ("LOCUST_EXPECT_WORKERS_MAX_WAIT", "expect-workers-max-wait"),
    ("LOCUST_MODE_WORKER", "worker"),
    ("LOCUST_MASTER_NODE_HOST", "master-host"),
    ("LOCUST_MASTER_NODE_PORT", "master-port"),
    ("LOCUST_PROCESSES", "processes"),
    ("LOCUST_TAGS", "tags"),
    ("LOCUST_EXCLUDE_TAGS", "exclude-tags"),
    ("LOCUST_CSV", "csv"),
    ("LOCUST_CSV_FULL_HISTORY", "csv-full-history"),
    ("LOCUST_PRINT_STATS", "print-stats"),
    ("LOCUST_ONLY_SUMMARY", "only-summary"),
    ("LOCUST_RESET_STATS", "reset-stats"),
    ("LOCUST_HTML", "html"),
    ("LOCUST_JSON", "json"),
    ("LOCUST_SKIP_LOG_SETUP", "skip-log-setup"),
    ("LOCUST_LOGLEVEL", "loglevel"),
    ("LOCUST_LOGFILE", "logfile"),
    ("LOCUST_EXIT_CODE_ON_ERROR", "exit-code-on-error"),
    ("LOCUST_STOP_TIMEOUT", "stop-timeout"),
    ("LOCUST_CONFIG_USERS", "config-users"),
    ("LOCUST_STEP_LOAD", "step-load"),
    ("LOCUST_STEP_USERS", "step-users"),
    ("LOCUST_STEP_TIME", "step-time"),
];

/// Locust's config files, in the order they are read (the first wins): `./locust.conf`, then
/// `~/.locust.conf`.
pub fn config_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("locust.conf")];
    if let Some(home) = std::env::var_os("HOME") {
        files.push(PathBuf::from(home).join(".locust.conf"));
    }
    files
}

/// Flags from Locust's variables among `vars`, for the options no source before set (`taken`,
/// which then holds these too). Variables Locust does not read are ignored.
pub fn env_args(
    cmd: &clap::Command,
    vars: impl Iterator<Item = (String, String)>,
    taken: &mut HashSet<String>,
) -> Result<Vec<String>, String> {
    let vars: Vec<(String, String)> = vars.filter(|(k, _)| k.starts_with("LOCUST_")).collect();
    let mut out = Vec::new();
    for (name, long) in ENV {
        let Some((_, value)) = vars.iter().find(|(k, _)| k == name) else {
            continue;
        };
        let Some(arg) = cmd.get_arguments().find(|a| a.get_long() == Some(*long)) else {
            continue;
        };
        if taken.contains(*long) {
            continue;
        }
        let flag = crate::args::flag_for(arg, value.trim()).map_err(|e| format!("{name}: {e}"))?;
        out.extend(flag);
        taken.insert(long.to_string());
    }
    Ok(out)
}

/// The most steps `--step-load` makes: a step is a stage held in memory.
pub const MAX_STEPS: u64 = 10_000;

/// Step Load as a shape: `step_users` more users every `step_time`, at `spawn_rate`, up to
/// `users`; the last step lasts until the run time ends it.
pub fn step_shape(
    users: u32,
    spawn_rate: f64,
    step_users: u32,
    step_time: Duration,
) -> Result<Shape, String> {
    if step_users == 0 || step_time.is_zero() {
        return Err("--step-users and --step-time must be above 0".to_string());
    }
    let steps = u64::from(users.div_ceil(step_users)).max(1);
    if steps > MAX_STEPS {
        return Err(format!(
            "--step-load would make {steps} steps of {step_users} users up to {users}: at most {MAX_STEPS}; raise --step-users"
        ));
    }
    let stages = (1..=steps)
        .map(|k| Stage {
            duration: if k == steps { Duration::MAX } else { step_time },
            users: u32::try_from(k * u64::from(step_users)).map_or(users, |u| u.min(users)),
            spawn_rate,
        })
        .collect();
    Ok(Shape { stages })
}

/// One entry of `--config-users`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassConfig {
    user_class_name: String,
    #[serde(default)]
    weight: Option<u32>,
    #[serde(default)]
    fixed_count: Option<u32>,
}

/// The master's claims for the plan's classes: the plan's weights and fixed counts, changed by
/// `--config-users`, and no user for a class left out of `selected` (when any is named).
pub fn claims(
    plan: &Plan,
    selected: &[String],
    config_users: &[String],
) -> Result<Vec<Claim>, String> {
    let names: Vec<&str> = plan.users.iter().map(|c| c.name.as_str()).collect();
    let known = |name: &str, what: &str| -> Result<usize, String> {
        names.iter().position(|n| *n == name).ok_or_else(|| {
            let hint = crate::args::closest(name, &names)
                .map(|k| format!(" (did you mean {k}?)"))
                .unwrap_or_default();
            format!(
                "{what}: the plan has no user class {name:?}{hint}; it has {}",
                names.join(", ")
            )
        })
    };
    let mut claims: Vec<Claim> = plan
        .users
        .iter()
        .map(|c| Claim {
            weight: c.weight,
            fixed: c.fixed_count,
        })
        .collect();
    for entry in config_users.iter().map(|c| parse_config_users(c)) {
        for class in entry? {
            let i = known(&class.user_class_name, "--config-users")?;
            if let Some(w) = class.weight {
                claims[i].weight = w;
            }
            if class.fixed_count.is_some() {
                claims[i].fixed = class.fixed_count;
            }
        }
    }
    if !selected.is_empty() {
        let keep: HashSet<usize> = selected
            .iter()
            .map(|name| known(name, "user classes"))
            .collect::<Result<_, _>>()?;
        for (i, claim) in claims.iter_mut().enumerate() {
            if !keep.contains(&i) {
                *claim = Claim {
                    weight: 0,
                    fixed: Some(0),
                };
            }
        }
    }
    Ok(claims)
}

/// A `--config-users` value: JSON (one object or a list), or a file holding it.
fn parse_config_users(value: &str) -> Result<Vec<ClassConfig>, String> {
    let text = if value.trim_start().starts_with(['[', '{']) {
        value.to_string()
    } else {
        std::fs::read_to_string(value)
            .map_err(|e| format!("--config-users: cannot read {value}: {e}"))?
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("--config-users: {e}"))?;
    let list = match json {
        serde_json::Value::Array(items) => items,
        one => vec![one],
    };
    list.into_iter()
        .map(|item| {
            serde_json::from_value(item).map_err(|e| {
                format!("--config-users: {e} (each entry takes user_class_name, weight and fixed_count; the rest is the plan's)")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::Cli;
    use clap::CommandFactory;

    fn vars(v: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn locusts_variables_fill_only_what_nothing_else_set() {
        let cmd = Cli::command();
        let mut taken = HashSet::from(["users".to_string()]);
        let env = vars(&[
            ("LOCUST_USERS", "9"),
            ("LOCUST_HATCH_RATE", "3"),
            ("LOCUST_HEADLESS", "true"),
            ("LOCUST_MODE_MASTER", "false"),
            ("LOCUST_MASTER_NODE_PORT", "6000"),
            // A Kubernetes service variable, not Locust's: ignored.
            ("LOCUST_MASTER_PORT", "tcp://10.0.0.1:5557"),
        ]);
        let flags = env_args(&cmd, env, &mut taken).unwrap();
        assert_eq!(
            flags,
            ["--spawn-rate=3", "--headless", "--master-port=6000"]
        );
        assert!(taken.contains("spawn-rate") && taken.contains("master-port"));
        let bad = env_args(
            &cmd,
            vars(&[("LOCUST_HEADLESS", "maybe")]),
            &mut HashSet::new(),
        );
        assert!(bad.unwrap_err().starts_with("LOCUST_HEADLESS: "));
    }

    #[test]
    fn every_locust_variable_names_a_hatchery_option() {
        let cmd = Cli::command();
        for (name, long) in ENV {
            assert!(
                cmd.get_arguments().any(|a| a.get_long() == Some(*long)),
                "{name} -> --{long}"
            );
        }
    }

    #[test]
    fn step_load_adds_step_users_every_step_time_and_holds_the_last_step() {
        let shape = step_shape(25, 5.0, 10, Duration::from_secs(30)).unwrap();
        let users: Vec<u32> = shape.stages.iter().map(|s| s.users).collect();
        assert_eq!(users, [10, 20, 25]);
        assert_eq!(shape.stages[0].duration, Duration::from_secs(30));
        assert_eq!(shape.stages[2].duration, Duration::MAX);
        assert!(shape.stages.iter().all(|s| s.spawn_rate == 5.0));
        assert!(step_shape(1_000_000_000, 1.0, 1, Duration::from_secs(1))
            .unwrap_err()
            .contains("at most 10000"));
        assert!(step_shape(10, 1.0, 0, Duration::from_secs(1)).is_err());
    }

    fn plan() -> Plan {
        let yaml = "host: http://127.0.0.1:1\nusers:\n  - name: Reader\n    weight: 3\n    tasks: [{get: /a}]\n  - name: Writer\n    tasks: [{get: /b}]\n";
        let files = std::collections::HashMap::<String, String>::new();
        Plan::parse(yaml, "plan.yaml", &files).expect("a valid plan")
    }

    #[test]
    fn named_classes_run_alone_and_config_users_change_weights_and_counts() {
        let plan = plan();
        let all = claims(&plan, &[], &[]).unwrap();
        assert_eq!((all[0].weight, all[1].weight), (3, 1));
        let reader = claims(&plan, &["Reader".into()], &[]).unwrap();
        assert_eq!(reader[1].fixed, Some(0));
        assert_eq!(hatchery_core::apportion::apportion(4, &reader), [4, 0]);
        let config = r#"[{"user_class_name": "Writer", "fixed_count": 2}, {"user_class_name": "Reader", "weight": 5}]"#;
        let changed = claims(&plan, &[], &[config.into()]).unwrap();
        assert_eq!((changed[0].weight, changed[1].fixed), (5, Some(2)));
        let err = claims(&plan, &["Raeder".into()], &[]).unwrap_err();
        assert!(err.contains("did you mean Reader?"), "{err}");
        let err = claims(
            &plan,
            &[],
            &[r#"{"user_class_name": "Reader", "host": "x"}"#.into()],
        )
        .unwrap_err();
        assert!(err.contains("unknown field `host`"), "{err}");
    }
}
