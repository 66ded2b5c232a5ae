//! Named queues and flow control in the claim step: priorities, queue selection, pause, limits,
//! groups, snooze, the breaker, "why is it waiting", the wake list and the old layout.

use super::*;
use crate::config::{Breaker, GroupLimits, Limits, Rate};
use crate::store::{BreakerChange, FailOutcome, Target};

fn job_in(queue: &str, kind: &str) -> NewJob {
    NewJob {
        queue: queue.into(),
        kind: kind.into(),
        ..new_job()
    }
}

fn create(store: &mut Store, jobs: &[NewJob]) {
    store.create(jobs, 10_000, 60).unwrap();
}

fn ids(jobs: &[Claimed]) -> Vec<String> {
    jobs.iter().map(|j| j.id.clone()).collect()
}

fn set_limits(store: &mut Store, target: Target, limits: Limits) {
    store
        .set_limits(target, &Limits::FIELDS, &limits.to_fields())
        .unwrap();
}

fn rate(limit: u32, period_secs: u64) -> Rate {
    Rate { limit, period_secs }
}

fn reason(store: &mut Store, id: &str) -> String {
    store.why_waiting(id).unwrap().expect("pending").reason
}

#[test]
fn high_before_normal_before_low_fifo_within_a_level() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let mk = |p: Priority| NewJob {
        priority: p,
        ..new_job()
    };
    let jobs = [
        mk(Priority::Low),
        mk(Priority::Normal),
        mk(Priority::High),
        mk(Priority::Normal),
        mk(Priority::High),
    ];
    create(&mut store, &jobs);
    register(&redis, "p1");
    let got = store.claim_all("p1", 5).unwrap().unwrap();
    let want: Vec<String> = [2, 4, 1, 3, 0]
        .iter()
        .map(|&i| jobs[i].id.to_string())
        .collect();
    assert_eq!(ids(&got), want);
    assert_eq!(got[0].priority, Priority::High);
}

#[test]
fn strict_order_takes_the_first_queue_with_work_and_weights_share() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let a: Vec<NewJob> = (0..400).map(|_| job_in("a", "noop")).collect();
    let b: Vec<NewJob> = (0..400).map(|_| job_in("b", "noop")).collect();
    create(&mut store, &a);
    create(&mut store, &b);
    register(&redis, "p1");
    let strict = Selection::Strict(vec!["b".into(), "a".into()]);
    let got = store.claim("p1", 3, &strict).unwrap().unwrap().jobs;
    assert!(got.iter().all(|j| j.queue == "b"), "{got:?}");
    store.requeue_all("p1").unwrap();

    let weighted = Selection::Weighted(vec![("a".into(), 3), ("b".into(), 1)]);
    let mut from_a = 0;
    for _ in 0..400 {
        let got = store.claim("p1", 1, &weighted).unwrap().unwrap().jobs;
        from_a += usize::from(got[0].queue == "a");
    }
    // 3:1 is 300 of 400; a wide band, the integration test measures it over 3000 jobs.
    assert!((255..=345).contains(&from_a), "{from_a} of 400 from a");
}

#[test]
fn a_paused_queue_starts_nothing_until_resumed() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let job = new_job();
    create(&mut store, std::slice::from_ref(&job));
    register(&redis, "p1");
    store.set_paused(Target::Queue("default"), true).unwrap();
    assert_eq!(store.claim_all("p1", 5).unwrap(), Some(Vec::new()));
    assert_eq!(reason(&mut store, &job.id), "queue_paused");
    store.set_paused(Target::Queue("default"), false).unwrap();
    assert_eq!(
        ids(&store.claim_all("p1", 5).unwrap().unwrap()),
        [job.id.to_string()]
    );
}

#[test]
fn a_paused_type_is_set_aside_and_the_jobs_behind_it_run() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let (email, noop) = (job_in("default", "email"), job_in("default", "noop"));
    create(&mut store, &[email.clone(), noop.clone()]);
    register(&redis, "p1");
    store.set_paused(Target::Type("email"), true).unwrap();
    assert_eq!(reason(&mut store, &email.id), "type_paused");
    let got = store.claim_all("p1", 5).unwrap().unwrap();
    assert_eq!(ids(&got), [noop.id.to_string()]);
    assert_at(&redis, &email.id, At::Pending);
    assert_eq!(reason(&mut store, &email.id), "type_paused");
    assert_eq!(store.stats().unwrap().pending_jobs, 1);

    store.set_paused(Target::Type("email"), false).unwrap();
    let got = store.claim_all("p1", 5).unwrap().unwrap();
    assert_eq!(ids(&got), [email.id.to_string()]);
}

