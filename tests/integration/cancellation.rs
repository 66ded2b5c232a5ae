//! Cancellation at every stage: pending, scheduled, waiting (each ended at once, atomically),
//! running built-in (its handler stops), running command (its whole process group is gone),
//! by filter with a dry run, and a cancelled job's process killed -9 (the reaper ends it
//! cancelled). Progress is visible while a job runs.

use crate::harness::*;
use jobq::{JobContext, JobError, JobResult};
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn cancel(server: &Client, id: &str) -> (u16, Value) {
    let r = server.post_json(&format!("/jobs/{id}/cancel"), &json!({}));
    (r.status, r.json())
}

#[test]
fn pending_scheduled_and_waiting_jobs_are_cancelled_at_once() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    server
        .post_json("/queues/held/pause", &json!({}))
        .expect_status(200, "pause");
    let pending = server.submit(&json!({"type": "noop", "queue": "held"}));
    let scheduled = server.submit(&json!({"type": "noop", "delay_ms": 60000}));
    let parent = server.submit(&json!({"type": "noop", "queue": "held"}));
    let waiting = server.submit(&json!({"type": "noop", "depends_on": [parent]}));
    let child = server.submit(&json!({"type": "noop", "depends_on": [waiting]}));
    let w = server.job(&waiting);
    assert_eq!(w["status"], "waiting", "{w}");
    assert_eq!(w["waiting"]["reason"], "parents", "{w}");
    assert!(
        w["waiting"]["detail"].as_str().unwrap().contains(&parent),
        "{w}"
    );
    assert_eq!(server.stats()["waiting_jobs"], 2);

    for (id, stage) in [
        (&pending, "pending"),
        (&scheduled, "scheduled"),
        (&waiting, "waiting"),
    ] {
        let (status, v) = cancel(&server, id);
        assert_eq!(
            (status, v["status"].clone()),
            (200, json!("cancelled")),
            "{v}"
        );
        let job = server.job(id);
        assert_eq!(job["status"], "cancelled", "{stage}: {job}");
        assert!(job["started_at"].is_null(), "{job}");
    }
    // The waiting job's own child went with it.
    assert_eq!(server.job(&child)["status"], "cancelled");
    // A second cancel is a 409 naming the job; an unknown id a 404.
    let (status, v) = cancel(&server, &pending);
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["job_id"], json!(pending));
    let (status, _) = cancel(&server, "550e8400-e29b-41d4-a716-446655440000");
    assert_eq!(status, 404);

    // Every count is back where it was: only the paused parent waits.
    let stats = server.stats();
    assert_eq!(stats["pending_jobs"], 1, "{stats}");
    assert_eq!(stats["scheduled_jobs"], 0, "{stats}");
    assert_eq!(stats["waiting_jobs"], 0, "{stats}");
    assert_eq!(stats["failed_jobs"], 0, "{stats}");
    let metrics = server.metrics();
    for (queue, stage) in [
        ("held", "pending"),
        ("default", "scheduled"),
        ("default", "waiting"),
    ] {
        assert!(
            metric_value(
                &metrics,
                "jobs_cancelled_total",
                &[("queue", queue), ("type", "noop"), ("stage", stage)]
            )
            .unwrap_or(0.0)
                >= 1.0,
            "{queue} {stage}: {metrics}"
        );
    }
    // The paused parent still runs once resumed: cancelling its child did not touch it.
    server
        .post_json("/queues/held/resume", &json!({}))
        .expect_status(200, "resume");
    server.wait_for_status(&parent, "completed", WAIT);
}

#[test]
fn a_running_builtin_job_stops_and_ends_cancelled_without_a_retry() {
    let redis = RedisServer::start();
    let server = TestServer::with_registry(
        &redis,
        |r| {
            r.register("steps", |job: &JobContext| -> JobResult {
                for i in 0..600u32 {
                    job.progress((i / 6) as u8, &format!("step {i}"));
                    if !job.cancel.sleep(Duration::from_millis(50)) {
                        return Err(JobError::cancelled(format!("stopped at step {i}")));
                    }
                }
                Ok(json!("done"))
            });
        },
        |_| {},
    );
    let id = server.submit(&json!({"type": "steps", "max_attempts": 5}));
    server.wait_for_status(&id, "running", WAIT);
    // Progress shows while it runs.
    let job = wait_for("progress", WAIT, || {
        let job = server.job(&id);
        match job["progress"]["percent"].as_u64() {
            Some(_) => Ok(job),
            None => Err(job.to_string()),
        }
    });
    assert!(
        job["progress"]["message"]
            .as_str()
            .unwrap()
            .starts_with("step "),
        "{job}"
    );
    let (status, v) = cancel(&server, &id);
    assert_eq!(
        (status, v["status"].clone()),
        (202, json!("cancelling")),
        "{v}"
    );
    let job = server.wait_for_status(&id, "cancelled", WAIT);
    assert_eq!(job["attempt"], 1, "never retried: {job}");
    assert!(
        job["error"].as_str().unwrap().contains("stopped at step"),
        "{job}"
    );
    assert_eq!(server.get("/dlq").json()["total"], 0);
    let stats = server.wait_for_stat("running_jobs", 0, WAIT);
    assert_eq!(stats["failed_jobs"], 0, "{stats}");
}

