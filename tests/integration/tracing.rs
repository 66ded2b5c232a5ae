//! W3C trace context: a job submitted with a `traceparent` (header or field) keeps it, its
//! attempts run as child spans of it (a command job sees `TRACEPARENT`), and its log lines name
//! the attempt's traceparent. The webhook header is covered in `webhooks.rs`.

use crate::harness::*;
use serde_json::{json, Value};
use std::fs;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The trace id and span id of a traceparent, checked for the W3C form.
fn ids(tp: &str) -> (String, String) {
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!((parts[0], parts[3]), ("00", "01"), "{tp}");
    assert!(parts[2].len() == 16 && parts[2].bytes().all(|b| b.is_ascii_hexdigit()));
    (parts[1].to_string(), parts[2].to_string())
}

#[test]
fn a_command_job_runs_as_a_child_span_of_the_trace_it_was_submitted_in() {
    let redis = RedisServer::start();
    let dir = temp_dir("trace");
    let file = dir.join("handlers.toml");
    // Prints what the program was given; fails its first attempt so two attempts show.
    fs::write(
        &file,
        "[commands.traced]\nrun = [\"/bin/sh\", \"-c\", \"printf '%s %s' \\\"$TRACEPARENT\\\" \\\"$TRACESTATE\\\"; [ \\\"$JOB_ATTEMPT\\\" -gt 1 ] || exit 3\"]\n",
    )
    .unwrap();
    let file = file.to_string_lossy().into_owned();
    let server = BinaryServer::spawn(
        &redis.url(),
        &[("HANDLERS_FILE", file.as_str()), ("BACKOFF_BASE_MS", "10")],
    );
    let body = json!({"type": "traced"}).to_string();
    let r = server.request_with(
        "POST",
        "/jobs",
        &[("traceparent", PARENT), ("tracestate", "vendor=abc")],
        body.as_bytes(),
    );
    r.expect_status(201, "POST /jobs with a traceparent header");
    let id = r.json()["job_id"].as_str().unwrap().to_string();
    let job = server.wait_for_status(&id, "completed", WAIT);
    assert_eq!(job["traceparent"], PARENT, "{job}");
    assert_eq!(job["tracestate"], "vendor=abc", "{job}");
    assert_eq!(job["attempt"], 2, "{job}");

    // The second attempt's environment: the same trace, a span of its own.
    let out = job["result"]
        .as_str()
        .expect("the program's output")
        .to_string();
    let (tp, state) = out.split_once(' ').expect("traceparent and tracestate");
    assert_eq!(state, "vendor=abc");
    let (trace, span) = ids(tp);
    assert_eq!(trace, TRACE_ID);
    assert_ne!(
        span, "00f067aa0ba902b7",
        "the attempt is a child span, not the caller's"
    );

    // Every line of the job names its attempt's traceparent; the two attempts have two spans.
    let log = wait_for("the job's log lines", WAIT, || {
        let log = server.log();
        if log.contains(&format!("job {id} (traced, traceparent 00-{TRACE_ID}-"))
            && log.matches(&format!("job {id} ")).count() >= 5
        {
            Ok(log)
        } else {
            Err(log)
        }
    });
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&format!("job {id} ")))
        .collect();
    for l in &lines {
        assert!(l.contains(&format!("traceparent 00-{TRACE_ID}-")), "{l}");
    }
    let created = lines.iter().find(|l| l.contains(" created")).unwrap();
    assert!(created.contains(PARENT), "{created}");
    let completed = lines.iter().find(|l| l.contains(" completed")).unwrap();
    assert!(completed.contains(tp), "{completed}");
    let failed = lines.iter().find(|l| l.contains(" failed")).unwrap();
    assert!(
        !failed.contains(tp),
        "each attempt has a span of its own: {failed}"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn trace_context_comes_from_the_body_or_the_headers_and_bad_values_are_named() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| c.num_workers = 0);
    let other = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    // A body field wins over the header, for that job only; tracestate comes with it.
    let batch = json!({"jobs": [
        {"type": "noop", "traceparent": other},
        {"type": "noop"},
    ]})
    .to_string();
    let r = server.request_with(
        "POST",
        "/jobs/batch",
        &[("traceparent", PARENT)],
        batch.as_bytes(),
    );
    r.expect_status(201, "POST /jobs/batch");
    let ids: Vec<String> = r.json()["job_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(server.job(&ids[0])["traceparent"], other);
    assert_eq!(server.job(&ids[1])["traceparent"], PARENT);

    // A malformed header is ignored, as the W3C specification asks: the job has no trace.
    let r = server.request_with(
        "POST",
        "/jobs",
        &[("traceparent", "not-a-trace"), ("tracestate", "a=b")],
        json!({"type": "noop"}).to_string().as_bytes(),
    );
    r.expect_status(201, "a malformed traceparent header");
    let job: Value = server.job(r.json()["job_id"].as_str().unwrap());
    assert!(
        job.get("traceparent").is_none() && job.get("tracestate").is_none(),
        "{job}"
    );

    // A malformed field is the client's own mistake: a 400 naming it.
    for (body, named) in [
        (
            json!({"type": "noop", "traceparent": "00-abc-def-01"}),
            "\"traceparent\"",
        ),
        (
            json!({"type": "noop", "traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}),
            "\"traceparent\"",
        ),
        (
            json!({"type": "noop", "tracestate": "a=b"}),
            "\"tracestate\"",
        ),
        (
            json!({"type": "noop", "traceparent": PARENT, "tracestate": "x".repeat(600)}),
            "\"tracestate\"",
        ),
    ] {
        let e = server
            .post_json("/jobs", &body)
            .expect_json_error(400, &body.to_string());
        assert!(e.contains(named), "{e}");
    }
}
