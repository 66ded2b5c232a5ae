//! Named queues and flow control end to end, against a real redis-server and real `jobq`
//! processes ([`BinaryServer`]): queue weights and strict order, priorities, pause and resume of
//! a queue and of a type across processes, concurrency and rate limits, fair groups, slots given
//! back after a SIGKILL, snoozes, the circuit breaker, and every "why is it waiting" reason.
//!
//! Start order is read from each job's `started_at`: the Redis `TIME` (µs) of the claim that
//! started it, as `GET /jobs/{id}` shows it. One claim call is one script, so distinct claims
//! have distinct times; the jobs of one batch claim share one. For thousands of jobs the field
//! is read from the job records in a few pipelines rather than by thousands of HTTP requests.

use crate::harness::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Bound of the waits for a handful of jobs.
const WAIT: Duration = Duration::from_secs(30);

/// The error the reaper writes into a recovered job (src/worker/maintenance.rs).
const DIED: &str = "worker process died while running this job";

fn spawn(redis: &RedisServer, env: &[(&str, &str)]) -> BinaryServer {
    BinaryServer::spawn(&redis.url(), env)
}

/// Creates `jobs` through `POST /jobs/batch`, 1,000 a request; returns their ids in order.
fn submit_all(c: &Client, jobs: &[Value]) -> Vec<String> {
    let mut ids = Vec::with_capacity(jobs.len());
    for chunk in jobs.chunks(1000) {
        let r = c.post_json("/jobs/batch", &json!({ "jobs": chunk }));
        r.expect_status(201, "POST /jobs/batch");
        let v = r.json();
        let got = v["job_ids"]
            .as_array()
            .unwrap_or_else(|| panic!("no job_ids array: {v}"));
        assert_eq!(got.len(), chunk.len(), "{v}");
        ids.extend(
            got.iter()
                .map(|id| id.as_str().expect("a string id").to_string()),
        );
    }
    ids
}

/// A request that must answer 200 with JSON; returns the JSON.
fn call(c: &Client, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let r = c.request(method, path, body.as_bytes());
    r.expect_status(200, &format!("{method} {path} {body}"));
    r.json()
}

fn put_limits(c: &Client, target: &str, limits: Value) -> Value {
    call(c, "PUT", &format!("/{target}/limits"), Some(limits))
}

/// `waiting` of a job, asserting it is pending and has one.
fn waiting(c: &Client, id: &str) -> Value {
    let job = c.job(id);
    assert_eq!(job["status"], "pending", "{job}");
    let w = job["waiting"].clone();
    assert!(w.is_object(), "a pending job shows why it waits: {job}");
    w
}

fn reason(c: &Client, id: &str) -> String {
    waiting(c, id)["reason"].as_str().unwrap_or("").to_string()
}

/// Waits until job `id` waits for `want`; returns its `waiting`.
fn wait_reason(c: &Client, id: &str, want: &str) -> Value {
    wait_for(&format!("job {id} waiting for {want}"), WAIT, || {
        let job = c.job(id);
        match job["waiting"]["reason"].as_str() {
            Some(r) if r == want => Ok(job["waiting"].clone()),
            _ => Err(job.to_string()),
        }
    })
}

/// Waits until every job in `ids` has finished (completed or failed); returns them.
fn wait_finished(c: &Client, ids: &[String], timeout: Duration) -> Vec<Value> {
    wait_for(&format!("{} jobs to finish", ids.len()), timeout, || {
        let jobs: Vec<Value> = ids.iter().map(|id| c.job(id)).collect();
        let open: Vec<&Value> = jobs
            .iter()
            .filter(|j| !matches!(j["status"].as_str(), Some("completed" | "failed")))
            .collect();
        match open.first() {
            None => Ok(jobs),
            Some(j) => Err(format!("{} not finished, e.g. {j}", open.len())),
        }
    })
}

fn redis_conn(redis: &RedisServer) -> redis::Connection {
    let client = redis::Client::open(redis.url()).expect("a redis client");
    let conn = client.get_connection_with_timeout(Duration::from_secs(5));
    let conn = conn.unwrap_or_else(|e| panic!("connect to redis: {e}"));
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn
}

/// A time field (`started_at`, `completed_at`: µs since the epoch by Redis's clock, what
/// `GET /jobs/{id}` shows) of each job's record; panics for a job without it.
fn times_us(redis: &RedisServer, ids: &[String], field: &str) -> Vec<i64> {
    let mut conn = redis_conn(redis);
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let mut pipe = redis::pipe();
        for id in chunk {
            pipe.cmd("HGET").arg(job_key(id)).arg(field);
        }
        let got: Vec<Option<String>> = pipe.query(&mut conn).expect("HGET pipeline");
        for (id, v) in chunk.iter().zip(got) {
            let v = v.unwrap_or_else(|| panic!("job {id} has no {field}"));
            let us = v.parse::<f64>();
            out.push(us.unwrap_or_else(|e| panic!("job {id} {field} {v:?}: {e}")) as i64);
        }
    }
    out
}

/// Indexes into `ids` in the order the jobs started (ties, jobs of one batch claim, by index),
/// with their start times.
fn start_order(redis: &RedisServer, ids: &[String]) -> Vec<(usize, i64)> {
    let mut order: Vec<(usize, i64)> = times_us(redis, ids, "started_at")
        .into_iter()
        .enumerate()
        .collect();
    order.sort_by_key(|&(i, t)| (t, i));
    order
}

