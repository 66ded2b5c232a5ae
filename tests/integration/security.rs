//! Facing untrusted clients and a guarded Redis: the bearer token, hostile connections and the
//! connection cap, request limits, batch submission, DLQ management, idempotency keys, Redis
//! passwords and TLS to Redis.

use crate::harness::*;
use jobq::{JobContext, JobError, JobResult};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const TOKEN: &str = "it-token-5d41402abc4b2a76b9719d91";

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Asserts a 401 JSON answer with a `WWW-Authenticate: Bearer ...` header.
fn expect_401(r: &Resp, what: &str) {
    r.expect_json_error(401, what);
    let challenge = r
        .header("www-authenticate")
        .unwrap_or_else(|| panic!("{what}: 401 without WWW-Authenticate: {r:?}"));
    assert!(
        challenge.starts_with("Bearer"),
        "{what}: WWW-Authenticate is {challenge:?}, expected a Bearer challenge"
    );
}

#[test]
fn api_token_guards_every_route_but_health() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| c.api_token = Some(TOKEN.into()));
    let id = {
        let r = server.request_with(
            "POST",
            "/jobs",
            &[("Authorization", &bearer(TOKEN))],
            br#"{"type": "noop"}"#,
        );
        r.expect_status(201, "POST /jobs with the right token");
        r.json()["job_id"].as_str().unwrap().to_string()
    };
    let job_path = format!("/jobs/{id}");
    let cases: [(&str, &str, &[u8], u16); 5] = [
        ("GET", "/stats", b"", 200),
        ("POST", "/jobs", br#"{"type": "noop"}"#, 201),
        ("GET", &job_path, b"", 200),
        ("GET", "/dlq", b"", 200),
        ("GET", "/metrics", b"", 200),
    ];
    for (method, path, body, ok) in cases {
        let what = format!("{method} {path}");
        expect_401(
            &server.request(method, path, body),
            &format!("{what} without a token"),
        );
        let wrong = bearer("it-token-00000000000000000000000000");
        expect_401(
            &server.request_with(method, path, &[("Authorization", &wrong)], body),
            &format!("{what} with a wrong token"),
        );
        expect_401(
            &server.request_with(method, path, &[("Authorization", TOKEN)], body),
            &format!("{what} with the token but no Bearer scheme"),
        );
        server
            .request_with(method, path, &[("Authorization", &bearer(TOKEN))], body)
            .expect_status(ok, &format!("{what} with the right token"));
    }
    let r = server.get("/health");
    r.expect_status(200, "GET /health without a token");
    assert_eq!(r.json()["status"], "healthy", "{}", r.body);

    // Only the two POSTs with the right token created jobs.
    let stats = server
        .request_with("GET", "/stats", &[("Authorization", &bearer(TOKEN))], b"")
        .json();
    assert_eq!(stats["total_jobs"], 2, "{stats}");
}

#[test]
fn metrics_public_opens_metrics_only() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| {
        c.api_token = Some(TOKEN.into());
        c.metrics_public = true;
    });
    let r = server.get("/metrics");
    r.expect_status(200, "GET /metrics without a token, METRICS_PUBLIC=true");
    assert!(r.body.contains("jobs_created_total"), "{}", r.body);
    expect_401(&server.get("/stats"), "GET /stats without a token");
    expect_401(&server.get("/dlq"), "GET /dlq without a token");
    expect_401(
        &server.request("POST", "/jobs", br#"{"type": "noop"}"#),
        "POST /jobs without a token",
    );
}

/// Opens a connection that stays open, for the hostile-client tests.
fn open(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// What has arrived on `s` so far, without waiting: `Ok(bytes)` (empty while the server says
/// nothing) or `Err` once the server closed the connection without a word.
fn received(s: &mut TcpStream) -> Result<Vec<u8>, String> {
    s.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; 4096];
    let r = match s.read(&mut buf) {
        Ok(0) => Err("closed".to_string()),
        Ok(n) => Ok(buf[..n].to_vec()),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    };
    s.set_nonblocking(false).unwrap();
    r
}

