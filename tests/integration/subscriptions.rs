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

/// End to end, with the real `webhook` type.
#[cfg(feature = "webhook")]
mod deliveries {
    use super::*;
    use std::time::Duration;

    const WAIT: Duration = Duration::from_secs(30);

    /// jobq whose webhooks may reach `receiver`, with a `flaky` type that always fails for good.
    fn server_for(redis: &RedisServer, receiver: &Receiver) -> TestServer {
        let allow = format!("127.0.0.1:{}", receiver.port());
        TestServer::with_registry(
            redis,
            |r| {
                r.register("flaky", |_: &JobContext| -> JobResult {
                    Err(jobq::JobError::permanent("flaky is down"))
                });
            },
            move |c| c.webhook_allow = Some(jobq::WebhookAllow::parse(&allow).unwrap()),
        )
    }

    /// The delivery jobs in Redis (their records have `sub`): (id, status, subscription).
    fn deliveries(redis: &RedisServer) -> Vec<(String, String, String)> {
        let keys: Vec<String> = redis.redis_cmd(&["KEYS", "{jobq}:job:*"]);
        keys.iter()
            .filter_map(|k| {
                let f: Vec<Option<String>> =
                    redis.redis_cmd(&["HMGET", k, "sub", "status", "type"]);
                let sub = f[0].clone()?;
                assert_eq!(f[2].as_deref(), Some("webhook"), "{k}");
                Some((
                    k.trim_start_matches("{jobq}:job:").to_string(),
                    f[1].clone().unwrap_or_default(),
                    sub,
                ))
            })
            .collect()
    }

    /// Waits until `n` delivery jobs exist, all completed, and the outbox is empty: from then on
    /// no delivery can be added, so what the receiver got is all it gets.
    fn settle(redis: &RedisServer, n: usize) {
        wait_for("every delivery done and the outbox empty", WAIT, || {
            let d = deliveries(redis);
            let outbox: u64 = redis.redis_cmd(&["LLEN", "{jobq}:events"]);
            match d.len() == n && outbox == 0 && d.iter().all(|(_, s, _)| s == "completed") {
                true => Ok(()),
                false => Err(format!("{d:?}, outbox {outbox}")),
            }
        });
    }

    fn body(r: &Received) -> Value {
        serde_json::from_slice(&r.body).expect("a JSON body")
    }

