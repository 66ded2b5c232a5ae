//! Graceful shutdown: of the real binary on SIGTERM/SIGINT, and of an embedded server through
//! `Running::shutdown`. Running jobs finish within SHUTDOWN_TIMEOUT_SECS or go back to pending.

use crate::harness::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn status_in_redis(redis: &RedisServer, id: &str) -> Option<String> {
    redis.redis_cmd(&["HGET", &job_key(id), "status"])
}

#[test]
fn sigterm_lets_the_running_job_finish_and_exits_0() {
    let redis = RedisServer::start();
    let mut server = BinaryServer::spawn(&redis.url(), &[("SHUTDOWN_TIMEOUT_SECS", "10")]);
    let id = server.submit(&json!({"type": "sleep", "payload": {"ms": 1500}}));
    server.wait_for_status(&id, "running", Duration::from_secs(10));

    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| {
            panic!(
                "jobq did not exit within 15 s of SIGTERM; log:\n{}",
                server.log()
            )
        });
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status}; log:\n{}",
        server.log()
    );
    assert_eq!(
        status_in_redis(&redis, &id).as_deref(),
        Some("completed"),
        "the running job should have finished during the drain"
    );
    let log = server.log();
    assert!(
        log.to_ascii_lowercase().contains("drain"),
        "the log should report the drain:\n{log}"
    );
}

#[test]
fn sigint_after_the_timeout_puts_the_running_job_back_to_pending() {
    let redis = RedisServer::start();
    let mut server = BinaryServer::spawn(&redis.url(), &[("SHUTDOWN_TIMEOUT_SECS", "1")]);
    let id = server.submit(&json!({"type": "sleep", "payload": {"ms": 60_000}}));
    server.wait_for_status(&id, "running", Duration::from_secs(10));

    server.signal("INT");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| {
            panic!(
                "jobq did not exit within 10 s of SIGINT with SHUTDOWN_TIMEOUT_SECS=1; log:\n{}",
                server.log()
            )
        });
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGINT: {status}; log:\n{}",
        server.log()
    );
    assert_eq!(
        status_in_redis(&redis, &id).as_deref(),
        Some("pending"),
        "a job cut off by the shutdown timeout goes back to pending"
    );
    let pending: Vec<String> = redis.redis_cmd(&["LRANGE", PENDING_KEY, "0", "-1"]);
    assert!(
        pending.contains(&id),
        "job {id} should be back in {PENDING_KEY}: {pending:?}"
    );
    drop(server);

    // A new process on the same Redis picks it up again.
    let next = TestServer::start(&redis, |c| c.shutdown_timeout_secs = 1);
    let job = next.wait_for_status(&id, "running", Duration::from_secs(15));
    assert!(job["attempt"].as_u64().is_some_and(|a| a >= 1), "{job}");
}

#[test]
fn second_signal_during_a_drain_exits_at_once() {
    let redis = RedisServer::start();
    let mut server = BinaryServer::spawn(&redis.url(), &[("SHUTDOWN_TIMEOUT_SECS", "60")]);
    let id = server.submit(&json!({"type": "sleep", "payload": {"ms": 60_000}}));
    server.wait_for_status(&id, "running", Duration::from_secs(10));

    let log_before = server.log().len();
    server.signal("INT");
    // Let the first signal be seen: wait for the process to log something about it (bounded;
    // if it logs nothing we go on after the wait and only the exit matters).
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let log = server.log();
        let new = log.get(log_before..).unwrap_or("").to_ascii_lowercase();
        if new.contains("shut") || new.contains("drain") || new.contains("signal") {
            break;
        }
        std::thread::sleep(POLL);
    }
    assert!(
        server.wait_exit(Duration::from_millis(1)).is_none(),
        "with SHUTDOWN_TIMEOUT_SECS=60 and a 60 s job, jobq should still be draining; log:\n{}",
        server.log()
    );

    server.signal("INT");
    let second = Instant::now();
    let status = server.wait_exit(Duration::from_secs(3));
    assert!(
        status.is_some(),
        "jobq did not exit within 3 s of the second SIGINT; log:\n{}",
        server.log()
    );
    assert!(second.elapsed() < Duration::from_secs(4));
}

#[test]
fn idle_server_exits_0_on_sigterm() {
    let redis = RedisServer::start();
    let mut server = BinaryServer::spawn(&redis.url(), &[]);
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("idle jobq did not exit on SIGTERM; log:\n{}", server.log()));
    assert_eq!(status.code(), Some(0), "{status}; log:\n{}", server.log());
}

#[test]
fn bad_config_value_exits_2_naming_the_variable() {
    let redis = RedisServer::start();
    let mut server = BinaryServer::launch(&redis.url(), &[("NUM_WORKERS", "lots")]);
    let status = server
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| {
            panic!(
                "jobq with NUM_WORKERS=lots is still running; log:\n{}",
                server.log()
            )
        });
    assert_eq!(status.code(), Some(2), "{status}; log:\n{}", server.log());
    let stderr = server.stderr();
    assert!(
        stderr.contains("NUM_WORKERS"),
        "stderr should name NUM_WORKERS:\n{stderr}"
    );
}

#[test]
fn embedded_shutdown_finishes_the_running_job_and_leaves_the_queue_alone() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| {
        c.num_workers = 1;
        c.shutdown_timeout_secs = 10;
    });
    let running = server.submit(&json!({"type": "sleep", "payload": {"ms": 2000}}));
    server.wait_for_status(&running, "running", Duration::from_secs(10));
    let waiting = server.submit(&json!({"type": "noop"}));

    let report = server.stop().expect("graceful shutdown");
    assert_eq!(report.finished, 1, "the running job finished in the drain");
    assert_eq!(report.requeued, 0);
    assert_eq!(
        status_in_redis(&redis, &running).as_deref(),
        Some("completed")
    );
    assert_eq!(
        status_in_redis(&redis, &waiting).as_deref(),
        Some("pending"),
        "no new job is started once shutdown has begun"
    );
}

#[test]
fn embedded_shutdown_requeues_a_job_that_outlives_the_timeout() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| {
        c.num_workers = 1;
        c.shutdown_timeout_secs = 1;
    });
    let id = server.submit(&json!({"type": "sleep", "payload": {"ms": 60_000}}));
    server.wait_for_status(&id, "running", Duration::from_secs(10));

    let began = Instant::now();
    let report = server.stop().expect("graceful shutdown");
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "shutdown with a 1 s timeout took {:?}",
        began.elapsed()
    );
    assert_eq!(report.requeued, 1, "the sleeping job goes back to pending");
    assert_eq!(report.finished, 0);
    assert_eq!(status_in_redis(&redis, &id).as_deref(), Some("pending"));
    let pending: Vec<String> = redis.redis_cmd(&["LRANGE", PENDING_KEY, "0", "-1"]);
    assert!(pending.contains(&id));
}