#[test]
fn hostile_connections_do_not_starve_a_real_client() {
    let redis = RedisServer::start();
    // The real binary, so the server's 300 connection threads live in their own process.
    let server = BinaryServer::spawn(&redis.url(), &[]);
    let addr = server.client().addr;

    let opened = Instant::now();
    let mut hostile = Vec::new();
    for i in 0..300 {
        let mut s = open(addr);
        let head = match i % 3 {
            0 => None,
            1 => Some(
                "POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: 100000\r\n\r\n{\"type\": \"no",
            ),
            _ => Some(
                "POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Transfer-Encoding: chunked\r\n\r\n400\r\n{\"type\": \"no",
            ),
        };
        if let Some(head) = head {
            s.write_all(head.as_bytes())
                .unwrap_or_else(|e| panic!("hostile connection {i}: write: {e}"));
        }
        hostile.push(s);
    }

    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let started = Instant::now();
        if i % 2 == 0 {
            let r = server.get("/health");
            r.expect_status(
                200,
                &format!("GET /health #{i} among 300 hostile connections"),
            );
            assert_eq!(r.json()["status"], "healthy", "{}", r.body);
        } else {
            server.submit(&json!({"type": "noop", "payload": {"i": i}}));
        }
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "request #{i} took {took:?} among 300 hostile connections (a starved client waits \
             for the 10 s socket timeout)"
        );
        slowest = slowest.max(took);
    }
    eprintln!("slowest of 20 requests among 300 hostile connections: {slowest:?}");

    // The hostile connections were held open, not refused or dropped (the socket timeout of
    // 10 s has not passed yet if we got here quickly; otherwise there is nothing to check).
    if opened.elapsed() < Duration::from_secs(8) {
        for (i, s) in hostile.iter_mut().enumerate() {
            match received(s) {
                Ok(b) if b.is_empty() => {}
                other => panic!(
                    "hostile connection {i} should still be open and unanswered: {:?}",
                    other.map(|b| String::from_utf8_lossy(&b).into_owned())
                ),
            }
        }
    }
    drop(hostile);
    assert_eq!(
        server.stat("total_jobs"),
        10,
        "only the real client's POSTs create jobs"
    );
}

#[test]
fn connections_past_max_connections_get_503_until_some_close() {
    let redis = RedisServer::start();
    let server = BinaryServer::spawn(&redis.url(), &[("MAX_CONNECTIONS", "20")]);
    let addr = server.client().addr;
    let mut idle: Vec<TcpStream> = (0..25).map(|_| open(addr)).collect();

    let r = server
        .try_request("GET", "/health", b"")
        .unwrap_or_else(|e| panic!("GET /health with 25 idle connections open: {e}"));
    let msg = r.expect_json_error(
        503,
        "GET /health with 25 idle connections and MAX_CONNECTIONS=20",
    );
    assert!(msg.contains("MAX_CONNECTIONS"), "{msg}");
    // Five of the idle ones were refused the same way; twenty are being served.
    wait_for(
        "5 of the 25 idle connections to receive a 503",
        Duration::from_secs(5),
        || {
            let answered: Vec<String> = idle
                .iter_mut()
                .filter_map(|s| match received(s) {
                    Ok(b) if !b.is_empty() => Some(String::from_utf8_lossy(&b).into_owned()),
                    _ => None,
                })
                .collect();
            // Each refusal arrives in one piece (it is written in one call before the close).
            if answered.len() == 5 && answered.iter().all(|a| a.starts_with("HTTP/1.1 503")) {
                Ok(())
            } else {
                Err(format!("{} answered: {answered:?}", answered.len()))
            }
        },
    );

    drop(idle);
    wait_for(
        "GET /health to answer 200 after the idle connections closed",
        Duration::from_secs(10),
        || match server.try_request("GET", "/health", b"") {
            Ok(r) if r.status == 200 => Ok(()),
            Ok(r) => Err(format!("HTTP {} {}", r.status, r.body)),
            Err(e) => Err(e),
        },
    );
    server.submit(&json!({"type": "noop"}));
}