#[test]
fn concurrency_limits_of_a_queue_and_a_type_hold_and_free_with_completions() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    register(&redis, "p1");
    let jobs: Vec<NewJob> = (0..5).map(|_| new_job()).collect();
    create(&mut store, &jobs);
    let two = Limits {
        concurrency: Some(2),
        ..Limits::default()
    };
    set_limits(&mut store, Target::Queue("default"), two);
    let got = store.claim_all("p1", 5).unwrap().unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(reason(&mut store, &jobs[2].id), "concurrency_limit");
    store
        .complete("p1", &got[0], None, 60, false, &ALL)
        .unwrap();
    assert_eq!(store.claim_all("p1", 5).unwrap().unwrap().len(), 1);
    store.requeue_all("p1").unwrap();

    // Type limit 1: the second job of the type is set aside, and comes back when the first ends.
    set_limits(&mut store, Target::Queue("default"), Limits::default());
    let one = Limits {
        concurrency: Some(1),
        ..Limits::default()
    };
    set_limits(&mut store, Target::Type("noop"), one);
    let got = store.claim_all("p1", 5).unwrap().unwrap();
    assert_eq!(got.len(), 1);
    let acked = store.complete("p1", &got[0], None, 60, true, &ALL).unwrap();
    // A type with a setting takes the general way: the next job comes from the fetcher's claim.
    assert_eq!(acked.next, None);
    let got = store.claim_all("p1", 5).unwrap().unwrap();
    assert_eq!(got.len(), 1, "the freed slot went to a set-aside job");
    let types = store.types(&["noop".to_string()]).unwrap();
    assert_eq!(types[0].running, 1);
    assert_eq!(store.stats().unwrap().running_jobs, 1);
}

#[test]
fn groups_take_turns_and_group_limits_hold() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    register(&redis, "p1");
    let in_group = |g: &str| NewJob {
        group: Some(g.into()),
        ..new_job()
    };
    let big: Vec<NewJob> = (0..10).map(|_| in_group("big")).collect();
    let small: Vec<NewJob> = (0..2).map(|_| in_group("small")).collect();
    create(&mut store, &big);
    create(&mut store, &small);
    let got = store.claim_all("p1", 4).unwrap().unwrap();
    let groups: Vec<&str> = got.iter().map(|j| j.group.as_str()).collect();
    assert_eq!(groups, ["big", "small", "big", "small"]);
    store.requeue_all("p1").unwrap();

    let per_group = Limits {
        group: Some(GroupLimits {
            concurrency: Some(1),
            rate: None,
        }),
        ..Limits::default()
    };
    set_limits(&mut store, Target::Queue("default"), per_group);
    let got = store.claim_all("p1", 10).unwrap().unwrap();
    assert_eq!(got.len(), 2, "one per group");
    assert_eq!(reason(&mut store, &big[5].id), "group_limit");
}

#[test]
fn a_rate_limit_spaces_starts_and_says_when_the_next_may_start() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    register(&redis, "p1");
    let jobs: Vec<NewJob> = (0..5).map(|_| new_job()).collect();
    create(&mut store, &jobs);
    let two_per_sec = Limits {
        rate: Some(rate(2, 1)),
        ..Limits::default()
    };
    set_limits(&mut store, Target::Queue("default"), two_per_sec);
    let batch = store.claim("p1", 5, &ALL).unwrap().unwrap();
    assert_eq!(batch.jobs.len(), 1, "no burst: one start per 500 ms");
    let next = batch.next_start_us.expect("when the next may start");
    let empty = store.claim("p1", 5, &ALL).unwrap().unwrap();
    assert!(empty.jobs.is_empty());
    assert_eq!(empty.next_start_us, Some(next));
    assert!(
        (450_000..=500_000).contains(&(next - batch.now_us)),
        "{}",
        next - batch.now_us
    );
    assert_eq!(reason(&mut store, &jobs[1].id), "rate_limit");
}

