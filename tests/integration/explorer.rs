//! The job explorer (`GET /jobs`) and the bulk actions by filter over HTTP: newest first,
//! filters, text and JSON-path search, cursors, the per-call bound on work, and dry runs whose
//! `as_of` keeps jobs that arrive in between out of the action.

use crate::harness::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

/// Submits `n` jobs in batches of at most 1000; `job(i)` makes the i-th.
fn submit_many(client: &Client, n: usize, job: impl Fn(usize) -> Value) {
    let all: Vec<Value> = (0..n).map(job).collect();
    for chunk in all.chunks(1000) {
        client
            .post_json("/jobs/batch", &json!({ "jobs": chunk }))
            .expect_status(201, "POST /jobs/batch");
    }
}

fn list(client: &Client, query: &str) -> Value {
    let r = client.get(&format!("/jobs?{query}"));
    r.expect_status(200, &format!("GET /jobs?{query}"));
    r.json()
}

fn ids(page: &Value) -> Vec<String> {
    page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect()
}

/// Every id a filter lists, following the cursor to the end.
fn list_all(client: &Client, query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let q = match &cursor {
            Some(c) => format!("{query}&cursor={c}"),
            None => query.to_string(),
        };
        let page = list(client, &q);
        out.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
    panic!("GET /jobs?{query} did not end within 100 pages");
}

fn bulk(client: &Client, action: &str, body: Value) -> Value {
    let r = client.post_json(&format!("/jobs/{action}"), &body);
    r.expect_status(200, &format!("POST /jobs/{action} {body}"));
    r.json()
}

#[test]
fn the_explorer_lists_newest_first_filters_searches_and_pages() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let c = server.client();
    submit_many(&c, 30, |i| {
        json!({
            "type": "noop",
            "queue": if i % 3 == 0 { "mail" } else { "default" },
            "payload": {"user": {"id": i}, "note": format!("Order-{i}")},
        })
    });
    for i in 0..4 {
        c.submit(&json!({"type": "fail", "max_attempts": 1,
            "payload": {"message": format!("disk quota exceeded on volume {i}")}}));
    }
    server.wait_for_stat("completed_jobs", 30, Duration::from_secs(20));
    server.wait_for_stat("dlq_size", 4, Duration::from_secs(20));

    // Newest first, and the cursor walks every job exactly once.
    let page = list(&c, "limit=7");
    assert_eq!(page["jobs"].as_array().unwrap().len(), 7, "{page}");
    let created: Vec<String> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["created_at"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = created.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(created, sorted, "newest first");
    assert_eq!(page["jobs"][0]["type"], "fail", "the failures came last");
    let all = list_all(&c, "limit=7");
    assert_eq!(all.len(), 34);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 34, "no job twice");

    // Filters.
    assert_eq!(list_all(&c, "status=completed&queue=mail").len(), 10);
    assert_eq!(list_all(&c, "status=completed,failed").len(), 34);
    assert_eq!(list_all(&c, "type=fail").len(), 4);
    assert_eq!(
        list_all(&c, "status=failed&limit=3").len(),
        4,
        "the DLQ pages too"
    );
    assert!(list_all(&c, "status=pending").is_empty());
    // Text search: any case, in the error; and in the payload.
    let hit = list(&c, "q=QUOTA%20exceeded%20on%20volume%202");
    assert_eq!(ids(&hit).len(), 1, "{hit}");
    assert_eq!(hit["jobs"][0]["status"], "failed");
    assert_eq!(list_all(&c, "status=failed&q=quota").len(), 4);
    assert_eq!(
        list_all(&c, "q=order-1").len(),
        11,
        "Order-1 and Order-10..19"
    );
    // A JSON path compares the whole value.
    let one = list(&c, "q=$.user.id=12");
    assert_eq!(ids(&one).len(), 1, "{one}");
    assert_eq!(one["jobs"][0]["payload"]["user"]["id"], 12);
    assert!(list_all(&c, "q=$.user.id=1").len() == 1);

    // Bad input is a 400 that says what to do.
    for (q, says) in [
        ("status=done", "not a status"),
        ("status=", "not a status"),
        ("cursor=j.1", "next_cursor"),
        ("status=failed&cursor=j.5.5", "other statuses"),
        ("q=$.user..id=1", "$.path=value"),
        ("limit=0", "limit"),
        ("queue=a%20b", "queue name"),
    ] {
        let e = c.get(&format!("/jobs?{q}")).expect_json_error(400, q);
        assert!(e.contains(says), "{q}: {e}");
    }
}

