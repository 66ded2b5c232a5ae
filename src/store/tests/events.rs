//! Event subscriptions in the store: each step where an event happens appends exactly one
//! outbox record per event a subscription wants, and none without one; publishing an event
//! creates one webhook job per subscription that wants it and takes the event out, once; the
//! delivery jobs make no events; the outbox's cap; partitions that missed a change get
//! partition 0's subscriptions.

use redis::Commands;
use serde_json::{json, Value};

use super::*;
use crate::config::{Breaker, Limits};
use crate::store::subscriptions::{Published, SubscriptionSet};
use crate::store::{Ack, DueTick, Fired, Outcome, Source, Stores, Target, Tick, EVENT_KINDS};

const SEC: i64 = 1_000_000;

fn subscribe(store: &mut Store, name: &str, events: &[&str], filter: Value) {
    let spec = json!({"url": "http://127.0.0.1:9/hook", "events": events, "filter": filter,
        "queue": "hooks"});
    store.put_subscription(name, &spec.to_string()).unwrap();
}

/// Takes every record out of the outbox (so each step's records are counted alone).
fn take(redis: &TestRedis) -> Vec<Value> {
    let mut r = redis.raw();
    let raw: Vec<String> = r.lrange(key("events"), 0, -1).unwrap();
    let _: () = r.del(key("events")).unwrap();
    raw.iter()
        .map(|s| serde_json::from_str(s).expect("a record is JSON"))
        .collect()
}

fn kinds(records: &[Value]) -> Vec<&str> {
    records.iter().map(|r| r["k"].as_str().unwrap()).collect()
}

fn job_of(kind: &str, queue: &str) -> NewJob {
    NewJob {
        kind: kind.into(),
        queue: queue.into(),
        ..new_job()
    }
}

/// Creates `job` and claims it (the only pending job) for p1.
fn claimed(store: &mut Store, job: &NewJob) -> Claimed {
    store.create(std::slice::from_ref(job), 100, 60).unwrap();
    let c = store.claim_all("p1", 1).unwrap().unwrap().remove(0);
    assert_eq!(c.id, job.id);
    c
}

fn fail(store: &mut Store, c: &Claimed, mode: FailMode) {
    store
        .fail("p1", c, "boom", 10_000, mode, (100, 5), false, &ALL)
        .unwrap();
}

#[test]
fn without_a_subscription_no_step_writes_an_event() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    register(&redis, "p1");
    let c = claimed(&mut store, &new_job());
    store.complete("p1", &c, Some("1"), 60, true, &ALL).unwrap();
    let c = claimed(&mut store, &new_job());
    fail(&mut store, &c, FailMode::Retry);
    let c = claimed(&mut store, &new_job());
    fail(&mut store, &c, FailMode::Permanent);
    let pending = new_job();
    store
        .create(std::slice::from_ref(&pending), 100, 60)
        .unwrap();
    store.cancel(&[pending.id.to_string()]).unwrap();
    let mut r = redis.raw();
    assert!(!r.exists::<_, bool>(key("events")).unwrap());
    assert!(!r.exists::<_, bool>(key("subscriptions:index")).unwrap());

    // A subscription to other events, or to other queues, costs no record either.
    subscribe(
        &mut store,
        "mail-dead",
        &["job.dead"],
        json!({"queue": "mail"}),
    );
    let c = claimed(&mut store, &new_job());
    store.complete("p1", &c, None, 60, false, &ALL).unwrap();
    let c = claimed(&mut store, &new_job());
    fail(&mut store, &c, FailMode::Permanent);
    assert!(take(&redis).is_empty());
    let c = claimed(&mut store, &job_of("noop", "mail"));
    fail(&mut store, &c, FailMode::Permanent);
    assert_eq!(kinds(&take(&redis)), ["job.dead"]);
}

