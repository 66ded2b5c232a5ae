//! `GET /workers`: every live process that runs workers, from its heartbeat (`P:worker:<proc>`,
//! written by `worker/beat.rs`) read in one script call. Times of the heartbeat come from
//! Redis's clock (the key's remaining TTL), so processes on hosts with skewed clocks compare.

use serde_json::{json, Map, Value};

use super::router::Call;
use super::{ApiError, Reply};
use crate::job::{api_time, from_micros, Progress};
use crate::store::LiveProcess;

/// `GET /workers`: live worker processes, by id. A process whose heartbeat has expired is not
/// listed (the reaper recovers its jobs), nor is one that runs no workers (ROLE=api).
pub fn list(call: &mut Call) -> Result<Reply, ApiError> {
    let live = call.store.live_processes()?;
    let now_ms = live.now_us / 1000;
    let workers: Vec<Value> = live
        .processes
        .iter()
        .filter_map(|p| process_json(p, now_ms))
        .collect();
    Ok(Reply::json(
        200,
        &json!({ "now": rfc3339_ms(now_ms), "workers": workers }),
    ))
}

fn rfc3339_ms(ms: i64) -> String {
    from_micros(ms.saturating_mul(1000))
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One process, or None for a heartbeat that does not say enough: the bare `{}` a process of
/// an earlier version writes at start-up, until its first full beat a moment later.
fn process_json(p: &LiveProcess, now_ms: i64) -> Option<Value> {
    let beat: Map<String, Value> = serde_json::from_str(&p.beat).ok()?;
    let threads = beat.get("workers")?.as_u64()?;
    // An earlier version wrote neither the TTL nor the host: its TTL is that of the default
    // RECOVERY_SECS, its host the start of the process id (`<host>-<pid>-<6 hex>`).
    let ttl_ms = beat.get("ttl_ms").and_then(Value::as_i64).unwrap_or(10_000);
    let age_ms = (ttl_ms - p.pttl_ms).max(0);
    let host = match beat.get("host").and_then(Value::as_str) {
        Some(h) => h.to_string(),
        None => p.id.rsplitn(3, '-').nth(2).unwrap_or(&p.id).to_string(),
    };
    let listed = beat.get("jobs").and_then(Value::as_array);
    let jobs: Vec<Value> = listed
        .into_iter()
        .flatten()
        .zip(p.jobs.iter().map(Some).chain(std::iter::repeat(None)))
        .filter_map(|(j, read)| job_json(j, read))
        .collect();
    let busy = beat
        .get("busy")
        .and_then(Value::as_u64)
        .unwrap_or(jobs.len() as u64);
    let mut out = json!({
        "id": p.id,
        "host": host,
        "pid": beat.get("pid").cloned().unwrap_or(Value::Null),
        "threads": threads,
        "busy": busy,
        "idle": threads.saturating_sub(busy),
        "jobs": jobs,
        "started_at": beat.get("started_at").cloned().unwrap_or(Value::Null),
        "last_heartbeat_at": rfc3339_ms(now_ms - age_ms),
        "heartbeat_age_ms": age_ms,
    });
    // Left out for a process of an earlier version, which does not say.
    for key in ["role", "queues", "order"] {
        if let Some(v) = beat.get(key) {
            out[key] = v.clone();
        }
    }
    Some(out)
}

/// A running job as the heartbeat lists it, with its record's start time (Redis's clock; the
/// heartbeat's own, from the host's clock, if the record has none) and progress.
fn job_json(listed: &Value, read: Option<&(Option<i64>, Option<String>)>) -> Option<Value> {
    let id = listed.get("id")?.as_str()?;
    // In µs, as `GET /jobs/{id}` shows the record's `started_at`.
    let started_us = read
        .and_then(|(us, _)| *us)
        .or_else(|| Some(listed.get("started_ms")?.as_i64()? * 1000))?;
    let started_at = api_time(&from_micros(started_us).unwrap_or_default());
    let mut job = json!({
        "id": id,
        "type": listed.get("type").and_then(Value::as_str).unwrap_or(""),
        "queue": listed.get("queue").and_then(Value::as_str).unwrap_or(""),
        "started_at": started_at,
    });
    let progress = read
        .and_then(|(_, p)| p.as_deref())
        .and_then(|p| serde_json::from_str::<Progress>(p).ok());
    if let Some(p) = progress {
        job["progress"] = serde_json::to_value(p).unwrap_or_default();
    }
    Some(job)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(beat: &str, pttl_ms: i64, jobs: Vec<(Option<i64>, Option<String>)>) -> LiveProcess {
        LiveProcess {
            id: "vm-a-1-8156-6638f9".into(),
            beat: beat.into(),
            pttl_ms,
            jobs,
        }
    }

    #[test]
    fn a_beat_is_dated_by_its_remaining_ttl_and_jobs_by_their_record() {
        let now = 1_767_366_247_000;
        let beat = r#"{"pid":8156,"host":"vm-a-1","role":"all","queues":"all","order":"weighted","workers":4,"busy":1,"started_at":"2026-01-02T14:00:00+00:00","ttl_ms":10000,"jobs":[{"id":"j1","type":"sleep","queue":"default","started_ms":1767366240000}]}"#;
        let read = vec![(
            Some(1_767_366_241_500_000),
            Some(r#"{"percent":40,"message":"m","at":1767366246000}"#.into()),
        )];
        let v = process_json(&process(beat, 8_800, read), now).unwrap();
        assert_eq!(v["heartbeat_age_ms"], 1200);
        assert_eq!(v["last_heartbeat_at"], "2026-01-02T15:04:05.800Z");
        assert_eq!((v["busy"].as_u64(), v["idle"].as_u64()), (Some(1), Some(3)));
        assert_eq!(v["jobs"][0]["started_at"], "2026-01-02T15:04:01.500000Z");
        assert_eq!(v["jobs"][0]["progress"]["percent"], 40);
        // Its record gone: the heartbeat's own start time, no progress.
        let v = process_json(&process(beat, 8_800, vec![(None, None)]), now).unwrap();
        assert_eq!(v["jobs"][0]["started_at"], "2026-01-02T15:04:00.000000Z");
        assert!(v["jobs"][0].get("progress").is_none());
    }

    #[test]
    fn an_earlier_versions_heartbeat_shows_what_it_says() {
        let old = r#"{"pid":8156,"workers":2,"started_at":"2026-01-02T14:00:00+00:00"}"#;
        let v = process_json(&process(old, 9_000, vec![]), 1_767_366_247_000).unwrap();
        assert_eq!(v["host"], "vm-a-1", "from the process id");
        assert_eq!(v["heartbeat_age_ms"], 1000, "the default TTL");
        assert_eq!((v["busy"].as_u64(), v["idle"].as_u64()), (Some(0), Some(2)));
        assert!(v.get("role").is_none() && v.get("queues").is_none());
        assert!(process_json(&process("{}", 9_000, vec![]), 0).is_none());
    }
}
