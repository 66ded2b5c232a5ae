//! Failures grouped by cause (`dead.lua`: the fingerprint and the per-group index, kept by
//! `bury`, its eviction, `dlq_retry` and `dlq_delete`; `dlq_groups.lua`). After every step the
//! index is checked against the DLQ itself: each DLQ entry in exactly the group its record's
//! `fp` names, with the same time, and no other group or entry.

use redis::Commands;
use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::store::{DlqGroup, DlqSelect};

/// The normaliser and the fingerprint, alone: dead.lua after common.lua, then a line that calls them.
fn fingerprint(redis: &TestRedis, kind: &str, message: &str) -> (String, String) {
    let script = redis::Script::new(concat!(
        include_str!("../lua/common.lua"),
        include_str!("../lua/dead.lua"),
        "local p = normalise(ARGV[2]) return {p, fingerprint(ARGV[1], p)}"
    ));
    let out: Vec<String> = script
        .arg(kind)
        .arg(message)
        .invoke(&mut redis.raw())
        .unwrap();
    (out[0].clone(), out[1].clone())
}

#[test]
fn messages_that_differ_in_ids_numbers_and_quoted_values_share_a_fingerprint() {
    let redis = TestRedis::start();
    let pattern = |m: &str| fingerprint(&redis, "email", m).0;
    for (message, want) in [
        ("timeout after 30s", "timeout after <n>s"),
        ("retry 3 of 5 took 1.25 s", "retry <n> of <n> took <n> s"),
        ("user 'alice' not found", "user <str> not found"),
        (r#"column "email" is null"#, "column <str> is null"),
        ("can't reach host", "can't reach host"),
        (
            "bounce from bob.smith+x@mail.example.com",
            "bounce from <email>",
        ),
        (
            "order 3f2b8c1e-9a7d-4e2f-b1c0-5d6e7f8a9b0c failed",
            "order <id> failed",
        ),
        ("bad pointer 0xDEADbeef", "bad pointer <hex>"),
        (
            "digest 5d41402abc4b2a76b9719d911017c592 differs",
            "digest <hex> differs",
        ),
        ("request req8Kf3x2Q9 refused", "request <id> refused"),
        (
            "open /data/upload/42/img_7.png: denied",
            "open /data/upload/<n>/img_<n>.png: denied",
        ),
        (
            "connect 10.0.0.12:6379 refused",
            "connect <n>.<n>:<n> refused",
        ),
        ("  many   spaces\n\tand lines  ", "many spaces and lines"),
        ("", ""),
    ] {
        assert_eq!(pattern(message), want, "pattern of {message:?}");
    }

    let fp = |t: &str, m: &str| fingerprint(&redis, t, m).1;
    let a = fp(
        "email",
        "SMTP 550: mailbox 'ann@x.org' unavailable (id 7f3k2m9q1z)",
    );
    assert_eq!(a.len(), 16);
    assert!(a
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(
        a,
        fp(
            "email",
            "SMTP 551: mailbox 'bob@y.com' unavailable (id q9w8e7r6t5)"
        ),
        "same cause, other values"
    );
    assert_ne!(a, fp("email", "SMTP 550: relay denied"), "another cause");
    assert_ne!(
        a,
        fp(
            "report",
            "SMTP 550: mailbox 'ann@x.org' unavailable (id 7f3k2m9q1z)"
        ),
        "same message, another type"
    );
    // Only the first 500 bytes count: a long tail (a stack trace) does not split a group.
    let long = |tail: &str| format!("{}{tail}", "x".repeat(500));
    assert_eq!(fp("t", &long("a")), fp("t", &long("b")));
    // A cut inside a multi-byte character backs off to its start, keeping the text valid UTF-8.
    assert_eq!(pattern(&format!("{}é", "x".repeat(499))), "x".repeat(499));
}

/// Checks the index against the DLQ; returns each group's ids.
#[track_caller]
fn assert_index_exact(redis: &TestRedis) -> BTreeMap<String, BTreeSet<String>> {
    let mut r = redis.raw();
    let dlq: Vec<(String, f64)> = r.zrange_withscores(key("dlq"), 0, -1).unwrap();
    let mut want: BTreeMap<String, BTreeSet<(String, u64)>> = BTreeMap::new();
    for (id, score) in &dlq {
        let fp = field(redis, id, "fp").unwrap_or_else(|| panic!("{id} in the DLQ has no fp"));
        want.entry(fp)
            .or_default()
            .insert((id.clone(), *score as u64));
    }
    let described: BTreeSet<String> = r.hkeys(key("dlq:groups")).unwrap();
    assert_eq!(
        described,
        want.keys().cloned().collect::<BTreeSet<_>>(),
        "the groups described are the groups of the DLQ's jobs"
    );
    // KEYS is fine here: a test's private Redis holds a handful of keys.
    let sets: BTreeSet<String> = r.keys(key("dlq:g:*")).unwrap();
    assert_eq!(
        sets,
        want.keys()
            .map(|fp| key(&format!("dlq:g:{fp}")))
            .collect::<BTreeSet<_>>(),
        "one set per group, none left empty"
    );
    for (fp, members) in &want {
        let got: Vec<(String, f64)> = r
            .zrange_withscores(key(&format!("dlq:g:{fp}")), 0, -1)
            .unwrap();
        let got: BTreeSet<(String, u64)> = got.into_iter().map(|(id, s)| (id, s as u64)).collect();
        assert_eq!(
            &got, members,
            "group {fp}: the DLQ's entries, at their DLQ times"
        );
    }
    want.into_iter()
        .map(|(fp, m)| (fp, m.into_iter().map(|(id, _)| id).collect()))
        .collect()
}

fn group_of(redis: &TestRedis, id: &str) -> String {
    field(redis, id, "fp").expect("a fingerprint")
}

fn counts(groups: &[DlqGroup]) -> BTreeMap<String, u64> {
    groups
        .iter()
        .map(|g| (g.fingerprint.clone(), g.count))
        .collect()
}

#[test]
fn the_index_follows_every_dlq_write() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let a: Vec<String> = (0..3)
        .map(|i| bury(&redis, "email", &format!("mailbox {i} full"), 100))
        .collect();
    let b: Vec<String> = (0..2)
        .map(|i| bury(&redis, "email", &format!("host 10.0.0.{i} refused"), 100))
        .collect();
    let c: Vec<String> = (0..2)
        .map(|i| bury(&redis, "noop", &format!("mailbox {i} full"), 100))
        .collect();
    let index = assert_index_exact(&redis);
    assert_eq!(index.len(), 3, "{index:?}");
    let (fa, fb, fc) = (
        group_of(&redis, &a[0]),
        group_of(&redis, &b[0]),
        group_of(&redis, &c[0]),
    );

    let (size, groups) = store.dlq_groups(None, None).unwrap();
    assert_eq!(size, 7);
    assert_eq!(
        counts(&groups),
        [(fa.clone(), 3), (fb.clone(), 2), (fc.clone(), 2)].into()
    );
    let ga = groups.iter().find(|g| g.fingerprint == fa).unwrap();
    assert_eq!(
        (ga.kind.as_str(), ga.pattern.as_str()),
        ("email", "mailbox <n> full")
    );
    assert_eq!(ga.sample, "mailbox 2 full", "the newest job's error");
    assert!(ga.first_seen < ga.last_seen);

    // Retry one, then a type (taking group c whole), then a group; delete one, then all.
    store.dlq_retry(DlqSelect::One(&a[0])).unwrap();
    assert_eq!(
        field(&redis, &a[0], "fp"),
        None,
        "a retried job leaves its group"
    );
    assert_index_exact(&redis);
    store.dlq_retry(DlqSelect::Type("noop")).unwrap();
    assert_index_exact(&redis);
    assert!(!store
        .dlq_groups(None, None)
        .unwrap()
        .1
        .iter()
        .any(|g| g.fingerprint == fc));
    let retried = store
        .dlq_retry(DlqSelect::Group {
            fingerprint: &fb,
            upto: None,
        })
        .unwrap();
    assert_eq!(retried.len(), 2);
    for id in &b {
        assert_at(&redis, id, At::Pending);
    }
    assert_index_exact(&redis);
    assert_eq!(store.dlq_delete(DlqSelect::One(&a[1])).unwrap(), 1);
    assert_index_exact(&redis);
    // Buried again, a retried job is filed anew (by its new error).
    let again = bury(&redis, "email", "mailbox 9 full", 100);
    assert_eq!(again, a[0], "the oldest pending job");
    assert_eq!(group_of(&redis, &again), fa);
    assert_index_exact(&redis);
    assert_eq!(store.dlq_delete(DlqSelect::Type("email")).unwrap(), 2);
    assert_index_exact(&redis);
    bury(&redis, "email", "mailbox 1 full", 100);
    assert_eq!(store.dlq_delete(DlqSelect::All).unwrap(), 1);
    assert!(assert_index_exact(&redis).is_empty());
    bury(&redis, "email", "mailbox 1 full", 100);
    assert_eq!(store.dlq_retry(DlqSelect::All).unwrap().len(), 1);
    assert!(assert_index_exact(&redis).is_empty());
    assert_eq!(store.dlq_groups(None, None).unwrap(), (0, Vec::new()));
}

#[test]
fn eviction_and_the_reaper_keep_the_index_exact() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let old = bury(&redis, "email", "old cause 1", 3);
    bury(&redis, "email", "new cause 1", 3);
    bury(&redis, "email", "new cause 2", 3);
    let fold = group_of(&redis, &old);
    bury(&redis, "email", "new cause 3", 3);
    assert_eq!(field(&redis, &old, "status"), None, "evicted");
    let index = assert_index_exact(&redis);
    assert_eq!(index.len(), 1, "the evicted job's group went with it");
    assert!(!index.contains_key(&fold));

    // The reaper buries a dead process's jobs with its message.
    let job = NewJob {
        max_attempts: 1,
        ..new_job()
    };
    store.create(std::slice::from_ref(&job), 100, 60).unwrap();
    register(&redis, "p2");
    store.claim_all("p2", 1).unwrap().unwrap();
    let _: () = redis.raw().del(key("worker:p2")).unwrap();
    let reaped = store.reap("p2", "worker 1234 died", 10).unwrap().unwrap();
    assert_eq!(reaped.dead, vec![job.id.to_string()]);
    let index = assert_index_exact(&redis);
    assert_eq!(index.len(), 2);
    let (_, groups) = store.dlq_groups(None, None).unwrap();
    let g = groups
        .iter()
        .find(|g| g.fingerprint == group_of(&redis, &job.id))
        .unwrap();
    assert_eq!((g.pattern.as_str(), g.count), ("worker <n> died", 1));
}

