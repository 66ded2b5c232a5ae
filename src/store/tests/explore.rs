//! The explorer's walks: the journal across its hourly lists (an expired hour dropped), and
//! the DLQ through entries that share one score, each page going on exactly where the last
//! stopped.

use redis::Commands;

use super::*;
use crate::store::{Index, JobFilter, Place};

/// Every id a walk keeps, `want` per call, following its place to the end.
fn walk_all(store: &mut Store, index: Index, want: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut from: Option<Place> = None;
    for _ in 0..100 {
        let w = store
            .explore(index, &JobFilter::default(), from.as_ref(), want, 1000)
            .unwrap();
        out.extend(w.ids);
        match w.next {
            Some(p) => from = Some(p),
            None => return out,
        }
    }
    panic!("the walk did not end");
}

#[test]
fn the_journal_walks_newest_first_across_hours_and_drops_an_expired_hour() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let first: Vec<NewJob> = (0..3).map(|_| new_job()).collect();
    store.create(&first, 100, 60).unwrap();
    // Move the first three into the hour before, as if created then, and name an hour whose
    // list has expired.
    let mut r = redis.raw();
    let hours: Vec<i64> = r.zrange(key("jl"), 0, -1).unwrap();
    assert_eq!(hours.len(), 1);
    let h = hours[0];
    let _: () = r
        .rename(key(&format!("jl:{h}")), key(&format!("jl:{}", h - 1)))
        .unwrap();
    let _: () = r.zrem(key("jl"), h).unwrap();
    let _: () = r.zadd(key("jl"), h - 1, h - 1).unwrap();
    let _: () = r.zadd(key("jl"), h - 5, h - 5).unwrap();
    let second: Vec<NewJob> = (0..2).map(|_| new_job()).collect();
    store.create(&second, 100, 60).unwrap();

    let walked = walk_all(&mut store, Index::Journal, 2);
    let want: Vec<String> = second
        .iter()
        .rev()
        .chain(first.iter().rev())
        .map(|j| j.id.to_string())
        .collect();
    assert_eq!(walked, want);
    let left: Vec<i64> = r.zrange(key("jl"), 0, -1).unwrap();
    assert_eq!(left, [h - 1, h], "the expired hour is dropped");
    let ttl: i64 = r.ttl(key(&format!("jl:{h}"))).unwrap();
    assert!(
        ttl > 604_800 && ttl <= 608_400,
        "an hour's list lives JOB_TTL_SECS (7 days here) plus an hour: {ttl}"
    );
}

#[test]
fn the_dlq_walk_goes_on_through_entries_with_one_score() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let ids: Vec<String> = (0..7)
        .map(|i| bury(&redis, "t", &format!("e{i}"), 100))
        .collect();
    // Five of them entered the DLQ in one step: one score.
    let mut r = redis.raw();
    for id in &ids[1..6] {
        let _: () = r.zadd(key("dlq"), id, 5_000_000).unwrap();
    }
    for want in [1, 2, 3, 7] {
        let walked = walk_all(&mut store, Index::Dlq, want);
        assert_eq!(walked.len(), 7, "want {want}: {walked:?}");
        let mut sorted = walked.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 7, "want {want}: no id twice");
        assert_eq!(walked[0], ids[6], "newest first");
    }
}
