//! Many workers, many processes, one Redis: every job runs exactly once, and a pool of N workers
//! really runs N jobs at the same time.

use crate::harness::*;
use jobq::{JobContext, JobError, JobResult};
use serde_json::json;
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

type Executions = Arc<Mutex<HashMap<String, u32>>>;

/// A handler that does a little real work and records that it ran `job.id`, and on which server.
fn counting_handler(
    executions: Executions,
    ran_here: Arc<AtomicUsize>,
) -> impl Fn(&JobContext) -> JobResult + Send + Sync + 'static {
    move |job: &JobContext| -> JobResult {
        let text = job.payload.to_string();
        let mut h = DefaultHasher::new();
        for i in 0..5_000u32 {
            text.hash(&mut h);
            i.hash(&mut h);
        }
        let digest = std::hint::black_box(h.finish());
        *executions
            .lock()
            .unwrap()
            .entry(job.id.to_string())
            .or_insert(0) += 1;
        ran_here.fetch_add(1, Ordering::SeqCst);
        Ok(json!({"digest": digest.to_string()}))
    }
}

#[test]
fn two_servers_on_one_redis_run_each_job_exactly_once() {
    const JOBS: usize = 500;
    let redis = RedisServer::start();
    let executions: Executions = Arc::default();
    let ran_a = Arc::new(AtomicUsize::new(0));
    let ran_b = Arc::new(AtomicUsize::new(0));
    let start = |ran: &Arc<AtomicUsize>| {
        let handler = counting_handler(executions.clone(), ran.clone());
        TestServer::with_registry(
            &redis,
            move |r| {
                r.register("count", handler);
            },
            |c| c.num_workers = 4,
        )
    };
    let server_a = start(&ran_a);
    let server_b = start(&ran_b);

    // Submit half through each server's API, from two threads at once.
    let (a, b) = (server_a.client(), server_b.client());
    let submitted: Vec<String> = std::thread::scope(|s| {
        let submit_half = |client: Client, offset: usize| {
            move || {
                (0..JOBS / 2)
                    .map(|i| client.submit(&json!({"type": "count", "payload": {"n": offset + i}})))
                    .collect::<Vec<String>>()
            }
        };
        let ha = s.spawn(submit_half(a, 0));
        let hb = s.spawn(submit_half(b, JOBS / 2));
        let mut ids = ha.join().expect("submitting through server A");
        ids.extend(hb.join().expect("submitting through server B"));
        ids
    });
    let unique: HashSet<&String> = submitted.iter().collect();
    assert_eq!(unique.len(), JOBS, "every submission gets its own id");

    let stats = server_a.wait_for_stat("completed_jobs", JOBS as u64, Duration::from_secs(60));
    assert_eq!(stats["total_jobs"], JOBS, "{stats}");
    assert_eq!(stats["failed_jobs"], 0, "{stats}");
    assert_eq!(stats["dlq_size"], 0, "{stats}");
    assert_eq!(
        server_b.stat("completed_jobs"),
        JOBS as u64,
        "both servers see the same Redis"
    );

    // Stop both, so any duplicate run would have happened by now.
    server_a.stop().expect("graceful shutdown of server A");
    server_b.stop().expect("graceful shutdown of server B");

    let executions = executions.lock().unwrap();
    let duplicates: Vec<(&String, &u32)> = executions.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        duplicates.is_empty(),
        "jobs run more than once: {duplicates:?}"
    );
    let ran: HashSet<&String> = executions.keys().collect();
    assert_eq!(ran, unique, "the jobs run are exactly the jobs submitted");
    let (na, nb) = (ran_a.load(Ordering::SeqCst), ran_b.load(Ordering::SeqCst));
    assert_eq!(na + nb, JOBS);
    assert!(
        na > 0 && nb > 0,
        "both servers should have run some jobs: A ran {na}, B ran {nb}"
    );
}

/// Lets a job finish only once `need` jobs are inside it at the same time (or fails after 10 s).
struct Rendezvous {
    inside: Mutex<usize>,
    all_here: Condvar,
    need: usize,
}

#[test]
fn pool_of_four_workers_runs_four_jobs_at_the_same_time() {
    let redis = RedisServer::start();
    let meeting = Arc::new(Rendezvous {
        inside: Mutex::new(0),
        all_here: Condvar::new(),
        need: 4,
    });
    let m = meeting.clone();
    let server = TestServer::with_registry(
        &redis,
        move |r| {
            r.register("meet", move |_job: &JobContext| -> JobResult {
                let mut inside = m.inside.lock().unwrap();
                *inside += 1;
                m.all_here.notify_all();
                let (inside, _) = m
                    .all_here
                    .wait_timeout_while(inside, Duration::from_secs(10), |n| *n < m.need)
                    .unwrap();
                if *inside >= m.need {
                    Ok(json!(*inside))
                } else {
                    Err(JobError::permanent(format!(
                        "only {} of {} jobs were running at once",
                        *inside, m.need
                    )))
                }
            });
        },
        |c| c.num_workers = 4,
    );
    let ids: Vec<String> = (0..4)
        .map(|_| server.submit(&json!({"type": "meet", "max_attempts": 1})))
        .collect();
    for id in &ids {
        let job = wait_for(
            &format!("job {id} to finish"),
            Duration::from_secs(20),
            || {
                let job = server.job(id);
                match job["status"].as_str() {
                    Some("completed") | Some("failed") => Ok(job),
                    _ => Err(job.to_string()),
                }
            },
        );
        assert_eq!(
            job["status"], "completed",
            "4 workers should run 4 jobs at once: {job}"
        );
    }
    assert_eq!(*meeting.inside.lock().unwrap(), 4);
}
