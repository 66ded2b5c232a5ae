//! The job as the API shows it ([`Job`]), as a client submits it ([`NewJob`]), and its status.
//!
//! A [`Job`] serialises to the article's job JSON: timestamps as RFC 3339 UTC, payload and result
//! as JSON values. Reading one from its Redis record is the store's business (`store/record.rs`).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;

use crate::config::queues::{is_valid_queue_name, MAX_QUEUE_NAME_LEN};

/// A job's id: a lower-case UUID, v4 when jobq made it. Reads as a `&str` wherever one is
/// wanted, and serialises as the plain string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    /// A new random id, for a job being created.
    pub fn new_random() -> JobId {
        JobId(uuid::Uuid::new_v4().to_string())
    }

    /// An id given by a client (`/jobs/{id}`): any UUID, in any case; None if it is not one.
    pub fn parse(s: &str) -> Option<JobId> {
        uuid::Uuid::parse_str(s).ok().map(|u| JobId(u.to_string()))
    }

    /// An id as stored in Redis, which only jobq writes.
    pub(crate) fn from_stored(s: String) -> JobId {
        JobId(s)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for JobId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for JobId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for JobId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<JobId> for String {
    fn eq(&self, other: &JobId) -> bool {
        *self == other.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a job is in its life. Jobs waiting out a delay or a retry backoff are `Pending` with a
/// `run_at` in the future.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for its parents (`depends_on`, a workflow) to finish.
    Waiting,
    /// Waiting to run: ready, delayed, or waiting out a retry backoff (`run_at` says when).
    Pending,
    /// Claimed by a worker process and running.
    Running,
    /// Finished successfully; the record expires after JOB_TTL_SECS.
    Completed,
    /// Out of attempts (or failed permanently): in the dead-letter queue.
    Failed,
    /// Cancelled (through the API, or because a parent did not complete); never retried, kept
    /// for JOB_TTL_SECS.
    Cancelled,
    /// Not started before its start deadline (`expires_at`); never run, kept for JOB_TTL_SECS.
    Expired,
}

impl JobStatus {
    /// The status as the API and the Redis record spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Waiting => "waiting",
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Expired => "expired",
        }
    }

    /// Whether the job has ended (nothing more happens to it but a DLQ retry of a failed one).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled | JobStatus::Expired
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "waiting" => Ok(JobStatus::Waiting),
            "pending" => Ok(JobStatus::Pending),
            "running" => Ok(JobStatus::Running),
            "completed" => Ok(JobStatus::Completed),
            "failed" => Ok(JobStatus::Failed),
            "cancelled" => Ok(JobStatus::Cancelled),
            "expired" => Ok(JobStatus::Expired),
            other => Err(format!("unknown job status {other:?}")),
        }
    }
}

