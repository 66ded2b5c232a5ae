//! Cron schedules: exactly one job per tick over several processes (one of them killed with
//! SIGKILL midway), missed windows with every process down (`missed: skip` and `run_once`),
//! SCHEDULES_FILE sync beside API schedules, the API's answers (bad pattern or time zone,
//! pause, resume, trigger) and `overlap: skip`.
//!
//! Which tick a job was made for is read from its record (`schedule`, `scheduled_for` in µs),
//! so the checks compare fire times, never the test's sense of how long something took.

use crate::harness::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const SEC: i64 = 1_000_000;

/// A time zone with DST where jobq has the time-zone database (the "tz" feature).
#[cfg(feature = "tz")]
const ZONE: &str = "Europe/Berlin";
#[cfg(not(feature = "tz"))]
const ZONE: &str = "UTC";

/// Every job record of schedule `name`: fire time (µs) → (job id, created_at µs), and how many
/// records named each fire time (a doubled tick shows as 2).
fn jobs_of(redis: &RedisServer, name: &str) -> (BTreeMap<i64, (String, i64)>, BTreeMap<i64, u32>) {
    let keys: Vec<String> = redis.redis_cmd(&["KEYS", "{jobq}:job:*"]);
    let mut jobs = BTreeMap::new();
    let mut seen = BTreeMap::new();
    for k in keys {
        let f: Vec<Option<String>> =
            redis.redis_cmd(&["HMGET", &k, "schedule", "scheduled_for", "created_at"]);
        if f[0].as_deref() != Some(name) {
            continue;
        }
        let at: i64 = f[1].as_deref().unwrap_or("0").parse().unwrap();
        let created: i64 = f[2].as_deref().unwrap_or("0").parse().unwrap();
        *seen.entry(at).or_insert(0) += 1;
        let id = k.trim_start_matches("{jobq}:job:").to_string();
        jobs.insert(at, (id, created));
    }
    (jobs, seen)
}

fn put(c: &Client, name: &str, doc: &Value) -> Resp {
    c.request(
        "PUT",
        &format!("/schedules/{name}"),
        doc.to_string().as_bytes(),
    )
}

/// A per-second schedule of `noop` jobs.
fn doc(missed: &str) -> Value {
    json!({"cron": "* * * * * *", "job": {"type": "noop"}, "missed": missed})
}

fn kill_hard(server: &mut BinaryServer) {
    server.signal("KILL");
    server
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("jobq pid {} survived SIGKILL for 5 s", server.pid()));
}

/// Three processes fire a per-second schedule for about 20 s; one is killed with SIGKILL
/// halfway. Every second from the first tick to the last made exactly one job.
#[test]
fn three_processes_make_exactly_one_job_per_tick_even_when_one_is_killed() {
    let redis = RedisServer::start();
    let env = [("RECOVERY_SECS", "3"), ("LOG_LEVEL", "warn")];
    let mut procs: Vec<BinaryServer> = (0..3)
        .map(|_| BinaryServer::spawn(&redis.url(), &env))
        .collect();
    let c = procs[0].client();
    put(&c, "tick", &doc("skip")).expect_status(201, "PUT /schedules/tick");
    std::thread::sleep(Duration::from_secs(10));
    kill_hard(&mut procs[2]);
    std::thread::sleep(Duration::from_secs(10));
    c.post_json("/schedules/tick/pause", &json!({}))
        .expect_status(200, "pause");
    let (jobs, seen) = jobs_of(&redis, "tick");
    let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "ticks made twice: {doubled:?}");
    let times: Vec<i64> = jobs.keys().copied().collect();
    assert!(
        times.len() >= 18,
        "only {} ticks in 20 s: {times:?}",
        times.len()
    );
    assert!(times.iter().all(|t| t % SEC == 0), "{times:?}");
    let gaps: Vec<_> = times
        .windows(2)
        .filter(|w| w[1] - w[0] != SEC)
        .map(|w| (w[0], w[1]))
        .collect();
    assert!(gaps.is_empty(), "ticks lost between {gaps:?}");
    // Each made on time: within the grace, so none was taken for missed.
    let late: Vec<_> = jobs
        .iter()
        .filter(|(at, (_, created))| created - *at > 2 * SEC)
        .collect();
    assert!(late.is_empty(), "made late: {late:?}");
    let s = c.get("/schedules/tick").json();
    assert_eq!(s["counts"]["fires"], times.len() as u64, "{s}");
    assert_eq!(s["counts"]["misses"], 0, "{s}");
}