/// Pids of the live processes whose command line contains `marker`.
fn live_pids(marker: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(raw) = fs::read(entry.path().join("cmdline")) {
            if String::from_utf8_lossy(&raw).contains(marker) {
                out.push(name);
            }
        }
    }
    out
}

#[test]
fn a_running_command_job_loses_its_whole_process_group() {
    use std::os::unix::fs::PermissionsExt;
    let redis = RedisServer::start();
    let dir = temp_dir("cancel-command");
    let marker = format!("jobq-cancel-{}-{}", std::process::id(), now_ms());
    let sleeper = dir.join(&marker);
    fs::copy(
        ["/bin/sleep", "/usr/bin/sleep"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("a sleep binary"),
        &sleeper,
    )
    .unwrap();
    // A child in the background, a TERM trap that ignores the signal: only SIGKILL after the
    // grace ends it.
    let script = dir.join("stubborn.sh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\ntrap '' TERM\n\"{0}\" 300 &\n\"{0}\" 301\n",
            sleeper.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let toml = dir.join("handlers.toml");
    fs::write(
        &toml,
        format!(
            "[commands.stubborn]\nrun = [{:?}]\n",
            script.display().to_string()
        ),
    )
    .unwrap();
    let path = toml.to_string_lossy().into_owned();
    let server = TestServer::start(&redis, move |c| {
        c.handlers_file = Some(jobq::HandlersFile::load(&path).unwrap());
        c.cancel_grace_secs = 1;
    });
    let id = server.submit(&json!({"type": "stubborn"}));
    server.wait_for_status(&id, "running", WAIT);
    wait_for("both sleeps to run", WAIT, || {
        match live_pids(&marker).len() {
            2 => Ok(()),
            n => Err(format!("{n} running")),
        }
    });
    let (status, _) = cancel(&server, &id);
    assert_eq!(status, 202);
    let job = server.wait_for_status(&id, "cancelled", WAIT);
    assert!(job["error"].as_str().unwrap().contains("SIGKILL"), "{job}");
    let left = live_pids(&marker);
    assert!(left.is_empty(), "still running after cancel: {left:?}");
}

#[test]
fn bulk_cancel_counts_first_then_cancels_the_selection() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    server
        .post_json("/queues/bulk/pause", &json!({}))
        .expect_status(200, "pause");
    for i in 0..6 {
        let kind = if i % 2 == 0 { "noop" } else { "sleep" };
        server.submit(&json!({"type": kind, "queue": "bulk", "payload": {"ms": 1}}));
    }
    server.submit(&json!({"type": "noop", "queue": "bulk", "delay_ms": 60000}));
    let body = json!({"queue": "bulk", "type": "noop", "dry_run": true});
    let dry = server.post_json("/jobs/cancel", &body).json();
    assert_eq!(dry["matched"], 4, "{dry}");
    assert_eq!(
        server.stats()["pending_jobs"],
        6,
        "a dry run changes nothing"
    );
    let body = json!({"queue": "bulk", "type": "noop", "status": ["pending"]});
    let done = server.post_json("/jobs/cancel", &body).json();
    assert_eq!(done["matched"], 3, "{done}");
    assert_eq!(done["more"], false, "{done}");
    let stats = server.stats();
    assert_eq!(stats["pending_jobs"], 3, "{stats}");
    assert_eq!(stats["scheduled_jobs"], 1, "{stats}");
    let everything = server.post_json("/jobs/cancel", &json!({"status": ["pending"]}));
    everything.expect_json_error(400, "no queue, type or group");
    let bad = server.post_json(
        "/jobs/cancel",
        &json!({"queue": "bulk", "status": ["completed"]}),
    );
    bad.expect_json_error(400, "an ended status");
}

#[test]
fn a_cancelled_job_whose_process_dies_is_ended_cancelled_by_the_reaper() {
    let redis = RedisServer::start();
    let worker = BinaryServer::spawn(
        &redis.url(),
        &[("ENABLE_DIAGNOSTIC_JOBS", "true"), ("RECOVERY_SECS", "3")],
    );
    let api = TestServer::start(&redis, |c| {
        c.num_workers = 0;
        c.recovery_secs = 3;
    });
    // A sleep that ignores nothing: kill -9 the process before the cancellation reaches it.
    let id = api.submit(&json!({"type": "sleep", "payload": {"ms": 60000}}));
    api.wait_for_status(&id, "running", WAIT);
    worker.signal("STOP");
    let (status, _) = cancel(&api, &id);
    assert_eq!(status, 202);
    worker.signal("KILL");
    let job = api.wait_for_status(&id, "cancelled", Duration::from_secs(30));
    assert_eq!(job["attempt"], 1, "{job}");
    drop(worker);
    let stats = api.wait_for_stat("running_jobs", 0, WAIT);
    assert_eq!(stats["pending_jobs"], 0, "{stats}");
}
