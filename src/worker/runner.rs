//! One worker thread: runs the jobs it is given, turning a panic into a failed attempt, and
//! records each outcome, which also claims its next job while the queue is deep, or hands it to
//! the committers while a call is in flight (group commit).

use crossbeam_channel::Sender;
use serde_json::Value;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::committer::Group;
use super::handoff::{Empty, Rx};
use super::in_flight::Started;
use super::outcome::{report, Done, Unstored};
use super::{backoff, InFlight, MAX_ERROR_BYTES};
use crate::context::{note_job_events, Shared};
use crate::handler::{Cancellation, ErrorKind, JobContext, JobError, JobResult, ProgressSink};
use crate::job::trace::attempt_traceparent;
use crate::job::JobId;
use crate::metrics::JobSeries;
use crate::shutdown::{RetryDelay, Shutdown};
use crate::store::{Ack, AckReply, Claimed, FailMode, Outcome, StoreError, Stores};

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
    /// Where finished jobs go to be recorded together (group commit); None with ACK_BATCH=1.
    pub(super) group: Option<Group>,
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
    ///
    /// With group commit a worker that hands its outcome to the committers waits for a job on
    /// the queue: the committer sends the one the acknowledgement claimed, or, when it claimed
    /// none, asks the fetcher for one in this worker's name. Either way one job per
    /// acknowledgement, so the process holds no more jobs than it has workers, plus those in
    /// the queue on their way to one.
    pub(super) fn run(mut self, ready: Sender<()>, jobs: Rx<Claimed>) {
        let mut next = None;
        let mut ask = true;
        loop {
            let job = match next.take() {
                Some(job) => job,
                None => {
                    if std::mem::take(&mut ask) && ready.send(()).is_err() {
                        return;
                    }
                    match self.next_job(&jobs) {
                        Some(job) => job,
                        None => return,
                    }
                }
            };
            // Claimed just before the stop began: start no job in the drain, hand it back.
            if self.shutdown.is_triggered() {
                self.hand_back(&job);
                continue;
            }
            let handed;
            (next, handed) = self.run_job(job);
            // A committer asks the fetcher on this worker's behalf.
            ask = !handed;
        }
    }

    /// The next job from the queue; None once the fetcher (and the committer, which sends
    /// jobs too) is gone. With a committer, also None once the stop has begun: a job it sends
    /// after that is in the running list, which the end of the drain puts back to pending.
    fn next_job(&self, jobs: &Rx<Claimed>) -> Option<Claimed> {
        loop {
            match jobs.recv_timeout(Duration::from_millis(250)) {
                Ok(job) => return Some(job),
                Err(Empty::Closed) => return None,
                Err(Empty::Timeout) => {
                    if self.group.is_some() && self.shutdown.is_triggered() {
                        return None;
                    }
                }
            }
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
                job.kind_label()
            ),
            Ok(back) => note_job_events(&self.shared, &back.events),
            Err(e) => log::warn!(
                "job {} ({}) not started, shutting down; returning it to pending failed ({e}), the drain tries again",
                job.id,
                job.kind_label()
            ),
        }
        self.in_flight.unclaim(&job.id);
    }

    /// Runs one job and records its outcome: itself, returning the next job if the
    /// acknowledgement claimed one, or through the committers (true: handed over).
    fn run_job(&mut self, mut job: Claimed) -> (Option<Claimed>, bool) {
        // The attempt is a span of its own in the submitter's trace; its log lines and its
        // handler carry that span's traceparent.
        if let Some(t) = &mut job.trace {
            t.traceparent = attempt_traceparent(&t.traceparent);
        }
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
            job.kind_label(),
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
        let (ack, done) = self.settle(job, outcome, elapsed, series);
        if let Some(group) = self.group.as_ref().filter(|g| !g.take_direct()) {
            // Held as being acknowledged until a committer has stored it.
            self.in_flight.acking(self.slot, &done.job.id);
            group.hand(ack, done);
            return (None, true);
        }
        self.shared.metrics.ack_batch_size.observe(1.0);
        let answer = self.acknowledge(ack);
        if let Some(group) = &self.group {
            group.direct_done();
        }
        let next = report(&self.shared, &done, answer);
        // Held until the outcome is stored, so a job waiting out a Redis outage to record its
        // result is never taken for a stranded one.
        self.in_flight.set(self.slot, None);
        (next, false)
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
            traceparent: job.trace.as_ref().map(|t| t.traceparent.clone()),
            tracestate: job.trace.as_ref().and_then(|t| t.tracestate.clone()),
            metrics: Some(self.shared.metrics.clone()),
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

    /// The acknowledgement of `job`'s outcome, and what its report needs.
    fn settle(
        &self,
        job: Claimed,
        outcome: JobResult,
        elapsed: Duration,
        series: Arc<JobSeries>,
    ) -> (Ack, Done) {
        let cfg = &self.shared.config;
        let (outcome, error, delay) = match outcome {
            Ok(result) => {
                let result = (!result.is_null()).then(|| result.to_string());
                let ttl_secs = cfg.job_ttl_secs;
                (Outcome::Completed { result, ttl_secs }, None, 0)
            }
            Err(err) => {
                let (mode, delay) = match err.snooze_delay() {
                    Some(d) => (FailMode::Snooze, d.as_millis() as u64),
                    None => {
                        let delay =
                            backoff::delay_ms(job.attempt, cfg.backoff_base_ms, cfg.backoff_max_ms);
                        if err.is_permanent() {
                            (FailMode::Permanent, delay)
                        } else {
                            (FailMode::Retry, delay)
                        }
                    }
                };
                let outcome = Outcome::Failed {
                    error: err.message.clone(),
                    delay_ms: delay,
                    mode,
                    limits: (cfg.dlq_max_size, cfg.max_snoozes),
                };
                (outcome, Some(err), delay)
            }
        };
        let ack = Ack::new(&job, outcome, true);
        let done = Done {
            job,
            ms: elapsed.as_millis(),
            series,
            error,
            delay,
        };
        (ack, done)
    }

    /// Records `ack` in a call of its own (no group commit), asking on each try for the
    /// worker's next job unless the stop has begun; see [`persist`].
    fn acknowledge(&mut self, mut ack: Ack) -> Result<(AckReply, bool), Unstored> {
        let (store, wid, slot) = (&mut self.store, &self.worker_id, self.slot);
        let (sel, in_flight, shutdown) = (&self.shared.selection, &self.in_flight, &self.shutdown);
        persist(&self.abandoned, || {
            ack.claim_next = !shutdown.is_triggered();
            in_flight.claiming(slot, || store.ack_one(wid, &ack, sel), next_claimed)
        })
    }
}

