//! `create.lua`: one job, a batch (all or none), the queue limit, idempotency keys, delays, and
//! the gathered create (`create_each`).

use super::*;
use crate::store::{CreateOutcome, Created};

fn created(ids: &[&NewJob]) -> CreateOutcome {
    CreateOutcome::Created(
        ids.iter()
            .map(|j| Created {
                id: j.id.to_string(),
                new: true,
            })
            .collect(),
    )
}

#[test]
fn a_job_goes_to_pending_and_a_delayed_one_to_scheduled() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let now = new_job();
    let later = NewJob {
        delay_ms: 60_000,
        ..new_job()
    };
    let at = NewJob {
        run_at_us: Some(chrono::Utc::now().timestamp_micros() + 60_000_000),
        ..new_job()
    };
    for job in [&now, &later, &at] {
        let out = store.create(std::slice::from_ref(job), 100, 60).unwrap();
        assert_eq!(out, created(&[job]));
    }
    assert_at(&redis, &now.id, At::Pending);
    assert_at(&redis, &later.id, At::Scheduled);
    assert_at(&redis, &at.id, At::Scheduled);
    assert!(field(&redis, &later.id, "run_at").is_some());
    // A new record leaves out attempt (0) and updated_at (its created_at): the readers fill them.
    assert_eq!(field(&redis, &now.id, "attempt"), None);
    assert_eq!(field(&redis, &now.id, "updated_at"), None);
    let job = store.job(&now.id).unwrap().expect("the record");
    assert_eq!((job.kind.as_str(), job.max_attempts), ("noop", 3));
    assert_eq!((job.attempt, job.updated_at), (0, job.created_at));
    assert_eq!(store.job(&uuid::Uuid::new_v4().to_string()).unwrap(), None);
}

#[test]
fn an_idempotency_key_names_the_first_job() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let first = NewJob {
        idempotency_key: Some("order-1".into()),
        ..new_job()
    };
    let again = NewJob {
        idempotency_key: Some("order-1".into()),
        ..new_job()
    };
    assert_eq!(
        store.create(std::slice::from_ref(&first), 100, 60).unwrap(),
        created(&[&first])
    );
    let out = store.create(std::slice::from_ref(&again), 100, 60).unwrap();
    assert_eq!(
        out,
        CreateOutcome::Created(vec![Created {
            id: first.id.to_string(),
            new: false
        }])
    );
    assert_at(&redis, &first.id, At::Pending);
    assert_eq!(field(&redis, &again.id, "status"), None, "no second record");
    assert_eq!(store.stats().unwrap().total_jobs, 1);
}

#[test]
fn a_full_queue_takes_nothing_and_a_batch_is_all_or_none() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let (a, b) = (new_job(), new_job());
    let delayed = NewJob {
        delay_ms: 60_000,
        ..new_job()
    };
    // Pending and scheduled both count against the limit.
    store.create(std::slice::from_ref(&a), 3, 60).unwrap();
    store.create(std::slice::from_ref(&delayed), 3, 60).unwrap();
    let (c, d) = (new_job(), new_job());
    assert_eq!(
        store.create(&[c.clone(), d.clone()], 3, 60).unwrap(),
        CreateOutcome::Full {
            queue: "default".into()
        },
        "two more would make 4 > 3"
    );
    for id in [&c.id, &d.id] {
        assert_eq!(
            field(&redis, id, "status"),
            None,
            "nothing of the batch is written"
        );
    }
    assert_eq!(store.stats().unwrap().pending_jobs, 1);
    assert_eq!(
        store.create(std::slice::from_ref(&b), 3, 60).unwrap(),
        created(&[&b])
    );
    assert_eq!(
        store.create(&[new_job()], 3, 60).unwrap(),
        CreateOutcome::Full {
            queue: "default".into()
        }
    );

    // A batch within the limit is created whole, in order.
    let batch: Vec<NewJob> = (0..3).map(|_| new_job()).collect();
    let out = store.create(&batch, 100, 60).unwrap();
    assert_eq!(out, created(&batch.iter().collect::<Vec<_>>()));
    for job in &batch {
        assert_at(&redis, &job.id, At::Pending);
    }
    let pending: Vec<String> = redis
        .raw()
        .lrange(key("q:{default}:ready:normal"), 0, -1)
        .unwrap();
    assert_eq!(
        pending[2..],
        batch.iter().map(|j| j.id.to_string()).collect::<Vec<_>>()[..]
    );
}

#[test]
fn gathered_creates_each_have_their_own_outcome() {
    let redis = TestRedis::start();
    let mut store = redis.store();
    let jobs: Vec<NewJob> = (0..3).map(|_| new_job()).collect();
    let out = store.create_each(&jobs, 2, 60);
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].as_ref().unwrap(), &created(&[&jobs[0]]));
    assert_eq!(out[1].as_ref().unwrap(), &created(&[&jobs[1]]));
    assert_eq!(
        out[2].as_ref().unwrap(),
        &CreateOutcome::Full {
            queue: "default".into()
        }
    );
    assert_at(&redis, &jobs[0].id, At::Pending);
    assert_at(&redis, &jobs[1].id, At::Pending);
    assert_eq!(field(&redis, &jobs[2].id, "status"), None);

    // After a SCRIPT FLUSH the pipeline loads the script and sends again.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut redis.raw())
        .unwrap();
    let more = [new_job()];
    let out = store.create_each(&more, 100, 60);
    assert_eq!(out[0].as_ref().unwrap(), &created(&[&more[0]]));
    assert_at(&redis, &more[0].id, At::Pending);
}
