//! What a browser or a read-only caller may do: the API_TOKEN_READONLY token (GET routes only,
//! 403 elsewhere), the security headers on every answer (jobq's and tiny_http's own), and the
//! refusal of state changes that a browser sends from another site.

use crate::harness::*;
use serde_json::json;

const TOKEN: &str = "it-token-5d41402abc4b2a76b9719d91";
const READ_ONLY: &str = "it-readonly-7b8c1f2e9a0d4c3b5e6f";

fn auth(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

/// Sends with one bearer token.
fn with(c: &Client, token: &str, method: &str, path: &str, body: &[u8]) -> Resp {
    let (name, value) = auth(token);
    c.request_with(method, path, &[(name, &value)], body)
}

#[test]
fn the_read_only_token_reads_everything_and_changes_nothing() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| {
        c.api_token = Some(TOKEN.into());
        c.api_token_readonly = Some(READ_ONLY.into());
    });
    let r = with(&server, TOKEN, "POST", "/jobs", br#"{"type": "noop"}"#);
    r.expect_status(201, "POST /jobs with the full token");
    let id = r.json()["job_id"].as_str().unwrap().to_string();

    let job = format!("/jobs/{id}");
    for path in [
        "/stats",
        &job,
        "/queues",
        "/dlq",
        "/workers",
        "/stats/history",
        "/schedules",
        "/openapi.json",
        "/metrics",
        "/health",
    ] {
        with(&server, READ_ONLY, "GET", path, b"")
            .expect_status(200, &format!("GET {path} read-only"));
    }

    let cancel = format!("/jobs/{id}/cancel");
    let schedule = json!({"cron": "0 0 * * * *", "job": {"type": "noop"}}).to_string();
    let changes: [(&str, &str, &[u8]); 6] = [
        ("POST", "/jobs", br#"{"type": "noop"}"#),
        ("DELETE", "/dlq", b""),
        ("POST", "/queues/default/pause", b""),
        ("POST", &cancel, b""),
        ("PUT", "/schedules/nightly", schedule.as_bytes()),
        ("POST", "/dlq/retry", b""),
    ];
    for (method, path, body) in changes {
        let what = format!("{method} {path} with the read-only token");
        let r = with(&server, READ_ONLY, method, path, body);
        let msg = r.expect_json_error(403, &what);
        assert!(
            msg.starts_with("this token is read-only: "),
            "{what}: {msg}"
        );
        assert!(
            msg.contains(path),
            "{what}: the message names the route: {msg}"
        );
        assert!(
            r.header("www-authenticate").is_none(),
            "{what}: a 403 is no challenge"
        );
    }
    // Nothing changed: one job, the queue not paused, no schedule.
    let stats = with(&server, READ_ONLY, "GET", "/stats", b"").json();
    assert_eq!(stats["total_jobs"], 1, "{stats}");
    let queue = with(&server, READ_ONLY, "GET", "/queues/default", b"").json();
    assert_eq!(queue["paused"], false, "{queue}");
    with(&server, READ_ONLY, "GET", "/schedules/nightly", b"")
        .expect_status(404, "the read-only PUT made no schedule");

    // The full token still may; a wrong one, or none, is still 401.
    with(&server, TOKEN, "POST", "/queues/default/pause", b"")
        .expect_status(200, "pause with the full token");
    with(&server, TOKEN, "POST", "/queues/default/resume", b"")
        .expect_status(200, "resume with the full token");
    with(
        &server,
        TOKEN,
        "PUT",
        "/schedules/nightly",
        schedule.as_bytes(),
    )
    .expect_status(201, "PUT /schedules/nightly with the full token");
    let wrong = "it-readonly-7b8c1f2e9a0d4c3b5e6X";
    for (method, path) in [("GET", "/stats"), ("POST", "/dlq/retry")] {
        with(&server, wrong, method, path, b"")
            .expect_json_error(401, &format!("{method} {path} with a wrong token"));
        server
            .request(method, path, b"")
            .expect_json_error(401, &format!("{method} {path} without a token"));
    }
}

/// Asserts the four browser security headers, with the API's policy.
fn expect_security_headers(r: &Resp, what: &str) {
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'none'; frame-ancestors 'none'",
        ),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(
            r.header(name),
            Some(value),
            "{what}: {name} in {:?}",
            r.headers
        );
    }
}