/// Writes an executable shell script into `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A HANDLERS_FILE defining each `(type, program)`; returns its path.
fn handlers_file(dir: &Path, types: &[(&str, &Path)]) -> String {
    let toml: String = types
        .iter()
        .map(|(name, prog)| {
            format!(
                "[commands.{name}]\nrun = [{:?}]\n\n",
                prog.display().to_string()
            )
        })
        .collect();
    let file = dir.join("handlers.toml");
    fs::write(&file, toml).unwrap();
    file.to_string_lossy().into_owned()
}

/// `redis-cli`, next to the redis-server the tests run.
fn redis_cli() -> PathBuf {
    let hint = "Run scripts/test, which installs it, or install the redis-server package.";
    let server = find_tool("JOBQ_TEST_REDIS_SERVER", "redis-server", hint);
    let cli = server.with_file_name("redis-cli");
    assert!(cli.is_file(), "no redis-cli next to {}", server.display());
    cli
}

fn running_of(c: &Client, target: &str) -> u64 {
    let v = call(c, "GET", &format!("/{target}"), None);
    v["running"]
        .as_u64()
        .unwrap_or_else(|| panic!("GET /{target}: no running count: {v}"))
}

// ------------------------------------------------------------------------------------------------
// Which job starts next: weights, strict order, priorities, groups
// ------------------------------------------------------------------------------------------------

#[test]
fn weighted_queues_share_the_starts_six_three_one() {
    // Counted starts, while every queue still has work; each queue holds a third more than its
    // share of them, so none runs dry inside the window unless its share is far too high.
    // Each start picks its queue at random by weight, so a count is binomial: over 6,000 starts
    // ±15% is 3.9 standard deviations for "low" (3,000 would make it 2.7, a flake in 150 runs).
    const COUNTED: usize = 6000;
    let plan = [("critical", 6, 4800), ("default", 3, 2400), ("low", 1, 800)];
    let redis = RedisServer::start();
    let api = spawn(&redis, &[("ROLE", "api"), ("MAX_QUEUE_SIZE", "10000")]);
    let mut ids = Vec::new();
    let mut queue_of = Vec::new();
    for (q, _, n) in plan {
        let jobs: Vec<Value> = (0..n)
            .map(|_| json!({"type": "noop", "queue": q}))
            .collect();
        ids.extend(submit_all(&api, &jobs));
        queue_of.extend(std::iter::repeat_n(q, n));
    }
    // Everything is waiting before the one worker starts: its first claim already sees all
    // three queues. One worker thread claims one job at a time, so starts are in claim order.
    let _worker = spawn(
        &redis,
        &[
            ("ROLE", "worker"),
            ("QUEUES", "critical:6,default:3,low:1"),
            ("NUM_WORKERS", "1"),
            ("LOG_LEVEL", "warn"),
        ],
    );
    let total = ids.len() as u64;
    api.wait_for_stat("completed_jobs", total, Duration::from_secs(120));

    let order = start_order(&redis, &ids);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for &(i, _) in &order[..COUNTED] {
        *counts.entry(queue_of[i]).or_default() += 1;
    }
    let weight_sum: usize = plan.iter().map(|(_, w, _)| w).sum();
    let mut report = Vec::new();
    for (q, w, n) in plan {
        let got = counts.get(q).copied().unwrap_or(0);
        assert!(
            got < n,
            "queue {q} ran dry inside the counted window ({got} of its {n} jobs started): {counts:?}"
        );
        let expected = (COUNTED * w) as f64 / weight_sum as f64;
        let off = (got as f64 - expected) / expected;
        report.push(format!(
            "{q} {got} (expected {expected:.0}, {:+.1}%)",
            off * 100.0
        ));
        assert!(
            off.abs() <= 0.15,
            "queue {q}: {got} of the first {COUNTED} starts, expected {expected:.0} ±15%: {counts:?}"
        );
    }
    eprintln!(
        "weights 6:3:1, first {COUNTED} starts: {}",
        report.join(", ")
    );
}

#[test]
fn strict_order_starts_every_critical_job_before_any_default_and_default_before_low() {
    const PER_QUEUE: usize = 150;
    let queues = ["critical", "default", "low"];
    let redis = RedisServer::start();
    let api = spawn(&redis, &[("ROLE", "api")]);
    for q in queues {
        call(&api, "POST", &format!("/queues/{q}/pause"), None);
    }
    let env = [
        ("ROLE", "worker"),
        ("QUEUE_ORDER", "strict"),
        ("QUEUES", "critical,default,low"),
        ("NUM_WORKERS", "2"),
        ("LOG_LEVEL", "warn"),
    ];
    let _w1 = spawn(&redis, &env);
    let _w2 = spawn(&redis, &env);
    // Submitted last queue first, so the order of creation cannot explain the order of starts.
    let mut ids: HashMap<&str, Vec<String>> = HashMap::new();
    for q in queues.iter().rev() {
        let jobs: Vec<Value> = (0..PER_QUEUE)
            .map(|i| json!({"type": "noop", "queue": q, "payload": {"i": i}}))
            .collect();
        ids.insert(q, submit_all(&api, &jobs));
    }
    // Resumed first queue first: whatever the order, strict order alone decides.
    for q in queues {
        call(&api, "POST", &format!("/queues/{q}/resume"), None);
    }
    let total = (PER_QUEUE * queues.len()) as u64;
    api.wait_for_stat("completed_jobs", total, Duration::from_secs(60));

    let span = |q: &str| {
        let t = times_us(&redis, &ids[q], "started_at");
        (*t.iter().min().unwrap(), *t.iter().max().unwrap())
    };
    let spans: Vec<(i64, i64)> = queues.iter().map(|q| span(q)).collect();
    for k in 0..2 {
        let (before, after) = (queues[k], queues[k + 1]);
        // `<=`: the last job of one queue and the first of the next may be taken in one batch
        // claim, which gives both the same start time.
        assert!(
            spans[k].1 <= spans[k + 1].0,
            "the last {before} job started {} µs after the first {after} job",
            spans[k].1 - spans[k + 1].0
        );
    }
    eprintln!(
        "strict: critical started over {} ms, then default over {} ms, then low over {} ms",
        (spans[0].1 - spans[0].0) / 1000,
        (spans[1].1 - spans[1].0) / 1000,
        (spans[2].1 - spans[2].0) / 1000
    );
}

