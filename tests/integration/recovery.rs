//! Crash safety: jobs of a process killed with SIGKILL come back within RECOVERY_SECS, a live
//! slow job is never taken away, a job that keeps killing its workers ends in the DLQ, attempts
//! time out, Redis outages give fast 503s and lose no finished work, ROLE splits the API from the
//! workers, and start-up warns about a Redis that could lose jobs.
//!
//! Processes that are killed are real `jobq` binaries ([`BinaryServer`]); RECOVERY_SECS=3 (the
//! smallest allowed) keeps the heartbeat TTL at 2 s and the reaper at every 0.3 s.

use crate::harness::*;
use jobq::{JobContext, JobError, JobResult};
use serde_json::{json, Value};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The error the reaper writes into a recovered job (src/worker/maintenance.rs).
const DIED: &str = "worker process died while running this job";

const RECOVERY_SECS: u64 = 3;

/// Upper bound for "within RECOVERY_SECS": five times the promise, for a loaded machine.
const RECOVERY_BOUND: Duration = Duration::from_secs(5 * RECOVERY_SECS);

fn env_with<'a>(role: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![("ROLE", role), ("RECOVERY_SECS", "3")];
    env.extend_from_slice(extra);
    env
}

/// A redis-server with the AOF on and fsynced on every write, so a SIGKILL
/// ([`RedisServer::stop`]) and [`RedisServer::restart`] keep every acknowledged write.
fn persistent_redis() -> RedisServer {
    let args = ["--appendonly", "yes", "--appendfsync", "always"];
    RedisServer::start_with(&args)
}

/// SIGKILL, then reap the child so it is really gone.
fn kill_hard(server: &mut BinaryServer) {
    server.signal("KILL");
    server
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("jobq pid {} survived SIGKILL for 5 s", server.pid()));
}

/// The Redis process id (`<host>-<pid>-<hex>`) registered by the jobq process with OS pid `pid`.
fn process_id_of(redis: &RedisServer, pid: u32) -> Option<String> {
    let marker = format!("-{pid}-");
    redis
        .redis_cmd::<Vec<String>>(&["SMEMBERS", "{jobq}:workers"])
        .into_iter()
        .find(|w| w.contains(&marker))
}

/// Ids of the jobs the jobq process with OS pid `pid` holds in its running list.
fn running_on(redis: &RedisServer, pid: u32) -> Vec<String> {
    match process_id_of(redis, pid) {
        Some(proc_id) => {
            redis.redis_cmd(&["LRANGE", &format!("{{jobq}}:running:{proc_id}"), "0", "-1"])
        }
        None => Vec::new(),
    }
}

