//! A job's way through a worker process: reading a record, claiming, waiting for work, the
//! acknowledgements (complete, fail) that also claim the next job, the scheduler's promotion of
//! due jobs, and the hand-back of claimed jobs to pending.

use std::collections::HashMap;
use std::time::Duration;

#[cfg(test)]
use super::acks::{Ack, Outcome};
use super::decode::claimed_jobs;
use super::ends::{counted_events, with_events, JobEvent};
use super::record::job_from_record;
use super::scripts::scripts;
use super::{Store, StoreError};
use crate::config::QueueOrder;
use crate::job::{Job, JobStatus, Priority, Waiting};

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
    pub queue: String,
    /// Its fairness group, empty when none.
    pub group: String,
    pub priority: Priority,
    /// When it became ready to run (µs since the epoch): the wait until its start is
    /// `job_wait_seconds`.
    pub ready_since_us: i64,
    /// The jobs it depends on, whose results its handler sees.
    pub parents: Vec<String>,
    /// The trace it was submitted in, if any.
    pub trace: Option<crate::job::Trace>,
    /// The partition it was claimed from (see `partitions.rs`), where its outcome goes.
    pub part: usize,
}

impl Claimed {
    /// Its type as its log lines name it, with the trace of the attempt when it has one.
    pub fn kind_label(&self) -> crate::job::trace::KindLabel<'_> {
        crate::job::trace::KindLabel(
            &self.kind,
            self.trace.as_ref().map(|t| t.traceparent.as_str()),
        )
    }
}

/// What one claim call handed over.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClaimBatch {
    pub jobs: Vec<Claimed>,
    /// Redis's clock during the claim (µs).
    pub now_us: i64,
    /// When a rate limit that held a job back lets the next one start (µs), if one did.
    pub next_start_us: Option<i64>,
    /// Jobs that ended on the way (past their start deadline, and what that settled).
    pub events: Vec<JobEvent>,
}

/// Which queues a process claims from, and how it picks among them (see `claim()` in
/// `lua/flow.lua` and `next_fast()` in `lua/common.lua`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every queue that exists, equal weights.
    All,
    /// A first queue per job picked with probability proportional to its weight, then the
    /// others: an idle queue never delays a busy one.
    Weighted(Vec<(String, u32)>),
    /// Always the first queue in this order that has a job that can start.
    Strict(Vec<String>),
}

impl Selection {
    /// The selection QUEUES and QUEUE_ORDER ask for.
    pub fn from_config(queues: &[(String, u32)], order: QueueOrder) -> Selection {
        match (queues.is_empty(), order) {
            (true, _) => Selection::All,
            (false, QueueOrder::Strict) => {
                Selection::Strict(queues.iter().map(|(q, _)| q.clone()).collect())
            }
            (false, QueueOrder::Weighted) => Selection::Weighted(queues.to_vec()),
        }
    }

    /// The script arguments: mode, a fresh random seed, then queue, weight, ...
    pub(super) fn args(&self) -> Vec<String> {
        let seed = rand::random::<u32>() % 2_147_483_646 + 1;
        let mut out = Vec::new();
        match self {
            Selection::All => out.extend(["all".to_string(), seed.to_string()]),
            Selection::Weighted(qs) => {
                out.extend(["weighted".to_string(), seed.to_string()]);
                for (q, w) in qs {
                    out.extend([q.clone(), w.to_string()]);
                }
            }
            Selection::Strict(qs) => {
                out.extend(["strict".to_string(), seed.to_string()]);
                for q in qs {
                    out.extend([q.clone(), "1".to_string()]);
                }
            }
        }
        out
    }

    /// The weight of `queue` in this selection: None when the process does not serve it,
    /// 1 for every queue of `All` and `Strict`.
    pub fn weight(&self, queue: &str) -> Option<u32> {
        match self {
            Selection::All => Some(1),
            Selection::Weighted(qs) => qs.iter().find(|(q, _)| q == queue).map(|(_, w)| *w),
            Selection::Strict(qs) => qs.iter().any(|q| q == queue).then_some(1),
        }
    }

    /// The queues named, or None when every queue is served.
    pub fn named(&self) -> Option<Vec<String>> {
        match self {
            Selection::All => None,
            Selection::Weighted(qs) => Some(qs.iter().map(|(q, _)| q.clone()).collect()),
            Selection::Strict(qs) => Some(qs.clone()),
        }
    }
}

