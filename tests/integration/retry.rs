//! Failures: retries with backoff, the dead-letter queue, permanent errors, attempt timeouts.
//!
//! Tests that assert on counters use the real binary, since counters are per process.

use crate::harness::*;
use jobq::{JobContext, JobError, JobResult};
use serde_json::json;
use std::time::Duration;

/// Env for a binary server with quick retries.
const QUICK_RETRIES: &[(&str, &str)] = &[("BACKOFF_BASE_MS", "50"), ("BACKOFF_MAX_MS", "200")];

#[test]
fn failing_job_is_retried_then_dead_lettered_after_max_attempts() {
    let redis = RedisServer::start();
    let server = BinaryServer::spawn(&redis.url(), QUICK_RETRIES);
    let id = server.submit(&json!({
        "type": "fail",
        "payload": {"message": "disk on fire"},
        "max_attempts": 3
    }));
    let job = server.wait_for_status(&id, "failed", Duration::from_secs(20));
    assert_eq!(job["attempt"], 3, "{job}");
    assert_eq!(job["max_attempts"], 3, "{job}");
    assert_eq!(job["error"], "disk on fire", "{job}");
    // Whatever the final timestamps are, they are well-formed.
    let _ = (ts(&job, "completed_at"), ts_req(&job, "started_at"));

    let stats = server.wait_for_stat("dlq_size", 1, Duration::from_secs(5));
    assert_eq!(stats["failed_jobs"], 1, "{stats}");
    assert_eq!(stats["completed_jobs"], 0, "{stats}");
    assert_eq!(stats["pending_jobs"], 0, "{stats}");
    assert_eq!(stats["scheduled_jobs"], 0, "{stats}");

    let text = wait_for("jobs_dlq_total >= 1.0", Duration::from_secs(5), || {
        let text = server.metrics();
        match metric_sum(&text, "jobs_dlq_total") {
            Some(n) if n >= 1.0 => Ok(text),
            n => Err(format!("jobs_dlq_total = {n:?}")),
        }
    });
    assert_eq!(metric_sum(&text, "jobs_dlq_total"), Some(1.0), "{text}");
    assert_eq!(metric_sum(&text, "jobs_failed_total"), Some(3.0), "{text}");
    assert_eq!(metric_sum(&text, "jobs_retried_total"), Some(2.0), "{text}");
    assert_eq!(metric_sum(&text, "jobs_created_total"), Some(1.0), "{text}");
}

#[test]
fn job_with_max_attempts_1_is_dead_lettered_without_retry() {
    let redis = RedisServer::start();
    let server = BinaryServer::spawn(&redis.url(), QUICK_RETRIES);
    let id = server.submit(&json!({
        "type": "fail",
        "payload": {"message": "once is enough"},
        "max_attempts": 1
    }));
    let job = server.wait_for_status(&id, "failed", Duration::from_secs(15));
    assert_eq!(job["attempt"], 1, "{job}");
    assert_eq!(job["error"], "once is enough", "{job}");
    let stats = server.wait_for_stat("dlq_size", 1, Duration::from_secs(5));
    assert_eq!(stats["failed_jobs"], 1, "{stats}");

    let text = wait_for("jobs_dlq_total >= 1.0", Duration::from_secs(5), || {
        let text = server.metrics();
        match metric_sum(&text, "jobs_dlq_total") {
            Some(n) if n >= 1.0 => Ok(text),
            n => Err(format!("jobs_dlq_total = {n:?}")),
        }
    });
    assert_eq!(metric_sum(&text, "jobs_dlq_total"), Some(1.0), "{text}");
    assert_eq!(metric_sum(&text, "jobs_failed_total"), Some(1.0), "{text}");
    assert_eq!(
        metric_sum(&text, "jobs_retried_total").unwrap_or(0.0),
        0.0,
        "{text}"
    );
}

#[test]
fn permanent_error_is_dead_lettered_after_the_first_attempt() {
    let redis = RedisServer::start();
    let server = TestServer::with_registry(
        &redis,
        |r| {
            r.register("reject", |_job: &JobContext| -> JobResult {
                Err(JobError::permanent("recipient rejected"))
            });
        },
        |_| {},
    );
    let id = server.submit(&json!({"type": "reject", "payload": {}, "max_attempts": 3}));
    let job = server.wait_for_status(&id, "failed", Duration::from_secs(15));
    assert_eq!(
        job["attempt"], 1,
        "a permanent error must not be retried: {job}"
    );
    assert_eq!(job["max_attempts"], 3, "{job}");
    assert_eq!(job["error"], "recipient rejected", "{job}");
    let stats = server.wait_for_stat("dlq_size", 1, Duration::from_secs(5));
    assert_eq!(stats["failed_jobs"], 1, "{stats}");
    assert_eq!(stats["scheduled_jobs"], 0, "{stats}");
}

