//! The HTTP contract: status codes, bodies and headers of every route, valid and invalid.

use crate::harness::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[test]
fn submit_answers_201_with_a_uuid_v4_job_id() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let r = server.post_json("/jobs", &json!({"type": "noop", "payload": {}}));
    r.expect_status(201, "POST /jobs noop");
    r.expect_json_content_type("POST /jobs noop");
    let v = r.json();
    let id = v["job_id"].as_str().expect("job_id is a string");
    assert!(is_uuid_v4(id), "job_id {id:?} is not a lower-case UUID v4");
    // Each submission gets its own id.
    let other = server.submit(&json!({"type": "noop"}));
    assert_ne!(id, other);
}

#[test]
fn job_record_has_every_documented_field_and_echoes_the_payload() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let payload =
        json!({"n": 7, "nested": {"list": [1, "two", null], "flag": true}, "s": "ünïcode"});
    let id = server.submit(&json!({"type": "noop", "payload": payload}));
    let job = server.wait_for_status(&id, "completed", Duration::from_secs(10));

    let fields = [
        "id",
        "type",
        "payload",
        "status",
        "created_at",
        "updated_at",
        "started_at",
        "completed_at",
        "run_at",
        "attempt",
        "max_attempts",
        "timeout_secs",
        "error",
        "result",
    ];
    let obj = job.as_object().expect("job is a JSON object");
    for f in fields {
        assert!(obj.contains_key(f), "job lacks field {f:?}: {job}");
    }
    assert_eq!(job["id"], json!(id));
    assert_eq!(job["type"], "noop");
    assert_eq!(
        job["payload"], payload,
        "payload must be echoed as the same JSON value"
    );
    assert_eq!(job["max_attempts"], 3, "server default MAX_ATTEMPTS is 3");
    for f in ["created_at", "updated_at", "started_at", "completed_at"] {
        let s = job[f]
            .as_str()
            .unwrap_or_else(|| panic!("{f} should be set on a completed job: {job}"));
        assert!(s.ends_with('Z'), "{f} = {s:?} should be UTC ending in Z");
        parse_rfc3339_ms(s).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
    assert_eq!(
        job["run_at"],
        Value::Null,
        "run_at is null for a job that was due at once"
    );
}

#[test]
fn fresh_job_has_null_timestamps_until_they_happen() {
    let redis = RedisServer::start();
    // No workers: the job stays pending.
    let server = TestServer::start(&redis, |c| c.num_workers = 0);
    let id = server.submit(&json!({"type": "noop", "payload": {"a": 1}}));
    let job = server.job(&id);
    assert_eq!(job["status"], "pending", "{job}");
    assert_eq!(job["attempt"], 0, "no attempt has started: {job}");
    for f in ["started_at", "completed_at", "error", "result"] {
        assert_eq!(job[f], Value::Null, "{f} should be null: {job}");
    }
    let created = ts_req(&job, "created_at");
    let updated = ts_req(&job, "updated_at");
    assert!(updated >= created, "updated_at before created_at: {job}");
}

#[test]
fn unknown_job_id_answers_404_json() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let r = server.get("/jobs/4b1e7f0c-8d1e-4c6a-9f57-2f0b7c1d9a10");
    r.expect_json_error(404, "GET /jobs/<unknown uuid>");
}

#[test]
fn job_id_that_is_not_a_uuid_answers_400_json() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    for path in ["/jobs/not-a-uuid", "/jobs/12345", "/jobs/%20"] {
        server
            .get(path)
            .expect_json_error(400, &format!("GET {path}"));
    }
}

