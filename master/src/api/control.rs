//! What the UI and scripts change: start or retarget a test (`/swarm`), stop it, reset the
//! statistics. Each is a command to the run, which answers.

use axum::extract::{Form, State as Extract};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;
use tokio::sync::oneshot;

use super::{gone, Api};
use crate::run::{Command, Swarm, SwarmError};

/// Locust's form fields (`user_classes` repeats, once per class its picker chose).
#[derive(Debug, Default)]
struct SwarmForm {
    user_count: String,
    spawn_rate: String,
    host: Option<String>,
    run_time: Option<String>,
    user_classes: Vec<String>,
}

impl SwarmForm {
    fn from_fields(fields: Vec<(String, String)>) -> SwarmForm {
        let mut form = SwarmForm::default();
        for (k, v) in fields {
            match k.as_str() {
                "user_count" => form.user_count = v,
                "spawn_rate" => form.spawn_rate = v,
                "host" => form.host = Some(v),
                "run_time" => form.run_time = Some(v),
                "user_classes" => form.user_classes.push(v),
                _ => {}
            }
        }
        form
    }
}

/// `Err` with the reason when the picked classes are not the ones this run runs.
fn check_classes(api: &Api, picked: &[String]) -> Result<(), String> {
    let mut picked: Vec<&str> = picked.iter().map(String::as_str).collect();
    let mut running: Vec<&str> = api.classes.iter().map(String::as_str).collect();
    picked.sort_unstable();
    picked.dedup();
    running.sort_unstable();
    if picked.is_empty() || picked == running {
        return Ok(());
    }
    Err(format!(
        "user_classes: this run runs {}; to run other classes, start it with their names (hatchery -f PLAN {})",
        api.classes.join(", "),
        picked.join(" ")
    ))
}

pub(super) fn refuse(code: StatusCode, message: String) -> Response {
    (code, Json(json!({"success": false, "message": message}))).into_response()
}

pub(super) async fn swarm(
    Extract(api): Extract<Api>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Response {
    let form = SwarmForm::from_fields(fields);
    if let Err(reason) = check_classes(&api, &form.user_classes) {
        return refuse(StatusCode::BAD_REQUEST, reason);
    }
    let Ok(users) = form.user_count.trim().parse::<u64>() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "user_count must be a whole number, got {:?}",
                form.user_count
            ),
        );
    };
    let Ok(spawn_rate) = form.spawn_rate.trim().parse::<f64>() else {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("spawn_rate must be a number, got {:?}", form.spawn_rate),
        );
    };
    let run_time = match form
        .run_time
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        None => None,
        Some(t) => match hatchery_core::duration::parse(t) {
            Ok(d) => Some(d),
            Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("run_time: {e}")),
        },
    };
    let host = form
        .host
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty());
    let request = Swarm {
        users,
        spawn_rate,
        run_time,
        host: host.clone(),
    };
    let (tx, rx) = oneshot::channel();
    if api
        .handle
        .commands
        .send(Command::Swarm(request, tx))
        .await
        .is_err()
    {
        return gone();
    }
    match rx.await {
        Ok(Ok(message)) => {
            let host = host.or_else(|| api.host());
            Json(json!({"success": true, "message": message, "host": host})).into_response()
        }
        Ok(Err(e @ (SwarmError::Limit(_) | SwarmError::Host { .. }))) => {
            refuse(StatusCode::BAD_REQUEST, e.to_string())
        }
        Ok(Err(e @ (SwarmError::NoWorkers | SwarmError::Stopping))) => {
            refuse(StatusCode::CONFLICT, e.to_string())
        }
        Err(_) => gone(),
    }
}

pub(super) async fn stop(Extract(api): Extract<Api>) -> Response {
    if api.handle.commands.send(Command::Stop).await.is_err() {
        return gone();
    }
    Json(json!({"success": true, "message": "Test stopped"})).into_response()
}

pub(super) async fn reset(Extract(api): Extract<Api>) -> Response {
    if api.handle.commands.send(Command::ResetStats).await.is_err() {
        return gone();
    }
    "ok".into_response()
}
