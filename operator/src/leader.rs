//! Leader election on a `coordination.k8s.io` Lease, so that several operator replicas run
//! with one active: the others wait, and take over when the leader stops renewing (at once
//! when it releases the Lease as it shuts down).
//!
//! The rules, as client-go's leaderelection: a Lease held by nobody, or not renewed within its
//! duration, may be taken; the holder renews it well within the duration; every write carries
//! the resource version it read, so of two replicas writing at once one gets a conflict and
//! follows. A leader that cannot renew before the duration ends stops (the process exits and
//! Kubernetes restarts it as a follower), so two leaders never act at once for longer than
//! the clocks differ. [`decide`] is pure and tested here; [`Elector`] does the I/O.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::Client;

/// The Lease's name, in the operator's own namespace.
pub const LEASE: &str = "hatchery-operator";
/// How long a Lease holds without renewal.
pub const DURATION: Duration = Duration::from_secs(30);
/// How often the leader renews, and a follower looks again.
pub const RETRY: Duration = Duration::from_secs(10);

/// What a replica does about the Lease as it reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nobody holds it, or its holder let it expire: take it.
    Take,
    /// It is ours: renew it.
    Renew,
    /// Someone else holds it.
    Follow { holder: String },
}

/// The decision for replica `me` at `now`, from the Lease's spec (`None`: no Lease yet).
pub fn decide(lease: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Decision {
    let Some(spec) = lease else {
        return Decision::Take;
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder.is_empty() {
        return Decision::Take;
    }
    if holder == me {
        return Decision::Renew;
    }
    let duration = spec.lease_duration_seconds.map_or(DURATION, |s| {
        Duration::from_secs(u64::try_from(s).unwrap_or(0))
    });
    let renewed = spec.renew_time.as_ref().map(|t| t.0);
    let expired = renewed.is_none_or(|t| {
        now.duration_since(t) > SignedDuration::try_from(duration).unwrap_or(SignedDuration::MAX)
    });
    if expired {
        Decision::Take
    } else {
        Decision::Follow { holder }
    }
}

/// The Lease's spec after `me` takes it (`transitions` counts changes of holder) or renews it.
pub fn held_by(prev: Option<&LeaseSpec>, me: &str, now: Timestamp) -> LeaseSpec {
    let ours = prev.and_then(|s| s.holder_identity.as_deref()) == Some(me);
    let transitions = prev.and_then(|s| s.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(DURATION.as_secs() as i32),
        acquire_time: if ours {
            prev.and_then(|s| s.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if ours || prev.is_none() {
            transitions
        } else {
            transitions.saturating_add(1)
        }),
        ..LeaseSpec::default()
    }
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    me: String,
    /// The Lease as this replica last wrote it: a renewal writes over it without reading it
    /// first (one request, not two), and reads only after a conflict.
    written: std::sync::Mutex<Option<Lease>>,
}

impl std::fmt::Debug for Elector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Elector")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

impl Elector {
    pub fn new(client: Client, namespace: &str, me: String) -> Elector {
        Elector {
            api: Api::namespaced(client, namespace),
            me,
            written: std::sync::Mutex::default(),
        }
    }

    pub fn identity(&self) -> &str {
        &self.me
    }

    /// One look at the Lease: takes or renews it when it may. `Ok(true)`: this replica leads.
    pub async fn try_lead(&self) -> Result<bool, kube::Error> {
        let mine = self
            .written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut lease) = mine {
            // Renew what we wrote; a conflict means someone else wrote since: read, decide.
            let now = Timestamp::now();
            lease.spec = Some(held_by(lease.spec.as_ref(), &self.me, now));
            match self
                .api
                .replace(LEASE, &PostParams::default(), &lease)
                .await
            {
                Ok(written) => {
                    self.remember(written);
                    return Ok(true);
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        let now = Timestamp::now();
        let current = self.api.get_opt(LEASE).await?;
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        match decide(spec, &self.me, now) {
            Decision::Follow { .. } => Ok(false),
            Decision::Take | Decision::Renew => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(LEASE.to_string()),
                        // The version read: a replica that wrote meanwhile wins, this one follows.
                        resource_version: current
                            .as_ref()
                            .and_then(|l| l.metadata.resource_version.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(held_by(spec, &self.me, now)),
                };
                let written = match current {
                    None => self.api.create(&PostParams::default(), &lease).await,
                    Some(_) => {
                        self.api
                            .replace(LEASE, &PostParams::default(), &lease)
                            .await
                    }
                };
                match written {
                    Ok(lease) => {
                        self.remember(lease);
                        Ok(true)
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }

    fn remember(&self, lease: Lease) {
        *self.written.lock().unwrap_or_else(|e| e.into_inner()) = Some(lease);
    }

    /// Waits until this replica holds the Lease, looking every [`RETRY`]; `false` when `stop`
    /// (the process's shutdown signal, made once so that no signal falls between two looks)
    /// finished first.
    pub async fn wait_to_lead(&self, stop: impl Future<Output = ()>) -> bool {
        tokio::pin!(stop);
        let mut said = None;
        loop {
            match self.try_lead().await {
                Ok(true) => return true,
                Ok(false) => {
                    let holder = self.holder().await;
                    if holder != said {
                        tracing::info!(
                            "following: the Lease {LEASE} is held by {}",
                            holder.as_deref().unwrap_or("?")
                        );
                        said = holder;
                    }
                }
                Err(e) => tracing::warn!("cannot read the Lease {LEASE}: {e}"),
            }
            tokio::select! {
                () = tokio::time::sleep(RETRY) => {}
                () = &mut stop => return false,
            }
        }
    }

    /// Renews the Lease every [`RETRY`]; returns when it is lost: taken by another replica, or
    /// not renewed for so long that another may take it.
    pub async fn hold(&self) {
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RETRY).await;
            match self.try_lead().await {
                Ok(true) => renewed = tokio::time::Instant::now(),
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!("cannot renew the Lease {LEASE}: {e}");
                    if renewed.elapsed() + RETRY >= DURATION {
                        return;
                    }
                }
            }
        }
    }

    /// The current holder, for the log.
    pub async fn holder(&self) -> Option<String> {
        let lease = self.api.get_opt(LEASE).await.ok()??;
        lease.spec?.holder_identity
    }

    /// Gives the Lease up (on shutdown), so a follower takes over at its next look instead of
    /// waiting out the duration. Best effort.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(LEASE).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.me.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        if let Err(e) = self
            .api
            .replace(LEASE, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!("cannot release the Lease {LEASE}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn held(holder: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(30),
            renew_time: Some(MicroTime(at(renewed))),
            lease_transitions: Some(3),
            acquire_time: Some(MicroTime(at(0))),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_missing_empty_or_expired_lease_is_taken_a_live_one_followed_ours_renewed() {
        assert_eq!(decide(None, "a", at(0)), Decision::Take);
        let empty = LeaseSpec::default();
        assert_eq!(decide(Some(&empty), "a", at(0)), Decision::Take);
        let b = held("b", 100);
        assert_eq!(
            decide(Some(&b), "a", at(129)),
            Decision::Follow { holder: "b".into() }
        );
        assert_eq!(
            decide(Some(&b), "a", at(131)),
            Decision::Take,
            "not renewed for 31 s"
        );
        assert_eq!(decide(Some(&b), "b", at(500)), Decision::Renew);
        let never_renewed = LeaseSpec {
            renew_time: None,
            ..held("b", 0)
        };
        assert_eq!(decide(Some(&never_renewed), "a", at(0)), Decision::Take);
    }

    #[test]
    fn taking_counts_a_transition_and_renewing_keeps_the_acquire_time() {
        let b = held("b", 100);
        let taken = held_by(Some(&b), "a", at(200));
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        assert_eq!(taken.lease_transitions, Some(4));
        assert_eq!(taken.acquire_time, Some(MicroTime(at(200))));
        let renewed = held_by(Some(&taken), "a", at(210));
        assert_eq!(renewed.lease_transitions, Some(4));
        assert_eq!(renewed.acquire_time, Some(MicroTime(at(200))));
        assert_eq!(renewed.renew_time, Some(MicroTime(at(210))));
        assert_eq!(held_by(None, "a", at(0)).lease_transitions, Some(0));
    }
}
