//! Event subscriptions over HTTP: the routes' answers (validation errors naming the field, the
//! URL checked by the `webhook` type's own `validate`, 400 without a `webhook` type, create,
//! replace, list, get, delete), and, with the real `webhook` type, every event kind delivered
//! to a receiver on loopback exactly once per event, with distinct ids, and no delivery making
//! an event of its own.
//!
//! "Exactly once" is read from the state, not from waiting: once every event's delivery job
//! has completed and the outboxes are empty, no delivery can be added, so the receiver's count
//! is final.

use crate::harness::*;
use jobq::{Handler, JobContext, JobResult};
use serde_json::{json, Value};

/// A stand-in `webhook` type whose `validate` allows only loopback URLs, so the routes' use of
/// it can be told apart from their own checks.
struct LoopbackOnly;

impl Handler for LoopbackOnly {
    fn run(&self, _: &JobContext) -> JobResult {
        Ok(Value::Null)
    }

    fn validate(&self, payload: &Value) -> Result<(), String> {
        let url = payload["url"].as_str().ok_or("\"url\" is required")?;
        if payload["headers"]["X-Jobq-Event"].as_str().is_none() {
            return Err("the sample has no X-Jobq-Event header".into());
        }
        if url.starts_with("http://127.0.0.1:") {
            Ok(())
        } else {
            Err(format!("{url:?} is not allowed by WEBHOOK_ALLOW"))
        }
    }
}

fn put(c: &Client, name: &str, doc: &Value) -> Resp {
    c.request(
        "PUT",
        &format!("/subscriptions/{name}"),
        doc.to_string().as_bytes(),
    )
}

#[test]
fn documents_are_checked_field_by_field_and_the_url_by_the_webhook_type() {
    let redis = RedisServer::start();
    let server = TestServer::with_registry(
        &redis,
        |r| {
            r.register("webhook", LoopbackOnly);
        },
        |_| {},
    );
    let c = server.client();
    let url = "http://127.0.0.1:9/hook";
    let cases = [
        (json!({"events": ["job.dead"]}), "\"url\" is required"),
        (json!({"url": url}), "\"events\" is required"),
        (json!({"url": url, "events": []}), "\"events\" is empty"),
        (
            json!({"url": url, "events": ["job.done"]}),
            "unknown event \"job.done\"; the events are job.completed, job.failed, job.dead, job.cancelled, job.expired, schedule.missed, breaker.opened",
        ),
        (json!({"url": url, "events": "job.dead"}), "\"events\" must be a list"),
        (json!({"url": url, "events": ["job.dead"], "hook": 1}), "unknown field \"hook\""),
        (
            json!({"url": url, "events": ["job.dead"], "filter": {"group": "a"}}),
            "\"filter\": unknown field \"group\"",
        ),
        (
            json!({"url": url, "events": ["job.dead"], "filter": {"queue": "a b"}}),
            "\"filter.queue\"",
        ),
        (json!({"url": url, "events": ["job.dead"], "filter": "mail"}), "\"filter\" must be an object"),
        (json!({"url": url, "events": ["job.dead"], "queue": 7}), "\"queue\" must be a string"),
        (json!({"url": url, "events": ["job.dead"], "max_attempts": 0}), "\"max_attempts\""),
        (
            json!({"url": "https://example.com/hook", "events": ["job.dead"]}),
            "\"url\": \"https://example.com/hook\" is not allowed by WEBHOOK_ALLOW",
        ),
    ];
    for (doc, want) in cases {
        let msg = put(&c, "hooks", &doc).expect_json_error(400, &doc.to_string());
        assert!(msg.contains(want), "{doc}: {msg}");
    }
    let msg = c
        .request("PUT", "/subscriptions/hooks", b"{")
        .expect_json_error(400, "malformed");
    assert!(msg.contains("malformed JSON"), "{msg}");
    let msg = put(&c, "a%20b", &json!({"url": url, "events": ["job.dead"]}))
        .expect_json_error(400, "bad name");
    assert!(msg.contains("subscription name \"a b\""), "{msg}");
    c.get("/subscriptions/hooks")
        .expect_json_error(404, "never made");
    c.request("DELETE", "/subscriptions/hooks", b"")
        .expect_json_error(404, "never made");
    assert_eq!(c.get("/subscriptions").json(), json!({"subscriptions": []}));
}

