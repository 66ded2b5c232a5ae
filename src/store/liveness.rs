//! Which worker processes are alive: the heartbeat and registration, the list of registered
//! processes and the jobs each holds, and the reaper's recovery of a dead process's jobs.

use redis::Value as RV;
use std::time::Duration;

use super::decode::{live_processes, reaped};
use super::scripts::scripts;
use super::{Store, StoreError};

/// One live worker process as `GET /workers` reads it (`lua/workers.lua`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveProcess {
    pub id: String,
    /// Its heartbeat's JSON, as the process wrote it (see `worker/beat.rs`).
    pub beat: String,
    /// What is left of its heartbeat's TTL (ms), by Redis's clock.
    pub pttl_ms: i64,
    /// For each job its heartbeat lists, in order: the record's `started_at` (µs) and
    /// `progress` (JSON), when the record has them.
    pub jobs: Vec<(Option<i64>, Option<String>)>,
}

/// Every live worker process, and Redis's clock when they were read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveProcesses {
    pub now_us: i64,
    pub processes: Vec<LiveProcess>,
}

/// The jobs recovered from a dead process by [`Store::reap`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reaped {
    pub requeued: Vec<String>,
    pub dead: Vec<String>,
    /// The oldest DLQ entries dropped past the cap to make room.
    pub evicted: Vec<String>,
    /// The queue and type of each requeued, then each dead job (for the metrics).
    pub placement: Vec<(String, String)>,
    /// Jobs that ended on the way: cancelled while running, and their descendants.
    pub events: Vec<super::JobEvent>,
}

impl Store {
    /// The ids in `worker`'s running list.
    pub fn held(&mut self, worker: &str) -> Result<Vec<String>, StoreError> {
        let key = self.keys.running(worker);
        self.conn
            .run_idempotent(|c| redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query(c))
    }

    /// Refreshes `worker`'s liveness key (expiring after `ttl`) and registers it as a worker;
    /// marks the queues it serves (`None`: every queue) as served for as long, which is how a
    /// waiting job knows that no live process serves its queue.
    pub fn heartbeat(
        &mut self,
        worker: &str,
        ttl: Duration,
        info: &str,
        serves: Option<&[String]>,
    ) -> Result<(), StoreError> {
        let k = &self.keys;
        let hb = k.heartbeat(worker);
        let ttl_ms = ttl.as_millis() as u64;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(&hb)
            .arg(info)
            .arg("PX")
            .arg(ttl_ms)
            .ignore()
            .cmd("SADD")
            .arg(&k.workers)
            .arg(worker)
            .ignore();
        let served: Vec<String> = match serves {
            None => vec![k.served_all.clone()],
            Some(qs) => qs.iter().map(|q| k.queue(q, "served")).collect(),
        };
        for key in &served {
            pipe.cmd("SET")
                .arg(key)
                .arg(worker)
                .arg("PX")
                .arg(ttl_ms)
                .ignore();
        }
        if let Some(qs) = serves {
            // A queue named in QUEUES exists from the start, so GET /queues lists it.
            pipe.cmd("SADD").arg(&k.queues).arg(qs).ignore();
        }
        self.conn.run_idempotent(|c| pipe.query::<()>(c))
    }

    /// Removes `worker`'s liveness key and registration, once it holds no jobs.
    pub fn deregister(&mut self, worker: &str) -> Result<(), StoreError> {
        let k = &self.keys;
        let hb = k.heartbeat(worker);
        self.conn.run_idempotent(|c| {
            redis::pipe()
                .atomic()
                .cmd("DEL")
                .arg(&hb)
                .ignore()
                .cmd("SREM")
                .arg(&k.workers)
                .arg(worker)
                .ignore()
                .query::<()>(c)
        })
    }

    /// Every registered worker process, alive or not.
    pub fn workers(&mut self) -> Result<Vec<String>, StoreError> {
        let key = self.keys.workers.clone();
        self.conn
            .run_idempotent(|c| redis::cmd("SMEMBERS").arg(&key).query(c))
    }

    /// Every registered process whose heartbeat has not expired, with its heartbeat and the
    /// start time and progress of the jobs it runs: one script call.
    pub fn live_processes(&mut self) -> Result<LiveProcesses, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().workers.prepare_invoke();
        inv.key(&k.workers).arg(k.prefix());
        let v: Vec<RV> = self.conn.run_idempotent(|c| inv.invoke(c))?;
        live_processes(v)
    }

    /// Recovers the jobs of `worker` if its heartbeat has expired: each counts as a failed
    /// attempt with `error`. None when the process is alive after all.
    pub fn reap(
        &mut self,
        worker: &str,
        error: &str,
        dlq_cap: u64,
    ) -> Result<Option<Reaped>, StoreError> {
        let k = &self.keys;
        let mut inv = scripts().reap.prepare_invoke();
        inv.key(&k.workers)
            .key(&k.dlq)
            .key(&k.counters)
            .key(k.heartbeat(worker))
            .key(k.running(worker))
            .arg(k.prefix())
            .arg(worker)
            .arg(error)
            .arg(dlq_cap);
        let v: RV = self.conn.run(|c| inv.invoke(c))?;
        reaped(v)
    }
}
