//! The dead-letter queue: a page of it, one dead job, and sending selected dead jobs back to
//! pending or deleting them (one, of a type, all, or one group by cause: `dlq_groups.rs`).

use redis::Value as RV;
use std::collections::HashMap;

use super::decode::odd;
use super::record::job_from_record;
use super::scripts::scripts;
use super::{Store, StoreError};
use crate::job::{Job, JobStatus};

/// Which dead-letter jobs a DLQ operation applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DlqSelect<'a> {
    One(&'a str),
    /// Those of these ids still in the DLQ (the explorer's selections).
    Ids(&'a [String]),
    Type(&'a str),
    All,
    /// The jobs of one failure group (its fingerprint) that entered the DLQ up to `upto` (µs
    /// since the epoch; None: all of them).
    Group {
        fingerprint: &'a str,
        upto: Option<i64>,
    },
}

impl DlqSelect<'_> {
    /// The scripts' mode, value and latest DLQ time to take.
    fn args(&self) -> (&'static str, String, String) {
        let all = || "+inf".to_string();
        match self {
            DlqSelect::One(id) => ("id", id.to_string(), all()),
            DlqSelect::Ids(ids) => ("ids", ids.join(","), all()),
            DlqSelect::Type(t) => ("type", t.to_string(), all()),
            DlqSelect::All => ("all", String::new(), all()),
            DlqSelect::Group { fingerprint, upto } => (
                "group",
                fingerprint.to_string(),
                upto.map_or_else(all, |t| t.to_string()),
            ),
        }
    }
}

impl Store {
    /// One page of the dead-letter queue, newest first, and its total size, in one script call.
    pub fn dlq_page(&mut self, offset: u64, limit: u64) -> Result<(u64, Vec<Job>), StoreError> {
        let k = &self.keys;
        let mut inv = scripts().dlq_page.prepare_invoke();
        inv.key(&k.dlq).arg(k.prefix()).arg(offset).arg(limit);
        let reply: Vec<RV> = self.conn.run_idempotent(|c| inv.invoke(c))?;
        let odd = |e| odd("dlq_page script answered oddly", e);
        let mut items = reply.into_iter();
        let total: u64 = match items.next() {
            Some(v) => redis::from_redis_value(v).map_err(odd)?,
            None => 0,
        };
        let mut jobs = Vec::new();
        while let (Some(id), Some(rec)) = (items.next(), items.next()) {
            let id: String = redis::from_redis_value(id).map_err(odd)?;
            let rec: HashMap<String, String> = redis::from_redis_value(rec).map_err(odd)?;
            if !rec.is_empty() {
                jobs.push(job_from_record(&id, &rec)?);
            }
        }
        Ok((total, jobs))
    }

    /// A job in the dead-letter queue, or None when it is not there. Only a buried job has
    /// status `failed`, and deleting one from the DLQ deletes its record, so the record alone
    /// answers (one command, one reply).
    pub fn dlq_job(&mut self, id: &str) -> Result<Option<Job>, StoreError> {
        Ok(self.job(id)?.filter(|j| j.status == JobStatus::Failed))
    }

    /// Sends the selected dead-letter jobs back to their queues with attempts reset; returns their ids.
    pub fn dlq_retry(&mut self, which: DlqSelect) -> Result<Vec<String>, StoreError> {
        let k = &self.keys;
        let (mode, value, upto) = which.args();
        let mut inv = scripts().dlq_retry.prepare_invoke();
        inv.key(&k.dlq)
            .arg(k.prefix())
            .arg(mode)
            .arg(value)
            .arg(upto);
        self.conn.run(|c| inv.invoke(c))
    }

    /// Deletes the selected dead-letter jobs and their records; returns how many.
    pub fn dlq_delete(&mut self, which: DlqSelect) -> Result<u64, StoreError> {
        let k = &self.keys;
        let (mode, value, upto) = which.args();
        let mut inv = scripts().dlq_delete.prepare_invoke();
        inv.key(&k.dlq)
            .arg(k.prefix())
            .arg(mode)
            .arg(value)
            .arg(upto);
        self.conn.run(|c| inv.invoke(c))
    }
}