/// How a circuit breaker changed with an acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerChange {
    Opened,
    Closed,
}

/// What an acknowledgement did, and the worker's next job if it claimed one.
#[derive(Debug, Clone, PartialEq)]
pub struct Acked<T> {
    pub outcome: T,
    /// The job type's breaker opened or closed with this outcome.
    pub breaker: Option<BreakerChange>,
    pub next: Option<Claimed>,
    /// Jobs that ended or became ready on the way (children of the acknowledged job, jobs
    /// past their start deadline).
    pub events: Vec<JobEvent>,
}

/// What to do with a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Retry after the delay, or the DLQ when the attempts are spent.
    Retry,
    /// The DLQ now.
    Permanent,
    /// Back to scheduled after the delay without using an attempt (up to max_snoozes times).
    Snooze,
}

/// What [`Store::fail`] did with a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailOutcome {
    /// Scheduled to run again at this time (µs since the epoch).
    Retry { due_us: i64 },
    /// Snoozed until this time (µs since the epoch), its attempt given back.
    Snoozed { due_us: i64 },
    /// Moved to the dead-letter queue; `evicted` are the oldest DLQ entries dropped past the cap.
    Dead { evicted: Vec<String> },
    /// Its cancellation had been asked for: it ended cancelled, without a retry.
    Cancelled,
    /// This process no longer held the job; nothing was written.
    NotOwned,
}

/// What [`Store::requeue`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Requeued {
    /// The jobs back in pending.
    pub ids: Vec<String>,
    /// Those whose cancellation had been asked for, ended cancelled instead.
    pub events: Vec<JobEvent>,
}

