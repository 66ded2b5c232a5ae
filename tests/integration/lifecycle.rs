//! A job's life: pending → running → completed, as `GET /jobs/{id}` and `/stats` show it, with
//! built-in and custom handlers, including one that panics.

use crate::harness::*;
use jobq::{Handler, JobContext, JobError, JobResult};
use serde_json::{json, Value};
use std::time::Duration;

#[test]
fn noop_job_completes_on_first_attempt() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let before = server.stats();
    assert_eq!(before["total_jobs"], 0, "{before}");
    assert_eq!(before["completed_jobs"], 0, "{before}");

    let id = server.submit(&json!({"type": "noop", "payload": {}}));
    let job = server.wait_for_status(&id, "completed", Duration::from_secs(10));

    assert_eq!(job["attempt"], 1, "{job}");
    assert_eq!(job["error"], Value::Null, "{job}");
    assert_eq!(job["result"], Value::Null, "noop returns no result: {job}");
    let created = ts_req(&job, "created_at");
    let started = ts_req(&job, "started_at");
    let completed = ts_req(&job, "completed_at");
    let updated = ts_req(&job, "updated_at");
    assert!(created <= started, "created_at after started_at: {job}");
    assert!(started <= completed, "started_at after completed_at: {job}");
    assert!(
        updated >= completed,
        "updated_at before completed_at: {job}"
    );

    let stats = server.wait_for_stat("completed_jobs", 1, Duration::from_secs(5));
    assert_eq!(stats["total_jobs"], 1, "{stats}");
    assert_eq!(stats["pending_jobs"], 0, "{stats}");
    assert_eq!(stats["running_jobs"], 0, "{stats}");
    assert_eq!(stats["failed_jobs"], 0, "{stats}");
}

#[test]
fn sleep_job_is_running_while_it_sleeps_then_completes() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let id = server.submit(&json!({"type": "sleep", "payload": {"ms": 1500}}));

    let running = server.wait_for_status(&id, "running", Duration::from_secs(10));
    assert_eq!(running["attempt"], 1, "{running}");
    assert!(ts(&running, "started_at").is_some(), "{running}");
    assert_eq!(running["completed_at"], Value::Null, "{running}");
    assert_eq!(server.stat("running_jobs"), 1);

    let done = server.wait_for_status(&id, "completed", Duration::from_secs(15));
    let took = ts_req(&done, "completed_at") - ts_req(&done, "started_at");
    assert!(
        took >= 1500,
        "a 1500 ms sleep job ran for only {took} ms by its own timestamps: {done}"
    );
    assert_eq!(done["payload"], json!({"ms": 1500}), "{done}");
    server.wait_for_stat("running_jobs", 0, Duration::from_secs(5));
}

#[test]
fn custom_handler_result_is_stored_with_the_job() {
    let redis = RedisServer::start();
    let server = TestServer::with_registry(
        &redis,
        |r| {
            r.register("double", |job: &JobContext| -> JobResult {
                let n = job.payload["n"]
                    .as_i64()
                    .ok_or_else(|| JobError::permanent("n must be an integer"))?;
                Ok(json!({"doubled": n * 2, "id": job.id, "type": job.kind}))
            });
        },
        |_| {},
    );
    let id = server.submit(&json!({"type": "double", "payload": {"n": 21}}));
    let job = server.wait_for_status(&id, "completed", Duration::from_secs(10));
    assert_eq!(
        job["result"],
        json!({"doubled": 42, "id": id, "type": "double"}),
        "{job}"
    );
}

struct Strict;

impl Handler for Strict {
    fn run(&self, _job: &JobContext) -> JobResult {
        Ok(Value::Null)
    }
    fn validate(&self, payload: &Value) -> Result<(), String> {
        match payload.get("n").and_then(Value::as_i64) {
            Some(_) => Ok(()),
            None => Err("field n must be an integer".into()),
        }
    }
}

#[test]
fn handler_validation_refuses_a_bad_payload_with_400() {
    let redis = RedisServer::start();
    let server = TestServer::with_registry(
        &redis,
        |r| {
            r.register("strict", Strict);
        },
        |_| {},
    );
    let msg = server
        .post_json("/jobs", &json!({"type": "strict", "payload": {"n": "x"}}))
        .expect_json_error(400, "POST /jobs strict with n = \"x\"");
    assert!(
        msg.contains("field n must be an integer"),
        "the handler's own message should reach the client: {msg}"
    );
    let id = server.submit(&json!({"type": "strict", "payload": {"n": 1}}));
    server.wait_for_status(&id, "completed", Duration::from_secs(10));
    assert_eq!(server.stat("total_jobs"), 1);
}

#[test]
fn panicking_handler_is_retried_and_the_worker_thread_survives() {
    let redis = RedisServer::start();
    let server = TestServer::with_registry(
        &redis,
        |r| {
            r.register("panicky", |job: &JobContext| -> JobResult {
                if job.attempt == 1 {
                    panic!("boom");
                }
                Ok(json!("survived"))
            });
        },
        |c| c.num_workers = 1,
    );
    let id = server.submit(&json!({"type": "panicky", "payload": {}, "max_attempts": 2}));
    let job = server.wait_for_status(&id, "completed", Duration::from_secs(15));
    assert_eq!(job["attempt"], 2, "{job}");
    assert_eq!(job["result"], "survived", "{job}");
    let error = job["error"]
        .as_str()
        .unwrap_or_else(|| panic!("the first attempt's panic should be kept as the error: {job}"));
    assert!(
        error.contains("boom"),
        "error should carry the panic message: {error:?}"
    );

    // The only worker thread is still alive and takes new jobs.
    let ids: Vec<String> = (0..3)
        .map(|_| server.submit(&json!({"type": "noop"})))
        .collect();
    for id in &ids {
        let job = server.wait_for_status(id, "completed", Duration::from_secs(10));
        assert_eq!(job["attempt"], 1, "{job}");
    }
    let stats = server.wait_for_stat("completed_jobs", 4, Duration::from_secs(5));
    assert_eq!(stats["failed_jobs"], 0, "{stats}");
}

#[test]
fn panicking_handler_on_every_attempt_ends_failed_with_the_panic_message() {
    let redis = RedisServer::start();
    let server = TestServer::with_registry(
        &redis,
        |r| {
            r.register("always_panics", |_job: &JobContext| -> JobResult {
                panic!("boom every time");
            });
        },
        |c| c.num_workers = 1,
    );
    let id = server.submit(&json!({"type": "always_panics", "max_attempts": 2}));
    let job = server.wait_for_status(&id, "failed", Duration::from_secs(15));
    assert_eq!(job["attempt"], 2, "{job}");
    assert!(
        job["error"]
            .as_str()
            .is_some_and(|e| e.contains("boom every time")),
        "{job}"
    );
    let after = server.submit(&json!({"type": "noop"}));
    server.wait_for_status(&after, "completed", Duration::from_secs(10));
}
