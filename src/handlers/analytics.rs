//! The `analytics` job: `{"event": "signup", "user_id"?: "...", "timestamp"?: RFC 3339,
//! "properties"?: {...}}`, counted into Redis per event per UTC day: a count, the distinct users
//! (HyperLogLog) and the sums of the numeric properties. Other property values (strings,
//! booleans, objects) are accepted and ignored.
//!
//! Counting is one Lua script per event, idempotent per job id: a retried job (its result lost
//! to a crash, say) does not count twice. Without a timestamp the event belongs to the UTC day on
//! which the job runs. See [`crate::store::analytics`] for the keys.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::handler::is_valid_type_name;
use crate::handler::{Handler, JobContext, JobError, JobResult};
use crate::store::analytics::Event;
use crate::store::StoreError;

/// Most properties in one event.
pub const MAX_PROPERTIES: usize = 100;
/// Longest user id, in bytes.
pub const MAX_USER_ID: usize = 256;
/// Largest magnitude of a summed property: far beyond any real amount, and small enough that no
/// sum can overflow in Redis (an error half-way through the script would count part of an event).
pub const MAX_PROPERTY_VALUE: f64 = 1e15;
/// A Redis problem as a job error: always worth a retry (Redis comes back; a script error is a
/// bug that a deploy fixes).
pub fn redis_error(what: &str, e: StoreError) -> JobError {
    if e.is_unavailable() {
        JobError::transient(format!(
            "{what}: Redis is unavailable ({}); will retry",
            e.message()
        ))
    } else {
        JobError::transient(format!("{what}: {e}"))
    }
}

/// Whether `name` is a usable event (or property) name: 1-64 of `[A-Za-z0-9_.:-]`.
pub fn is_event_name(name: &str) -> bool {
    is_valid_type_name(name)
}

/// A payload that passed validation.
#[derive(Debug, Clone, PartialEq)]
struct Parsed {
    event: String,
    user_id: Option<String>,
    at: Option<DateTime<Utc>>,
    sums: Vec<(String, f64)>,
}

/// The payload as sent; [`parse`] checks what serde cannot (names, lengths, the time, sums).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    properties: Option<Map<String, Value>>,
}

fn parse(p: &Value) -> Result<Parsed, String> {
    let p: Payload = super::payload::decode(
        p,
        "the payload must be an object like {\"event\": \"signup\"}",
    )?;
    let event = match p.event {
        Some(s) if is_event_name(&s) => s,
        Some(s) => {
            return Err(format!(
                "\"event\": {} must be 1-64 characters of A-Z a-z 0-9 _ - . :",
                Value::String(s)
            ))
        }
        None => return Err("\"event\" is required, e.g. \"signup\"".into()),
    };
    let user_id = match p.user_id {
        Some(s) if s.is_empty() || s.len() > MAX_USER_ID => {
            return Err(format!(
                "\"user_id\": {} must be a string of 1-{MAX_USER_ID} bytes",
                Value::String(s)
            ))
        }
        other => other,
    };
    let at = match p.timestamp {
        None => None,
        Some(s) => Some(
            DateTime::parse_from_rfc3339(&s)
                .map_err(|e| {
                    format!(
                        "\"timestamp\": {s:?} is not an RFC 3339 time like 2026-01-02T15:04:05Z ({e})"
                    )
                })?
                .with_timezone(&Utc),
        ),
    };
    let props = p.properties.unwrap_or_default();
    if props.len() > MAX_PROPERTIES {
        return Err(format!(
            "\"properties\": at most {MAX_PROPERTIES} properties"
        ));
    }
    let mut sums = Vec::new();
    for (k, v) in &props {
        let Some(n) = v.as_f64() else {
            continue;
        };
        if !is_event_name(k) {
            return Err(format!(
                "\"properties\": numeric property {k:?} needs a name of 1-64 characters of A-Z a-z 0-9 _ - . :"
            ));
        }
        if !n.is_finite() || n.abs() > MAX_PROPERTY_VALUE {
            return Err(format!(
                "\"properties\": {k:?} is {v}; numbers are summed and must be within ±1e15"
            ));
        }
        sums.push((k.clone(), n));
    }
    Ok(Parsed {
        event,
        user_id,
        at,
        sums,
    })
}

