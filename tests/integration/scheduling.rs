//! Delayed jobs (`delay_ms`) and jobs for a fixed time (`run_at`). Times are compared on the
//! job's own timestamps, never against the test's sense of how long something took.

use crate::harness::*;
use chrono::{DateTime, SecondsFormat};
use serde_json::{json, Value};
use std::time::Duration;

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`, the form jobq writes.
fn format_rfc3339_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_else(|| panic!("{ms} ms is out of chrono's range"))
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[test]
fn run_at_is_written_like_jobq_writes_times() {
    assert_eq!(
        format_rfc3339_ms(951_782_400_000),
        "2000-02-29T00:00:00.000Z"
    );
    let now = now_ms();
    assert_eq!(parse_rfc3339_ms(&format_rfc3339_ms(now)), Ok(now));
}

#[test]
fn delayed_job_starts_no_earlier_than_delay_ms() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let id = server.submit(&json!({"type": "noop", "delay_ms": 700}));
    let job = server.wait_for_status(&id, "completed", Duration::from_secs(15));
    let created = ts_req(&job, "created_at");
    let started = ts_req(&job, "started_at");
    assert!(
        started >= created + 700,
        "started {} ms after creation, delay_ms was 700: {job}",
        started - created
    );
    assert_eq!(job["attempt"], 1, "{job}");
}

#[test]
fn delayed_job_is_pending_with_run_at_while_it_waits() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let id = server.submit(&json!({"type": "noop", "delay_ms": 30_000}));
    let job = server.job(&id);
    assert_eq!(job["status"], "pending", "{job}");
    assert_eq!(job["started_at"], Value::Null, "{job}");
    let created = ts_req(&job, "created_at");
    let run_at =
        ts(&job, "run_at").unwrap_or_else(|| panic!("a delayed job should show its run_at: {job}"));
    assert!(
        (created + 30_000..=created + 31_000).contains(&run_at),
        "run_at should be created_at + 30 s, is created_at + {} ms: {job}",
        run_at - created
    );
    let stats = server.stats();
    assert_eq!(stats["scheduled_jobs"], 1, "{stats}");
    assert_eq!(stats["total_jobs"], 1, "{stats}");
    assert_eq!(stats["running_jobs"], 0, "{stats}");
}

#[test]
fn run_at_job_starts_no_earlier_than_run_at() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let run_at = now_ms() + 1000;
    let id = server.submit(&json!({"type": "noop", "run_at": format_rfc3339_ms(run_at)}));
    let job = server.wait_for_status(&id, "completed", Duration::from_secs(15));
    let started = ts_req(&job, "started_at");
    assert!(
        started >= run_at,
        "started {} ms before its run_at {}: {job}",
        run_at - started,
        format_rfc3339_ms(run_at)
    );
}

#[test]
fn future_run_at_is_shown_while_the_job_waits() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let run_at = now_ms() + 3_600_000;
    let sent = format_rfc3339_ms(run_at);
    let id = server.submit(&json!({"type": "noop", "run_at": sent}));
    let job = server.job(&id);
    assert_eq!(job["status"], "pending", "{job}");
    assert_eq!(
        ts(&job, "run_at"),
        Some(run_at),
        "run_at should be the time asked for ({sent}): {job}"
    );
    assert_eq!(server.stat("scheduled_jobs"), 1);
}

#[test]
fn run_at_with_an_offset_is_the_same_instant() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    // An hour from now, written in UTC+02:00: the wall-clock digits are two hours ahead.
    let instant = now_ms() + 3_600_000;
    let utc = format_rfc3339_ms(instant + 2 * 3_600_000);
    let sent = format!("{}+02:00", utc.strip_suffix('Z').unwrap());
    let id = server.submit(&json!({"type": "noop", "run_at": sent}));
    let job = server.job(&id);
    assert_eq!(
        ts(&job, "run_at"),
        Some(instant),
        "run_at {sent} should be shown as {}: {job}",
        format_rfc3339_ms(instant)
    );
}

#[test]
fn run_at_in_the_past_runs_at_once() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let id = server.submit(&json!({
        "type": "noop",
        "run_at": format_rfc3339_ms(now_ms() - 3_600_000)
    }));
    let job = server.wait_for_status(&id, "completed", Duration::from_secs(10));
    assert_eq!(job["attempt"], 1, "{job}");
}

#[test]
fn delayed_jobs_count_towards_max_queue_size() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| c.max_queue_size = 2);
    for _ in 0..2 {
        server.submit(&json!({"type": "noop", "delay_ms": 60_000}));
    }
    let r = server.post_json("/jobs", &json!({"type": "noop", "delay_ms": 60_000}));
    r.expect_json_error(503, "3rd delayed job with MAX_QUEUE_SIZE 2");
    assert!(r.header("retry-after").is_some(), "{r:?}");
    assert_eq!(server.stat("scheduled_jobs"), 2);
}
