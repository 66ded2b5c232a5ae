//! The `webhook` job type against a real HTTP receiver on loopback (tests/support/receiver.rs):
//! results, retries, the dead-letter queue, a snooze on 429, the signature checked the way a
//! receiver would (openssl's HMAC, with a replay window), the SSRF guard at submission and at
//! run time, and the trace context header.
//!
//! The receiver is on 127.0.0.1, which webhooks reach only when WEBHOOK_ALLOW lists it, so
//! most tests list `127.0.0.1:<port>`; the SSRF tests leave it unset or list another port.

use crate::harness::*;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const SECRET: &str = "whsec-test-0123456789abcdef";

/// jobq whose webhooks may reach `receiver` (and nothing else), with `tweak` on top.
fn server_for(
    redis: &RedisServer,
    receiver: &Receiver,
    tweak: impl FnOnce(&mut jobq::Config),
) -> TestServer {
    let allow = format!("127.0.0.1:{}", receiver.port());
    TestServer::start(redis, move |c| {
        c.webhook_allow = Some(jobq::WebhookAllow::parse(&allow).unwrap());
        tweak(c);
    })
}

#[test]
fn a_webhook_is_sent_and_its_answer_is_the_result() {
    let receiver = Receiver::start();
    receiver.reply([Reply::new(201, r#"{"received": 42}"#)
        .header("Content-Type", "application/json")
        .header("X-Request-Id", "req-7")
        .header("Set-Cookie", "session=not-kept")]);
    let redis = RedisServer::start();
    let server = server_for(&redis, &receiver, |_| {});
    let id = server.submit(&json!({"type": "webhook", "payload": {
        "url": receiver.url("/hooks/orders?src=jobq"),
        "headers": {"Authorization": "Bearer abc", "X-Custom": "yes"},
        "body": {"order": 42, "state": "shipped"}
    }}));
    let job = server.wait_for_status(&id, "completed", WAIT);
    assert_eq!(job["attempt"], 1, "{job}");
    assert_eq!(
        job["result"],
        json!({
            "status": 201,
            "headers": {"content-type": "application/json", "content-length": "16", "x-request-id": "req-7"},
            "body": {"received": 42},
            "truncated": false
        }),
        "{job}"
    );
    let reqs = receiver.received();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let r = &reqs[0];
    assert_eq!(
        (r.method.as_str(), r.target.as_str()),
        ("POST", "/hooks/orders?src=jobq")
    );
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body, json!({"order": 42, "state": "shipped"}));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("authorization"), Some("Bearer abc"));
    assert_eq!(r.header("x-custom"), Some("yes"));
    assert_eq!(
        r.header("user-agent"),
        Some(concat!("jobq/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(r.header("x-jobq-job-id"), Some(id.as_str()));
    assert_eq!(r.header("x-jobq-attempt"), Some("1"));
    assert_eq!(
        r.header("x-jobq-signature"),
        None,
        "no WEBHOOK_SECRET, no signature"
    );
    assert_eq!(r.header("traceparent"), None);

    // A string body is sent as text, and GET goes without a body.
    let text = server.submit(&json!({"type": "webhook", "payload": {
        "url": receiver.url("/text"), "method": "PUT", "body": "plain words"
    }}));
    let get = server.submit(&json!({"type": "webhook", "payload": {
        "url": receiver.url("/get"), "method": "GET"
    }}));
    server.wait_for_status(&text, "completed", WAIT);
    let job = server.wait_for_status(&get, "completed", WAIT);
    assert_eq!(job["result"]["body"], json!({"ok": true}), "{job}");
    let reqs = receiver.wait_for_requests(3, WAIT);
    let put = reqs.iter().find(|r| r.target == "/text").unwrap();
    assert_eq!(put.body, b"plain words");
    assert_eq!(
        put.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let get = reqs.iter().find(|r| r.target == "/get").unwrap();
    assert_eq!(get.method, "GET");
    assert!(get.body.is_empty(), "{get:?}");
    assert_eq!(get.header("content-type"), None, "{get:?}");
}

#[test]
fn a_5xx_is_retried_and_the_next_attempt_succeeds() {
    let receiver = Receiver::start();
    receiver.reply([
        Reply::new(503, "busy, come back later"),
        Reply::new(200, "done"),
    ]);
    let redis = RedisServer::start();
    let server = server_for(&redis, &receiver, |_| {});
    let id = server.submit(&json!({
        "type": "webhook", "max_attempts": 3,
        "payload": {"url": receiver.url("/flaky"), "body": {"n": 1}}
    }));
    let job = server.wait_for_status(&id, "completed", WAIT);
    assert_eq!(job["attempt"], 2, "{job}");
    assert_eq!(job["result"]["body"], "done", "{job}");
    let err = job["errors"][0]["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("answered 503 Service Unavailable: \"busy, come back later\"")
            && err.contains("retried after the backoff"),
        "{job}"
    );
    let attempts: Vec<Option<String>> = receiver
        .received()
        .iter()
        .map(|r| r.header("x-jobq-attempt").map(str::to_string))
        .collect();
    assert_eq!(attempts, [Some("1".into()), Some("2".into())]);
}

#[test]
fn a_receiver_that_is_down_is_a_transient_error() {
    let port = free_port();
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, move |c| {
        c.webhook_allow = Some(jobq::WebhookAllow::parse(&format!("127.0.0.1:{port}")).unwrap())
    });
    let id = server.submit(&json!({
        "type": "webhook", "max_attempts": 2,
        "payload": {"url": format!("http://127.0.0.1:{port}/down")}
    }));
    let job = server.wait_for_status(&id, "failed", WAIT);
    assert_eq!(job["attempt"], 2, "retried: {job}");
    let err = job["error"].as_str().unwrap_or_default();
    assert!(
        err.starts_with(&format!("POST http://127.0.0.1:{port}: "))
            && err.to_ascii_lowercase().contains("connection refused")
            && err.contains("retried after the backoff"),
        "{err}"
    );
}

#[test]
fn a_4xx_or_a_redirect_goes_to_the_dlq_at_once_with_a_clear_error() {
    let receiver = Receiver::start();
    receiver.reply([Reply::new(422, r#"{"error": "unknown order 42"}"#)]);
    let redis = RedisServer::start();
    let server = server_for(&redis, &receiver, |_| {});
    let id = server.submit(&json!({
        "type": "webhook", "max_attempts": 3,
        "payload": {"url": receiver.url("/orders"), "body": {"order": 42}}
    }));
    let job = server.wait_for_status(&id, "failed", WAIT);
    assert_eq!(job["attempt"], 1, "a 4xx is not retried: {job}");
    let err = job["error"].as_str().unwrap_or_default();
    let origin = format!("http://127.0.0.1:{}", receiver.port());
    assert!(
        err.starts_with(&format!(
            "POST {origin} answered 422 Unprocessable Entity: \"{{\\\"error\\\": \\\"unknown order 42\\\"}}\""
        )) && err.contains("not retried")
            && err.contains("dead-letter queue"),
        "{err}"
    );
    let dlq = server.get("/dlq").json();
    assert_eq!(dlq["total"], 1, "{dlq}");

    // A redirect is an answer like any other: not followed, and not in the default `expect`.
    receiver.reply([Reply::new(302, "").header("Location", "/elsewhere")]);
    let id = server.submit(&json!({
        "type": "webhook", "max_attempts": 3,
        "payload": {"url": receiver.url("/moved")}
    }));
    let job = server.wait_for_status(&id, "failed", WAIT);
    let err = job["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("answered 302 Found")
            && err.contains("(Location: /elsewhere)")
            && err.contains("redirects are not followed"),
        "{err}"
    );
    assert_eq!(receiver.received().len(), 2, "the redirect was followed");
    // Unless `expect` lists it.
    receiver.reply([Reply::new(302, "").header("Location", "/elsewhere")]);
    let id = server.submit(&json!({"type": "webhook", "payload": {
        "url": receiver.url("/moved"), "expect": ["2xx", 302]
    }}));
    let job = server.wait_for_status(&id, "completed", WAIT);
    assert_eq!(job["result"]["headers"]["location"], "/elsewhere", "{job}");
}

#[test]
fn a_429_with_retry_after_snoozes_without_using_an_attempt() {
    let receiver = Receiver::start();
    receiver.reply([
        Reply::new(429, "slow down").header("Retry-After", "1"),
        Reply::new(200, "thanks"),
    ]);
    let redis = RedisServer::start();
    let server = server_for(&redis, &receiver, |_| {});
    // One attempt allowed: a snooze that used one would leave none for the success.
    let id = server.submit(&json!({
        "type": "webhook", "max_attempts": 1,
        "payload": {"url": receiver.url("/limited")}
    }));
    let job = server.wait_for_status(&id, "completed", WAIT);
    assert_eq!(
        (job["attempt"].clone(), job["snoozes"].clone()),
        (json!(1), json!(1)),
        "{job}"
    );
    assert_eq!(job["result"]["body"], "thanks", "{job}");
    let m = server.metrics();
    let labels = [("queue", "default"), ("type", "webhook")];
    assert_eq!(
        metric_value(&m, "jobs_snoozed_total", &labels),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric_value(&m, "jobs_failed_total", &labels).unwrap_or(0.0),
        0.0,
        "{m}"
    );
    let reqs = receiver.received();
    // The snooze gave the attempt back, so the second request is attempt 1 again.
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert!(
        reqs.iter().all(|r| r.header("x-jobq-attempt") == Some("1")),
        "{reqs:?}"
    );
}

/// HMAC-SHA256 of `data` under `key`, in hex, by openssl: an implementation of its own, as a
/// receiver's would be.
fn openssl_hmac(key: &str, data: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", key])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run openssl (install the openssl package): {e}"));
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl dgst failed");
    let text = String::from_utf8(out.stdout).unwrap();
    // "SHA2-256(stdin)= 3f…" (older versions: "(stdin)= 3f…").
    text.trim().rsplit(' ').next().unwrap().to_string()
}

/// What a receiver does with `X-Jobq-Signature`: the HMAC of "<t>.<body>" must match, and `t`
/// must be within 5 minutes of its own clock (`now`), so a captured request cannot be replayed
/// later.
fn verify(secret: &str, header: &str, body: &[u8], now: i64) -> Result<(), String> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = Some(v),
            _ => {}
        }
    }
    let (t, v1) = t
        .zip(v1)
        .ok_or_else(|| format!("malformed header {header:?}"))?;
    if (now - t).abs() > 300 {
        return Err(format!("t={t} is outside the 5-minute window around {now}"));
    }
    let mut signed = format!("{t}.").into_bytes();
    signed.extend_from_slice(body);
    match openssl_hmac(secret, &signed) == v1 {
        true => Ok(()),
        false => Err("the signature does not match".into()),
    }
}