pub struct Analytics {
    done_ttl_secs: u64,
    ttl_secs: u64,
}

impl Analytics {
    pub fn new(c: &Config) -> Analytics {
        Analytics {
            // As long as the aggregates it guards: a dead job can be retried from the DLQ at any
            // time, and must not count twice while its day's figures still exist.
            done_ttl_secs: c
                .job_ttl_secs
                .max(c.analytics_retention_days.saturating_mul(86_400)),
            ttl_secs: c.analytics_retention_days.saturating_mul(86_400),
        }
    }
}

/// The payload's schema for the API document, as `parse` checks it. Not expressed: a numeric
/// property's name must be an event name (other values are ignored, whatever their name), and
/// `user_id`'s limit is in bytes.
pub fn payload_schema() -> Value {
    json!({
        "type": "object",
        "description": "An event, counted per UTC day.",
        "additionalProperties": false,
        "required": ["event"],
        "properties": {
            "event": {
                "type": "string",
                "pattern": "^[A-Za-z0-9_.:-]{1,64}$",
                "description": "The event name: 1-64 characters of A-Z a-z 0-9 _ - . :"
            },
            "user_id": {
                "type": "string",
                "nullable": true,
                "minLength": 1,
                "maxLength": MAX_USER_ID,
                "description": "Counted once per day among the distinct users (at most 256 bytes)."
            },
            "timestamp": {
                "type": "string",
                "format": "date-time",
                "nullable": true,
                "description": "When it happened (RFC 3339); default when the job runs."
            },
            "properties": {
                "type": "object",
                "nullable": true,
                "maxProperties": MAX_PROPERTIES,
                "additionalProperties": {
                    "minimum": -MAX_PROPERTY_VALUE as i64,
                    "maximum": MAX_PROPERTY_VALUE as i64
                },
                "description": "Numbers are summed per day (within ±1e15, under a name of 1-64 characters of A-Z a-z 0-9 _ - . :); other values are ignored."
            }
        },
        "example": {"event": "signup", "user_id": "u-42", "properties": {"amount": 9.5}}
    })
}

impl Handler for Analytics {
    fn validate(&self, payload: &Value) -> Result<(), String> {
        parse(payload).map(|_| ())
    }

    fn payload_schema(&self) -> Option<Value> {
        Some(payload_schema())
    }

