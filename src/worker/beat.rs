//! What a worker process's heartbeat says about it (`P:worker:<proc>`), read by `GET /workers`:
//! the fixed facts, worked out once, and on every beat how many workers are busy and with which
//! jobs. No beat time is written: the host's clock may be skewed, so the reader takes the key's
//! `PTTL` against the `ttl_ms` written here, which Redis's clock alone decides.

use serde_json::{json, Value};
use std::time::Duration;

use super::InFlight;
use crate::config::Config;

/// The parts of the heartbeat that do not change while the process runs.
pub struct BeatInfo {
    fixed: serde_json::Map<String, Value>,
}

impl BeatInfo {
    /// The facts of this process: host, pid, role, the queues it serves (`"all"` without
    /// QUEUES) and their order, its worker threads, start time and heartbeat TTL.
    pub fn new(config: &Config, host: &str, ttl: Duration) -> BeatInfo {
        let queues = if config.queues.is_empty() {
            json!("all")
        } else {
            json!(config.queues.iter().map(|(q, _)| q).collect::<Vec<_>>())
        };
        let fixed = json!({
            "pid": std::process::id(),
            "host": host,
            "role": config.role.as_str(),
            "queues": queues,
            "order": config.queue_order.as_str(),
            // The name the first heartbeats used for the worker threads; kept for readers of
            // processes of either version.
            "workers": config.num_workers,
            "started_at": chrono::Utc::now().to_rfc3339(),
            "ttl_ms": ttl.as_millis() as u64,
        });
        match fixed {
            Value::Object(fixed) => BeatInfo { fixed },
            _ => unreachable!("a JSON object"),
        }
    }

    /// The heartbeat's JSON now: the fixed facts, `busy` and the running jobs (at most one per
    /// worker thread, so the key stays small). `None` before the workers exist.
    pub fn json(&self, in_flight: Option<&InFlight>) -> String {
        let running = in_flight.map(InFlight::running).unwrap_or_default();
        let mut info = self.fixed.clone();
        info.insert("busy".into(), json!(running.len()));
        let jobs: Vec<Value> = running
            .iter()
            .map(|j| json!({"id": j.id, "type": j.kind, "queue": j.queue, "started_ms": j.at_ms}))
            .collect();
        info.insert("jobs".into(), Value::Array(jobs));
        Value::Object(info).to_string()
    }
}
