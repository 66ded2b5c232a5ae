//! `complete.lua` and `fail.lua`: the outcome of a claim, the retry or the DLQ, and the claim
//! number that keeps a late outcome of an earlier claim from changing anything.

use super::*;
use crate::store::{Claimed, FailOutcome};

/// Creates `job`, registers `p1` and claims the job for it.
fn claimed(redis: &TestRedis, job: &NewJob) -> Claimed {
    let mut store = redis.store();
    store.create(std::slice::from_ref(job), 100, 60).unwrap();
    register(redis, "p1");
    let got = store
        .claim_all("p1", 1)
        .unwrap()
        .expect("registered")
        .remove(0);
    assert_eq!(got.id, job.id);
    got
}

#[test]
fn complete_stores_the_result_and_claims_the_next_job() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let job = new_job();
    let claim = claimed(&redis, &job);
    let next = new_job();
    store.create(std::slice::from_ref(&next), 100, 60).unwrap();
    let acked = store
        .complete("p1", &claim, Some("{\"ok\":1}"), 60, true, &ALL)
        .unwrap();
    assert!(acked.outcome);
    assert_eq!(
        acked.next.as_ref().map(|n| n.id.as_str()),
        Some(next.id.as_str())
    );
    assert_at(&redis, &job.id, At::Done);
    assert_at(&redis, &next.id, At::Running("p1"));
    assert_eq!(
        field(&redis, &job.id, "result").as_deref(),
        Some("{\"ok\":1}")
    );
    assert!(field(&redis, &job.id, "completed_at").is_some());
    let ttl: i64 = redis.raw().ttl(key(&format!("job:{}", job.id))).unwrap();
    assert!(ttl > 0 && ttl <= 60, "the record expires: {ttl}");
    let completed: Vec<String> = redis.raw().lrange(key("completed"), 0, -1).unwrap();
    assert_eq!(completed, vec![job.id.to_string()]);
    let stats = store.stats().unwrap();
    assert_eq!((stats.completed_jobs, stats.running_jobs), (1, 1));

    // Completing it again (a retried acknowledgement whose first try was stored) changes nothing.
    let again = store.complete("p1", &claim, None, 60, false, &ALL).unwrap();
    assert!(!again.outcome);
    assert_eq!(store.stats().unwrap().completed_jobs, 1);
}

#[test]
fn a_failure_is_retried_until_the_attempts_are_spent_then_buried() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let job = NewJob {
        max_attempts: 2,
        ..new_job()
    };
    let first = claimed(&redis, &job);
    let acked = store
        .fail(
            "p1",
            &first,
            "boom 1",
            60_000,
            FailMode::Retry,
            (100, 100),
            false,
            &ALL,
        )
        .unwrap();
    assert!(matches!(acked.outcome, FailOutcome::Retry { due_us } if due_us > 0));
    assert_at(&redis, &job.id, At::Scheduled);
    assert_eq!(field(&redis, &job.id, "error").as_deref(), Some("boom 1"));

    // Due at once: promoted, claimed again, failed again: no attempt left.
    let _: () = redis
        .raw()
        .zadd(key("q:{default}:scheduled"), job.id.as_str(), 0)
        .unwrap();
    assert_eq!(store.promote(10).unwrap().moved, 1);
    assert_at(&redis, &job.id, At::Pending);
    let second = store
        .claim_all("p1", 1)
        .unwrap()
        .expect("registered")
        .remove(0);
    assert_eq!(second.attempt, 2);
    let acked = store
        .fail(
            "p1",
            &second,
            "boom 2",
            10,
            FailMode::Retry,
            (100, 100),
            false,
            &ALL,
        )
        .unwrap();
    assert_eq!(acked.outcome, FailOutcome::Dead { evicted: vec![] });
    assert_at(&redis, &job.id, At::Dlq);
    let dead = store.job(&job.id).unwrap().unwrap();
    assert_eq!(dead.errors.len(), 2);
    assert_eq!(dead.error.as_deref(), Some("boom 2"));
    let stats = store.stats().unwrap();
    assert_eq!(
        (stats.failed_jobs, stats.dlq_size, stats.running_jobs),
        (1, 1, 0)
    );
}

#[test]
fn a_permanent_failure_goes_to_the_dlq_at_once() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let job = new_job();
    let claim = claimed(&redis, &job);
    let acked = store
        .fail(
            "p1",
            &claim,
            "bad input",
            10,
            FailMode::Permanent,
            (100, 100),
            false,
            &ALL,
        )
        .unwrap();
    assert_eq!(acked.outcome, FailOutcome::Dead { evicted: vec![] });
    assert_at(&redis, &job.id, At::Dlq);
    assert_eq!(field(&redis, &job.id, "attempt").as_deref(), Some("1"));
}

#[test]
fn the_dlq_cap_evicts_the_oldest() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    // Each job to the DLQ, capped at one entry.
    let mut bury = |job: &NewJob| {
        let claim = claimed(&redis, job);
        store
            .fail(
                "p1",
                &claim,
                "x",
                10,
                FailMode::Permanent,
                (1, 100),
                false,
                &ALL,
            )
            .unwrap()
    };
    let (old, young) = (new_job(), new_job());
    bury(&old);
    let acked = bury(&young);
    assert_eq!(
        acked.outcome,
        FailOutcome::Dead {
            evicted: vec![old.id.to_string()]
        }
    );
    assert_at(&redis, &young.id, At::Dlq);
    assert_eq!(
        field(&redis, &old.id, "status"),
        None,
        "evicted with its record"
    );
}

/// The same process claims a job, loses it to the reaper (heartbeat expired), claims it again;
/// the first claim's late outcome must change nothing, and the second claim's outcome must be
/// recorded.
#[test]
fn a_late_outcome_of_an_earlier_claim_changes_nothing() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let job = new_job();
    let first = claimed(&redis, &job);
    // The process stalls past its heartbeat TTL: another process's reaper takes the job back.
    let _: () = redis.raw().del(key("worker:p1")).unwrap();
    let reaped = store
        .reap("p1", "died", 100)
        .unwrap()
        .expect("heartbeat expired");
    assert_eq!(reaped.requeued, vec![job.id.to_string()]);
    assert_at(&redis, &job.id, At::Pending);
    // It comes back, beats, and claims the same job again.
    register(&redis, "p1");
    let second = store
        .claim_all("p1", 1)
        .unwrap()
        .expect("registered")
        .remove(0);
    assert_eq!(second.id, job.id);
    assert_ne!(second.claim, first.claim);

    // The first run's late outcomes: neither is recorded, the second claim is untouched.
    let late = store
        .complete("p1", &first, Some("\"late\""), 60, false, &ALL)
        .unwrap();
    assert!(
        !late.outcome,
        "a late completion of the first claim was recorded"
    );
    let late = store
        .fail(
            "p1",
            &first,
            "late failure",
            10,
            FailMode::Retry,
            (100, 100),
            false,
            &ALL,
        )
        .unwrap();
    assert_eq!(late.outcome, FailOutcome::NotOwned);
    assert_at(&redis, &job.id, At::Running("p1"));
    assert_eq!(store.stats().unwrap().scheduled_jobs, 0);

    // The second run's outcome is recorded.
    let done = store
        .complete("p1", &second, Some("\"ok\""), 60, false, &ALL)
        .unwrap();
    assert!(done.outcome);
    assert_at(&redis, &job.id, At::Done);
    assert_eq!(field(&redis, &job.id, "result").as_deref(), Some("\"ok\""));
}