/// Every process stopped for 5 s: the ticks of that window make no job with `missed: skip`,
/// exactly one with `missed: run_once`; both then go on with the next tick.
#[test]
fn a_window_with_every_process_down_is_missed_or_run_once() {
    let redis = RedisServer::start();
    let env = [("LOG_LEVEL", "warn")];
    let mut first = BinaryServer::spawn(&redis.url(), &env);
    let c = first.client();
    put(&c, "skip", &doc("skip")).expect_status(201, "PUT skip");
    put(&c, "once", &doc("run_once")).expect_status(201, "PUT once");
    std::thread::sleep(Duration::from_millis(2500));
    kill_hard(&mut first);
    std::thread::sleep(Duration::from_secs(5));
    let second = BinaryServer::spawn(&redis.url(), &env);
    let c = second.client();
    std::thread::sleep(Duration::from_millis(2500));
    for name in ["skip", "once"] {
        c.post_json(&format!("/schedules/{name}/pause"), &json!({}))
            .expect_status(200, "pause");
    }
    for (name, late_jobs) in [("skip", 0), ("once", 1)] {
        let (jobs, seen) = jobs_of(&redis, name);
        assert!(seen.values().all(|n| *n == 1), "{name}: {seen:?}");
        let times: Vec<i64> = jobs.keys().copied().collect();
        // One gap of at least the 5 s down (less the catch-up's tick), and else every second.
        let gaps: Vec<i64> = times
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|g| *g != SEC)
            .collect();
        assert_eq!(gaps.len(), 1, "{name}: {times:?}");
        assert!(gaps[0] >= 4 * SEC, "{name}: gap {gaps:?}");
        let late: Vec<_> = jobs
            .iter()
            .filter(|(at, (_, created))| created - *at > 2 * SEC)
            .collect();
        assert_eq!(late.len(), late_jobs, "{name}: {late:?} of {jobs:?}");
        let s = c.get(&format!("/schedules/{name}")).json();
        assert!(s["counts"]["misses"].as_u64().unwrap() >= 4, "{s}");
        if name == "once" {
            let (at, (id, _)) = late[0];
            // The catch-up job was made for the first tick of the window, after it.
            assert!(*at > jobs.keys().next().copied().unwrap(), "{jobs:?}");
            assert_eq!(c.job(id)["status"], "completed");
        }
    }
    let log = second.log();
    assert!(log.contains("schedule skip missed"), "{log}");
    assert!(log.contains("schedule once:"), "{log}");
}

#[test]
fn bad_documents_are_400s_naming_the_problem() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let cases = [
        (
            json!({"cron": "61 * * * *", "job": {"type": "noop"}}),
            "cron: \"61 * * * *\" is not a valid cron pattern",
        ),
        (
            json!({"cron": "* * * *", "job": {"type": "noop"}}),
            "cron: \"* * * *\" has 4 fields",
        ),
        (
            json!({"cron": "* * * * *", "timezone": "Mars/Olympus", "job": {"type": "noop"}}),
            if cfg!(feature = "tz") {
                "timezone: unknown time zone \"Mars/Olympus\""
            } else {
                "timezone: time zone \"Mars/Olympus\" is not available"
            },
        ),
        (
            json!({"cron": "* * * * *", "job": {"type": "fax"}}),
            "job: unknown job type \"fax\"",
        ),
        (
            json!({"cron": "* * * * *", "job": {"type": "sleep", "payload": {}}}),
            "job: invalid payload for \"sleep\" job",
        ),
        (
            json!({"cron": "* * * * *", "job": {"type": "noop", "max_attempts": 0}}),
            "job: \"max_attempts\" must be between 1 and 1000",
        ),
        (
            json!({"cron": "* * * * *", "job": {"type": "noop", "run_at": "2030-01-01T00:00:00Z"}}),
            "job.run_at: unknown field",
        ),
        (
            json!({"cron": "* * * * *", "job": {"type": "noop"}, "overlap": "no"}),
            "overlap: \"no\": expected \"allow\" or \"skip\"",
        ),
        (json!({"cron": "* * * * *"}), "job: is required"),
        (json!([]), "invalid request"),
    ];
    #[cfg(not(feature = "tz"))]
    let cases = cases.into_iter().chain([(
        json!({"cron": "* * * * *", "timezone": "Europe/Berlin", "job": {"type": "noop"}}),
        "timezone: time zone \"Europe/Berlin\" is not available: this jobq was built without the \"tz\" feature",
    )]);
    for (body, want) in cases {
        let r = put(&server.client(), "s", &body);
        let msg = r.expect_json_error(400, &body.to_string());
        assert!(msg.contains(want), "{body}: {msg:?} lacks {want:?}");
    }
    let r = server.request("PUT", "/schedules/s", b"{\"cron\": ");
    r.expect_json_error(400, "malformed");
    let r = put(&server.client(), "a%20b", &doc("skip"));
    let msg = r.expect_json_error(400, "bad name");
    assert!(msg.contains("schedule name \"a b\""), "{msg}");
    for path in [
        "/schedules/none",
        "/schedules/none/pause",
        "/schedules/none/trigger",
    ] {
        let method = if path == "/schedules/none" {
            "GET"
        } else {
            "POST"
        };
        server
            .request(method, path, b"")
            .expect_json_error(404, path);
    }
    server
        .request("DELETE", "/schedules/none", b"")
        .expect_json_error(404, "delete none");
    assert_eq!(server.get("/schedules").json(), json!({"schedules": []}));
}

