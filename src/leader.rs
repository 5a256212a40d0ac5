//! Leader election on a `coordination.k8s.io/v1` Lease, so that several replicas can
//! run and only one reconciles.
//!
//! The algorithm is client-go's: a candidate takes the Lease when it has no holder, or
//! when the Lease record has not changed for `leaseDurationSeconds` as measured on the
//! candidate's own clock (so clock skew between machines does not matter). The leader
//! renews every retry period; if it cannot renew within the renew deadline it gives up
//! leadership and the process stops, before any other candidate may take over. Writes
//! use the Lease's `resourceVersion`, so two candidates never both win.
//!
//! API calls (see `generate::rbac::leader_election_rules`): `get`, `create` and
//! `update` on `leases` in the Lease's namespace. Nothing else.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tracing::{debug, info, warn};

/// Where the Lease lives and how the election is timed.
#[derive(Clone, Debug)]
pub struct LeaderElectionConfig {
    /// Name of the Lease.
    pub lease_name: String,
    /// Namespace of the Lease.
    pub namespace: String,
    /// This candidate's identity, written as the Lease's `holderIdentity`.
    pub identity: String,
    /// How long a Lease that is not renewed keeps others from taking it.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leadership.
    pub renew_deadline: Duration,
    /// Time between attempts to acquire or renew.
    pub retry_period: Duration,
}

/// Errors of leader election.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The timings cannot give a safe election.
    #[error(
        "leader election needs retry period < renew deadline < lease duration (got {retry:?}, {renew:?}, {lease:?})"
    )]
    Timing {
        /// Retry period.
        retry: Duration,
        /// Renew deadline.
        renew: Duration,
        /// Lease duration.
        lease: Duration,
    },
    /// Leadership was lost; the process must stop reconciling.
    #[error("lost leadership of Lease {namespace}/{name}: {reason}")]
    Lost {
        /// Namespace of the Lease.
        namespace: String,
        /// Name of the Lease.
        name: String,
        /// Why.
        reason: String,
    },
}

/// What this candidate last saw of the Lease, and when (on its own clock).
struct Observed {
    spec: LeaseSpec,
    at: Instant,
}

/// One candidate in the election.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaderElectionConfig,
    observed: Option<Observed>,
}

/// The outcome of one attempt.
enum Attempt {
    /// This candidate holds the Lease (just acquired or renewed).
    Held,
    /// Someone else holds a Lease that has not expired.
    HeldBy(String),
    /// A write lost a race (409) or the API call failed; try again later.
    Retry(String),
}

impl LeaderElector {
    /// A candidate; checks the timings.
    pub fn new(client: Client, config: LeaderElectionConfig) -> Result<Self, LeaderError> {
        check_timings(&config)?;
        Ok(LeaderElector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LeaderElectionConfig {
        &self.config
    }

    /// Waits until this candidate holds the Lease.
    pub async fn acquire(&mut self) {
        let mut last_holder = String::new();
        loop {
            match self.try_acquire_or_renew().await {
                Attempt::Held => {
                    info!(
                        lease = %self.config.lease_name,
                        namespace = %self.config.namespace,
                        identity = %self.config.identity,
                        "acquired leadership"
                    );
                    return;
                }
                Attempt::HeldBy(holder) => {
                    if holder != last_holder {
                        info!(leader = %holder, "waiting for leadership; another instance leads");
                        last_holder = holder;
                    }
                }
                Attempt::Retry(why) => debug!(reason = %why, "leader election attempt failed"),
            }
            tokio::time::sleep(jittered(self.config.retry_period)).await;
        }
    }

    /// Renews the Lease every retry period while leading. Returns only when leadership
    /// is lost: another holder took the Lease, or no renewal succeeded within the renew
    /// deadline (the process must then stop reconciling).
    pub async fn hold(&mut self) -> LeaderError {
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            let attempt =
                tokio::time::timeout(self.config.renew_deadline, self.try_acquire_or_renew())
                    .await
                    .unwrap_or_else(|_| Attempt::Retry("renewal timed out".to_string()));
            match attempt {
                Attempt::Held => last_renewed = Instant::now(),
                Attempt::HeldBy(holder) => return self.lost(format!("{holder} holds the Lease")),
                Attempt::Retry(why) => {
                    warn!(reason = %why, "cannot renew the leader Lease");
                    if last_renewed.elapsed() >= self.config.renew_deadline {
                        return self.lost(format!(
                            "no renewal for {:?} (renew deadline); last error: {why}",
                            last_renewed.elapsed()
                        ));
                    }
                }
            }
        }
    }

    /// Gives the Lease up (on shutdown), so that a successor need not wait for it to
    /// expire. Does nothing unless this candidate holds it.
    pub async fn release(&mut self) {
        let Ok(Some(lease)) = self.api.get_opt(&self.config.lease_name).await else {
            return;
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        let released = Lease {
            metadata: lease.metadata.clone(),
            spec: Some(LeaseSpec {
                holder_identity: None,
                lease_duration_seconds: Some(1),
                acquire_time: None,
                renew_time: Some(MicroTime(Timestamp::now())),
                ..spec
            }),
        };
        match self
            .api
            .replace(&self.config.lease_name, &PostParams::default(), &released)
            .await
        {
            Ok(_) => info!("released leadership"),
            Err(e) => warn!(error = %e, "cannot release the leader Lease"),
        }
    }

    fn lost(&self, reason: String) -> LeaderError {
        LeaderError::Lost {
            namespace: self.config.namespace.clone(),
            name: self.config.lease_name.clone(),
            reason,
        }
    }

    async fn try_acquire_or_renew(&mut self) -> Attempt {
        let now = Timestamp::now();
        let live = match self.api.get_opt(&self.config.lease_name).await {
            Ok(l) => l,
            Err(e) => return Attempt::Retry(format!("get Lease: {e}")),
        };
        let Some(live) = live else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.lease_name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(next_spec(&self.config, None, now)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => self.held(created),
                Err(e) => Attempt::Retry(format!("create Lease: {e}")),
            };
        };
        let spec = live.spec.clone().unwrap_or_default();
        // Expiry is judged by when *this* candidate saw the record change.
        let changed = self.observed.as_ref().is_none_or(|o| o.spec != spec);
        if changed {
            self.observed = Some(Observed {
                spec: spec.clone(),
                at: Instant::now(),
            });
        }
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let mine = holder == self.config.identity;
        if !holder.is_empty() && !mine {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs)
                .unwrap_or(self.config.lease_duration);
            let seen_at = self.observed.as_ref().map_or_else(Instant::now, |o| o.at);
            if seen_at.elapsed() < duration {
                return Attempt::HeldBy(holder);
            }
            info!(previous = %holder, "the leader Lease expired; taking it over");
        }
        let updated = Lease {
            metadata: live.metadata.clone(),
            spec: Some(next_spec(&self.config, Some(&spec), now)),
        };
        match self
            .api
            .replace(&self.config.lease_name, &PostParams::default(), &updated)
            .await
        {
            Ok(written) => self.held(written),
            Err(e) => Attempt::Retry(format!("update Lease: {e}")),
        }
    }

