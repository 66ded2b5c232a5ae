//! Partitions on one Redis: where creates land, ids routing to their partition, claims from
//! every partition, and the fan-out reads summing what each holds.

use redis::Commands;

use super::*;
use crate::store::{
    partitions::partition_prefix, Ack, CreateOutcome, Index, JobFilter, Outcome, Place, Stores,
};

fn stores(redis: &TestRedis, n: u32) -> Stores {
    redis.backend().with_partitions(n).open()
}

/// The partitions' prefixes, partition 0 first.
fn prefixes(redis: &TestRedis) -> Vec<String> {
    let tags: Vec<String> = redis.raw().lrange(key("partitions"), 0, -1).unwrap();
    std::iter::once(PREFIX.to_string())
        .chain(
            tags.iter()
                .map(|t| partition_prefix(PREFIX, u16::from_str_radix(t, 16).unwrap())),
        )
        .collect()
}

fn pending_in(redis: &TestRedis, prefix: &str, queue: &str) -> i64 {
    redis
        .raw()
        .llen(format!("{prefix}:q:{{{queue}}}:ready:normal"))
        .unwrap()
}

#[test]
fn creates_spread_over_the_partitions_and_every_read_finds_them() {
    let redis = TestRedis::start();
    let mut s = stores(&redis, 3);
    assert_eq!(s.partitions().unwrap(), 3);
    let p = prefixes(&redis);
    assert_eq!(p.len(), 3);
    assert!(p[1].starts_with("{jobq~") && p[1].ends_with('}'), "{p:?}");

    // One at a time, as single submissions: in turn over the three.
    let mut ids = Vec::new();
    for _ in 0..30 {
        let mut job = [new_job()];
        s.place(&mut job).unwrap();
        match s.create(&job, 1000, 60).unwrap() {
            CreateOutcome::Created(c) => ids.push(c[0].id.clone()),
            other => panic!("{other:?}"),
        }
    }
    for prefix in &p {
        assert_eq!(pending_in(&redis, prefix, "default"), 10, "{prefix}");
    }
    // An id names its partition: its record is there.
    for id in &ids {
        assert!(s.job(id).unwrap().is_some(), "{id}");
        let holders = p
            .iter()
            .filter(|prefix| redis.raw().exists(format!("{prefix}:job:{id}")).unwrap())
            .count();
        assert_eq!(holders, 1);
    }
    assert_eq!(s.stats().unwrap().pending_jobs, 30);
    assert_eq!(s.queues(None).unwrap()[0].pending, 30);

    // The explorer goes through every partition, a page at a time.
    let mut seen = Vec::new();
    let mut from: Option<Place> = None;
    for _ in 0..50 {
        let w = s
            .explore(
                Index::Journal,
                &JobFilter::default(),
                from.as_ref(),
                7,
                1000,
            )
            .unwrap();
        seen.extend(w.ids);
        match w.next {
            Some(next) => from = Some(next),
            None => break,
        }
    }
    seen.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(seen, want);

    // A worker claims from all three and each outcome goes home: a group commit of a claim's
    // jobs sends each partition its share.
    s.heartbeat("w1", Duration::from_secs(30), "{}", None)
        .unwrap();
    let mut done = 0;
    while done < 30 {
        let batch = s
            .claim_in("w1", 8, &ALL, None)
            .unwrap()
            .expect("registered");
        assert!(!batch.jobs.is_empty(), "jobs left to claim");
        let ok = Outcome::Completed {
            result: None,
            ttl_secs: 60,
        };
        let acks: Vec<Ack> = batch
            .jobs
            .iter()
            .map(|job| {
                assert_eq!(job.part, s.layout().unwrap().part_of_id(&job.id));
                Ack::new(job, ok.clone(), false)
            })
            .collect();
        for acked in s.ack("w1", &acks, &ALL) {
            assert!(acked.and_then(|a| a.completed()).unwrap().outcome);
            done += 1;
        }
    }
    let stats = s.stats().unwrap();
    assert_eq!((stats.completed_jobs, stats.pending_jobs), (30, 0));
}

