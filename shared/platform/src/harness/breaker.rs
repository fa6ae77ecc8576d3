//! Circuit breakers, one per [`Dependency`]: tell "this record is bad" from "the ledger / SES / DynamoDB is
//! down", so an outage holds the shard back instead of parking healthy records.
//!
//! - **Closed**: records run. Each failure a dependency owns ([`Classify::dependency`](crate::Classify)) counts
//!   towards its breaker; [`BreakerPolicy::threshold`] of them in a row open it. A handled record closes every
//!   breaker (it reached what it needed).
//! - **Open** for a cooldown: no record starts (the batch stops early and reports its lowest unfinished record,
//!   from which Lambda redelivers), and the invocation waits out the cooldown, within its deadline, before it
//!   answers, so the event source mapping's retries come with backoff.
//! - **Half open** once the cooldown has passed: one record (the probe) runs while the others wait for its
//!   outcome. Handled: every breaker closes. The dependency failed again: open again, for twice the cooldown (up
//!   to [`BreakerPolicy::max_cooldown`]). Anything else says nothing: the next record probes.
//!
//! The state lives in the harness, so it outlasts an invocation: a warm instance that saw the outage starts its
//! next batch with it (that is what makes the backoff grow).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::classify::Dependency;

/// When a breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Failures of one dependency in a row, across records, that open its breaker (at least 1).
    pub threshold: u32,
    /// How long a breaker first stays open.
    pub cooldown: Duration,
    /// The longest it stays open; each failed probe doubles the cooldown up to this.
    pub max_cooldown: Duration,
}

impl Default for BreakerPolicy {
    /// 3 failures in a row; 1 s, doubling up to 40 s (under the consumers' 60 s timeout, so a whole cooldown fits
    /// in one invocation).
    fn default() -> Self {
        BreakerPolicy {
            threshold: 3,
            cooldown: Duration::from_secs(1),
            max_cooldown: Duration::from_secs(40),
        }
    }
}

/// What a record about to start may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// Run it.
    Run,
    /// Run it as the probe of a half-open breaker: report its outcome with [`Breakers::probed`].
    Probe,
    /// Do not start it: a dependency is out.
    Stop,
}

/// What a record came to, as far as the breakers care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Handled: its dependencies answered.
    Handled,
    /// A dependency failed.
    Failed(Dependency),
    /// Anything else (a duplicate, a permanent failure, the record's own retryable failure): says nothing about
    /// the dependencies.
    Inconclusive,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed {
        failures: u32,
    },
    /// Open until `until`; half open after it.
    Open {
        until: Instant,
        cooldown: Duration,
    },
}

#[derive(Debug, Default)]
struct State {
    phases: HashMap<Dependency, Phase>,
    /// A probe is running.
    probing: bool,
}

/// The breakers of one harness.
#[derive(Debug, Default)]
pub(super) struct Breakers {
    policy: BreakerPolicy,
    state: Mutex<State>,
    /// Wakes the records waiting for a probe's outcome.
    probed: Notify,
}