    fn held(&mut self, lease: Lease) -> Attempt {
        self.observed = Some(Observed {
            spec: lease.spec.unwrap_or_default(),
            at: Instant::now(),
        });
        Attempt::Held
    }
}

/// Refuses timings that cannot give a safe election: the leader must give up before
/// its Lease can expire in another candidate's eyes.
pub fn check_timings(config: &LeaderElectionConfig) -> Result<(), LeaderError> {
    if config.retry_period < config.renew_deadline && config.renew_deadline < config.lease_duration
    {
        Ok(())
    } else {
        Err(LeaderError::Timing {
            retry: config.retry_period,
            renew: config.renew_deadline,
            lease: config.lease_duration,
        })
    }
}

/// The Lease record `config.identity` writes to acquire or renew, given the live one.
fn next_spec(
    config: &LeaderElectionConfig,
    previous: Option<&LeaseSpec>,
    now: Timestamp,
) -> LeaseSpec {
    let same_holder =
        previous.and_then(|p| p.holder_identity.as_deref()) == Some(config.identity.as_str());
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(config.identity.clone()),
        lease_duration_seconds: Some(
            i32::try_from(config.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX),
        ),
        acquire_time: if same_holder {
            previous.and_then(|p| p.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(match previous {
            Some(_) if !same_holder => transitions.saturating_add(1),
            _ => transitions,
        }),
        ..previous.cloned().unwrap_or_default()
    }
}

/// Resolves on SIGTERM or SIGINT (what `Controller::shutdown_on_signal` reacts to).
pub async fn shutdown_signal() {
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

/// `d` plus up to 20 % random jitter, so that candidates do not attempt in lockstep.
fn jittered(d: Duration) -> Duration {
    use rand_core::RngCore;
    let frac = f64::from(rand_core::OsRng.next_u32() % 1000) / 5000.0;
    d + d.mul_f64(frac)
}

/// A default identity: `<hostname>_<random hex>`, unique per process.
pub fn default_identity() -> String {
    use rand_core::RngCore;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "besu-operator".to_string());
    format!("{host}_{:08x}", rand_core::OsRng.next_u32())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elector(identity: &str) -> LeaderElectionConfig {
        LeaderElectionConfig {
            lease_name: "l".into(),
            namespace: "n".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    #[test]
    fn unsafe_timings_are_refused() {
        assert!(check_timings(&elector("a")).is_ok());
        let mut c = elector("a");
        c.renew_deadline = c.lease_duration;
        assert!(check_timings(&c).is_err());
        let mut c = elector("a");
        c.retry_period = c.renew_deadline;
        assert!(check_timings(&c).is_err());
    }

    #[test]
    fn takeover_counts_a_transition_and_renewal_keeps_the_acquire_time() {
        let t0 = Timestamp::from_second(1_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let t1 = Timestamp::from_second(1_002).unwrap_or(Timestamp::UNIX_EPOCH);
        let first = next_spec(&elector("a"), None, t0);
        assert_eq!(first.holder_identity.as_deref(), Some("a"));
        assert_eq!(first.lease_transitions, Some(0));
        assert_eq!(first.lease_duration_seconds, Some(15));
        let renewed = next_spec(&elector("a"), Some(&first), t1);
        assert_eq!(renewed.acquire_time, Some(MicroTime(t0)));
        assert_eq!(renewed.renew_time, Some(MicroTime(t1)));
        assert_eq!(renewed.lease_transitions, Some(0));
        let taken = next_spec(&elector("b"), Some(&renewed), t1);
        assert_eq!(taken.holder_identity.as_deref(), Some("b"));
        assert_eq!(taken.acquire_time, Some(MicroTime(t1)));
        assert_eq!(taken.lease_transitions, Some(1));
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        for _ in 0..100 {
            let j = jittered(Duration::from_secs(10));
            assert!(j >= Duration::from_secs(10) && j < Duration::from_secs(12));
        }
    }

    #[test]
    fn identities_differ_per_call() {
        assert_ne!(default_identity(), default_identity());
    }
}