#[test]
fn request_limits_answer_json_errors_and_the_server_keeps_serving() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| c.max_body_bytes = 1024);

    let big = json!({"type": "noop", "payload": {"pad": "x".repeat(5000)}}).to_string();
    server
        .request("POST", "/jobs", big.as_bytes())
        .expect_json_error(413, "POST /jobs with a 5000-byte body, MAX_BODY_BYTES 1024");

    let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let body = format!(r#"{{"type": "noop", "payload": {{"deep": {deep}}}}}"#);
    let msg = server
        .request("POST", "/jobs", body.as_bytes())
        .expect_json_error(400, "POST /jobs with JSON nested 100 deep");
    assert!(
        msg.contains("nest"),
        "the 400 should name the nesting: {msg}"
    );

    let filler = "a".repeat(9000);
    let r = server
        .try_request_with("GET", "/health", &[("X-Filler", &filler)], b"")
        .unwrap_or_else(|e| panic!("GET /health with a 9000-byte header line: {e}"));
    r.expect_json_error(431, "GET /health with a 9000-byte header line");

    for kind in ["x".repeat(65), "has space".to_string()] {
        let msg = server
            .post_json("/jobs", &json!({"type": kind}))
            .expect_json_error(400, &format!("POST /jobs with type {kind:?}"));
        assert!(msg.contains("type"), "the 400 should name \"type\": {msg}");
    }
    assert!(
        server
            .post_json("/jobs", &json!({"type": "x".repeat(64)}))
            .status
            == 400,
        "a 64-character type is well-formed but unknown here: still 400"
    );

    for raw in [
        &b"THIS IS NOT HTTP\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET /health HTTP/one\r\n\r\n",
    ] {
        let what = format!("malformed request line {:?}", String::from_utf8_lossy(raw));
        send_raw(server.addr, raw, &what)
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .expect_json_error(400, &what);
    }

    // Still serving.
    server
        .get("/health")
        .expect_status(200, "GET /health after the bad requests");
    let id = server.submit(&json!({"type": "noop"}));
    server.wait_for_status(&id, "completed", Duration::from_secs(10));
    assert_eq!(server.stat("total_jobs"), 1, "no bad request created a job");
}

fn job_ids(r: &Resp) -> Vec<String> {
    let v = r.json();
    v["job_ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no job_ids array in {v}"))
        .iter()
        .map(|id| id.as_str().expect("job ids are strings").to_string())
        .collect()
}

#[test]
fn batch_submission_creates_all_jobs_or_none() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let r = server.post_json(
        "/jobs/batch",
        &json!({"jobs": [
            {"type": "noop"},
            {"type": "sleep", "payload": {"ms": 10}},
            {"type": "noop", "payload": {"n": 3}, "max_attempts": 1}
        ]}),
    );
    r.expect_status(201, "POST /jobs/batch with 3 jobs");
    let ids = job_ids(&r);
    assert_eq!(ids.len(), 3, "{}", r.body);
    assert!(ids.iter().all(|id| is_uuid_v4(id)), "{ids:?}");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 3, "{ids:?}");
    for id in &ids {
        server.wait_for_status(id, "completed", Duration::from_secs(10));
    }

    let msg = server
        .post_json(
            "/jobs/batch",
            &json!({"jobs": [{"type": "noop"}, {"type": "no-such-type"}, {"type": "noop"}]}),
        )
        .expect_json_error(400, "POST /jobs/batch with a bad second job");
    assert!(
        msg.contains("jobs[1]"),
        "the 400 should name jobs[1]: {msg}"
    );

    let many: Vec<Value> = (0..1001).map(|_| json!({"type": "noop"})).collect();
    server
        .post_json("/jobs/batch", &json!({ "jobs": many }))
        .expect_json_error(400, "POST /jobs/batch with 1001 jobs");
    server
        .post_json("/jobs/batch", &json!({"jobs": []}))
        .expect_json_error(400, "POST /jobs/batch with no jobs");
    assert_eq!(
        server.stat("total_jobs"),
        3,
        "refused batches create nothing"
    );
}