#[test]
fn requests_are_signed_and_a_receiver_can_verify_them() {
    let receiver = Receiver::start();
    let redis = RedisServer::start();
    let server = server_for(&redis, &receiver, |c| {
        c.webhook_secret = Some(SECRET.into())
    });
    let json_job = server.submit(&json!({"type": "webhook", "payload": {
        "url": receiver.url("/signed"), "body": {"order": 42, "note": "Grüße"}
    }}));
    let get_job = server.submit(&json!({"type": "webhook", "payload": {
        "url": receiver.url("/signed-get"), "method": "GET"
    }}));
    server.wait_for_status(&json_job, "completed", WAIT);
    server.wait_for_status(&get_job, "completed", WAIT);
    let now = chrono::Utc::now().timestamp();
    for r in receiver.wait_for_requests(2, WAIT) {
        let header = r.header("x-jobq-signature").expect("a signature");
        let t: i64 = header
            .strip_prefix("t=")
            .and_then(|h| h.split(',').next())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no t= first in {header:?}"));
        assert!(header.contains(",v1=") && header.len() == format!("t={t},v1=").len() + 64);
        verify(SECRET, header, &r.body, now).unwrap_or_else(|e| panic!("{}: {e}", r.target));
        // What the receiver's checks refuse: another body, another key, an old request.
        let mut tampered = r.body.clone();
        tampered.extend_from_slice(b" ");
        assert!(verify(SECRET, header, &tampered, now).is_err());
        assert!(verify("whsec-some-other-key-000", header, &r.body, now).is_err());
        let replayed = verify(SECRET, header, &r.body, t + 301).unwrap_err();
        assert!(
            replayed.contains("outside the 5-minute window"),
            "{replayed}"
        );
        assert!(verify(SECRET, header, &r.body, t + 299).is_ok());
    }
}