#[test]
fn a_snooze_gives_the_attempt_back_until_max_snoozes() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    register(&redis, "p1");
    let job = new_job();
    create(&mut store, std::slice::from_ref(&job));
    let claim = store.claim_all("p1", 1).unwrap().unwrap().remove(0);
    let acked = store
        .fail(
            "p1",
            &claim,
            "429",
            60_000,
            FailMode::Snooze,
            (100, 1),
            false,
            &ALL,
        )
        .unwrap();
    assert!(matches!(acked.outcome, FailOutcome::Snoozed { .. }));
    assert_at(&redis, &job.id, At::Scheduled);
    assert_eq!(field(&redis, &job.id, "attempt").as_deref(), Some("0"));
    assert_eq!(field(&redis, &job.id, "snoozes").as_deref(), Some("1"));
    assert_eq!(reason(&mut store, &job.id), "scheduled");

    let _: () = redis
        .raw()
        .zadd(key("q:{default}:scheduled"), job.id.as_str(), 0)
        .unwrap();
    store.promote(10).unwrap();
    let claim = store.claim_all("p1", 1).unwrap().unwrap().remove(0);
    assert_eq!(claim.attempt, 1, "the snoozed attempt was not counted");
    // Past MAX_SNOOZES a snooze is a failed attempt.
    let acked = store
        .fail(
            "p1",
            &claim,
            "429",
            10,
            FailMode::Snooze,
            (100, 1),
            false,
            &ALL,
        )
        .unwrap();
    assert!(matches!(acked.outcome, FailOutcome::Retry { .. }));
    assert_eq!(reason(&mut store, &job.id), "backoff");
}

#[test]
fn the_breaker_opens_probes_and_closes() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    register(&redis, "p1");
    let breaker = Limits {
        breaker: Some(Breaker {
            consecutive: Some(2),
            failure_ratio: None,
            window: 20,
            cooldown_secs: 60,
        }),
        ..Limits::default()
    };
    set_limits(&mut store, Target::Type("noop"), breaker);
    let jobs: Vec<NewJob> = (0..5).map(|_| new_job()).collect();
    create(&mut store, &jobs);
    let got = store.claim_all("p1", 2).unwrap().unwrap();
    let fail = |store: &mut Store, c: &Claimed| {
        store
            .fail(
                "p1",
                c,
                "down",
                10,
                FailMode::Permanent,
                (100, 100),
                false,
                &ALL,
            )
            .unwrap()
            .breaker
    };
    assert_eq!(fail(&mut store, &got[0]), None);
    assert_eq!(fail(&mut store, &got[1]), Some(BreakerChange::Opened));
    assert_eq!(store.claim_all("p1", 5).unwrap(), Some(Vec::new()));
    assert_eq!(reason(&mut store, &jobs[2].id), "circuit_open");
    let t = &store.types(&["noop".to_string()]).unwrap()[0];
    assert_eq!((t.breaker_state.as_str(), t.parked), ("open", 3));

    // The cool-down ends (moved into the past rather than waited for): one probe goes through.
    let _: () = redis.raw().hset(key("t:noop"), "b_until", 0).unwrap();
    store.promote(100).unwrap();
    let probe = store.claim_all("p1", 5).unwrap().unwrap();
    assert_eq!(probe.len(), 1, "exactly one probe");
    let acked = store
        .complete("p1", &probe[0], None, 60, false, &ALL)
        .unwrap();
    assert_eq!(acked.breaker, Some(BreakerChange::Closed));
    store.promote(100).unwrap();
    assert_eq!(store.claim_all("p1", 5).unwrap().unwrap().len(), 2);
}

#[test]
fn waiting_reasons_for_time_and_for_workers() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let later = NewJob {
        delay_ms: 60_000,
        ..new_job()
    };
    let now = job_in("nobody", "noop");
    create(&mut store, &[later.clone(), now.clone()]);
    assert_eq!(reason(&mut store, &later.id), "scheduled");
    assert_eq!(reason(&mut store, &now.id), "no_worker");
    store
        .heartbeat(
            "p1",
            Duration::from_secs(30),
            "{}",
            Some(&["nobody".to_string()]),
        )
        .unwrap();
    let w = store.why_waiting(&now.id).unwrap().unwrap();
    assert_eq!(w.reason, "queued");
    assert!(w.detail.contains("1 jobs ready"), "{}", w.detail);
}

