//! Queues and job types as the operator sees them: their counts and latency, pause and resume,
//! their limits (kept as flat hash fields; `config::Limits` converts), a type's breaker state,
//! and why a pending job is not running.

use std::collections::HashMap;

use super::scripts::scripts;
use super::{Store, StoreError};
use crate::job::{from_micros, Waiting};

/// Limit fields of a queue's hash as `queues.lua` returns them, in this order.
const QUEUE_LIMIT_FIELDS: [&str; 6] = ["conc", "rate_n", "rate_ms", "gconc", "grate_n", "grate_ms"];

/// One queue's state for `GET /queues`.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueInfo {
    pub name: String,
    pub pending: u64,
    pub scheduled: u64,
    pub running: u64,
    pub failed: u64,
    /// Jobs waiting for their parents to finish.
    pub waiting: u64,
    pub paused: bool,
    /// Age of its oldest ready job in seconds (0 when none is ready).
    pub latency_secs: f64,
    /// Its limits as hash fields (see `config::Limits::from_fields`).
    pub limit_fields: HashMap<String, String>,
}

/// One job type's state for `GET /types`.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeInfo {
    pub name: String,
    pub paused: bool,
    pub running: u64,
    /// Jobs set aside (paused, at the limit, breaker open), waiting to go back to their queues.
    pub parked: u64,
    /// `closed`, `open` or `half_open`.
    pub breaker_state: String,
    /// When an open breaker lets a probe through (µs).
    pub breaker_until_us: Option<i64>,
    /// Every field of the type's hash (limits included).
    pub fields: HashMap<String, String>,
}

/// Which kind of thing a control applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    Queue(&'a str),
    Type(&'a str),
}

impl Target<'_> {
    fn args(&self) -> (&'static str, &str) {
        match self {
            Target::Queue(q) => ("queue", q),
            Target::Type(t) => ("type", t),
        }
    }
}

