//! A submission: the body of `POST /jobs` as a client sends it ([`NewJobRequest`]) and its
//! validation into what the store creates ([`NewJob`]).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::trace::{check_tracestate, parse_traceparent, Trace};
use super::{check_group, check_queue_name, JobId, OnParentFailure, Priority, DEFAULT_QUEUE};

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
    /// The W3C trace context it is created in: handlers get it with a span id of each
    /// attempt's own. The `traceparent` header does the same.
    pub traceparent: Option<String>,
    /// Vendor trace data passed on with `traceparent` (also the `tracestate` header).
    pub tracestate: Option<String>,
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
    /// The trace it was submitted in.
    pub trace: Option<Trace>,
}

impl NewJob {
    /// Its type as its log lines name it, with its trace when it has one.
    pub fn kind_label(&self) -> super::trace::KindLabel<'_> {
        super::trace::KindLabel(
            &self.kind,
            self.trace.as_ref().map(|t| t.traceparent.as_str()),
        )
    }
}

#[cfg(test)]
impl NewJob {
    /// A plain job of type `kind`: no payload, no delay, 3 attempts, queue `default`.
    pub(crate) fn plain(kind: &str) -> NewJob {
        NewJob {
            id: JobId::new_random(),
            kind: kind.into(),
            payload: "{}".into(),
            delay_ms: 0,
            run_at_us: None,
            max_attempts: 3,
            timeout_secs: None,
            idempotency_key: None,
            queue: DEFAULT_QUEUE.into(),
            priority: Priority::Normal,
            group: None,
            unique_key: None,
            expires_at_us: None,
            parents: Vec::new(),
            on_parent_failure: OnParentFailure::Cancel,
            node_ref: None,
            schedule: None,
            trace: None,
        }
    }
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
        // One reading of the clock for the bound and for `expires_in_secs`, so a deadline of
        // exactly a year is within the bound.
        let now_us = Utc::now().timestamp_micros();
        let latest = now_us + MAX_DELAY_MS as i64 * 1000;
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
                Some(now_us + secs as i64 * 1_000_000)
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
        let trace = match (self.traceparent, self.tracestate) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err("\"tracestate\" needs a \"traceparent\" to go with it".into())
            }
            (Some(tp), state) => {
                let traceparent =
                    parse_traceparent(&tp).map_err(|e| format!("\"traceparent\": {e}"))?;
                if let Some(s) = &state {
                    check_tracestate(s).map_err(|e| format!("\"tracestate\": {e}"))?;
                }
                Some(Trace {
                    traceparent,
                    tracestate: state,
                })
            }
        };
        Ok(NewJob {
            trace,
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
    fn a_start_deadline_of_a_year_is_taken() {
        let year = MAX_DELAY_MS / 1000;
        let j = req(json!({"type": "noop", "expires_in_secs": year})).unwrap();
        assert!(j.expires_at_us.is_some());
        let e = req(json!({"type": "noop", "expires_in_secs": year + 1})).unwrap_err();
        assert!(e.contains("expires_in_secs"), "{e}");
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
