//! Analytics aggregates in Redis: per event and UTC day a count, a HyperLogLog of user ids and
//! sums of numeric properties, plus per day the set of event names seen (so a report over a
//! range never needs KEYS or SCAN).
//!
//! Keys (all under the configured prefix, so they share its hash tag; see docs/redis-keys.md):
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `<prefix>:analytics:done:<job id>` | string | marker: this job's event is counted (TTL) |
//! | `<prefix>:analytics:stats:<YYYY-MM-DD>:<event>` | hash | `count`, `sum:<property>` |
//! | `<prefix>:analytics:users:<YYYY-MM-DD>:<event>` | HyperLogLog | user ids |
//! | `<prefix>:analytics:events:<YYYY-MM-DD>` | set | event names seen that day |
//!
//! The names are built here rather than in `keys.rs` so the whole feature sits in one file.

use redis::Script;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use super::decode::odd;
use super::{Store, StoreError};

/// Commands per pipeline when reading a report, so one reply never grows huge.
const PIPELINE_CHUNK: usize = 256;

fn script() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(include_str!("lua/analytics.lua")))
}

/// One event to count.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    /// The job that carries it: counted at most once per job id.
    pub job_id: &'a str,
    pub name: &'a str,
    /// UTC day, `YYYY-MM-DD`.
    pub day: &'a str,
    pub user_id: Option<&'a str>,
    /// Numeric properties to add to the day's sums.
    pub sums: &'a [(String, f64)],
}

/// One event on one day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayAggregate {
    pub date: String,
    pub event: String,
    pub count: u64,
    /// Distinct user ids (HyperLogLog estimate: exact for small counts, ~0.8% error beyond).
    pub unique_users: u64,
    pub sums: BTreeMap<String, f64>,
}

/// One event over the whole range.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EventTotal {
    pub count: u64,
    /// Distinct users over the range (the union of the days' HyperLogLogs, not a sum).
    pub unique_users: u64,
    pub sums: BTreeMap<String, f64>,
}

/// What [`Store::read_aggregates`] found: rows sorted by date then event (days without the
/// event are left out), and totals per event.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Aggregates {
    pub rows: Vec<DayAggregate>,
    pub totals: BTreeMap<String, EventTotal>,
}

impl Store {
    fn analytics_key(&self, kind: &str, rest: &str) -> String {
        format!("{}:analytics:{kind}:{rest}", self.keys.prefix())
    }

    /// Counts `e` into its day's aggregates, atomically, unless this job id was counted already
    /// (then nothing changes: a retried job does not count twice). Returns whether it counted.
    /// `done_ttl_secs` is how long the job id is remembered, `ttl_secs` how long the day's
    /// aggregates live after their last event.
    pub fn record_event(
        &mut self,
        e: &Event,
        done_ttl_secs: u64,
        ttl_secs: u64,
    ) -> Result<bool, StoreError> {
        let mut inv = script().prepare_invoke();
        inv.key(self.analytics_key("done", e.job_id))
            .key(self.analytics_key("stats", &format!("{}:{}", e.day, e.name)))
            .key(self.analytics_key("users", &format!("{}:{}", e.day, e.name)))
            .key(self.analytics_key("events", e.day))
            .arg(done_ttl_secs.max(1))
            .arg(ttl_secs.max(1))
            .arg(e.name)
            .arg(e.user_id.unwrap_or(""));
        for (name, v) in e.sums {
            inv.arg(name).arg(v.to_string());
        }
        let n: i64 = self.conn.run(|c| inv.invoke(c))?;
        Ok(n == 1)
    }