#[test]
fn high_before_normal_before_low_fifo_within_a_level() {
    const N: usize = 60;
    let redis = RedisServer::start();
    // Two processes of one worker each: one claim per call, claims ordered by Redis.
    let env = [("NUM_WORKERS", "1"), ("LOG_LEVEL", "warn")];
    let a = spawn(&redis, &env);
    let _b = spawn(&redis, &env);
    call(&a, "POST", "/queues/prio/pause", None);
    let levels = ["low", "normal", "high"];
    let jobs: Vec<Value> = (0..N)
        .map(|i| json!({"type": "noop", "queue": "prio", "priority": levels[i % 3], "payload": {"i": i}}))
        .collect();
    let ids = submit_all(&a, &jobs);
    assert_eq!(reason(&a, &ids[0]), "queue_paused");
    let job = a.job(&ids[0]);
    assert_eq!(
        (&job["queue"], &job["priority"]),
        (&json!("prio"), &json!("low")),
        "{job}"
    );
    call(&a, "POST", "/queues/prio/resume", None);
    a.wait_for_stat("completed_jobs", N as u64, WAIT);

    let order = start_order(&redis, &ids);
    let started: Vec<usize> = order.iter().map(|&(i, _)| i).collect();
    let mut want = Vec::new();
    for level in ["high", "normal", "low"] {
        want.extend((0..N).filter(|i| levels[i % 3] == level));
    }
    assert_eq!(
        started, want,
        "start order (submission indexes; i % 3: 0 low, 1 normal, 2 high)"
    );
    let distinct = order.windows(2).all(|w| w[0].1 < w[1].1);
    assert!(
        distinct,
        "one claim per call, so no two starts share a time"
    );
}

#[test]
fn groups_of_1000_100_and_10_jobs_all_progress_from_the_start() {
    let sizes = [("big", 1000), ("mid", 100), ("small", 10)];
    let redis = RedisServer::start();
    let server = spawn(
        &redis,
        &[
            ("NUM_WORKERS", "2"),
            ("MAX_QUEUE_SIZE", "5000"),
            ("LOG_LEVEL", "warn"),
        ],
    );
    call(&server, "POST", "/queues/fair/pause", None);
    let mut ids = Vec::new();
    let mut group_of = Vec::new();
    // The big group first: first in, first out alone would run all of it before the others.
    for (g, n) in sizes {
        let jobs: Vec<Value> = (0..n)
            .map(|_| json!({"type": "noop", "queue": "fair", "group": g}))
            .collect();
        ids.extend(submit_all(&server, &jobs));
        group_of.extend(std::iter::repeat_n(g, n));
    }
    assert_eq!(server.job(&ids[0])["group"], "big");
    call(&server, "POST", "/queues/fair/resume", None);
    let total = ids.len() as u64;
    server.wait_for_stat("completed_jobs", total, Duration::from_secs(120));

    let order = start_order(&redis, &ids);
    let mut first30: HashMap<&str, usize> = HashMap::new();
    for &(i, _) in &order[..30] {
        *first30.entry(group_of[i]).or_default() += 1;
    }
    // The rank (1-based) of the last start of each group.
    let last_rank = |g: &str| order.iter().rposition(|&(i, _)| group_of[i] == g).unwrap() + 1;
    let done_at = |g: &str| {
        let of: Vec<String> = (0..ids.len())
            .filter(|&i| group_of[i] == g)
            .map(|i| ids[i].clone())
            .collect();
        *times_us(&redis, &of, "completed_at").iter().max().unwrap()
    };
    let (small_done, big_done) = (done_at("small"), done_at("big"));
    eprintln!(
        "fairness: first 30 starts {first30:?}; last start of small at rank {}, mid {}, big {} of {total}; \
         small done {} ms before big",
        last_rank("small"),
        last_rank("mid"),
        last_rank("big"),
        (big_done - small_done) / 1000
    );
    for (g, _) in sizes {
        let n = first30.get(g).copied().unwrap_or(0);
        assert!(
            n >= 9,
            "group {g} had {n} of the first 30 starts: {first30:?}"
        );
    }
    // In turn, three groups: the 10 small jobs are among the first 30 or so starts (a batch
    // claim of two shares a time, so allow a little), the 100 of mid among the first ~210.
    assert!(
        last_rank("small") <= 40,
        "small ended at rank {}",
        last_rank("small")
    );
    assert!(
        last_rank("mid") <= 260,
        "mid ended at rank {}",
        last_rank("mid")
    );
    assert_eq!(last_rank("big"), ids.len());
    assert!(small_done < big_done);
}

// ------------------------------------------------------------------------------------------------
// Pause and resume
// ------------------------------------------------------------------------------------------------

/// Waits until none of `ids` has started, after the workers have been idle for a moment.
fn assert_none_started(c: &Client, ids: &[String], want_reason: &str) {
    // The workers are free (what they ran has finished); give them time to take anything.
    std::thread::sleep(Duration::from_millis(600));
    for id in ids {
        let job = c.job(id);
        assert_eq!(job["status"], "pending", "{job}");
        assert_eq!(job["started_at"], Value::Null, "{job}");
        assert_eq!(job["waiting"]["reason"], want_reason, "{job}");
    }
}