impl Breakers {
    pub(super) fn new(policy: BreakerPolicy) -> Self {
        Breakers {
            policy: BreakerPolicy {
                threshold: policy.threshold.max(1),
                ..policy
            },
            ..Breakers::default()
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is a few counters: a panic elsewhere cannot leave it torn.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a record may start now; waits while another record probes.
    pub(super) async fn admit(&self) -> Admission {
        loop {
            // Registered before the state is read, so a probe's outcome between the two is not missed.
            let probed = self.probed.notified();
            {
                let mut state = self.state();
                let now = Instant::now();
                let mut half_open = false;
                for phase in state.phases.values() {
                    if let Phase::Open { until, .. } = phase {
                        if *until > now {
                            return Admission::Stop;
                        }
                        half_open = true;
                    }
                }
                if !half_open {
                    return Admission::Run;
                }
                if !state.probing {
                    state.probing = true;
                    return Admission::Probe;
                }
            }
            probed.await;
        }
    }

    /// Records the outcome of a record that ran; `probe` if it was admitted as one.
    pub(super) fn record(&self, verdict: Verdict, probe: bool) {
        let policy = self.policy;
        let mut state = self.state();
        let now = Instant::now();
        match verdict {
            Verdict::Handled => {
                if state
                    .phases
                    .values()
                    .any(|p| matches!(p, Phase::Open { .. }))
                {
                    tracing::info!("circuit closed: a record was handled");
                }
                state.phases.clear();
            }
            Verdict::Failed(dependency) => {
                let phase = state
                    .phases
                    .entry(dependency)
                    .or_insert(Phase::Closed { failures: 0 });
                let opened = match *phase {
                    Phase::Closed { failures } if failures + 1 >= policy.threshold => {
                        Some(policy.cooldown)
                    }
                    Phase::Closed { failures } => {
                        *phase = Phase::Closed {
                            failures: failures + 1,
                        };
                        None
                    }
                    // Failed after the cooldown: the probe, or a record that started before the breaker opened.
                    Phase::Open { until, cooldown } if until <= now => {
                        Some(cooldown.saturating_mul(2).min(policy.max_cooldown))
                    }
                    // Already open: a record that started before it opened.
                    Phase::Open { .. } => None,
                };
                if let Some(cooldown) = opened {
                    *phase = Phase::Open {
                        until: now + cooldown,
                        cooldown,
                    };
                    tracing::warn!(
                        dependency = dependency.name(),
                        cooldown_ms = cooldown.as_millis() as u64,
                        "circuit open: the dependency keeps failing; records wait instead of counting attempts"
                    );
                }
            }
            Verdict::Inconclusive => {}
        }
        if probe {
            state.probing = false;
            drop(state);
            self.probed.notify_waiters();
        }
    }

    /// When the longest open breaker half-opens, if one is open now.
    pub(super) fn open_until(&self) -> Option<Instant> {
        let now = Instant::now();
        self.state()
            .phases
            .values()
            .filter_map(|p| match p {
                Phase::Open { until, .. } if *until > now => Some(*until),
                _ => None,
            })
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DYNAMO: Dependency = Dependency::named("dynamo");

    fn breakers() -> Breakers {
        Breakers::new(BreakerPolicy {
            threshold: 3,
            cooldown: Duration::from_secs(1),
            max_cooldown: Duration::from_secs(4),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_threshold_in_a_row_and_a_success_resets_the_count() {
        let b = breakers();
        b.record(Verdict::Failed(DYNAMO), false);
        b.record(Verdict::Failed(DYNAMO), false);
        b.record(Verdict::Handled, false);
        b.record(Verdict::Failed(DYNAMO), false);
        b.record(Verdict::Failed(DYNAMO), false);
        assert_eq!(b.admit().await, Admission::Run, "2 in a row: closed");
        // Record-specific failures do not count, and do not reset either.
        b.record(Verdict::Inconclusive, false);
        b.record(Verdict::Failed(DYNAMO), false);
        assert_eq!(b.admit().await, Admission::Stop);
        assert_eq!(
            b.open_until(),
            Some(Instant::now() + Duration::from_secs(1))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_doubles_the_cooldown_up_to_the_cap_and_a_handled_one_closes() {
        let b = breakers();
        for _ in 0..3 {
            b.record(Verdict::Failed(DYNAMO), false);
        }
        let mut cooldowns = Vec::new();
        for _ in 0..4 {
            let until = b.open_until().unwrap();
            cooldowns.push(until - Instant::now());
            tokio::time::sleep_until(until).await;
            assert_eq!(b.admit().await, Admission::Probe);
            b.record(Verdict::Failed(DYNAMO), true);
        }
        assert_eq!(
            cooldowns,
            [1, 2, 4, 4].map(Duration::from_secs),
            "doubling, capped"
        );
        tokio::time::sleep_until(b.open_until().unwrap()).await;
        assert_eq!(b.admit().await, Admission::Probe);
        b.record(Verdict::Handled, true);
        assert_eq!(b.admit().await, Admission::Run);
        assert_eq!(b.open_until(), None);
        // Closed means closed: the count starts again from zero.
        b.record(Verdict::Failed(DYNAMO), false);
        assert_eq!(b.admit().await, Admission::Run);
    }

    #[tokio::test(start_paused = true)]
    async fn while_a_probe_runs_the_others_wait_for_its_outcome() {
        let b = breakers();
        for _ in 0..3 {
            b.record(Verdict::Failed(DYNAMO), false);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(b.admit().await, Admission::Probe);
        let waiting = b.admit();
        let outcome = async {
            // The waiter is parked until the probe reports.
            tokio::task::yield_now().await;
            b.record(Verdict::Failed(DYNAMO), true);
        };
        let (admission, ()) = tokio::join!(waiting, outcome);
        assert_eq!(admission, Admission::Stop, "the probe failed: open again");

        // An inconclusive probe hands the probe to the next record.
        tokio::time::sleep_until(b.open_until().unwrap()).await;
        assert_eq!(b.admit().await, Admission::Probe);
        let waiting = b.admit();
        let outcome = async {
            tokio::task::yield_now().await;
            b.record(Verdict::Inconclusive, true);
        };
        let (admission, ()) = tokio::join!(waiting, outcome);
        assert_eq!(admission, Admission::Probe);
    }
}
