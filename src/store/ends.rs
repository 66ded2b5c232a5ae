//! The ends of a job that are not its handler's outcome, and what follows them: cancellation
//! (by id, by filter, a workflow's nodes), start deadlines, workflows' reads, and the events the
//! scripts report when a job ends or becomes ready on the way (`lua/finish.lua`).

use super::scripts::scripts;
use super::{JobFilter, Store, StoreError};

/// What happened to a job on the way of another step, as the scripts report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEvent {
    pub kind: EventKind,
    pub id: String,
    pub job_type: String,
    pub queue: String,
    /// For a cancellation, the stage the job was in (`pending`, `scheduled`, `waiting`,
    /// `running`); else a few words of why.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Ended cancelled.
    Cancelled,
    /// Its start deadline passed before it started; it ended expired.
    Expired,
    /// A waiting job whose parents have all finished became pending.
    Ready,
}

/// Events as the scripts list them: five entries each (kind, id, type, queue, detail).
pub fn events(flat: &[String]) -> Vec<JobEvent> {
    flat.chunks_exact(5)
        .filter_map(|c| {
            let kind = match c[0].as_str() {
                "cancelled" => EventKind::Cancelled,
                "expired" => EventKind::Expired,
                "ready" => EventKind::Ready,
                _ => return None,
            };
            Some(JobEvent {
                kind,
                id: c[1].clone(),
                job_type: c[2].clone(),
                queue: c[3].clone(),
                detail: c[4].clone(),
            })
        })
        .collect()
}

/// A count `n` at `flat[i]` followed by `n` events: the events and what follows them.
pub fn counted_events(flat: &[String], i: usize) -> (Vec<JobEvent>, &[String]) {
    let n = flat
        .get(i)
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let rest = flat.get(i + 1..).unwrap_or_default();
    let (ev, rest) = rest.split_at((n * 5).min(rest.len()));
    (events(ev), rest)
}

/// What a cancellation did to one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It was pending, scheduled or waiting, and has ended cancelled.
    Cancelled,
    /// It is running: the process that runs it has been told to stop it.
    Cancelling,
    /// It had already ended with this status.
    Ended(String),
    /// No such job.
    Missing,
}

/// One node of a workflow, as `GET /workflows/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowNode {
    pub node_ref: String,
    pub id: String,
    /// Empty when its record has expired.
    pub status: String,
    pub job_type: String,
    pub parents: Vec<String>,
    pub error: String,
}

/// A workflow's record and nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    pub created_at_us: i64,
    /// Nodes not finished yet.
    pub left: i64,
    pub nodes: Vec<WorkflowNode>,
}

/// Splits a script's answer at its first `|`: what comes before, and the events after.
pub(super) fn with_events(flat: Vec<String>) -> (Vec<String>, Vec<JobEvent>) {
    match flat.iter().position(|v| v == "|") {
        Some(i) => (flat[..i].to_vec(), events(&flat[i + 1..])),
        None => (flat, Vec::new()),
    }
}

impl Store {
    /// Cancels the jobs `ids` (see `lua/cancel.lua`): one outcome per id, in order, and the
    /// events of every job that ended (the descendants a cancellation took along included).
    pub fn cancel(
        &mut self,
        ids: &[String],
    ) -> Result<(Vec<CancelOutcome>, Vec<JobEvent>), StoreError> {
        let k = &self.keys;
        let mut inv = scripts().cancel.prepare_invoke();
        inv.key(&k.counters)
            .arg(k.prefix())
            .arg(self.job_ttl_secs)
            .arg("ids")
            .arg(ids);
        let flat: Vec<String> = self.conn.run(|c| inv.invoke(c))?;
        let (pairs, ev) = with_events(flat);
        let outcomes = pairs
            .chunks_exact(2)
            .map(|c| match c[1].as_str() {
                "cancelled" => CancelOutcome::Cancelled,
                "cancelling" => CancelOutcome::Cancelling,
                "missing" => CancelOutcome::Missing,
                other => {
                    CancelOutcome::Ended(other.strip_prefix("ended:").unwrap_or(other).to_string())
                }
            })
            .collect();
        Ok((outcomes, ev))
    }

