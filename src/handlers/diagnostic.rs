//! Diagnostic job types for tests, benchmarks and demos (ENABLE_DIAGNOSTIC_JOBS=true): `noop`
//! succeeds at once, `sleep` waits `{"ms": N}` (honouring cancellation), `fail` always fails.

use serde::Deserialize;
use serde_json::{json, Number, Value};
use std::time::{Duration, Instant};

use crate::handler::{Handler, JobContext, JobError, JobResult, Registry};

/// Longest `sleep` job: ten minutes.
pub const MAX_SLEEP_MS: u64 = 600_000;

pub fn register(r: &mut Registry) {
    r.register("noop", Noop);
    r.register("sleep", Sleep);
    r.register("fail", Fail);
}

struct Noop;

impl Handler for Noop {
    fn run(&self, _job: &JobContext) -> JobResult {
        Ok(Value::Null)
    }

    fn payload_schema(&self) -> Option<Value> {
        Some(json!({"description": "Any JSON value; ignored."}))
    }
}

struct Sleep;

/// The `sleep` payload: `{"ms": N}` and nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SleepPayload {
    #[serde(default)]
    ms: Option<Number>,
}

fn sleep_ms(payload: &Value) -> Result<u64, String> {
    let p: SleepPayload = super::payload::decode(payload, SLEEP_REQUIRED)?;
    let n = p.ms.ok_or(SLEEP_REQUIRED)?;
    n.as_u64()
        .filter(|ms| *ms <= MAX_SLEEP_MS)
        .ok_or_else(|| format!("\"ms\" must be an integer from 0 to {MAX_SLEEP_MS}, got {n}"))
}

/// The answer to a `sleep` payload without `ms` (or that is not an object).
const SLEEP_REQUIRED: &str = "\"ms\" is required: {\"ms\": 250} sleeps a quarter second";

impl Handler for Sleep {
    fn validate(&self, payload: &Value) -> Result<(), String> {
        sleep_ms(payload).map(|_| ())
    }

    fn payload_schema(&self) -> Option<Value> {
        Some(json!({
            "type": "object",
            "description": "Waits `ms` milliseconds.",
            "additionalProperties": false,
            "required": ["ms"],
            "properties": {"ms": {"type": "integer", "minimum": 0, "maximum": MAX_SLEEP_MS}},
            "example": {"ms": 10}
        }))
    }

    fn run(&self, job: &JobContext) -> JobResult {
        let ms = sleep_ms(&job.payload).map_err(JobError::permanent)?;
        let start = Instant::now();
        if job.cancel.sleep(Duration::from_millis(ms)) {
            Ok(serde_json::json!({ "slept_ms": ms }))
        } else {
            Err(job.cancel.stop_error(format!(
                "sleep cancelled after {} of {ms} ms",
                start.elapsed().as_millis()
            )))
        }
    }
}

struct Fail;

const DEFAULT_FAIL_MESSAGE: &str = "failed on purpose (fail job)";

impl Handler for Fail {
    fn validate(&self, payload: &Value) -> Result<(), String> {
        match payload.get("message") {
            None | Some(Value::String(_)) => Ok(()),
            Some(v) => Err(format!("\"message\" must be a string, got {v}")),
        }
    }

    fn payload_schema(&self) -> Option<Value> {
        // No "type": a payload that is not an object has no "message" and is accepted.
        Some(json!({
            "description": "Fails every attempt with `message` as the error. Other fields are ignored.",
            "properties": {"message": {"type": "string"}},
            "example": {"message": "boom"}
        }))
    }

    fn run(&self, job: &JobContext) -> JobResult {
        let msg = job.payload["message"]
            .as_str()
            .unwrap_or(DEFAULT_FAIL_MESSAGE);
        Err(JobError::transient(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sleep_payload_is_checked() {
        assert!(Sleep.validate(&json!({"ms": 10})).is_ok());
        assert!(Sleep
            .validate(&json!({"ms": "x"}))
            .unwrap_err()
            .contains("\"ms\""));
        assert!(Sleep.validate(&json!({"ms": 600_001})).is_err());
        assert!(Sleep.validate(&json!({})).is_err());
        assert!(Sleep.validate(&json!([10])).is_err());
        assert_eq!(
            Sleep.validate(&json!({"ms": 1, "note": "x"})).unwrap_err(),
            "unknown field \"note\": expected ms"
        );
        assert!(Fail.validate(&json!({"message": 3})).is_err());
    }

    #[test]
    fn sleep_says_why_it_stopped() {
        use crate::handler::{Cancellation, ErrorKind};
        let run = |c: &Cancellation| {
            let job = JobContext::new("j", "sleep", json!({"ms": 5000}), 1, 3, c.clone());
            Sleep.run(&job).unwrap_err().kind
        };
        let c = Cancellation::new(None);
        c.cancel();
        assert_eq!(run(&c), ErrorKind::Transient);
        let c = Cancellation::new(None);
        c.cancel_job();
        assert_eq!(run(&c), ErrorKind::Cancelled);
    }
}
