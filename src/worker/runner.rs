//! One worker thread: runs the jobs it is given, turning a panic into a failed attempt, and
//! records each outcome, which also claims its next job while the queue is deep.

use crossbeam_channel::{Receiver, Sender};
use serde_json::Value;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::in_flight::Started;
use super::{backoff, note_evicted, InFlight, MAX_ERROR_BYTES};
use crate::context::{note_job_events, Shared};
use crate::handler::{Cancellation, ErrorKind, JobContext, JobError, JobResult, ProgressSink};
use crate::job::JobId;
use crate::metrics::JobSeries;
use crate::shutdown::{RetryDelay, Shutdown};
use crate::store::{Acked, BreakerChange, Claimed, FailMode, FailOutcome, StoreError, Stores};

/// Cuts `s` to at most `max` bytes, on a character boundary, saying that it was cut.
fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str(" … (cut)");
    }
    s
}

pub(super) struct Worker {
    pub(super) shared: Arc<Shared>,
    pub(super) worker_id: String,
    pub(super) store: Stores,
    pub(super) slot: usize,
    pub(super) in_flight: Arc<InFlight>,
    pub(super) abandoned: Arc<AtomicBool>,
    pub(super) shutdown: Shutdown,
    /// Metric series by queue, then type (see `series`).
    pub(super) series: HashMap<String, HashMap<String, Arc<JobSeries>>>,
}

