//! Moving jobs without an outcome: `promote.lua` (due jobs to pending), `requeue.lua` (a
//! process hands its jobs back) and `reap.lua` (the jobs of a dead process), plus the
//! registration they rely on.

use super::*;

#[test]
fn promote_moves_due_jobs_and_says_when_the_next_is_due() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let soon = NewJob {
        delay_ms: 1,
        ..new_job()
    };
    let later = NewJob {
        delay_ms: 60_000,
        ..new_job()
    };
    store
        .create(&[soon.clone(), later.clone()], 100, 60)
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let promoted = store.promote(10).unwrap();
    assert_eq!(promoted.moved, 1);
    assert_at(&redis, &soon.id, At::Pending);
    assert_at(&redis, &later.id, At::Scheduled);
    assert_eq!(field(&redis, &soon.id, "run_at"), None, "due now");
    let next = promoted.next_due_us.expect("one still scheduled");
    let wait = next - promoted.now_us;
    assert!(wait > 50_000_000 && wait <= 60_000_000, "{wait}");
    assert_eq!(store.promote(10).unwrap().moved, 0);
}

#[test]
fn requeue_puts_held_jobs_back_at_the_front_without_counting_the_attempt() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let jobs: Vec<NewJob> = (0..3).map(|_| new_job()).collect();
    store.create(&jobs, 100, 60).unwrap();
    register(&redis, "p1");
    let got = store.claim_all("p1", 2).unwrap().expect("registered");
    assert_eq!(got.len(), 2);

    // One lost claim reply: that job alone goes back.
    let moved = store.requeue("p1", &[jobs[1].id.to_string()]).unwrap().ids;
    assert_eq!(moved, vec![jobs[1].id.to_string()]);
    assert_at(&redis, &jobs[1].id, At::Pending);
    assert_at(&redis, &jobs[0].id, At::Running("p1"));
    assert_eq!(field(&redis, &jobs[1].id, "attempt").as_deref(), Some("0"));
    assert_eq!(field(&redis, &jobs[1].id, "started_at"), None);
    // An id the process does not hold is left alone.
    assert!(store
        .requeue("p1", &[jobs[2].id.to_string()])
        .unwrap()
        .ids
        .is_empty());
    assert_at(&redis, &jobs[2].id, At::Pending);

    // Shutdown: everything held goes back, in front of what was waiting.
    assert_eq!(
        store.requeue_all("p1").unwrap().ids,
        vec![jobs[0].id.to_string()]
    );
    assert_at(&redis, &jobs[0].id, At::Pending);
    let pending: Vec<String> = redis
        .raw()
        .lrange(key("q:{default}:ready:normal"), 0, -1)
        .unwrap();
    assert_eq!(pending[0], jobs[0].id);
    assert_eq!(store.stats().unwrap().running_jobs, 0);
    store.deregister("p1").unwrap();
    assert!(store.workers().unwrap().is_empty());
}

#[test]
fn reap_spares_a_live_process_and_recovers_a_dead_one() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let (job, last) = (
        new_job(),
        NewJob {
            max_attempts: 1,
            ..new_job()
        },
    );
    store.create(&[job.clone(), last.clone()], 100, 60).unwrap();
    store
        .heartbeat("p1", Duration::from_millis(300), "{}", None)
        .unwrap();
    assert_eq!(store.workers().unwrap(), vec!["p1".to_string()]);
    assert_eq!(
        store.claim_all("p1", 2).unwrap().expect("registered").len(),
        2
    );

    assert_eq!(store.reap("p1", "died", 100).unwrap(), None, "alive");
    assert_at(&redis, &job.id, At::Running("p1"));

    std::thread::sleep(Duration::from_millis(400));
    let reaped = store.reap("p1", "died", 100).unwrap().expect("expired");
    assert_eq!(reaped.requeued, vec![job.id.to_string()]);
    assert_eq!(reaped.dead, vec![last.id.to_string()]);
    assert!(reaped.evicted.is_empty());
    assert_at(&redis, &job.id, At::Pending);
    assert_at(&redis, &last.id, At::Dlq);
    assert_eq!(field(&redis, &job.id, "error").as_deref(), Some("died"));
    assert_eq!(
        field(&redis, &job.id, "attempt").as_deref(),
        Some("1"),
        "counted"
    );
    assert!(store.workers().unwrap().is_empty(), "deregistered");
    assert!(store.held("p1").unwrap().is_empty());
}
