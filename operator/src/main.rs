//! `hatchery-operator`: runs the LoadTest controller with the in-cluster config, or the
//! kubeconfig (`KUBECONFIG`) when run outside the cluster.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use hatchery_operator::leader::{self, Elector};
use hatchery_operator::telemetry::{self, Metrics};

/// Turns LoadTest resources into distributed load tests. Every flag has an environment variable.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Namespaces whose LoadTests to run, comma-separated; empty: every namespace (needs the
    /// ClusterRole; with a list, a Role in each namespace is enough).
    #[arg(
        long,
        env = "WATCH_NAMESPACES",
        value_delimiter = ',',
        default_value = ""
    )]
    watch_namespaces: Vec<String>,
    /// Where `/healthz`, `/readyz` and `/metrics` are served; `off` serves nothing.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: String,
    /// Run only while holding the Lease `hatchery-operator` in the operator's namespace
    /// (`POD_NAMESPACE`, else the client's default), so several replicas run one at a time.
    #[arg(long, env = "LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Log filter (tracing's EnvFilter syntax), e.g. `info`, `debug,kube=info`.
    #[arg(long, env = "RUST_LOG", default_value = "info,kube=warn")]
    log_level: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let filter = match tracing_subscriber::EnvFilter::try_new(&args.log_level) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: --log-level {:?}: {e}", args.log_level);
            return ExitCode::from(2);
        }
    };
    // Colours only on a terminal: a pod's log (what `kubectl logs` and log collectors read)
    // gets plain text.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    let namespaces: Vec<String> = args
        .watch_namespaces
        .iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    let metrics = Arc::new(Metrics::default());
    if args.http_addr != "off" {
        let addr: SocketAddr = match args.http_addr.parse() {
            Ok(a) => a,
            Err(e) => {
                eprintln!(
                    "error: --http-addr {:?}: {e} (expected IP:PORT, e.g. 0.0.0.0:8080, or off)",
                    args.http_addr
                );
                return ExitCode::from(2);
            }
        };
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {addr} (--http-addr): {e}");
                return ExitCode::from(2);
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = telemetry::serve(listener, metrics).await {
                tracing::error!("health and metrics endpoint stopped: {e}");
            }
        });
    }
    let client = match client(metrics.clone()).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot reach the Kubernetes API: {e}");
            return ExitCode::from(2);
        }
    };
    // Ready (for /readyz) only once the API server has answered.
    match client.apiserver_version().await {
        Ok(v) => tracing::info!("Kubernetes API server {}.{}", v.major, v.minor),
        Err(e) => {
            eprintln!("error: the Kubernetes API server does not answer: {e}");
            return ExitCode::from(2);
        }
    }
    if namespaces.is_empty() {
        tracing::info!("hatchery-operator watching LoadTests in every namespace");
    } else {
        tracing::info!(
            "hatchery-operator watching LoadTests in {}",
            namespaces.join(", ")
        );
    }
    if !args.leader_election {
        metrics.set_leading(true);
        hatchery_operator::controller::run(client, &namespaces, metrics).await;
        return ExitCode::SUCCESS;
    }
    let namespace =
        std::env::var("POD_NAMESPACE").unwrap_or_else(|_| client.default_namespace().to_string());
    let identity = std::env::var("POD_NAME")
        .unwrap_or_else(|_| format!("hatchery-operator-{}", std::process::id()));
    let elector = Elector::new(client.clone(), &namespace, identity);
    // A follower is ready: a hot standby whose process and API access are fine.
    metrics.set_ready();
    if !elector.wait_to_lead(shutdown()).await {
        return ExitCode::SUCCESS; // stopped while following
    }
    metrics.set_leading(true);
    tracing::info!(
        "leading as {} (Lease {namespace}/{})",
        elector.identity(),
        leader::LEASE
    );
    let code = tokio::select! {
        () = hatchery_operator::controller::run(client, &namespaces, metrics.clone()) => ExitCode::SUCCESS,
        () = elector.hold() => {
            tracing::error!("lost the Lease {}: stopping, to come back as a follower", leader::LEASE);
            ExitCode::from(1)
        }
    };
    metrics.set_leading(false);
    elector.release().await;
    code
}

/// SIGTERM or Ctrl-C.
async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// The in-cluster or kubeconfig client, counting every request it sends in `/metrics`
/// (`hatchery_operator_api_requests_total`): how quiet the operator is, measured by itself.
async fn client(metrics: Arc<Metrics>) -> Result<kube::Client, kube::Error> {
    let config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    let count = tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
        metrics.api_request(req.method(), req.uri().path(), req.uri().query());
        req
    });
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&count)
        .build())
}