/// The `error` texts of a job's `errors` history, oldest first.
fn error_history(job: &Value) -> Vec<(u64, String)> {
    job["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("job has no \"errors\" array: {job}"))
        .iter()
        .map(|e| {
            (
                e["attempt"].as_u64().unwrap_or(0),
                e["error"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn sleep_job(ms: u64) -> Value {
    json!({"type": "sleep", "payload": {"ms": ms}})
}

#[test]
fn heartbeat_expiry_returns_a_dead_processs_jobs_within_recovery_secs() {
    let redis = RedisServer::start();
    let api = BinaryServer::spawn(&redis.url(), &env_with("api", &[]));
    let mut worker_a =
        BinaryServer::spawn(&redis.url(), &env_with("worker", &[("NUM_WORKERS", "2")]));
    let mut ids: Vec<String> = (0..2).map(|_| api.submit(&sleep_job(60_000))).collect();
    ids.sort();
    for id in &ids {
        api.wait_for_status(id, "running", Duration::from_secs(10));
    }
    let mut on_a = running_on(&redis, worker_a.pid());
    on_a.sort();
    assert_eq!(on_a, ids, "both jobs should be held by worker A");

    kill_hard(&mut worker_a);
    let killed = Instant::now();
    let worker_b = BinaryServer::spawn(&redis.url(), &env_with("worker", &[("NUM_WORKERS", "2")]));
    let b_up = killed.elapsed();

    let mut reaped_after = None;
    let jobs = wait_for(
        &format!(
            "both jobs running again on worker B with attempt 2, within {RECOVERY_BOUND:?} of the SIGKILL"
        ),
        RECOVERY_BOUND,
        || {
            let jobs: Vec<Value> = ids.iter().map(|id| api.job(id)).collect();
            if reaped_after.is_none() && jobs.iter().all(|j| j["error"] == DIED) {
                reaped_after = Some(killed.elapsed());
            }
            let on_b = running_on(&redis, worker_b.pid());
            let done = jobs
                .iter()
                .all(|j| j["status"] == "running" && j["attempt"] == 2)
                && ids.iter().all(|id| on_b.contains(id));
            if done {
                Ok(jobs)
            } else {
                Err(format!("on B: {on_b:?}; jobs: {jobs:?}"))
            }
        },
    );
    let recovered = killed.elapsed();
    eprintln!(
        "recovery with RECOVERY_SECS={RECOVERY_SECS}: worker B healthy {b_up:?} after the SIGKILL, \
         jobs reaped (error set) after {:?}, both running on B after {recovered:?}",
        reaped_after.unwrap_or(recovered)
    );
    for job in &jobs {
        assert_eq!(job["error"], DIED, "{job}");
        assert_eq!(
            error_history(job),
            vec![(1, DIED.to_string())],
            "the history should record attempt 1 as died: {job}"
        );
    }
    let logs = format!("{}{}", api.log(), worker_b.log());
    assert!(
        logs.contains("stopped beating"),
        "a reaper (API process or worker B) should log the dead process:\n{logs}"
    );
    assert!(
        process_id_of(&redis, worker_a.pid()).is_none(),
        "the dead process should be removed from {{jobq}}:workers"
    );
}

#[test]
fn a_live_slow_job_is_never_taken_from_its_worker() {
    let redis = RedisServer::start();
    // Longer than three times RECOVERY_SECS: a heartbeat that lapsed would show.
    let ms = 10_000;
    let worker_a = BinaryServer::spawn(&redis.url(), &env_with("all", &[("NUM_WORKERS", "1")]));
    let id = worker_a.submit(&sleep_job(ms));
    worker_a.wait_for_status(&id, "running", Duration::from_secs(10));
    // Started only now, so the job is A's; B sits idle beside it and runs the reaper.
    let worker_b = BinaryServer::spawn(&redis.url(), &env_with("worker", &[]));
    assert_eq!(running_on(&redis, worker_a.pid()), vec![id.clone()]);

    let job = worker_a.wait_for_status(&id, "completed", Duration::from_secs(40));
    assert_eq!(
        job["attempt"], 1,
        "the job must not have been re-run: {job}"
    );
    assert_eq!(job["error"], Value::Null, "{job}");
    assert_eq!(error_history(&job), vec![], "{job}");
    assert_eq!(job["result"], json!({"slept_ms": ms}), "{job}");
    for (name, server) in [("A", &worker_a), ("B", &worker_b)] {
        let log = server.log();
        assert!(
            !log.contains("stopped beating") && !log.contains(DIED),
            "worker {name} should never have judged a live process dead:\n{log}"
        );
    }
    let b_metrics = worker_b.metrics();
    assert_eq!(
        metric_sum(&b_metrics, "jobs_recovered_total").unwrap_or(0.0),
        0.0,
        "{b_metrics}"
    );
}

#[test]
fn a_job_that_kills_every_worker_ends_in_the_dlq() {
    let redis = RedisServer::start();
    // Alive throughout: every process runs the reaper, so this one buries the job at the end.
    let api = BinaryServer::spawn(&redis.url(), &env_with("api", &[]));
    let worker_env = env_with("worker", &[("NUM_WORKERS", "1")]);
    let mut first = BinaryServer::spawn(&redis.url(), &worker_env);
    let id = api.submit(&json!({"type": "sleep", "payload": {"ms": 60_000}, "max_attempts": 2}));
    let job = api.wait_for_status(&id, "running", Duration::from_secs(10));
    assert_eq!(job["attempt"], 1, "{job}");
    assert_eq!(running_on(&redis, first.pid()), vec![id.clone()]);
    kill_hard(&mut first);

    let mut second = BinaryServer::spawn(&redis.url(), &worker_env);
    wait_for(
        "the job to run again, attempt 2, on the second worker",
        RECOVERY_BOUND,
        || {
            let job = api.job(&id);
            let on_second = running_on(&redis, second.pid());
            if job["status"] == "running" && job["attempt"] == 2 && on_second.contains(&id) {
                Ok(())
            } else {
                Err(format!("on the second worker: {on_second:?}; job: {job}"))
            }
        },
    );
    kill_hard(&mut second);

    let job = api.wait_for_status(&id, "failed", RECOVERY_BOUND);
    assert_eq!(job["attempt"], 2, "{job}");
    assert_eq!(job["error"], DIED, "{job}");
    assert_eq!(
        error_history(&job),
        vec![(1, DIED.to_string()), (2, DIED.to_string())],
        "{job}"
    );
    let r = api.get(&format!("/dlq/{id}"));
    r.expect_status(200, "GET /dlq/{id} of the buried job");
    let dead = r.json();
    assert_eq!(dead["id"], json!(id), "{dead}");
    assert_eq!(dead["status"], "failed", "{dead}");
    let stats = api.stats();
    assert_eq!(stats["dlq_size"], 1, "{stats}");
    assert_eq!(stats["failed_jobs"], 1, "{stats}");
    assert_eq!(stats["running_jobs"], 0, "{stats}");
    let log = api.log();
    assert!(
        log.contains(&format!("job {id} moved to the DLQ")),
        "the API process reaped the job and should say so:\n{log}"
    );
}

#[test]
fn job_timeout_secs_fails_a_slow_attempt() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| c.job_timeout_secs = 1);
    let id = server.submit(&json!({"type": "sleep", "payload": {"ms": 10_000}, "max_attempts": 1}));
    let job = server.wait_for_status(&id, "failed", Duration::from_secs(15));
    assert_eq!(job["error"], "timed out after 1 s", "{job}");
    assert_eq!(job["attempt"], 1, "{job}");
    let took = ts_req(&job, "completed_at") - ts_req(&job, "started_at");
    assert!(
        took < 9_000,
        "a 1 s timeout should cut the 10 s sleep short; the attempt took {took} ms: {job}"
    );
}

#[test]
fn per_job_timeout_secs_overrides_a_large_default() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| c.job_timeout_secs = 3600);
    let id = server.submit(&json!({
        "type": "sleep",
        "payload": {"ms": 10_000},
        "max_attempts": 1,
        "timeout_secs": 1
    }));
    let job = server.wait_for_status(&id, "failed", Duration::from_secs(15));
    assert_eq!(job["timeout_secs"], 1, "{job}");
    assert_eq!(job["error"], "timed out after 1 s", "{job}");
    let took = ts_req(&job, "completed_at") - ts_req(&job, "started_at");
    assert!(took < 9_000, "the attempt took {took} ms: {job}");
    // A job without its own limit is not cut by the (large) default.
    let ok = server.submit(&json!({"type": "sleep", "payload": {"ms": 1500}, "max_attempts": 1}));
    let job = server.wait_for_status(&ok, "completed", Duration::from_secs(15));
    assert_eq!(job["error"], Value::Null, "{job}");
}

