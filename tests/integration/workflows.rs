//! Workflows and dependencies, unique keys and start deadlines: a diamond whose nodes see their
//! parents' results, a parent's failure cancelling (or not) its descendants, cycles refused,
//! 50 concurrent submissions of one unique key, and a job that expires unstarted.

use crate::harness::*;
use jobq::{JobContext, JobResult};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// A handler that answers its payload's `name` and the results of its parents.
fn node(job: &JobContext) -> JobResult {
    Ok(json!({"name": job.payload["name"], "parents": job.parent_results()}))
}

fn with_node(r: &mut jobq::Registry) {
    r.register("node", node);
}

fn node_job(name: &str, deps: &[&str]) -> Value {
    json!({"ref": name, "type": "node", "payload": {"name": name}, "depends_on": deps})
}

#[test]
fn a_diamond_runs_parents_first_and_passes_their_results() {
    let redis = RedisServer::start();
    let server = TestServer::with_registry(&redis, with_node, |c| c.num_workers = 3);
    // fetch → (resize, report) → notify → archive
    let r = server.post_json(
        "/workflows",
        &json!({"jobs": [
            node_job("notify", &["resize", "report"]),
            node_job("fetch", &[]),
            node_job("resize", &["fetch"]),
            node_job("report", &["fetch"]),
            node_job("archive", &["notify"]),
        ]}),
    );
    r.expect_status(201, "POST /workflows");
    let v = r.json();
    let wf = v["workflow_id"].as_str().unwrap().to_string();
    let ids: std::collections::HashMap<String, String> =
        serde_json::from_value(v["jobs"].clone()).unwrap();
    assert_eq!(ids.len(), 5, "{v}");

    let archive = server.wait_for_status(&ids["archive"], "completed", WAIT);
    let notify = server.job(&ids["notify"]);
    assert_eq!(
        notify["result"]["parents"]["resize"]["name"], "resize",
        "{notify}"
    );
    assert_eq!(
        notify["result"]["parents"]["report"]["parents"]["fetch"]["name"], "fetch",
        "{notify}"
    );
    assert_eq!(
        archive["result"]["parents"]["notify"]["name"], "notify",
        "{archive}"
    );
    // Every child started after each of its parents completed.
    for (child, parent) in [
        ("resize", "fetch"),
        ("report", "fetch"),
        ("notify", "resize"),
        ("notify", "report"),
        ("archive", "notify"),
    ] {
        let c = server.job(&ids[child]);
        let p = server.job(&ids[parent]);
        assert!(
            ts_req(&c, "started_at") >= ts_req(&p, "completed_at"),
            "{child} started before {parent} completed: {c} {p}"
        );
        assert!(
            c["parents"]
                .as_array()
                .unwrap()
                .contains(&json!(ids[parent])),
            "{c}"
        );
        assert!(
            p["children"]
                .as_array()
                .unwrap()
                .contains(&json!(ids[child])),
            "{p}"
        );
        assert_eq!(c["workflow_id"], json!(wf), "{c}");
        assert_eq!(c["ref"], json!(child), "{c}");
    }
    let w = server.get(&format!("/workflows/{wf}"));
    w.expect_status(200, "GET /workflows/{id}");
    let w = w.json();
    assert_eq!(w["status"], "completed", "{w}");
    assert_eq!(w["edges"].as_array().unwrap().len(), 5, "{w}");
    assert_eq!(w["counts"]["completed"], 5, "{w}");
    // The waiting jobs went through the queue counts and left them as they were.
    let stats = server.wait_for_stat("completed_jobs", 5, WAIT);
    assert_eq!(stats["pending_jobs"], 0, "{stats}");
    assert_eq!(
        metric_value(
            &server.metrics(),
            "jobs_unblocked_total",
            &[("queue", "default"), ("type", "node")]
        ),
        Some(4.0)
    );
}

#[test]
fn a_failed_parent_cancels_its_descendants_unless_they_run_anyway() {
    let redis = RedisServer::start();
    let server = TestServer::with_registry(&redis, with_node, |_| {});
    let r = server.post_json(
        "/workflows",
        &json!({"jobs": [
            {"ref": "a", "type": "fail", "max_attempts": 1},
            node_job("b", &["a"]),
            node_job("c", &["b"]),
            {"ref": "d", "type": "node", "payload": {"name": "d"}, "depends_on": ["a"],
             "on_parent_failure": "run"},
        ]}),
    );
    r.expect_status(201, "POST /workflows");
    let ids: std::collections::HashMap<String, String> =
        serde_json::from_value(r.json()["jobs"].clone()).unwrap();
    let b = server.wait_for_status(&ids["b"], "cancelled", WAIT);
    assert!(b["started_at"].is_null(), "{b}");
    server.wait_for_status(&ids["c"], "cancelled", WAIT);
    let d = server.wait_for_status(&ids["d"], "completed", WAIT);
    assert_eq!(d["result"]["parents"]["a"], Value::Null, "{d}");
    assert_eq!(server.job(&ids["a"])["status"], "failed");
    let metrics = server.metrics();
    assert_eq!(
        metric_value(
            &metrics,
            "jobs_cancelled_total",
            &[("queue", "default"), ("type", "node"), ("stage", "waiting")]
        ),
        Some(2.0),
        "{metrics}"
    );
    // Not in the DLQ: only the failed parent is.
    let dlq = server.get("/dlq").json();
    assert_eq!(dlq["total"], 1, "{dlq}");
}

