//! What becomes of a finished job once its acknowledgement has been answered: the counters,
//! the log line, the breaker change and the events it settled. The worker reports its own
//! acknowledgement; with group commit the committer reports each of a group's, after the
//! group's call, so a counter never says more than Redis holds.

use std::sync::Arc;

use super::note_evicted;
use crate::context::{note_job_events, Shared};
use crate::handler::JobError;
use crate::metrics::JobSeries;
use crate::store::{AckReply, Acked, BreakerChange, Claimed, FailOutcome, StoreError};

/// A job that finished, as its report needs it.
pub(super) struct Done {
    pub(super) job: Claimed,
    /// How long its handler ran.
    pub(super) ms: u128,
    pub(super) series: Arc<JobSeries>,
    /// None when it succeeded.
    pub(super) error: Option<JobError>,
    /// The retry's or the snooze's delay (ms).
    pub(super) delay: u64,
}

/// Why an outcome was not stored. The job stays in this process's running list: the drain's
/// requeue (or, in a live process, the stranded-claim check once the worker lets go of it)
/// returns it to pending, so it runs again.
#[derive(Debug)]
pub(super) enum Unstored {
    /// The drain ran out of time while Redis could not be reached.
    Abandoned,
    /// Redis answered with an error that retrying cannot fix.
    Refused(StoreError),
}

impl std::fmt::Display for Unstored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unstored::Abandoned => f.write_str("Redis was unreachable until the drain ended"),
            Unstored::Refused(e) => write!(f, "{e}"),
        }
    }
}

/// Counts and logs `done`'s stored outcome (or that it could not be stored; `retried`: an
/// earlier try failed, so Redis may have stored it already). Returns the next job the
/// acknowledgement claimed.
pub(super) fn report(
    shared: &Shared,
    done: &Done,
    answer: Result<(AckReply, bool), Unstored>,
) -> Option<Claimed> {
    let (job, ms, series) = (&done.job, done.ms, &done.series);
    let Some(err) = &done.error else {
        let mut acked = answer.and_then(|(r, retried)| {
            r.completed()
                .map(|a| (a, retried))
                .map_err(Unstored::Refused)
        });
        let next = note_acked(shared, &job.kind, &mut acked);
        match acked.map(|(a, retried)| (a.outcome, retried)) {
            Ok((true, _)) => {
                series.processed.inc();
                log::info!("job {} ({}) completed in {ms} ms", job.id, job.kind_label());
            }
            Ok((false, retried)) => log::warn!(
                "job {} ({}) completed in {ms} ms, but it was no longer this process's to record: {}",
                job.id,
                job.kind_label(),
                not_owned_reason(retried)
            ),
            Err(why) => log::error!(
                "job {} ({}) completed in {ms} ms but the outcome could not be stored ({why}); it will run again",
                job.id, job.kind_label()
            ),
        }
        return next;
    };
    let snoozed = err.snooze_delay().is_some();
    if !snoozed {
        series.failed.inc();
    }
    let mut acked =
        answer.and_then(|(r, retried)| r.failed().map(|a| (a, retried)).map_err(Unstored::Refused));
    let next = note_acked(shared, &job.kind, &mut acked);
    if snoozed
        && matches!(
            acked.as_ref().map(|(a, _)| &a.outcome),
            Ok(FailOutcome::Retry { .. } | FailOutcome::Dead { .. })
        )
    {
        // Snoozed more than MAX_SNOOZES times: the store counted it as a failure.
        series.failed.inc();
    }
    let delay = done.delay;
    match acked.map(|(a, retried)| (a.outcome, retried)) {
        Ok((FailOutcome::Snoozed { due_us }, _)) => {
            series.snoozed.inc();
            log::info!(
                "job {} ({}) snoozed after {ms} ms until {}: {}",
                job.id,
                job.kind_label(),
                crate::job::from_micros(due_us)
                    .map(|t| crate::job::api_time(&t))
                    .unwrap_or_default(),
                err.message
            );
        }
        Ok((FailOutcome::Retry { .. }, _)) => {
            series.retried.inc();
            log::warn!(
                "job {} ({}) attempt {}/{} failed after {ms} ms: {}; retry in {delay} ms",
                job.id,
                job.kind_label(),
                job.attempt,
                job.max_attempts,
                err.message
            );
        }
        Ok((FailOutcome::Dead { evicted }, _)) => {
            series.dlq.inc();
            note_evicted(shared, &evicted);
            log::error!(
                "job {} ({}) attempt {}/{} failed after {ms} ms: {}; moved to the DLQ{}",
                job.id,
                job.kind_label(),
                job.attempt,
                job.max_attempts,
                err.message,
                if err.is_permanent() && job.attempt < job.max_attempts {
                    " (permanent error, no retry)"
                } else {
                    ""
                }
            );
        }
        // Logged and counted with its event (see note_job_events).
        Ok((FailOutcome::Cancelled, _)) => {}
        Ok((FailOutcome::NotOwned, retried)) => log::warn!(
            "job {} ({}) attempt {} failed ({}), but it was no longer this process's to record: {}",
            job.id,
            job.kind_label(),
            job.attempt,
            err.message,
            not_owned_reason(retried)
        ),
        Err(why) => log::error!(
            "job {} ({}) attempt {} failed ({}) but the outcome could not be stored ({why}); it will run again",
            job.id, job.kind_label(), job.attempt, err.message
        ),
    }
    next
}

/// What a stored acknowledgement changed besides its job (its type's breaker, the events it
/// settled), logged and counted; takes out the next job it claimed.
fn note_acked<T>(
    shared: &Shared,
    kind: &str,
    acked: &mut Result<(Acked<T>, bool), Unstored>,
) -> Option<Claimed> {
    let (a, _) = acked.as_mut().ok()?;
    note_breaker(shared, kind, a.breaker);
    note_job_events(shared, &a.events);
    a.next.take()
}

/// Logs a job type's circuit breaker opening or closing, once, and counts it.
fn note_breaker(shared: &Shared, kind: &str, change: Option<BreakerChange>) {
    let Some(change) = change else {
        return;
    };
    let transition = match change {
        BreakerChange::Opened => "opened",
        BreakerChange::Closed => "closed",
    };
    shared
        .metrics
        .breaker_transitions
        .with_label_values(&[kind, transition])
        .inc();
    match change {
        BreakerChange::Opened => log::warn!(
            "circuit breaker of type {kind} opened: its jobs wait until the cool-down ends and a probe job succeeds"
        ),
        BreakerChange::Closed => {
            log::info!("circuit breaker of type {kind} closed: a probe job succeeded")
        }
    }
}

/// Why an acknowledgement found the job no longer this process's.
fn not_owned_reason(retried: bool) -> &'static str {
    if retried {
        "an earlier try whose answer was lost had stored it, or another process took the job back during the outage"
    } else {
        "another process had already taken it back; its outcome is dropped"
    }
}