#[test]
fn batch_is_refused_whole_when_it_would_overflow_the_queue() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| {
        c.num_workers = 0;
        c.max_queue_size = 5;
    });
    let four: Vec<Value> = (0..4)
        .map(|i| json!({"type": "noop", "payload": {"i": i}}))
        .collect();
    let r = server.post_json("/jobs/batch", &json!({ "jobs": four }));
    r.expect_status(201, "a batch of 4 with MAX_QUEUE_SIZE 5");
    assert_eq!(job_ids(&r).len(), 4);

    let two = json!({"jobs": [{"type": "noop"}, {"type": "noop"}]});
    let r = server.post_json("/jobs/batch", &two);
    let msg = r.expect_json_error(503, "a batch of 2 with 4 of 5 places taken");
    // Four jobs wait, not five: the message speaks of the batch not fitting.
    assert!(
        msg.contains("its 2 jobs do not fit") && !msg.contains("jobs are waiting"),
        "{msg}"
    );
    assert!(r.header("retry-after").is_some(), "{r:?}");
    let stats = server.stats();
    assert_eq!(
        stats["pending_jobs"], 4,
        "nothing of the refused batch is queued: {stats}"
    );
    assert_eq!(stats["total_jobs"], 4, "{stats}");

    let r = server.post_json("/jobs/batch", &json!({"jobs": [{"type": "noop"}]}));
    r.expect_status(201, "a batch of 1 that fills the queue exactly");
    assert_eq!(server.stat("pending_jobs"), 5);
}

/// `GET /dlq?...`, asserting 200; returns (total, ids in order).
fn dlq_page(client: &Client, query: &str) -> (u64, Vec<String>) {
    let r = client.get(&format!("/dlq{query}"));
    r.expect_status(200, &format!("GET /dlq{query}"));
    let v = r.json();
    let ids = v["jobs"]
        .as_array()
        .unwrap_or_else(|| panic!("GET /dlq{query}: no jobs array in {v}"))
        .iter()
        .map(|j| j["id"].as_str().unwrap_or_default().to_string())
        .collect();
    (
        v["total"]
            .as_u64()
            .unwrap_or_else(|| panic!("no total in {v}")),
        ids,
    )
}

fn history_len(job: &Value) -> usize {
    job["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors array: {job}"))
        .len()
}