/// Sends each API request once and checks it gets a JSON 503 in under 5 s (the spec says 2 s;
/// the rest is slack for a loaded machine). Returns the slowest answer.
fn expect_fast_503s(client: Client, job_id: &str, situation: &str) -> Duration {
    let noop = json!({"type": "noop"}).to_string();
    let get_job = format!("/jobs/{job_id}");
    let requests = [
        ("POST", "/jobs", noop.as_bytes()),
        ("GET", get_job.as_str(), &b""[..]),
        ("GET", "/stats", &b""[..]),
    ];
    let mut slowest = Duration::ZERO;
    for (method, path, body) in requests {
        let what = format!("{method} {path} {situation}");
        let started = Instant::now();
        let r = client
            .try_request(method, path, body)
            .unwrap_or_else(|e| panic!("{what}: no HTTP answer: {e}"));
        let took = started.elapsed();
        r.expect_json_error(503, &what);
        assert!(
            took < Duration::from_secs(5),
            "{what} took {took:?}; the spec asks for a 503 within 2 s"
        );
        slowest = slowest.max(took);
    }
    let started = Instant::now();
    let r = client.get("/health");
    let took = started.elapsed();
    r.expect_status(503, &format!("GET /health {situation}"));
    r.expect_json_content_type(&format!("GET /health {situation}"));
    assert_eq!(r.json()["status"], "unhealthy", "{}", r.body);
    assert!(
        took < Duration::from_secs(5),
        "GET /health {situation} took {took:?}"
    );
    slowest.max(took)
}

