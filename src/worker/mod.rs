//! Running jobs: a fetcher thread claims jobs from Redis and hands them over a channel to a fixed
//! pool of worker threads, which run the handler and record the outcome.
//!
//! The fetcher claims only as many jobs as there are idle workers (each idle worker sends a
//! "ready" token), so a process never holds jobs it cannot start: another process with idle
//! workers gets them instead, and a crash strands at most one job per busy worker.

pub mod backoff;
pub mod maintenance;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::Value;
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::context::Shared;
use crate::handler::{Cancellation, ErrorKind, JobContext, JobError, JobResult};
use crate::job::JobId;
use crate::shutdown::{RetryDelay, Shutdown};
use crate::store::{Acked, Claimed, FailOutcome, Health, Store, StoreError};

/// How long the fetcher blocks waiting for a job; bounds how late it notices a shutdown.
const FETCH_BLOCK: Duration = Duration::from_secs(1);
/// Longest error message stored with a job (and in each of its 20 history entries).
const MAX_ERROR_BYTES: usize = 4096;

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

/// How long a drain waits for running jobs once Redis is found to be down.
const OUTAGE_DRAIN: Duration = Duration::from_secs(3);
/// Most jobs claimed in one script call.
const CLAIM_BATCH: usize = 64;

/// The jobs this process holds, as the heartbeat must see them to tell a job that a lost claim
/// reply stranded in the running list from one this process really has.
///
/// A claimed job is held from the moment its claim's reply is read: first "in transit" (from
/// the fetcher through the channel to a worker, or from an acknowledgement that claimed it to
/// the same worker's next run), then in its worker's slot until its outcome is stored. The gap
/// before the reply is read is covered by a claim counter per claiming thread, odd while a
/// claiming call is under way: see [`Snapshot::progressed_since`].
pub struct InFlight {
    slots: Vec<Mutex<Option<(String, Cancellation)>>>,
    transit: Mutex<HashSet<String>>,
    /// One per worker (by slot), then the fetcher's.
    claims: Vec<AtomicU64>,
}

/// What the heartbeat reads of [`InFlight`]: the ids held, and each claiming thread's counter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub held: HashSet<String>,
    pub claims: Vec<u64>,
}

