//! A job's way through a worker process: reading a record, claiming, waiting for work, the
//! acknowledgements (complete, fail) that also claim the next job, the scheduler's promotion of
//! due jobs, and the hand-back of claimed jobs to pending.

use std::collections::HashMap;
use std::time::Duration;

use super::decode::{claimed_jobs, fail_reply};
use super::record::job_from_record;
use super::scripts::scripts;
use super::{Store, StoreError, COMPLETED_LIST_MAX};
use crate::job::Job;

/// A job handed to this process by [`Store::claim`].
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub id: String,
    pub kind: String,
    pub payload: String,
    pub attempt: u32,
    pub max_attempts: u32,
    pub timeout_secs: Option<u64>,
    /// This claim's number: the acknowledgement presents it, so only this claim can record an
    /// outcome (a late outcome of an earlier claim of the same job changes nothing).
    pub claim: String,
}

/// What an acknowledgement did, and the worker's next job if it claimed one.
#[derive(Debug, Clone, PartialEq)]
pub struct Acked<T> {
    pub outcome: T,
    pub next: Option<Claimed>,
}

/// What [`Store::fail`] did with a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailOutcome {
    /// Scheduled to run again at this time (µs since the epoch).
    Retry { due_us: i64 },
    /// Moved to the dead-letter queue; `evicted` are the oldest DLQ entries dropped past the cap.
    Dead { evicted: Vec<String> },
    /// This process no longer held the job; nothing was written.
    NotOwned,
}

/// What [`Store::promote`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promoted {
    pub moved: u64,
    /// When the next scheduled job is due, if any (µs since the epoch, Redis's clock).
    pub next_due_us: Option<i64>,
    /// Redis's clock when the script ran (µs since the epoch).
    pub now_us: i64,
}

impl Store {
    /// A job's record, or None when there is no such job (or its record has expired).
    pub fn job(&mut self, id: &str) -> Result<Option<Job>, StoreError> {
        let key = self.keys.job(id);
        let rec: HashMap<String, String> = self
            .conn
            .run_idempotent(|c| redis::cmd("HGETALL").arg(&key).query(c))?;
        if rec.is_empty() {
            return Ok(None);
        }
        job_from_record(id, &rec).map(Some)
    }