/// Polls `POST /jobs` until it answers 201 (503s while jobq reconnects are expected); returns
/// the new job's id.
fn submit_once_redis_is_back(client: Client, what: &str) -> String {
    wait_for(what, Duration::from_secs(15), || {
        let r = client.try_request("POST", "/jobs", br#"{"type": "noop"}"#)?;
        match r.status {
            201 => Ok(r.json()["job_id"].as_str().unwrap_or_default().to_string()),
            s => Err(format!("HTTP {s} {}", r.body)),
        }
    })
}

#[test]
fn redis_outage_gives_fast_503s_and_the_same_process_recovers() {
    let mut redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let id = server.submit(&json!({"type": "noop"}));
    server.wait_for_status(&id, "completed", Duration::from_secs(10));

    redis.stop();
    let first = expect_fast_503s(server.client(), &id, "while Redis is stopped");
    // Asked twice: the first call may find a stale socket, the second must reconnect.
    let second = expect_fast_503s(server.client(), &id, "while Redis is still stopped");
    eprintln!(
        "slowest 503 while Redis was stopped: {:?}",
        first.max(second)
    );

    redis.restart();
    let id = submit_once_redis_is_back(
        server.client(),
        "POST /jobs to answer 201 again after Redis restarted (no restart of jobq)",
    );
    server.wait_for_status(&id, "completed", Duration::from_secs(15));
    wait_for(
        "GET /health to answer 200 after Redis came back",
        Duration::from_secs(10),
        || {
            let r = server.try_request("GET", "/health", b"")?;
            match r.status {
                200 => Ok(()),
                s => Err(format!("HTTP {s} {}", r.body)),
            }
        },
    );
}

/// A Redis that accepts connections but never answers (SIGSTOP) costs one read timeout per
/// request: every API read is a single reply and connecting sends no extra commands.
#[test]
fn redis_that_hangs_gets_fast_503s_and_the_same_process_recovers() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let id = server.submit(&json!({"type": "noop"}));
    server.wait_for_status(&id, "completed", Duration::from_secs(10));

    // Connections are accepted, nothing is answered.
    redis.signal("STOP");
    let first = expect_fast_503s(server.client(), &id, "while Redis hangs (SIGSTOP)");
    let second = expect_fast_503s(server.client(), &id, "while Redis still hangs (SIGSTOP)");
    eprintln!("slowest 503 while Redis hung: {:?}", first.max(second));
    redis.signal("CONT");

    let id = submit_once_redis_is_back(
        server.client(),
        "POST /jobs to answer 201 once the hung Redis goes on",
    );
    server.wait_for_status(&id, "completed", Duration::from_secs(15));
}

#[test]
fn an_outcome_computed_during_an_outage_is_stored_afterwards_without_a_rerun() {
    let mut redis = persistent_redis();
    let runs: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let finished = Arc::new(AtomicUsize::new(0));
    let redis_down = Arc::new(AtomicBool::new(false));
    let handler = {
        let (runs, finished, redis_down) = (runs.clone(), finished.clone(), redis_down.clone());
        move |job: &JobContext| -> JobResult {
            *runs.lock().unwrap().entry(job.id.to_string()).or_insert(0) += 1;
            // Real work, for at least 1.5 s and until the test has taken Redis away, so the
            // outcome is certainly computed while Redis is down.
            let started = Instant::now();
            let mut h = DefaultHasher::new();
            let mut rounds = 0u64;
            while started.elapsed() < Duration::from_millis(1500)
                || !redis_down.load(Ordering::SeqCst)
            {
                if job.cancel.is_cancelled() {
                    return Err(JobError::transient("cancelled"));
                }
                if started.elapsed() > Duration::from_secs(30) {
                    return Err(JobError::permanent("the test never stopped Redis"));
                }
                for i in 0..10_000u64 {
                    (rounds, i, &job.id).hash(&mut h);
                }
                rounds += 1;
            }
            finished.fetch_add(1, Ordering::SeqCst);
            Ok(json!({"rounds": rounds, "digest": h.finish().to_string()}))
        }
    };
    let server = TestServer::with_registry(
        &redis,
        |r| {
            r.register("crunch", handler);
        },
        |c| c.num_workers = 1,
    );
    let id = server.submit(&json!({"type": "crunch", "payload": {}}));
    server.wait_for_status(&id, "running", Duration::from_secs(10));

    redis.stop();
    redis_down.store(true, Ordering::SeqCst);
    wait_for(
        "the handler to finish its work while Redis is down",
        Duration::from_secs(20),
        || match finished.load(Ordering::SeqCst) {
            0 => Err("still working".into()),
            n => Ok(n),
        },
    );
    redis.restart();

    let job = server.wait_for_status(&id, "completed", Duration::from_secs(20));
    assert_eq!(job["attempt"], 1, "{job}");
    assert_eq!(job["error"], Value::Null, "{job}");
    assert!(
        job["result"]["rounds"].as_u64().is_some_and(|n| n > 0),
        "the result computed during the outage should be stored: {job}"
    );
    let runs = runs.lock().unwrap().clone();
    assert_eq!(
        runs.get(&id),
        Some(&1),
        "the handler should have run exactly once: {runs:?}"
    );
    assert_eq!(runs.len(), 1, "{runs:?}");
    let stats = wait_for(
        "GET /stats to answer 200 after the Redis restart",
        Duration::from_secs(10),
        || {
            let r = server.try_request("GET", "/stats", b"")?;
            match r.status {
                200 => Ok(r.json()),
                s => Err(format!("HTTP {s} {}", r.body)),
            }
        },
    );
    assert_eq!(stats["completed_jobs"], 1, "{stats}");
    assert_eq!(stats["running_jobs"], 0, "{stats}");
    assert_eq!(stats["pending_jobs"], 0, "{stats}");
}