#[test]
fn handler_failing_once_then_succeeding_completes_on_attempt_2() {
    let redis = RedisServer::start();
    let server = TestServer::with_registry(
        &redis,
        |r| {
            r.register("flaky", |job: &JobContext| -> JobResult {
                if job.attempt == 1 {
                    Err(JobError::transient("peer not ready"))
                } else {
                    Ok(json!({"attempt": job.attempt, "max_attempts": job.max_attempts}))
                }
            });
        },
        |_| {},
    );
    let id = server.submit(&json!({"type": "flaky", "payload": {}, "max_attempts": 3}));
    let job = server.wait_for_status(&id, "completed", Duration::from_secs(15));
    assert_eq!(job["attempt"], 2, "{job}");
    assert_eq!(
        job["result"],
        json!({"attempt": 2, "max_attempts": 3}),
        "the handler should see attempt 2 of 3: {job}"
    );
    assert_eq!(
        job["error"], "peer not ready",
        "the first attempt's error is kept after the success: {job}"
    );
    let stats = server.wait_for_stat("completed_jobs", 1, Duration::from_secs(5));
    assert_eq!(stats["dlq_size"], 0, "{stats}");
    assert_eq!(stats["failed_jobs"], 0, "{stats}");
}

#[test]
fn job_waiting_for_its_retry_is_pending_with_run_at() {
    let redis = RedisServer::start();
    // A long backoff, so the retry stays scheduled while we look.
    let server = TestServer::start(&redis, |c| {
        c.backoff_base_ms = 20_000;
        c.backoff_max_ms = 30_000;
    });
    let id = server.submit(&json!({
        "type": "fail",
        "payload": {"message": "try later"},
        "max_attempts": 3
    }));
    let job = wait_for(
        &format!("job {id} to wait for its retry after the first failure"),
        Duration::from_secs(10),
        || {
            let job = server.job(&id);
            if job["status"] == "pending" && job["attempt"] == 1 && !job["error"].is_null() {
                Ok(job)
            } else {
                Err(job.to_string())
            }
        },
    );
    assert_eq!(job["error"], "try later", "{job}");
    let run_at = ts(&job, "run_at")
        .unwrap_or_else(|| panic!("a job waiting for a retry should show run_at: {job}"));
    let started = ts_req(&job, "started_at");
    assert!(
        run_at > started,
        "the retry should be due after the failed attempt started: {job}"
    );
    let stats = server.stats();
    assert!(
        stats["scheduled_jobs"].as_u64().unwrap_or(0) >= 1,
        "the waiting retry should count as scheduled: {stats}"
    );
    assert_eq!(stats["dlq_size"], 0, "{stats}");
}

#[test]
fn attempt_exceeding_timeout_secs_fails_with_a_timeout_error() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let id = server.submit(&json!({
        "type": "sleep",
        "payload": {"ms": 60_000},
        "timeout_secs": 1,
        "max_attempts": 1
    }));
    let job = server.wait_for_status(&id, "failed", Duration::from_secs(20));
    assert_eq!(job["timeout_secs"], 1, "{job}");
    assert_eq!(job["attempt"], 1, "{job}");
    let error = job["error"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        error.contains("time"),
        "the error should say the attempt timed out: {job}"
    );
    // The worker is free again.
    let next = server.submit(&json!({"type": "noop"}));
    server.wait_for_status(&next, "completed", Duration::from_secs(10));
    assert_eq!(server.stat("dlq_size"), 1);
}

#[test]
fn per_job_max_attempts_overrides_the_server_default() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| c.max_attempts = 2);
    let default_id = server.submit(&json!({"type": "fail", "payload": {"message": "a"}}));
    let custom_id = server.submit(&json!({
        "type": "fail",
        "payload": {"message": "b"},
        "max_attempts": 4
    }));
    let default_job = server.wait_for_status(&default_id, "failed", Duration::from_secs(20));
    let custom_job = server.wait_for_status(&custom_id, "failed", Duration::from_secs(20));
    assert_eq!(default_job["max_attempts"], 2, "{default_job}");
    assert_eq!(default_job["attempt"], 2, "{default_job}");
    assert_eq!(custom_job["max_attempts"], 4, "{custom_job}");
    assert_eq!(custom_job["attempt"], 4, "{custom_job}");
    assert_eq!(server.stat("dlq_size"), 2);
}

/// Bulk DLQ operations log the filter and the count, and nothing when they acted on no job.
#[test]
fn bulk_dlq_operations_log_their_filter_and_count() {
    let redis = RedisServer::start();
    let server = BinaryServer::spawn(&redis.url(), &[("MAX_ATTEMPTS", "1")]);
    let ids: Vec<String> = (0..3)
        .map(|_| server.submit(&json!({"type": "fail", "payload": {"message": "to the DLQ"}})))
        .collect();
    for id in &ids {
        server.wait_for_status(id, "failed", Duration::from_secs(10));
    }
    let r = server.request("POST", "/dlq/retry?type=noop", b"");
    r.expect_status(200, "retry no job");
    assert_eq!(r.json()["retried"], 0, "{}", r.body);
    let r = server.request("POST", "/dlq/retry?type=fail", b"");
    r.expect_status(200, "retry the failed jobs");
    assert_eq!(r.json()["retried"], 3, "{}", r.body);
    for id in &ids {
        server.wait_for_status(id, "failed", Duration::from_secs(10));
    }
    let r = server.request("DELETE", "/dlq", b"");
    r.expect_status(200, "purge the DLQ");
    assert_eq!(r.json()["deleted"], 3, "{}", r.body);
    let r = server.request("DELETE", "/dlq", b"");
    assert_eq!(r.json()["deleted"], 0, "{}", r.body);

    let log = server.log();
    assert!(
        log.contains("3 job(s) of type fail sent back from the DLQ to pending"),
        "{log}"
    );
    assert!(log.contains("all 3 job(s) deleted from the DLQ"), "{log}");
    assert!(!log.contains(" 0 job(s)"), "{log}");
}
