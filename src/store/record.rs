//! A job's record in Redis (a hash of strings, field names in `keys::field`) read back as the
//! API's [`Job`]. The domain type knows nothing of Redis; this is where the two meet.

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashMap;

use super::keys::field;
use super::StoreError;
use crate::job::{from_micros, Job, JobId, OnParentFailure, DEFAULT_QUEUE};

/// Builds a job from its Redis hash. A record missing a required field is reported rather
/// than shown half-empty, since it means the record was written by something else.
pub fn job_from_record(id: &str, rec: &HashMap<String, String>) -> Result<Job, StoreError> {
    parse(id, rec).map_err(StoreError::corrupt)
}

fn parse(id: &str, rec: &HashMap<String, String>) -> Result<Job, String> {
    let get = |name: &str| rec.get(name).map(String::as_str).filter(|s| !s.is_empty());
    let need = |name: &str| get(name).ok_or_else(|| format!("job record {id} lacks {name}"));
    let time = |name: &str| -> Result<Option<DateTime<Utc>>, String> {
        match get(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .and_then(from_micros)
                .map(Some)
                .ok_or_else(|| format!("job record {id} has a bad {name}: {v:?}")),
        }
    };
    let json = |name: &str| -> Result<Option<Value>, String> {
        match get(name) {
            None => Ok(None),
            Some(v) => serde_json::from_str(v)
                .map(Some)
                .map_err(|e| format!("job record {id} has bad JSON in {name}: {e}")),
        }
    };
    let created_at = time(field::CREATED_AT)?
        .ok_or_else(|| format!("job record {id} lacks {}", field::CREATED_AT))?;
    Ok(Job {
        id: JobId::from_stored(id.to_string()),
        kind: need(field::TYPE)?.to_string(),
        payload: json(field::PAYLOAD)?.unwrap_or(Value::Null),
        status: need(field::STATUS)?.parse()?,
        created_at,
        updated_at: time(field::UPDATED_AT)?.unwrap_or(created_at),
        started_at: time(field::STARTED_AT)?,
        completed_at: time(field::COMPLETED_AT)?,
        run_at: time(field::RUN_AT)?,
        attempt: get(field::ATTEMPT)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        max_attempts: get(field::MAX_ATTEMPTS)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        timeout_secs: get(field::TIMEOUT_SECS).and_then(|v| v.parse().ok()),
        error: get(field::ERROR).map(str::to_string),
        errors: match get(field::ERRORS) {
            None => Vec::new(),
            Some(v) => serde_json::from_str(v)
                .map_err(|e| format!("job record {id} has a bad error history: {e}"))?,
        },
        result: json(field::RESULT)?,
        // Records written before named queues existed have none of these.
        queue: get(field::QUEUE).unwrap_or(DEFAULT_QUEUE).to_string(),
        priority: get(field::PRIORITY)
            .and_then(|v| v.parse().ok())
            .unwrap_or_default(),
        group: get(field::GROUP).map(str::to_string),
        snoozes: get(field::SNOOZES)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
        waiting: None,
        parents: list(get(field::PARENTS)),
        children: list(get(field::CHILDREN)),
        workflow_id: get(field::WORKFLOW).map(str::to_string),
        node_ref: get(field::REF).map(str::to_string),
        on_parent_failure: match get(field::ON_PARENT_FAILURE) {
            Some("run") => OnParentFailure::Run,
            _ => OnParentFailure::Cancel,
        },
        unique_key: get(field::UNIQUE).map(str::to_string),
        expires_at: time(field::EXPIRES)?,
        cancel_requested: get(field::CANCEL).is_some(),
        schedule: get(field::SCHEDULE).map(str::to_string),
        subscription: get(field::SUBSCRIPTION).map(str::to_string),
        traceparent: get(field::TRACEPARENT).map(str::to_string),
        tracestate: get(field::TRACESTATE).map(str::to_string),
        // Informational only: an unreadable report is left out rather than failing the read.
        progress: get(field::PROGRESS).and_then(|v| serde_json::from_str(v).ok()),
    })
}

/// A comma-separated list of ids.
fn list(v: Option<&str>) -> Vec<String> {
    v.map(|s| s.split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(fields: &[(&str, &str)]) -> HashMap<String, String> {
        fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn record_becomes_the_article_json() {
        let rec: HashMap<String, String> = record(&[
            ("type", "email"),
            ("payload", r#"{"to":"a@b.c"}"#),
            ("status", "completed"),
            ("created_at", "1775557800000000"),
            ("updated_at", "1775557803000000"),
            ("started_at", "1775557801000000"),
            ("completed_at", "1775557803250001"),
            ("attempt", "1"),
            ("max_attempts", "3"),
        ]);
        let job = job_from_record("550e8400-e29b-41d4-a716-446655440000", &rec).unwrap();
        let v = serde_json::to_value(&job).unwrap();
        assert_eq!(v["type"], "email");
        assert_eq!(v["payload"], json!({"to": "a@b.c"}));
        assert_eq!(v["status"], "completed");
        assert_eq!(v["created_at"], "2026-04-07T10:30:00.000000Z");
        assert_eq!(v["started_at"], "2026-04-07T10:30:01.000000Z");
        assert_eq!(v["completed_at"], "2026-04-07T10:30:03.250001Z");
        assert_eq!(v["attempt"], 1);
        assert_eq!(v["error"], Value::Null);
        assert_eq!(v["result"], Value::Null);
        assert_eq!(v["run_at"], Value::Null);
        assert_eq!(v["errors"], json!([]));
    }

    #[test]
    fn error_history_comes_from_lua_json() {
        let mut rec: HashMap<String, String> = record(&[
            ("type", "fail"),
            ("status", "failed"),
            ("created_at", "1775557800000000"),
        ]);
        rec.insert(
            "errors".into(),
            r#"[{"attempt":1,"error":"nope","at":1.775557801e+12}]"#.into(),
        );
        let v = serde_json::to_value(job_from_record("x", &rec).unwrap()).unwrap();
        assert_eq!(
            v["errors"],
            json!([{"attempt": 1, "error": "nope", "at": "2026-04-07T10:30:01.000000Z"}])
        );
    }

    #[test]
    fn progress_is_shown_when_readable() {
        let mut rec: HashMap<String, String> = record(&[
            ("type", "t"),
            ("status", "running"),
            ("created_at", "1775557800000000"),
        ]);
        let v = serde_json::to_value(job_from_record("x", &rec).unwrap()).unwrap();
        assert!(v.get("progress").is_none(), "{v}");
        rec.insert(
            "progress".into(),
            r#"{"percent":40,"message":"resizing","at":1775557801000}"#.into(),
        );
        let v = serde_json::to_value(job_from_record("x", &rec).unwrap()).unwrap();
        assert_eq!(
            v["progress"],
            json!({"percent": 40, "message": "resizing", "at": "2026-04-07T10:30:01.000000Z"})
        );
        rec.insert("progress".into(), "{bad".into());
        assert!(job_from_record("x", &rec).unwrap().progress.is_none());
    }
}
