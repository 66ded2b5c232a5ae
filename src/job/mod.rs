//! The job as the API shows it ([`Job`]) and its status; as a client submits it ([`NewJob`]),
//! in `submit.rs`.
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
    /// For a webhook job that delivers an event: the subscription it delivers for (such a job
    /// makes no event of its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    /// The W3C trace context it was submitted in, if any (`traceparent` header or field).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The `tracestate` that came with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
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
    s.serialize_str(&api_time(t))
}

/// A time as the API writes every one: RFC 3339 in UTC with microseconds,
/// `2026-12-01T20:45:43.224118Z`.
pub fn api_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
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

/// Microseconds since the epoch as an API document field: [`api_time`], or null for a time
/// out of range.
pub fn api_time_value(us: i64) -> Value {
    from_micros(us).map_or(Value::Null, |t| Value::String(api_time(&t)))
}

mod submit;
pub mod trace;

pub use submit::{check_idempotency_key, NewJob, NewJobRequest, MAX_PARENTS};
pub use trace::Trace;
