//! The ends `finish.lua` settles and the scripts that reach them: workflows (waiting → pending
//! in the step that completes the last parent), cancellation at each stage, start deadlines,
//! unique keys. After every call each job is in exactly one place with the status that goes
//! with it (`assert_at`): every transition is one script, so no crash can fall between two
//! halves of one.

use super::*;
use crate::store::{CancelOutcome, CreateOutcome, EventKind, FailOutcome, JobFilter};

fn child_of(parents: &[&NewJob]) -> NewJob {
    NewJob {
        parents: parents.iter().map(|p| p.id.to_string()).collect(),
        ..new_job()
    }
}

fn meta(redis: &TestRedis, field: &str) -> Option<String> {
    redis.raw().hget(key("q:{default}:meta"), field).unwrap()
}

#[test]
fn a_child_waits_until_its_last_parent_completes() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let (a, b) = (new_job(), new_job());
    let c = child_of(&[&a, &b]);
    store
        .create(&[a.clone(), b.clone(), c.clone()], 100, 60)
        .unwrap();
    assert_at(&redis, &c.id, At::Waiting);
    assert_eq!(meta(&redis, "waiting").as_deref(), Some("1"));
    assert_eq!(meta(&redis, "pending").as_deref(), Some("2"));
    register(&redis, "p1");
    let got = store.claim_all("p1", 2).unwrap().unwrap();
    let first = store
        .complete("p1", &got[0], None, 60, false, &ALL)
        .unwrap();
    assert!(first.events.is_empty(), "{:?}", first.events);
    assert_at(&redis, &c.id, At::Waiting);
    let second = store
        .complete("p1", &got[1], None, 60, false, &ALL)
        .unwrap();
    assert_eq!(second.events.len(), 1);
    assert_eq!(second.events[0].kind, EventKind::Ready);
    assert_at(&redis, &c.id, At::Pending);
    assert_eq!(meta(&redis, "waiting").as_deref(), Some("0"));
    assert_eq!(meta(&redis, "pending").as_deref(), Some("1"));
    let claimed = store.claim_all("p1", 1).unwrap().unwrap();
    assert_eq!(claimed[0].parents.len(), 2);
}

#[test]
fn cancelling_ends_pending_scheduled_and_waiting_jobs_and_their_descendants() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let pending = new_job();
    let scheduled = NewJob {
        delay_ms: 60_000,
        ..new_job()
    };
    let parent = new_job();
    let waiting = child_of(&[&parent]);
    let grandchild = child_of(&[&waiting]);
    store
        .create(
            &[
                pending.clone(),
                scheduled.clone(),
                parent.clone(),
                waiting.clone(),
                grandchild.clone(),
            ],
            100,
            60,
        )
        .unwrap();
    let ids: Vec<String> = [&pending, &scheduled, &waiting]
        .iter()
        .map(|j| j.id.to_string())
        .collect();
    let (outcomes, events) = store.cancel(&ids).unwrap();
    assert_eq!(outcomes, vec![CancelOutcome::Cancelled; 3]);
    let stages: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.id.as_str(), e.detail.as_str()))
        .collect();
    assert!(
        stages.contains(&(pending.id.as_str(), "pending")),
        "{stages:?}"
    );
    assert!(
        stages.contains(&(scheduled.id.as_str(), "scheduled")),
        "{stages:?}"
    );
    assert!(
        stages.contains(&(grandchild.id.as_str(), "waiting")),
        "{stages:?}"
    );
    for j in [&pending, &scheduled, &waiting, &grandchild] {
        assert_at(&redis, &j.id, At::Ended("cancelled"));
    }
    assert_at(&redis, &parent.id, At::Pending);
    assert_eq!(meta(&redis, "pending").as_deref(), Some("1"));
    assert_eq!(meta(&redis, "waiting").as_deref(), Some("0"));
    assert_eq!(counters(&redis)["cancelled"], 4);
    // Again: already ended.
    let (again, _) = store.cancel(&ids[..1]).unwrap();
    assert_eq!(again, vec![CancelOutcome::Ended("cancelled".into())]);
    // The parent's completion finds its child cancelled and leaves it so.
    register(&redis, "p1");
    let got = store.claim_all("p1", 1).unwrap().unwrap();
    let done = store
        .complete("p1", &got[0], None, 60, false, &ALL)
        .unwrap();
    assert!(done.events.is_empty());
    assert_at(&redis, &waiting.id, At::Ended("cancelled"));
}

#[test]
fn a_running_job_is_marked_and_its_outcome_decides() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let (a, b, c) = (new_job(), new_job(), new_job());
    store
        .create(&[a.clone(), b.clone(), c.clone()], 100, 60)
        .unwrap();
    register(&redis, "p1");
    let got = store.claim_all("p1", 3).unwrap().unwrap();
    let ids: Vec<String> = got.iter().map(|j| j.id.clone()).collect();
    let (outcomes, events) = store.cancel(&ids).unwrap();
    assert_eq!(outcomes, vec![CancelOutcome::Cancelling; 3]);
    assert!(events.is_empty());
    assert_eq!(store.cancel_requested(&ids).unwrap(), ids);
    // A failed attempt ends cancelled, not retried.
    let failed = fail_retry(&mut store, &got[0], "stopped");
    assert_eq!(failed, FailOutcome::Cancelled);
    assert_at(&redis, &got[0].id, At::Ended("cancelled"));
    assert_eq!(
        field(&redis, &got[0].id, "error").as_deref(),
        Some("stopped")
    );
    // One that finished anyway is completed.
    store
        .complete("p1", &got[1], None, 60, false, &ALL)
        .unwrap();
    assert_at(&redis, &got[1].id, At::Done);
    // One its process hands back in a drain ends cancelled too.
    let back = store.requeue_all("p1").unwrap();
    assert!(back.ids.is_empty());
    assert_eq!(back.events.len(), 1);
    assert_at(&redis, &got[2].id, At::Ended("cancelled"));
    assert!(store.cancel_requested(&ids).unwrap().is_empty());
    let c = counters(&redis);
    assert_eq!((c["cancelled"], c["running"]), (2, 0), "{c:?}");
}

