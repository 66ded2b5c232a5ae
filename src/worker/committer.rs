//! Group commit of the workers' outcomes (ACK_BATCH > 1): the committer threads, and
//! [`Group`], the workers' side of it.
//!
//! A worker that finds the committers idle (nothing queued, no call in flight) and no other
//! worker doing the same records its own outcome, as with ACK_BATCH=1, so light load costs no
//! hand-over. Otherwise it hands the finished job over and takes its next job from the job
//! queue without waiting. A committer takes every outcome waiting at that moment (at most
//! ACK_BATCH) and records them in one script call per partition (`store/acks.rs`), which also
//! claims a next job for each; then it reports each outcome (counters, log line) and puts each
//! next job in the job queue, or, for an outcome that claimed none, asks the fetcher for one.
//! Nothing waits for a group to fill: outcomes that arrive while a call is in flight form the
//! next group. On a deep queue no thread sleeps and wakes per job, which on a small machine
//! costs as much CPU as Redis's own work.
//!
//! A finished job stays held (`InFlight::acking`) and in the running list until its outcome
//! is stored, so a crash before that returns it to pending like any running job, and the
//! counters follow Redis.

use crossbeam_channel::Sender;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::handoff::{Empty, Rx, Tx};
use super::outcome::{report, Done, Unstored};
use super::runner::{next_claimed, settled};
use super::InFlight;
use crate::context::Shared;
use crate::shutdown::{RetryDelay, Shutdown};
use crate::store::{Ack, AckReply, Claimed, Stores};

/// A worker's side of group commit.
#[derive(Clone)]
pub(super) struct Group {
    done: Tx<(Ack, Done)>,
    /// Committer calls in flight.
    calls: Arc<AtomicUsize>,
    /// A worker is recording its own outcome.
    direct: Arc<AtomicBool>,
}

impl Group {
    /// A group to which the committers of `done` report their calls in `calls`.
    pub(super) fn new(done: Tx<(Ack, Done)>, calls: Arc<AtomicUsize>) -> Group {
        Group {
            done,
            calls,
            direct: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether the asking worker should record its own outcome: the committers are idle and
    /// no other worker is doing so. If so, [`Group::direct_done`] must follow.
    pub(super) fn take_direct(&self) -> bool {
        self.calls.load(Ordering::SeqCst) == 0
            && self.done.is_empty()
            && self
                .direct
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }

    pub(super) fn direct_done(&self) {
        self.direct.store(false, Ordering::SeqCst);
    }

    /// Hands a finished job to the committers, which outlive the workers.
    pub(super) fn hand(&self, ack: Ack, done: Done) {
        self.done.send((ack, done));
    }
}

pub(super) struct Committer {
    pub(super) shared: Arc<Shared>,
    pub(super) store: Stores,
    pub(super) worker_id: String,
    pub(super) in_flight: Arc<InFlight>,
    /// Its claim counter in `in_flight`.
    pub(super) claim_counter: usize,
    pub(super) abandoned: Arc<AtomicBool>,
    pub(super) shutdown: Shutdown,
    /// The finished jobs, from the workers.
    pub(super) done: Rx<(Ack, Done)>,
    /// Calls in flight, this committer's and the others' (see [`Group::take_direct`]).
    pub(super) calls: Arc<AtomicUsize>,
    /// Next jobs, to the workers.
    pub(super) jobs: Tx<Claimed>,
    /// "A worker waits for a job": to the fetcher.
    pub(super) ready: Sender<()>,
}

impl Committer {
    /// Records outcomes until every worker is gone and none is left.
    pub(super) fn run(mut self) {
        let max = self.shared.config.ack_batch;
        let mut batch = Vec::with_capacity(max);
        loop {
            match self.done.recv_timeout(Duration::from_secs(1)) {
                Ok(first) => batch.push(first),
                Err(Empty::Timeout) => continue,
                Err(Empty::Closed) => return,
            }
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.done.take(max - 1, &mut batch);
            self.commit(std::mem::take(&mut batch));
            self.calls.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Stores `batch`'s outcomes, retrying those whose failure can heal (see
    /// `runner::settled`) until they are stored or the drain is abandoned, and reports each.
    fn commit(&mut self, batch: Vec<(Ack, Done)>) {
        self.shared
            .metrics
            .ack_batch_size
            .observe(batch.len() as f64);
        let (mut acks, mut dones): (Vec<Ack>, Vec<Done>) = batch.into_iter().unzip();
        let mut retry = RetryDelay::default();
        let mut retried = false;
        let me = self.claim_counter;
        while !acks.is_empty() {
            // No new work once a stop has begun; asked again on every try.
            let claim_next = !self.shutdown.is_triggered();
            acks.iter_mut().for_each(|a| a.claim_next = claim_next);
            let (store, wid) = (&mut self.store, &self.worker_id);
            let answers = self.in_flight.claiming(
                me,
                || store.ack(wid, &acks, &self.shared.selection),
                |rs| rs.iter().flat_map(next_claimed).collect(),
            );
            let mut again = (Vec::new(), Vec::new());
            for ((ack, done), answer) in acks.into_iter().zip(dones).zip(answers) {
                match settled(answer, retried, &self.abandoned) {
                    Some(settled) => self.finish(done, settled),
                    None => {
                        again.0.push(ack);
                        again.1.push(done);
                    }
                }
            }
            (acks, dones) = again;
            if !acks.is_empty() {
                retried = true;
                std::thread::sleep(retry.next_delay());
            }
        }
    }

    /// Reports one outcome and lets its job go; passes its next job to the workers, or asks
    /// the fetcher for one when it claimed none.
    fn finish(&self, done: Done, answer: Result<(AckReply, bool), Unstored>) {
        let next = report(&self.shared, &done, answer);
        self.in_flight.acked(&done.job.id);
        match next {
            // If every worker is gone (the end of the drain), the job stays in the running
            // list, which the drain puts back to pending.
            Some(job) => self.jobs.send(job),
            // The fetcher is gone once the stop has begun: nothing more to start then.
            None => {
                let _ = self.ready.send(());
            }
        }
    }
}
