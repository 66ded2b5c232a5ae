//! The schedule scripts: a schedule's document and fire time (`schedule_put`,
//! `schedule_control`), and `fire.lua`: exactly one job per tick however many processes try,
//! missed ticks, overlap, a full queue, triggers. A job a tick makes is in its queue like any
//! created job.

use super::*;
use crate::store::{Control, ControlOutcome, DueTick, Fired, PutOutcome, Source, Tick};

const SEC: i64 = 1_000_000;

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// A schedule `name` whose next tick is at `first`.
fn put(store: &mut Store, name: &str, spec: &str, source: Source, first: i64) -> PutOutcome {
    store
        .put_schedule(name, spec, "* * * * * * UTC", source, first)
        .unwrap()
}

const SPEC: &str = r#"{"cron":"* * * * * *","job":{"type":"noop"}}"#;

/// The one due tick of the test's schedule.
fn due(store: &mut Store) -> DueTick {
    let d = store.due_ticks(10).unwrap();
    assert_eq!(d.due.len(), 1, "{d:?}");
    d.due[0].clone()
}

/// The tick as the scheduler computes it for a per-second schedule, judged at `now`.
fn tick<'a>(t: &'a DueTick, now: i64, overlap: &'a str, missed: &'a str) -> Tick<'a> {
    let future = (now / SEC + 1) * SEC;
    Tick {
        due: t,
        next_us: t.fire_us + SEC,
        future_us: future,
        ticks: ((future - t.fire_us) / SEC) as u64,
        grace_us: 2 * SEC,
        overlap,
        missed,
    }
}

/// Sleeps until just after `t` (µs).
fn wait_until(t: i64) {
    std::thread::sleep(Duration::from_micros((t - now_us()).max(0) as u64 + 2000));
}

fn score(redis: &TestRedis, name: &str) -> Option<i64> {
    let s: Option<f64> = redis.raw().zscore(key("schedules:due"), name).unwrap();
    s.map(|f| f as i64)
}

fn sched_field(redis: &TestRedis, name: &str, f: &str) -> Option<String> {
    redis
        .raw()
        .hget(key(&format!("schedule:{name}")), f)
        .unwrap()
}

#[test]
fn a_put_keeps_the_fire_time_unless_the_timing_changes_and_sources_stay_apart() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let t0 = now_us() + 60 * SEC;
    assert_eq!(
        put(&mut store, "s", SPEC, Source::Api, t0),
        PutOutcome::Created
    );
    assert_eq!(score(&redis, "s"), Some(t0));
    assert_eq!(
        put(&mut store, "s", SPEC, Source::Api, t0 + SEC),
        PutOutcome::Unchanged
    );
    let other_job = r#"{"cron":"* * * * * *","job":{"type":"sleep"}}"#;
    assert_eq!(
        put(&mut store, "s", other_job, Source::Api, t0 + SEC),
        PutOutcome::Updated
    );
    assert_eq!(
        score(&redis, "s"),
        Some(t0),
        "same timing: the planned tick is kept"
    );
    assert_eq!(sched_field(&redis, "s", "rev").as_deref(), Some("2"));
    store
        .put_schedule("s", SPEC, "*/5 * * * * * UTC", Source::Api, t0 + 5 * SEC)
        .unwrap();
    assert_eq!(
        score(&redis, "s"),
        Some(t0 + 5 * SEC),
        "new timing: a new rhythm"
    );
    // The file sync cannot touch it, nor delete it.
    assert_eq!(
        put(&mut store, "s", SPEC, Source::File, t0),
        PutOutcome::Conflict("api".into())
    );
    assert_eq!(
        store
            .control_schedule("s", Control::Delete(Source::File))
            .unwrap(),
        ControlOutcome::Conflict("api".into())
    );
    // Paused: out of the due set; resumed: back at the time given.
    assert_eq!(
        store.control_schedule("s", Control::Pause).unwrap(),
        ControlOutcome::Done
    );
    assert_eq!(score(&redis, "s"), None);
    put(&mut store, "s", SPEC, Source::Api, t0);
    assert_eq!(
        score(&redis, "s"),
        None,
        "a change does not resume a paused schedule"
    );
    store
        .control_schedule("s", Control::Resume(t0 + 9 * SEC))
        .unwrap();
    assert_eq!(score(&redis, "s"), Some(t0 + 9 * SEC));
    let (_, all) = store.schedules(None).unwrap();
    assert_eq!(
        (all.len(), all[0].paused, all[0].next_us),
        (1, false, Some(t0 + 9 * SEC))
    );
    assert_eq!(
        store
            .control_schedule("s", Control::Delete(Source::Api))
            .unwrap(),
        ControlOutcome::Done
    );
    assert!(store.schedules(None).unwrap().1.is_empty());
    assert_eq!(score(&redis, "s"), None);
    assert_eq!(
        store.control_schedule("s", Control::Pause).unwrap(),
        ControlOutcome::Missing
    );
}