#[test]
fn role_worker_serves_health_and_metrics_but_not_the_job_api() {
    let redis = RedisServer::start();
    let worker = BinaryServer::spawn(&redis.url(), &[("ROLE", "worker")]);
    let r = worker.get("/health");
    r.expect_status(200, "GET /health on ROLE=worker");
    r.expect_json_content_type("GET /health on ROLE=worker");
    assert!(
        worker.metrics().contains("jobs_processed_total"),
        "ROLE=worker should serve /metrics"
    );
    let id = "550e8400-e29b-41d4-a716-446655440000";
    let cases = [
        (
            "POST",
            "/jobs".to_string(),
            br#"{"type": "noop"}"#.as_slice(),
        ),
        ("GET", format!("/jobs/{id}"), b"".as_slice()),
        ("GET", "/stats".to_string(), b"".as_slice()),
        ("GET", "/dlq".to_string(), b"".as_slice()),
    ];
    for (method, path, body) in cases {
        let what = format!("{method} {path} on ROLE=worker");
        let msg = worker
            .request(method, &path, body)
            .expect_json_error(404, &what);
        assert!(
            msg.contains("ROLE"),
            "{what}: the 404 should explain ROLE: {msg}"
        );
    }
    assert_eq!(
        redis.redis_cmd::<redis::Value>(&["HGET", "{jobq}:counters", "created"]),
        redis::Value::Nil,
        "no job may have been created through a worker"
    );
}

#[test]
fn role_api_runs_no_jobs_until_a_worker_process_starts() {
    let redis = RedisServer::start();
    let api = BinaryServer::spawn(&redis.url(), &[("ROLE", "api"), ("NUM_WORKERS", "4")]);
    let id = api.submit(&json!({"type": "noop"}));
    // An API process registers no worker and claims nothing: the job stays pending. Watched for
    // a second, since "never runs" can only be observed over some time.
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(1) {
        let job = api.job(&id);
        assert!(
            job["status"] == "pending" && job["attempt"] == 0,
            "ROLE=api must not run jobs: {job}"
        );
        std::thread::sleep(POLL);
    }
    let workers: Vec<String> = redis.redis_cmd(&["SMEMBERS", "{jobq}:workers"]);
    assert!(
        workers.is_empty(),
        "ROLE=api should register no worker: {workers:?}"
    );
    let before_worker = now_ms();
    let worker = BinaryServer::spawn(&redis.url(), &[("ROLE", "worker")]);
    let job = api.wait_for_status(&id, "completed", Duration::from_secs(15));
    assert_eq!(job["attempt"], 1, "{job}");
    assert!(
        ts_req(&job, "started_at") >= before_worker,
        "the job should start only after the worker process was launched: {job}"
    );
    assert!(
        worker.log().contains(&id),
        "the worker process should log running job {id}:\n{}",
        worker.log()
    );
}

