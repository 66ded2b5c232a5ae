//! The calls of a worker process on [`Stores`]: claims from the partitions in turn, and the
//! heartbeat, the maintenance tick (promotion, history), hand-backs and reaping in every
//! partition (outcomes, each to the partition its job was claimed from, are in `acks.rs`). A
//! process beats in each partition, so each one's claims and reaper judge it alone; a
//! partition that fails is passed over, never holding up the others.

use std::time::{Duration, Instant};

use super::jobs::{ClaimBatch, Promoted, Requeued};
use super::liveness::Reaped;
use super::{Selection, StoreError, Stores};

/// How long claims pass over a partition that failed.
const REST: Duration = Duration::from_secs(1);

impl Stores {
    /// Claims up to `max` jobs from the partitions in turn, starting after the one that last
    /// gave a full batch; each claimed job knows its partition. A partition that fails (its
    /// master failing over) or does not know the process yet is passed over: the others' jobs
    /// still run. None or the error only when no partition gave a batch. A partition that
    /// failed is left alone for [`REST`], so that a master that is gone (each connect to it
    /// waiting out its timeout) does not slow every claim of the others.
    ///
    /// `only` names the partitions to ask (None: all). A fetcher woken by some partitions asks
    /// only those: the others have had nothing made ready since its last claim there found
    /// nothing (which registered it there as waiting).
    pub fn claim_in(
        &mut self,
        worker: &str,
        max: usize,
        sel: &Selection,
        only: Option<&[usize]>,
    ) -> Result<Option<ClaimBatch>, StoreError> {
        let n = self.partitions()?;
        if n == 1 {
            return self.parts[0].claim(worker, max, sel);
        }
        let mut all: Option<ClaimBatch> = None;
        let mut failed = None;
        let now = Instant::now();
        let mut asked = 0;
        for k in 0..n {
            let p = (self.turn + k) % n;
            if only.is_some_and(|o| !o.contains(&p)) || self.resting[p].is_some_and(|t| t > now) {
                continue;
            }
            asked += 1;
            let got = all.as_ref().map_or(0, |a| a.jobs.len());
            let mut b = match self.parts[p].claim(worker, max - got, sel) {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) => {
                    if e.is_unavailable() {
                        self.resting[p] = Some(now + REST);
                    }
                    failed.get_or_insert(e);
                    continue;
                }
            };
            b.jobs.iter_mut().for_each(|j| j.part = p);
            let a = all.get_or_insert_with(ClaimBatch::default);
            a.now_us = a.now_us.max(b.now_us);
            a.next_start_us = match (a.next_start_us, b.next_start_us) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            };
            a.events.extend(b.events);
            a.jobs.extend(b.jobs);
            if a.jobs.len() >= max {
                self.turn = (p + 1) % n;
                break;
            }
        }
        if asked == 0 {
            return match only {
                // The partitions that woke it are resting: wait for the next wake.
                Some(_) => Ok(Some(ClaimBatch::default())),
                None => Err(StoreError::unavailable(
                    "every partition's Redis master failed in the last second",
                )),
            };
        }
        match (all, failed) {
            // Nothing claimed while a partition failed: the caller waits and tries again
            // rather than sleeping on wake lists that partition cannot fill.
            (Some(a), Some(e)) if a.jobs.is_empty() => Err(e),
            (None, Some(e)) => Err(e),
            (all, _) => Ok(all),
        }
    }

    /// Due jobs into their queues, in every partition that answers.
    pub fn promote(&mut self, limit: usize) -> Result<Promoted, StoreError> {
        let mut each = self.each(|s| s.promote(limit))?.into_iter();
        let first = each
            .next()
            .ok_or_else(|| StoreError::redis("no partition"))?;
        Ok(each.fold(first, |t, p| Promoted {
            moved: t.moved + p.moved,
            next_due_us: match (t.next_due_us, p.next_due_us) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
            now_us: t.now_us,
        }))
    }

    /// A snapshot in every partition that answers; partition 0's answer (or the first).
    pub fn snapshot_history(&mut self) -> Result<(i64, bool), StoreError> {
        Ok(self.each(|s| s.snapshot_history())?.remove(0))
    }

    pub fn requeue_all(&mut self, worker: &str) -> Result<Requeued, StoreError> {
        Ok(joined(self.each(|s| s.requeue_all(worker))?))
    }

    pub fn requeue(&mut self, worker: &str, ids: &[String]) -> Result<Requeued, StoreError> {
        let answers = self.by_part(ids, |s, g| s.requeue(worker, g))?;
        Ok(joined(answers.into_iter().map(|(_, r)| r)))
    }

    pub fn held(&mut self, worker: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.each(|s| s.held(worker))?.concat())
    }

    /// The beat goes to every partition: each one's claims check it, and each one's reaper.
    /// One failing partition does not keep the beat from the others (whose reapers would
    /// otherwise take this process's jobs back), but is reported, so the beat is retried soon.
    pub fn heartbeat(
        &mut self,
        worker: &str,
        ttl: Duration,
        info: &str,
        serves: Option<&[String]>,
    ) -> Result<(), StoreError> {
        self.every(|s| s.heartbeat(worker, ttl, info, serves))
    }

    pub fn deregister(&mut self, worker: &str) -> Result<(), StoreError> {
        self.every(|s| s.deregister(worker))
    }

    /// The processes any partition knows: one whose reaping failed on one partition is
    /// still listed there, and reaped again.
    pub fn workers(&mut self) -> Result<Vec<String>, StoreError> {
        let mut all = self.each(|s| s.workers())?.concat();
        all.sort();
        all.dedup();
        Ok(all)
    }

    /// A dead process's jobs back, in every partition that answers (one that does not still
    /// lists the process, so a later tick reaps it there).
    pub fn reap(
        &mut self,
        worker: &str,
        error: &str,
        dlq_cap: u64,
    ) -> Result<Option<Reaped>, StoreError> {
        let mut all: Option<Reaped> = None;
        for r in self
            .each(|s| s.reap(worker, error, dlq_cap))?
            .into_iter()
            .flatten()
        {
            let t = all.get_or_insert_with(Reaped::default);
            t.requeued.extend(r.requeued);
            t.dead.extend(r.dead);
            t.evicted.extend(r.evicted);
            t.placement.extend(r.placement);
            t.events.extend(r.events);
        }
        Ok(all)
    }
}

/// The hand-backs of several partitions as one.
fn joined(parts: impl IntoIterator<Item = Requeued>) -> Requeued {
    let mut all = Requeued::default();
    for r in parts {
        all.ids.extend(r.ids);
        all.events.extend(r.events);
    }
    all
}
