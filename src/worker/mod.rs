//! Running jobs: a fetcher thread claims jobs from Redis and hands them over a queue to a fixed
//! pool of worker threads, which run the handler and record the outcome, themselves or, under
//! load, through the committer threads (group commit, `committer.rs`).
//!
//! The fetcher claims only as many jobs as there are idle workers (each idle worker sends a
//! "ready" token), so a process never holds jobs it cannot start: another process with idle
//! workers gets them instead, and a crash strands at most one job per busy worker, plus those
//! on their way to a worker or to the committers.

pub mod backoff;
mod beat;
mod committer;
pub mod cron;
pub mod dispatch;
mod fetcher;
mod handoff;
mod in_flight;
pub mod maintenance;
mod outcome;
mod runner;

use crossbeam_channel::Receiver;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::context::Shared;
use crate::shutdown::Shutdown;
use crate::store::{Claimed, Health};
pub use beat::BeatInfo;
use committer::{Committer, Group};
use fetcher::Fetcher;
pub use in_flight::{InFlight, Snapshot};
use runner::Worker;

/// How long the fetcher blocks waiting for a job; bounds how late it notices a shutdown.
const FETCH_BLOCK: Duration = Duration::from_secs(1);
/// Longest error message stored with a job (and in each of its 20 history entries).
const MAX_ERROR_BYTES: usize = 4096;

/// How long a drain waits for running jobs once Redis is found to be down.
const OUTAGE_DRAIN: Duration = Duration::from_secs(3);
/// Committer threads with group commit: while one waits for Redis, the other gathers the
/// next group, so Redis never idles between groups.
const COMMITTERS: usize = 2;
/// Most jobs claimed in one script call.
const CLAIM_BATCH: usize = 64;

/// The running fetcher and worker threads of one process.
pub struct Pool {
    fetcher: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
    /// Group commit's threads (ACK_BATCH > 1); they end once every worker has and every
    /// outcome handed to them is stored.
    committers: Vec<JoinHandle<()>>,
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
        let (job_tx, job_rx) = handoff::queue::<Claimed>();
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<()>();
        let in_flight = InFlight::new(n, COMMITTERS);
        let abandoned = Arc::new(AtomicBool::new(false));
        // Group commit needs someone to group with.
        let mut committers = Vec::new();
        let group = if shared.config.ack_batch > 1 && n > 1 {
            let (tx, done) = handoff::queue();
            let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            for k in 0..COMMITTERS {
                let c = Committer {
                    shared: shared.clone(),
                    store: shared.backend.open(),
                    worker_id: worker_id.to_string(),
                    in_flight: in_flight.clone(),
                    claim_counter: in_flight.committer(k),
                    abandoned: abandoned.clone(),
                    shutdown: shutdown.clone(),
                    done: done.clone(),
                    calls: calls.clone(),
                    jobs: job_tx.clone(),
                    ready: ready_tx.clone(),
                };
                committers.push(
                    std::thread::Builder::new()
                        .name(format!("jobq-committer-{k}"))
                        .spawn(move || c.run())?,
                );
            }
            Some(Group::new(tx, calls))
        } else {
            None
        };
        let mut workers = Vec::with_capacity(n);
        for i in 0..n {
            let w = Worker {
                shared: shared.clone(),
                worker_id: worker_id.to_string(),
                store: shared.backend.open(),
                group: group.clone(),
                slot: i,
                in_flight: in_flight.clone(),
                abandoned: abandoned.clone(),
                shutdown: shutdown.clone(),
                series: Default::default(),
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
            shared: shared.clone(),
            store: shared.backend.open_blocking(FETCH_BLOCK),
            worker_id: worker_id.to_string(),
            shutdown: shutdown.clone(),
            in_flight: in_flight.clone(),
            selection: shared.selection.clone(),
        };
        let fetcher = std::thread::Builder::new()
            .name("jobq-fetcher".into())
            .spawn(move || fetcher.run(ready_rx, job_tx))?;
        Ok(Pool {
            fetcher,
            workers,
            committers,
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
    /// to finish and the committers to store the outcomes handed to them. Returns how many
    /// workers were still busy when the time ran out; their jobs' handlers are asked to stop,
    /// and the caller puts the jobs back to pending (and any a committer gave up on).
    pub fn drain(self, timeout: Duration, health: &Health) -> usize {
        let mut deadline = Instant::now() + timeout;
        // The time left, if any. While Redis is down no outcome can be stored, so waiting the
        // full timeout would only delay the exit: finishing jobs get a few seconds, then the
        // drain stops. Their jobs stay in this process's running list and are recovered once
        // its heartbeat expires.
        let left = |deadline: &mut Instant| {
            let now = Instant::now();
            if !health.is_up() {
                *deadline = (*deadline).min(now + OUTAGE_DRAIN);
            }
            Some(deadline.saturating_duration_since(now)).filter(|d| !d.is_zero())
        };
        let _ = self.fetcher.join();
        let total = self.workers.len();
        let mut finished = 0;
        while finished < total {
            let Some(wait) = left(&mut deadline) else {
                break;
            };
            match self
                .done_rx
                .recv_timeout(wait.min(Duration::from_millis(250)))
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
            // The workers are gone; the outcomes they handed over are stored within the
            // drain's time, or given up on (their jobs are put back to pending after it).
            for c in &self.committers {
                while !c.is_finished() {
                    if left(&mut deadline).is_none() {
                        self.abandoned.store(true, Ordering::SeqCst);
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
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