#[test]
fn each_job_event_appends_exactly_one_record() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    register(&redis, "p1");
    subscribe(&mut store, "all", &EVENT_KINDS, json!({}));

    // Completed, the short way (a next job claimed in the same call) and the long way.
    let first = new_job();
    let next = new_job();
    let c = claimed(&mut store, &first);
    store.create(std::slice::from_ref(&next), 100, 60).unwrap();
    let acked = store
        .complete("p1", &c, Some("{\"n\":1}"), 60, true, &ALL)
        .unwrap();
    let c = acked.next.expect("the short way claimed the next job");
    let rec = take(&redis);
    assert_eq!(kinds(&rec), ["job.completed"]);
    assert_eq!(rec[0]["j"], first.id.as_str());
    assert_eq!(
        (rec[0]["r"].as_str(), rec[0]["s"].as_str()),
        (Some("{\"n\":1}"), Some("completed"))
    );
    assert_eq!(
        (
            rec[0]["q"].as_str(),
            rec[0]["t"].as_str(),
            rec[0]["a"].as_str()
        ),
        (Some("default"), Some("noop"), Some("1"))
    );
    store.complete("p1", &c, None, 60, false, &ALL).unwrap();
    let rec = take(&redis);
    assert_eq!(kinds(&rec), ["job.completed"]);
    assert!(rec[0].get("r").is_none());

    // A failed attempt that will be retried, then its last one.
    let job = NewJob {
        max_attempts: 2,
        ..new_job()
    };
    let c = claimed(&mut store, &job);
    store
        .fail("p1", &c, "boom", 1, FailMode::Retry, (100, 5), false, &ALL)
        .unwrap();
    let rec = take(&redis);
    assert_eq!(kinds(&rec), ["job.failed"]);
    assert_eq!(
        (rec[0]["e"].as_str(), rec[0]["s"].as_str()),
        (Some("boom"), Some("pending"))
    );
    let due: i64 = rec[0]["d"].as_str().unwrap().parse().unwrap();
    assert_eq!(Some(due.to_string()), field(&redis, &job.id, "run_at"));
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(store.promote(10).unwrap().moved, 1);
    let c = store.claim_all("p1", 1).unwrap().unwrap().remove(0);
    assert_eq!(c.id, job.id);
    fail(&mut store, &c, FailMode::Retry);
    let rec = take(&redis);
    assert_eq!(kinds(&rec), ["job.dead"]);
    assert_eq!(
        (rec[0]["a"].as_str(), rec[0]["s"].as_str()),
        (Some("2"), Some("failed"))
    );

    // A snooze is no failure.
    let c = claimed(&mut store, &new_job());
    fail(&mut store, &c, FailMode::Snooze);
    assert!(take(&redis).is_empty());

    // Cancelled while pending, with the child that cannot run without it; and while running.
    let parent = new_job();
    let child = NewJob {
        parents: vec![parent.id.to_string()],
        ..new_job()
    };
    store
        .create(&[parent.clone(), child.clone()], 100, 60)
        .unwrap();
    store.cancel(&[parent.id.to_string()]).unwrap();
    let rec = take(&redis);
    assert_eq!(kinds(&rec), ["job.cancelled", "job.cancelled"]);
    assert_eq!(rec[0]["j"], parent.id.as_str());
    assert_eq!(rec[1]["j"], child.id.as_str());
    assert_eq!(
        (rec[0]["d"].as_str(), rec[1]["d"].as_str()),
        (Some("pending"), Some("waiting"))
    );
    let c = claimed(&mut store, &new_job());
    store.cancel(std::slice::from_ref(&c.id)).unwrap();
    assert!(take(&redis).is_empty(), "marked, not ended yet");
    fail(&mut store, &c, FailMode::Retry);
    let rec = take(&redis);
    assert_eq!(kinds(&rec), ["job.cancelled"]);
    assert_eq!(
        (rec[0]["d"].as_str(), rec[0]["s"].as_str()),
        (Some("running"), Some("cancelled"))
    );

    // Found past its start deadline by a claim.
    let late = NewJob {
        expires_at_us: Some(chrono::Utc::now().timestamp_micros() - SEC),
        ..new_job()
    };
    store.create(std::slice::from_ref(&late), 100, 60).unwrap();
    assert!(store.claim_all("p1", 1).unwrap().unwrap().is_empty());
    let rec = take(&redis);
    assert_eq!(kinds(&rec), ["job.expired"]);
    assert_eq!(rec[0]["j"], late.id.as_str());
}