impl Worker {
    /// Runs jobs until the fetcher is gone. A worker that finishes a job claims its next one in
    /// the same script call as the acknowledgement, so while the queue is deep it neither waits
    /// for the fetcher nor costs an extra round trip; it asks the fetcher only when idle.
    pub(super) fn run(mut self, ready: Sender<()>, jobs: Receiver<Claimed>) {
        let mut next = None;
        loop {
            let job = match next.take() {
                Some(job) => job,
                None => {
                    if ready.send(()).is_err() {
                        return;
                    }
                    match jobs.recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    }
                }
            };
            // Claimed just before the stop began: start no job in the drain, hand it back.
            if self.shutdown.is_triggered() {
                self.hand_back(&job);
                continue;
            }
            next = self.run_job(job);
        }
    }

    /// Puts a job this worker was given but will not start back at the front of pending. If
    /// Redis does not answer, the job stays in the running list, and the end of the drain (or,
    /// failing that, another process's reaper) returns it.
    fn hand_back(&mut self, job: &Claimed) {
        match self
            .store
            .requeue(&self.worker_id, std::slice::from_ref(&job.id))
        {
            Ok(back) if !back.ids.is_empty() => log::info!(
                "job {} ({}) returned to pending unstarted: shutting down",
                job.id,
                job.kind
            ),
            Ok(back) => note_job_events(&self.shared, &back.events),
            Err(e) => log::warn!(
                "job {} ({}) not started, shutting down; returning it to pending failed ({e}), the drain tries again",
                job.id,
                job.kind
            ),
        }
        self.in_flight.unclaim(&job.id);
    }

    /// Runs one job and records its outcome; returns the next job, if the acknowledgement
    /// claimed one.
    fn run_job(&mut self, job: Claimed) -> Option<Claimed> {
        let cfg = &self.shared.config;
        let timeout_secs = job.timeout_secs.unwrap_or(cfg.job_timeout_secs);
        let started = Instant::now();
        let cancel = Cancellation::new(started.checked_add(Duration::from_secs(timeout_secs)));
        self.in_flight.set(
            self.slot,
            Some((Started::now(&job.id, &job.kind, &job.queue), cancel.clone())),
        );
        log::info!(
            "job {} ({}) started, attempt {}/{}, queue {}",
            job.id,
            job.kind,
            job.attempt,
            job.max_attempts,
            job.queue
        );
        let series = self.series(&job);
        if job.ready_since_us > 0 {
            // Redis's clock set ready_since; this host's may differ a little: never below 0.
            let waited = chrono::Utc::now().timestamp_micros() - job.ready_since_us;
            series.wait.observe(waited.max(0) as f64 / 1e6);
        }
        let outcome = match self.parent_results(&job) {
            Ok(parents) => self.execute(&job, cancel.clone(), parents),
            Err(e) => Err(e),
        };
        let elapsed = started.elapsed();
        series.duration.observe(elapsed.as_secs_f64());
        // A handler that gave up because its deadline passed reports the timeout, whatever it
        // said; one that finished its work late still counts as done.
        let outcome = match outcome {
            Err(e)
                if elapsed >= Duration::from_secs(timeout_secs)
                    && e.kind != ErrorKind::TimedOut
                    && e.kind != ErrorKind::Cancelled =>
            {
                Err(JobError::timed_out(format!(
                    "timed out after {timeout_secs} s"
                )))
            }
            Err(mut e) => {
                e.message = truncate(e.message, MAX_ERROR_BYTES);
                Err(e)
            }
            other => other,
        };
        let next = self.record(&job, outcome, elapsed, &series);
        // Held until the outcome is stored, so a job waiting out a Redis outage to record its
        // result is never taken for a stranded one.
        self.in_flight.set(self.slot, None);
        next
    }

    /// The metric series of `job`'s queue and type, resolved on this worker's first job of them.
    fn series(&mut self, job: &Claimed) -> Arc<JobSeries> {
        if let Some(s) = self.series.get(&job.queue).and_then(|m| m.get(&job.kind)) {
            return s.clone();
        }
        let s = Arc::new(self.shared.metrics.job_series(&job.queue, &job.kind));
        self.series
            .entry(job.queue.clone())
            .or_default()
            .insert(job.kind.clone(), s.clone());
        s
    }

    /// Runs the handler, turning a panic into a failed attempt so the thread lives on.
    /// The results of the job's parents, for its handler; none for a job without parents.
    fn parent_results(
        &mut self,
        job: &Claimed,
    ) -> Result<serde_json::Map<String, Value>, JobError> {
        if job.parents.is_empty() {
            return Ok(serde_json::Map::new());
        }
        self.store.parent_results(&job.parents).map_err(|e| {
            JobError::transient(format!(
                "could not read the results of its parents ({e}); retried after the backoff"
            ))
        })
    }

    fn execute(
        &self,
        job: &Claimed,
        cancel: Cancellation,
        parents: serde_json::Map<String, Value>,
    ) -> JobResult {
        let Some(handler) = self.shared.registry.get(&job.kind) else {
            return Err(JobError::transient(format!(
                "no handler for job type {:?} in this process (it knows {}); deploy one that does",
                job.kind,
                self.shared.registry.types().join(", ")
            )));
        };
        let payload: Value = serde_json::from_str(&job.payload)
            .map_err(|e| JobError::permanent(format!("stored payload is not JSON: {e}")))?;
        let ctx = JobContext {
            id: JobId::from_stored(job.id.clone()),
            kind: job.kind.clone(),
            payload,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            cancel,
            store: Some(self.shared.store_pool.clone()),
            progress: Some(ProgressSink::to_store(
                self.shared.store_pool.clone(),
                job.id.clone(),
                job.claim.clone(),
            )),
            parents,
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| handler.run(&ctx)));
        // A report held back by the rate limit goes out while the job is still running.
        if let Some(sink) = &ctx.progress {
            sink.finish();
        }
        match outcome {
            Ok(r) => r,
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-text panic value".into());
                Err(JobError::transient(format!("handler panicked: {msg}")))
            }
        }
    }

    /// Writes the outcome to Redis, retrying while Redis is unreachable: a finished job keeps its
    /// outcome and is not run again. Gives up only when the drain was abandoned.
    fn record(
        &mut self,
        job: &Claimed,
        outcome: JobResult,
        elapsed: Duration,
        series: &JobSeries,
    ) -> Option<Claimed> {
        let shared = self.shared.clone();
        let cfg = &shared.config;
        let ms = elapsed.as_millis();
        let wid = self.worker_id.clone();
        let shutdown = self.shutdown.clone();
        // No new work once a stop has begun; the check runs on every retry of the write.
        let claim_next = move || !shutdown.is_triggered();
        let (in_flight, slot) = (self.in_flight.clone(), self.slot);
        let sel = shared.selection.clone();
        match outcome {
            Ok(result) => {
                let result = (!result.is_null()).then(|| result.to_string());
                let ttl = cfg.job_ttl_secs;
                let acked = self.persist(|s| {
                    in_flight.claiming(
                        slot,
                        || s.complete(&wid, job, result.as_deref(), ttl, claim_next(), &sel),
                        next_claimed,
                    )
                });
                let next = acked.as_ref().ok().and_then(|(a, _)| a.next.clone());
                if let Ok((a, _)) = &acked {
                    note_breaker(&shared, &job.kind, a.breaker);
                    note_job_events(&shared, &a.events);
                }
                match acked.map(|(a, retried)| (a.outcome, retried)) {
                    Ok((true, _)) => {
                        series.processed.inc();
                        log::info!("job {} ({}) completed in {ms} ms", job.id, job.kind);
                    }
                    Ok((false, retried)) => log::warn!(
                        "job {} ({}) completed in {ms} ms, but it was no longer this process's to record: {}",
                        job.id,
                        job.kind,
                        not_owned_reason(retried)
                    ),
                    Err(why) => log::error!(
                        "job {} ({}) completed in {ms} ms but the outcome could not be stored ({why}); it will run again",
                        job.id, job.kind
                    ),
                }
                next
            }
            Err(err) => {
                let snooze = err.snooze_delay();
                let (mode, delay) = match snooze {
                    Some(d) => (FailMode::Snooze, d.as_millis() as u64),
                    None => {
                        series.failed.inc();
                        let delay =
                            backoff::delay_ms(job.attempt, cfg.backoff_base_ms, cfg.backoff_max_ms);
                        let mode = if err.is_permanent() {
                            FailMode::Permanent
                        } else {
                            FailMode::Retry
                        };
                        (mode, delay)
                    }
                };
                let permanent = mode == FailMode::Permanent;
                let msg = err.message.clone();
                let limits = (cfg.dlq_max_size, cfg.max_snoozes);
                let acked = self.persist(|s| {
                    in_flight.claiming(
                        slot,
                        || s.fail(&wid, job, &msg, delay, mode, limits, claim_next(), &sel),
                        next_claimed,
                    )
                });
                let next = acked.as_ref().ok().and_then(|(a, _)| a.next.clone());
                if let Ok((a, _)) = &acked {
                    note_breaker(&shared, &job.kind, a.breaker);
                    note_job_events(&shared, &a.events);
                }
                if snooze.is_some()
                    && matches!(
                        acked.as_ref().map(|(a, _)| &a.outcome),
                        Ok(FailOutcome::Retry { .. } | FailOutcome::Dead { .. })
                    )
                {
                    // Snoozed more than MAX_SNOOZES times: the store counted it as a failure.
                    series.failed.inc();
                }
                match acked.map(|(a, retried)| (a.outcome, retried)) {
                    Ok((FailOutcome::Snoozed { due_us }, _)) => {
                        series.snoozed.inc();
                        log::info!(
                            "job {} ({}) snoozed after {ms} ms until {}: {}",
                            job.id,
                            job.kind,
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
                            job.id, job.kind, job.attempt, job.max_attempts, err.message
                        );
                    }
                    Ok((FailOutcome::Dead { evicted }, _)) => {
                        series.dlq.inc();
                        note_evicted(&shared, &evicted);
                        log::error!(
                            "job {} ({}) attempt {}/{} failed after {ms} ms: {}; moved to the DLQ{}",
                            job.id,
                            job.kind,
                            job.attempt,
                            job.max_attempts,
                            err.message,
                            if permanent && job.attempt < job.max_attempts {
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
                        job.kind,
                        job.attempt,
                        err.message,
                        not_owned_reason(retried)
                    ),
                    Err(why) => log::error!(
                        "job {} ({}) attempt {} failed ({}) but the outcome could not be stored ({why}); it will run again",
                        job.id, job.kind, job.attempt, err.message
                    ),
                }
                next
            }
        }
    }

    /// Retries `op` with capped backoff while the failure can heal (Redis unreachable, in a
    /// passing state, or refusing credentials that may be fixed), so a finished job keeps its
    /// outcome. Any other error (a script error, a wrong type: a bug or a foreign key) is not
    /// retried: it would pin this worker until shutdown. Says whether an earlier try failed, in
    /// which case Redis may have stored it already.
    fn persist<T>(
        &mut self,
        mut op: impl FnMut(&mut Stores) -> Result<T, StoreError>,
    ) -> Result<(T, bool), Unstored> {
        let mut retry = RetryDelay::default();
        let mut retried = false;
        loop {
            match op(&mut self.store) {
                Ok(v) => return Ok((v, retried)),
                Err(e) if !e.can_heal() => return Err(Unstored::Refused(e)),
                Err(_) => {
                    if self.abandoned.load(Ordering::SeqCst) {
                        return Err(Unstored::Abandoned);
                    }
                    retried = true;
                    std::thread::sleep(retry.next_delay());
                }
            }
        }
    }
}

/// Why an outcome was not stored. The job stays in this process's running list: the drain's
/// requeue (or, in a live process, the stranded-claim check once the worker lets go of it)
/// returns it to pending, so it runs again.
#[derive(Debug)]
enum Unstored {
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

/// Logs a job type's circuit breaker opening or closing, once, and counts it.
fn note_breaker(shared: &Shared, kind: &str, change: Option<BreakerChange>) {
    match change {
        Some(BreakerChange::Opened) => {
            shared
                .metrics
                .breaker_transitions
                .with_label_values(&[kind, "opened"])
                .inc();
            log::warn!(
                "circuit breaker of type {kind} opened: its jobs wait until the cool-down ends and a probe job succeeds"
            );
        }
        Some(BreakerChange::Closed) => {
            shared
                .metrics
                .breaker_transitions
                .with_label_values(&[kind, "closed"])
                .inc();
            log::info!("circuit breaker of type {kind} closed: a probe job succeeded");
        }
        None => {}
    }
}

/// The next job an acknowledgement claimed, which is in transit until its worker starts it.
fn next_claimed<T>(r: &Result<Acked<T>, StoreError>) -> Vec<String> {
    match r {
        Ok(Acked { next: Some(n), .. }) => vec![n.id.clone()],
        _ => Vec::new(),
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