#[test]
fn private_and_loopback_destinations_are_refused_at_submission() {
    let receiver = Receiver::start();
    let redis = RedisServer::start();
    // No WEBHOOK_ALLOW: every public host, no private one.
    let server = TestServer::start(&redis, |c| c.webhook_allow = None);
    let port = receiver.port();
    let cases = [
        (
            format!("http://127.0.0.1:{port}/x"),
            "127.0.0.1 is a loopback address",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".into(),
            "cloud metadata",
        ),
        ("http://10.1.2.3/".into(), "private address"),
        ("http://[::1]:8080/".into(), "[::1] is a loopback address"),
        ("http://[::ffff:7f00:1]/".into(), "loopback"),
        ("http://[fd00::5]/".into(), "unique local"),
        ("http://0.0.0.0:9/".into(), "unspecified"),
        ("http://2130706433/".into(), "four decimal numbers"),
        ("file:///etc/passwd".into(), "only http:// and https://"),
        ("http://user:pw@example.com/".into(), "user info"),
    ];
    for (url, want) in cases {
        let msg = server
            .post_json(
                "/jobs",
                &json!({"type": "webhook", "payload": {"url": url}}),
            )
            .expect_json_error(400, &url);
        assert!(
            msg.contains("\"url\"") && msg.contains(want),
            "{url}: {msg}"
        );
        if !want.contains("http://") && !want.contains("user info") && !want.contains("decimal") {
            assert!(msg.contains("WEBHOOK_ALLOW"), "{url}: {msg}");
        }
    }
    // With WEBHOOK_ALLOW, only what it lists.
    drop(server);
    let other = format!("127.0.0.1:{}", port.wrapping_add(1).max(1));
    let server = TestServer::start(&redis, move |c| {
        c.webhook_allow = Some(jobq::WebhookAllow::parse(&other).unwrap())
    });
    for url in [receiver.url("/x"), "https://hooks.example.com/".into()] {
        let msg = server
            .post_json(
                "/jobs",
                &json!({"type": "webhook", "payload": {"url": url}}),
            )
            .expect_json_error(400, &url);
        assert!(
            msg.contains("is not a destination WEBHOOK_ALLOW permits"),
            "{url}: {msg}"
        );
    }
    assert_eq!(receiver.connections(), 0);
}