#[test]
fn a_group_action_up_to_a_time_leaves_later_failures_alone() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let first: Vec<String> = (0..3)
        .map(|i| bury(&redis, "email", &format!("quota {i} exceeded"), 100))
        .collect();
    let fp = group_of(&redis, &first[0]);
    let (_, dry) = store.dlq_groups(Some(&fp), None).unwrap();
    assert_eq!(dry.len(), 1);
    let as_of = dry[0].last_seen_us;
    let later = bury(&redis, "email", "quota 7 exceeded", 100);
    assert_eq!(group_of(&redis, &later), fp);
    // The dry run's count, asked again up to its time, is unchanged.
    assert_eq!(
        store.dlq_groups(Some(&fp), Some(as_of)).unwrap().1[0].count,
        3
    );
    let mut retried = store
        .dlq_retry(DlqSelect::Group {
            fingerprint: &fp,
            upto: Some(as_of),
        })
        .unwrap();
    retried.sort();
    let mut want = first.clone();
    want.sort();
    assert_eq!(retried, want);
    assert_at(&redis, &later, At::Dlq);
    assert_index_exact(&redis);
    // Nothing up to that time is left; the later one is taken without a time.
    assert!(store
        .dlq_groups(Some(&fp), Some(as_of))
        .unwrap()
        .1
        .is_empty());
    let none = DlqSelect::Group {
        fingerprint: &fp,
        upto: Some(as_of),
    };
    assert_eq!(store.dlq_delete(none).unwrap(), 0);
    let all = DlqSelect::Group {
        fingerprint: &fp,
        upto: None,
    };
    assert_eq!(store.dlq_delete(all).unwrap(), 1);
    assert!(assert_index_exact(&redis).is_empty());
    let unknown = DlqSelect::Group {
        fingerprint: "0123456789abcdef",
        upto: None,
    };
    assert!(store.dlq_retry(unknown).unwrap().is_empty());
}

