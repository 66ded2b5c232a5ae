//! `claim.lua`: claiming for a registered process only, in order, and never one job twice.

use std::sync::{Arc, Barrier};

use super::*;

#[test]
fn a_registered_process_claims_in_order() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let jobs: Vec<NewJob> = (0..3).map(|_| new_job()).collect();
    store.create(&jobs, 100, 60).unwrap();
    register(&redis, "p1");
    let got = store.claim_all("p1", 2).unwrap().expect("registered");
    let ids: Vec<&str> = got.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, [jobs[0].id.as_str(), jobs[1].id.as_str()]);
    assert_eq!((got[0].attempt, got[0].max_attempts), (1, 3));
    assert_eq!(got[0].kind, "noop");
    assert_ne!(got[0].claim, "");
    assert_at(&redis, &jobs[0].id, At::Running("p1"));
    assert_at(&redis, &jobs[1].id, At::Running("p1"));
    assert_at(&redis, &jobs[2].id, At::Pending);
    assert!(field(&redis, &jobs[0].id, "started_at").is_some());
    assert_eq!(store.held("p1").unwrap().len(), 2);
    assert_eq!(store.stats().unwrap().running_jobs, 2);

    store.claim_all("p1", 5).unwrap().expect("registered");
    assert_eq!(
        store.claim_all("p1", 5).unwrap(),
        Some(Vec::new()),
        "pending is empty"
    );
    assert!(!store
        .wait_for_work("p1", Duration::from_millis(100))
        .unwrap());
}

/// A process whose heartbeat key is missing claims nothing: were it to die holding a job, no
/// reaper would ever look at its running list.
#[test]
fn an_unregistered_process_claims_nothing() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let job = new_job();
    store.create(std::slice::from_ref(&job), 100, 60).unwrap();
    assert_eq!(store.claim_all("ghost", 1).unwrap(), None);
    assert_at(&redis, &job.id, At::Pending);

    // An acknowledgement that asks for a next job gets none either.
    register(&redis, "p1");
    let held = store
        .claim_all("p1", 1)
        .unwrap()
        .expect("registered")
        .remove(0);
    let other = new_job();
    store.create(std::slice::from_ref(&other), 100, 60).unwrap();
    let _: () = redis.raw().del(key("worker:p1")).unwrap();
    let acked = store.complete("p1", &held, None, 60, true, &ALL).unwrap();
    assert!(acked.outcome);
    assert_eq!(acked.next, None);
    assert_at(&redis, &job.id, At::Done);
    assert_at(&redis, &other.id, At::Pending);

    // Registered again, it claims.
    register(&redis, "p1");
    let got = store.claim_all("p1", 1).unwrap().expect("registered");
    assert_eq!(got.len(), 1);
    assert_at(&redis, &other.id, At::Running("p1"));
}

#[test]
fn two_claimers_racing_for_one_job_one_gets_it() {
    let redis = TestRedis::start();
    for round in 0..20 {
        let job = new_job();
        redis
            .store()
            .create(std::slice::from_ref(&job), 100, 60)
            .unwrap();
        register(&redis, "p1");
        register(&redis, "p2");
        let start = Arc::new(Barrier::new(2));
        let claimers: Vec<_> = ["p1", "p2"]
            .into_iter()
            .map(|who| {
                let (mut store, start) = (redis.store(), start.clone());
                // Connect before the barrier, so both claims leave at the same moment.
                store.ping().unwrap();
                std::thread::spawn(move || {
                    start.wait();
                    (who, store.claim_all(who, 1).unwrap().expect("registered"))
                })
            })
            .collect();
        let results: Vec<_> = claimers.into_iter().map(|t| t.join().unwrap()).collect();
        let winners: Vec<_> = results.iter().filter(|(_, got)| !got.is_empty()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        let (who, got) = winners[0];
        assert_eq!(got[0].id, job.id);
        assert_at(&redis, &job.id, At::Running(who));
        assert_eq!(got[0].attempt, 1);
        redis.store().requeue_all(who).unwrap();
        let _: () = redis::cmd("FLUSHDB").query(&mut redis.raw()).unwrap();
    }
}
