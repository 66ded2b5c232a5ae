//! jobq's patches to tiny_http (vendor/tiny_http/PATCHES.md), seen from a client: the patched
//! behaviours that the other modules do not already cover. security.rs covers the connection cap
//! (503), the 431 for a long header line, the JSON 400 for a malformed request line and slow
//! bodies; correctness.rs covers in-order pipelining.

use crate::harness::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// jobq's socket timeout (src/server/mod.rs): how long a silent connection is kept, and how long
/// an idle accept waits before it ends and starts over.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection for requests written by hand, reading with `read_timeout`.
fn connect(addr: SocketAddr, read_timeout: Duration) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(read_timeout)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads one answer from a connection that stays open.
fn read_answer(reader: &mut BufReader<TcpStream>, what: &str) -> Resp {
    read_response(reader).unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Patch "header limits": the request line is limited like a header line (8192 bytes), and a
/// request has at most 100 header lines; past either, 431 with a JSON body.
#[test]
fn long_request_lines_and_too_many_header_lines_get_json_431() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});

    let long_path = format!("/health?{}", "a".repeat(9000));
    let what = "GET with a 9000-byte request line";
    send_raw(server.addr, &raw_request("GET", &long_path, &[], ""), what)
        .unwrap_or_else(|e| panic!("{what}: {e}"))
        .expect_json_error(431, what);

    // raw_request adds Host, so 99 more make 100 header lines: the most a request may have.
    let names: Vec<String> = (0..100).map(|i| format!("X-Header-{i}")).collect();
    let headers: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    let what = "GET /health with 100 header lines";
    send_raw(
        server.addr,
        &raw_request("GET", "/health", &headers[..99], ""),
        what,
    )
    .unwrap_or_else(|e| panic!("{what}: {e}"))
    .expect_status(200, what);
    let what = "GET /health with 101 header lines";
    let msg = send_raw(
        server.addr,
        &raw_request("GET", "/health", &headers, ""),
        what,
    )
    .unwrap_or_else(|e| panic!("{what}: {e}"))
    .expect_json_error(431, what);
    assert!(
        msg.contains("100"),
        "{what}: the 431 should name the limit: {msg}"
    );

    server
        .get("/health")
        .expect_status(200, "GET /health after the refused requests");
}

/// Patch "JSON error answers": tiny_http's own 400 for a malformed header line carries an
/// `{"error": ...}` body like jobq's answers; upstream's is empty. (The 417 for an unknown
/// `Expect` goes out without its body, and HTTP/2.0 got no answer here: PATCHES.md, "Open".)
#[test]
fn tiny_http_protocol_errors_answer_json() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});

    let cases: [(&[u8], u16); 3] = [
        (
            b"GET /health HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
            400,
        ),
        // Patch 8: with its body (upstream sent the headers only, and the client waited).
        (
            b"POST /jobs HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\nContent-Length: 2\r\n\r\n{}",
            417,
        ),
        // Patch 8: answered at all (upstream's connection hung).
        (b"GET /health HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ];
    for (raw, status) in cases {
        let what = format!("{:?}", String::from_utf8_lossy(raw));
        let r = send_raw(server.addr, raw, &what).unwrap_or_else(|e| panic!("{what}: {e}"));
        r.expect_json_error(status, &what);
        assert!(
            r.body.ends_with('\n'),
            "{what}: body ends with a newline: {r:?}"
        );
    }
}

/// Patches "408 on a read timeout" and "the accept loop survives": a client that sends half a
/// request head and falls silent gets a JSON 408 once the socket timeout passes (Linux reports
/// the timeout as WouldBlock, which upstream did not answer). Meanwhile the accept call, idle
/// for as long, has ended by the listening socket's receive timeout; upstream ended its accept
/// loop on that error and never took another connection.
#[test]
fn a_silent_client_gets_json_408_and_an_idle_server_keeps_accepting() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});

    let mut s = connect(server.addr, SOCKET_TIMEOUT * 2);
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .unwrap_or_else(|e| panic!("no 408 within {:?}: {e}", SOCKET_TIMEOUT * 2));
    let took = started.elapsed();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "a silent client should get 408, got {answer:?} after {took:?}"
    );
    assert!(
        took >= SOCKET_TIMEOUT - Duration::from_secs(1),
        "408 after {took:?}, before the socket timeout"
    );
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{answer:?}"
    );
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer:?}"));
    assert!(v["error"].is_string(), "{answer:?}");

    // No connection arrived for the socket timeout: the accept went idle that long.
    server.get("/health").expect_status(
        200,
        "GET /health after the accept was idle for the socket timeout",
    );
}

