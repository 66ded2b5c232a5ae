//! What the operator side needs of Redis, as opposed to job transitions: `GET /stats` and the
//! `queue_size` gauge, the health check's ping, the start-up advice on durability, and the
//! server state the reaper's grace period watches.

use serde::Serialize;
use std::collections::BTreeMap;

use super::scripts::scripts;
use super::{Store, StoreError};

/// The counts `GET /stats` shows: all O(1) reads (counters and list lengths).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    /// Jobs ever accepted.
    pub total_jobs: u64,
    pub pending_jobs: u64,
    pub running_jobs: u64,
    /// Jobs ever completed.
    pub completed_jobs: u64,
    /// Jobs ever moved to the dead-letter queue.
    pub failed_jobs: u64,
    /// Jobs in the dead-letter queue now.
    pub dlq_size: u64,
    /// Delayed jobs and retries waiting for their time.
    pub scheduled_jobs: u64,
    /// Jobs waiting for their parents (workflows, `depends_on`).
    pub waiting_jobs: u64,
    /// Jobs ever cancelled.
    pub cancelled_jobs: u64,
    /// Jobs ever found past their start deadline, never run.
    pub expired_jobs: u64,
    /// The counts of each queue, by name.
    pub queues: BTreeMap<String, QueueCounts>,
}

/// One queue's counts in [`Stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueCounts {
    pub pending: u64,
    pub scheduled: u64,
    pub running: u64,
    /// Jobs of this queue in the dead-letter queue now.
    pub failed: u64,
    pub paused: bool,
    /// Jobs of this queue waiting for their parents.
    pub waiting: u64,
}

impl Store {
    pub fn ping(&mut self) -> Result<(), StoreError> {
        self.conn
            .run_idempotent(|c| redis::cmd("PING").query::<String>(c))
            .map(|_| ())
    }

    /// Counts for `GET /stats` and the `queue_size` gauge, in one script call: one reply, so a
    /// Redis that hangs costs one read timeout, not one per count.
    pub fn stats(&mut self) -> Result<Stats, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().stats.prepare_invoke();
        inv.key(&k.dlq).key(&k.counters).arg(k.prefix());
        let flat: Vec<String> = self.conn.run_idempotent(|c| inv.invoke(c))?;
        let n = |i: usize| {
            flat.get(i)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
                .max(0) as u64
        };
        let queues: BTreeMap<String, QueueCounts> = (7..flat.len())
            .step_by(7)
            .filter(|&i| i + 6 < flat.len())
            .map(|i| {
                let counts = QueueCounts {
                    pending: n(i + 1),
                    scheduled: n(i + 2),
                    running: n(i + 3),
                    failed: n(i + 4),
                    paused: flat[i + 5] == "1",
                    waiting: n(i + 6),
                };
                (flat[i].clone(), counts)
            })
            .collect();
        Ok(Stats {
            pending_jobs: queues.values().map(|q| q.pending).sum(),
            scheduled_jobs: queues.values().map(|q| q.scheduled).sum(),
            dlq_size: n(0),
            total_jobs: n(1),
            running_jobs: n(2),
            completed_jobs: n(3),
            failed_jobs: n(4),
            cancelled_jobs: n(5),
            expired_jobs: n(6),
            waiting_jobs: queues.values().map(|q| q.waiting).sum(),
            queues,
        })
    }

    /// Checks this Redis at start-up: refuses one older than 6.2 (jobq's scripts use LMOVE,
    /// BLMOVE and ZRANGE … REV), and says what a restart or memory pressure could lose, and
    /// whether it has the `wait_replicas` replicas REDIS_WAIT_REPLICAS asks for, as advice for
    /// the log.
    pub fn durability_warnings(&mut self, wait_replicas: u32) -> Result<Vec<String>, StoreError> {
        let (server, persistence, memory, replication): (String, String, String, String) =
            self.conn.run_idempotent(|c| {
                redis::pipe()
                    .cmd("INFO")
                    .arg("server")
                    .cmd("INFO")
                    .arg("persistence")
                    .cmd("INFO")
                    .arg("memory")
                    .cmd("INFO")
                    .arg("replication")
                    .query(c)
            })?;
        if let Some(version) = info_field(&server, "redis_version") {
            let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
            if (major, minor) < (6, 2) {
                return Err(StoreError::Rejected {
                    message: format!("Redis {version} is too old: jobq needs Redis 6.2 or later"),
                    source: None,
                });
            }
        }
        let mut out = Vec::new();
        let replicas: u32 = info_field(&replication, "connected_slaves")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if wait_replicas > replicas {
            out.push(format!(
                "REDIS_WAIT_REPLICAS is {wait_replicas} but the Redis master has {replicas} replica(s) connected: until {wait_replicas} are, every create is answered 503 (the job is stored) after REDIS_WAIT_TIMEOUT_MS; attach replicas or lower REDIS_WAIT_REPLICAS"
            ));
        }
        match info_field(&memory, "maxmemory_policy") {
            Some("noeviction") | None => {}
            Some(policy) => out.push(format!(
                "Redis maxmemory-policy is {policy}: when Redis fills up it may evict job records and queues, losing accepted jobs; set maxmemory-policy noeviction (POST /jobs then gets 503 instead)"
            )),
        }
        if info_field(&persistence, "aof_enabled") != Some("1") {
            // CONFIG may be disabled on managed Redis; then RDB cannot be checked.
            let save: Result<Vec<String>, StoreError> = self
                .conn
                .run(|c| redis::cmd("CONFIG").arg("GET").arg("save").query(c));
            match save {
                Ok(kv) if kv.get(1).is_some_and(|v| !v.trim().is_empty()) => out.push(
                    "Redis persists with RDB snapshots only: a Redis crash loses jobs accepted since the last snapshot; set appendonly yes to keep them".into(),
                ),
                Ok(_) => out.push(
                    "Redis has neither AOF nor RDB persistence: a Redis restart loses every job; set appendonly yes".into(),
                ),
                Err(e) if e.is_unavailable() => return Err(e),
                Err(_) => out.push(
                    "Redis has AOF off and CONFIG GET is refused, so RDB could not be checked: unless snapshots are on, a Redis restart loses every job; set appendonly yes".into(),
                ),
            }
        }
        Ok(out)
    }

    /// Which Redis server this is and whether it is loading its data set, from `INFO`.
    pub fn redis_state(&mut self) -> Result<RedisState, StoreError> {
        let (server, persistence): (String, String) = self.conn.run_idempotent(|c| {
            redis::pipe()
                .cmd("INFO")
                .arg("server")
                .cmd("INFO")
                .arg("persistence")
                .query(c)
        })?;
        Ok(RedisState {
            run_id: info_field(&server, "run_id")
                .unwrap_or_default()
                .to_string(),
            loading: info_field(&persistence, "loading") == Some("1"),
        })
    }
}

/// What the reaper needs to know of the Redis server before it judges heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisState {
    /// Changes whenever Redis restarts (or another server answers at the same address).
    pub run_id: String,
    /// Loading its data set from disk (or from its master).
    pub loading: bool,
}

/// A field of an `INFO` answer (`name:value` lines).
pub fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}