#[test]
fn without_a_webhook_type_a_subscription_is_refused_saying_so() {
    let redis = RedisServer::start();
    let server = TestServer::bare(
        &redis,
        |r| {
            r.register("noop", |_: &JobContext| -> JobResult { Ok(Value::Null) });
        },
        |_| {},
    );
    let msg = put(
        &server.client(),
        "hooks",
        &json!({"url": "http://127.0.0.1:9/", "events": ["job.completed"]}),
    )
    .expect_json_error(400, "no webhook type");
    assert!(msg.contains("no \"webhook\" job type registered"), "{msg}");
}

#[test]
fn a_subscription_is_created_replaced_listed_and_deleted() {
    let redis = RedisServer::start();
    let server = TestServer::with_registry(
        &redis,
        |r| {
            r.register("webhook", LoopbackOnly);
        },
        |_| {},
    );
    let c = server.client();
    let doc = json!({"url": "http://127.0.0.1:9/a", "events": ["job.dead", "job.completed", "job.dead"],
        "filter": {"queue": "mail"}});
    let r = put(&c, "ops", &doc);
    r.expect_status(201, "created");
    let created = r.json();
    assert_eq!(created["name"], "ops");
    assert_eq!(created["url"], "http://127.0.0.1:9/a");
    assert_eq!(created["events"], json!(["job.dead", "job.completed"]));
    assert_eq!(created["filter"], json!({"queue": "mail", "type": null}));
    assert_eq!(
        (created["queue"].as_str(), &created["max_attempts"]),
        (Some("default"), &Value::Null)
    );
    assert_eq!(created["created_at"], created["updated_at"]);

    let doc = json!({"url": "http://127.0.0.1:9/b", "events": ["breaker.opened"], "queue": "hooks",
        "max_attempts": 5, "filter": null});
    let r = put(&c, "ops", &doc);
    r.expect_status(200, "replaced");
    let replaced = r.json();
    assert_eq!(replaced["url"], "http://127.0.0.1:9/b");
    assert_eq!(replaced["filter"], json!({"queue": null, "type": null}));
    assert_eq!(
        (
            replaced["queue"].as_str(),
            replaced["max_attempts"].as_u64()
        ),
        (Some("hooks"), Some(5))
    );
    assert_eq!(replaced["created_at"], created["created_at"], "kept");

    put(
        &c,
        "audit",
        &json!({"url": "http://127.0.0.1:9/c", "events": ["job.cancelled"]}),
    )
    .expect_status(201, "second");
    let got = c.get("/subscriptions/ops");
    got.expect_status(200, "get");
    assert_eq!(got.json(), replaced);
    let list = c.get("/subscriptions").json();
    let names: Vec<&str> = list["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["audit", "ops"]);

    let r = c.request("DELETE", "/subscriptions/ops", b"");
    r.expect_status(200, "delete");
    assert_eq!(r.json(), json!({"deleted": "ops"}));
    c.get("/subscriptions/ops")
        .expect_json_error(404, "deleted");
    let index: Option<String> = redis.redis_cmd(&["GET", "{jobq}:subscriptions:index"]);
    assert!(index.unwrap().contains(",job.cancelled|*|*,"));
    c.request("DELETE", "/subscriptions/audit", b"")
        .expect_status(200, "delete");
    let index: Option<String> = redis.redis_cmd(&["GET", "{jobq}:subscriptions:index"]);
    assert_eq!(index, None, "no subscription, no index");
}