#[test]
fn dlq_can_be_listed_inspected_retried_and_deleted() {
    let redis = RedisServer::start();
    let healed = Arc::new(AtomicBool::new(false));
    let server = {
        let healed = healed.clone();
        TestServer::with_registry(
            &redis,
            move |r| {
                r.register("doomed", move |_job: &JobContext| -> JobResult {
                    if healed.load(Ordering::SeqCst) {
                        Ok(json!("fine now"))
                    } else {
                        Err(JobError::permanent("doomed: bad input"))
                    }
                });
                r.register("rejected", |_job: &JobContext| -> JobResult {
                    Err(JobError::permanent("rejected for good"))
                });
            },
            |_| {},
        )
    };
    let done = server.submit(&json!({"type": "noop"}));
    server.wait_for_status(&done, "completed", Duration::from_secs(10));

    // One at a time, so their DLQ times are in submission order.
    let mut dead = Vec::new();
    for kind in ["fail", "doomed", "fail", "doomed", "rejected"] {
        let id = server.submit(&json!({"type": kind, "payload": {}, "max_attempts": 1}));
        server.wait_for_status(&id, "failed", Duration::from_secs(10));
        dead.push(id);
    }
    let [f1, d1, f2, d2, r1] = <[String; 5]>::try_from(dead.clone()).unwrap();
    let newest_first: Vec<String> = dead.iter().rev().cloned().collect();

    assert_eq!(dlq_page(&server, ""), (5, newest_first.clone()));
    assert_eq!(
        dlq_page(&server, "?offset=0&limit=2"),
        (5, newest_first[0..2].to_vec())
    );
    assert_eq!(
        dlq_page(&server, "?offset=2&limit=2"),
        (5, newest_first[2..4].to_vec())
    );
    assert_eq!(
        dlq_page(&server, "?offset=4&limit=2"),
        (5, newest_first[4..].to_vec())
    );
    assert_eq!(dlq_page(&server, "?offset=9"), (5, vec![]));
    for bad in ["?limit=abc", "?limit=1001", "?color=red"] {
        server
            .get(&format!("/dlq{bad}"))
            .expect_json_error(400, &format!("GET /dlq{bad}"));
    }

    let r = server.get(&format!("/dlq/{f1}"));
    r.expect_status(200, "GET /dlq/{id} of a dead job");
    let job = r.json();
    assert_eq!(
        (job["id"].as_str(), job["status"].as_str()),
        (Some(f1.as_str()), Some("failed")),
        "{job}"
    );
    let unknown = "550e8400-e29b-41d4-a716-446655440000";
    for id in [done.as_str(), unknown] {
        server
            .get(&format!("/dlq/{id}"))
            .expect_json_error(404, &format!("GET /dlq/{id} of a job not in the DLQ"));
        server
            .request("POST", &format!("/dlq/{id}/retry"), b"")
            .expect_json_error(
                404,
                &format!("POST /dlq/{id}/retry of a job not in the DLQ"),
            );
        server
            .request("DELETE", &format!("/dlq/{id}"), b"")
            .expect_json_error(404, &format!("DELETE /dlq/{id} of a job not in the DLQ"));
    }

    // Retry one: back to pending with its attempts reset; it fails again on attempt 1 and its
    // error history grows.
    let r = server.request("POST", &format!("/dlq/{f1}/retry"), b"");
    r.expect_status(200, "POST /dlq/{id}/retry");
    assert_eq!(r.json(), json!({"job_id": f1, "status": "pending"}));
    let job = wait_for(
        "the retried fail job to be dead again with 2 errors in its history",
        Duration::from_secs(10),
        || {
            let job = server.job(&f1);
            if job["status"] == "failed" && history_len(&job) == 2 {
                Ok(job)
            } else {
                Err(job.to_string())
            }
        },
    );
    assert_eq!(job["attempt"], 1, "attempts were reset by the retry: {job}");
    assert_eq!(dlq_page(&server, "").0, 5);

    // Retry by type: only the doomed jobs go, and now they succeed, keeping their history.
    healed.store(true, Ordering::SeqCst);
    let r = server.request("POST", "/dlq/retry?type=doomed", b"");
    r.expect_status(200, "POST /dlq/retry?type=doomed");
    let v = r.json();
    assert_eq!(v["retried"], 2, "{v}");
    let mut retried = job_ids_of(&v);
    retried.sort();
    let mut want = vec![d1.clone(), d2.clone()];
    want.sort();
    assert_eq!(retried, want, "{v}");
    for id in [&d1, &d2] {
        let job = server.wait_for_status(id, "completed", Duration::from_secs(10));
        assert_eq!(job["attempt"], 1, "{job}");
        assert_eq!(
            history_len(&job),
            1,
            "the failure before the retry is kept: {job}"
        );
        assert_eq!(job["result"], "fine now", "{job}");
    }
    let (total, ids) = dlq_page(&server, "");
    assert_eq!(total, 3);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>(),
        [&f1, &f2, &r1].into_iter().collect()
    );

    // Delete one, then by type, then all.
    let r = server.request("DELETE", &format!("/dlq/{f2}"), b"");
    r.expect_status(200, "DELETE /dlq/{id}");
    assert_eq!(r.json()["deleted"], 1);
    server
        .get(&format!("/jobs/{f2}"))
        .expect_json_error(404, "GET /jobs/{id} of a job deleted from the DLQ");
    server
        .get(&format!("/dlq/{f2}"))
        .expect_json_error(404, "GET /dlq/{id} of a job deleted from the DLQ");

    let r = server.request("DELETE", "/dlq?type=rejected", b"");
    r.expect_status(200, "DELETE /dlq?type=rejected");
    assert_eq!(r.json()["deleted"], 1);
    server
        .get(&format!("/jobs/{r1}"))
        .expect_json_error(404, "GET /jobs/{id} of a job deleted by type");
    assert_eq!(dlq_page(&server, ""), (1, vec![f1.clone()]));

    let r = server.request("DELETE", "/dlq", b"");
    r.expect_status(200, "DELETE /dlq");
    assert_eq!(r.json()["deleted"], 1);
    assert_eq!(dlq_page(&server, ""), (0, vec![]));
    server
        .get(&format!("/jobs/{f1}"))
        .expect_json_error(404, "GET /jobs/{id} after DELETE /dlq");
    assert_eq!(server.stat("dlq_size"), 0);
    // Completed jobs are not the DLQ's business.
    server.job(&done);
}