#[test]
fn malformed_or_misshapen_submissions_answer_400_json() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let cases: &[(&str, &[u8])] = &[
        ("malformed JSON", b"{\"type\": \"noop\", "),
        ("not JSON at all", b"hello"),
        ("a JSON array", b"[1, 2]"),
        ("missing type", br#"{"payload": {}}"#),
        ("type is not a string", br#"{"type": 5}"#),
        ("unknown field", br#"{"type": "noop", "dealy_ms": 5}"#),
        (
            "both delay_ms and run_at",
            br#"{"type": "noop", "delay_ms": 10, "run_at": "2030-01-01T00:00:00Z"}"#,
        ),
        (
            "run_at not RFC 3339",
            br#"{"type": "noop", "run_at": "tomorrow"}"#,
        ),
        ("negative delay_ms", br#"{"type": "noop", "delay_ms": -5}"#),
        ("max_attempts 0", br#"{"type": "noop", "max_attempts": 0}"#),
    ];
    for (what, body) in cases {
        let r = server.request("POST", "/jobs", body);
        r.expect_json_error(400, &format!("POST /jobs with {what}"));
    }
    // Nothing was stored.
    assert_eq!(server.stat("total_jobs"), 0);
}

#[test]
fn unknown_job_type_answers_400_listing_known_types() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let r = server.post_json("/jobs", &json!({"type": "fax", "payload": {}}));
    let msg = r.expect_json_error(400, "POST /jobs with unknown type");
    assert!(msg.contains("fax"), "message should name the type: {msg}");
    for known in ["noop", "sleep", "fail"] {
        assert!(
            msg.contains(known),
            "message should list known type {known}: {msg}"
        );
    }
}

#[test]
fn invalid_payload_for_a_known_type_answers_400() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let cases = [
        json!({"type": "sleep", "payload": {"ms": "x"}}),
        json!({"type": "sleep", "payload": {"ms": 600_001}}),
        json!({"type": "sleep", "payload": {"ms": -1}}),
    ];
    for job in &cases {
        let msg = server
            .post_json("/jobs", job)
            .expect_json_error(400, &format!("POST /jobs {job}"));
        assert!(msg.contains("ms"), "message should name the field: {msg}");
    }
    // The limit itself is fine.
    server.submit(&json!({"type": "sleep", "payload": {"ms": 600_000}, "delay_ms": 3_600_000}));
}

#[test]
fn oversized_body_answers_413_and_a_body_under_the_limit_is_accepted() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| c.max_body_bytes = 1024);

    let small = json!({"type": "noop", "payload": {"pad": "x".repeat(800)}});
    assert!(small.to_string().len() < 1024);
    server.submit(&small);

    let big = json!({"type": "noop", "payload": {"pad": "x".repeat(5000)}});
    let r = server.request("POST", "/jobs", big.to_string().as_bytes());
    r.expect_json_error(
        413,
        "POST /jobs with a 5000-byte body and MAX_BODY_BYTES 1024",
    );
    assert_eq!(
        server.stat("total_jobs"),
        1,
        "the big job must not be stored"
    );
}

#[test]
fn full_queue_answers_503_with_retry_after() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| {
        c.num_workers = 0;
        c.max_queue_size = 3;
    });
    for _ in 0..3 {
        server.submit(&json!({"type": "noop"}));
    }
    let r = server.post_json("/jobs", &json!({"type": "noop"}));
    r.expect_json_error(503, "4th POST /jobs with MAX_QUEUE_SIZE 3");
    let retry_after = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("503 for a full queue lacks Retry-After: {r:?}"));
    let secs: u64 = retry_after
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After {retry_after:?} is not an integer"));
    assert!(secs > 0, "Retry-After should be positive, got {secs}");
    let stats = server.stats();
    assert_eq!(stats["pending_jobs"], 3, "{stats}");
    assert_eq!(stats["total_jobs"], 3, "{stats}");
}

#[test]
fn stats_reports_integer_counts() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let r = server.get("/stats");
    r.expect_status(200, "GET /stats");
    r.expect_json_content_type("GET /stats");
    let stats = r.json();
    for f in [
        "total_jobs",
        "pending_jobs",
        "running_jobs",
        "completed_jobs",
        "failed_jobs",
        "dlq_size",
        "scheduled_jobs",
    ] {
        assert_eq!(
            stats[f].as_u64(),
            Some(0),
            "{f} should be the integer 0 on an empty Redis: {stats}"
        );
    }
}

#[test]
fn health_answers_200_healthy() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let r = server.get("/health");
    r.expect_status(200, "GET /health");
    r.expect_json_content_type("GET /health");
    assert_eq!(r.json()["status"], "healthy", "{}", r.body);
}

