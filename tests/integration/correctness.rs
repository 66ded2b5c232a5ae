//! Defects found by fault injection, each reproduced here against a real redis-server: gathered
//! creates meeting NOSCRIPT, claims after the stop began, Redis Cluster slots, pipelined
//! requests, Redis's passing states (BUSY, READONLY). Late outcomes of an earlier claim and
//! claims by an unregistered process are store transitions, tested in `src/store/tests/`. The
//! races that cannot be forced (a stalled process's claim in transit, the reaper's grace after a
//! long load) are tested through their mechanism in the unit tests of `worker/maintenance.rs`.

use serde_json::json;
use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::*;

/// Item 1: a gathered-create pipeline that meets NOSCRIPT part way (SCRIPT FLUSH between two of
/// its calls) re-sends only the calls that did not run. Before, the whole pipeline was re-sent
/// and the jobs already stored answered 500. Every answer is now 201, or 503 for a job that was
/// not created; the counter of created jobs equals the 201s.
#[test]
fn script_flush_during_gathered_creates_never_fails_a_stored_job() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| {
        c.num_workers = 0;
        c.http_threads = 2;
    });
    let client = server.client();
    // Large bodies make each pipeline span many of Redis's reads, so a flush lands inside one.
    let filler = "x".repeat(8 * 1024);
    let stop = Arc::new(AtomicBool::new(false));
    let flusher = {
        let (stop, port) = (stop.clone(), redis.port());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) && n < 5000 {
                let _ = try_redis_cmd::<()>(port, &["SCRIPT", "FLUSH"]);
                n += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let posters: Vec<_> = (0..16)
        .map(|t| {
            let filler = filler.clone();
            std::thread::spawn(move || {
                let mut answers = Vec::new();
                for i in 0..40 {
                    let key = format!("k-{t}-{i}");
                    let body = json!({"type": "noop", "payload": {"filler": filler}});
                    let r = client.request_with(
                        "POST",
                        "/jobs",
                        &[("Idempotency-Key", &key)],
                        body.to_string().as_bytes(),
                    );
                    answers.push(r);
                }
                answers
            })
        })
        .collect();
    let answers: Vec<Resp> = posters
        .into_iter()
        .flat_map(|p| p.join().expect("poster thread"))
        .collect();
    stop.store(true, Ordering::SeqCst);
    flusher.join().unwrap();
    let mut created = 0;
    for r in &answers {
        match r.status {
            201 => created += 1,
            503 => {
                r.expect_json_error(503, "a create that did not run");
            }
            other => panic!(
                "a submission answered {other} during SCRIPT FLUSH: {}",
                r.body
            ),
        }
    }
    assert!(created > 0, "no job was created at all");
    let counted = redis
        .redis_cmd::<Option<String>>(&["HGET", "{jobq}:counters", "created"])
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert_eq!(counted, created, "jobs stored vs 201 answers");
    assert_eq!(
        redis.redis_cmd::<Option<i64>>(&["LLEN", PENDING_KEY]),
        Some(created as i64)
    );
}

/// Item 3: once the stop has begun no job starts. A worker finishing during the drain asks the
/// fetcher for more; the job it would get stays pending, its attempt not counted.
#[test]
fn no_job_starts_once_the_stop_has_begun() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| {
        c.num_workers = 1;
        c.shutdown_timeout_secs = 5;
    });
    let first = server.submit(&json!({"type": "sleep", "payload": {"ms": 1000}}));
    server.wait_for_status(&first, "running", Duration::from_secs(10));
    let second = server.submit(&json!({"type": "noop"}));
    // Stop shortly before the running job ends, so its worker asks for work during the drain
    // (while the fetcher may still be waiting for that request).
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(900).saturating_sub(started.elapsed()));
    let report = server.stop().expect("shutdown");
    assert_eq!(report.requeued, 0, "{report:?}");
    assert_eq!(
        hget(&redis, &job_key(&first), "status").as_deref(),
        Some("completed")
    );
    let rec = |f: &str| hget(&redis, &job_key(&second), f);
    assert_eq!(rec("status").as_deref(), Some("pending"), "second job");
    // Never claimed (a new record has no attempt field: 0), or claimed and handed back.
    let attempt = rec("attempt");
    assert!(
        matches!(attempt.as_deref(), None | Some("0")),
        "second job's attempts: {attempt:?}"
    );
    assert_eq!(
        rec("started_at"),
        None,
        "the second job was started during the drain"
    );
    let pending: Vec<String> = redis.redis_cmd(&["LRANGE", PENDING_KEY, "0", "-1"]);
    assert_eq!(pending, vec![second]);
}