#[test]
fn a_listing_walks_a_bounded_number_of_entries_and_says_when_it_was_cut_short() {
    let redis = RedisServer::start();
    // No workers: the jobs stay pending.
    let server = TestServer::start(&redis, |c| {
        c.num_workers = 0;
        c.max_queue_size = 20_000;
    });
    let c = server.client();
    c.submit(&json!({"type": "noop", "payload": {"needle": "haystack-needle"}}));
    submit_many(&c, 7_000, |i| json!({"type": "noop", "payload": {"n": i}}));

    let first = list(&c, "q=haystack-needle");
    assert_eq!(first["scanned"], 5_000, "{}", first["scanned"]);
    assert_eq!(first["cut_short"], true);
    assert!(ids(&first).is_empty());
    let cursor = first["next_cursor"].as_str().expect("a cursor to go on");
    let second = list(&c, &format!("q=haystack-needle&cursor={cursor}"));
    assert_eq!(
        ids(&second).len(),
        1,
        "found past the bound: {}",
        second["scanned"]
    );
    assert_eq!(second["scanned"], 2_001);
    assert_eq!(second["cut_short"], false);
    assert_eq!(second["next_cursor"], Value::Null);
}

#[test]
fn bulk_retry_and_delete_act_on_what_the_dry_run_counted() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let c = server.client();
    let fail = |msg: &str| {
        c.submit(
            &json!({"type": "fail", "max_attempts": 1, "queue": "billing",
            "payload": {"message": msg}}),
        )
    };
    for i in 0..6 {
        fail(&format!("card declined #{i}"));
    }
    fail("gateway timeout");
    server.wait_for_stat("dlq_size", 7, Duration::from_secs(20));

    let dry = bulk(&c, "retry", json!({"q": "declined", "dry_run": true}));
    assert_eq!(dry["matched"], 6, "{dry}");
    assert_eq!(dry["more"], false);
    let as_of = dry["as_of"].as_str().unwrap().to_string();
    // A failure of the same kind after the dry run stays out of the action.
    let late = fail("card declined late");
    server.wait_for_stat("dlq_size", 8, Duration::from_secs(20));
    // The retried jobs fail again, for good: stop them being retried into the count.
    let done = bulk(&c, "retry", json!({"q": "declined", "as_of": as_of}));
    assert_eq!(done["matched"], 6, "{done}");
    assert_eq!(done["dry_run"], false);
    assert_eq!(
        c.job(&late)["status"],
        "failed",
        "the late failure was not retried"
    );

    // Delete by filter: the completed jobs of one type, nothing else.
    submit_many(&c, 5, |_| json!({"type": "noop"}));
    server.wait_for_stat("completed_jobs", 5, Duration::from_secs(20));
    let dry = bulk(
        &c,
        "delete",
        json!({"status": ["completed"], "type": "noop", "dry_run": true}),
    );
    assert_eq!(dry["matched"], 5, "{dry}");
    let done = bulk(
        &c,
        "delete",
        json!({"status": ["completed"], "type": "noop"}),
    );
    assert_eq!(done["matched"], 5, "{done}");
    assert!(list_all(&c, "type=noop").is_empty());
    // Retry selects failed jobs only; delete ended ones only.
    let e = c
        .post_json("/jobs/retry", &json!({"status": ["completed"]}))
        .expect_json_error(400, "retry of completed jobs");
    assert!(e.contains("choose among failed"), "{e}");
    let e = c
        .post_json("/jobs/delete", &json!({"status": ["running"]}))
        .expect_json_error(400, "delete of running jobs");
    assert!(e.contains("completed, failed, cancelled, expired"), "{e}");

    // DELETE /jobs/{id}: an ended job goes, one that has not ended is a 409, an unknown a 404.
    let r = c.request("DELETE", &format!("/jobs/{late}"), b"");
    r.expect_status(200, "DELETE of a failed job");
    assert_eq!(c.get(&format!("/jobs/{late}")).status, 404);
    let slow = c.submit(&json!({"type": "sleep", "payload": {"ms": 3000}}));
    c.wait_for_status(&slow, "running", Duration::from_secs(10));
    let e = c
        .request("DELETE", &format!("/jobs/{slow}"), b"")
        .expect_json_error(409, "DELETE of a running job");
    assert!(e.contains("cancel it first"), "{e}");
    let missing = "5b0e3c5e-2a57-4bfa-8b53-1f5c0d2a4e11";
    c.request("DELETE", &format!("/jobs/{missing}"), b"")
        .expect_json_error(404, "DELETE of an unknown job");
    // The stats still add up: the DLQ holds the gateway timeout and the six retried again.
    server.wait_for_stat("dlq_size", 7, Duration::from_secs(20));
}