#[test]
fn a_paused_queue_and_a_paused_type_start_nothing_on_any_process_until_resumed() {
    let redis = RedisServer::start();
    let env = [("NUM_WORKERS", "2")];
    let a = spawn(&redis, &env);
    let b = spawn(&redis, &env);
    let sleep = |q: &str, ms: u64| json!({"type": "sleep", "queue": q, "payload": {"ms": ms}});
    let noop = |q: &str| json!({"type": "noop", "queue": q});

    // A queue: four long jobs occupy the four workers (two a process), four wait behind them.
    let long = submit_all(&a, &vec![sleep("pq", 2500); 4]);
    for id in &long {
        a.wait_for_status(id, "running", WAIT);
    }
    let behind = submit_all(&b, &vec![sleep("pq", 50); 4]);
    let q = call(&b, "POST", "/queues/pq/pause", None);
    assert_eq!(q["paused"], true, "{q}");
    for id in &behind {
        assert_eq!(reason(&a, id), "queue_paused");
    }
    let w = waiting(&b, &behind[0]);
    assert!(w["detail"].as_str().unwrap_or("").contains("pq"), "{w}");
    assert_eq!(w["until"], Value::Null, "{w}");
    let others = submit_all(&b, &vec![noop("other"); 6]);
    // The running jobs finish, the other queue runs (on freed workers of either process).
    for job in wait_finished(&a, &long, WAIT) {
        assert_eq!(job["status"], "completed", "{job}");
        assert_eq!(job["attempt"], 1, "{job}");
    }
    for job in wait_finished(&a, &others, WAIT) {
        assert_eq!(job["status"], "completed", "{job}");
    }
    assert_none_started(&a, &behind, "queue_paused");
    let q = call(&a, "GET", "/queues/pq", None);
    assert_eq!(
        (q["paused"].clone(), q["running"].clone()),
        (json!(true), json!(0)),
        "{q}"
    );
    assert_eq!(q["pending"], 4, "{q}");
    let q = call(&a, "POST", "/queues/pq/resume", None);
    assert_eq!(q["paused"], false, "{q}");
    for job in wait_finished(&b, &behind, WAIT) {
        assert_eq!(job["status"], "completed", "{job}");
    }

    // A type: the same with sleep paused in one queue beside noop jobs.
    let long = submit_all(&a, &vec![sleep("mixed", 2500); 4]);
    for id in &long {
        a.wait_for_status(id, "running", WAIT);
    }
    let behind = submit_all(&b, &vec![sleep("mixed", 50); 4]);
    let t = call(&a, "POST", "/types/sleep/pause", None);
    assert_eq!(t["paused"], true, "{t}");
    let noops = submit_all(&b, &vec![noop("mixed"); 6]);
    for id in &behind {
        assert_eq!(reason(&b, id), "type_paused");
    }
    for job in wait_finished(&a, &long, WAIT) {
        assert_eq!(job["status"], "completed", "{job}");
    }
    for job in wait_finished(&a, &noops, WAIT) {
        assert_eq!(job["status"], "completed", "{job}");
    }
    assert_none_started(&b, &behind, "type_paused");
    let t = call(&b, "GET", "/types/sleep", None);
    assert_eq!(
        (t["paused"].clone(), t["running"].clone()),
        (json!(true), json!(0)),
        "{t}"
    );
    let t = call(&b, "POST", "/types/sleep/resume", None);
    assert_eq!(t["paused"], false, "{t}");
    for job in wait_finished(&a, &behind, WAIT) {
        assert_eq!(job["status"], "completed", "{job}");
    }
    // Both processes ran jobs (each had two of the four long ones at a time).
    for (name, s) in [("A", &a), ("B", &b)] {
        let m = s.metrics();
        let done = metric_sum(&m, "jobs_processed_total").unwrap_or(0.0);
        assert!(done >= 2.0, "process {name} ran {done} jobs");
    }
}

// ------------------------------------------------------------------------------------------------
// Limits
// ------------------------------------------------------------------------------------------------