#[test]
fn a_key_picks_one_partition_and_a_parent_elsewhere_is_refused() {
    let redis = TestRedis::start();
    let mut s = stores(&redis, 3);
    let keyed = || {
        let mut j = new_job();
        j.idempotency_key = Some("order-42".into());
        j
    };
    let mut first = [keyed()];
    s.place(&mut first).unwrap();
    let CreateOutcome::Created(a) = s.create(&first, 1000, 60).unwrap() else {
        panic!()
    };
    let mut again = [keyed()];
    s.place(&mut again).unwrap();
    let CreateOutcome::Created(b) = s.create(&again, 1000, 60).unwrap() else {
        panic!()
    };
    assert_eq!(
        a[0].id, b[0].id,
        "the repeat met the first in its partition"
    );
    assert!(!b[0].new);

    // A child names its parent: it is created beside it.
    let mut child = new_job();
    child.parents = vec![a[0].id.clone()];
    let mut child = [child];
    s.place(&mut child).unwrap();
    let l = s.layout().unwrap();
    assert_eq!(l.part_of_id(&child[0].id), l.part_of_id(&a[0].id));
    assert!(matches!(
        s.create(&child, 1000, 60).unwrap(),
        CreateOutcome::Created(_)
    ));

    // Two parents in two partitions cannot both be had.
    let mut others = Vec::new();
    while others.len() < 2 {
        let mut j = [new_job()];
        s.place(&mut j).unwrap();
        let CreateOutcome::Created(c) = s.create(&j, 1000, 60).unwrap() else {
            panic!()
        };
        if others
            .iter()
            .all(|o: &String| l.part_of_id(o) != l.part_of_id(&c[0].id))
        {
            others.push(c[0].id.clone());
        }
    }
    let mut torn = new_job();
    torn.parents = others.clone();
    let mut torn = [torn];
    s.place(&mut torn).unwrap();
    assert!(matches!(
        s.create(&torn, 1000, 60).unwrap(),
        CreateOutcome::ParentElsewhere { .. }
    ));
}

#[test]
fn a_second_process_reads_the_partitions_the_first_made() {
    let redis = TestRedis::start();
    assert_eq!(stores(&redis, 4).partitions().unwrap(), 4);
    // Asking for fewer changes nothing: the partitions that exist are served.
    assert_eq!(stores(&redis, 1).partitions().unwrap(), 4);
    assert_eq!(stores(&redis, 2).partitions().unwrap(), 4);
    let tags: Vec<String> = redis.raw().lrange(key("partitions"), 0, -1).unwrap();
    assert_eq!(tags.len(), 3);
}

#[test]
fn jobs_claimed_before_a_partition_fails_are_handed_over() {
    let redis = TestRedis::start();
    let mut s = stores(&redis, 3);
    assert_eq!(s.partitions().unwrap(), 3);
    let p = prefixes(&redis);
    for _ in 0..3 {
        let mut job = [new_job()];
        s.place(&mut job).unwrap();
        assert!(matches!(
            s.create(&job, 1000, 60).unwrap(),
            CreateOutcome::Created(_)
        ));
    }
    s.heartbeat("w1", Duration::from_secs(30), "{}", None)
        .unwrap();
    // The last partition does not know the process (its heartbeat lost in a failover, say):
    // the first two's jobs, claimed into their running lists, still come back.
    let _: () = redis.raw().del(format!("{}:worker:w1", p[2])).unwrap();
    let batch = s
        .claim_in("w1", 8, &ALL, None)
        .unwrap()
        .expect("the jobs claimed");
    let parts: Vec<usize> = batch.jobs.iter().map(|j| j.part).collect();
    assert_eq!(parts, [0, 1]);
    assert_eq!(s.held("w1").unwrap().len(), 2);
    // Once it is known there again, its job is claimed too.
    s.heartbeat("w1", Duration::from_secs(30), "{}", None)
        .unwrap();
    let batch = s
        .claim_in("w1", 8, &ALL, None)
        .unwrap()
        .expect("registered");
    let parts: Vec<usize> = batch.jobs.iter().map(|j| j.part).collect();
    assert_eq!(parts, [2]);
}

#[test]
fn a_process_sees_when_another_has_added_partitions() {
    let redis = TestRedis::start();
    let mut first = stores(&redis, 1);
    assert_eq!(first.partitions().unwrap(), 1);
    assert_eq!(first.partitions_listed().unwrap(), 1);
    // A process started later with QUEUE_PARTITIONS=3 adds two.
    assert_eq!(stores(&redis, 3).partitions().unwrap(), 3);
    assert_eq!(first.partitions_listed().unwrap(), 3);
    assert_eq!(first.partitions().unwrap(), 1, "served until a restart");
}
