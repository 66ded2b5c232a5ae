//! The fetcher thread: claims as many jobs as there are idle workers (each idle worker sends a
//! "ready" token) from the queues this process serves and hands them over the channel; when
//! no job can start it waits in `BLMOVE` on its wake list, at most until a rate limit frees.
//!
//! With several partitions (QUEUE_PARTITIONS) each has its own wake list, possibly on its own
//! Redis master: one waker thread per partition blocks on it and tells the fetcher, which
//! waits for any of them.

use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::handoff::Tx;
use super::{InFlight, CLAIM_BATCH, FETCH_BLOCK};
use crate::context::{note_job_events, Shared};
use crate::shutdown::{RetryDelay, Shutdown};
use crate::store::{Claimed, Selection, StoreError, Stores};

pub(super) struct Fetcher {
    pub(super) shared: Arc<Shared>,
    pub(super) store: Stores,
    pub(super) worker_id: String,
    pub(super) shutdown: Shutdown,
    pub(super) in_flight: Arc<InFlight>,
    pub(super) selection: Selection,
}

/// The waker threads of a fetcher serving several partitions, and the channel they tell it on.
struct Wakers {
    /// The partition each wake came from.
    woken: Receiver<usize>,
    threads: Vec<JoinHandle<()>>,
}

impl Fetcher {
    pub(super) fn run(mut self, ready: Receiver<()>, jobs: Tx<Claimed>) {
        let mut idle = 0usize;
        let mut retry = RetryDelay::default();
        let mut unregistered = false;
        let me = self.in_flight.fetcher();
        let mut wakers: Option<Wakers> = None;
        // The partitions that woke the fetcher, when the last claim found nothing: the next
        // claim asks only them.
        let mut woken: Option<Vec<usize>> = None;
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
            let sel = &self.selection;
            let only = woken.take();
            let claimed = self.in_flight.claiming(
                me,
                || store.claim_in(wid, n, sel, only.as_deref()),
                |r| match r {
                    Ok(Some(batch)) => batch.jobs.iter().map(|j| j.id.clone()).collect(),
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
                Ok(Some(batch)) => {
                    retry.reset();
                    note_job_events(&self.shared, &batch.events);
                    if std::mem::take(&mut unregistered) {
                        log::info!("process {} is registered again", self.worker_id);
                    }
                    if batch.jobs.is_empty() {
                        let until_start = batch
                            .next_start_us
                            .map(|t| Duration::from_micros((t - batch.now_us).max(0) as u64))
                            .filter(|d| *d < FETCH_BLOCK);
                        match until_start {
                            // A rate limit lets the next job start soon: sleep here, to the
                            // moment. Redis ends a blocking wait only on its own timer (every
                            // 100 ms at the default hz), which would slow a 50/s limit to 10/s.
                            Some(d) => {
                                self.shutdown.sleep(d);
                            }
                            None => match self.wait_for_work(&mut wakers) {
                                Ok(w) => woken = w,
                                Err(e) => self.pause(&mut retry, &e),
                            },
                        }
                    }
                    for job in batch.jobs {
                        idle -= 1;
                        // A worker is waiting for this job (it sent a ready token). Were every
                        // worker gone (only at shutdown), the drain returns it to pending.
                        jobs.send(job);
                    }
                }
                Err(e) => self.pause(&mut retry, &e),
            }
        }
        for t in wakers.into_iter().flat_map(|w| w.threads) {
            let _ = t.join();
        }
    }

    /// Waits until a script may have made work ready here, at most FETCH_BLOCK: on the wake
    /// list itself with one partition, else through the waker threads (started on first use).
    /// Returns the partitions that woke it (None: look at all of them).
    fn wait_for_work(
        &mut self,
        wakers: &mut Option<Wakers>,
    ) -> Result<Option<Vec<usize>>, StoreError> {
        let n = self.store.partitions()?;
        if n == 1 {
            return self
                .store
                .wait_for_work(&self.worker_id, FETCH_BLOCK)
                .map(|_| None);
        }
        let w = match wakers {
            Some(w) => w,
            None => wakers.insert(self.start_wakers(n)?),
        };
        match w.woken.recv_timeout(FETCH_BLOCK) {
            Ok(p) => {
                let mut woken: Vec<usize> = std::iter::once(p).chain(w.woken.try_iter()).collect();
                woken.sort_unstable();
                woken.dedup();
                Ok(Some(woken))
            }
            // Nothing for a while: the next claim looks everywhere, as a safety net.
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => {
                Err(StoreError::unavailable("the waker threads have stopped"))
            }
        }
    }

    fn start_wakers(&self, n: usize) -> Result<Wakers, StoreError> {
        let (tx, woken) = crossbeam_channel::unbounded::<usize>();
        let mut threads = Vec::with_capacity(n);
        for p in 0..n {
            let mut store = self.shared.backend.open_blocking(FETCH_BLOCK);
            // The layout the fetcher has read: every partition's store is there from now on.
            store.partitions()?;
            let (tx, worker, shutdown) =
                (tx.clone(), self.worker_id.clone(), self.shutdown.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("jobq-waker-{p}"))
                .spawn(move || {
                    let mut retry = RetryDelay::default();
                    while !shutdown.is_triggered() {
                        match store.part(p).take_wake(&worker, FETCH_BLOCK) {
                            Ok(true) => {
                                retry.reset();
                                if tx.send(p).is_err() {
                                    return;
                                }
                            }
                            Ok(false) => retry.reset(),
                            // Outages are logged once by `Health`.
                            Err(_) => {
                                shutdown.sleep(retry.next_delay());
                            }
                        }
                    }
                })
                .map_err(|e| {
                    StoreError::unavailable(format!("cannot start a waker thread: {e}"))
                })?;
            threads.push(spawned);
        }
        Ok(Wakers { woken, threads })
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