#[test]
fn pause_resume_and_trigger() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let c = server.client();
    let hourly =
        json!({"cron": "@hourly", "timezone": ZONE, "job": {"type": "noop", "queue": "cron"}});
    let s = put(&c, "h", &hourly);
    s.expect_status(201, "create");
    let s = s.json();
    assert_eq!(s["source"], "api");
    assert_eq!(s["timezone"], ZONE);
    assert_eq!(s["overlap"], "allow");
    assert_eq!(s["missed"], "skip");
    assert_eq!(s["last_run"], Value::Null);
    let runs: Vec<i64> = s["next_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| parse_rfc3339_ms(t.as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(runs.len(), 5, "{s}");
    assert!(runs.windows(2).all(|w| w[1] - w[0] == 3_600_000), "{s}");
    assert!(runs.iter().all(|t| t % 3_600_000 == 0), "{s}");
    // The same document again: 200, unchanged.
    put(&c, "h", &hourly).expect_status(200, "again");

    let p = c.post_json("/schedules/h/pause", &json!({}));
    p.expect_status(200, "pause");
    assert_eq!(p.json()["paused"], true);
    assert_eq!(p.json()["next_runs"], json!([]));
    // A trigger makes one job now, paused or not.
    let t = c.post_json("/schedules/h/trigger", &json!({}));
    t.expect_status(201, "trigger");
    let id = t.json()["job_id"].as_str().unwrap().to_string();
    let job = server.wait_for_status(&id, "completed", Duration::from_secs(10));
    assert_eq!(job["queue"], "cron");
    assert_eq!(job["schedule"], "h", "{job}");
    let s = c.get("/schedules/h").json();
    assert_eq!(s["last_run"]["job_id"], id.as_str(), "{s}");
    assert_eq!(s["last_run"]["kind"], "trigger", "{s}");
    assert_eq!(s["last_run"]["status"], "completed", "{s}");
    assert_eq!(s["counts"]["triggers"], 1, "{s}");
    let r = c.post_json("/schedules/h/resume", &json!({}));
    r.expect_status(200, "resume");
    assert_eq!(r.json()["paused"], false);
    assert_eq!(r.json()["next_runs"].as_array().unwrap().len(), 5);

    // A per-second schedule, paused: no tick while paused.
    put(&c, "fast", &doc("skip")).expect_status(201, "fast");
    let ticked = wait_for("a tick of fast", Duration::from_secs(5), || {
        let s = c.get("/schedules/fast").json();
        if s["counts"]["fires"].as_u64() >= Some(1) {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    });
    assert_eq!(ticked["last_run"]["kind"], "tick");
    c.post_json("/schedules/fast/pause", &json!({}))
        .expect_status(200, "pause fast");
    let before = c.get("/schedules/fast").json()["counts"]["fires"].clone();
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(c.get("/schedules/fast").json()["counts"]["fires"], before);
    let list = c.get("/schedules").json();
    let names: Vec<&str> = list["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fast", "h"]);
    let d = c.request("DELETE", "/schedules/fast", b"");
    d.expect_status(200, "delete");
    assert_eq!(d.json(), json!({"deleted": "fast"}));
    c.get("/schedules/fast").expect_json_error(404, "deleted");
    let m = c.metrics();
    assert!(m.contains("schedule_fires_total{schedule=\"fast\"}"), "{m}");
}

/// `overlap: skip` with jobs that take 2.5 s and a tick every second: no tick makes a job while
/// the last one's is pending or running.
#[test]
fn overlap_skip_makes_no_job_while_the_last_one_runs() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let c = server.client();
    let d = json!({"cron": "* * * * * *", "overlap": "skip", "job": {"type": "sleep", "payload": {"ms": 2500}}});
    put(&c, "slow", &d).expect_status(201, "slow");
    std::thread::sleep(Duration::from_millis(6500));
    c.post_json("/schedules/slow/pause", &json!({}))
        .expect_status(200, "pause");
    let (jobs, _) = jobs_of(&redis, "slow");
    let times: Vec<i64> = jobs.keys().copied().collect();
    assert!((2..=3).contains(&times.len()), "{times:?}");
    assert!(
        times.windows(2).all(|w| w[1] - w[0] >= 3 * SEC),
        "a job made while the last ran: {times:?}"
    );
    let s = c.get("/schedules/slow").json();
    assert!(s["counts"]["skips"].as_u64().unwrap() >= 3, "{s}");
}