/// Patch "the task pool": a burst of new connections while threads of the pool are waiting is
/// served at once, although every connection stays open (keep-alive). Upstream could queue two
/// connections for one waiting thread, and the second then waited, unanswered, until another
/// connection closed (here: until the socket timeout).
#[test]
fn a_burst_of_new_connections_is_served_while_all_stay_open() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    for round in 0..4 {
        // More connections than the pool has waiting threads: 4 at start, then the threads of
        // the previous round's connections, closed below.
        let mut conns: Vec<BufReader<TcpStream>> = (0..24)
            .map(|_| BufReader::new(connect(server.addr, SOCKET_TIMEOUT / 2)))
            .collect();
        for c in &mut conns {
            c.get_mut()
                .write_all(&raw_request("GET", "/health", &[], ""))
                .unwrap();
        }
        let started = Instant::now();
        for (i, c) in conns.iter_mut().enumerate() {
            let what = format!("round {round}, keep-alive connection {i}: GET /health");
            read_answer(c, &what).expect_status(200, &what);
        }
        assert!(
            started.elapsed() < SOCKET_TIMEOUT / 2,
            "round {round}: 24 answers took {:?}",
            started.elapsed()
        );
        // A second request on each still-open connection is answered too.
        for (i, c) in conns.iter_mut().enumerate() {
            c.get_mut()
                .write_all(&raw_request("GET", "/health", &[], ""))
                .unwrap();
            let what = format!("round {round}, connection {i}: second GET /health");
            read_answer(c, &what).expect_status(200, &what);
        }
    }
}

/// Patch "eager bodies": a body up to MAX_BODY_BYTES is read by the connection's thread, which
/// first answers `Expect: 100-continue` (else client and server would wait for each other), and
/// the final answer follows with no second interim answer.
#[test]
fn expect_100_continue_is_answered_before_the_body_is_read() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let body = json!({"type": "noop", "payload": {"n": 1}}).to_string();
    let head = format!(
        "POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    let s = connect(server.addr, Duration::from_secs(5));
    let mut reader = BufReader::new(s);
    reader.get_mut().write_all(head.as_bytes()).unwrap();
    let mut interim = String::new();
    reader
        .read_line(&mut interim)
        .unwrap_or_else(|e| panic!("no 100 Continue before the body was sent: {e}"));
    assert_eq!(interim, "HTTP/1.1 100 Continue\r\n");
    let mut blank = String::new();
    reader.read_line(&mut blank).unwrap();
    assert_eq!(blank, "\r\n");
    reader.get_mut().write_all(body.as_bytes()).unwrap();
    let r = read_answer(&mut reader, "POST /jobs after 100 Continue");
    r.expect_status(201, "POST /jobs after 100 Continue");
    let id = r.json()["job_id"].as_str().unwrap().to_string();
    server.wait_for_status(&id, "completed", Duration::from_secs(10));
}

/// Patch "eager bodies", chunked: a chunked body is decoded up to MAX_BODY_BYTES + 1 bytes by the
/// connection's thread; one within the limit makes a job, a longer one gets 413.
#[test]
fn chunked_bodies_are_read_whole_or_refused_past_max_body_bytes() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| c.max_body_bytes = 1024);
    let chunked = |body: &str| {
        let mut r = String::from(
            "POST /jobs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        );
        for part in body.as_bytes().chunks(100) {
            r.push_str(&format!(
                "{:x}\r\n{}\r\n",
                part.len(),
                String::from_utf8_lossy(part)
            ));
        }
        r.push_str("0\r\n\r\n");
        r.into_bytes()
    };

    let small = json!({"type": "noop", "payload": {"pad": "x".repeat(500)}}).to_string();
    let what = format!("chunked POST /jobs of {} bytes", small.len());
    let r =
        send_raw(server.addr, &chunked(&small), &what).unwrap_or_else(|e| panic!("{what}: {e}"));
    r.expect_status(201, &what);
    let id = r.json()["job_id"].as_str().unwrap().to_string();
    server.wait_for_status(&id, "completed", Duration::from_secs(10));

    let big = json!({"type": "noop", "payload": {"pad": "x".repeat(3000)}}).to_string();
    let what = format!(
        "chunked POST /jobs of {} bytes, MAX_BODY_BYTES 1024",
        big.len()
    );
    send_raw(server.addr, &chunked(&big), &what)
        .unwrap_or_else(|e| panic!("{what}: {e}"))
        .expect_json_error(413, &what);
    assert_eq!(server.stat("total_jobs"), 1, "the refused body made no job");
}