#[test]
fn group_commits_the_reaper_and_the_breaker_write_theirs() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    register(&redis, "p1");
    subscribe(&mut store, "all", &EVENT_KINDS, json!({}));

    // Two outcomes in one ack.lua call: one record each.
    let jobs: Vec<NewJob> = (0..2).map(|_| new_job()).collect();
    store.create(&jobs, 100, 60).unwrap();
    let claims = store.claim_all("p1", 2).unwrap().unwrap();
    let failed = Outcome::Failed {
        error: "nope".into(),
        delay_ms: 10,
        mode: FailMode::Permanent,
        limits: (100, 5),
    };
    let done = Outcome::Completed {
        result: None,
        ttl_secs: 60,
    };
    let acks = [
        Ack::new(&claims[0], done, true),
        Ack::new(&claims[1], failed, true),
    ];
    store.ack("p1", &acks, &ALL).unwrap();
    let rec = take(&redis);
    assert_eq!(kinds(&rec), ["job.completed", "job.dead"]);
    assert_eq!(rec[1]["e"], "nope");

    // A type whose breaker opens on the first failure: the job's event and the breaker's.
    let breaker = Limits {
        breaker: Some(Breaker {
            consecutive: Some(1),
            failure_ratio: None,
            window: 20,
            cooldown_secs: 60,
        }),
        ..Limits::default()
    };
    store
        .set_limits(Target::Type("flaky"), &Limits::FIELDS, &breaker.to_fields())
        .unwrap();
    let c = claimed(&mut store, &job_of("flaky", "default"));
    fail(&mut store, &c, FailMode::Permanent);
    let rec = take(&redis);
    assert_eq!(kinds(&rec), ["job.dead", "breaker.opened"]);
    assert_eq!(
        (rec[1]["t"].as_str(), rec[1]["j"].as_str()),
        (Some("flaky"), Some(c.id.as_str()))
    );
    assert!(rec[1]["u"].as_str().unwrap().parse::<i64>().unwrap() > 0);

    // A dead process's jobs: one put back (a failed attempt), one buried.
    let again = new_job();
    let last = NewJob {
        max_attempts: 1,
        ..new_job()
    };
    store
        .create(&[again.clone(), last.clone()], 100, 60)
        .unwrap();
    store
        .heartbeat("p2", Duration::from_millis(200), "{}", None)
        .unwrap();
    assert_eq!(store.claim_all("p2", 2).unwrap().unwrap().len(), 2);
    std::thread::sleep(Duration::from_millis(300));
    store.reap("p2", "died", 100).unwrap().expect("p2 expired");
    let rec = take(&redis);
    assert_eq!(kinds(&rec), ["job.failed", "job.dead"]);
    assert_eq!(
        (rec[0]["j"].as_str(), rec[1]["j"].as_str()),
        (Some(again.id.as_str()), Some(last.id.as_str()))
    );
    assert_eq!(rec[0]["e"], "died");
}

#[test]
fn a_missed_tick_writes_one_record() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    subscribe(
        &mut store,
        "sched",
        &["schedule.missed"],
        json!({"type": "noop"}),
    );
    let now = chrono::Utc::now().timestamp_micros();
    let late = (now / SEC - 10) * SEC;
    store
        .put_schedule(
            "s",
            r#"{"cron":"* * * * * *","job":{"type":"noop"}}"#,
            "* * * * * * UTC",
            Source::Api,
            late,
        )
        .unwrap();
    let due: DueTick = store.due_ticks(10).unwrap().due.remove(0);
    let future = (now / SEC + 1) * SEC;
    let tick = Tick {
        due: &due,
        next_us: due.fire_us + SEC,
        future_us: future,
        ticks: ((future - due.fire_us) / SEC) as u64,
        grace_us: 2 * SEC,
        overlap: "allow",
        missed: "skip",
    };
    let fired = store.fire(&tick, &new_job(), 100).unwrap();
    assert!(matches!(fired, Fired::Missed { .. }), "{fired:?}");
    let rec = take(&redis);
    assert_eq!(kinds(&rec), ["schedule.missed"]);
    assert_eq!(
        (rec[0]["n"].as_str(), rec[0]["reason"].as_str()),
        (Some("s"), Some("late"))
    );
    assert_eq!(rec[0]["ticks"].as_u64(), Some(tick.ticks));
    assert_eq!(rec[0]["f"].as_str(), Some(late.to_string().as_str()));
    // Firing the same tick again is refused, and writes nothing.
    assert_eq!(store.fire(&tick, &new_job(), 100).unwrap(), Fired::Gone);
    assert!(take(&redis).is_empty());
}

/// The delivery jobs in Redis: (id, payload, subscription), by subscription.
fn deliveries(redis: &TestRedis) -> Vec<(String, Value, String)> {
    let mut r = redis.raw();
    let ids: Vec<String> = r.lrange(key("q:{hooks}:ready:normal"), 0, -1).unwrap();
    let mut out: Vec<(String, Value, String)> = ids
        .into_iter()
        .map(|id| {
            let rec: HashMap<String, String> = r.hgetall(key(&format!("job:{id}"))).unwrap();
            assert_eq!(rec["type"], "webhook");
            let payload = serde_json::from_str(&rec["payload"]).unwrap();
            (id, payload, rec["sub"].clone())
        })
        .collect();
    out.sort_by(|a, b| a.2.cmp(&b.2));
    out
}

