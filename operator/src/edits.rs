//! Edits of a running LoadTest: what can change while the test runs (`users` and `spawnRate`
//! through the master's `/swarm`, `workers` by scaling the StatefulSet, also through the scale
//! subresource) and what cannot (anything else: a new master would rerun the test).
//!
//! The values a test runs with are recorded in an annotation on its master Deployment as it is
//! applied ([`Applied`]): the live fields by value, every other top-level spec field by a hash,
//! so an edit is compared field by field without keeping the whole spec (an inline plan may be
//! large). Pure functions, tested here; the controller does the I/O.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

use crate::crd::LoadTestSpec;

/// The annotation on the master Deployment holding [`Applied`] as JSON.
pub const ANNOTATION: &str = "hatchery.io/applied";

/// Spec fields that a running test takes: `users` and `spawnRate` retarget the run, `workers`
/// scales the fleet (the master rebalances the users as workers join or leave).
pub const LIVE: [&str; 3] = ["users", "spawnRate", "workers"];

/// What a test was applied with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    pub users: Option<u32>,
    pub spawn_rate: Option<f64>,
    pub workers: u32,
    /// Every other top-level field of the spec (camelCase, as written), by a hash of its JSON.
    pub fields: BTreeMap<String, u64>,
}

impl Applied {
    pub fn of(spec: &LoadTestSpec) -> Applied {
        let mut fields = BTreeMap::new();
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(spec) {
            for (name, value) in map {
                if !LIVE.contains(&name.as_str()) {
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    value.to_string().hash(&mut h);
                    fields.insert(name, h.finish());
                }
            }
        }
        Applied {
            users: spec.users,
            spawn_rate: spec.spawn_rate,
            workers: spec.workers,
            fields,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// `None` for an annotation that is missing or not ours.
    pub fn from_json(text: &str) -> Option<Applied> {
        serde_json::from_str(text).ok()
    }
}

/// What to do about an edit of a running test.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Edit {
    /// Retarget the run: (users, spawn rate), both as the spec now says.
    pub retarget: Option<(u32, f64)>,
    /// Scale the workers' StatefulSet to this many.
    pub workers: Option<u32>,
    /// Fields that changed but cannot while the test runs (`spec.` and the field's name).
    pub refused: Vec<String>,
}

impl Edit {
    pub fn is_empty(&self) -> bool {
        self == &Edit::default()
    }
}

/// The edit that takes a test running as `was` to `now`. A retarget needs both numbers: a plan
/// with a load shape (no `users`) cannot be given a user count, so that change is refused.
pub fn diff(was: &Applied, now: &Applied) -> Edit {
    let mut edit = Edit::default();
    let mut names: Vec<&String> = was.fields.keys().chain(now.fields.keys()).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        if was.fields.get(name) != now.fields.get(name) {
            edit.refused.push(format!("spec.{name}"));
        }
    }
    if was.users != now.users || was.spawn_rate != now.spawn_rate {
        match (now.users, now.spawn_rate) {
            (Some(users), Some(rate)) => edit.retarget = Some((users, rate)),
            _ => {
                let which = if was.users != now.users {
                    "spec.users"
                } else {
                    "spec.spawnRate"
                };
                edit.refused.push(which.to_string());
            }
        }
    }
    if was.workers != now.workers {
        edit.workers = Some(now.workers);
    }
    edit
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::LoadTest;

    fn spec() -> LoadTestSpec {
        LoadTest::test().spec
    }

    #[test]
    fn an_unchanged_spec_is_no_edit_and_the_record_round_trips() {
        let a = Applied::of(&spec());
        assert!(diff(&a, &Applied::of(&spec())).is_empty());
        assert_eq!(Applied::from_json(&a.to_json()), Some(a));
        assert_eq!(Applied::from_json("not json"), None);
    }

    #[test]
    fn users_rate_and_workers_apply_live_and_other_fields_are_named_as_refused() {
        let was = Applied::of(&spec());
        let mut s = spec();
        s.users = Some(40);
        s.spawn_rate = Some(8.0);
        s.workers = 5;
        s.run_time = Some("9m".into());
        s.host = Some("http://elsewhere:8080".into());
        let edit = diff(&was, &Applied::of(&s));
        assert_eq!(edit.retarget, Some((40, 8.0)));
        assert_eq!(edit.workers, Some(5));
        assert_eq!(edit.refused, ["spec.host", "spec.runTime"]);
    }

    #[test]
    fn a_user_count_for_a_shaped_plan_is_refused() {
        let mut shaped = spec();
        shaped.users = None;
        shaped.spawn_rate = None;
        let was = Applied::of(&shaped);
        shaped.users = Some(10);
        let edit = diff(&was, &Applied::of(&shaped));
        assert_eq!(
            (edit.retarget, edit.refused),
            (None, vec!["spec.users".to_string()])
        );
    }
}
