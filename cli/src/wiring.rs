//! What standalone and master runs share: the run's inbox and published status, the handle the
//! web API reaches the run through, the web server beside it, and the run itself until its end.

use hatchery_master::api::{RunHandle, WebConfig};
use hatchery_master::run::{self, FleetEvent, Inbox, Outcome, RunConfig, State, Status};
use tokio::sync::{mpsc, watch};

use crate::args::RunArgs;
use crate::console::Console;
use crate::standalone::shutdown_signal;
use crate::web::Web;

/// Fleet events (joins, messages, departures) waiting for the run.
const EVENTS: usize = 1024;
/// Web commands waiting for the run.
const COMMANDS: usize = 64;

/// A run's channels, before it starts.
pub struct Wiring {
    inbox: Inbox,
    handle: RunHandle,
}

impl Wiring {
    /// The channels of a run waiting for `expected` workers, and the sender its workers' events
    /// go to (the run ends with `WorkerLost` once every sender is gone, so it is handed out, not
    /// kept here).
    pub fn new(expected: usize, host: Option<String>) -> (Wiring, mpsc::Sender<FleetEvent>) {
        let (events, events_rx) = mpsc::channel(EVENTS);
        let (commands, commands_rx) = mpsc::channel(COMMANDS);
        let (status, status_rx) = watch::channel(Status {
            state: State::Ready,
            workers: 0,
            expected,
            host,
        });
        let inbox = Inbox {
            events: events_rx,
            commands: commands_rx,
            status,
        };
        let handle = RunHandle {
            commands,
            status: status_rx,
        };
        (Wiring { inbox, handle }, events)
    }

    /// The status the run publishes.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.handle.status.clone()
    }

    /// Starts the web UI and API beside the run, when `serve`.
    pub async fn web(
        &self,
        args: &RunArgs,
        config: &WebConfig,
        serve: bool,
    ) -> Result<Option<Web>, String> {
        if !serve {
            return Ok(None);
        }
        crate::web::start(args, self.handle.clone(), config.clone())
            .await
            .map(Some)
    }

    /// Runs the test until it ends, or Ctrl-C or SIGTERM stop it.
    pub async fn run(self, config: RunConfig, console: &mut Console) -> Outcome {
        run::run(config, self.inbox, console, shutdown_signal()).await
    }
}

/// Stops the web server, if one was started.
pub async fn stop(web: Option<Web>) {
    if let Some(web) = web {
        web.stop().await;
    }
}