#[test]
fn a_queue_concurrency_limit_of_3_holds_across_two_processes_of_8_workers() {
    const JOBS: usize = 60;
    let redis = RedisServer::start();
    let cli = redis_cli().display().to_string();
    let port = redis.port();
    // Each job counts itself in while it runs and records how many were in at that moment.
    let probe = |name: &str, secs: &str| {
        let body = format!(
            "cli={cli:?}\n\
             n=$(\"$cli\" -p {port} INCR flow:inside) || exit 1\n\
             \"$cli\" -p {port} RPUSH flow:seen \"$n\" >/dev/null || exit 1\n\
             sleep {secs}\n\
             \"$cli\" -p {port} DECR flow:inside >/dev/null || exit 1\n\
             echo \"$n\""
        );
        script(redis.dir(), name, &body)
    };
    let (fast, slow) = (probe("probe.sh", "0.15"), probe("slow.sh", "1.5"));
    let file = handlers_file(redis.dir(), &[("probe", &fast), ("slow_probe", &slow)]);
    let env = [
        ("NUM_WORKERS", "8"),
        ("HANDLERS_FILE", file.as_str()),
        ("LOG_LEVEL", "warn"),
        ("RECOVERY_SECS", "30"),
    ];
    let a = spawn(&redis, &env);
    let b = spawn(&redis, &env);
    let limits = put_limits(&a, "queues/lim", json!({"concurrency": 3}));
    assert_eq!(limits["concurrency"], 3, "{limits}");
    let job = |t: &str| json!({"type": t, "queue": "lim", "max_attempts": 1});

    // Every job is submitted at once, half through each process, so both processes' 16
    // workers want them; the limit alone keeps them to 3. While the other process waits, a
    // finished job's slot goes to whichever fetcher takes it first, so both run jobs.
    let mut ids = submit_all(&a, &vec![job("slow_probe"); 3]);
    ids.extend(submit_all(&b, &vec![job("probe"); (JOBS - 3) / 2]));
    ids.extend(submit_all(
        &a,
        &vec![job("probe"); JOBS - 3 - (JOBS - 3) / 2],
    ));
    let mut max_running = 0;
    wait_for("all probe jobs to finish", Duration::from_secs(60), || {
        max_running = max_running.max(running_of(&a, "queues/lim"));
        match a.stat("completed_jobs") + a.stat("failed_jobs") {
            n if n == JOBS as u64 => Ok(()),
            n => Err(format!("{n} of {JOBS} finished")),
        }
    });
    let jobs = wait_finished(&a, &ids, WAIT);
    assert!(jobs.iter().all(|j| j["status"] == "completed"), "{jobs:?}");
    let seen: Vec<u32> = redis.redis_cmd(&["LRANGE", "flow:seen", "0", "-1"]);
    assert_eq!(seen.len(), JOBS);
    let max = *seen.iter().max().unwrap();
    let ran_a = metric_sum(&a.metrics(), "jobs_processed_total").unwrap_or(0.0);
    let ran_b = metric_sum(&b.metrics(), "jobs_processed_total").unwrap_or(0.0);
    eprintln!(
        "concurrency limit 3: at most {max} jobs inside at once (seen by the jobs), GET /queues/lim \
         running at most {max_running}; process A ran {ran_a}, B ran {ran_b}"
    );
    assert!(
        max <= 3,
        "{max} jobs ran at once under a limit of 3: {seen:?}"
    );
    assert_eq!(max, 3, "the limit, not luck, should bound it: {seen:?}");
    assert!(
        max_running <= 3,
        "GET /queues/lim showed {max_running} running"
    );
    assert_eq!(ran_a + ran_b, JOBS as f64, "A {ran_a} + B {ran_b}");
    assert!(
        ran_a >= 3.0 && ran_b >= 3.0,
        "the processes share the limited queue: A ran {ran_a}, B {ran_b}"
    );
}

/// Starts of `jobs` noop jobs in a queue limited to 50 a second, on two processes of four
/// workers, all submitted up front; sorted, in µs.
fn starts_at_50_per_second(jobs: usize) -> Vec<i64> {
    let redis = RedisServer::start();
    let env = [("NUM_WORKERS", "4"), ("LOG_LEVEL", "warn")];
    let a = spawn(&redis, &env);
    let _b = spawn(&redis, &env);
    let rate = json!({"rate": {"limit": 50, "period_secs": 1}});
    assert_eq!(
        put_limits(&a, "queues/rl", rate.clone())["rate"],
        rate["rate"]
    );
    let all: Vec<Value> = (0..jobs)
        .map(|_| json!({"type": "noop", "queue": "rl"}))
        .collect();
    let ids = submit_all(&a, &all);
    let timeout = Duration::from_secs(10 + jobs as u64 / 25);
    a.wait_for_stat("completed_jobs", jobs as u64, timeout);
    start_order(&redis, &ids).iter().map(|&(_, t)| t).collect()
}

/// The most starts in a half-open second `[t, t + 1 s)`, and its `t` relative to the first
/// start. The fullest such window begins at a start, so only those are tried.
fn busiest_second(starts: &[i64]) -> (usize, i64) {
    let mut busiest = (0, 0);
    let mut end = 0;
    for (i, &t) in starts.iter().enumerate() {
        while end < starts.len() && starts[end] < t + 1_000_000 {
            end += 1;
        }
        if end - i > busiest.0 {
            busiest = (end - i, t - starts[0]);
        }
    }
    busiest
}

#[test]
fn a_rate_limit_of_50_per_second_never_lets_a_second_hold_more_than_50() {
    let starts = starts_at_50_per_second(150);
    let (most, at) = busiest_second(&starts);
    let min_gap = starts.windows(2).map(|w| w[1] - w[0]).min().unwrap();
    eprintln!(
        "rate 50/s, 150 jobs: busiest 1 s window {most} starts (at +{} ms), smallest gap between \
         starts {min_gap} µs, {} ms from first to last start",
        at / 1000,
        (starts[149] - starts[0]) / 1000
    );
    // No burst (GCRA): one start every 20 ms at most, so a half-open second holds at most 50.
    assert!(min_gap >= 20_000, "two starts {min_gap} µs apart");
    assert!(
        most <= 50,
        "{most} starts in the 1 s from +{} ms",
        at / 1000
    );
    // Not vacuous: close enough to the limit to test it (43-45 here; not 50: see the ignored
    // tests below for why starts come later than the limit allows).
    assert!(most >= 30, "only {most} starts in the busiest second");
}

