//! Per-job semantics of acknowledging worker outcomes while many arrive together: a drain of
//! thousands of quick jobs by eight workers, cut by a SIGKILL of the process, a frozen Redis
//! (SIGSTOP) or a SIGTERM. Whatever the acknowledgement call carries, one outcome or several,
//! each job is counted once, runs again only if its process died holding it, and is never lost.
//!
//! The processes are real `jobq` binaries ([`BinaryServer`]) against a private `redis-server`.
//! Each drain starts with every job already queued (the queue paused while they are submitted),
//! so the workers acknowledge back to back from the first job on. Job records are read straight
//! from Redis in one pipeline, since thousands of `GET /jobs/{id}` would take longer than the
//! drain itself.
//!
//! How often each handler ran is counted from the processes' logs (`job … started`, written just
//! before the handler is called), not only from `attempt`: a job taken back from a live process
//! as stranded, or returned by a shutdown, has that attempt uncounted, so a second run of an
//! executed job whose outcome was held back would show attempt 1 and the right counters.

use crate::harness::*;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Jobs in each drain: enough for eight workers to finish many at once for a while (the debug
/// build drains about 4,000 noop jobs a second here), few enough to read back in a moment.
const TOTAL: usize = 3000;

/// Jobs completed before the drain is cut: a third, so that both sides of the cut are large.
const CUT_AT: u64 = (TOTAL / 3) as u64;

/// How long a drain (or what is left of one) may take on a loaded two-core machine.
const DRAIN_BOUND: Duration = Duration::from_secs(30);

/// The error the reaper writes into a job whose process died holding it.
const DIED: &str = "worker process died while running this job";

/// The settings every process of these tests shares: eight workers, and room in the queue for
/// the whole drain (MAX_QUEUE_SIZE is 1000 by default).
fn env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![("NUM_WORKERS", "8"), ("MAX_QUEUE_SIZE", "10000")];
    env.extend_from_slice(extra);
    env
}

/// Pauses queue `default`, submits `TOTAL` copies of `job` through `POST /jobs/batch` (1000 at
/// a time, the most a batch takes) and returns their ids. The queue stays paused, so no job
/// starts until [`resume`].
fn submit_paused(client: &Client, job: &Value) -> Vec<String> {
    client
        .request("POST", "/queues/default/pause", b"")
        .expect_status(200, "POST /queues/default/pause");
    let mut ids = Vec::with_capacity(TOTAL);
    while ids.len() < TOTAL {
        let n = (TOTAL - ids.len()).min(1000);
        let r = client.post_json("/jobs/batch", &json!({"jobs": vec![job; n]}));
        r.expect_status(201, "POST /jobs/batch");
        let v = r.json();
        let batch = v["job_ids"]
            .as_array()
            .unwrap_or_else(|| panic!("no job_ids array in {v}"));
        assert_eq!(batch.len(), n, "{v}");
        ids.extend(
            batch
                .iter()
                .map(|id| id.as_str().expect("a string id").to_string()),
        );
    }
    ids
}

fn resume(client: &Client) {
    client
        .request("POST", "/queues/default/resume", b"")
        .expect_status(200, "POST /queues/default/resume");
}

/// A field of `{jobq}:counters` (0 while unset).
fn counter(redis: &RedisServer, field: &str) -> u64 {
    let v: Option<String> = redis.redis_cmd(&["HGET", "{jobq}:counters", field]);
    v.map_or(0, |v| v.parse().expect("a counter is an integer"))
}

/// A connection of this test's own to `redis`, for reads that [`RedisServer::redis_cmd`] (a
/// new connection per command) would make slow.
fn connection(redis: &RedisServer) -> redis::Connection {
    let client = redis::Client::open(redis.url()).expect("a Redis URL");
    let conn = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect to redis on port {}: {e}", redis.port()));
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    conn
}

