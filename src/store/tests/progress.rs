//! `progress.lua`: a progress report is written only while the job runs under the claim that
//! reports it, and never brings back a record that is gone.

use super::*;
use redis::Commands;

#[test]
fn progress_is_written_only_while_running_under_the_claim() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let job = new_job();
    store.create(std::slice::from_ref(&job), 100, 60).unwrap();
    // Pending: not yet running, nothing written.
    assert!(!store.set_progress(&job.id, "1", 10, "early").unwrap());
    assert_eq!(field(&redis, &job.id, "progress"), None);

    register(&redis, "p1");
    let claim = store.claim_all("p1", 1).unwrap().unwrap().remove(0);
    assert!(!store
        .set_progress(&job.id, "999", 10, "another claim")
        .unwrap());
    assert_eq!(field(&redis, &job.id, "progress"), None);
    let updated = field(&redis, &job.id, "updated_at");
    assert!(store
        .set_progress(&job.id, &claim.claim, 40, "resizing \"a/b\" é")
        .unwrap());
    let stored = field(&redis, &job.id, "progress").unwrap();
    let v: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(v["percent"], 40);
    assert_eq!(v["message"], "resizing \"a/b\" é");
    assert!(v["at"].as_i64().unwrap() > 1_700_000_000_000, "{stored}");
    assert_eq!(
        field(&redis, &job.id, "updated_at"),
        updated,
        "not a change of status"
    );
    let shown = store.job(&job.id).unwrap().unwrap().progress.unwrap();
    assert_eq!(
        (shown.percent, shown.message.as_str()),
        (40, "resizing \"a/b\" é")
    );
    assert_at(&redis, &job.id, At::Running("p1"));

    // Finished: the job has moved on, a late report changes nothing.
    store.complete("p1", &claim, None, 60, false, &ALL).unwrap();
    assert!(!store
        .set_progress(&job.id, &claim.claim, 90, "late")
        .unwrap());
    assert_eq!(
        field(&redis, &job.id, "progress").as_deref(),
        Some(stored.as_str())
    );
    assert_at(&redis, &job.id, At::Done);

    // Expired or deleted: no record is created.
    let _: () = redis.raw().del(key(&format!("job:{}", job.id))).unwrap();
    assert!(!store
        .set_progress(&job.id, &claim.claim, 95, "later")
        .unwrap());
    let exists: bool = redis.raw().exists(key(&format!("job:{}", job.id))).unwrap();
    assert!(!exists);
}