#[test]
fn jobs_buried_before_groups_existed_are_indexed_in_steps() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let ids: Vec<String> = (0..4)
        .map(|i| bury(&redis, "email", &format!("disk {i} full"), 100))
        .collect();
    let fp = group_of(&redis, &ids[0]);
    // As an older version left them: no fp, no index.
    let mut r = redis.raw();
    for id in &ids {
        let _: () = r.hdel(key(&format!("job:{id}")), "fp").unwrap();
    }
    let _: () = r
        .del(&[
            key("dlq:groups"),
            key(&format!("dlq:g:{fp}")),
            key("dlq:groups:cursor"),
        ])
        .unwrap();
    let (size, groups) = store.dlq_groups(None, None).unwrap();
    assert_eq!(size, 4);
    assert_eq!(counts(&groups), [(fp.clone(), 4)].into());
    assert_index_exact(&redis);
    // An older process burying one more after the upgrade: found on the next call.
    let late = bury(&redis, "email", "disk 9 full", 100);
    let _: () = r.hdel(key(&format!("job:{late}")), "fp").unwrap();
    let _: () = r.zrem(key(&format!("dlq:g:{fp}")), &late).unwrap();
    let all = DlqSelect::Group {
        fingerprint: &fp,
        upto: None,
    };
    assert_eq!(store.dlq_retry(all).unwrap().len(), 5, "indexed first");
    assert!(assert_index_exact(&redis).is_empty());
}