#[test]
fn a_process_waiting_for_work_is_woken_by_a_new_job() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    register(&redis, "p1");
    assert_eq!(store.claim_all("p1", 1).unwrap(), Some(Vec::new()));
    create(&mut store, &[new_job()]);
    // Woken at once: the token is already there.
    assert!(store.wait_for_work("p1", Duration::from_secs(5)).unwrap());
}

#[test]
fn jobs_of_the_single_queue_layout_are_served() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let mut r = redis.raw();
    for (id, place) in [
        ("00000000-0000-0000-0000-000000000001", "pending"),
        ("00000000-0000-0000-0000-000000000002", "scheduled"),
    ] {
        let _: () = r
            .hset_multiple(
                key(&format!("job:{id}")),
                &[
                    ("type", "noop"),
                    ("payload", "{}"),
                    ("status", "pending"),
                    ("attempt", "0"),
                    ("max_attempts", "3"),
                    ("created_at", "1775557800000000"),
                    ("updated_at", "1775557800000000"),
                ],
            )
            .unwrap();
        if place == "pending" {
            let _: () = r.rpush(key("pending"), id).unwrap();
        } else {
            let _: () = r.zadd(key("scheduled"), id, 0).unwrap();
        }
    }
    store.promote(100).unwrap();
    store.promote(100).unwrap();
    register(&redis, "p1");
    let got = store.claim_all("p1", 5).unwrap().unwrap();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|j| j.queue == "default"));
    let old: bool = r.exists(key("pending")).unwrap();
    assert!(!old);
    let job = store.job(&got[0].id).unwrap().unwrap();
    assert_eq!(job.queue, "default");
}

#[test]
fn jobs_over_their_types_rate_wait_in_scheduled_one_interval_apart() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    register(&redis, "p1");
    let jobs: Vec<NewJob> = (0..4).map(|_| new_job()).collect();
    create(&mut store, &jobs);
    let two_per_sec = Limits {
        rate: Some(rate(2, 1)),
        ..Limits::default()
    };
    set_limits(&mut store, Target::Type("noop"), two_per_sec);
    let got = store.claim_all("p1", 4).unwrap().unwrap();
    assert_eq!(got.len(), 1);
    let mut dues: Vec<i64> = jobs[1..]
        .iter()
        .map(|j| {
            assert_at(&redis, &j.id, At::Scheduled);
            assert_eq!(reason(&mut store, &j.id), "rate_limit");
            field(&redis, &j.id, "run_at").unwrap().parse().unwrap()
        })
        .collect();
    dues.sort();
    assert_eq!(dues[1] - dues[0], 500_000);
    assert_eq!(dues[2] - dues[1], 500_000);
}

#[test]
fn removing_a_rate_removes_its_schedule() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    register(&redis, "p1");
    let in_group = NewJob {
        group: Some("g".into()),
        ..new_job()
    };
    create(&mut store, &[in_group]);
    let rates = Limits {
        rate: Some(rate(1, 60)),
        group: Some(GroupLimits {
            concurrency: None,
            rate: Some(rate(1, 60)),
        }),
        ..Limits::default()
    };
    set_limits(&mut store, Target::Queue("default"), rates);
    assert_eq!(store.claim_all("p1", 2).unwrap().unwrap().len(), 1);
    assert!(tat_of(&redis, "q:{default}:gstate", "tat:g").is_some());
    assert!(tat_of(&redis, "q:{default}:meta", "tat").is_some());
    set_limits(&mut store, Target::Queue("default"), Limits::default());
    assert_eq!(tat_of(&redis, "q:{default}:meta", "tat"), None);
    assert_eq!(tat_of(&redis, "q:{default}:gstate", "tat:g"), None);
}

fn tat_of(redis: &TestRedis, k: &str, f: &str) -> Option<String> {
    redis.raw().hget(key(k), f).unwrap()
}