    #[test]
    fn every_event_kind_reaches_the_receiver_exactly_once_with_distinct_ids() {
        let receiver = Receiver::start();
        let redis = RedisServer::start();
        let server = server_for(&redis, &receiver);
        let c = server.client();
        let hook = receiver.url("/hooks/jobq");
        put(
            &c,
            "all",
            &json!({"url": hook, "queue": "hooks", "events": [
            "job.completed", "job.failed", "job.dead", "job.cancelled", "job.expired",
            "schedule.missed", "breaker.opened"]}),
        )
        .expect_status(201, "all");
        put(
            &c,
            "mail-only",
            &json!({"url": hook, "events": ["job.completed"],
            "filter": {"queue": "mail"}}),
        )
        .expect_status(201, "mail-only");
        // A submission may not pose as a delivery.
        let msg = c
            .post_json(
                "/jobs",
                &json!({"type": "webhook", "payload": {"url": hook,
                "event": {"type": "job.dead", "id": "x", "subscription": "all"}}}),
            )
            .expect_json_error(400, "event in a submission");
        assert!(msg.contains("\"event\" is jobq's own"), "{msg}");

        // job.completed, twice (the mail job's goes to both subscriptions).
        let done = c.submit(&json!({"type": "noop"}));
        let mail = c.submit(&json!({"type": "noop", "queue": "mail"}));
        // job.failed, then job.dead: two attempts of a job that always fails.
        let failing = c.submit(&json!({"type": "fail", "max_attempts": 2}));
        // job.cancelled.
        let later = c.submit(&json!({"type": "noop", "delay_ms": 600_000}));
        c.post_json(&format!("/jobs/{later}/cancel"), &json!({}))
            .expect_status(200, "cancel");
        // job.expired: due after its start deadline.
        let expiring = c.submit(&json!({"type": "noop", "delay_ms": 1500, "expires_in_secs": 1}));
        // breaker.opened (with the failure's job.dead).
        c.request(
            "PUT",
            "/types/flaky/limits",
            json!({"breaker": {"consecutive": 1, "cooldown_secs": 600}})
                .to_string()
                .as_bytes(),
        )
        .expect_status(200, "breaker");
        let flaky = c.submit(&json!({"type": "flaky", "max_attempts": 1}));
        // schedule.missed: a tick planned a minute ago, as if every process had been away.
        put_schedule(&c, &redis);

        let mut want = vec![
            ("job.completed", done.clone()),
            ("job.completed", mail.clone()),
            ("job.failed", failing.clone()),
            ("job.dead", failing.clone()),
            ("job.cancelled", later.clone()),
            ("job.expired", expiring.clone()),
            ("job.dead", flaky.clone()),
            ("breaker.opened", flaky.clone()),
            ("schedule.missed", "yearly".to_string()),
        ];
        settle(&redis, want.len() + 1);
        let got = receiver.received();
        assert_eq!(
            got.len(),
            want.len() + 1,
            "one request per delivery: {got:#?}"
        );

        let mut ids = std::collections::BTreeMap::new();
        let mut seen: Vec<(String, String)> = Vec::new();
        for r in &got {
            assert_eq!(
                (r.method.as_str(), r.target.as_str()),
                ("POST", "/hooks/jobq")
            );
            let b = body(r);
            let id = b["id"].as_str().unwrap().to_string();
            assert_eq!(r.header("x-jobq-event-id"), Some(id.as_str()), "{b}");
            assert_eq!(r.header("x-jobq-event"), b["type"].as_str(), "{b}");
            assert!(r.header("x-jobq-job-id").is_some());
            let sub = r.header("x-jobq-subscription").unwrap().to_string();
            let about = match b["type"].as_str().unwrap() {
                "schedule.missed" => b["schedule"].as_str().unwrap().to_string(),
                "breaker.opened" => b["job_id"].as_str().unwrap().to_string(),
                _ => b["job"]["id"].as_str().unwrap().to_string(),
            };
            // An id names one event: the same in each of its deliveries, never another's.
            let key = (b["type"].as_str().unwrap().to_string(), about.clone());
            assert_eq!(ids.entry(id).or_insert_with(|| key.clone()), &key, "{b}");
            if sub == "mail-only" {
                assert_eq!(about, mail, "the filter lets only the mail job's through");
                continue;
            }
            assert_eq!(sub, "all");
            seen.push(key);
        }
        assert_eq!(ids.len(), want.len(), "distinct ids, one per event");
        seen.sort();
        want.sort();
        let want: Vec<(String, String)> =
            want.into_iter().map(|(k, a)| (k.to_string(), a)).collect();
        assert_eq!(seen, want);

        // What the bodies carry.
        let find = |kind: &str, about: &str| -> Value {
            got.iter()
                .map(body)
                .find(|b| {
                    b["type"] == kind
                        && (b["job"]["id"] == about
                            || b["job_id"] == about
                            || b["schedule"] == about)
                })
                .unwrap()
        };
        let b = find("job.completed", &done);
        assert_eq!(b["job"]["status"], "completed");
        assert_eq!(
            (b["job"]["type"].as_str(), b["job"]["queue"].as_str()),
            (Some("noop"), Some("default"))
        );
        let b = find("job.failed", &failing);
        assert_eq!(
            (b["job"]["attempt"].as_u64(), b["job"]["status"].as_str()),
            (Some(1), Some("pending"))
        );
        assert!(
            b["job"]["retry_at"].is_string() && b["job"]["error"].is_string(),
            "{b}"
        );
        let b = find("job.dead", &failing);
        assert_eq!(
            (b["job"]["attempt"].as_u64(), b["job"]["status"].as_str()),
            (Some(2), Some("failed"))
        );
        assert_eq!(find("job.cancelled", &later)["job"]["stage"], "scheduled");
        assert_eq!(find("job.expired", &expiring)["job"]["status"], "expired");
        let b = find("breaker.opened", &flaky);
        assert_eq!(
            (b["job_type"].as_str(), b["queue"].as_str()),
            (Some("flaky"), Some("default"))
        );
        assert!(b["open_until"].is_string(), "{b}");
        let b = find("schedule.missed", "yearly");
        assert_eq!(
            (b["reason"].as_str(), b["job_type"].as_str()),
            (Some("late"), Some("noop"))
        );
        assert!(b["ticks"].as_u64().unwrap() >= 1, "{b}");

        // The deliveries are jobs like any other, and say what they deliver for.
        let (id, _, _) = &deliveries(&redis)[0];
        let job = c.job(id);
        assert_eq!(job["type"], "webhook");
        assert!(
            matches!(job["subscription"].as_str(), Some("all" | "mail-only")),
            "{job}"
        );
        let m = c.metrics();
        assert_eq!(
            metric_value(&m, "events_published_total", &[("event", "job.completed")]),
            Some(3.0)
        );
        assert_eq!(metric_sum(&m, "events_published_total"), Some(10.0));
    }