#[test]
fn bulk_cancel_with_as_of_leaves_jobs_created_after_the_dry_run() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| c.num_workers = 0);
    let c = server.client();
    submit_many(
        &c,
        4,
        |i| json!({"type": "noop", "queue": "reports", "payload": {"region": if i < 3 { "eu" } else { "us" }}}),
    );
    let dry = bulk(
        &c,
        "cancel",
        json!({"queue": "reports", "q": "$.region=eu", "dry_run": true}),
    );
    assert_eq!(dry["matched"], 3, "{dry}");
    let later = c.submit(&json!({"type": "noop", "queue": "reports", "payload": {"region": "eu"}}));
    let done = bulk(
        &c,
        "cancel",
        json!({"queue": "reports", "q": "$.region=eu", "as_of": dry["as_of"]}),
    );
    assert_eq!(done["matched"], 3, "{done}");
    assert_eq!(c.job(&later)["status"], "pending");
    assert_eq!(list_all(&c, "status=cancelled").len(), 3);
    assert_eq!(list_all(&c, "status=pending&queue=reports").len(), 2);
    let e = c
        .post_json(
            "/jobs/cancel",
            &json!({"queue": "reports", "cursor": "j.1.1"}),
        )
        .expect_json_error(400, "a cancellation with a cursor");
    assert!(e.contains("takes no cursor"), "{e}");
}