/// A one-node Redis Cluster: cluster mode on, every slot assigned to this node, and the
/// cluster reporting `cluster_state:ok`.
fn start_cluster_node() -> RedisServer {
    let args = [
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
    ];
    let redis = RedisServer::start_with(&args);
    redis.redis_cmd::<()>(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
    wait_for("cluster_state:ok", Duration::from_secs(10), || {
        let info: String = redis.redis_cmd(&["CLUSTER", "INFO"]);
        match info.contains("cluster_state:ok") {
            true => Ok(()),
            false => Err(info),
        }
    });
    redis
}

/// `HGET key field`, `None` if the field is not set.
fn hget(redis: &RedisServer, key: &str, field: &str) -> Option<String> {
    redis.redis_cmd(&["HGET", key, field])
}

/// Item 4: against a real (one-node) Redis Cluster, the lifecycle works: jobs with and without
/// idempotency keys, a batch, a retry ending in the DLQ, a DLQ retry, stats. Before, every job
/// without an idempotency key failed with CROSSSLOT.
#[test]
fn the_lifecycle_runs_on_redis_cluster() {
    let redis = start_cluster_node();
    let server = TestServer::start(&redis, |_| {});
    let failing = server.run_lifecycle();
    server
        .post_json(&format!("/dlq/{failing}/retry"), &json!({}))
        .expect_status(200, "DLQ retry");
    server.wait_for_status(&failing, "failed", Duration::from_secs(10));
    let stats = server.stats();
    assert_eq!(stats["total_jobs"], json!(5), "{stats}");
    assert_eq!(stats["completed_jobs"], json!(4), "{stats}");
    assert_eq!(stats["dlq_size"], json!(1), "{stats}");
}

/// Item 5: requests pipelined on one connection take effect in the order sent, whichever HTTP
/// thread takes each.
#[test]
fn pipelined_requests_take_effect_in_order() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| {
        c.num_workers = 0;
        c.max_queue_size = 2;
    });
    let post = |key: &str| {
        raw_request(
            "POST",
            "/jobs",
            &[("Idempotency-Key", key)],
            r#"{"type":"noop"}"#,
        )
    };
    let batch = |key: &str| {
        raw_request(
            "POST",
            "/jobs/batch",
            &[],
            &json!({"jobs": [{"type": "noop", "idempotency_key": key}]}).to_string(),
        )
    };
    let stats = raw_request("GET", "/stats", &[], "");

    // A create, then stats: the stats see the job.
    let r = send_pipelined(server.addr, &[post("a"), stats.clone()]);
    r[0].expect_status(201, "POST /jobs");
    assert_eq!(r[1].json()["total_jobs"], json!(1), "{}", r[1].body);

    // A create with a key, then a batch with the same key: the POST creates it, the batch
    // names the same job.
    let r = send_pipelined(server.addr, &[post("b"), batch("b")]);
    r[0].expect_status(201, "the first use of key b");
    r[1].expect_status(201, "the batch");
    assert_eq!(r[1].json()["job_ids"][0], r[0].json()["job_id"]);

    // The queue holds 2: the earlier request gets the last place, the later one 503.
    let r = send_pipelined(server.addr, &[post("c"), batch("d")]);
    let (first, second) = (&r[0], &r[1]);
    assert_eq!(
        (first.status, second.status),
        (503, 503),
        "full already: {r:?}"
    );
    // Make room as a claim would: the job leaves the list and the queue's pending count.
    redis.redis_cmd::<()>(&["LPOP", PENDING_KEY]);
    redis.redis_cmd::<()>(&["HINCRBY", DEFAULT_QUEUE_META, "pending", "-1"]);
    let r = send_pipelined(server.addr, &[post("c"), batch("d")]);
    r[0].expect_status(201, "the earlier request");
    r[1].expect_json_error(503, "the later request");
}