/// A job as `GET /jobs/{id}` returns it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Job {
    /// The job's id.
    pub id: JobId,
    /// Its type (`"type"` in JSON).
    #[serde(rename = "type")]
    pub kind: String,
    /// The submitted payload.
    pub payload: Value,
    /// Where it is in its life.
    pub status: JobStatus,
    /// When it was accepted.
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    /// The last change of status, attempt or error.
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
    /// When the latest attempt started.
    #[serde(serialize_with = "rfc3339_opt")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it completed, or moved to the dead-letter queue.
    #[serde(serialize_with = "rfc3339_opt")]
    pub completed_at: Option<DateTime<Utc>>,
    /// When a delayed job or a retry becomes due; null once it is due.
    #[serde(serialize_with = "rfc3339_opt")]
    pub run_at: Option<DateTime<Utc>>,
    /// Attempts started: 1 for a job that succeeded first time.
    pub attempt: u32,
    /// Attempts allowed before the dead-letter queue.
    pub max_attempts: u32,
    /// This job's limit for one attempt; JOB_TIMEOUT_SECS applies when None.
    pub timeout_secs: Option<u64>,
    /// The last attempt's error, kept after a later success as a record of what happened.
    pub error: Option<String>,
    /// The last 20 failed attempts, oldest first; kept when a dead job is retried.
    pub errors: Vec<AttemptError>,
    /// What the handler returned.
    pub result: Option<Value>,
    /// The queue it belongs to.
    pub queue: String,
    /// Its priority within the queue.
    pub priority: Priority,
    /// Its fairness group within the queue, if any.
    pub group: Option<String>,
    /// Times its handler snoozed it ("not now, try again later") without using an attempt.
    pub snoozes: u32,
    /// Why a pending or waiting job is not running yet (filled in by `GET /jobs/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
    /// The jobs it depends on (`depends_on`, or its workflow's edges).
    pub parents: Vec<String>,
    /// The jobs that depend on it (those created while it had not finished).
    pub children: Vec<String>,
    /// Its workflow, if it belongs to one.
    pub workflow_id: Option<String>,
    /// Its name in its workflow.
    #[serde(rename = "ref")]
    pub node_ref: Option<String>,
    /// What happens to it when a parent fails or is cancelled: `cancel` or `run`.
    pub on_parent_failure: OnParentFailure,
    /// Its unique key, held while it is pending, scheduled, waiting or running.
    pub unique_key: Option<String>,
    /// Its start deadline: not started by then, it ends `expired`.
    #[serde(serialize_with = "rfc3339_opt")]
    pub expires_at: Option<DateTime<Utc>>,
    /// True once its cancellation was asked for while it ran.
    pub cancel_requested: bool,
    /// The cron schedule that created it, if one did.
    pub schedule: Option<String>,
    /// What its handler last reported of its progress, if it reported any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
}

/// What happens to a job when one of its parents fails, is cancelled or expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnParentFailure {
    /// It is cancelled, with its own descendants (the default).
    #[default]
    Cancel,
    /// It runs anyway once every parent has ended.
    Run,
}

/// A running job's last progress report (`JobContext::progress`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Progress {
    /// 0-100.
    pub percent: u8,
    /// What the handler is doing, at most 200 characters.
    pub message: String,
    /// When it was reported (RFC 3339 in the API; ms since the epoch in Redis).
    #[serde(serialize_with = "rfc3339_ms", deserialize_with = "f64_ms")]
    pub at: i64,
}

/// Why a pending job is not running: `reason` is one of `queued`, `scheduled`, `backoff`,
/// `queue_paused`, `type_paused`, `concurrency_limit`, `rate_limit`, `group_limit`,
/// `circuit_open`, `no_worker`; for a waiting job, `parents`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Waiting {
    pub reason: String,
    pub detail: String,
    /// When the reason ends, if known.
    #[serde(serialize_with = "rfc3339_opt")]
    pub until: Option<DateTime<Utc>>,
}

/// A job's priority within its queue: every ready `high` job of a queue is claimed before any
/// `normal` one, and `normal` before `low`; first in, first out within a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    High,
    #[default]
    Normal,
    Low,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

impl FromStr for Priority {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "high" => Ok(Priority::High),
            "normal" => Ok(Priority::Normal),
            "low" => Ok(Priority::Low),
            _ => Err(()),
        }
    }
}

/// The queue a job goes to when its submission names none.
pub const DEFAULT_QUEUE: &str = "default";

/// Longest group key.
pub const MAX_GROUP_LEN: usize = 128;

/// Checks a queue name: 1-64 characters of `A-Z a-z 0-9 _ - . :`.
pub fn check_queue_name(name: &str) -> Result<(), String> {
    if !is_valid_queue_name(name) {
        return Err(format!(
            "queue name {name:?} must be 1-{MAX_QUEUE_NAME_LEN} characters of A-Z a-z 0-9 _ - . :"
        ));
    }
    Ok(())
}

/// Checks a group key: 1-128 printable ASCII characters without spaces or braces (a brace
/// would change the key's Redis Cluster hash tag).
pub fn check_group(group: &str) -> Result<(), String> {
    if group.is_empty()
        || group.len() > MAX_GROUP_LEN
        || !group
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}')
    {
        return Err(format!(
            "\"group\" must be 1-{MAX_GROUP_LEN} printable ASCII characters without spaces or braces"
        ));
    }
    Ok(())
}

