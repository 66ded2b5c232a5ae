//! Every Redis key name and job-record field jobq uses, built in this one place.
//!
//! All keys start with the configured prefix, which carries a `{hash tag}` so they share one
//! Redis Cluster slot; the Lua scripts rebuild job keys from the same prefix (see `lua/*.lua`).
//! docs/redis-keys.md describes each key; keep the two in step.

/// Field names of a job record (a Redis hash), so no logic spells one twice.
pub mod field {
    pub const TYPE: &str = "type";
    pub const PAYLOAD: &str = "payload";
    pub const STATUS: &str = "status";
    pub const ATTEMPT: &str = "attempt";
    pub const MAX_ATTEMPTS: &str = "max_attempts";
    pub const TIMEOUT_SECS: &str = "timeout_secs";
    pub const CREATED_AT: &str = "created_at";
    pub const UPDATED_AT: &str = "updated_at";
    pub const STARTED_AT: &str = "started_at";
    pub const COMPLETED_AT: &str = "completed_at";
    pub const RUN_AT: &str = "run_at";
    pub const ERROR: &str = "error";
    pub const RESULT: &str = "result";
    /// JSON list of the last 20 failed attempts: `[{"attempt", "error", "at"}]`.
    pub const ERRORS: &str = "errors";
    pub const QUEUE: &str = "queue";
    /// Absent for `normal`.
    pub const PRIORITY: &str = "priority";
    pub const GROUP: &str = "group";
    pub const SNOOZES: &str = "snoozes";
    /// Parent ids, comma-separated.
    pub const PARENTS: &str = "parents";
    /// Child ids, comma-separated: the jobs created while this one had not finished.
    pub const CHILDREN: &str = "children";
    pub const WORKFLOW: &str = "wf";
    pub const REF: &str = "ref";
    /// `run` when the job runs even if a parent fails; absent for `cancel`.
    pub const ON_PARENT_FAILURE: &str = "opf";
    pub const UNIQUE: &str = "unique";
    /// Start deadline (µs).
    pub const EXPIRES: &str = "expires";
    /// `1` once its cancellation was asked for while it ran.
    pub const CANCEL: &str = "cancel";
    pub const SCHEDULE: &str = "schedule";
    /// The event subscription a webhook delivery job delivers for.
    pub const SUBSCRIPTION: &str = "sub";
    /// The W3C trace context it was submitted in.
    pub const TRACEPARENT: &str = "traceparent";
    pub const TRACESTATE: &str = "tracestate";
    /// JSON `{"percent", "message", "at"}` (`at` in ms) of a running job's last progress report.
    pub const PROGRESS: &str = "progress";
}

/// Key names under one prefix. Queue and type keys are built by the scripts (see
/// `lua/common.lua`); the few Rust needs are here.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    pub completed: String,
    pub dlq: String,
    /// Hash of counters moved by the scripts: `created`, `running`, `completed`, `dead`.
    pub counters: String,
    pub workers: String,
    /// Set of every queue name that has had a job or a setting.
    pub queues: String,
    /// Set of job types that have a setting (pause, limits, breaker).
    pub types: String,
    /// Marker that some live process serves every queue (expires with its heartbeat).
    pub served_all: String,
    /// Set of running jobs whose cancellation was asked for.
    pub cancelling: String,
    /// Set of every schedule's name.
    pub schedules: String,
    /// Sorted set of the schedules that are not paused, by next fire time (µs).
    pub schedules_due: String,
    /// List of the partitions' tags (partition 0's keys only; see `partitions.rs`).
    pub partitions: String,
    /// Hash of the event subscriptions: name → JSON (every partition holds them all).
    pub subscriptions: String,
    /// What the subscriptions want, for the event steps (see `lua/subscriptions.lua`).
    pub subscriptions_index: String,
    /// The version of the subscriptions (partition 0's, copied with them to the others).
    pub subscriptions_version: String,
    /// The outbox: a list of event records waiting to become webhook jobs.
    pub events: String,
    /// Events dropped because the outbox was full, not yet reported.
    pub events_dropped: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        let k = |name: &str| format!("{prefix}:{name}");
        Keys {
            prefix: prefix.to_string(),
            completed: k("completed"),
            dlq: k("dlq"),
            counters: k("counters"),
            workers: k("workers"),
            queues: k("queues"),
            types: k("types"),
            served_all: k("served-all"),
            cancelling: k("cancelling"),
            schedules: k("schedules"),
            schedules_due: k("schedules:due"),
            partitions: k("partitions"),
            subscriptions: k("subscriptions"),
            subscriptions_index: k("subscriptions:index"),
            subscriptions_version: k("subscriptions:version"),
            events: k("events"),
            events_dropped: k("events:dropped"),
        }
    }

    /// The prefix itself, handed to scripts that build job keys from ids they read.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A job's record.
    pub fn job(&self, id: &str) -> String {
        format!("{}:job:{id}", self.prefix)
    }

    /// The list of jobs one worker process has claimed.
    pub fn running(&self, worker: &str) -> String {
        format!("{}:running:{worker}", self.prefix)
    }

    /// The job id an idempotency key was first used for.
    pub fn idempotency(&self, key: &str) -> String {
        format!("{}:idem:{key}", self.prefix)
    }

    /// One worker process's liveness key, which expires unless refreshed.
    pub fn heartbeat(&self, worker: &str) -> String {
        format!("{}:worker:{worker}", self.prefix)
    }

    /// The list a waiting process's fetcher blocks on; a script that makes work ready pushes
    /// a token into it.
    pub fn wake(&self, worker: &str) -> String {
        format!("{}:wake:{worker}", self.prefix)
    }

    /// A schedule's hash: its document, source, revision, pause, last run and counts.
    pub fn schedule(&self, name: &str) -> String {
        format!("{}:schedule:{name}", self.prefix)
    }

    /// A key of one job type (`what` empty: its hash), as `lua/common.lua` builds them.
    pub fn job_type(&self, kind: &str, what: &str) -> String {
        match what {
            "" => format!("{}:t:{kind}", self.prefix),
            _ => format!("{}:t:{kind}:{what}", self.prefix),
        }
    }

    /// A key of one queue: its name in braces, as `lua/common.lua` builds them.
    pub fn queue(&self, queue: &str, what: &str) -> String {
        format!("{}:q:{{{queue}}}:{what}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_hash_tag() {
        let k = Keys::new("{jobq}");
        assert_eq!(k.queue("mail", "meta"), "{jobq}:q:{mail}:meta");
        assert_eq!(k.job_type("email", ""), "{jobq}:t:email");
        assert_eq!(k.job_type("email", "parked"), "{jobq}:t:email:parked");
        assert_eq!(k.job("abc"), "{jobq}:job:abc");
        assert_eq!(k.running("w1"), "{jobq}:running:w1");
        assert_eq!(k.heartbeat("w1"), "{jobq}:worker:w1");
    }
}
