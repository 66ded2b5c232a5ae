//! `ack.lua`: several outcomes in one call (group commit), each recorded as its own
//! `complete.lua` or `fail.lua` call would record it, in order, each claiming its worker's next
//! job.

use super::*;
use crate::store::{Ack, AckReply, Outcome};

fn failed(mode: FailMode) -> Outcome {
    Outcome::Failed {
        error: format!("{mode:?} failure"),
        delay_ms: 10_000,
        mode,
        limits: (100, 5),
    }
}

#[test]
fn a_group_commit_records_each_outcome_as_its_own_call_would() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    register(&redis, "p1");
    let jobs: Vec<NewJob> = (0..5).map(|_| new_job()).collect();
    store.create(&jobs, 100, 60).unwrap();
    let claims = store.claim_all("p1", 5).unwrap().unwrap();
    assert_eq!(claims.len(), 5);
    // Two jobs made ready after the claim: the next jobs of the two acks that ask for one.
    let next: Vec<NewJob> = (0..2).map(|_| new_job()).collect();
    store.create(&next, 100, 60).unwrap();

    let done = Outcome::Completed {
        result: Some("{\"n\":1}".into()),
        ttl_secs: 60,
    };
    let mut stale = Ack::new(&claims[3], done.clone(), false);
    stale.claim = "0".into();
    let acks = vec![
        Ack::new(&claims[0], done, true),
        Ack::new(&claims[1], failed(FailMode::Retry), false),
        Ack::new(&claims[2], failed(FailMode::Permanent), false),
        stale,
        Ack::new(&claims[4], failed(FailMode::Snooze), true),
    ];
    let mut replies = store.ack("p1", &acks, &ALL).unwrap().into_iter();
    let mut reply = || replies.next().expect("one answer per ack");

    let a = reply().completed().unwrap();
    assert!(a.outcome);
    assert_eq!(
        a.next.as_ref().map(|n| n.id.as_str()),
        Some(next[0].id.as_str())
    );
    assert_at(&redis, &claims[0].id, At::Done);
    assert_eq!(
        field(&redis, &claims[0].id, "result").as_deref(),
        Some("{\"n\":1}")
    );

    let b = reply().failed().unwrap();
    assert!(matches!(b.outcome, FailOutcome::Retry { .. }), "{b:?}");
    assert!(b.next.is_none());
    assert_at(&redis, &claims[1].id, At::Scheduled);

    let c = reply().failed().unwrap();
    assert_eq!(c.outcome, FailOutcome::Dead { evicted: vec![] });
    assert_at(&redis, &claims[2].id, At::Dlq);

    // Not this claim's to record: nothing written, the job still held.
    assert!(!reply().completed().unwrap().outcome);
    assert_at(&redis, &claims[3].id, At::Running("p1"));

    let e = reply().failed().unwrap();
    assert!(matches!(e.outcome, FailOutcome::Snoozed { .. }), "{e:?}");
    assert_eq!(
        e.next.as_ref().map(|n| n.id.as_str()),
        Some(next[1].id.as_str())
    );
    assert_eq!(
        field(&redis, &claims[4].id, "attempt").as_deref(),
        Some("0")
    );
    for n in &next {
        assert_at(&redis, &n.id, At::Running("p1"));
    }

    let stats = store.stats().unwrap();
    assert_eq!(
        (stats.completed_jobs, stats.running_jobs, stats.dlq_size),
        (1, 3, 1),
        "the held job and the two next ones run"
    );
    // The held job's own claim still records it.
    let ok = Outcome::Completed {
        result: None,
        ttl_secs: 60,
    };
    let last = store.ack("p1", &[Ack::new(&claims[3], ok, false)], &ALL);
    assert!(matches!(last.unwrap()[..], [AckReply::Completed(ref a)] if a.outcome));
    assert_eq!(store.stats().unwrap().completed_jobs, 2);
}

#[test]
fn a_group_commit_claims_nothing_for_a_process_that_lost_its_heartbeat() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    register(&redis, "p1");
    let jobs: Vec<NewJob> = (0..3).map(|_| new_job()).collect();
    store.create(&jobs, 100, 60).unwrap();
    let claims = store.claim_all("p1", 2).unwrap().unwrap();
    // Its heartbeat expired (a long stall): the outcomes are still its to record, but no new
    // job is claimed for a process the reaper may be about to take jobs from.
    redis.raw().del::<_, ()>(key("worker:p1")).unwrap();
    let ok = Outcome::Completed {
        result: None,
        ttl_secs: 60,
    };
    let acks: Vec<Ack> = claims
        .iter()
        .map(|c| Ack::new(c, ok.clone(), true))
        .collect();
    for r in store.ack("p1", &acks, &ALL).unwrap() {
        let a = r.completed().unwrap();
        assert!(a.outcome && a.next.is_none(), "{a:?}");
    }
    assert_at(&redis, &jobs[2].id, At::Pending);
    assert_eq!(store.stats().unwrap().running_jobs, 0);
}