impl Store {
    /// Every queue (`None`) or one; an unknown queue gives an empty list.
    pub fn queues(&mut self, name: Option<&str>) -> Result<Vec<QueueInfo>, StoreError> {
        let mut inv = scripts().queues.prepare_invoke();
        // The counters key is declared for a Redis Cluster's routing only: the script builds
        // its key names from the prefix, in the same slot (so for `control` and `why`).
        inv.key(&self.keys.counters)
            .arg(self.keys.prefix())
            .arg(name.unwrap_or(""));
        let flat: Vec<String> = self.conn.run_idempotent(|c| inv.invoke(c))?;
        let now: i64 = flat.first().and_then(|v| v.parse().ok()).unwrap_or(0);
        let num = |v: &String| v.parse::<i64>().unwrap_or(0).max(0) as u64;
        Ok(flat
            .get(1..)
            .unwrap_or_default()
            .chunks_exact(14)
            .map(|c| {
                let oldest: i64 = c[6].parse().unwrap_or(-1);
                QueueInfo {
                    name: c[0].clone(),
                    pending: num(&c[1]),
                    scheduled: num(&c[2]),
                    running: num(&c[3]),
                    failed: num(&c[4]),
                    waiting: num(&c[13]),
                    paused: c[5] == "1",
                    latency_secs: if oldest >= 0 {
                        (now - oldest).max(0) as f64 / 1e6
                    } else {
                        0.0
                    },
                    limit_fields: QUEUE_LIMIT_FIELDS
                        .iter()
                        .zip(&c[7..13])
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(f, v)| (f.to_string(), v.clone()))
                        .collect(),
                }
            })
            .collect())
    }

    /// Makes `queues` known (listed by `GET /queues` and in the metrics) before they have a job.
    pub fn declare_queues(&mut self, queues: &[String]) -> Result<(), StoreError> {
        let key = self.keys.queues.clone();
        self.conn
            .run_idempotent(|c| redis::cmd("SADD").arg(&key).arg(queues).query(c))
    }

    /// The state of each of `names` (registered types and types with settings).
    pub fn types(&mut self, names: &[String]) -> Result<Vec<TypeInfo>, StoreError> {
        let mut pipe = redis::pipe();
        for t in names {
            pipe.cmd("HGETALL")
                .arg(self.keys.job_type(t, ""))
                .cmd("LLEN")
                .arg(self.keys.job_type(t, "parked"));
        }
        let replies: Vec<redis::Value> = self.conn.run_idempotent(|c| pipe.query(c))?;
        let mut out = Vec::new();
        for (t, pair) in names.iter().zip(replies.chunks_exact(2)) {
            let fields: HashMap<String, String> =
                redis::from_redis_value_ref(&pair[0]).unwrap_or_default();
            let parked: u64 = redis::from_redis_value_ref(&pair[1]).unwrap_or(0);
            let get = |f: &str| fields.get(f).map(String::as_str);
            let state = match get("b_state") {
                Some("open") => "open",
                Some("half") => "half_open",
                _ => "closed",
            };
            out.push(TypeInfo {
                name: t.clone(),
                paused: get("paused") == Some("1"),
                running: get("running")
                    .and_then(|v| v.parse::<i64>().ok())
                    .unwrap_or(0)
                    .max(0) as u64,
                parked,
                breaker_state: state.to_string(),
                breaker_until_us: get("b_until")
                    .and_then(|v| v.parse().ok())
                    .filter(|_| state == "open"),
                fields,
            });
        }
        Ok(out)
    }

    /// Types that have had a setting (pause, limits), whether or not this process runs them.
    pub fn known_types(&mut self) -> Result<Vec<String>, StoreError> {
        let key = self.keys.types.clone();
        self.conn
            .run_idempotent(|c| redis::cmd("SMEMBERS").arg(&key).query(c))
    }

    /// Pauses (`true`) or resumes a queue or a job type, durably: every process sees it at its
    /// next claim. Running jobs finish.
    pub fn set_paused(&mut self, target: Target, paused: bool) -> Result<(), StoreError> {
        let (scope, name) = target.args();
        let mut inv = scripts().control.prepare_invoke();
        inv.key(&self.keys.counters)
            .arg(self.keys.prefix())
            .arg(scope)
            .arg(name)
            .arg(if paused { "pause" } else { "resume" });
        self.conn.run(|c| inv.invoke::<i64>(c)).map(|_| ())
    }

    /// Replaces the limits of a queue or a type with `set` (hash fields), removing every other
    /// field of `all`.
    pub fn set_limits(
        &mut self,
        target: Target,
        all: &[&str],
        set: &[(&str, String)],
    ) -> Result<(), StoreError> {
        let (scope, name) = target.args();
        let mut inv = scripts().control.prepare_invoke();
        inv.key(&self.keys.counters)
            .arg(self.keys.prefix())
            .arg(scope)
            .arg(name)
            .arg("limits");
        for f in all.iter().filter(|f| !set.iter().any(|(s, _)| s == *f)) {
            inv.arg(*f);
        }
        inv.arg("|");
        for (f, v) in set {
            inv.arg(*f).arg(v);
        }
        self.conn.run(|c| inv.invoke::<i64>(c)).map(|_| ())
    }

    /// The limit fields of a queue or a type.
    pub fn limit_fields(&mut self, target: Target) -> Result<HashMap<String, String>, StoreError> {
        let key = match target {
            Target::Queue(q) => self.keys.queue(q, "meta"),
            Target::Type(t) => self.keys.job_type(t, ""),
        };
        self.conn
            .run_idempotent(|c| redis::cmd("HGETALL").arg(&key).query(c))
    }

    /// Why the pending job `id` is not running, None when it is not pending.
    pub fn why_waiting(&mut self, id: &str) -> Result<Option<Waiting>, StoreError> {
        let mut inv = scripts().why.prepare_invoke();
        inv.key(&self.keys.counters).arg(self.keys.prefix()).arg(id);
        let r: Vec<String> = self.conn.run_idempotent(|c| inv.invoke(c))?;
        Ok(match r.as_slice() {
            [reason, detail, until] => Some(Waiting {
                reason: reason.clone(),
                detail: detail.clone(),
                until: until
                    .parse::<f64>()
                    .ok()
                    .and_then(|t| from_micros(t as i64)),
            }),
            _ => None,
        })
    }
}