/// Sends `requests` on one connection in a single write (HTTP pipelining) and reads their
/// answers, in order.
fn send_pipelined(addr: SocketAddr, requests: &[Vec<u8>]) -> Vec<Resp> {
    let mut stream = connect(addr).unwrap_or_else(|e| panic!("{e}"));
    stream
        .write_all(&requests.concat())
        .unwrap_or_else(|e| panic!("send pipelined requests to {addr}: {e}"));
    let mut reader = BufReader::new(stream);
    (0..requests.len())
        .map(|i| {
            read_response(&mut reader)
                .unwrap_or_else(|e| panic!("answer {i} of {}: {e}", requests.len()))
        })
        .collect()
}

/// Item 6: BUSY (a long script) and READONLY (a replica) are passing states of Redis: 503 with
/// Retry-After, like an outage, not 500.
#[test]
fn busy_and_readonly_redis_answer_503() {
    let redis = RedisServer::start_with(&["--busy-reply-threshold", "50"]);
    let server = TestServer::start(&redis, |c| c.num_workers = 0);
    server.submit(&json!({"type": "noop"}));

    let port = redis.port();
    let busy = std::thread::spawn(move || {
        let script = "local t0 = redis.call('TIME') \
            local start = t0[1] * 1000000 + t0[2] \
            while true do \
              local t = redis.call('TIME') \
              if t[1] * 1000000 + t[2] - start > 2000000 then break end \
            end return 1";
        try_redis_cmd::<()>(port, &["EVAL", script, "0"])
    });
    let r = wait_for("a BUSY answer", Duration::from_secs(5), || {
        let r = server.get("/stats");
        if r.status == 503 {
            Ok(r)
        } else {
            Err(format!("{} {}", r.status, r.body))
        }
    });
    let msg = r.expect_json_error(503, "GET /stats while Redis runs a long script");
    assert!(msg.contains("busy"), "{msg}");
    assert_eq!(r.header("retry-after"), Some("1"));
    let r = server.post_json("/jobs", &json!({"type": "noop"}));
    if r.status != 201 {
        r.expect_json_error(503, "POST /jobs while Redis runs a long script");
    }
    busy.join().unwrap().expect("the long script");

    // A read-only replica of another (empty) Redis.
    let master = RedisServer::start();
    let port = master.port().to_string();
    redis.redis_cmd::<()>(&["REPLICAOF", "127.0.0.1", &port]);
    // (While it syncs, Redis may answer LOADING first: also a 503, with its own words.)
    let r = wait_for("a READONLY answer", Duration::from_secs(10), || {
        let r = server.post_json("/jobs", &json!({"type": "noop"}));
        if r.status == 503 && r.body.contains("read-only replica") {
            Ok(r)
        } else {
            Err(format!("{} {}", r.status, r.body))
        }
    });
    r.expect_json_error(503, "POST /jobs to a replica");
    assert_eq!(r.header("retry-after"), Some("1"));
    redis.redis_cmd::<()>(&["REPLICAOF", "NO", "ONE"]);
    server.submit(&json!({"type": "noop"}));
}

