//! Failures grouped by cause over HTTP: `GET /dlq/groups`, and a group's retry with a dry run
//! first, whose `as_of` keeps a failure that arrives in between out of the action.

use crate::harness::*;
use serde_json::{json, Value};
use std::time::Duration;

/// Submits a `fail` job (one attempt) that dies with `message`; returns its id.
fn fail(server: &BinaryServer, message: &str) -> String {
    server.submit(&json!({"type": "fail", "payload": {"message": message}, "max_attempts": 1}))
}

fn groups(server: &BinaryServer) -> Value {
    let r = server.get("/dlq/groups");
    r.expect_status(200, "GET /dlq/groups");
    r.json()
}

#[test]
fn thirty_failures_of_three_kinds_make_three_groups_and_a_dry_run_fixes_the_selection() {
    let redis = RedisServer::start();
    let server = BinaryServer::spawn(&redis.url(), &[]);
    let mut orders = Vec::new();
    for i in 0..30 {
        match i % 6 {
            0..=2 => fail(
                &server,
                &format!("SMTP 55{}: mailbox 'u{i}@example.org' unavailable", i % 3),
            ),
            3 | 4 => {
                let id = fail(&server, &format!("order {} not found", uuid_like(i)));
                orders.push(id.clone());
                id
            }
            _ => fail(&server, &format!("timeout after {}ms", 100 + i)),
        };
    }
    server.wait_for_stat("dlq_size", 30, Duration::from_secs(20));

    let listed = groups(&server);
    assert_eq!(listed["total_groups"], 3, "{listed}");
    assert_eq!(listed["ungrouped"], 0, "{listed}");
    let shown: Vec<(String, u64)> = listed["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["pattern"].as_str().unwrap().to_string(),
                g["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            ("SMTP <n>: mailbox <str> unavailable".to_string(), 15),
            ("order <id> not found".to_string(), 10),
            ("timeout after <n>ms".to_string(), 5),
        ],
        "largest first"
    );
    let order = &listed["groups"][1];
    assert_eq!(order["type"], "fail");
    assert!(
        order["sample_error"]
            .as_str()
            .unwrap()
            .starts_with("order "),
        "{order}"
    );
    let fp = order["fingerprint"].as_str().unwrap().to_string();

    let r = server.request("POST", &format!("/dlq/groups/{fp}/retry?dry_run=true"), b"");
    r.expect_status(200, "dry run");
    let dry = r.json();
    assert_eq!(dry["count"], 10, "{dry}");
    assert_eq!(dry["as_of"], order["last_seen"], "{dry}");
    let as_of = dry["as_of"].as_str().unwrap().to_string();

    // A failure of the same cause arrives between the dry run and the action.
    let late = fail(&server, &format!("order {} not found", uuid_like(99)));
    server.wait_for_stat("dlq_size", 31, Duration::from_secs(20));
    let r = server.request("POST", &format!("/dlq/groups/{fp}/retry?dry_run=true"), b"");
    assert_eq!(r.json()["count"], 11, "the group now: {}", r.body);

    let r = server.request(
        "POST",
        &format!("/dlq/groups/{fp}/retry?as_of={}", as_of.replace('+', "%2B")),
        b"",
    );
    r.expect_status(200, "retry as of the dry run");
    let done = r.json();
    assert_eq!(done["retried"], 10, "{done}");
    let mut retried: Vec<String> = done["job_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    retried.sort();
    orders.sort();
    assert_eq!(
        retried, orders,
        "exactly the jobs counted, not the late one"
    );
    let job = server.job(&late);
    assert_eq!(
        (job["status"].as_str(), job["attempt"].as_u64()),
        (Some("failed"), Some(1))
    );
    assert!(server.log().contains(&format!(
        "dlq group retry: fingerprint {fp} as of {as_of}, 10 job(s) sent back to pending"
    )));

    // The retried jobs fail again (type fail) and join the group anew; deleting takes them all.
    server.wait_for_stat("dlq_size", 31, Duration::from_secs(20));
    let r = server.request("DELETE", &format!("/dlq/groups/{fp}?dry_run=true"), b"");
    assert_eq!(r.json()["count"], 11, "{}", r.body);
    let r = server.request("DELETE", &format!("/dlq/groups/{fp}"), b"");
    r.expect_status(200, "delete the group");
    assert_eq!(r.json(), json!({"fingerprint": fp, "deleted": 11}));
    assert_eq!(groups(&server)["total_groups"], 2);
    let r = server.request("DELETE", &format!("/dlq/groups/{fp}?dry_run=true"), b"");
    assert_eq!(
        r.json(),
        json!({"fingerprint": fp, "dry_run": true, "count": 0, "as_of": null})
    );

    for bad in [
        "/dlq/groups/XYZ",
        "/dlq/groups/0123456789abcdef?as_of=yesterday",
        "/dlq/groups/0123456789abcdef?dry_run=1",
    ] {
        server
            .request("DELETE", bad, b"")
            .expect_json_error(400, bad);
    }
}

/// A UUID-shaped id that differs with `i`.
fn uuid_like(i: u32) -> String {
    format!("{:08x}-9a7d-4e2f-b1c0-{:012x}", i * 7919, i * 104_729)
}