impl Snapshot {
    /// Whether every claiming call that was under way at `earlier` has ended since. Only then
    /// can a job missing from both snapshots be stranded: had its claim still been in flight,
    /// its reply (and so the job) may yet reach a worker. Time alone cannot tell: a process
    /// stalled as a whole (a VM pause) takes two beats in a row with its claim reply unread.
    pub fn progressed_since(&self, earlier: &Snapshot) -> bool {
        earlier
            .claims
            .iter()
            .zip(&self.claims)
            .all(|(then, now)| then % 2 == 0 || then != now)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl InFlight {
    fn new(workers: usize) -> Arc<InFlight> {
        Arc::new(InFlight {
            slots: (0..workers).map(|_| Mutex::new(None)).collect(),
            transit: Mutex::new(HashSet::new()),
            claims: (0..=workers).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// The claim counter index of the fetcher (workers use their slot).
    fn fetcher(&self) -> usize {
        self.slots.len()
    }

    /// Runs a call that may claim jobs, for claiming thread `who`; the ids `claimed` finds in
    /// its answer are in transit before the call counts as ended.
    fn claiming<T>(
        &self,
        who: usize,
        call: impl FnOnce() -> T,
        claimed: impl FnOnce(&T) -> Vec<String>,
    ) -> T {
        self.claims[who].fetch_add(1, Ordering::SeqCst);
        let answer = call();
        let ids = claimed(&answer);
        if !ids.is_empty() {
            lock(&self.transit).extend(ids);
        }
        self.claims[who].fetch_add(1, Ordering::SeqCst);
        answer
    }

    /// A worker starts (`Some`) or has recorded (`None`) a job; a job it starts leaves transit.
    fn set(&self, slot: usize, job: Option<(String, Cancellation)>) {
        let id = job.as_ref().map(|(id, _)| id.clone());
        *lock(&self.slots[slot]) = job;
        if let Some(id) = id {
            self.unclaim(&id);
        }
    }

    /// A job in transit that no worker will run (handed back to pending, or lost with a closed
    /// channel).
    fn unclaim(&self, id: &str) {
        lock(&self.transit).remove(id);
    }

    fn each(&self, mut f: impl FnMut(&(String, Cancellation))) {
        for slot in &self.slots {
            if let Some(job) = &*lock(slot) {
                f(job);
            }
        }
    }

    /// How many workers hold a job now.
    pub fn busy(&self) -> usize {
        let mut n = 0;
        self.each(|_| n += 1);
        n
    }

    /// The ids held now (running, or in transit to a worker), then the claim counters. Read
    /// after the running list, so a job claimed before that read is either held here or its
    /// claiming call shows as under way.
    pub fn snapshot(&self) -> Snapshot {
        let mut held = lock(&self.transit).clone();
        self.each(|(id, _)| {
            held.insert(id.clone());
        });
        let claims = self
            .claims
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .collect();
        Snapshot { held, claims }
    }

    /// Asks every running handler to stop. Called once the drain has put their jobs back to
    /// pending: their outcome can no longer be recorded, so they may as well stop.
    pub fn cancel_all(&self) {
        self.each(|(_, c)| c.cancel());
    }
}

/// The running fetcher and worker threads of one process.
pub struct Pool {
    fetcher: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
    done_rx: Receiver<()>,
    in_flight: Arc<InFlight>,
    /// Set when the drain gave up: workers stop retrying to record outcomes.
    abandoned: Arc<AtomicBool>,
}

impl Pool {
    /// Starts the fetcher and `config.num_workers` workers for the process `worker_id`.
    pub fn start(
        shared: &Arc<Shared>,
        worker_id: &str,
        shutdown: &Shutdown,
    ) -> std::io::Result<Pool> {
        let n = shared.config.num_workers;
        let (ready_tx, ready_rx) = crossbeam_channel::unbounded::<()>();
        let (job_tx, job_rx) = crossbeam_channel::unbounded::<Claimed>();
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<()>();
        let in_flight = InFlight::new(n);
        let abandoned = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let w = Worker {
                shared: shared.clone(),
                worker_id: worker_id.to_string(),
                store: shared.backend.open(),
                slot: i,
                in_flight: in_flight.clone(),
                abandoned: abandoned.clone(),
                shutdown: shutdown.clone(),
            };
            let (ready_tx, job_rx, done_tx) = (ready_tx.clone(), job_rx.clone(), done_tx.clone());
            workers.push(
                std::thread::Builder::new()
                    .name(format!("jobq-worker-{i}"))
                    .spawn(move || {
                        w.run(ready_tx, job_rx);
                        let _ = done_tx.send(());
                    })?,
            );
        }
        let fetcher = Fetcher {
            store: shared.backend.open_blocking(FETCH_BLOCK),
            worker_id: worker_id.to_string(),
            shutdown: shutdown.clone(),
            in_flight: in_flight.clone(),
        };
        let fetcher = std::thread::Builder::new()
            .name("jobq-fetcher".into())
            .spawn(move || fetcher.run(ready_rx, job_tx))?;
        Ok(Pool {
            fetcher,
            workers,
            done_rx,
            in_flight,
            abandoned,
        })
    }

    /// The jobs the workers hold, shared with the heartbeat and the shutdown.
    pub fn in_flight(&self) -> Arc<InFlight> {
        self.in_flight.clone()
    }

    /// After shutdown was triggered: waits for the fetcher, then up to `timeout` for running jobs
    /// to finish. Returns how many workers were still busy when the time ran out; their jobs'
    /// handlers are asked to stop, and the caller puts the jobs back to pending.
    pub fn drain(self, timeout: Duration, health: &Health) -> usize {
        let start = Instant::now();
        let mut deadline = start + timeout;
        let _ = self.fetcher.join();
        let total = self.workers.len();
        let mut finished = 0;
        while finished < total {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            // While Redis is down no outcome can be stored, so waiting the full timeout would
            // only delay the exit: give finishing jobs a few seconds, then stop. Their jobs stay
            // in this process's running list and are recovered once its heartbeat expires.
            if !health.is_up() {
                deadline = deadline.min(now + OUTAGE_DRAIN);
            }
            match self
                .done_rx
                .recv_timeout((deadline - now).min(Duration::from_millis(250)))
            {
                Ok(()) => finished += 1,
                Err(_) => continue,
            }
        }
        let busy = total - finished;
        if busy == 0 {
            for w in self.workers {
                let _ = w.join();
            }
        } else {
            // The handlers are not cancelled here: their jobs must be back in pending first, or
            // a handler that stops at once would record a failed attempt. See `InFlight::cancel_all`.
            self.abandoned.store(true, Ordering::SeqCst);
        }
        busy
    }
}

/// Counts and logs dead-letter jobs dropped to keep the DLQ within DLQ_MAX_SIZE: never silently.
pub fn note_evicted(shared: &Shared, evicted: &[String]) {
    if evicted.is_empty() {
        return;
    }
    shared.metrics.jobs_dlq_evicted.inc_by(evicted.len() as u64);
    for id in evicted {
        log::warn!(
            "job {id} dropped from the DLQ and deleted: the DLQ is full (DLQ_MAX_SIZE={})",
            shared.config.dlq_max_size
        );
    }
}

struct Fetcher {
    store: Store,
    worker_id: String,
    shutdown: Shutdown,
    in_flight: Arc<InFlight>,
}

impl Fetcher {
    fn run(mut self, ready: Receiver<()>, jobs: Sender<Claimed>) {
        let mut idle = 0usize;
        let mut retry = RetryDelay::default();
        let mut unregistered = false;
        let me = self.in_flight.fetcher();
        while !self.shutdown.is_triggered() {
            if idle == 0 {
                match ready.recv_timeout(Duration::from_millis(250)) {
                    Ok(()) => idle += 1,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            idle += ready.try_iter().count();
            // A token may arrive after the stop began (a worker that finished during the
            // drain): claim nothing then, or a job would start in the drain and, outliving
            // it, run again from the start later.
            if self.shutdown.is_triggered() {
                break;
            }
            let (store, wid, n) = (&mut self.store, &self.worker_id, idle.min(CLAIM_BATCH));
            let claimed = self.in_flight.claiming(
                me,
                || store.claim(wid, n),
                |r| match r {
                    Ok(Some(jobs)) => jobs.iter().map(|j| j.id.clone()).collect(),
                    _ => Vec::new(),
                },
            );
            match claimed {
                Ok(None) => {
                    // Registration is the heartbeat's job; it retries every 200 ms.
                    if !unregistered {
                        log::warn!(
                            "process {} is not registered (its heartbeat is missing): claiming no job until the heartbeat is written again",
                            self.worker_id
                        );
                        unregistered = true;
                    }
                    self.shutdown.sleep(retry.next_delay());
                }
                Ok(Some(claimed)) if claimed.is_empty() => {
                    retry.reset();
                    if std::mem::take(&mut unregistered) {
                        log::info!("process {} is registered again", self.worker_id);
                    }
                    if let Err(e) = self.store.wait_for_pending(FETCH_BLOCK) {
                        self.pause(&mut retry, &e);
                    }
                }
                Ok(Some(claimed)) => {
                    retry.reset();
                    if std::mem::take(&mut unregistered) {
                        log::info!("process {} is registered again", self.worker_id);
                    }
                    for job in claimed {
                        idle -= 1;
                        // A worker is waiting for this job (it sent a ready token), so the send
                        // only fails if every worker is gone, which happens only at shutdown;
                        // the drain then returns the job to pending.
                        if let Err(lost) = jobs.send(job) {
                            self.in_flight.unclaim(&lost.0.id);
                            return;
                        }
                    }
                }
                Err(e) => self.pause(&mut retry, &e),
            }
        }
    }

    /// Waits before the next Redis call after an error. Outages are logged once by `Health`;
    /// other errors are bugs worth a line each time.
    fn pause(&self, retry: &mut RetryDelay, e: &StoreError) {
        if !e.is_unavailable() {
            log::error!("fetcher: {e}");
        }
        self.shutdown.sleep(retry.next_delay());
    }
}

struct Worker {
    shared: Arc<Shared>,
    worker_id: String,
    store: Store,
    slot: usize,
    in_flight: Arc<InFlight>,
    abandoned: Arc<AtomicBool>,
    shutdown: Shutdown,
}

impl Worker {
    /// Runs jobs until the fetcher is gone. A worker that finishes a job claims its next one in
    /// the same script call as the acknowledgement, so while the queue is deep it neither waits
    /// for the fetcher nor costs an extra round trip; it asks the fetcher only when idle.
    fn run(mut self, ready: Sender<()>, jobs: Receiver<Claimed>) {
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
            Ok(ids) if !ids.is_empty() => log::info!(
                "job {} ({}) returned to pending unstarted: shutting down",
                job.id,
                job.kind
            ),
            Ok(_) => {}
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
        self.in_flight
            .set(self.slot, Some((job.id.clone(), cancel.clone())));
        log::info!(
            "job {} ({}) started, attempt {}/{}",
            job.id,
            job.kind,
            job.attempt,
            job.max_attempts
        );
        let outcome = self.execute(&job, cancel.clone());
        let elapsed = started.elapsed();
        self.shared
            .metrics
            .processing_duration
            .observe(elapsed.as_secs_f64());
        // A handler that gave up because its deadline passed reports the timeout, whatever it
        // said; one that finished its work late still counts as done.
        let outcome = match outcome {
            Err(e)
                if elapsed >= Duration::from_secs(timeout_secs)
                    && e.kind != ErrorKind::TimedOut =>
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
        let next = self.record(&job, outcome, elapsed);
        // Held until the outcome is stored, so a job waiting out a Redis outage to record its
        // result is never taken for a stranded one.
        self.in_flight.set(self.slot, None);
        next
    }

    /// Runs the handler, turning a panic into a failed attempt so the thread lives on.
    fn execute(&self, job: &Claimed, cancel: Cancellation) -> JobResult {
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
        };
        match catch_unwind(AssertUnwindSafe(|| handler.run(&ctx))) {
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
    fn record(&mut self, job: &Claimed, outcome: JobResult, elapsed: Duration) -> Option<Claimed> {
        let shared = self.shared.clone();
        let (cfg, m) = (&shared.config, &shared.metrics);
        let ms = elapsed.as_millis();
        let wid = self.worker_id.clone();
        let shutdown = self.shutdown.clone();
        // No new work once a stop has begun; the check runs on every retry of the write.
        let claim_next = move || !shutdown.is_triggered();
        let (in_flight, slot) = (self.in_flight.clone(), self.slot);
        match outcome {
            Ok(result) => {
                let result = (!result.is_null()).then(|| result.to_string());
                let ttl = cfg.job_ttl_secs;
                let acked = self.persist(|s| {
                    in_flight.claiming(
                        slot,
                        || s.complete(&wid, job, result.as_deref(), ttl, claim_next()),
                        next_claimed,
                    )
                });
                let next = acked.as_ref().ok().and_then(|(a, _)| a.next.clone());
                match acked.map(|(a, retried)| (a.outcome, retried)) {
                    Ok((true, _)) => {
                        m.jobs_processed.inc();
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
                m.jobs_failed.inc();
                let delay = backoff::delay_ms(job.attempt, cfg.backoff_base_ms, cfg.backoff_max_ms);
                let permanent = err.is_permanent();
                let msg = err.message.clone();
                let cap = cfg.dlq_max_size;
                let acked = self.persist(|s| {
                    in_flight.claiming(
                        slot,
                        || s.fail(&wid, job, &msg, delay, permanent, cap, claim_next()),
                        next_claimed,
                    )
                });
                let next = acked.as_ref().ok().and_then(|(a, _)| a.next.clone());
                match acked.map(|(a, retried)| (a.outcome, retried)) {
                    Ok((FailOutcome::Retry { .. }, _)) => {
                        m.jobs_retried.inc();
                        log::warn!(
                            "job {} ({}) attempt {}/{} failed after {ms} ms: {}; retry in {delay} ms",
                            job.id, job.kind, job.attempt, job.max_attempts, err.message
                        );
                    }
                    Ok((FailOutcome::Dead { evicted }, _)) => {
                        m.jobs_dlq.inc();
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
        mut op: impl FnMut(&mut Store) -> Result<T, StoreError>,
    ) -> Result<(T, bool), Unstored> {
        let mut retry = RetryDelay::default();
        let mut retried = false;
        loop {
            match op(&mut self.store) {
                Ok(v) => return Ok((v, retried)),
                Err(e @ (StoreError::Redis { .. } | StoreError::Corrupt { .. })) => {
                    return Err(Unstored::Refused(e))
                }
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