#[test]
fn start_up_advises_on_redis_settings_that_can_lose_jobs() {
    // The harness's default Redis has neither AOF nor RDB.
    let volatile = RedisServer::start();
    let server = BinaryServer::spawn(&volatile.url(), &[]);
    let log = server.log();
    assert!(
        log.contains("appendonly yes"),
        "a Redis without persistence should draw advice to set appendonly yes:\n{log}"
    );
    drop(server);

    let evicting =
        RedisServer::start_with(&["--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"]);
    let server = BinaryServer::spawn(&evicting.url(), &[]);
    let log = server.log();
    assert!(
        log.contains("noeviction"),
        "maxmemory-policy allkeys-lru should draw advice to use noeviction:\n{log}"
    );
    drop(server);

    // REDIS_WAIT_REPLICAS asks for a replica this Redis does not have.
    let server = BinaryServer::spawn(&volatile.url(), &[("REDIS_WAIT_REPLICAS", "1")]);
    let log = server.log();
    assert!(
        log.contains("REDIS_WAIT_REPLICAS is 1 but the Redis master has 0 replica(s) connected"),
        "a missing replica should draw a warning:\n{log}"
    );
    drop(server);

    // And a Redis set up as advised draws neither.
    let durable = persistent_redis();
    let server = BinaryServer::spawn(&durable.url(), &[]);
    let log = server.log();
    assert!(
        !log.contains("appendonly yes")
            && !log.contains("noeviction")
            && !log.contains("REDIS_WAIT_REPLICAS is"),
        "a Redis with appendonly yes and noeviction needs no advice:\n{log}"
    );
}

/// A claim whose reply this process never read (a read timeout after Redis ran the script)
/// leaves a job in the process's running list that no worker holds. The heartbeat notices it on
/// two beats in a row and puts it back; the job then runs, its lost claim not counted.
#[test]
fn a_job_stranded_in_a_live_processs_running_list_is_put_back() {
    let redis = RedisServer::start();
    let api = BinaryServer::spawn(&redis.url(), &[("ROLE", "api")]);
    let worker = BinaryServer::spawn(
        &redis.url(),
        &[
            ("ROLE", "worker"),
            ("NUM_WORKERS", "1"),
            ("RECOVERY_SECS", "3"),
        ],
    );
    let process = wait_for("the worker to register", Duration::from_secs(10), || {
        process_id_of(&redis, worker.pid()).ok_or_else(|| "not registered yet".to_string())
    });
    // What a claim does, done by hand while the worker is busy elsewhere: the job moves from
    // pending into the worker's running list and its record says running.
    let blocker = api.submit(&sleep_job(1500));
    api.wait_for_status(&blocker, "running", Duration::from_secs(10));
    let id = api.submit(&json!({"type": "noop"}));
    let running = format!("{{jobq}}:running:{process}");
    let moved: Option<String> = redis.redis_cmd(&["LMOVE", PENDING_KEY, &running, "LEFT", "RIGHT"]);
    assert_eq!(
        moved.as_deref(),
        Some(id.as_str()),
        "the noop job should be next in pending"
    );
    redis.redis_cmd::<()>(&["HSET", &job_key(&id), "status", "running"]);
    redis.redis_cmd::<()>(&["HINCRBY", "{jobq}:counters", "running", "1"]);
    redis.redis_cmd::<()>(&["HINCRBY", DEFAULT_QUEUE_META, "pending", "-1"]);
    redis.redis_cmd::<()>(&["HINCRBY", DEFAULT_QUEUE_META, "running", "1"]);
    redis.redis_cmd::<()>(&["HINCRBY", "{jobq}:t:noop", "running", "1"]);

    let job = api.wait_for_status(&id, "completed", Duration::from_secs(15));
    assert_eq!(job["attempt"], 1, "the lost claim should not count: {job}");
    assert!(
        worker.log().contains("lost Redis reply"),
        "the worker should say why it put the job back:\n{}",
        worker.log()
    );
    assert_eq!(api.stat("running_jobs"), 0, "{}", api.stats());
}

/// A process draining on SIGTERM keeps beating until its jobs are done: with a drain longer
/// than the heartbeat TTL, no other process takes its running job away.
#[test]
fn a_draining_process_keeps_its_jobs() {
    let redis = RedisServer::start();
    let mut draining = BinaryServer::spawn(
        &redis.url(),
        &env_with(
            "worker",
            &[("RECOVERY_SECS", "3"), ("SHUTDOWN_TIMEOUT_SECS", "20")],
        ),
    );
    let watcher = BinaryServer::spawn(&redis.url(), &env_with("api", &[]));
    let id = watcher.submit(&sleep_job(5000));
    watcher.wait_for_status(&id, "running", Duration::from_secs(10));
    draining.signal("TERM");
    let status = draining
        .wait_exit(Duration::from_secs(30))
        .expect("the draining process should exit once its job is done");
    assert!(status.success(), "{status}\n{}", draining.log());
    let job = watcher.job(&id);
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(
        job["attempt"], 1,
        "the job must not have been taken back: {job}"
    );
    assert!(
        !watcher.log().contains("stopped beating"),
        "the watcher should not have judged the draining process dead:\n{}",
        watcher.log()
    );
}