/// Retries `op` with capped backoff while its failure can heal (see [`settled`]), so a
/// finished job keeps its outcome. Says whether an earlier try failed, in which case Redis may
/// have stored it already.
fn persist<T>(
    abandoned: &AtomicBool,
    mut op: impl FnMut() -> Result<T, StoreError>,
) -> Result<(T, bool), Unstored> {
    let mut retry = RetryDelay::default();
    let mut retried = false;
    loop {
        if let Some(settled) = settled(op(), retried, abandoned) {
            return settled;
        }
        retried = true;
        std::thread::sleep(retry.next_delay());
    }
}

/// What a try at storing an outcome settled (`retried`: an earlier try failed), or None when
/// it must be tried again: a failure that can heal (Redis unreachable, in a passing state, or
/// refusing credentials that may be fixed) while the drain is not `abandoned`. Any other error
/// (a script error, a wrong type: a bug or a foreign key) is final: retrying it would pin the
/// thread until shutdown.
pub(super) fn settled<T>(
    answer: Result<T, StoreError>,
    retried: bool,
    abandoned: &AtomicBool,
) -> Option<Result<(T, bool), Unstored>> {
    match answer {
        Ok(v) => Some(Ok((v, retried))),
        Err(e) if !e.can_heal() => Some(Err(Unstored::Refused(e))),
        Err(_) if abandoned.load(Ordering::SeqCst) => Some(Err(Unstored::Abandoned)),
        Err(_) => None,
    }
}

/// The next job an acknowledgement claimed, which is in transit until a worker starts it.
pub(super) fn next_claimed(r: &Result<AckReply, StoreError>) -> Vec<String> {
    match r {
        Ok(a) => a.next().map(|n| vec![n.id.clone()]).unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}