fn job_ids_of(v: &Value) -> Vec<String> {
    v["job_ids"]
        .as_array()
        .unwrap_or_else(|| panic!("no job_ids in {v}"))
        .iter()
        .map(|id| id.as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn dlq_is_capped_at_dlq_max_size_dropping_the_oldest_loudly() {
    let redis = RedisServer::start();
    // The real binary: the eviction counter is per process.
    let server = BinaryServer::spawn(&redis.url(), &[("DLQ_MAX_SIZE", "3")]);
    let mut dead = Vec::new();
    for i in 0..5 {
        let id = server.submit(
            &json!({"type": "fail", "payload": {"message": format!("no {i}")}, "max_attempts": 1}),
        );
        server.wait_for_status(&id, "failed", Duration::from_secs(10));
        dead.push(id);
    }
    let newest: Vec<String> = dead[2..].iter().rev().cloned().collect();
    assert_eq!(dlq_page(&server.client(), ""), (3, newest));
    for old in &dead[..2] {
        server
            .get(&format!("/jobs/{old}"))
            .expect_json_error(404, "GET /jobs/{id} of a job dropped from the full DLQ");
    }
    assert_eq!(server.stat("dlq_size"), 3);
    let text = wait_for(
        "jobs_dlq_evicted_total >= 2.0",
        Duration::from_secs(5),
        || {
            let text = server.metrics();
            match metric_sum(&text, "jobs_dlq_evicted_total") {
                Some(n) if n >= 2.0 => Ok(text),
                n => Err(format!("jobs_dlq_evicted_total = {n:?}")),
            }
        },
    );
    assert_eq!(
        metric_sum(&text, "jobs_dlq_evicted_total"),
        Some(2.0),
        "{text}"
    );
    let log = server.log();
    for old in &dead[..2] {
        assert!(
            log.lines()
                .any(|l| l.contains(old.as_str()) && l.contains("dropped from the DLQ")),
            "the log should name evicted job {old}:\n{log}"
        );
    }
}

/// POSTs `body` from 20 threads at once with `headers`; returns (status, job_id) of each.
fn post_at_once(addr: SocketAddr, headers: &[(&str, &str)], body: &str) -> Vec<(u16, String)> {
    let barrier = Arc::new(Barrier::new(20));
    let threads: Vec<_> = (0..20)
        .map(|_| {
            let barrier = barrier.clone();
            let headers: Vec<(String, String)> = headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let body = body.to_string();
            std::thread::spawn(move || {
                let hs: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                barrier.wait();
                let r = Client { addr }
                    .try_request_with("POST", "/jobs", &hs, body.as_bytes())
                    .unwrap_or_else(|e| panic!("{e}"));
                let id = r.json()["job_id"].as_str().unwrap_or_default().to_string();
                (r.status, id)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("client thread"))
        .collect()
}

/// Exactly one 201 and nineteen 200s, all naming the same job; returns its id.
fn expect_one_job(answers: &[(u16, String)], what: &str) -> String {
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    let repeated = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(
        (created, repeated),
        (1, 19),
        "{what}: expected one 201 and nineteen 200s: {answers:?}"
    );
    let ids: HashSet<&String> = answers.iter().map(|(_, id)| id).collect();
    assert_eq!(
        ids.len(),
        1,
        "{what}: every answer should name the same job: {answers:?}"
    );
    let id = answers[0].1.clone();
    assert!(is_uuid_v4(&id), "{what}: {id:?}");
    id
}

#[test]
fn idempotency_keys_make_concurrent_repeats_one_job() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| c.num_workers = 0);
    let body = r#"{"type": "noop", "payload": {"order": 42}}"#;

    let answers = post_at_once(server.addr, &[("Idempotency-Key", "order-42")], body);
    let by_header = expect_one_job(&answers, "20 POSTs with Idempotency-Key: order-42");
    assert_eq!(server.stat("total_jobs"), 1);

    let with_field = r#"{"type": "noop", "payload": {"order": 43}, "idempotency_key": "order-43"}"#;
    let answers = post_at_once(server.addr, &[], with_field);
    let by_field = expect_one_job(&answers, "20 POSTs with \"idempotency_key\": \"order-43\"");
    assert_ne!(by_header, by_field);
    assert_eq!(server.stat("total_jobs"), 2);

    // The header and the field name the same key space.
    let r = server.request_with(
        "POST",
        "/jobs",
        &[("Idempotency-Key", "order-43")],
        body.as_bytes(),
    );
    r.expect_status(200, "POST with the header naming the field's earlier key");
    assert_eq!(r.json()["job_id"], json!(by_field));

    let r = server.request_with(
        "POST",
        "/jobs",
        &[("Idempotency-Key", "order-44")],
        body.as_bytes(),
    );
    r.expect_status(201, "POST with a new key");
    assert_ne!(r.json()["job_id"], json!(by_header));
    assert_eq!(server.stat("total_jobs"), 3);

    let msg = server
        .request_with(
            "POST",
            "/jobs",
            &[("Idempotency-Key", "order-45")],
            with_field.as_bytes(),
        )
        .expect_json_error(
            400,
            "Idempotency-Key header and \"idempotency_key\" field differ",
        );
    assert!(msg.to_ascii_lowercase().contains("idempotency"), "{msg}");
    assert_eq!(
        server.stat("total_jobs"),
        3,
        "the refused request created nothing"
    );
}

#[test]
fn redis_password_works_and_a_wrong_one_stops_start_up_without_leaking_it() {
    let password = "it-Redis-pw-8c2e41f7";
    let wrong = "it-WRONG-pw-91b3d5aa";
    let redis = RedisServer::start_with(&["--requirepass", password]);
    let url = |pw: &str| format!("redis://:{pw}@127.0.0.1:{}", redis.port());

    let server = BinaryServer::spawn(&url(password), &[]);
    let id = server.submit(&json!({"type": "noop"}));
    server.wait_for_status(&id, "completed", Duration::from_secs(10));
    let log = server.log();
    assert!(
        !log.contains(password),
        "the log shows the Redis password:\n{log}"
    );
    drop(server);

    let mut bad = BinaryServer::launch(&url(wrong), &[]);
    let status = bad.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| {
        panic!(
            "jobq with a wrong Redis password is still running after 10 s; log:\n{}",
            bad.log()
        )
    });
    let log = bad.log();
    assert!(!status.success(), "{status}; log:\n{log}");
    assert!(
        log.to_ascii_lowercase().contains("password"),
        "the log should name the password as the cause:\n{log}"
    );
    // One clear error: not an "unreachable" outage line before the reason jobq stops.
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("[ERROR]")).collect();
    assert_eq!(errors.len(), 1, "expected one error line:\n{log}");
    assert!(
        errors[0].contains("cannot start") && !log.contains("unreachable"),
        "{log}"
    );
    assert!(
        !log.contains(wrong) && !log.contains(password),
        "the log shows a password:\n{log}"
    );
}

fn tls_redis(pki: &Pki, auth_clients: bool) -> RedisServer {
    let args = pki.server_args(auth_clients);
    RedisServer::start_with(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Launches jobq against `url` and expects it to exit non-zero within 10 s; returns its log.
fn expect_start_up_failure(url: &str, env: &[(&str, &str)], what: &str) -> String {
    let mut bad = BinaryServer::launch(url, env);
    let status = bad.wait_exit(Duration::from_secs(10)).unwrap_or_else(|| {
        panic!(
            "jobq {what} is still running after 10 s; log:\n{}",
            bad.log()
        )
    });
    let log = bad.log();
    assert!(!status.success(), "jobq {what}: {status}; log:\n{log}");
    log
}

#[test]
fn tls_only_redis_works_with_its_ca_and_refuses_another() {
    let pki = make_pki();
    let redis = tls_redis(&pki, false);
    let url = format!("rediss://127.0.0.1:{}", redis.port());
    let ca = pki.ca.to_string_lossy().into_owned();
    let server = BinaryServer::spawn(&url, &[("REDIS_CA_CERT", &ca)]);
    let id = server.submit(&json!({"type": "noop"}));
    server.wait_for_status(&id, "completed", Duration::from_secs(10));
    drop(server);

    let other = pki.other_ca.to_string_lossy().into_owned();
    let log = expect_start_up_failure(
        &url,
        &[("REDIS_CA_CERT", &other)],
        "trusting a CA that did not sign Redis's certificate",
    );
    assert!(
        log.to_ascii_lowercase().contains("certificate"),
        "the log should name the certificate problem:\n{log}"
    );

    // Plain text to a TLS port is no substitute either.
    let plain = format!("redis://127.0.0.1:{}", redis.port());
    let mut bad = BinaryServer::launch(&plain, &[]);
    let healthy = wait_for_exit_or_health(&mut bad);
    assert!(
        !healthy,
        "jobq speaking plain text to a TLS-only Redis should not report healthy; log:\n{}",
        bad.log()
    );
}

/// Whether jobq reports healthy (true) or exits / stays unhealthy (false) within 10 s.
fn wait_for_exit_or_health(server: &mut BinaryServer) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if server.wait_exit(Duration::from_millis(1)).is_some() {
            return false;
        }
        if let Ok(r) = server.try_request("GET", "/health", b"") {
            if r.status == 200 {
                return true;
            }
            if r.status == 503 {
                return false;
            }
        }
        std::thread::sleep(POLL);
    }
    false
}

#[test]
fn tls_redis_that_requires_client_certificates() {
    let pki = make_pki();
    let redis = tls_redis(&pki, true);
    let url = format!("rediss://127.0.0.1:{}", redis.port());
    let s = |p: &PathBuf| p.to_string_lossy().into_owned();
    let (ca, cert, key) = (s(&pki.ca), s(&pki.client.0), s(&pki.client.1));
    let server = BinaryServer::spawn(
        &url,
        &[
            ("REDIS_CA_CERT", &ca),
            ("REDIS_CLIENT_CERT", &cert),
            ("REDIS_CLIENT_KEY", &key),
        ],
    );
    let id = server.submit(&json!({"type": "noop"}));
    server.wait_for_status(&id, "completed", Duration::from_secs(10));
    drop(server);

    let log = expect_start_up_failure(
        &url,
        &[("REDIS_CA_CERT", &ca)],
        "without a client certificate for a Redis that requires one",
    );
    let lower = log.to_ascii_lowercase();
    assert!(
        lower.contains("certificate") || lower.contains("tls"),
        "the log should name the TLS problem:\n{log}"
    );
}

/// Listening beyond loopback without a token is allowed (a private network may be enough) but
/// said at start-up; with a token, or on loopback, nothing is said.
#[test]
fn listening_beyond_loopback_without_a_token_is_warned_about() {
    let redis = RedisServer::start();
    let open = BinaryServer::spawn(&redis.url(), &[("HOST", "0.0.0.0")]);
    assert!(
        open.log().contains("without API_TOKEN"),
        "expected a warning about the open listener:\n{}",
        open.log()
    );
    let token = "0123456789abcdef0123456789abcdef";
    let guarded = BinaryServer::spawn(&redis.url(), &[("HOST", "0.0.0.0"), ("API_TOKEN", token)]);
    let local = BinaryServer::spawn(&redis.url(), &[]);
    for (what, server) in [("with a token", &guarded), ("on loopback", &local)] {
        assert!(
            !server.log().contains("without API_TOKEN"),
            "no warning expected {what}:\n{}",
            server.log()
        );
    }
}
