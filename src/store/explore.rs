//! The job explorer's reads and the bulk actions' selections: a bounded walk along the journal
//! (every job by creation) or the DLQ with a [`JobFilter`] (`lua/explore.lua`), the records of
//! the ids it kept, the deletion of ended jobs, and the list of recent workflows.

use chrono::{DateTime, Utc};
use std::collections::HashMap;

use super::record::job_from_record;
use super::scripts::scripts;
use super::{Store, StoreError};
use crate::job::{from_micros, Job};

/// Which jobs a walk keeps: each part that is set must match.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    /// Empty: any. `scheduled` is a pending job with a `run_at`, `pending` one without.
    pub statuses: Vec<String>,
    pub queue: Option<String>,
    pub job_type: Option<String>,
    pub group: Option<String>,
    pub search: Option<Search>,
    /// µs since the epoch: along the journal, jobs created at or before it; along the DLQ,
    /// jobs that entered it at or before it.
    pub upto: Option<i64>,
}

/// What `q` asks of a job's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Search {
    /// A substring of the payload, result or last error, compared without regard to case
    /// (ASCII); held in lower case.
    Text(String),
    /// The payload's value at a dotted path (`user.id`, `items.0.sku`), compared as text.
    Path { path: String, value: String },
}

impl JobFilter {
    /// The filter's arguments as `job_filter` in `lua/select.lua` takes them, after the
    /// statuses, queue, type and group: needle, path, value, upto.
    fn search_args(&self, inv: &mut redis::ScriptInvocation<'static>) {
        let (needle, path, value) = match &self.search {
            None => (String::new(), "", ""),
            Some(Search::Text(t)) => (t.clone(), "", ""),
            Some(Search::Path { path, value }) => {
                (value.to_ascii_lowercase(), path.as_str(), value.as_str())
            }
        };
        inv.arg(needle)
            .arg(path)
            .arg(value)
            .arg(self.upto.map(|u| u.to_string()).unwrap_or_default());
    }

    pub(super) fn args(&self, inv: &mut redis::ScriptInvocation<'static>) {
        inv.arg(self.statuses.join(","))
            .arg(self.queue.as_deref().unwrap_or_default())
            .arg(self.job_type.as_deref().unwrap_or_default())
            .arg(self.group.as_deref().unwrap_or_default());
        self.search_args(inv);
    }

    pub(super) fn cancel_args(&self, inv: &mut redis::ScriptInvocation<'static>) {
        self.search_args(inv);
    }
}

/// The index a walk follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    /// Every job by creation, newest first, for JOB_TTL_SECS (`P:jl`, `P:jl:<hour>`).
    Journal,
    /// The dead-letter queue by the time each job entered it, newest first.
    Dlq,
}

/// Where a walk stopped: two values the next walk starts from.
pub type Place = (String, String);

/// What one walk found.
#[derive(Debug, Clone)]
pub struct Walked {
    /// Where to go on; None at the end of the index.
    pub next: Option<Place>,
    /// Index entries looked at.
    pub seen: u64,
    /// Redis's clock when the walk ran (µs).
    pub now_us: i64,
    /// The ids that passed the filter, newest first.
    pub ids: Vec<String>,
}

/// One of the recent workflows `GET /workflows` lists.
#[derive(Debug, Clone)]
pub struct WorkflowSummary {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub nodes: u64,
    pub left: u64,
}

impl Store {
    /// Walks `index` from `from` (None: its newest entry), keeping at most `want` ids of jobs
    /// that pass `filter` and looking at no more than `budget` entries.
    pub fn explore(
        &mut self,
        index: Index,
        filter: &JobFilter,
        from: Option<&Place>,
        want: usize,
        budget: usize,
    ) -> Result<Walked, StoreError> {
        let mut inv = scripts().explore.prepare_invoke();
        let (a, b) = from.cloned().unwrap_or_default();
        // Declared only so a Redis Cluster routes the call to the prefix's slot (as for every
        // script here): the script builds its key names from the prefix.
        inv.key(&self.keys.counters)
            .arg(self.keys.prefix())
            .arg(match index {
                Index::Journal => "journal",
                Index::Dlq => "dlq",
            })
            .arg(a)
            .arg(b)
            .arg(want)
            .arg(budget);
        filter.args(&mut inv);
        // The walk may drop the entry of an hour whose list has expired: not a read-only script.
        let mut r: Vec<String> = self.conn.run(|c| inv.invoke(c))?;
        if r.len() < 4 {
            return Err(StoreError::corrupt(format!(
                "explore script answered {} values, expected at least 4",
                r.len()
            )));
        }
        let ids = r.split_off(4);
        let num = |s: &str| s.parse::<i64>().unwrap_or(0);
        Ok(Walked {
            next: (!r[0].is_empty()).then(|| (r[0].clone(), r[1].clone())),
            seen: num(&r[2]) as u64,
            now_us: num(&r[3]),
            ids,
        })
    }

    /// The records of `ids` in one round trip, in their order; those gone since are left out.
    pub fn jobs(&mut self, ids: &[String]) -> Result<Vec<Job>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("HGETALL").arg(self.keys.job(id));
        }
        let recs: Vec<HashMap<String, String>> = self.conn.run_idempotent(|c| pipe.query(c))?;
        ids.iter()
            .zip(recs)
            .filter(|(_, rec)| !rec.is_empty())
            .map(|(id, rec)| job_from_record(id, &rec))
            .collect()
    }

    /// Deletes the records of those of `ids` that have ended (completed, failed, cancelled,
    /// expired), a failed one with its DLQ entry, each in one step. Returns each id with
    /// `deleted`, `missing`, or the status of a job that has not ended.
    pub fn delete_ended(&mut self, ids: &[String]) -> Result<Vec<(String, String)>, StoreError> {
        let mut inv = scripts().delete.prepare_invoke();
        inv.key(&self.keys.dlq).arg(self.keys.prefix());
        for id in ids {
            inv.arg(id);
        }
        let r: Vec<String> = self.conn.run(|c| inv.invoke(c))?;
        Ok(r.chunks_exact(2)
            .map(|c| (c[0].clone(), c[1].clone()))
            .collect())
    }

    /// The newest `limit` workflows still kept, newest first.
    pub fn workflows(&mut self, limit: usize) -> Result<Vec<WorkflowSummary>, StoreError> {
        let mut inv = scripts().workflows.prepare_invoke();
        // Declared for a Redis Cluster's routing only (see `walk`).
        inv.key(&self.keys.counters)
            .arg(self.keys.prefix())
            .arg(limit);
        let s: Vec<String> = self.conn.run(|c| inv.invoke(c))?;
        Ok(s.chunks_exact(4)
            .map(|c| WorkflowSummary {
                id: c[0].clone(),
                created_at: c[1].parse().ok().and_then(from_micros).unwrap_or_default(),
                nodes: c[2].parse().unwrap_or(0),
                left: c[3].parse().unwrap_or(0),
            })
            .collect())
    }
}
