//! Starting the web UI and API next to a run.

use std::net::SocketAddr;

use hatchery_core::Plan;
use hatchery_master::api::{self, RunHandle, WebConfig};
use hatchery_master::tls::Identity;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::args::RunArgs;

/// A web server that stops when dropped or told to.
#[derive(Debug)]
pub struct Web {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Web {
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// The web config from the flags and the plan; `Err` says what is wrong with them.
pub fn config(args: &RunArgs, title: &str, plan: &Plan) -> Result<WebConfig, String> {
    let base = args.web_base_path.trim();
    if !base.is_empty() && (!base.starts_with('/') || base.contains(['?', '#', ' '])) {
        return Err(format!(
            "--web-base-path must be a path starting with /, like /hatchery; got {base:?}"
        ));
    }
    if let Some(auth) = &args.web_auth {
        if !auth.contains(':') || auth.starts_with(':') {
            return Err("--web-auth must be USER:PASSWORD".to_string());
        }
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(Identity::load(cert, key).map_err(|e| e.to_string())?),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".to_string()),
    };
    Ok(WebConfig {
        base_path: base.trim_end_matches('/').to_string(),
        auth: args.web_auth.clone(),
        title: title.to_string(),
        tls,
        plan_host: plan.host.clone(),
        classes: if args.user_classes.is_empty() {
            plan.users.iter().map(|c| c.name.clone()).collect()
        } else {
            args.user_classes.clone()
        },
        thresholds: plan.thresholds.clone(),
    })
}

/// Binds `--web-host:--web-port` and serves the UI and API.
pub async fn start(args: &RunArgs, handle: RunHandle, web: WebConfig) -> Result<Web, String> {
    let (host, port) = (args.web_host.as_str(), args.web_port);
    let listener = crate::listen::listen(host, port)
        .await
        .map_err(|e| format!("cannot listen on {host}:{port} for the web UI: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {host}:{port} for the web UI: {e}"))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(api::serve(listener, handle, web, async {
        let _ = stopped.await;
    }));
    Ok(Web {
        addr,
        stop: Some(stop),
        task,
    })
}

/// `http://ADDR/BASE/` (or https) for the log line.
pub fn url(addr: SocketAddr, web: &WebConfig) -> String {
    let scheme = if web.tls.is_some() { "https" } else { "http" };
    format!("{scheme}://{addr}{}/", web.base_path)
}
