//! The dead-letter queue grouped by cause: each group is the dead jobs of one type whose last
//! errors differ only in what varies between occurrences of one cause (numbers, ids, quoted
//! values…). The grouping happens in Redis, when a job is buried (`lua/dead.lua`), so reading
//! the groups costs one small entry per group and not a walk of the DLQ.

use chrono::{DateTime, Utc};
use redis::Value as RV;
use serde::Deserialize;

use super::decode::odd;
use super::scripts::scripts;
use super::{Store, StoreError};
use crate::job::from_micros;

/// One failure group, as `GET /dlq/groups` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqGroup {
    /// 16 lower-case hex digits: a hash of the type and the pattern.
    pub fingerprint: String,
    pub kind: String,
    /// The normalised error message the group is keyed by.
    pub pattern: String,
    /// The last error of the job most recently filed in the group (its first 1000 bytes).
    pub sample: String,
    /// Its jobs in the DLQ (up to the time asked for, for a dry run).
    pub count: u64,
    /// When its oldest job still in the DLQ entered it.
    pub first_seen: DateTime<Utc>,
    /// When its newest job (up to the time asked for) entered the DLQ: the `as_of` that makes an
    /// action take exactly what was counted.
    pub last_seen: DateTime<Utc>,
    /// The same in µs, as the scripts take it.
    pub last_seen_us: i64,
}

/// The description a group's entry in `P:dlq:groups` holds (JSON written by Lua's cjson).
#[derive(Deserialize)]
struct Described {
    #[serde(rename = "type")]
    kind: String,
    pattern: String,
    sample: String,
}

impl Store {
    /// Every failure group (`fingerprint` None), or the one asked for with its jobs buried up to
    /// `upto` µs (None: now); plus the DLQ's size. A group with no such job is left out. The
    /// script first indexes up to 1000 entries buried before groups existed (a re-run does
    /// nothing more, so a retry after a lost connection is safe).
    pub fn dlq_groups(
        &mut self,
        fingerprint: Option<&str>,
        upto: Option<i64>,
    ) -> Result<(u64, Vec<DlqGroup>), StoreError> {
        let k = &self.keys;
        let mut inv = scripts().dlq_groups.prepare_invoke();
        inv.key(&k.dlq)
            .arg(k.prefix())
            .arg(fingerprint.unwrap_or(""))
            .arg(upto.map_or_else(|| "+inf".to_string(), |t| t.to_string()));
        let reply: Vec<RV> = self.conn.run_idempotent(|c| inv.invoke(c))?;
        decode_groups(reply)
    }
}

fn decode_groups(reply: Vec<RV>) -> Result<(u64, Vec<DlqGroup>), StoreError> {
    let bad = |what: &str| StoreError::corrupt(format!("dlq_groups script answered oddly: {what}"));
    let odd = |e| odd("dlq_groups script answered oddly", e);
    let mut items = reply.into_iter();
    let size: u64 = match items.next() {
        Some(v) => redis::from_redis_value(v).map_err(odd)?,
        None => 0,
    };
    let mut groups = Vec::new();
    let rest: Vec<RV> = items.collect();
    for row in rest.chunks(5) {
        let [fp, info, count, first, last] = row else {
            return Err(bad("a short row"));
        };
        let text = |v: &RV| -> Result<String, StoreError> {
            redis::from_redis_value(v.clone()).map_err(odd)
        };
        // Scores come back as text; µs since the epoch fit a double's 53 bits exactly.
        let time = |v: &RV| -> Result<(i64, DateTime<Utc>), StoreError> {
            let s = text(v)?;
            let us = s.parse::<f64>().map_err(|_| bad("a time"))? as i64;
            Ok((us, from_micros(us).ok_or_else(|| bad("a time"))?))
        };
        let d: Described =
            serde_json::from_str(&text(info)?).map_err(|_| bad("a group's description"))?;
        let (_, first_seen) = time(first)?;
        let (last_seen_us, last_seen) = time(last)?;
        groups.push(DlqGroup {
            fingerprint: text(fp)?,
            kind: d.kind,
            pattern: d.pattern,
            sample: d.sample,
            count: redis::from_redis_value(count.clone()).map_err(odd)?,
            first_seen,
            last_seen,
            last_seen_us,
        });
    }
    Ok((size, groups))
}