#[test]
fn a_tick_makes_one_job_however_many_processes_fire_it() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let fire = (now_us() / SEC) * SEC;
    put(&mut store, "s", SPEC, Source::Api, fire);
    let t = due(&mut store);
    assert_eq!(t.fire_us, fire);
    let tk = tick(&t, now_us(), "allow", "skip");
    let job = new_job();
    let Fired::Job(id) = store.fire(&tk, &job, 100).unwrap() else {
        panic!("the tick makes its job")
    };
    assert_eq!(id, job.id.as_str());
    assert_at(&redis, &id, At::Pending);
    assert_eq!(field(&redis, &id, "schedule").as_deref(), Some("s"));
    assert_eq!(field(&redis, &id, "scheduled_for"), Some(fire.to_string()));
    assert_eq!(counters(&redis)["created"], 1);
    assert_eq!(score(&redis, "s"), Some(fire + SEC));
    // A second process with the same tick in hand: nothing.
    for _ in 0..3 {
        assert_eq!(store.fire(&tk, &new_job(), 100).unwrap(), Fired::Gone);
    }
    assert_eq!(counters(&redis)["created"], 1);
    let (_, all) = store.schedules(Some("s")).unwrap();
    let last = all[0].last.clone().unwrap();
    assert_eq!((last.job_id.as_str(), last.fire_us), (id.as_str(), fire));
    assert_eq!(last.status.as_deref(), Some("pending"));
    assert_eq!(all[0].fires, 1);
    // A tick of a schedule changed since it was read: nothing.
    let t = DueTick {
        fire_us: fire + SEC,
        ..t.clone()
    };
    put(
        &mut store,
        "s",
        r#"{"cron":"* * * * * *","job":{"type":"sleep"}}"#,
        Source::Api,
        0,
    );
    let stale = tick(&t, now_us(), "allow", "skip");
    assert_eq!(store.fire(&stale, &new_job(), 100).unwrap(), Fired::Gone);
}

#[test]
fn missed_ticks_make_no_job_or_one_and_the_rhythm_resumes_after_now() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let now = now_us();
    let late = (now / SEC - 10) * SEC;
    put(&mut store, "s", SPEC, Source::Api, late);
    let t = due(&mut store);
    let tk = tick(&t, now, "allow", "skip");
    assert_eq!(
        store.fire(&tk, &new_job(), 100).unwrap(),
        Fired::Missed {
            ticks: tk.ticks,
            reason: "late".into()
        }
    );
    assert!(tk.ticks >= 10);
    assert_eq!(score(&redis, "s"), Some(tk.future_us));
    assert_eq!(counters(&redis).get("created"), None);
    assert_eq!(
        sched_field(&redis, "s", "misses"),
        Some(tk.ticks.to_string())
    );

    put(&mut store, "r", SPEC, Source::Api, late);
    let d = store.due_ticks(10).unwrap();
    let t = d.due.iter().find(|t| t.name == "r").unwrap();
    let tk = tick(t, now, "allow", "run_once");
    let job = new_job();
    assert_eq!(
        store.fire(&tk, &job, 100).unwrap(),
        Fired::CaughtUp {
            job: job.id.to_string(),
            missed: tk.ticks - 1
        }
    );
    assert_at(&redis, &job.id, At::Pending);
    assert_eq!(counters(&redis)["created"], 1);
    assert_eq!(score(&redis, "r"), Some(tk.future_us));
}

#[test]
fn overlap_skip_waits_for_the_last_job_and_a_full_queue_misses_the_tick() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let fire = (now_us() / SEC) * SEC;
    put(&mut store, "s", SPEC, Source::Api, fire);
    let first = new_job();
    let t = due(&mut store);
    assert!(matches!(
        store
            .fire(&tick(&t, now_us(), "skip", "skip"), &first, 100)
            .unwrap(),
        Fired::Job(_)
    ));
    // The next tick while the first job is still pending: skipped.
    let t = DueTick {
        fire_us: fire + SEC,
        ..t
    };
    wait_until(t.fire_us);
    assert_eq!(
        store
            .fire(&tick(&t, now_us(), "skip", "skip"), &new_job(), 100)
            .unwrap(),
        Fired::Skipped {
            running: first.id.to_string(),
            missed: 0
        }
    );
    assert_eq!(sched_field(&redis, "s", "skips").as_deref(), Some("1"));
    // Done: the next tick fires. (Its time may still be ahead of Redis's clock.)
    redis
        .raw()
        .hset::<_, _, _, ()>(key(&format!("job:{}", first.id)), "status", "completed")
        .unwrap();
    let t = DueTick {
        fire_us: fire + 2 * SEC,
        ..t
    };
    wait_until(t.fire_us);
    let next = new_job();
    assert_eq!(
        store
            .fire(&tick(&t, now_us(), "skip", "skip"), &next, 100)
            .unwrap(),
        Fired::Job(next.id.to_string())
    );
    // The queue is full (1 job waiting, room for 1): the next tick makes no job.
    let t = DueTick {
        fire_us: fire + 3 * SEC,
        ..t
    };
    wait_until(t.fire_us);
    assert_eq!(
        store
            .fire(&tick(&t, now_us(), "allow", "skip"), &new_job(), 2)
            .unwrap(),
        Fired::Missed {
            ticks: 1,
            reason: "queue_full".into()
        }
    );
    assert_eq!(score(&redis, "s"), Some(fire + 4 * SEC));
    // A trigger: a job now, whatever the rhythm; refused when the queue is full.
    let job = new_job();
    assert_eq!(store.trigger("s", &job, 2).unwrap(), Fired::Full);
    assert_eq!(
        store.trigger("s", &job, 100).unwrap(),
        Fired::Job(job.id.to_string())
    );
    assert_eq!(field(&redis, &job.id, "schedule").as_deref(), Some("s"));
    assert_eq!(score(&redis, "s"), Some(fire + 4 * SEC));
    assert_eq!(store.trigger("none", &new_job(), 100).unwrap(), Fired::Gone);
}