#[test]
fn a_rate_limit_of_50_per_second_starts_500_in_10_seconds() {
    let starts = starts_at_50_per_second(600);
    let t0 = starts[0];
    let in_10s = starts.iter().filter(|&&t| t < t0 + 10_000_000).count();
    let (most, at) = busiest_second(&starts);
    let gaps: Vec<i64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    let mean_gap = gaps.iter().sum::<i64>() / gaps.len() as i64;
    eprintln!(
        "rate 50/s, 600 jobs: {in_10s} starts in the first 10 s (expected 500), busiest 1 s \
         window {most} starts (at +{} ms), gaps between starts: smallest {} µs, mean {mean_gap} µs",
        at / 1000,
        gaps.iter().min().unwrap()
    );
    assert!(
        most <= 50,
        "{most} starts in the 1 s from +{} ms",
        at / 1000
    );
    // Never more than the limit allows. Fewer when the machine is loaded: each start waits for
    // the fetcher's thread to wake, and a late start moves the next one on (GCRA keeps no
    // credit), so only a floor far above what pacing by Redis's 100 ms timer would give
    // (10 a second, 100 in 10 s) is asserted; the figure itself is printed above.
    assert!(
        (400..=525).contains(&in_10s),
        "{in_10s} starts in 10 s at 50/s; expected 500 (at most 525; at least 400 on a loaded machine)"
    );
}

#[test]
fn a_rate_limited_queue_is_paced_by_the_limit_not_by_redis_ticks() {
    let redis = RedisServer::start();
    let a = spawn(&redis, &[("NUM_WORKERS", "4"), ("LOG_LEVEL", "warn")]);
    let rate = json!({"rate": {"limit": 50, "period_secs": 1}});
    put_limits(&a, "queues/rl", rate);
    let all: Vec<Value> = (0..200)
        .map(|_| json!({"type": "noop", "queue": "rl"}))
        .collect();
    let ids = submit_all(&a, &all);
    // Nothing else talks to Redis meanwhile: no polling.
    std::thread::sleep(Duration::from_secs(3));
    let started: Vec<String> = ids
        .iter()
        .filter(|id| a.job(id)["started_at"].is_string())
        .cloned()
        .collect();
    let starts: Vec<i64> = start_order(&redis, &started)
        .iter()
        .map(|&(_, t)| t)
        .collect();
    let in_2s = starts
        .iter()
        .filter(|&&t| t < starts[0] + 2_000_000)
        .count();
    eprintln!(
        "rate 50/s, one quiet process: {in_2s} starts in the first 2 s (expected 100), {} in all",
        starts.len()
    );
    assert!(
        (90..=100).contains(&in_2s),
        "{in_2s} starts in 2 s at 50/s; expected 100 -10%"
    );
}