    /// Cancels (or with `dry_run` only counts) at most `most` jobs that `filter` selects among
    /// those that have not ended (its statuses among `pending`, `scheduled`, `waiting`,
    /// `running`). Walks the queues' lists and sets, so a job pending for longer than the
    /// journal keeps is found too. Returns how many matched, whether more were left, Redis's
    /// clock (µs) and the events.
    pub fn cancel_matching(
        &mut self,
        filter: &JobFilter,
        dry_run: bool,
        most: usize,
    ) -> Result<(u64, bool, i64, Vec<JobEvent>), StoreError> {
        let k = &self.keys;
        let mut inv = scripts().cancel.prepare_invoke();
        inv.key(&k.counters)
            .arg(k.prefix())
            .arg(self.job_ttl_secs)
            .arg("filter")
            .arg(filter.queue.as_deref().unwrap_or_default())
            .arg(filter.job_type.as_deref().unwrap_or_default())
            .arg(filter.group.as_deref().unwrap_or_default())
            .arg(filter.statuses.join(","))
            .arg(u8::from(dry_run))
            .arg(most);
        filter.cancel_args(&mut inv);
        let flat: Vec<String> = self.conn.run(|c| inv.invoke(c))?;
        let (head, ev) = with_events(flat);
        let num = |i: usize| head.get(i).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        Ok((num(0) as u64, num(1) == 1, num(2), ev))
    }

    /// A workflow's record and its nodes, or None when there is no such workflow (or it has
    /// expired).
    pub fn workflow(&mut self, id: &str) -> Result<Option<Workflow>, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().workflow.prepare_invoke();
        // Declared for a Redis Cluster's routing only: the script reads the prefix's keys.
        inv.key(&k.counters).arg(k.prefix()).arg(id);
        let flat: Vec<String> = self.conn.run(|c| inv.invoke(c))?;
        if flat.len() < 3 {
            return Ok(None);
        }
        let nodes = flat[3..]
            .chunks_exact(6)
            .map(|c| WorkflowNode {
                node_ref: c[0].clone(),
                id: c[1].clone(),
                status: c[2].clone(),
                job_type: c[3].clone(),
                parents: c[4]
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                error: c[5].clone(),
            })
            .collect();
        Ok(Some(Workflow {
            created_at_us: flat[0].parse().unwrap_or(0),
            left: flat[1].parse().unwrap_or(0),
            nodes,
        }))
    }

    /// Which of `ids` (jobs this process runs) have had their cancellation asked for.
    pub fn cancel_requested(&mut self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // SISMEMBER per id, not SMISMEMBER: that needs Redis 6.2.
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("SISMEMBER").arg(&self.keys.cancelling).arg(id);
        }
        let flags: Vec<bool> = self.conn.run_idempotent(|c| pipe.query(c))?;
        Ok(ids
            .iter()
            .zip(flags)
            .filter(|(_, f)| *f)
            .map(|(id, _)| id.clone())
            .collect())
    }

    /// The results of a job's parents `ids`, named by their workflow ref when they have one
    /// (else by id); a parent whose record has expired, or that did not complete, gives null.
    pub fn parent_results(
        &mut self,
        ids: &[String],
    ) -> Result<serde_json::Map<String, serde_json::Value>, StoreError> {
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HMGET")
                .arg(self.keys.job(id))
                .arg("ref")
                .arg("result");
        }
        let rows: Vec<(Option<String>, Option<String>)> =
            self.conn.run_idempotent(|c| pipe.query(c))?;
        Ok(ids
            .iter()
            .zip(rows)
            .map(|(id, (r, result))| {
                let value = result
                    .and_then(|v| serde_json::from_str(&v).ok())
                    .unwrap_or(serde_json::Value::Null);
                (r.unwrap_or_else(|| id.clone()), value)
            })
            .collect())
    }
}
