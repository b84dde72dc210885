//! An in-process worker (standalone mode): its channels joined to the run as fleet events, the
//! same way a network session is.

use hatchery_core::protocol::{FromWorker, ToWorker};
use tokio::sync::mpsc;

use crate::run::FleetEvent;

/// The id an in-process worker has in the fleet.
pub const LOCAL_ID: &str = "local";

/// Announces the worker and forwards its messages until it stops; then reports it gone.
/// `to_worker` is the sending side of the worker's own input channel.
pub async fn attach(
    events: mpsc::Sender<FleetEvent>,
    to_worker: mpsc::Sender<ToWorker>,
    mut from_worker: mpsc::Receiver<FromWorker>,
) {
    let id = LOCAL_ID.to_string();
    let joined = FleetEvent::Joined {
        id: id.clone(),
        session: 0,
        tx: to_worker,
        running: Vec::new(),
        numbers: None,
    };
    if events.send(joined).await.is_err() {
        return;
    }
    while let Some(msg) = from_worker.recv().await {
        let event = FleetEvent::Message {
            id: id.clone(),
            msg,
        };
        if events.send(event).await.is_err() {
            return;
        }
    }
    let left = FleetEvent::Left {
        id,
        session: 0,
        reason: "the worker stopped".to_string(),
    };
    let _ = events.send(left).await;
}