/// One failed attempt in a job's history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AttemptError {
    pub attempt: u32,
    pub error: String,
    /// When it failed (RFC 3339 in the API; ms since the epoch in Redis).
    #[serde(serialize_with = "rfc3339_ms", deserialize_with = "f64_ms")]
    pub at: i64,
}

fn rfc3339_ms<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    match from_micros(ms.saturating_mul(1000)) {
        Some(t) => rfc3339(&t, s),
        None => s.serialize_none(),
    }
}

/// Lua's cjson writes numbers as floats; accept either form.
fn f64_ms<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    Ok(f64::deserialize(d)? as i64)
}

fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true))
}

fn rfc3339_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// Microseconds since the Unix epoch (as the scripts take them from Redis `TIME`) → UTC time.
pub fn from_micros(us: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
}

/// The body of `POST /jobs`, exactly as a client may send it; unknown fields are refused so a
/// typo such as `"dealy_ms"` is an error rather than a job that runs at the wrong time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewJobRequest {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub payload: Option<Value>,
    pub delay_ms: Option<u64>,
    pub run_at: Option<String>,
    pub max_attempts: Option<u32>,
    pub timeout_secs: Option<u64>,
    /// Same as the `Idempotency-Key` header: a repeat within IDEMPOTENCY_TTL_SECS returns the
    /// first job's id instead of creating another job.
    pub idempotency_key: Option<String>,
    /// The queue (default `default`).
    pub queue: Option<String>,
    /// `high`, `normal` (the default) or `low`.
    pub priority: Option<Priority>,
    /// A fairness group (a tenant, an API key): groups of a queue are served in turn.
    pub group: Option<String>,
    /// Refuses (409) a second job with this key while the first is pending, scheduled,
    /// waiting or running.
    pub unique_key: Option<String>,
    /// A start deadline (RFC 3339): a job not started by then ends `expired`.
    pub expires_at: Option<String>,
    /// The same deadline as seconds after submission.
    pub expires_in_secs: Option<u64>,
    /// Ids of existing jobs that must complete before this one becomes pending.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// `cancel` (the default) or `run`: what a parent's failure or cancellation does to it.
    pub on_parent_failure: Option<OnParentFailure>,
}

/// A validated submission, ready for the store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub id: JobId,
    pub kind: String,
    /// The payload as compact JSON text, stored as is.
    pub payload: String,
    /// Run no earlier than this many milliseconds after Redis's clock at creation.
    pub delay_ms: u64,
    /// Or no earlier than this wall-clock time (microseconds since the epoch).
    pub run_at_us: Option<i64>,
    pub max_attempts: u32,
    pub timeout_secs: Option<u64>,
    pub idempotency_key: Option<String>,
    pub queue: String,
    pub priority: Priority,
    pub group: Option<String>,
    pub unique_key: Option<String>,
    /// Start deadline, µs since the epoch.
    pub expires_at_us: Option<i64>,
    /// Jobs that must complete first: existing ids, or (in a workflow) the new ids of nodes.
    pub parents: Vec<String>,
    pub on_parent_failure: OnParentFailure,
    /// Its name in its workflow, set by the workflow's submission.
    pub node_ref: Option<String>,
    /// The cron schedule whose tick created it.
    pub schedule: Option<String>,
}

/// Most parents a job may name in `depends_on`.
pub const MAX_PARENTS: usize = 100;

/// Longest unique key.
pub const MAX_UNIQUE_KEY_LEN: usize = 200;

/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;

/// Checks an idempotency key: 1-200 printable ASCII characters.
pub fn check_idempotency_key(key: &str) -> Result<(), String> {
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY_LEN
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(format!(
            "idempotency key must be 1-{MAX_IDEMPOTENCY_KEY_LEN} printable ASCII characters without spaces"
        ));
    }
    Ok(())
}

/// Longest delay a job may ask for: a year. Anything longer is almost certainly a unit mistake.
pub const MAX_DELAY_MS: u64 = 365 * 24 * 3600 * 1000;
/// Most attempts a job may ask for.
pub const MAX_ATTEMPTS_LIMIT: u32 = 1000;

