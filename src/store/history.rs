//! The per-minute history behind `GET /stats/history`: a snapshot of the running totals (all
//! queues, and each queue's) at the start of every minute, kept for [`HISTORY_MINUTES`], and
//! the counts per minute read back as the differences of consecutive snapshots.
//!
//! Snapshots cost the jobs nothing: the totals are moved by the scripts that move the jobs
//! anyway, and one snapshot a minute is taken by whichever process's maintenance tick gets
//! there first (`lua/history.lua`).

use std::collections::HashMap;

use super::scripts::scripts;
use super::{Store, StoreError};

/// How long snapshots are kept: 72 hours of minutes.
pub const HISTORY_MINUTES: u64 = 72 * 60;

/// Most queues a snapshot records (in name order), so a client creating queues by the
/// thousand cannot make each snapshot large. A snapshot takes about 180 B plus 125 B per queue
/// (measured with `MEMORY USAGE`), so the history stays under 4320 × (180 + 20 × 125) B, about
/// 11.6 MB (1.3 MB with one queue, 5.8 MB with ten).
pub const HISTORY_QUEUES: usize = 20;

/// The totals a snapshot records, as the API names them.
pub const TOTALS: [&str; 6] = [
    "created",
    "completed",
    "failed",
    "retried",
    "cancelled",
    "expired",
];

/// The totals recorded per queue.
pub const QUEUE_TOTALS: [&str; 4] = ["created", "completed", "failed", "retried"];

/// One minute's counts: how much each total grew during it, or None when a snapshot at either
/// end is missing (no jobq process ran then).
#[derive(Debug, Clone, PartialEq)]
pub struct Minute {
    /// The minute's start, Unix minutes by Redis's clock.
    pub minute: i64,
    pub counts: Option<Vec<(&'static str, i64)>>,
}

impl Store {
    /// Takes this minute's snapshot if no process has yet; returns the minute (Unix minutes,
    /// Redis's clock) and whether this call took it.
    pub fn snapshot_history(&mut self) -> Result<(i64, bool), StoreError> {
        let k = &self.keys;
        let mut inv = scripts().history.prepare_invoke();
        inv.key(&k.counters)
            .arg(k.prefix())
            .arg((HISTORY_MINUTES + 2) * 60)
            .arg(HISTORY_QUEUES);
        let (minute, took): (i64, i64) = self.conn.run(|c| inv.invoke(c))?;
        Ok((minute, took == 1))
    }

    /// The counts of the last `minutes` minutes, oldest first, for every queue or one
    /// (`queue`): the current minute's so far included (the live totals end it).
    pub fn history(
        &mut self,
        minutes: u64,
        queue: Option<&str>,
    ) -> Result<Vec<Minute>, StoreError> {
        let k = &self.keys;
        let names: Vec<String> = match queue {
            None => TOTALS.iter().map(|t| t.to_string()).collect(),
            Some(q) => QUEUE_TOTALS.iter().map(|t| format!("q:{q}:{t}")).collect(),
        };
        // The live totals (under their names in the counters or the queue's meta hash, where
        // the DLQ moves are `dead`), with Redis's clock, then a snapshot per minute.
        let (live_key, live_fields): (String, &[&str]) = match queue {
            None => (
                k.counters.clone(),
                &[
                    "created",
                    "completed",
                    "dead",
                    "retried",
                    "cancelled",
                    "expired",
                ],
            ),
            Some(q) => (
                k.queue(q, "meta"),
                &["created", "completed", "dead", "retried"],
            ),
        };
        let (live_totals, (now_s, _)): (Vec<Option<i64>>, (i64, i64)) =
            self.conn.run_idempotent(|c| {
                redis::pipe()
                    .cmd("HMGET")
                    .arg(&live_key)
                    .arg(live_fields)
                    .cmd("TIME")
                    .query(c)
            })?;
        let now_minute = now_s / 60;
        let first = now_minute - minutes as i64 + 1;
        let mut pipe = redis::pipe();
        for m in first..=now_minute {
            pipe.cmd("HMGET")
                .arg(format!("{}:hist:{m}", k.prefix()))
                .arg(&names)
                .arg("at")
                .arg("qlast");
        }
        let rows: Vec<Vec<Option<String>>> = self.conn.run_idempotent(|c| pipe.query(c))?;
        // A snapshot's totals, or None when there is none for the minute (no process saw it
        // start) or it does not record this queue (past its first HISTORY_QUEUES). A queue it
        // does not name but would have recorded had no job yet: 0.
        let totals = |row: Vec<Option<String>>| -> Option<Vec<i64>> {
            let (values, marks) = row.split_at(names.len());
            marks[0].as_ref()?;
            if let (Some(q), Some(last)) = (queue, &marks[1]) {
                if q > last.as_str() {
                    return None;
                }
            }
            Some(
                values
                    .iter()
                    .map(|v| v.as_deref().and_then(|v| v.parse().ok()).unwrap_or(0))
                    .collect(),
            )
        };
        let labels: &'static [&'static str] = match queue {
            None => &TOTALS,
            Some(_) => &QUEUE_TOTALS,
        };
        // Snapshot m is the totals at the start of minute m; minute m's counts are snapshot
        // m+1 minus snapshot m, the live totals ending the current one.
        let mut starts: HashMap<i64, Vec<i64>> = (first..=now_minute)
            .zip(rows)
            .filter_map(|(m, row)| Some((m, totals(row)?)))
            .collect();
        starts.insert(
            now_minute + 1,
            live_totals.iter().map(|v| v.unwrap_or(0)).collect(),
        );
        Ok((first..=now_minute)
            .map(|m| {
                let counts = match (starts.get(&m), starts.get(&(m + 1))) {
                    (Some(a), Some(b)) => Some(
                        labels
                            .iter()
                            .zip(a.iter().zip(b))
                            .map(|(l, (x, y))| (*l, (y - x).max(0)))
                            .collect(),
                    ),
                    _ => None,
                };
                Minute { minute: m, counts }
            })
            .collect())
    }
}