#[test]
fn publishing_makes_one_delivery_per_subscription_once_and_deliveries_make_no_events() {
    let redis = TestRedis::start();
    let mut stores: Stores = redis.backend().open();
    register(&redis, "p1");
    subscribe(&mut stores, "a", &["job.completed"], json!({}));
    subscribe(&mut stores, "b", &EVENT_KINDS, json!({"type": "noop"}));
    subscribe(
        &mut stores,
        "c",
        &["job.completed"],
        json!({"type": "email"}),
    );
    let job = new_job();
    let c = claimed(&mut stores, &job);
    stores
        .complete("p1", &c, Some("{\"x\":1}"), 60, false, &ALL)
        .unwrap();
    let raw: Vec<String> = redis.raw().lrange(key("events"), 0, -1).unwrap();
    assert_eq!(raw.len(), 1);

    let rounds = stores.dispatch(64, 100, 3).unwrap();
    assert_eq!(rounds.len(), 1);
    let published = &rounds[0].published;
    assert_eq!(published.len(), 1, "{rounds:?}");
    let ev = &published[0];
    assert_eq!(ev.kind, "job.completed");
    let subs: Vec<&str> = ev.deliveries.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(subs, ["a", "b"]);
    assert!(!redis.raw().exists::<_, bool>(key("events")).unwrap());
    let made = deliveries(&redis);
    assert_eq!(made.len(), 2);
    for ((id, payload, sub), (want_sub, want_id)) in made.iter().zip(&ev.deliveries) {
        assert_eq!((sub, id), (want_sub, want_id));
        assert_eq!(payload["url"], "http://127.0.0.1:9/hook");
        assert_eq!(payload["event"]["type"], "job.completed");
        assert_eq!(payload["event"]["id"], ev.event_id.as_str());
        assert_eq!(payload["event"]["subscription"], sub.as_str());
        assert_eq!(payload["body"]["id"], ev.event_id.as_str());
        assert_eq!(payload["body"]["job"]["id"], job.id.as_str());
        assert_eq!(payload["body"]["job"]["result"], json!({"x": 1}));
        assert_at(&redis, id, At::Pending);
    }
    let stats = stores.stats().unwrap();
    assert_eq!(stats.total_jobs, 3, "the job and its two deliveries");

    // Again: nothing left to publish. The same event published by a slower process: gone.
    assert!(stores.dispatch(64, 100, 3).unwrap()[0].published.is_empty());
    assert_eq!(stores.publish(&raw[0], &[], 100).unwrap(), Published::Gone);
    assert_eq!(deliveries(&redis).len(), 2);

    // The deliveries end every way a job can: none makes an event.
    let _: () = redis.raw().del(key("q:{default}:ready:normal")).unwrap();
    let mut claims = stores.claim_all("p1", 2).unwrap().unwrap();
    assert_eq!(claims.len(), 2);
    let second = claims.pop().unwrap();
    stores
        .complete("p1", &claims[0], None, 60, false, &ALL)
        .unwrap();
    fail(&mut stores, &second, FailMode::Permanent);
    assert!(take(&redis).is_empty());
}

#[test]
fn a_full_delivery_queue_keeps_the_event_and_a_full_outbox_drops_and_counts() {
    let redis = TestRedis::start();
    let mut stores: Stores = redis.backend().open();
    register(&redis, "p1");
    subscribe(&mut stores, "a", &["job.completed"], json!({}));
    let c = claimed(&mut stores, &new_job());
    stores.complete("p1", &c, None, 60, false, &ALL).unwrap();
    let round = stores.dispatch(64, 0, 3).unwrap().remove(0);
    assert_eq!(
        round.full,
        vec![("job.completed".to_string(), "hooks".to_string())]
    );
    assert_eq!(redis.raw().llen::<_, u64>(key("events")).unwrap(), 1);
    let round = stores.dispatch(64, 100, 3).unwrap().remove(0);
    assert_eq!(round.published.len(), 1);

    // An outbox at its cap: the new record is dropped and counted, once. (The delivery made
    // above out of the way of the claim first.)
    let _: () = redis.raw().del(key("q:{hooks}:ready:normal")).unwrap();
    let filler: Vec<String> = (0..10_000).map(|i| format!("x{i}")).collect();
    let _: () = redis.raw().rpush(key("events"), &filler).unwrap();
    let c = claimed(&mut stores, &new_job());
    stores.complete("p1", &c, None, 60, false, &ALL).unwrap();
    assert_eq!(redis.raw().llen::<_, u64>(key("events")).unwrap(), 10_000);
    let round = stores.dispatch(64, 100, 3).unwrap().remove(0);
    assert_eq!(round.dropped, 1);
    assert_eq!(round.unreadable.len(), 64, "junk records are removed");
    assert!(round.more);
    assert_eq!(stores.dispatch(64, 100, 3).unwrap()[0].dropped, 0);
}