    /// A yearly schedule whose next tick Redis says was a minute ago: the scheduler finds it late
    /// (past the 2 s grace) and, with `missed: skip`, makes no job: one `schedule.missed`.
    fn put_schedule(c: &Client, redis: &RedisServer) {
        c.request(
            "PUT",
            "/schedules/yearly",
            json!({"cron": "0 0 1 1 *", "job": {"type": "noop"}})
                .to_string()
                .as_bytes(),
        )
        .expect_status(201, "schedule");
        let time: Vec<String> = redis.redis_cmd(&["TIME"]);
        let now_s: i64 = time[0].parse().unwrap();
        let due = (now_s - 60) * 1_000_000;
        let _: i64 = redis.redis_cmd(&["ZADD", "{jobq}:schedules:due", &due.to_string(), "yearly"]);
    }

    #[test]
    fn a_failed_delivery_is_retried_with_the_same_event_id_and_a_dead_one_makes_no_event() {
        let receiver = Receiver::start();
        receiver.reply([
            Reply::new(503, "busy"),
            Reply::new(200, "ok"),
            Reply::new(404, "gone"),
        ]);
        let redis = RedisServer::start();
        let server = server_for(&redis, &receiver);
        let c = server.client();
        // It wants its own kind of end too: a delivery that dies must not tell it.
        put(
            &c,
            "ops",
            &json!({"url": receiver.url("/in"), "max_attempts": 3,
            "events": ["job.completed", "job.failed", "job.dead"]}),
        )
        .expect_status(201, "ops");
        let first = c.submit(&json!({"type": "noop"}));
        let reqs = receiver.wait_for_requests(2, WAIT);
        let (a, b) = (&reqs[0], &reqs[1]);
        assert_eq!(a.header("x-jobq-event-id"), b.header("x-jobq-event-id"));
        assert_eq!(
            (a.header("x-jobq-attempt"), b.header("x-jobq-attempt")),
            (Some("1"), Some("2"))
        );
        assert_eq!(body(b)["job"]["id"], first.as_str());

        let second = c.submit(&json!({"type": "noop"}));
        receiver.wait_for_requests(3, WAIT);
        wait_for("the refused delivery in the DLQ", WAIT, || {
            let d = deliveries(&redis);
            let outbox: u64 = redis.redis_cmd(&["LLEN", "{jobq}:events"]);
            match d.iter().filter(|(_, s, _)| s == "failed").count() == 1 && outbox == 0 {
                true => Ok(d),
                false => Err(format!("{d:?}, outbox {outbox}")),
            }
        });
        assert_eq!(deliveries(&redis).len(), 2, "no delivery about a delivery");
        let got = receiver.received();
        assert_eq!(got.len(), 3, "{got:#?}");
        assert_eq!(body(&got[2])["job"]["id"], second.as_str());
    }
}