/// Waits until at least `n` jobs have completed; returns how many had. The drain this cuts runs
/// at thousands of jobs a second and this thread competes with its workers for two cores, so
/// it polls every 2 ms on one open connection: a new connection per look (several round trips,
/// each a wait for the scheduler) once let the drain run on 1,600 jobs past `n`.
fn wait_for_completed(redis: &RedisServer, n: u64) -> u64 {
    let mut conn = connection(redis);
    let deadline = Instant::now() + DRAIN_BOUND;
    loop {
        let done: Option<u64> = redis::cmd("HGET")
            .arg("{jobq}:counters")
            .arg("completed")
            .query(&mut conn)
            .unwrap_or_else(|e| panic!("HGET {{jobq}}:counters completed: {e}"));
        let done = done.unwrap_or(0);
        if done >= n {
            return done;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {DRAIN_BOUND:?} waiting for {n} completed jobs; {done} completed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The Redis process id (`<host>-<pid>-<hex>`) of the jobq process `server`, once registered.
fn process_id(redis: &RedisServer, server: &BinaryServer) -> String {
    let marker = format!("-{}-", server.pid());
    wait_for(
        "the jobq process to register",
        Duration::from_secs(10),
        || {
            let workers: Vec<String> = redis.redis_cmd(&["SMEMBERS", "{jobq}:workers"]);
            let mut ours = workers.iter().filter(|w| w.contains(&marker));
            ours.next().cloned().ok_or_else(|| format!("{workers:?}"))
        },
    )
}

/// The ids in process `process`'s running list.
fn running_list(redis: &RedisServer, process: &str) -> Vec<String> {
    redis.redis_cmd(&["LRANGE", &format!("{{jobq}}:running:{process}"), "0", "-1"])
}

/// What these tests read of a job's record.
#[derive(Debug)]
struct Record {
    id: String,
    status: Option<String>,
    attempt: Option<u64>,
    started_at: Option<String>,
    error: Option<String>,
}

/// The records of `ids`, in their order, read over one connection in one pipeline.
fn records(redis: &RedisServer, ids: &[String]) -> Vec<Record> {
    let mut conn = connection(redis);
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.cmd("HMGET")
            .arg(job_key(id))
            .arg(&["status", "attempt", "started_at", "error"]);
    }
    type Fields = (Option<String>, Option<u64>, Option<String>, Option<String>);
    let rows: Vec<Fields> = pipe
        .query(&mut conn)
        .unwrap_or_else(|e| panic!("HMGET of {} job records: {e}", ids.len()));
    ids.iter()
        .zip(rows)
        .map(|(id, (status, attempt, started_at, error))| Record {
            id: id.clone(),
            status,
            attempt,
            started_at,
            error,
        })
        .collect()
}

/// Waits until every job of `ids` is completed; returns their records.
fn wait_all_completed(redis: &RedisServer, ids: &[String]) -> Vec<Record> {
    wait_for(
        &format!("all {} jobs to be completed", ids.len()),
        DRAIN_BOUND,
        || {
            let recs = records(redis, ids);
            let left: Vec<&Record> = recs
                .iter()
                .filter(|r| r.status.as_deref() != Some("completed"))
                .collect();
            match left.first() {
                None => Ok(recs),
                Some(first) => Err(format!("{} not completed, e.g. {first:?}", left.len())),
            }
        },
    )
}

/// Asserts that no item of `items` fails `ok`, naming how many do and the first few.
fn assert_all<T: std::fmt::Debug>(items: &[T], what: &str, ok: impl Fn(&T) -> bool) {
    let bad: Vec<&T> = items.iter().filter(|r| !ok(r)).collect();
    assert!(
        bad.is_empty(),
        "{} of {} jobs are not {what}; the first: {:#?}",
        bad.len(),
        items.len(),
        &bad[..bad.len().min(5)]
    );
}

/// How many times each job's handler was called, by the `job <id> (<type>) started, attempt
/// n/m, …` lines of `log` (LOG_LEVEL=info, the harness's default). A line cut by a SIGKILL is
/// not counted: its handler had not been called yet.
fn handler_runs(log: &str) -> HashMap<String, usize> {
    let mut runs = HashMap::new();
    for line in log.lines() {
        let job = line.split_once("] job ").map(|(_, rest)| rest);
        let started = job.filter(|rest| rest.contains(") started, attempt "));
        if let Some((id, _)) = started.and_then(|rest| rest.split_once(' ')) {
            *runs.entry(id.to_string()).or_insert(0) += 1;
        }
    }
    runs
}

/// How many times [`handler_runs`] saw job `id` run.
fn ran(runs: &HashMap<String, usize>, id: &str) -> usize {
    runs.get(id).copied().unwrap_or(0)
}

/// Every `{jobq}:running:*` list. (jobq itself never lists keys; on this private Redis a test
/// may.)
fn running_lists(redis: &RedisServer) -> Vec<String> {
    redis.redis_cmd(&["KEYS", "{jobq}:running:*"])
}

/// Sum and count of the `ack_batch_size` histogram in a `/metrics` text: outcomes
/// acknowledged and acknowledgement calls made by that process. (0, 0) when it is absent.
fn ack_batches(metrics_text: &str) -> (f64, f64) {
    let value =
        |suffix: &str| metric_sum(metrics_text, &format!("ack_batch_size_{suffix}")).unwrap_or(0.0);
    (value("sum"), value("count"))
}

#[test]
fn ack_batches_reads_the_histograms_sum_and_count() {
    let text = "\
# HELP ack_batch_size Job outcomes recorded per script call, a worker's own (1) or a committer's group (ACK_BATCH).
# TYPE ack_batch_size histogram
ack_batch_size_bucket{le=\"1\"} 2
ack_batch_size_bucket{le=\"+Inf\"} 5
ack_batch_size_sum 37
ack_batch_size_count 5
jobs_processed_total 37
";
    assert_eq!(ack_batches(text), (37.0, 5.0));
    assert_eq!(ack_batches("jobs_processed_total 37\n"), (0.0, 0.0));
}

/// A SIGKILL in the middle of a drain. The jobs in the dead process's running list at that
/// moment (the window: claimed, maybe run, not acknowledged) are recovered by the reaper and run
/// again as attempt 2; every other job ran once, and every job ends completed, counted once.
#[test]
fn sigkill_mid_drain_reruns_only_the_unacknowledged_window() {
    let began = Instant::now();
    let redis = RedisServer::start();
    // The API process and the second worker process reap; with RECOVERY_SECS=3 the killed
    // process's heartbeat lapses 2 s after the kill.
    let api = BinaryServer::spawn(
        &redis.url(),
        &env(&[("ROLE", "api"), ("RECOVERY_SECS", "3")]),
    );
    let ids = submit_paused(&api, &json!({"type": "noop"}));
    let worker_env = env(&[("ROLE", "worker"), ("RECOVERY_SECS", "3")]);
    let mut first = BinaryServer::spawn(&redis.url(), &worker_env);
    let first_id = process_id(&redis, &first);
    resume(&api);

    wait_for_completed(&redis, CUT_AT);
    first.signal("KILL");
    first
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("jobq pid {} survived SIGKILL for 5 s", first.pid()));
    // Nothing moves these jobs until its heartbeat lapses (2 s after its last beat) and a reaper
    // sees it: read now, this is exactly what it held unacknowledged.
    let window: BTreeSet<String> = running_list(&redis, &first_id).into_iter().collect();
    let done_at_kill = counter(&redis, "completed");
    eprintln!(
        "killed after {done_at_kill} of {TOTAL} jobs completed, {} in its running list",
        window.len()
    );
    assert!(
        done_at_kill < TOTAL as u64,
        "the drain ended before the kill: the test cut nothing"
    );
    assert!(
        !window.is_empty(),
        "eight busy workers held no job at the kill: the test cut nothing"
    );

    let second = BinaryServer::spawn(&redis.url(), &worker_env);
    let recs = wait_all_completed(&redis, &ids);
    let metrics = second.metrics();
    // Quick jobs finishing together were acknowledged in groups (ACK_BATCH, default 16).
    let (outcomes, calls) = ack_batches(&metrics);
    assert!(
        calls > 0.0 && outcomes > calls,
        "outcomes acknowledged in groups: {outcomes} outcomes in {calls} calls"
    );
    assert_eq!(
        metric_sum(&metrics, "jobs_processed_total"),
        Some((TOTAL as u64 - done_at_kill) as f64),
        "the second process ran every job not completed at the kill, each once"
    );

    assert_eq!(
        counter(&redis, "completed"),
        TOTAL as u64,
        "each job completed once, so counted once"
    );
    assert_eq!(counter(&redis, "created"), TOTAL as u64);
    assert_eq!(counter(&redis, "running"), 0);
    let in_window = |r: &Record| window.contains(&r.id);
    let (window_recs, others): (Vec<Record>, Vec<Record>) =
        recs.into_iter().partition(|r| in_window(r));
    assert_eq!(
        window_recs.len(),
        window.len(),
        "every job of the window is one of the submitted jobs"
    );
    assert_all(&others, "outside the window with attempt 1", |r| {
        r.attempt == Some(1) && r.error.is_none()
    });
    assert_all(&window_recs, "in the window with attempt 2", |r| {
        r.attempt == Some(2) && r.error.as_deref() == Some(DIED)
    });
    // A job of the window may have started in the killed process (or only been claimed); any
    // other job ran exactly once, in one process or the other.
    let (before, after) = (handler_runs(&first.log()), handler_runs(&second.log()));
    let runs: Vec<(&str, usize, usize)> = ids
        .iter()
        .map(|id| (id.as_str(), ran(&before, id), ran(&after, id)))
        .collect();
    assert_all(
        &runs,
        "run once (a job of the window: at most once before the kill, once after)",
        |&(id, before, after)| match window.contains(id) {
            true => before <= 1 && after == 1,
            false => before + after == 1,
        },
    );
    eprintln!(
        "of the window, {} job(s) had started before the kill",
        runs.iter()
            .filter(|&&(id, before, _)| window.contains(id) && before == 1)
            .count()
    );
    assert!(
        running_lists(&redis).is_empty(),
        "{:?}",
        running_lists(&redis)
    );
    let pending: i64 = redis.redis_cmd(&["LLEN", PENDING_KEY]);
    assert_eq!(pending, 0, "no job may be left in the ready list");
    let logs = api.log() + &second.log();
    assert!(
        logs.contains(&format!("worker process {first_id} stopped beating")),
        "a reaper should have recovered the killed process's jobs:\n{logs}"
    );
    eprintln!("took {:?}", began.elapsed());
}

/// Redis frozen (SIGSTOP) for 3 s in the middle of a drain: longer than the 1.5 s command
/// timeout, so acknowledgements in flight time out and are sent again, and some replies (an
/// acknowledgement's, a claim's) are lost after Redis has carried the call out. No job is
/// counted twice, none runs twice, and the same process finishes the drain.
#[test]
fn redis_frozen_mid_drain_counts_every_job_once() {
    let began = Instant::now();
    let redis = RedisServer::start();
    let mut server = BinaryServer::spawn(&redis.url(), &env(&[]));
    let ids = submit_paused(&server, &json!({"type": "noop"}));
    resume(&server);

    let done_at_stop = wait_for_completed(&redis, CUT_AT);
    redis.signal("STOP");
    std::thread::sleep(Duration::from_secs(3));
    redis.signal("CONT");
    eprintln!("Redis frozen for 3 s after {done_at_stop} of {TOTAL} jobs completed");
    assert!(
        done_at_stop < TOTAL as u64,
        "the drain ended before the freeze: the test cut nothing"
    );

    let recs = wait_all_completed(&redis, &ids);
    let metrics = server.metrics();
    // Quick jobs finishing together were acknowledged in groups (ACK_BATCH, default 16).
    let (outcomes, calls) = ack_batches(&metrics);
    assert!(
        calls > 0.0 && outcomes > calls,
        "outcomes acknowledged in groups: {outcomes} outcomes in {calls} calls"
    );
    // An outcome whose answer was lost is found stored when sent again, and then not counted
    // by this process a second time; every other one is counted once.
    let log = server.log();
    let resent = log.matches("no longer this process's to record").count();
    assert_eq!(
        metric_sum(&metrics, "jobs_processed_total"),
        Some((TOTAL - resent) as f64),
        "{resent} outcome(s) were sent again"
    );

    assert_eq!(
        counter(&redis, "completed"),
        TOTAL as u64,
        "an acknowledgement sent again must not count its jobs again"
    );
    assert_eq!(counter(&redis, "running"), 0);
    assert_all(&recs, "run once (attempt 1, no error)", |r| {
        r.attempt == Some(1) && r.error.is_none()
    });
    assert!(
        running_lists(&redis).is_empty(),
        "{:?}",
        running_lists(&redis)
    );
    assert!(
        server.wait_exit(Duration::ZERO).is_none(),
        "jobq exited while Redis was frozen:\n{}",
        server.log()
    );
    // No assertion on the log's "Redis … is unavailable" and "… is reachable again": the first
    // is written only when a call fails on a fresh connection, and a call's first timeout
    // (1.5 s, on a connection in use) plus its retry on a new one (1.5 s more) about fill a 3 s
    // freeze, so whether the lines appear is down to timing (in trials, in about half the runs).
    let runs = handler_runs(&log);
    let runs: Vec<(&str, usize)> = ids.iter().map(|id| (id.as_str(), ran(&runs, id))).collect();
    assert_all(&runs, "run once", |&(_, n)| n == 1);
    // What the freeze cut, for the record: acknowledgements whose answer was lost (found stored
    // when sent again) and claims whose answer was lost (put back, the claim not counted).
    eprintln!(
        "acknowledgements sent again: {resent}; claims put back: {}",
        log.matches("a lost Redis reply kept it from any worker")
            .count()
    );
    eprintln!("took {:?}", began.elapsed());
}

/// SIGTERM deep in a drain of short jobs: the running jobs finish and are acknowledged, the
/// jobs claimed but not started go back to the front of the queue uncounted, and the process
/// exits 0 holding nothing. Every job is then completed or pending in the ready list, and a new
/// process runs each pending one as its first attempt.
#[test]
fn sigterm_mid_drain_acknowledges_or_returns_every_job() {
    let began = Instant::now();
    let redis = RedisServer::start();
    let shutdown_secs = 10;
    let shutdown_env = env(&[("SHUTDOWN_TIMEOUT_SECS", "10")]);
    let mut first = BinaryServer::spawn(&redis.url(), &shutdown_env);
    // 10 ms each: short enough for outcomes to arrive together, long enough that at the SIGTERM
    // the workers are inside jobs, which the drain lets finish and acknowledges.
    let ids = submit_paused(&first, &json!({"type": "sleep", "payload": {"ms": 10}}));
    resume(&first);

    wait_for_completed(&redis, CUT_AT);
    first.signal("TERM");
    // The drain waits at most SHUTDOWN_TIMEOUT_SECS; the rest is slack for a loaded machine.
    let status = first
        .wait_exit(Duration::from_secs(shutdown_secs + 10))
        .unwrap_or_else(|| panic!("jobq still running after SIGTERM:\n{}", first.log()));
    assert_eq!(status.code(), Some(0), "{status}:\n{}", first.log());
    let log = first.log();
    let stopped = log.lines().find(|l| l.contains("] stopped: "));
    assert!(
        stopped.is_some_and(|l| l.ends_with("finished during the drain, 0 returned to pending")),
        "no 10 ms job should outlive a {shutdown_secs} s drain:\n{log}"
    );
    // jobq's signal handler begins the stop, then logs this line: the completions logged after
    // it are of jobs that were running, or being acknowledged, as the stop began.
    let after_signal = log
        .split_once("signal received: draining")
        .map_or("", |(_, rest)| rest);
    eprintln!(
        "{}; {} job(s) completed after the signal line, {} claimed job(s) handed back unstarted",
        stopped.unwrap_or_default(),
        after_signal.matches(") completed in ").count(),
        log.matches("returned to pending unstarted").count()
    );

    assert!(
        running_lists(&redis).is_empty(),
        "the stopped process holds no job: {:?}",
        running_lists(&redis)
    );
    assert_eq!(counter(&redis, "running"), 0);
    let recs = records(&redis, &ids);
    let completed = recs
        .iter()
        .filter(|r| r.status.as_deref() == Some("completed"))
        .count();
    let pending: Vec<&Record> = recs
        .iter()
        .filter(|r| r.status.as_deref() == Some("pending"))
        .collect();
    eprintln!(
        "stopped with {completed} of {TOTAL} completed, {} pending",
        pending.len()
    );
    assert_eq!(
        completed + pending.len(),
        TOTAL,
        "every job is completed or pending"
    );
    assert!(
        !pending.is_empty(),
        "the drain ended before the SIGTERM: the test cut nothing"
    );
    assert_eq!(counter(&redis, "completed"), completed as u64);
    assert_all(
        &recs,
        "completed with attempt 1 or pending unstarted",
        |r| {
            match r.status.as_deref() {
                Some("completed") => r.attempt == Some(1),
                // Never claimed (no attempt field: 0), or claimed and handed back (attempt 0
                // again); either way no start.
                _ => matches!(r.attempt, None | Some(0)) && r.started_at.is_none(),
            }
        },
    );
    let before = handler_runs(&log);
    let runs: Vec<(&Record, usize)> = recs.iter().map(|r| (r, ran(&before, &r.id))).collect();
    assert_all(
        &runs,
        "run once if completed, never if pending",
        |&(r, n)| match r.status.as_deref() {
            Some("completed") => n == 1,
            _ => n == 0,
        },
    );
    let ready: Vec<String> = redis.redis_cmd(&["LRANGE", PENDING_KEY, "0", "-1"]);
    let ready: BTreeSet<&str> = ready.iter().map(String::as_str).collect();
    let pending_ids: BTreeSet<&str> = pending.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ready, pending_ids,
        "the ready list holds exactly the pending jobs"
    );
    let queued: Option<String> = redis.redis_cmd(&["HGET", DEFAULT_QUEUE_META, "pending"]);
    assert_eq!(
        queued.as_deref(),
        Some(pending.len().to_string().as_str()),
        "the queue's pending count"
    );

    let second = BinaryServer::spawn(&redis.url(), &shutdown_env);
    let recs = wait_all_completed(&redis, &ids);
    let metrics = second.metrics();
    // Every outcome was recorded once, alone or in a group (10 ms jobs seldom finish
    // together, so most went alone, from their worker).
    let (outcomes, calls) = ack_batches(&metrics);
    assert!(
        calls > 0.0 && outcomes == pending.len() as f64,
        "outcomes recorded: {outcomes} outcomes in {calls} calls"
    );
    assert_eq!(
        metric_sum(&metrics, "jobs_processed_total"),
        Some(pending.len() as f64),
        "the second process ran every pending job, each once"
    );

    assert_eq!(counter(&redis, "completed"), TOTAL as u64);
    assert_all(&recs, "run once (attempt 1, no error)", |r| {
        r.attempt == Some(1) && r.error.is_none()
    });
    let after = handler_runs(&second.log());
    let runs: Vec<(&str, usize, usize)> = ids
        .iter()
        .map(|id| (id.as_str(), ran(&before, id), ran(&after, id)))
        .collect();
    assert_all(&runs, "run once over both processes", |&(_, a, b)| {
        a + b == 1
    });
    assert!(running_lists(&redis).is_empty());
    eprintln!("took {:?}", began.elapsed());
}