#[test]
fn unknown_route_answers_404_json() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    for path in ["/nope", "/stats/extra", "/jobsx"] {
        server
            .get(path)
            .expect_json_error(404, &format!("GET {path}"));
    }
    server
        .request("POST", "/nope", b"{}")
        .expect_json_error(404, "POST /nope");
}

#[test]
fn wrong_method_on_a_known_route_answers_405_with_allow() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let cases = [
        ("DELETE", "/stats", "GET"),
        ("PUT", "/jobs", "GET"),
        ("PUT", "/health", "GET"),
        ("POST", "/metrics", "GET"),
    ];
    for (method, path, allowed) in cases {
        let what = format!("{method} {path}");
        let r = server.request(method, path, b"");
        r.expect_json_error(405, &what);
        let allow = r
            .header("allow")
            .unwrap_or_else(|| panic!("{what}: 405 without an Allow header: {r:?}"));
        assert!(
            allow.to_ascii_uppercase().contains(allowed),
            "{what}: Allow {allow:?} should contain {allowed}"
        );
    }
}

#[test]
fn redis_outage_answers_503_and_recovers_without_restart() {
    let mut redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let before = server.submit(&json!({"type": "noop"}));
    server.wait_for_status(&before, "completed", Duration::from_secs(10));

    redis.stop();

    let started = Instant::now();
    let r = server
        .try_request(
            "POST",
            "/jobs",
            json!({"type": "noop"}).to_string().as_bytes(),
        )
        .unwrap_or_else(|e| panic!("POST /jobs with Redis down got no HTTP answer: {e}"));
    let took = started.elapsed();
    r.expect_json_error(503, "POST /jobs with Redis down");
    assert!(
        took < Duration::from_secs(5),
        "POST /jobs with Redis down took {took:?}; it should fail fast"
    );

    server
        .get("/stats")
        .expect_json_error(503, "GET /stats with Redis down");

    let r = server.get("/health");
    r.expect_status(503, "GET /health with Redis down");
    r.expect_json_content_type("GET /health with Redis down");
    let health = r.json();
    assert_eq!(health["status"], "unhealthy", "{health}");
    assert!(
        health["error"].as_str().is_some_and(|e| !e.is_empty()),
        "unhealthy /health should say why: {health}"
    );

    redis.restart();

    let id = wait_for(
        "POST /jobs to answer 201 again after Redis came back",
        Duration::from_secs(15),
        || {
            let r = server.try_request(
                "POST",
                "/jobs",
                json!({"type": "noop"}).to_string().as_bytes(),
            )?;
            if r.status == 201 {
                Ok(r.json()["job_id"].as_str().unwrap_or_default().to_string())
            } else {
                Err(format!("HTTP {} {}", r.status, r.body))
            }
        },
    );
    // The workers came back too.
    server.wait_for_status(&id, "completed", Duration::from_secs(15));
    server
        .get("/health")
        .expect_status(200, "GET /health after Redis came back");
}

/// The harness's time parser, which the timestamp assertions rely on, takes only UTC (`Z`).
#[test]
fn harness_parses_rfc3339_utc_times() {
    let parsed = [
        ("2026-04-07T10:30:00.000Z", 1_775_557_800_000),
        ("2030-01-01T00:00:00.25Z", 1_893_456_000_250),
        ("1970-01-01T00:00:00Z", 0),
    ];
    for (text, ms) in parsed {
        assert_eq!(parse_rfc3339_ms(text), Ok(ms), "{text}");
    }
    assert!(parse_rfc3339_ms("2026-04-07T10:30:00+00:00").is_err());
    assert!(parse_rfc3339_ms("2026-04-07 10:30").is_err());
}

/// The harness's id check, which the job id assertions rely on, refuses other versions and
/// upper case.
#[test]
fn harness_checks_uuid_v4() {
    assert!(is_uuid_v4("550e8400-e29b-41d4-a716-446655440000"));
    assert!(!is_uuid_v4("550e8400-e29b-11d4-a716-446655440000"));
    assert!(!is_uuid_v4("550E8400-E29B-41D4-A716-446655440000"));
    assert!(!is_uuid_v4("not-a-uuid"));
}
