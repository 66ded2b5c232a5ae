//! `workers.lua`: the live processes with their heartbeats, the age of each beat by Redis's
//! clock, and the start time and progress of the jobs each lists; expired heartbeats left out.

use super::*;
use redis::Commands;

#[test]
fn live_processes_carry_their_heartbeat_its_age_and_their_jobs() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let job = new_job();
    store.create(std::slice::from_ref(&job), 100, 60).unwrap();
    register(&redis, "p1");
    let claimed = store.claim_all("p1", 1).unwrap().unwrap().remove(0);
    assert!(store
        .set_progress(&job.id, &claimed.claim, 30, "half way")
        .unwrap());
    let beat = format!(
        r#"{{"workers":2,"busy":1,"ttl_ms":30000,"jobs":[{{"id":"{}","type":"noop","queue":"default","started_ms":1}},{{"id":"gone"}}]}}"#,
        job.id
    );
    store
        .heartbeat("p1", Duration::from_secs(30), &beat, None)
        .unwrap();
    store
        .heartbeat(
            "p2",
            Duration::from_secs(30),
            r#"{"workers":1,"jobs":[]}"#,
            None,
        )
        .unwrap();
    // A process that died: still registered, its heartbeat expired.
    store
        .heartbeat("p0", Duration::from_millis(50), "{}", None)
        .unwrap();
    std::thread::sleep(Duration::from_millis(120));

    let live = store.live_processes().unwrap();
    let ids: Vec<&str> = live.processes.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["p1", "p2"], "by id, the expired one left out");
    let redis_now: (i64, i64) = redis::cmd("TIME").query(&mut redis.raw()).unwrap();
    let redis_now_us = redis_now.0 * 1_000_000 + redis_now.1;
    assert!(
        (redis_now_us - live.now_us).abs() < 5_000_000,
        "Redis's clock: {} vs {redis_now_us}",
        live.now_us
    );
    let p1 = &live.processes[0];
    assert_eq!(p1.beat, beat);
    assert!(
        p1.pttl_ms > 25_000 && p1.pttl_ms <= 30_000,
        "{}",
        p1.pttl_ms
    );
    assert_eq!(p1.jobs.len(), 2, "one entry per listed job");
    let started: i64 = field(&redis, &job.id, "started_at")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        p1.jobs[0].0,
        Some(started),
        "the record's start, Redis's clock"
    );
    let progress: serde_json::Value =
        serde_json::from_str(p1.jobs[0].1.as_deref().unwrap()).unwrap();
    assert_eq!(progress["message"], "half way");
    assert_eq!(p1.jobs[1], (None, None), "a record that is gone");
    assert!(live.processes[1].jobs.is_empty());

    // Reaped or shut down: no longer registered, not listed.
    store.deregister("p2").unwrap();
    let _: () = redis.raw().srem(key("workers"), "p0").unwrap();
    let live = store.live_processes().unwrap();
    assert_eq!(live.processes.len(), 1);
    assert_at(&redis, &job.id, At::Running("p1"));
}