/// What [`Store::promote`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promoted {
    pub moved: u64,
    /// When the next scheduled job is due, or a breaker's cool-down ends, if any (µs since the
    /// epoch, Redis's clock).
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
        let mut job = job_from_record(id, &rec)?;
        match job.status {
            JobStatus::Pending => job.waiting = self.why_waiting(id)?,
            JobStatus::Waiting => job.waiting = Some(self.waiting_for_parents(&job.parents)?),
            _ => {}
        }
        Ok(Some(job))
    }

    /// Why a waiting job waits: the parents that have not finished yet.
    fn waiting_for_parents(&mut self, parents: &[String]) -> Result<Waiting, StoreError> {
        let mut pipe = redis::pipe();
        for p in parents {
            pipe.cmd("HGET").arg(self.keys.job(p)).arg("status");
        }
        let statuses: Vec<Option<String>> = self.conn.run_idempotent(|c| pipe.query(c))?;
        let open: Vec<&str> = parents
            .iter()
            .zip(&statuses)
            .filter(|(_, s)| {
                s.as_deref()
                    .and_then(|s| s.parse::<JobStatus>().ok())
                    .is_some_and(|s| !s.is_final())
            })
            .map(|(p, _)| p.as_str())
            .collect();
        Ok(Waiting {
            reason: "parents".into(),
            detail: format!(
                "waits for {} of its {} parent(s) to finish: {}",
                open.len(),
                parents.len(),
                open.join(", ")
            ),
            until: None,
        })
    }

    /// Claims up to `max` jobs that may start for `worker` from the queues of `sel`; an empty
    /// batch means none can start now (the process is then registered as waiting, see
    /// [`Store::wait_for_work`]). None when `worker` is not registered (its heartbeat key is
    /// missing): it must beat before it claims, or a job it claimed and then died with would
    /// never be recovered.
    pub fn claim(
        &mut self,
        worker: &str,
        max: usize,
        sel: &Selection,
    ) -> Result<Option<ClaimBatch>, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().claim.prepare_invoke();
        inv.key(k.running(worker))
            .key(&k.counters)
            .key(k.heartbeat(worker))
            .arg(k.prefix())
            .arg(worker)
            .arg(max)
            .arg(sel.args());
        let flat: Vec<String> = self.conn.run(|c| inv.invoke(c))?;
        if flat.first().map(String::as_str) != Some("1") {
            return Ok(None);
        }
        let num = |i: usize| flat.get(i).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        let (events, jobs) = counted_events(&flat, 3);
        Ok(Some(ClaimBatch {
            now_us: num(1),
            next_start_us: Some(num(2)).filter(|&t| t > 0),
            jobs: claimed_jobs(jobs),
            events,
        }))
    }

    /// Blocks until a script may have made work ready for `worker` (a token in its wake list)
    /// or `timeout` passes; returns whether it was woken.
    ///
    /// `BLMOVE wake wake LEFT LEFT` rotates the list onto itself, which changes nothing: it is
    /// a blocking "wait until not empty". The claim step empties the list when it registers the
    /// process as waiting, in the same atomic step as its finding nothing, so a job made ready
    /// in between always leaves a token. The claim itself stays one atomic script, so a crash
    /// between waking and claiming cannot strand a job.
    pub fn wait_for_work(&mut self, worker: &str, timeout: Duration) -> Result<bool, StoreError> {
        let k = self.keys.wake(worker);
        let got: Option<String> = self.conn.run_idempotent(|c| {
            redis::cmd("BLMOVE")
                .arg(&k)
                .arg(&k)
                .arg("LEFT")
                .arg("LEFT")
                .arg(timeout.as_secs_f64().max(0.001))
                .query(c)
        })?;
        Ok(got.is_some())
    }

    /// Marks a job this process ran as completed, storing `result` (JSON) if any, and when
    /// `claim_next` is set claims the worker's next job from `sel` in the same round trip.
    /// Workers record outcomes through `Stores::ack`; this and [`Store::fail`] are the
    /// one-job forms the store's tests use.
    /// `Acked::outcome` is false when this claim of the job was no longer this process's to
    /// finish. `job` is the claim being acknowledged.
    #[cfg(test)]
    pub fn complete(
        &mut self,
        worker: &str,
        job: &Claimed,
        result: Option<&str>,
        ttl_secs: u64,
        claim_next: bool,
        sel: &Selection,
    ) -> Result<Acked<bool>, StoreError> {
        let result = result.map(str::to_owned);
        let ack = Ack::new(job, Outcome::Completed { result, ttl_secs }, claim_next);
        self.only(worker, &ack, sel)?.completed()
    }

    /// Records a failed attempt (`mode`): a retry after `delay_ms`, the dead-letter queue
    /// (capped at `dlq_cap` entries) when the attempts are spent or the failure is permanent,
    /// or a snooze for `delay_ms` that gives the attempt back (at most `max_snoozes` times).
    /// When `claim_next` is set, claims the worker's next job from `sel` in the same round trip.
    #[cfg(test)]
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
        let error = error.to_owned();
        let outcome = Outcome::Failed {
            error,
            delay_ms,
            mode,
            limits,
        };
        self.only(worker, &Ack::new(job, outcome, claim_next), sel)?
            .failed()
    }

    /// The maintenance tick: moves up to `limit` due scheduled jobs into their queues, sends
    /// jobs set aside for their type back when the reason has passed, and serves the layout of
    /// earlier releases (see `lua/promote.lua`).
    pub fn promote(&mut self, limit: usize) -> Result<Promoted, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().promote.prepare_invoke();
        inv.key(&k.counters).arg(k.prefix()).arg(limit);
        let (moved, next, now): (u64, i64, i64) = self.conn.run(|c| inv.invoke(c))?;
        Ok(Promoted {
            moved,
            next_due_us: (next >= 0).then_some(next),
            now_us: now,
        })
    }

    /// Puts every job `worker` holds back at the front of pending; returns their ids, and the
    /// events of those whose cancellation had been asked for (they end cancelled instead).
    pub fn requeue_all(&mut self, worker: &str) -> Result<Requeued, StoreError> {
        self.requeue_script(worker, "all", &[])
    }

    /// Puts the jobs `ids` back at the front of pending if `worker` still holds them (jobs a
    /// lost reply left in its running list), as [`Store::requeue_all`] does.
    pub fn requeue(&mut self, worker: &str, ids: &[String]) -> Result<Requeued, StoreError> {
        self.requeue_script(worker, "ids", ids)
    }

    fn requeue_script(
        &mut self,
        worker: &str,
        mode: &str,
        ids: &[String],
    ) -> Result<Requeued, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().requeue.prepare_invoke();
        inv.key(k.running(worker))
            .key(&k.counters)
            .arg(k.prefix())
            .arg(mode)
            .arg(ids);
        let (ids, events) = with_events(self.conn.run(|c| inv.invoke(c))?);
        Ok(Requeued { ids, events })
    }
}