const FILE_V1: &str = r#"
[schedules.report]
cron = "0 3 * * *"
job = { type = "noop" }

[schedules.cleanup]
cron = "@daily"
job = { type = "noop", queue = "maintenance" }

[schedules.mine]
cron = "@hourly"
job = { type = "noop" }
"#;

const FILE_V2: &str = r#"
[schedules.report]
cron = "30 4 * * *"
timezone = "ZONE"
missed = "run_once"
job = { type = "noop" }

[schedules.weekly]
cron = "@weekly"
job = { type = "noop" }
"#;

#[test]
fn schedules_file_is_synced_by_name_and_api_schedules_are_kept() {
    let redis = RedisServer::start();
    // An API schedule first, named like one of the file's.
    {
        let server = TestServer::start(&redis, |_| {});
        put(
            &server.client(),
            "mine",
            &json!({"cron": "*/5 * * * *", "job": {"type": "noop"}}),
        )
        .expect_status(201, "mine");
    }
    let with_file = |text: &str| {
        let file =
            jobq::SchedulesFile::parse(&text.replace("ZONE", ZONE), "schedules.toml").unwrap();
        TestServer::start(&redis, move |c| c.schedules_file = Some(file))
    };
    let server = with_file(FILE_V1);
    let c = server.client();
    let all = c.get("/schedules").json();
    let by_name = |all: &Value| -> BTreeMap<String, Value> {
        all["schedules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["name"].as_str().unwrap().to_string(), s.clone()))
            .collect()
    };
    let s = by_name(&all);
    assert_eq!(s.keys().collect::<Vec<_>>(), ["cleanup", "mine", "report"]);
    assert_eq!(s["report"]["source"], "file");
    assert_eq!(s["cleanup"]["job"]["queue"], "maintenance");
    assert_eq!(
        s["mine"]["source"], "api",
        "the file does not take an API schedule"
    );
    assert_eq!(s["mine"]["cron"], "*/5 * * * *");
    // The API may pause a file schedule, not change or delete it.
    let msg = put(&c, "report", &doc("skip")).expect_json_error(409, "PUT file schedule");
    assert!(msg.contains("declared in SCHEDULES_FILE"), "{msg}");
    let msg = c
        .request("DELETE", "/schedules/report", b"")
        .expect_json_error(409, "DELETE file schedule");
    assert!(msg.contains("declared in SCHEDULES_FILE"), "{msg}");
    c.post_json("/schedules/cleanup/pause", &json!({}))
        .expect_status(200, "pause a file schedule");
    drop(server);

    let server = with_file(FILE_V2);
    let s = by_name(&server.get("/schedules").json());
    assert_eq!(s.keys().collect::<Vec<_>>(), ["mine", "report", "weekly"]);
    assert_eq!(s["report"]["cron"], "30 4 * * *", "changed");
    assert_eq!(s["report"]["missed"], "run_once");
    assert_eq!(s["weekly"]["source"], "file", "added");
    assert_eq!(s["mine"]["source"], "api", "kept");
    let first = parse_rfc3339_ms(s["report"]["next_runs"][0].as_str().unwrap()).unwrap();
    // 04:30 in Berlin is 02:30 or 03:30 UTC.
    let utc_minutes = (first / 60_000) % (24 * 60);
    let want: &[i64] = if ZONE == "UTC" { &[270] } else { &[150, 210] };
    assert!(want.contains(&utc_minutes), "{}", s["report"]);
    drop(server);

    // The same file again changes nothing.
    let server = with_file(FILE_V2);
    assert_eq!(by_name(&server.get("/schedules").json()).len(), 3);
}

#[test]
fn a_bad_schedules_file_stops_the_start_with_file_line_and_column() {
    let redis = RedisServer::start();
    let dir = temp_dir("schedules-file");
    for (text, want) in [
        (
            "[schedules.a]\ncron = \"* * * * * * * *\"\njob = { type = \"noop\" }\n",
            ":2:8: [schedules.a] cron: \"* * * * * * * *\" has 8 fields",
        ),
        (
            "[schedules.a]\ncron = \"@daily\"\njob = { type = \"fax\" }\n",
            ":3:7: [schedules.a] job: unknown job type \"fax\"",
        ),
    ] {
        let path = dir.join("s.toml");
        std::fs::write(&path, text).unwrap();
        let mut p =
            BinaryServer::launch(&redis.url(), &[("SCHEDULES_FILE", path.to_str().unwrap())]);
        let status = p.wait_exit(Duration::from_secs(10)).expect("exits");
        assert_eq!(status.code(), Some(2), "{}", p.stderr());
        let err = p.stderr();
        assert!(err.contains(want), "{err}");
    }
}