impl NewJobRequest {
    /// Checks everything that does not depend on the handler; `known_type` says whether a handler
    /// exists, and `validate_payload` runs that handler's own checks.
    pub fn validate(
        self,
        default_max_attempts: u32,
        known_types: &[&str],
        validate_payload: impl Fn(&str, &Value) -> Result<(), String>,
    ) -> Result<NewJob, String> {
        let kind = match self.kind {
            None => {
                return Err(format!(
                    "missing \"type\": name one of the known job types: {}",
                    known_types.join(", ")
                ))
            }
            Some(k) => k,
        };
        if !known_types.contains(&kind.as_str()) {
            return Err(format!(
                "unknown job type {kind:?}: known types are {}",
                if known_types.is_empty() {
                    "none (this server has no handlers registered)".to_string()
                } else {
                    known_types.join(", ")
                }
            ));
        }
        let payload = self
            .payload
            .unwrap_or_else(|| Value::Object(Default::default()));
        validate_payload(&kind, &payload)
            .map_err(|e| format!("invalid payload for {kind:?} job: {e}"))?;
        if self.delay_ms.is_some() && self.run_at.is_some() {
            return Err("give either \"delay_ms\" or \"run_at\", not both".into());
        }
        let delay_ms = self.delay_ms.unwrap_or(0);
        if delay_ms > MAX_DELAY_MS {
            return Err(format!(
                "\"delay_ms\" {delay_ms} is more than a year ({MAX_DELAY_MS}); use \"run_at\" for a fixed time"
            ));
        }
        let latest = Utc::now().timestamp_micros() + MAX_DELAY_MS as i64 * 1000;
        let run_at_us = match self.run_at {
            None => None,
            Some(s) => Some(
                DateTime::parse_from_rfc3339(&s)
                    .map_err(|e| {
                        format!("\"run_at\" {s:?} is not an RFC 3339 time such as 2026-01-02T15:04:05Z: {e}")
                    })?
                    .timestamp_micros(),
            ),
        };
        if run_at_us.is_some_and(|t| t > latest) {
            return Err(format!(
                "\"run_at\" is more than a year ahead; jobq schedules at most {MAX_DELAY_MS} ms into the future"
            ));
        }
        let max_attempts = self.max_attempts.unwrap_or(default_max_attempts);
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&max_attempts) {
            return Err(format!(
                "\"max_attempts\" must be between 1 and {MAX_ATTEMPTS_LIMIT}, got {max_attempts}"
            ));
        }
        if let Some(t) = self.timeout_secs {
            if t == 0 || t > 7 * 24 * 3600 {
                return Err(format!(
                    "\"timeout_secs\" must be between 1 and 604800 (a week), got {t}"
                ));
            }
        }
        if let Some(k) = &self.idempotency_key {
            check_idempotency_key(k).map_err(|e| format!("\"idempotency_key\": {e}"))?;
        }
        let queue = self.queue.unwrap_or_else(|| DEFAULT_QUEUE.to_string());
        check_queue_name(&queue).map_err(|e| format!("\"queue\": {e}"))?;
        if let Some(g) = &self.group {
            check_group(g)?;
        }
        if let Some(k) = &self.unique_key {
            if k.is_empty()
                || k.len() > MAX_UNIQUE_KEY_LEN
                || !k
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}')
            {
                return Err(format!(
                    "\"unique_key\" must be 1-{MAX_UNIQUE_KEY_LEN} printable ASCII characters without spaces or braces"
                ));
            }
        }
        let expires_at_us = match (self.expires_at, self.expires_in_secs) {
            (Some(_), Some(_)) => {
                return Err("give either \"expires_at\" or \"expires_in_secs\", not both".into())
            }
            (Some(s), None) => Some(
                DateTime::parse_from_rfc3339(&s)
                    .map_err(|e| {
                        format!("\"expires_at\" {s:?} is not an RFC 3339 time such as 2026-01-02T15:04:05Z: {e}")
                    })?
                    .timestamp_micros(),
            ),
            (None, Some(secs)) => {
                if secs == 0 || secs > MAX_DELAY_MS / 1000 {
                    return Err(format!(
                        "\"expires_in_secs\" must be between 1 and {} (a year), got {secs}",
                        MAX_DELAY_MS / 1000
                    ));
                }
                Some(Utc::now().timestamp_micros() + secs as i64 * 1_000_000)
            }
            (None, None) => None,
        };
        if expires_at_us.is_some_and(|t| t > latest) {
            return Err("\"expires_at\" is more than a year ahead".into());
        }
        if self.depends_on.len() > MAX_PARENTS {
            return Err(format!(
                "\"depends_on\" names {} jobs; at most {MAX_PARENTS} are allowed",
                self.depends_on.len()
            ));
        }
        let mut parents: Vec<String> = Vec::new();
        for p in &self.depends_on {
            let id = JobId::parse(p).ok_or_else(|| {
                format!("\"depends_on\": {p:?} is not a job id (a UUID such as 550e8400-e29b-41d4-a716-446655440000)")
            })?;
            if !parents.iter().any(|q| *q == id.as_str()) {
                parents.push(id.as_str().to_string());
            }
        }
        Ok(NewJob {
            unique_key: self.unique_key,
            expires_at_us,
            parents,
            on_parent_failure: self.on_parent_failure.unwrap_or_default(),
            node_ref: None,
            schedule: None,
            idempotency_key: self.idempotency_key,
            queue,
            priority: self.priority.unwrap_or_default(),
            group: self.group,
            id: JobId::new_random(),
            kind,
            payload: payload.to_string(),
            delay_ms,
            run_at_us,
            max_attempts,
            timeout_secs: self.timeout_secs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: Value) -> Result<NewJob, String> {
        let r: NewJobRequest = serde_json::from_value(v).map_err(|e| e.to_string())?;
        r.validate(3, &["noop", "email"], |_, _| Ok(()))
    }

    #[test]
    fn a_minimal_job_gets_defaults() {
        let j = req(json!({"type": "noop"})).unwrap();
        assert_eq!(j.kind, "noop");
        assert_eq!(j.payload, "{}");
        assert_eq!(j.max_attempts, 3);
        assert_eq!(j.delay_ms, 0);
        assert!(uuid::Uuid::parse_str(&j.id).is_ok());
    }

    #[test]
    fn unknown_type_lists_the_known_ones() {
        let e = req(json!({"type": "fax"})).unwrap_err();
        assert!(e.contains("\"fax\"") && e.contains("noop, email"), "{e}");
        let e = req(json!({"payload": {}})).unwrap_err();
        assert!(e.contains("missing \"type\""), "{e}");
    }

    #[test]
    fn unknown_fields_and_bad_times_are_named() {
        let e = req(json!({"type": "noop", "dealy_ms": 5})).unwrap_err();
        assert!(e.contains("dealy_ms"), "{e}");
        let e = req(json!({"type": "noop", "run_at": "tomorrow"})).unwrap_err();
        assert!(e.contains("run_at"), "{e}");
        let e = req(json!({"type": "noop", "run_at": "2030-01-01T00:00:00Z", "delay_ms": 1}))
            .unwrap_err();
        assert!(e.contains("not both"), "{e}");
        let e = req(json!({"type": "noop", "max_attempts": 0})).unwrap_err();
        assert!(e.contains("max_attempts"), "{e}");
    }

    #[test]
    fn run_at_is_parsed_to_micros_and_bounded() {
        let soon = (Utc::now() + chrono::Duration::days(30)).to_rfc3339();
        let j = req(json!({"type": "noop", "run_at": soon})).unwrap();
        assert!(j.run_at_us.unwrap() > Utc::now().timestamp_micros());
        let j = req(json!({"type": "noop", "run_at": "2020-01-01T00:00:00.250Z"})).unwrap();
        assert_eq!(j.run_at_us, Some(1_577_836_800_250_000));
        let e = req(json!({"type": "noop", "run_at": "9999-12-31T23:59:59Z"})).unwrap_err();
        assert!(e.contains("more than a year"), "{e}");
    }

    #[test]
    fn job_ids_are_uuids() {
        assert!(JobId::parse("not-a-uuid").is_none());
        assert_eq!(
            JobId::parse("550E8400-E29B-41D4-A716-446655440000")
                .unwrap()
                .as_str(),
            "550e8400-e29b-41d4-a716-446655440000"
        );
    }
}