/// Item 9: after a Redis restart whose load takes longer than the heartbeat TTL, every restored
/// heartbeat has expired and Redis's uptime already exceeds the TTL. A live process running a
/// job keeps it if it beats within a TTL of the load's end; here it is frozen (SIGSTOP) until
/// half a second after the load, longer than a reaper interval. Before, the reaper judged by
/// Redis's uptime and took the job back at once.
#[test]
fn a_load_longer_than_the_ttl_reaps_no_live_process() {
    // Loading each key takes 100 µs (more, as usleep overshoots): 20,000 keys make a load of
    // 2.5 s or more, past the 2 s TTL.
    let mut redis = RedisServer::start_with(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--key-load-delay",
        "100",
    ]);
    let worker = BinaryServer::spawn(
        &redis.url(),
        &[
            ("RECOVERY_SECS", "3"),
            ("NUM_WORKERS", "1"),
            ("ENABLE_DIAGNOSTIC_JOBS", "true"),
            ("SHUTDOWN_TIMEOUT_SECS", "15"),
        ],
    );
    let reaper = TestServer::start(&redis, |c| {
        c.recovery_secs = 3;
        c.num_workers = 0;
    });
    let id = reaper.submit(&json!({"type": "sleep", "payload": {"ms": 12000}}));
    reaper.wait_for_status(&id, "running", Duration::from_secs(10));
    let filled: Option<i64> = redis.redis_cmd(&[
        "EVAL",
        "for i = 1, 20000 do redis.call('SET', 'filler:' .. i, 'x') end return 1",
        "0",
    ]);
    assert_eq!(filled, Some(1), "{filled:?}");
    // Into the AOF's base file, which is what a restart loads key by key.
    let rewrite: Option<String> = redis.redis_cmd(&["BGREWRITEAOF"]);
    assert!(rewrite.is_some(), "BGREWRITEAOF: {rewrite:?}");
    wait_for("the AOF rewrite", Duration::from_secs(20), || {
        let text: String = redis.redis_cmd(&["INFO", "persistence"]);
        if text.contains("aof_rewrite_in_progress:0") && text.contains("aof_rewrite_scheduled:0") {
            Ok(())
        } else {
            Err(text)
        }
    });
    worker.signal("STOP");
    let restarted = Instant::now();
    redis.restart();
    wait_for(
        "Redis to finish loading",
        Duration::from_secs(30),
        || match try_redis_cmd::<String>(redis.port(), &["PING"]) {
            Ok(t) if t == "PONG" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    let load = restarted.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    worker.signal("CONT");
    // Had the reaper taken the job back, it would be pending (or running again) with an error.
    std::thread::sleep(Duration::from_secs(3));
    let job = reaper.job(&id);
    assert_eq!(
        job["status"],
        json!("running"),
        "after a {load:?} load: {job}"
    );
    assert_eq!(job["attempt"], json!(1), "after a {load:?} load: {job}");
    let done = reaper.wait_for_status(&id, "completed", Duration::from_secs(20));
    assert_eq!(done["attempt"], json!(1), "{done}");
    assert_eq!(done["errors"], json!([]), "after a {load:?} load: {done}");
}

/// An outcome that Redis refuses for good (here WRONGTYPE: the job's record was replaced by a
/// string) is not retried forever: the worker logs it and goes on to the next job, and the
/// stranded-claim check returns the unacknowledged job to pending.
#[test]
fn an_outcome_redis_refuses_does_not_pin_its_worker() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| {
        c.num_workers = 1;
        c.recovery_secs = 3;
    });
    let broken = server.submit(&json!({"type": "sleep", "payload": {"ms": 300}}));
    server.wait_for_status(&broken, "running", Duration::from_secs(10));
    redis.redis_cmd::<()>(&["DEL", &job_key(&broken)]);
    redis.redis_cmd::<()>(&["SET", &job_key(&broken), "not a hash"]);
    let next = server.submit(&json!({"type": "noop"}));
    server.wait_for_status(&next, "completed", Duration::from_secs(10));
}
