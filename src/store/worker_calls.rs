//! The calls of a worker process on [`Stores`]: claims from the partitions in turn, each
//! outcome to the partition its job was claimed from, and the heartbeat, promotion, hand-backs
//! and reaping in every partition (a process beats in each, so each one's claims and reaper
//! judge it alone).

use std::time::Duration;

use super::jobs::{Acked, ClaimBatch, Claimed, FailMode, FailOutcome, Promoted, Requeued};
use super::liveness::Reaped;
use super::{Selection, StoreError, Stores};

impl Stores {
    /// Claims up to `max` jobs from the partitions in turn, starting after the one that last
    /// gave a full batch; each claimed job knows its partition.
    pub fn claim(
        &mut self,
        worker: &str,
        max: usize,
        sel: &Selection,
    ) -> Result<Option<ClaimBatch>, StoreError> {
        let n = self.partitions()?;
        if n == 1 {
            return self.parts[0].claim(worker, max, sel);
        }
        let mut all = ClaimBatch::default();
        for k in 0..n {
            let p = (self.turn + k) % n;
            let Some(mut b) = self.parts[p].claim(worker, max - all.jobs.len(), sel)? else {
                return Ok(None);
            };
            b.jobs.iter_mut().for_each(|j| j.part = p);
            all.now_us = all.now_us.max(b.now_us);
            all.next_start_us = match (all.next_start_us, b.next_start_us) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            all.events.extend(b.events);
            all.jobs.extend(b.jobs);
            if all.jobs.len() >= max {
                self.turn = (p + 1) % n;
                break;
            }
        }
        Ok(Some(all))
    }

    pub fn complete(
        &mut self,
        worker: &str,
        job: &Claimed,
        result: Option<&str>,
        ttl_secs: u64,
        claim_next: bool,
        sel: &Selection,
    ) -> Result<Acked<bool>, StoreError> {
        let mut a =
            self.parts[job.part].complete(worker, job, result, ttl_secs, claim_next, sel)?;
        if let Some(next) = &mut a.next {
            next.part = job.part;
        }
        Ok(a)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn fail(
        &mut self,
        worker: &str,
        job: &Claimed,
        error: &str,
        delay_ms: u64,
        mode: FailMode,
        limits: (u64, u32),
        claim_next: bool,
        sel: &Selection,
    ) -> Result<Acked<FailOutcome>, StoreError> {
        let mut a = self.parts[job.part]
            .fail(worker, job, error, delay_ms, mode, limits, claim_next, sel)?;
        if let Some(next) = &mut a.next {
            next.part = job.part;
        }
        Ok(a)
    }

    pub fn promote(&mut self, limit: usize) -> Result<Promoted, StoreError> {
        let mut total: Option<Promoted> = None;
        for s in self.all()? {
            let p = s.promote(limit)?;
            total = Some(match total {
                None => p,
                Some(t) => Promoted {
                    moved: t.moved + p.moved,
                    next_due_us: match (t.next_due_us, p.next_due_us) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    },
                    now_us: t.now_us,
                },
            });
        }
        total.ok_or_else(|| StoreError::redis("no partition"))
    }

    pub fn requeue_all(&mut self, worker: &str) -> Result<Requeued, StoreError> {
        let mut all = Requeued::default();
        for s in self.all()? {
            let r = s.requeue_all(worker)?;
            all.ids.extend(r.ids);
            all.events.extend(r.events);
        }
        Ok(all)
    }

    pub fn requeue(&mut self, worker: &str, ids: &[String]) -> Result<Requeued, StoreError> {
        let mut all = Requeued::default();
        for (_, r) in self.by_part(ids, |s, g| s.requeue(worker, g))? {
            all.ids.extend(r.ids);
            all.events.extend(r.events);
        }
        Ok(all)
    }

    pub fn held(&mut self, worker: &str) -> Result<Vec<String>, StoreError> {
        let mut all = Vec::new();
        for s in self.all()? {
            all.extend(s.held(worker)?);
        }
        Ok(all)
    }

    /// The beat goes to every partition: each one's claims check it, and each one's reaper.
    pub fn heartbeat(
        &mut self,
        worker: &str,
        ttl: Duration,
        info: &str,
        serves: Option<&[String]>,
    ) -> Result<(), StoreError> {
        for s in self.all()? {
            s.heartbeat(worker, ttl, info, serves)?;
        }
        Ok(())
    }

    pub fn deregister(&mut self, worker: &str) -> Result<(), StoreError> {
        for s in self.all()? {
            s.deregister(worker)?;
        }
        Ok(())
    }

    /// The processes any partition knows: one whose reaping failed on one partition is
    /// still listed there, and reaped again.
    pub fn workers(&mut self) -> Result<Vec<String>, StoreError> {
        let mut all = Vec::new();
        for s in self.all()? {
            all.extend(s.workers()?);
        }
        all.sort();
        all.dedup();
        Ok(all)
    }

    pub fn reap(
        &mut self,
        worker: &str,
        error: &str,
        dlq_cap: u64,
    ) -> Result<Option<Reaped>, StoreError> {
        let mut all: Option<Reaped> = None;
        for s in self.all()? {
            if let Some(r) = s.reap(worker, error, dlq_cap)? {
                let t = all.get_or_insert_with(Reaped::default);
                t.requeued.extend(r.requeued);
                t.dead.extend(r.dead);
                t.evicted.extend(r.evicted);
                t.placement.extend(r.placement);
                t.events.extend(r.events);
            }
        }
        Ok(all)
    }
}