#[test]
fn workflows_are_listed_newest_first_and_access_tells_the_token_apart() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| {
        c.api_token = Some("full-token-123456".into());
        c.api_token_readonly = Some("read-token-123456".into());
        c.num_workers = 0;
    });
    let c = server.client();
    let auth = |t: &str| format!("Bearer {t}");
    let full = auth("full-token-123456");
    let ro = auth("read-token-123456");
    let get = |path: &str, token: &str| {
        let r = c.request_with("GET", path, &[("Authorization", token)], b"");
        r.expect_status(200, path);
        r.json()
    };
    assert_eq!(get("/access", &full)["access"], "full");
    assert_eq!(get("/access", &ro)["access"], "read_only");
    assert_eq!(get("/access", &ro)["token_required"], true);
    // Anyone may ask: no token, or a wrong one, is told "none".
    let none = c.get("/access");
    none.expect_status(200, "GET /access without a token");
    assert_eq!(none.json()["access"], "none");
    assert_eq!(
        get("/access", &auth("wrong-token-1234567"))["access"],
        "none"
    );

    let mut made = Vec::new();
    for _ in 0..2 {
        let body = json!({"jobs": [
            {"ref": "a", "type": "noop"},
            {"ref": "b", "type": "noop", "depends_on": ["a"]},
        ]});
        let r = c.request_with(
            "POST",
            "/workflows",
            &[
                ("Authorization", &full),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        );
        r.expect_status(201, "POST /workflows");
        made.push(r.json()["workflow_id"].as_str().unwrap().to_string());
    }
    let listed = get("/workflows", &ro);
    let shown: Vec<&str> = listed["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(shown, [made[1].as_str(), made[0].as_str()], "{listed}");
    assert_eq!(listed["workflows"][0]["nodes"], 2);
    assert_eq!(listed["workflows"][0]["left"], 2);
    // The read-only token may list but not act.
    let r = c.request_with(
        "POST",
        "/jobs/delete",
        &[("Authorization", &ro), ("Content-Type", "application/json")],
        b"{\"dry_run\": true}",
    );
    assert_eq!(r.status, 403);
}

#[test]
fn with_three_partitions_the_explorer_the_dlq_and_bulk_actions_cover_every_partition() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| c.queue_partitions.default = 3);
    let c = server.client();
    // One at a time, so the creates go to the three partitions in turn.
    let done: Vec<String> = (0..12)
        .map(|i| c.submit(&json!({"type": "noop", "payload": {"n": i}})))
        .collect();
    for i in 0..6 {
        c.submit(&json!({"type": "fail", "max_attempts": 1,
            "payload": {"message": format!("card declined #{i}")}}));
    }
    server.wait_for_stat("completed_jobs", 12, Duration::from_secs(20));
    server.wait_for_stat("dlq_size", 6, Duration::from_secs(20));
    let prefixes: HashSet<&str> = done.iter().map(|id| &id[..4]).collect();
    assert!(prefixes.len() >= 3, "three partitions' ids: {done:?}");

    // Every page of every partition, each job once; a cursor names its partition.
    let all = list_all(&c, "limit=5");
    assert_eq!(all.len(), 18);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 18, "no job twice");
    assert_eq!(list_all(&c, "status=failed&limit=4").len(), 6);
    let page = list(&c, "limit=5");
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    assert!(cursor.starts_with("j."), "{cursor}");
    c.get("/jobs?cursor=j.x@1.1")
        .expect_json_error(400, "a cursor naming no partition");
    // The DLQ's pages add up over the partitions.
    let mut dlq = Vec::new();
    for offset in [0, 4] {
        let r = c.get(&format!("/dlq?offset={offset}&limit=4"));
        r.expect_status(200, "GET /dlq");
        let body = r.json();
        assert_eq!(body["total"], 6, "{body}");
        dlq.extend(ids(&body));
    }
    assert_eq!(dlq.iter().collect::<HashSet<_>>().len(), 6, "{dlq:?}");

    // Bulk actions: the dry run counts in every partition, the action takes what it counted.
    let dry = bulk(&c, "retry", json!({"q": "declined", "dry_run": true}));
    assert_eq!(dry["matched"], 6, "{dry}");
    let retried = bulk(
        &c,
        "retry",
        json!({"q": "declined", "as_of": dry["as_of"].clone()}),
    );
    assert_eq!(retried["matched"], 6, "{retried}");
    let deleted = bulk(&c, "delete", json!({"status": ["completed"]}));
    assert_eq!(deleted["matched"], 12, "{deleted}");
    assert!(list_all(&c, "status=completed").is_empty());
    server.wait_for_stat("dlq_size", 6, Duration::from_secs(20));
    let stats = server.stats();
    assert_eq!(stats["total_jobs"], 18, "{stats}");
    assert_eq!(
        stats["failed_jobs"], 12,
        "six, then the same six again: {stats}"
    );
}