    /// Reads the aggregates of `days` (each `YYYY-MM-DD`) for `events`, or for every event seen
    /// on those days when `events` is None.
    pub fn read_aggregates(
        &mut self,
        days: &[String],
        events: Option<&[String]>,
    ) -> Result<Aggregates, StoreError> {
        // Which (day, event) pairs to read.
        let per_day: Vec<Vec<String>> = match events {
            Some(list) => days.iter().map(|_| list.to_vec()).collect(),
            None => {
                let keys: Vec<String> = days
                    .iter()
                    .map(|d| self.analytics_key("events", d))
                    .collect();
                let mut out = Vec::with_capacity(days.len());
                for chunk in keys.chunks(PIPELINE_CHUNK) {
                    let sets: Vec<Vec<String>> = self.conn.run(|c| {
                        let mut p = redis::pipe();
                        for k in chunk {
                            p.cmd("SMEMBERS").arg(k);
                        }
                        p.query(c)
                    })?;
                    for mut s in sets {
                        s.sort();
                        out.push(s);
                    }
                }
                out
            }
        };
        let pairs: Vec<(&String, &String)> = days
            .iter()
            .zip(&per_day)
            .flat_map(|(d, evs)| evs.iter().map(move |e| (d, e)))
            .collect();

        let mut rows = Vec::new();
        for chunk in pairs.chunks(PIPELINE_CHUNK / 2) {
            let keys: Vec<(String, String)> = chunk
                .iter()
                .map(|(d, e)| {
                    let day_event = format!("{d}:{e}");
                    (
                        self.analytics_key("stats", &day_event),
                        self.analytics_key("users", &day_event),
                    )
                })
                .collect();
            let replies: Vec<redis::Value> = self.conn.run(|c| {
                let mut p = redis::pipe();
                for (stats, users) in &keys {
                    p.cmd("HGETALL").arg(stats);
                    p.cmd("PFCOUNT").arg(users);
                }
                p.query(c)
            })?;
            for ((d, e), pair) in chunk.iter().zip(replies.chunks(2)) {
                let stats: HashMap<String, String> = redis::from_redis_value(pair[0].clone())
                    .map_err(|err| odd(format!("analytics stats of {e}"), err))?;
                let users: u64 = redis::from_redis_value(pair[1].clone())
                    .map_err(|err| odd(format!("analytics users of {e}"), err))?;
                let count = stats.get("count").and_then(|v| v.parse().ok()).unwrap_or(0);
                if count == 0 {
                    continue;
                }
                let sums = stats
                    .iter()
                    .filter_map(|(k, v)| {
                        Some((k.strip_prefix("sum:")?.to_string(), v.parse().ok()?))
                    })
                    .collect();
                rows.push(DayAggregate {
                    date: (*d).clone(),
                    event: (*e).clone(),
                    count,
                    unique_users: users,
                    sums,
                });
            }
        }

        // Totals: counts and sums add up; distinct users are the union of the days' logs.
        let names: BTreeSet<String> = match events {
            Some(list) => list.iter().cloned().collect(),
            None => rows.iter().map(|r| r.event.clone()).collect(),
        };
        let mut totals: BTreeMap<String, EventTotal> = names
            .iter()
            .map(|n| (n.clone(), EventTotal::default()))
            .collect();
        for r in &rows {
            let t = totals.entry(r.event.clone()).or_default();
            t.count += r.count;
            for (k, v) in &r.sums {
                *t.sums.entry(k.clone()).or_insert(0.0) += v;
            }
        }
        let with_days: Vec<(String, Vec<String>)> = names
            .iter()
            .map(|n| {
                let keys = rows
                    .iter()
                    .filter(|r| &r.event == n)
                    .map(|r| self.analytics_key("users", &format!("{}:{n}", r.date)))
                    .collect();
                (n.clone(), keys)
            })
            .filter(|(_, keys): &(String, Vec<String>)| !keys.is_empty())
            .collect();
        for chunk in with_days.chunks(PIPELINE_CHUNK / 4) {
            let counts: Vec<u64> = self.conn.run(|c| {
                let mut p = redis::pipe();
                for (_, keys) in chunk {
                    p.cmd("PFCOUNT").arg(keys);
                }
                p.query(c)
            })?;
            for ((name, _), n) in chunk.iter().zip(counts) {
                if let Some(t) = totals.get_mut(name) {
                    t.unique_users = n;
                }
            }
        }
        Ok(Aggregates { rows, totals })
    }
}
