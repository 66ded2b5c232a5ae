//! `history.lua` and `Store::history`: one snapshot a minute however many callers, and the
//! counts of a minute read back as the growth of the running totals since its snapshot.

use super::*;

#[test]
fn one_snapshot_a_minute_and_the_minute_counts_what_happened_since() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    // A minute may turn between two calls; then the scenario runs again in the new one.
    for _ in 0..2 {
        redis.raw().flushall::<()>().unwrap();
        let (minute, took) = store.snapshot_history().unwrap();
        assert!(took);
        assert_eq!(store.snapshot_history().unwrap(), (minute, false));
        let mail = NewJob {
            queue: "mail".into(),
            max_attempts: 2,
            ..new_job()
        };
        store
            .create(&[new_job(), new_job(), mail.clone()], 100, 60)
            .unwrap();
        register(&redis, "p1");
        let got = store.claim_all("p1", 3).unwrap().unwrap();
        // The claim order among queues is drawn: pick the jobs by queue.
        let done = got.iter().find(|j| j.queue == "default").unwrap();
        store.complete("p1", done, None, 60, false, &ALL).unwrap();
        let failed = got.iter().find(|j| j.queue == "mail").unwrap();
        fail_retry(&mut store, failed, "no");
        let all = store.history(3, None).unwrap();
        let mail = store.history(3, Some("mail")).unwrap();
        if all.last().map(|m| m.minute) != Some(minute) {
            continue;
        }
        assert_eq!(all.len(), 3);
        // No snapshot began the two minutes before: no counts for them.
        assert!(
            all[0].counts.is_none() && all[1].counts.is_none(),
            "{all:?}"
        );
        let now: HashMap<_, _> = all[2].counts.clone().unwrap().into_iter().collect();
        assert_eq!(
            (
                now["created"],
                now["completed"],
                now["retried"],
                now["failed"]
            ),
            (3, 1, 1, 0),
            "{now:?}"
        );
        let q: HashMap<_, _> = mail[2].counts.clone().unwrap().into_iter().collect();
        assert_eq!(
            (q["created"], q["completed"], q["retried"]),
            (1, 0, 1),
            "{q:?}"
        );
        return;
    }
    panic!("two minutes turned during the test");
}