#[test]
fn a_name_that_resolves_to_loopback_fails_at_run_time_without_a_connection() {
    let receiver = Receiver::start();
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| c.webhook_allow = None);
    // A name passes the submission check: only resolving it shows where it leads.
    let id = server.submit(&json!({
        "type": "webhook", "max_attempts": 3,
        "payload": {"url": format!("http://localhost:{}/hook", receiver.port())}
    }));
    let job = server.wait_for_status(&id, "failed", WAIT);
    assert_eq!(job["attempt"], 1, "refused permanently: {job}");
    let err = job["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("localhost resolves to ")
            && (err.contains("127.0.0.1") || err.contains("::1"))
            && err.contains("a loopback address")
            && err.contains("no connection was made")
            && err.contains(&format!("WEBHOOK_ALLOW=localhost:{}", receiver.port())),
        "{err}"
    );
    assert_eq!(receiver.connections(), 0, "the receiver was connected to");
    assert!(receiver.received().is_empty());
}

#[test]
fn a_job_submitted_in_a_trace_sends_its_attempts_span_as_traceparent() {
    let receiver = Receiver::start();
    receiver.reply([Reply::new(503, "not yet"), Reply::new(200, "ok")]);
    let redis = RedisServer::start();
    let server = server_for(&redis, &receiver, |c| c.backoff_base_ms = 10);
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let body = json!({"type": "webhook", "payload": {
        "url": receiver.url("/traced"),
        // jobq's own traceparent replaces one given here.
        "headers": {"traceparent": "00-11111111111111111111111111111111-2222222222222222-01"}
    }})
    .to_string();
    let r = server.request_with("POST", "/jobs", &[("traceparent", parent)], body.as_bytes());
    r.expect_status(201, "POST /jobs with a traceparent header");
    let id = r.json()["job_id"].as_str().unwrap().to_string();
    server.wait_for_status(&id, "completed", WAIT);
    let reqs = receiver.wait_for_requests(2, WAIT);
    let spans: Vec<&str> = reqs
        .iter()
        .map(|r| {
            let tp = r.header("traceparent").expect("a traceparent header");
            let parts: Vec<&str> = tp.split('-').collect();
            assert_eq!(parts.len(), 4, "{tp}");
            assert_eq!(
                (parts[0], parts[1], parts[3]),
                ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01"),
                "the submitter's trace: {tp}"
            );
            parts[2]
        })
        .collect();
    // Each attempt is a child span of the submitter's, a span of its own.
    assert!(!spans.contains(&"00f067aa0ba902b7"), "{spans:?}");
    assert_ne!(spans[0], spans[1]);
    // Outside a worker, a context without a trace sends none.
    let config = jobq::Config {
        webhook_allow: Some(
            jobq::WebhookAllow::parse(&format!("127.0.0.1:{}", receiver.port())).unwrap(),
        ),
        ..jobq::Config::default()
    };
    let registry = jobq::builtin_registry(&config).unwrap();
    let ctx = jobq::JobContext::new(
        "job-1",
        "webhook",
        json!({"url": receiver.url("/untraced")}),
        1,
        3,
        jobq::Cancellation::new(None),
    );
    receiver.reply([Reply::new(200, "ok")]);
    registry.get("webhook").unwrap().run(&ctx).unwrap();
    let reqs = receiver.wait_for_requests(3, WAIT);
    assert_eq!(reqs[2].header("traceparent"), None);
}