    fn run(&self, job: &JobContext) -> JobResult {
        let p = parse(&job.payload).map_err(JobError::permanent)?;
        let day = p.at.unwrap_or_else(Utc::now).format("%Y-%m-%d").to_string();
        let event = Event {
            job_id: &job.id,
            name: &p.event,
            day: &day,
            user_id: p.user_id.as_deref(),
            sums: &p.sums,
        };
        let counted = job
            .with_store(|s| s.record_event(&event, self.done_ttl_secs, self.ttl_secs))
            .map_err(|e| redis_error(&format!("recording event {:?}", p.event), e))?;
        if !counted {
            log::info!(
                "job {} (analytics): event {:?} was already counted by an earlier attempt",
                job.id,
                p.event
            );
        }
        Ok(json!({ "event": p.event, "date": day, "counted": counted }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Arc;

    use crate::handler::Cancellation;
    use crate::store::test_redis::TestRedis;
    use crate::store::StorePool;
    use redis::Commands;

    /// A job as a worker runs it, with Redis from `pool`.
    fn ctx(id: &str, payload: Value, pool: &Arc<StorePool>) -> JobContext {
        JobContext {
            store: Some(pool.clone()),
            ..JobContext::new(id, "analytics", payload, 1, 3, Cancellation::new(None))
        }
    }

    #[test]
    fn an_event_counts_once_however_often_its_job_runs() {
        let redis = TestRedis::start();
        let config = Config::default();
        let handler = Analytics::new(&config);
        let pool = StorePool::new(redis.backend());
        let payload = json!({
            "event": "order.paid", "user_id": "u1", "timestamp": "2026-03-04T10:00:00Z",
            "properties": {"amount": 12.5, "items": 2, "plan": "pro"}
        });
        let job = ctx("job-a", payload.clone(), &pool);
        // The same job id three times: an attempt whose outcome was lost, then retries.
        let first = handler.run(&job).unwrap();
        assert_eq!(
            first,
            json!({"event": "order.paid", "date": "2026-03-04", "counted": true})
        );
        for _ in 0..2 {
            assert_eq!(handler.run(&job).unwrap()["counted"], false);
        }
        // Another job with the same event does count.
        let other = ctx("job-b", payload, &pool);
        assert_eq!(handler.run(&other).unwrap()["counted"], true);

        let mut r = redis.raw();
        let stats: HashMap<String, String> = r
            .hgetall("{jobq}:analytics:stats:2026-03-04:order.paid")
            .unwrap();
        assert_eq!(stats.get("count").map(String::as_str), Some("2"));
        assert_eq!(stats.get("sum:amount").map(String::as_str), Some("25"));
        assert_eq!(stats.get("sum:items").map(String::as_str), Some("4"));
        assert_eq!(stats.get("sum:plan"), None, "strings are not summed");
        let users: u64 = r
            .pfcount("{jobq}:analytics:users:2026-03-04:order.paid")
            .unwrap();
        assert_eq!(users, 1);
        let events: Vec<String> = r.smembers("{jobq}:analytics:events:2026-03-04").unwrap();
        assert_eq!(events, vec!["order.paid"]);
        let ttl: i64 = r.ttl("{jobq}:analytics:done:job-a").unwrap();
        // The marker lasts as long as the aggregates it guards, since a dead job can be retried
        // from the DLQ at any time.
        let guard_secs = config
            .job_ttl_secs
            .max(config.analytics_retention_days * 86_400);
        assert!(ttl > 0 && ttl <= guard_secs as i64, "{ttl}");
        assert!(
            ttl > config.job_ttl_secs as i64 || guard_secs == config.job_ttl_secs,
            "{ttl}"
        );
    }

    #[test]
    fn without_redis_it_is_a_transient_error() {
        let redis = TestRedis::start();
        let pool = StorePool::new(redis.backend());
        drop(redis);
        let handler = Analytics::new(&Config::default());
        let payload = json!({"event": "signup"});
        let err = handler
            .run(&ctx("job-x", payload.clone(), &pool))
            .unwrap_err();
        assert!(!err.is_permanent(), "{err:?}");
        assert!(err.message.contains("Redis is unavailable"), "{err:?}");
        // Run outside a worker, with no Redis at all: the same.
        let bare = JobContext::new("job-x", "analytics", payload, 1, 3, Cancellation::new(None));
        let err = handler.run(&bare).unwrap_err();
        assert!(!err.is_permanent(), "{err:?}");
        assert!(err.message.contains("Redis is unavailable"), "{err:?}");
    }

    #[test]
    fn payloads_are_checked_by_field() {
        let ok = parse(&json!({
            "event": "order.paid",
            "user_id": "u1",
            "timestamp": "2026-03-01T23:30:00-02:00",
            "properties": {"amount": 12.5, "items": 3, "plan": "pro", "gift": true}
        }))
        .unwrap();
        assert_eq!(ok.event, "order.paid");
        assert_eq!(
            ok.at.unwrap().format("%Y-%m-%d").to_string(),
            "2026-03-02",
            "days are UTC days"
        );
        let mut sums = ok.sums.clone();
        sums.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(sums, vec![("amount".into(), 12.5), ("items".into(), 3.0)]);
        assert!(parse(&json!({"event": "signup"})).is_ok());

        for (bad, field) in [
            (json!({}), "\"event\""),
            (json!({"event": ""}), "\"event\""),
            (json!({"event": "has space"}), "\"event\""),
            (json!({"event": "x".repeat(65)}), "\"event\""),
            (json!({"event": "e", "user_id": 5}), "\"user_id\""),
            (json!({"event": "e", "user_id": ""}), "\"user_id\""),
            (
                json!({"event": "e", "timestamp": "yesterday"}),
                "\"timestamp\"",
            ),
            (json!({"event": "e", "properties": [1]}), "\"properties\""),
            (
                json!({"event": "e", "properties": {"a b": 1}}),
                "\"properties\"",
            ),
            (
                json!({"event": "e", "properties": {"big": 1e300}}),
                "\"properties\"",
            ),
            (json!({"event": "e", "userId": "u"}), "\"userId\""),
            (json!("signup"), "object"),
        ] {
            let err = parse(&bad).unwrap_err();
            assert!(err.contains(field), "{bad}: {err}");
        }
    }
}
