//! `GET /workers`: every live worker process with what it serves, its threads, what each runs
//! (type, start, progress) and its last heartbeat; a process with ROLE=api is not one, and a
//! process that stopped cleanly is gone at once.

use crate::harness::*;
use jobq::{JobContext, JobResult, QueueOrder, Role};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn workers(server: &Client) -> Vec<Value> {
    let r = server.get("/workers");
    r.expect_status(200, "GET /workers");
    r.json()["workers"].as_array().cloned().unwrap_or_default()
}

fn time(v: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("a time: {v}")))
        .unwrap()
        .into()
}

#[test]
fn live_processes_show_their_queues_threads_and_running_jobs() {
    let redis = RedisServer::start();
    // Quick beats (RECOVERY_SECS=3: one every 400 ms).
    let strict = TestServer::start(&redis, |c| {
        c.num_workers = 1;
        c.queues = vec![("critical".into(), 1), ("bulk".into(), 1)];
        c.queue_order = QueueOrder::Strict;
        c.recovery_secs = 3;
    });
    let sleeping =
        strict.submit(&json!({"type": "sleep", "queue": "critical", "payload": {"ms": 20000}}));
    strict.wait_for_status(&sleeping, "running", WAIT);
    // Started second, so it cannot have taken the sleep job (it serves every queue).
    let all = TestServer::with_registry(
        &redis,
        |r| {
            r.register("steps", |job: &JobContext| -> JobResult {
                job.progress(40, "resizing");
                job.cancel.sleep(Duration::from_secs(20));
                Ok(json!("done"))
            });
        },
        |c| {
            c.num_workers = 3;
            c.recovery_secs = 3;
        },
    );
    let api = TestServer::start(&redis, |c| c.role = Role::Api);
    let stepping = all.submit(&json!({"type": "steps"}));
    all.wait_for_status(&stepping, "running", WAIT);

    let listed = wait_for("both processes with their jobs and progress", WAIT, || {
        let ws = workers(&api);
        let shown = ws.len() == 2
            && ws.iter().all(|w| w["busy"] == 1)
            && ws.iter().any(|w| w["jobs"][0]["progress"]["percent"] == 40);
        if shown {
            Ok(ws)
        } else {
            Err(format!("{ws:?}"))
        }
    });
    let by_threads = |n: u64| {
        listed
            .iter()
            .find(|w| w["threads"] == n)
            .unwrap_or_else(|| panic!("a process with {n} threads: {listed:?}"))
    };
    let (s, a) = (by_threads(1), by_threads(3));
    assert_eq!(s["queues"], json!(["critical", "bulk"]), "{s}");
    assert_eq!((&s["order"], &s["role"]), (&json!("strict"), &json!("all")));
    assert_eq!((&s["busy"], &s["idle"]), (&json!(1), &json!(0)), "{s}");
    assert_eq!(s["pid"], std::process::id());
    assert!(s["id"]
        .as_str()
        .unwrap()
        .starts_with(s["host"].as_str().unwrap()));
    let job = &s["jobs"][0];
    assert_eq!(
        (&job["id"], &job["type"]),
        (&json!(sleeping), &json!("sleep"))
    );
    assert_eq!(job["queue"], "critical");
    assert!(job.get("progress").is_none(), "{job}");
    let record = strict.job(&sleeping);
    assert_eq!(
        job["started_at"], record["started_at"],
        "the record's, Redis's clock"
    );

    assert_eq!(
        (&a["queues"], &a["order"]),
        (&json!("all"), &json!("weighted"))
    );
    assert_eq!((&a["busy"], &a["idle"]), (&json!(1), &json!(2)), "{a}");
    assert_eq!(a["jobs"][0]["type"], "steps");
    assert_eq!(a["jobs"][0]["progress"]["message"], "resizing");
    // Beats by Redis's clock: recent, and at most one TTL (2 s) old.
    let now = time(&api.get("/workers").json()["now"]);
    for w in &listed {
        let age = now - time(&w["last_heartbeat_at"]);
        assert!(age.num_milliseconds() < 5000, "{w}");
        assert!(w["heartbeat_age_ms"].as_u64().unwrap() <= 2000, "{w}");
        assert!(time(&w["started_at"]) <= now + chrono::Duration::seconds(1));
    }

    // A clean shutdown removes the process at once, without waiting for its heartbeat to expire.
    strict.stop().unwrap();
    let left = workers(&api);
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["threads"], 3);
    all.stop().unwrap();
    assert!(workers(&api).is_empty());
}