#[test]
fn security_headers_are_on_every_answer() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| c.api_token = Some(TOKEN.into()));
    let answers = [
        ("GET /health", server.get("/health"), 200),
        ("GET /stats, no token", server.get("/stats"), 401),
        (
            "POST /jobs",
            with(&server, TOKEN, "POST", "/jobs", br#"{"type": "noop"}"#),
            201,
        ),
        (
            "POST /jobs, bad JSON",
            with(&server, TOKEN, "POST", "/jobs", b"{"),
            400,
        ),
        ("GET /nope", with(&server, TOKEN, "GET", "/nope", b""), 404),
        ("PUT /dlq", with(&server, TOKEN, "PUT", "/dlq", b""), 405),
        (
            "GET /metrics (text)",
            with(&server, TOKEN, "GET", "/metrics", b""),
            200,
        ),
    ];
    for (what, r, status) in answers {
        r.expect_status(status, what);
        expect_security_headers(&r, what);
    }
    // tiny_http's own error answers: a malformed request line (400) and an over-long header (431).
    let raw: [(&str, Vec<u8>, u16); 2] = [
        (
            "a malformed request line",
            b"THIS IS NOT HTTP\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a 9000-byte header line",
            raw_request("GET", "/health", &[("X-Filler", &"a".repeat(9000))], ""),
            431,
        ),
    ];
    for (what, request, status) in raw {
        let r = send_raw(server.addr, &request, what).unwrap_or_else(|e| panic!("{e}"));
        r.expect_json_error(status, what);
        expect_security_headers(&r, what);
    }
}

/// A request as `curl -d '<json>'` sends it: no Origin, no Sec-Fetch-*, and a form content type.
fn curl_like(path: &str, extra: &[(&str, &str)], body: &str) -> Vec<u8> {
    let head: String = extra.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n{head}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Extra request headers.
type Headers<'a> = &'a [(&'a str, &'a str)];

#[test]
fn cross_site_state_changes_are_refused_and_other_clients_work() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let job = br#"{"type": "noop"}"#;
    let schedule = json!({"cron": "0 0 * * * *", "job": {"type": "noop"}}).to_string();
    let evil = [("Origin", "https://evil.example")];
    let cross = [("Sec-Fetch-Site", "cross-site")];
    let sibling = [
        ("Sec-Fetch-Site", "same-site"),
        ("Origin", "https://x.example"),
    ];
    let sandboxed = [("Origin", "null")];
    let refused: [(&str, &str, &[u8], Headers); 7] = [
        ("POST", "/jobs", job, &evil),
        ("POST", "/jobs", job, &cross),
        ("POST", "/jobs", job, &sibling),
        ("POST", "/jobs", job, &sandboxed),
        ("DELETE", "/dlq", b"", &evil),
        ("POST", "/queues/default/pause", b"", &cross),
        ("PUT", "/schedules/nightly", schedule.as_bytes(), &evil),
    ];
    for (method, path, body, headers) in refused {
        let what = format!("{method} {path} with {headers:?}");
        let msg = server
            .request_with(method, path, headers, body)
            .expect_json_error(403, &what);
        assert!(
            msg.starts_with("cross-site request refused"),
            "{what}: {msg}"
        );
    }
    // A browser form post: a form content type and the other site's Origin.
    let form = curl_like("/jobs", &evil, r#"{"type": "noop"}"#);
    send_raw(server.addr, &form, "a cross-site form post")
        .unwrap()
        .expect_json_error(403, "a cross-site form post");
    assert_eq!(
        server.stat("total_jobs"),
        0,
        "no refused request made a job"
    );
    server
        .get("/schedules/nightly")
        .expect_status(404, "the refused PUT made no schedule");

    // Reads are not affected (a cross-site page cannot read the answer: no CORS headers).
    let r = server.request_with("GET", "/stats", &cross, b"");
    r.expect_status(200, "a cross-site GET");
    assert!(r.header("access-control-allow-origin").is_none());

    // curl -d (a form content type, no Origin) works; so does the server's own origin.
    let r = send_raw(
        server.addr,
        &curl_like("/jobs", &[], r#"{"type": "noop"}"#),
        "curl -d",
    )
    .unwrap();
    r.expect_status(201, "curl -d without a content type");
    let own = format!("http://{}", server.addr);
    let same_origin: [&[(&str, &str)]; 3] = [
        &[("Origin", own.as_str())],
        &[("Sec-Fetch-Site", "same-origin"), ("Origin", own.as_str())],
        // Behind a proxy that rewrites Host, the browser's Sec-Fetch-Site decides.
        &[
            ("Sec-Fetch-Site", "same-origin"),
            ("Origin", "https://jobq.example"),
        ],
    ];
    for headers in same_origin {
        server
            .request_with("POST", "/jobs", headers, job)
            .expect_status(201, &format!("POST /jobs with {headers:?}"));
    }
    assert_eq!(server.stat("total_jobs"), 4);
}

#[test]
fn the_cross_site_rule_holds_with_the_token_too() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| c.api_token = Some(TOKEN.into()));
    let (name, value) = auth(TOKEN);
    let headers = [(name, value.as_str()), ("Origin", "https://evil.example")];
    server
        .request_with("POST", "/jobs", &headers, br#"{"type": "noop"}"#)
        .expect_json_error(403, "a cross-site POST with the full token");
    with(&server, TOKEN, "POST", "/jobs", br#"{"type": "noop"}"#)
        .expect_status(201, "the same POST from a client that is not a browser");
}