#[test]
fn every_partition_holds_the_subscriptions_and_publishes_its_own_events() {
    let redis = TestRedis::start();
    let mut stores: Stores = redis.backend().with_partitions(2).open();
    assert_eq!(stores.partitions().unwrap(), 2);
    register(&redis, "p1");
    stores
        .heartbeat("p1", Duration::from_secs(30), "{}", None)
        .unwrap();
    let spec = json!({"url": "http://127.0.0.1:9/hook", "events": ["job.completed"],
        "queue": "hooks"});
    let (created, _) = stores.put_subscription("a", &spec.to_string()).unwrap();
    assert!(created);
    let index = |p: usize, s: &mut Stores| -> Option<String> {
        let k = s.part(p).keys.subscriptions_index.clone();
        redis.raw().get(k).unwrap()
    };
    let i0 = index(0, &mut stores).expect("indexed");
    assert!(i0.ends_with(",job.completed|*|*,"), "{i0}");
    assert_eq!(index(1, &mut stores), Some(i0.clone()), "the same in both");

    // A job in each partition: each event's deliveries are created beside it.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut job = [new_job()];
        stores.place(&mut job).unwrap();
        stores.create(&job, 100, 60).unwrap();
        ids.push(job[0].id.to_string());
    }
    let claims = stores.claim_in("p1", 2, &ALL, None).unwrap().unwrap().jobs;
    assert_eq!(claims.len(), 2);
    let done = Outcome::Completed {
        result: None,
        ttl_secs: 60,
    };
    let acks: Vec<Ack> = claims
        .iter()
        .map(|c| Ack::new(c, done.clone(), false))
        .collect();
    for r in stores.ack("p1", &acks, &ALL) {
        assert!(r.unwrap().completed().unwrap().outcome);
    }
    let rounds = stores.dispatch(64, 100, 3).unwrap();
    for r in &rounds {
        assert_eq!(r.published.len(), 1, "{r:?}");
        let delivery = &r.published[0].deliveries[0].1;
        let event_job = r.published[0].about.clone();
        let source = ids
            .iter()
            .find(|id| event_job.contains(id.as_str()))
            .unwrap();
        assert_eq!(stores.layout().unwrap().part_of_id(delivery), r.partition);
        assert_eq!(stores.layout().unwrap().part_of_id(source), r.partition);
    }

    // Partition 1 misses a change (its master was away): the next round copies partition 0's.
    stores.part(0).delete_subscription("a").unwrap();
    stores
        .part(0)
        .put_subscription("b", &spec.to_string())
        .unwrap();
    let rounds = stores.dispatch(64, 100, 3).unwrap();
    assert!(!rounds[0].synced && rounds[1].synced);
    assert_eq!(index(1, &mut stores), index(0, &mut stores));
    // A copy never goes back: a slower writer's older set is refused.
    let old = SubscriptionSet {
        version: 1,
        all: Vec::new(),
    };
    assert!(!stores.part(1).replace_subscriptions(&old).unwrap());
    assert_eq!(index(1, &mut stores), index(0, &mut stores));
    let names: Vec<String> = stores
        .part(1)
        .subscriptions()
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["b"]);
    assert!(!stores.dispatch(64, 100, 3).unwrap()[1].synced);

    // Deleted everywhere: no index left, and no event.
    assert!(stores.delete_subscription("b").unwrap());
    assert!(!stores.delete_subscription("b").unwrap());
    assert_eq!((index(0, &mut stores), index(1, &mut stores)), (None, None));
}

#[test]
fn a_round_publishes_its_events_in_one_round_trip_even_after_a_script_flush() {
    let redis = TestRedis::start();
    let mut stores: Stores = redis.backend().open();
    register(&redis, "p1");
    subscribe(&mut stores, "a", &["job.completed"], json!({}));
    for _ in 0..3 {
        let c = claimed(&mut stores, &new_job());
        stores.complete("p1", &c, None, 60, false, &ALL).unwrap();
    }
    // Redis forgets the scripts (a restart, a failover, SCRIPT FLUSH): the pipeline's calls
    // answer NOSCRIPT, ran nothing, and are sent again once the script is loaded.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut redis.raw())
        .unwrap();
    let round = stores.dispatch(64, 100, 3).unwrap().remove(0);
    assert!(round.error.is_none(), "{round:?}");
    assert_eq!(round.published.len(), 3);
    assert_eq!(deliveries(&redis).len(), 3);
    assert!(!redis.raw().exists::<_, bool>(key("events")).unwrap());
}