#[test]
fn cycles_unknown_refs_and_finished_parents_are_refused() {
    let redis = RedisServer::start();
    let server = TestServer::with_registry(&redis, with_node, |_| {});
    let cycle = server.post_json(
        "/workflows",
        &json!({"jobs": [node_job("a", &["c"]), node_job("b", &["a"]), node_job("c", &["b"])]}),
    );
    let msg = cycle.expect_json_error(400, "a cycle");
    assert!(msg.contains("cycle"), "{msg}");
    let missing = server.post_json("/workflows", &json!({"jobs": [node_job("a", &["nope"])]}));
    let msg = missing.expect_json_error(400, "a missing ref");
    assert!(msg.contains("nope"), "{msg}");
    let too_many: Vec<Value> = (0..1001).map(|i| node_job(&format!("n{i}"), &[])).collect();
    let big = server.post_json("/workflows", &json!({ "jobs": too_many }));
    big.expect_json_error(400, "1001 nodes");
    // Nothing of the refused workflows was created.
    assert_eq!(server.stat("total_jobs"), 0);

    // depends_on with existing ids: a failed parent refuses the child (409) unless it runs
    // anyway; an unknown parent is a 400.
    let failed = server.submit(&json!({"type": "fail", "max_attempts": 1}));
    server.wait_for_status(&failed, "failed", WAIT);
    let r = server.post_json("/jobs", &json!({"type": "noop", "depends_on": [failed]}));
    r.expect_json_error(409, "a failed parent");
    assert_eq!(r.json()["job_id"], json!(failed));
    let anyway = server.post_json(
        "/jobs",
        &json!({"type": "noop", "depends_on": [failed], "on_parent_failure": "run"}),
    );
    anyway.expect_status(201, "run anyway");
    let unknown = server.post_json(
        "/jobs",
        &json!({"type": "noop", "depends_on": ["550e8400-e29b-41d4-a716-446655440000"]}),
    );
    unknown.expect_json_error(400, "an unknown parent");
}

#[test]
fn one_job_per_unique_key_among_50_concurrent_submissions() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| c.http_threads = 8);
    let client = server.client();
    let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|_| {
                s.spawn(move || {
                    let r = client.post_json(
                        "/jobs",
                        &json!({"type": "sleep", "payload": {"ms": 1500}, "unique_key": "report:42"}),
                    );
                    (r.status, r.json())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    let id = created[0]["job_id"].as_str().unwrap().to_string();
    for (status, v) in &answers {
        if *status != 201 {
            assert_eq!(*status, 409, "{v}");
            assert_eq!(v["job_id"], json!(id), "{v}");
        }
    }
    assert_eq!(server.stat("total_jobs"), 1);
    // Held while it runs, free once it has finished.
    server.wait_for_status(&id, "running", WAIT);
    let again = json!({"type": "noop", "unique_key": "report:42"});
    server
        .post_json("/jobs", &again)
        .expect_json_error(409, "while running");
    server.wait_for_status(&id, "completed", WAIT);
    server.submit(&again);
}

#[test]
fn a_job_past_its_start_deadline_never_starts() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    server
        .post_json("/queues/slow/pause", &json!({}))
        .expect_status(200, "pause");
    let late = server.submit(&json!({"type": "noop", "queue": "slow", "expires_in_secs": 1}));
    let fine = server.submit(&json!({"type": "noop", "queue": "slow", "expires_in_secs": 600}));
    std::thread::sleep(Duration::from_millis(1500));
    server
        .post_json("/queues/slow/resume", &json!({}))
        .expect_status(200, "resume");
    let job = server.wait_for_status(&late, "expired", WAIT);
    assert!(job["started_at"].is_null(), "{job}");
    assert_eq!(job["attempt"], 0, "{job}");
    server.wait_for_status(&fine, "completed", WAIT);
    assert_eq!(
        metric_value(
            &server.metrics(),
            "jobs_expired_total",
            &[("queue", "slow"), ("type", "noop")]
        ),
        Some(1.0)
    );
    let bad = server.post_json(
        "/jobs",
        &json!({"type": "noop", "expires_at": "2030-01-01T00:00:00Z", "expires_in_secs": 5}),
    );
    bad.expect_json_error(400, "both deadlines");
}