#[test]
fn concurrency_slots_come_back_when_a_process_is_killed() {
    let redis = RedisServer::start();
    let api = spawn(&redis, &[("ROLE", "api"), ("RECOVERY_SECS", "3")]);
    let worker_env = [
        ("ROLE", "worker"),
        ("NUM_WORKERS", "4"),
        ("RECOVERY_SECS", "3"),
    ];
    let mut a = spawn(&redis, &worker_env);
    put_limits(&api, "queues/kq", json!({"concurrency": 3}));
    put_limits(&api, "types/sleep", json!({"concurrency": 3}));
    let ids = submit_all(
        &api,
        &vec![json!({"type": "sleep", "queue": "kq", "payload": {"ms": 1500}}); 4],
    );
    wait_for("3 jobs running on A", WAIT, || {
        let q = running_of(&api, "queues/kq");
        let t = running_of(&api, "types/sleep");
        match (q, t) {
            (3, 3) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let held: Vec<Value> = ids.iter().map(|id| api.job(id)).collect();
    let pending: Vec<&Value> = held.iter().filter(|j| j["status"] == "pending").collect();
    assert_eq!(pending.len(), 1, "{held:?}");
    assert_eq!(
        pending[0]["waiting"]["reason"], "concurrency_limit",
        "{held:?}"
    );

    let killed = std::time::Instant::now();
    a.signal("KILL");
    a.wait_exit(Duration::from_secs(5))
        .expect("jobq survived SIGKILL");
    // The reaper (in the API process) takes the three jobs back: the slots are free again.
    let jobs = wait_for(
        "the killed process's jobs back and both running counts at 0",
        Duration::from_secs(20),
        || {
            let jobs: Vec<Value> = ids.iter().map(|id| api.job(id)).collect();
            let back = jobs.iter().filter(|j| j["error"] == DIED).count();
            let q = running_of(&api, "queues/kq");
            let t = running_of(&api, "types/sleep");
            match (back, q, t) {
                (3, 0, 0) => Ok(jobs),
                other => Err(format!("(reaped, queue running, type running) {other:?}")),
            }
        },
    );
    let reaped = killed.elapsed();
    assert!(jobs.iter().all(|j| j["status"] == "pending"), "{jobs:?}");

    // A new worker runs all four, within the limits: nothing was left counted.
    let _b = spawn(&redis, &worker_env);
    let mut most = 0;
    wait_for("all four to complete on B", WAIT, || {
        most = most.max(running_of(&api, "queues/kq"));
        match api.stat("completed_jobs") {
            4 => Ok(()),
            n => Err(format!("{n} completed")),
        }
    });
    eprintln!(
        "kill -9: queue and type running 3/3 before, 0/0 {reaped:?} after the SIGKILL \
         (RECOVERY_SECS=3); a new worker ran all 4 with at most {most} running"
    );
    assert!(most <= 3, "{most} running under a limit of 3");
    assert_eq!(running_of(&api, "queues/kq"), 0);
    assert_eq!(running_of(&api, "types/sleep"), 0);
}

// ------------------------------------------------------------------------------------------------
// Snooze and the circuit breaker
// ------------------------------------------------------------------------------------------------

#[test]
fn a_snoozing_command_uses_no_attempt_and_is_counted() {
    let redis = RedisServer::start();
    let count = redis.dir().join("count");
    let snoozy = script(
        redis.dir(),
        "snoozy.sh",
        &format!(
            "f={f:?}\nn=$(cat \"$f\" 2>/dev/null || echo 0)\nn=$((n + 1))\necho $n > \"$f\"\n\
             if [ $n -le 2 ]; then echo 0.2; exit 75; fi\necho '{{\"runs\": '$n'}}'",
            f = count.display().to_string()
        ),
    );
    let file = handlers_file(redis.dir(), &[("snoozy", &snoozy)]);
    let server = spawn(
        &redis,
        &[("NUM_WORKERS", "1"), ("HANDLERS_FILE", file.as_str())],
    );
    // One attempt allowed: a snooze that used one would leave none for the success.
    let id = server.submit(&json!({"type": "snoozy", "max_attempts": 1}));
    let job = server.wait_for_status(&id, "completed", WAIT);
    eprintln!("snooze: {job}");
    assert_eq!(job["attempt"], 1, "{job}");
    assert_eq!(job["snoozes"], 2, "{job}");
    assert_eq!(job["result"], json!({"runs": 3}), "{job}");
    let m = server.metrics();
    let labels = [("queue", "default"), ("type", "snoozy")];
    assert_eq!(
        metric_value(&m, "jobs_snoozed_total", &labels),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        metric_value(&m, "jobs_failed_total", &labels).unwrap_or(0.0),
        0.0,
        "{m}"
    );
}

#[test]
fn the_breaker_opens_after_3_failures_probes_after_the_cool_down_and_closes() {
    let redis = RedisServer::start();
    let broken = redis.dir().join("broken");
    fs::write(&broken, "").unwrap();
    let flaky = script(
        redis.dir(),
        "flaky.sh",
        &format!(
            "if [ -e {b:?} ]; then echo 'downstream is down' >&2; exit 1; fi\necho '{{\"ok\": true}}'",
            b = broken.display().to_string()
        ),
    );
    let file = handlers_file(redis.dir(), &[("flaky", &flaky)]);
    let env = [("NUM_WORKERS", "2"), ("HANDLERS_FILE", file.as_str())];
    let a = spawn(&redis, &env);
    let _b = spawn(&redis, &env);
    let breaker = json!({"breaker": {"consecutive": 3, "cooldown_secs": 1}});
    let set = put_limits(&a, "types/flaky", breaker);
    assert_eq!(set["breaker"]["consecutive"], 3, "{set}");
    let job = json!({"type": "flaky", "max_attempts": 1});

    let first = submit_all(&a, &vec![job.clone(); 3]);
    for j in wait_finished(&a, &first, WAIT) {
        assert_eq!(j["status"], "failed", "{j}");
    }
    let t = call(&a, "GET", "/types/flaky", None);
    assert_eq!(t["breaker"]["state"], "open", "{t}");
    assert!(t["breaker"]["until"].is_string(), "{t}");

    // While it fails, the jobs behind wait on the breaker (a probe after each cool-down fails
    // and opens it again).
    let rest = submit_all(&a, &vec![job; 5]);
    let w = wait_for("a job waiting for the breaker", WAIT, || {
        let js: Vec<Value> = rest.iter().map(|id| a.job(id)).collect();
        let w = js.iter().find(|j| j["waiting"]["reason"] == "circuit_open");
        w.map(|j| j["waiting"].clone()).ok_or(format!("{js:?}"))
    });
    assert!(w["detail"].as_str().unwrap_or("").contains("flaky"), "{w}");
    fs::remove_file(&broken).unwrap();

    let jobs = wait_finished(&a, &rest, WAIT);
    let t = call(&a, "GET", "/types/flaky", None);
    assert_eq!(t["breaker"]["state"], "closed", "{t}");
    let failed_probes = jobs.iter().filter(|j| j["status"] == "failed").count();
    let done: Vec<&Value> = jobs.iter().filter(|j| j["status"] == "completed").collect();
    assert_eq!(failed_probes + done.len(), rest.len());
    // Probes only fail while broken: at most one per cool-down in the few requests above.
    assert!(
        failed_probes <= 2,
        "{failed_probes} probes failed: {jobs:?}"
    );
    // The first success was the probe, alone: every other job started after it completed.
    let probe = done.iter().min_by_key(|j| ts_req(j, "started_at")).unwrap();
    let opened = first
        .iter()
        .map(|id| ts_req(&a.job(id), "completed_at"))
        .max()
        .unwrap();
    assert!(
        ts_req(probe, "started_at") >= opened + 1000,
        "the probe started {} ms after the breaker opened, before its 1 s cool-down ended",
        ts_req(probe, "started_at") - opened
    );
    let probe_done = ts_req(probe, "completed_at");
    for j in &done {
        if j["id"] != probe["id"] {
            assert!(
                ts_req(j, "started_at") >= probe_done,
                "job started before the probe {} completed: {j}",
                probe["id"]
            );
        }
    }
    eprintln!(
        "breaker: opened after 3 failures, {failed_probes} probe(s) failed while broken, then probe \
         {} succeeded and the other {} ran after it",
        probe["id"],
        done.len() - 1
    );
}

// ------------------------------------------------------------------------------------------------
// Why a job waits
// ------------------------------------------------------------------------------------------------

#[test]
fn every_waiting_reason_over_http() {
    let redis = RedisServer::start();
    let tp = script(redis.dir(), "tp.sh", "exit 0");
    let brk = script(redis.dir(), "brk.sh", "echo down >&2; exit 1");
    let file = handlers_file(redis.dir(), &[("tp", &tp), ("brk", &brk)]);
    let common = [("HANDLERS_FILE", file.as_str())];
    // No process serves every queue, and none serves "nobody".
    let a = spawn(
        &redis,
        &[common[0], ("QUEUES", "busy"), ("NUM_WORKERS", "1")],
    );
    let b = spawn(
        &redis,
        &[
            common[0],
            ("QUEUES", "main,paused,conc,rate,grp"),
            ("NUM_WORKERS", "4"),
            ("BACKOFF_BASE_MS", "60000"),
            ("BACKOFF_MAX_MS", "60000"),
        ],
    );
    let _other = spawn(&redis, &[common[0], ("QUEUES", "other")]);
    let sleep = |q: &str| json!({"type": "sleep", "queue": q, "payload": {"ms": 30_000}});
    let noop = |q: &str| json!({"type": "noop", "queue": q});
    let mut seen: Vec<(String, Value)> = Vec::new();
    // `until`: None, or how long after the job's creation it should be, in seconds (less a
    // little for what happened just before the job was created).
    let mut check = |id: &str, want: &str, until: Option<i64>, detail_has: &str| {
        let w = wait_reason(&b, id, want);
        match until {
            None => assert_eq!(w["until"], Value::Null, "{want}: {w}"),
            Some(secs) => {
                let job = b.job(id);
                let after = ts_req(&w, "until") - ts_req(&job, "created_at");
                assert!(
                    (secs * 1000 - 10_000..=secs * 1000 + 2_000).contains(&after),
                    "{want}: until is {after} ms after creation, expected about {secs} s: {job}"
                );
            }
        }
        let detail = w["detail"].as_str().unwrap_or("");
        assert!(detail.contains(detail_has), "{want}: {w}");
        seen.push((want.to_string(), w));
    };

    // queued: the one worker serving "busy" is busy.
    let running = a.submit(&sleep("busy"));
    a.wait_for_status(&running, "running", WAIT);
    check(&a.submit(&noop("busy")), "queued", None, "busy");
    // scheduled: a delay.
    check(
        &b.submit(&json!({"type": "noop", "queue": "main", "delay_ms": 60_000})),
        "scheduled",
        Some(60),
        "",
    );
    // backoff: a failed attempt, retried in a minute.
    check(
        &b.submit(&json!({"type": "fail", "queue": "main", "max_attempts": 3})),
        "backoff",
        Some(60),
        "",
    );
    // queue_paused.
    call(&b, "POST", "/queues/paused/pause", None);
    check(&b.submit(&noop("paused")), "queue_paused", None, "paused");
    // type_paused.
    call(&b, "POST", "/types/tp/pause", None);
    check(
        &b.submit(&json!({"type": "tp", "queue": "main"})),
        "type_paused",
        None,
        "tp",
    );
    // concurrency_limit: one at a time in "conc", and one is running.
    put_limits(&b, "queues/conc", json!({"concurrency": 1}));
    let id = b.submit(&sleep("conc"));
    b.wait_for_status(&id, "running", WAIT);
    check(&b.submit(&noop("conc")), "concurrency_limit", None, "conc");
    // rate_limit: one an hour in "rate", and one has started.
    put_limits(
        &b,
        "queues/rate",
        json!({"rate": {"limit": 1, "period_secs": 3600}}),
    );
    let id = b.submit(&noop("rate"));
    b.wait_for_status(&id, "completed", WAIT);
    check(&b.submit(&noop("rate")), "rate_limit", Some(3600), "rate");
    // group_limit: one at a time per group in "grp", and one of group g1 is running.
    put_limits(&b, "queues/grp", json!({"group": {"concurrency": 1}}));
    let mut in_g1 = sleep("grp");
    in_g1["group"] = json!("g1");
    let id = b.submit(&in_g1);
    b.wait_for_status(&id, "running", WAIT);
    check(
        &b.submit(&json!({"type": "noop", "queue": "grp", "group": "g1"})),
        "group_limit",
        None,
        "g1",
    );
    // circuit_open: one failure opens brk's breaker for an hour.
    let breaker = json!({"breaker": {"consecutive": 1, "cooldown_secs": 3600}});
    put_limits(&b, "types/brk", breaker);
    let id = b.submit(&json!({"type": "brk", "queue": "main", "max_attempts": 1}));
    b.wait_for_status(&id, "failed", WAIT);
    check(
        &b.submit(&json!({"type": "brk", "queue": "main"})),
        "circuit_open",
        Some(3600),
        "brk",
    );
    // no_worker: nobody serves "nobody".
    check(&b.submit(&noop("nobody")), "no_worker", None, "nobody");

    let reasons: Vec<&str> = seen.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(reasons.len(), 10, "{reasons:?}");
    for (r, w) in &seen {
        eprintln!("waiting {r}: {w}");
    }
}

/// A limits document changes the limits it names and no other: two changes of different limits
/// (made one after the other here, or at once by two clients) both stay.
#[test]
fn a_limits_document_changes_only_the_limits_it_names() {
    let redis = RedisServer::start();
    let a = spawn(&redis, &[("NUM_WORKERS", "0")]);
    put_limits(&a, "queues/q", json!({"concurrency": 3}));
    let both = put_limits(
        &a,
        "queues/q",
        json!({"rate": {"limit": 5, "period_secs": 1}}),
    );
    assert_eq!(both["concurrency"], 3, "{both}");
    assert_eq!(both["rate"]["limit"], 5, "{both}");
    let fewer = put_limits(&a, "queues/q", json!({"concurrency": null}));
    assert_eq!(fewer["concurrency"], Value::Null, "{fewer}");
    assert_eq!(fewer["rate"]["limit"], 5, "{fewer}");
    assert_eq!(call(&a, "GET", "/queues/q/limits", None), fewer);
}
