//! Every store transition against a real Redis (a private redis-server per test, see
//! `test_redis.rs`). After each transition the job's place is checked: a job id is in exactly
//! one of its queue's ready lists (or its type's parking list), its queue's scheduled set, one
//! running list or the DLQ (or in none once completed), and its record's status agrees.

mod claims;
mod create;
mod dlq;
mod ends;
mod events;
mod explore;
mod flow;
mod group_commit;
mod groups;
mod history;
mod outcomes;
mod partitions;
mod progress;
mod recovery;
mod schedules;
mod workers;

use redis::Commands;
use std::collections::HashMap;
use std::time::Duration;

use super::test_redis::{TestRedis, PREFIX};
use super::{Claimed, FailMode, FailOutcome, Selection, Store, StoreError};
use crate::job::{NewJob, Priority};

/// Every queue, as a process without QUEUES serves them.
const ALL: Selection = Selection::All;

/// `Store::claim` from every queue, the jobs only.
trait ClaimAll {
    fn claim_all(&mut self, w: &str, n: usize) -> Result<Option<Vec<Claimed>>, StoreError>;
}

impl ClaimAll for Store {
    fn claim_all(&mut self, w: &str, n: usize) -> Result<Option<Vec<Claimed>>, StoreError> {
        Ok(self.claim(w, n, &ALL)?.map(|b| b.jobs))
    }
}

/// Where a job should be.
#[derive(Debug, Clone, PartialEq, Eq)]
enum At {
    Pending,
    Scheduled,
    Running(&'static str),
    Dlq,
    /// Completed: in no list, status `completed`.
    Done,
    /// Waiting for its parents: in its queue's waiting set only.
    Waiting,
    /// Ended cancelled or expired: in no list, that status.
    Ended(&'static str),
}

fn key(name: &str) -> String {
    format!("{PREFIX}:{name}")
}

/// A submission with defaults: no delay, 3 attempts.
fn new_job() -> NewJob {
    NewJob::plain("noop")
}

/// Writes `worker`'s heartbeat, as a process does before it claims.
fn register(redis: &TestRedis, worker: &str) {
    redis
        .store()
        .heartbeat(worker, Duration::from_secs(30), "{}", None)
        .unwrap();
}

/// Checks the invariant for `id`: exactly the one place `want`, and the status that goes with
/// it.
#[track_caller]
fn assert_at(redis: &TestRedis, id: &str, want: At) {
    let mut r = redis.raw();
    let mut places = Vec::new();
    // KEYS is fine here: a test's private Redis holds a handful of keys.
    let mut ready: Vec<String> = r.keys(key("q:*:ready:*")).unwrap();
    ready.extend(r.keys::<_, Vec<String>>(key("q:*:g:*")).unwrap());
    ready.extend(r.keys::<_, Vec<String>>(key("t:*:parked")).unwrap());
    for list in ready {
        let ids: Vec<String> = r.lrange(&list, 0, -1).unwrap();
        places.extend(
            ids.iter()
                .filter(|p| *p == id)
                .map(|_| "pending".to_string()),
        );
    }
    for set in r.keys::<_, Vec<String>>(key("q:*:scheduled")).unwrap() {
        let scheduled: Option<f64> = r.zscore(&set, id).unwrap();
        places.extend(scheduled.map(|_| "scheduled".to_string()));
    }
    for set in r.keys::<_, Vec<String>>(key("q:*:waiting")).unwrap() {
        let member: bool = r.sismember(&set, id).unwrap();
        places.extend(member.then(|| "waiting".to_string()));
    }
    let dlq: Option<f64> = r.zscore(key("dlq"), id).unwrap();
    places.extend(dlq.map(|_| "dlq".to_string()));
    let running: Vec<String> = r.keys(key("running:*")).unwrap();
    for list in running {
        let ids: Vec<String> = r.lrange(&list, 0, -1).unwrap();
        places.extend(ids.iter().filter(|i| *i == id).map(|_| list.clone()));
    }
    let status: Option<String> = r.hget(key(&format!("job:{id}")), "status").unwrap();
    let (place, status_want) = match want {
        At::Pending => (Some("pending".to_string()), "pending"),
        At::Scheduled => (Some("scheduled".to_string()), "pending"),
        At::Running(w) => (Some(key(&format!("running:{w}"))), "running"),
        At::Dlq => (Some("dlq".to_string()), "failed"),
        At::Done => (None, "completed"),
        At::Waiting => (Some("waiting".to_string()), "waiting"),
        At::Ended(status) => (None, status),
    };
    assert_eq!(
        places,
        place.into_iter().collect::<Vec<_>>(),
        "where {id} is"
    );
    assert_eq!(status.as_deref(), Some(status_want), "status of {id}");
}

/// Fails process p1's attempt `claim` with `message`, to be retried 10 ms later (DLQ cap 100,
/// 5 snoozes): what the store does with it (retried, dead, cancelled) is the outcome.
pub(super) fn fail_retry(store: &mut Store, claim: &Claimed, message: &str) -> FailOutcome {
    store
        .fail(
            "p1",
            claim,
            message,
            10,
            FailMode::Retry,
            (100, 5),
            false,
            &ALL,
        )
        .unwrap()
        .outcome
}

/// Creates a job of `kind`, claims the oldest pending job (that one, unless jobs retried from
/// the DLQ wait before it) and fails it for good with `message`, the DLQ capped at `cap`.
/// Returns the id of the job buried.
pub(super) fn bury(redis: &TestRedis, kind: &str, message: &str, cap: u64) -> String {
    let mut store = redis.store();
    register(redis, "p1");
    let job = NewJob {
        kind: kind.into(),
        ..new_job()
    };
    store.create(std::slice::from_ref(&job), 100, 60).unwrap();
    let claim = store.claim_all("p1", 1).unwrap().unwrap().remove(0);
    store
        .fail(
            "p1",
            &claim,
            message,
            10,
            FailMode::Permanent,
            (cap, 100),
            false,
            &ALL,
        )
        .unwrap();
    claim.id.to_string()
}

/// A field of a job's record.
fn field(redis: &TestRedis, id: &str, name: &str) -> Option<String> {
    redis.raw().hget(key(&format!("job:{id}")), name).unwrap()
}

/// The counters hash the scripts keep.
fn counters(redis: &TestRedis) -> HashMap<String, u64> {
    redis.raw().hgetall(key("counters")).unwrap()
}
