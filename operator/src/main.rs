//! `hatchery-operator`: runs the LoadTest controller with the in-cluster config, or the
//! kubeconfig (`KUBECONFIG`) when run outside the cluster.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot reach the Kubernetes API: {e}");
            return ExitCode::from(2);
        }
    };
    tracing::info!("hatchery-operator watching LoadTests");
    hatchery_operator::controller::run(client).await;
    ExitCode::SUCCESS
}