    /// Claims up to `max` pending jobs for `worker`; an empty answer means pending is empty (or
    /// held only ids without records, which are dropped). None when `worker` is not registered
    /// (its heartbeat key is missing): it must beat before it claims, or a job it claimed and
    /// then died with would never be recovered.
    pub fn claim(&mut self, worker: &str, max: usize) -> Result<Option<Vec<Claimed>>, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().claim.prepare_invoke();
        inv.key(&k.pending)
            .key(k.running(worker))
            .key(&k.counters)
            .key(k.heartbeat(worker))
            .arg(k.prefix())
            .arg(max);
        let flat: Vec<String> = self.conn.run(|c| inv.invoke(c))?;
        Ok(match flat.split_first() {
            Some((registered, jobs)) if registered == "1" => Some(claimed_jobs(jobs)),
            _ => None,
        })
    }

    /// Blocks until pending has a job or `timeout` passes; returns whether it has one.
    ///
    /// `BLMOVE pending pending LEFT LEFT` rotates the list onto itself, which changes nothing:
    /// it is a blocking "wait until not empty". The claim itself stays one atomic script, so a
    /// crash between waking and claiming cannot strand a job.
    pub fn wait_for_pending(&mut self, timeout: Duration) -> Result<bool, StoreError> {
        let k = &self.keys.pending;
        let got: Option<String> = self.conn.run_idempotent(|c| {
            redis::cmd("BLMOVE")
                .arg(k)
                .arg(k)
                .arg("LEFT")
                .arg("LEFT")
                .arg(timeout.as_secs_f64())
                .query(c)
        })?;
        Ok(got.is_some())
    }

    /// Marks a job this process ran as completed, storing `result` (JSON) if any, and when
    /// `claim_next` is set claims the worker's next job in the same round trip.
    /// `Acked::outcome` is false when this claim of the job was no longer this process's to
    /// finish. `job` is the claim being acknowledged (its id and claim number).
    pub fn complete(
        &mut self,
        worker: &str,
        job: &Claimed,
        result: Option<&str>,
        ttl_secs: u64,
        claim_next: bool,
    ) -> Result<Acked<bool>, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().complete.prepare_invoke();
        inv.key(k.running(worker))
            .key(&k.completed)
            .key(&k.counters)
            .key(k.job(&job.id))
            .key(&k.pending)
            .key(k.heartbeat(worker))
            .arg(&job.id)
            .arg(result.unwrap_or(""))
            .arg(ttl_secs)
            .arg(COMPLETED_LIST_MAX)
            .arg(k.prefix())
            .arg(u8::from(claim_next))
            .arg(&job.claim);
        let reply: Vec<String> = self.conn.run(|c| inv.invoke(c))?;
        Ok(Acked {
            outcome: reply.first().map(String::as_str) == Some("1"),
            next: claimed_jobs(reply.get(1..).unwrap_or_default()).pop(),
        })
    }

    /// Records a failed attempt: retry after `retry_delay_ms`, or the dead-letter queue (capped
    /// at `dlq_cap` entries) when the attempts are spent or `permanent` is set. When `claim_next`
    /// is set, claims the worker's next job in the same round trip.
    #[allow(clippy::too_many_arguments)]
    pub fn fail(
        &mut self,
        worker: &str,
        job: &Claimed,
        error: &str,
        retry_delay_ms: u64,
        permanent: bool,
        dlq_cap: u64,
        claim_next: bool,
    ) -> Result<Acked<FailOutcome>, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().fail.prepare_invoke();
        inv.key(k.running(worker))
            .key(&k.scheduled)
            .key(&k.dlq)
            .key(&k.counters)
            .key(k.job(&job.id))
            .key(&k.pending)
            .key(k.heartbeat(worker))
            .arg(&job.id)
            .arg(error)
            .arg(retry_delay_ms)
            .arg(if permanent { "1" } else { "0" })
            .arg(k.prefix())
            .arg(dlq_cap)
            .arg(u8::from(claim_next))
            .arg(&job.claim);
        let reply: Vec<String> = self.conn.run(|c| inv.invoke(c))?;
        Ok(fail_reply(&reply))
    }

    /// Moves up to `limit` due scheduled jobs into pending.
    pub fn promote(&mut self, limit: usize) -> Result<Promoted, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().promote.prepare_invoke();
        inv.key(&k.scheduled)
            .key(&k.pending)
            .arg(k.prefix())
            .arg(limit);
        let (moved, next, now): (u64, i64, i64) = self.conn.run(|c| inv.invoke(c))?;
        Ok(Promoted {
            moved,
            next_due_us: (next >= 0).then_some(next),
            now_us: now,
        })
    }

    /// Puts every job `worker` holds back at the front of pending; returns their ids.
    pub fn requeue_all(&mut self, worker: &str) -> Result<Vec<String>, StoreError> {
        self.requeue_script(worker, "all", &[])
    }

    /// Puts the jobs `ids` back at the front of pending if `worker` still holds them (jobs a
    /// lost reply left in its running list); returns the ids moved.
    pub fn requeue(&mut self, worker: &str, ids: &[String]) -> Result<Vec<String>, StoreError> {
        self.requeue_script(worker, "ids", ids)
    }

    fn requeue_script(
        &mut self,
        worker: &str,
        mode: &str,
        ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().requeue.prepare_invoke();
        inv.key(k.running(worker))
            .key(&k.pending)
            .key(&k.counters)
            .arg(k.prefix())
            .arg(mode)
            .arg(ids);
        self.conn.run(|c| inv.invoke(c))
    }
}