#[test]
fn a_dlq_filled_by_this_version_keeps_the_legacy_cursor_at_its_newest_entry() {
    let redis = TestRedis::start();
    let mut r = redis.raw();
    let newest = |r: &mut redis::Connection| -> String {
        let top: Vec<(String, String)> = r.zrevrange_withscores(key("dlq"), 0, 0).unwrap();
        top[0].1.clone()
    };
    for i in 0..3 {
        bury(&redis, "email", &format!("disk {i} full"), 100);
        let cursor: String = r.get(key("dlq:groups:cursor")).unwrap();
        assert_eq!(cursor, newest(&mut r), "after bury {i}");
    }
    // Entries an older version left unindexed (the cursor not reaching them): a bury does not
    // move the cursor past them; the next listing indexes them.
    let _: () = r.del(key("dlq:groups:cursor")).unwrap();
    let late = bury(&redis, "email", "disk 9 full", 100);
    let cursor: Option<String> = r.get(key("dlq:groups:cursor")).unwrap();
    assert_eq!(cursor, None);
    let (size, _) = redis.store().dlq_groups(None, None).unwrap();
    assert_eq!(size, 4);
    let cursor: String = r.get(key("dlq:groups:cursor")).unwrap();
    let late_score: f64 = r.zscore(key("dlq"), &late).unwrap();
    assert_eq!(cursor.parse::<f64>().unwrap(), late_score);
}
