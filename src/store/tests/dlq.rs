//! The dead-letter queue (`dlq_page.lua`, `dlq_retry.lua`, `dlq_delete.lua`) and `stats.lua`.

use super::*;
use crate::job::JobStatus;
use crate::store::{DlqSelect, Stats};

/// Creates `n` jobs of `kind` and sends each to the DLQ with a permanent failure; their ids.
fn buried(redis: &TestRedis, kind: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let id = bury(redis, kind, "no", 100);
            assert_at(redis, &id, At::Dlq);
            id
        })
        .collect()
}

#[test]
fn the_dlq_pages_newest_first_and_answers_for_one_job() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let jobs = buried(&redis, "noop", 3);
    let (total, page) = store.dlq_page(0, 2).unwrap();
    assert_eq!(total, 3);
    let ids: Vec<&str> = page.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, [jobs[2].as_str(), jobs[1].as_str()]);
    assert!(page.iter().all(|j| j.status == JobStatus::Failed));
    assert_eq!(store.dlq_page(2, 2).unwrap().1.len(), 1);

    assert_eq!(
        store.dlq_job(&jobs[0]).unwrap().unwrap().id.as_str(),
        jobs[0]
    );
    let alive = new_job();
    store.create(std::slice::from_ref(&alive), 100, 60).unwrap();
    assert_eq!(store.dlq_job(&alive.id).unwrap(), None, "not in the DLQ");
}

#[test]
fn dlq_retry_sends_jobs_back_with_attempts_reset() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let noops = buried(&redis, "noop", 2);
    let mails = buried(&redis, "email", 2);
    assert_eq!(
        store.dlq_retry(DlqSelect::One(&noops[0])).unwrap(),
        vec![noops[0].to_string()]
    );
    assert_at(&redis, &noops[0], At::Pending);
    assert_eq!(field(&redis, &noops[0], "attempt").as_deref(), Some("0"));
    let mut retried = store.dlq_retry(DlqSelect::Type("email")).unwrap();
    retried.sort();
    let mut want = vec![mails[0].to_string(), mails[1].to_string()];
    want.sort();
    assert_eq!(retried, want);
    for m in &mails {
        assert_at(&redis, m, At::Pending);
    }
    assert_at(&redis, &noops[1], At::Dlq);
    assert!(store
        .dlq_retry(DlqSelect::One(&mails[0]))
        .unwrap()
        .is_empty());
    assert_eq!(
        store.dlq_retry(DlqSelect::All).unwrap(),
        vec![noops[1].to_string()]
    );
    assert_eq!(store.stats().unwrap().dlq_size, 0);
}

#[test]
fn dlq_delete_removes_jobs_and_their_records() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let noops = buried(&redis, "noop", 2);
    let mails = buried(&redis, "email", 1);
    assert_eq!(store.dlq_delete(DlqSelect::One(&noops[0])).unwrap(), 1);
    assert_eq!(field(&redis, &noops[0], "status"), None);
    assert_eq!(store.dlq_delete(DlqSelect::Type("email")).unwrap(), 1);
    assert_eq!(field(&redis, &mails[0], "status"), None);
    assert_at(&redis, &noops[1], At::Dlq);
    assert_eq!(store.dlq_delete(DlqSelect::All).unwrap(), 1);
    assert_eq!(store.dlq_delete(DlqSelect::All).unwrap(), 0);
    assert_eq!(store.dlq_page(0, 10).unwrap(), (0, Vec::new()));
}

#[test]
fn stats_count_every_state() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    assert_eq!(store.stats().unwrap(), Stats::default());
    buried(&redis, "noop", 1);
    let jobs: Vec<NewJob> = (0..3).map(|_| new_job()).collect();
    store.create(&jobs, 100, 60).unwrap();
    let delayed = NewJob {
        delay_ms: 60_000,
        ..new_job()
    };
    store
        .create(std::slice::from_ref(&delayed), 100, 60)
        .unwrap();
    let claim = store.claim_all("p1", 1).unwrap().unwrap().remove(0);
    store.complete("p1", &claim, None, 60, false, &ALL).unwrap();
    store.claim_all("p1", 1).unwrap().unwrap();
    let stats = store.stats().unwrap();
    let default = stats.queues.get("default").cloned().expect("queue default");
    assert_eq!(
        stats,
        Stats {
            total_jobs: 5,
            pending_jobs: 1,
            running_jobs: 1,
            completed_jobs: 1,
            failed_jobs: 1,
            dlq_size: 1,
            scheduled_jobs: 1,
            waiting_jobs: 0,
            cancelled_jobs: 0,
            expired_jobs: 0,
            queues: [("default".to_string(), default.clone())].into(),
        }
    );
    assert_eq!(
        (
            default.pending,
            default.scheduled,
            default.running,
            default.failed
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(counters(&redis).get("created"), Some(&5));
    store.ping().unwrap();
}