#[test]
fn a_dead_process_s_cancelled_job_is_ended_by_the_reaper() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let job = new_job();
    store.create(std::slice::from_ref(&job), 100, 60).unwrap();
    store
        .heartbeat("p1", Duration::from_millis(300), "{}", None)
        .unwrap();
    store.claim_all("p1", 1).unwrap().unwrap();
    store.cancel(&[job.id.to_string()]).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let reaped = store.reap("p1", "died", 100).unwrap().expect("expired");
    assert!(reaped.requeued.is_empty() && reaped.dead.is_empty());
    assert_eq!(reaped.events.len(), 1);
    assert_at(&redis, &job.id, At::Ended("cancelled"));
}

#[test]
fn a_job_past_its_start_deadline_ends_expired_when_claimed() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let now = chrono::Utc::now().timestamp_micros();
    let late = NewJob {
        expires_at_us: Some(now - 1_000_000),
        ..new_job()
    };
    let child = child_of(&[&late]);
    let fine = NewJob {
        expires_at_us: Some(now + 600_000_000),
        ..new_job()
    };
    store
        .create(&[late.clone(), child.clone(), fine.clone()], 100, 60)
        .unwrap();
    register(&redis, "p1");
    let batch = store.claim("p1", 2, &ALL).unwrap().unwrap();
    assert_eq!(batch.jobs.len(), 1);
    assert_eq!(batch.jobs[0].id, fine.id.as_str());
    let kinds: Vec<EventKind> = batch.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::Expired, EventKind::Cancelled]);
    assert_at(&redis, &late.id, At::Ended("expired"));
    assert_at(&redis, &child.id, At::Ended("cancelled"));
    assert_eq!(field(&redis, &late.id, "attempt"), None, "never started");
    assert_eq!(meta(&redis, "pending").as_deref(), Some("0"));
    assert_eq!(counters(&redis)["expired"], 1);
}

#[test]
fn a_unique_key_is_held_until_the_job_ends() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let unique = |k: &str| NewJob {
        unique_key: Some(k.into()),
        max_attempts: 1,
        ..new_job()
    };
    let first = unique("u");
    store.create(std::slice::from_ref(&first), 100, 60).unwrap();
    let refused = store.create(&[unique("u")], 100, 60).unwrap();
    assert_eq!(
        refused,
        CreateOutcome::UniqueTaken {
            key: "u".into(),
            holder: first.id.to_string()
        }
    );
    // Two of one key in a batch: none is created.
    let pair = store.create(&[unique("v"), unique("v")], 100, 60).unwrap();
    assert_eq!(
        pair,
        CreateOutcome::UniqueTaken {
            key: "v".into(),
            holder: String::new()
        }
    );
    // Released when it enters the DLQ, or is cancelled.
    register(&redis, "p1");
    let got = store.claim_all("p1", 1).unwrap().unwrap();
    fail_retry(&mut store, &got[0], "no");
    assert_at(&redis, &first.id, At::Dlq);
    let second = unique("u");
    store
        .create(std::slice::from_ref(&second), 100, 60)
        .unwrap();
    store.cancel(&[second.id.to_string()]).unwrap();
    let third = unique("u");
    assert!(matches!(
        store.create(std::slice::from_ref(&third), 100, 60).unwrap(),
        CreateOutcome::Created(_)
    ));
    let held: Option<String> = redis.raw().get(key("uniq:u")).unwrap();
    assert_eq!(held.as_deref(), Some(third.id.as_str()));
}

#[test]
fn bulk_cancel_counts_then_cancels_what_the_filter_selects() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let mail = |kind: &str| NewJob {
        kind: kind.into(),
        queue: "mail".into(),
        ..new_job()
    };
    store
        .create(&[mail("a"), mail("a"), mail("b"), new_job()], 100, 60)
        .unwrap();
    let filter = JobFilter {
        queue: Some("mail".into()),
        job_type: Some("a".into()),
        statuses: vec!["pending".into(), "scheduled".into()],
        ..JobFilter::default()
    };
    let (n, more, _, events) = store.cancel_matching(&filter, true, 10).unwrap();
    assert_eq!((n, more, events.len()), (2, false, 0));
    let (n, more, _, _) = store.cancel_matching(&filter, false, 1).unwrap();
    assert_eq!((n, more), (1, true));
    let (n, _, _, _) = store.cancel_matching(&filter, false, 10).unwrap();
    assert_eq!(n, 1);
    let pending: Option<String> = redis.raw().hget(key("q:{mail}:meta"), "pending").unwrap();
    assert_eq!(pending.as_deref(), Some("1"));
}
