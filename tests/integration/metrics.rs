//! `GET /metrics`: the Prometheus text format, its counters and gauges, promtool's verdict, and the
//! shipped alerting rules (deploy/prometheus/) against both.
//!
//! Counters are per process, so tests that assert on their values use the real binary.

use crate::harness::*;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn metrics_count_created_and_processed_jobs() {
    let redis = RedisServer::start();
    let server = BinaryServer::spawn(&redis.url(), &[]);
    let ids: Vec<String> = (0..2)
        .map(|_| server.submit(&json!({"type": "noop"})))
        .collect();
    for id in &ids {
        server.wait_for_status(id, "completed", Duration::from_secs(10));
    }
    let text = wait_for(
        "jobs_processed_total >= 2.0",
        Duration::from_secs(5),
        || {
            let text = server.metrics();
            match metric_sum(&text, "jobs_processed_total") {
                Some(n) if n >= 2.0 => Ok(text),
                n => Err(format!("jobs_processed_total = {n:?}")),
            }
        },
    );
    assert_eq!(metric_sum(&text, "jobs_created_total"), Some(2.0), "{text}");
    assert_eq!(
        metric_sum(&text, "jobs_processed_total"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric_sum(&text, "jobs_failed_total").unwrap_or(0.0),
        0.0,
        "{text}"
    );
    assert_eq!(
        metric_sum(&text, "jobs_dlq_total").unwrap_or(0.0),
        0.0,
        "{text}"
    );
    assert_eq!(
        metric_sum(&text, "job_processing_duration_seconds_count"),
        Some(2.0),
        "{text}"
    );
    assert!(
        metric_sum(&text, "job_processing_duration_seconds_sum").is_some_and(|s| s >= 0.0),
        "{text}"
    );
    assert_eq!(
        metric_value(
            &text,
            "job_processing_duration_seconds_bucket",
            &[("le", "+Inf")]
        ),
        Some(2.0),
        "{text}"
    );
}

#[test]
fn metrics_expose_every_documented_family_as_text() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let id = server.submit(&json!({"type": "noop"}));
    server.wait_for_status(&id, "completed", Duration::from_secs(10));

    let r = server.get("/metrics");
    r.expect_status(200, "GET /metrics");
    let ct = r.header("content-type").unwrap_or("");
    assert!(
        ct.starts_with("text/plain"),
        "Prometheus text should be text/plain, got {ct:?}"
    );
    for family in [
        "jobs_created_total",
        "jobs_processed_total",
        "jobs_failed_total",
        "jobs_retried_total",
        "jobs_dlq_total",
        "job_processing_duration_seconds",
        "queue_size",
    ] {
        assert!(
            r.body
                .lines()
                .any(|l| l.starts_with("# TYPE ") && l.split_whitespace().nth(2) == Some(family)),
            "no # TYPE line for {family}:\n{}",
            r.body
        );
    }
    assert!(
        r.body
            .lines()
            .any(|l| l.starts_with("# TYPE job_processing_duration_seconds histogram")),
        "job_processing_duration_seconds should be a histogram:\n{}",
        r.body
    );
    assert!(
        metric_value(&r.body, "queue_size", &[("state", "pending")]).is_some(),
        "queue_size{{state=\"pending\"}} missing:\n{}",
        r.body
    );
}

#[test]
fn queue_size_gauge_shows_pending_jobs() {
    let redis = RedisServer::start();
    let server = BinaryServer::spawn(&redis.url(), &[("NUM_WORKERS", "0")]);
    for _ in 0..2 {
        server.submit(&json!({"type": "noop"}));
    }
    wait_for(
        "queue_size{state=\"pending\"} == 2",
        Duration::from_secs(10),
        || {
            let text = server.metrics();
            match metric_value(&text, "queue_size", &[("state", "pending")]) {
                Some(2.0) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    );
}

#[test]
fn metrics_pass_promtool_check() {
    let promtool = promtool();
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    // Give every family samples: a success, a retried failure that ends in the DLQ.
    let ok = server.submit(&json!({"type": "noop"}));
    let bad = server.submit(&json!({
        "type": "fail",
        "payload": {"message": "for the metrics"},
        "max_attempts": 2
    }));
    server.wait_for_status(&ok, "completed", Duration::from_secs(10));
    server.wait_for_status(&bad, "failed", Duration::from_secs(15));
    let text = server.metrics();

    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {} check metrics: {e}", promtool.display()));
    child
        .stdin
        .take()
        .expect("promtool stdin")
        .write_all(text.as_bytes())
        .expect("write metrics to promtool");
    let out = child.wait_with_output().expect("wait for promtool");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(
        out.status.success() && problems.is_empty(),
        "promtool check metrics: {}; problems:\n{}\n--- metrics ---\n{text}",
        out.status,
        problems.join("\n")
    );
}

/// Every answer is counted by route pattern and status, refused submissions included, so an
/// operator sees them; the bearer scheme is accepted in any case; JSON bodies end with a newline.
#[test]
fn refused_requests_are_counted_by_route_and_status() {
    const TOKEN: &str = "metrics-token-0123456789abcdef";
    let redis = RedisServer::start();
    let server = BinaryServer::spawn(
        &redis.url(),
        &[
            ("API_TOKEN", TOKEN),
            ("NUM_WORKERS", "0"),
            ("MAX_QUEUE_SIZE", "1"),
            ("MAX_BODY_BYTES", "256"),
        ],
    );
    let auth = format!("bearer {TOKEN}");
    let with_token = [("Authorization", auth.as_str())];
    let send = |method: &str, path: &str, headers: &[(&str, &str)], body: &str, want: u16| {
        let r = server.request_with(method, path, headers, body.as_bytes());
        r.expect_status(want, &format!("{method} {path} {body}"));
        assert!(r.body.ends_with('\n'), "{method} {path}: {:?}", r.body);
    };
    let noop = r#"{"type":"noop"}"#;
    send("POST", "/jobs", &[], noop, 401);
    send("POST", "/jobs", &with_token, "{", 400);
    send(
        "POST",
        "/jobs",
        &with_token,
        &format!("{{\"type\":\"noop\",\"payload\":\"{}\"}}", "x".repeat(300)),
        413,
    );
    send("POST", "/jobs", &with_token, noop, 201);
    send("POST", "/jobs", &with_token, noop, 503);
    send(
        "POST",
        "/jobs/batch",
        &with_token,
        r#"{"jobs":[{"type":"noop"}]}"#,
        503,
    );
    send("GET", "/no/such/route", &with_token, "", 404);
    let unknown = "/jobs/8d3e8a0e-4a53-4c2b-9c1e-2f6f1f0b9a11";
    send("GET", unknown, &with_token, "", 404);

    let r = server.request_with("GET", "/metrics", &with_token, b"");
    r.expect_status(200, "GET /metrics with a lower-case bearer scheme");
    let count = |route: &str, status: &str| {
        metric_value(
            &r.body,
            "http_requests_total",
            &[("route", route), ("status", status)],
        )
    };
    for (route, status) in [
        ("/jobs", "401"),
        ("/jobs", "400"),
        ("/jobs", "413"),
        ("/jobs", "201"),
        ("/jobs", "503"),
        ("/jobs/batch", "503"),
        ("unmatched", "404"),
        ("/jobs/{id}", "404"),
    ] {
        assert_eq!(
            count(route, status),
            Some(1.0),
            "{route} {status}:\n{}",
            r.body
        );
    }
    assert!(
        !r.body.contains("/no/such/route") && !r.body.contains("8d3e8a0e"),
        "paths and ids are not labels:\n{}",
        r.body
    );
}

/// The harness's sample reader, which the metric assertions rely on, sums the right samples.
#[test]
fn harness_reads_prometheus_samples() {
    let text = "# HELP x_total help\n# TYPE x_total counter\nx_total 3\n\
                y{type=\"a\",state=\"pending\"} 2\ny{type=\"b\",state=\"pending\"} 5\n\
                y{type=\"b\",state=\"running\"} 7 1700000000\nh_bucket{le=\"+Inf\"} 4\n";
    assert_eq!(metric_sum(text, "x_total"), Some(3.0));
    assert_eq!(metric_value(text, "y", &[("state", "pending")]), Some(7.0));
    assert_eq!(metric_sum(text, "y"), Some(14.0));
    assert_eq!(metric_value(text, "h_bucket", &[("le", "+Inf")]), Some(4.0));
    assert_eq!(metric_sum(text, "missing"), None);
}

#[test]
fn stats_history_counts_the_minute_s_jobs() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    // The scheduler's first tick takes this minute's snapshot: wait for it, so the jobs below
    // are counted in a minute that has one.
    let points = |query: &str| -> Vec<Value> {
        let r = server.get(&format!("/stats/history?{query}"));
        r.expect_status(200, "GET /stats/history");
        r.json()["points"].as_array().unwrap().clone()
    };
    wait_for("a snapshot", Duration::from_secs(10), || {
        match points("minutes=1").last().map(|p| p["created"].is_null()) {
            Some(false) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    for _ in 0..5 {
        server.submit(&json!({"type": "noop", "queue": "hist"}));
    }
    server.wait_for_stat("completed_jobs", 5, Duration::from_secs(10));
    // The jobs may fall in two minutes when one turns meanwhile: count over the last two.
    let sum =
        |pts: &[Value], field: &str| -> i64 { pts.iter().filter_map(|p| p[field].as_i64()).sum() };
    let all = points("minutes=2");
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(sum(&all, "created"), 5, "{all:?}");
    assert_eq!(sum(&all, "completed"), 5, "{all:?}");
    let q = points("minutes=2&queue=hist");
    assert_eq!(sum(&q, "created"), 5, "{q:?}");
    assert!(q[0].get("cancelled").is_none(), "{q:?}");
    let bad = server.get("/stats/history?minutes=4321");
    bad.expect_json_error(400, "more than 72 hours");
}

/// The promtool the tests use.
fn promtool() -> std::path::PathBuf {
    find_tool(
        "JOBQ_TEST_PROMTOOL",
        "promtool",
        "Run scripts/test, which installs it (Debian package prometheus), or set \
         JOBQ_TEST_PROMTOOL to its path.",
    )
}

/// deploy/prometheus/alerts.yml is valid, and its unit tests (alerts_test.yml: each alert
/// firing on the series that should fire it, and not on those that should not) pass.
#[test]
fn shipped_alert_rules_pass_promtool_check_and_their_unit_tests() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ] {
        let out = Command::new(promtool())
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap_or_else(|e| panic!("run promtool {}: {e}", args.join(" ")));
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every metric the shipped alerts use is one jobq exports, so no alert watches a series
/// that never exists; and `redis_up`, which JobqRedisDown watches, follows Redis.
#[test]
fn the_alerts_use_only_metrics_jobq_exports_and_redis_up_follows_redis() {
    let rules = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/alerts.yml"),
    )
    .expect("read alerts.yml");
    // Metric names are the expressions' words with an underscore (label names and functions
    // have none here).
    let mut used: Vec<String> = rules
        .lines()
        .skip_while(|l| !l.contains("groups:"))
        .filter(|l| !l.trim_start().starts_with('#') && !l.contains("description:"))
        .filter(|l| !l.contains("summary:") && !l.contains("alert:"))
        .flat_map(|l| {
            l.split(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .filter(|w| w.contains('_') && !w.starts_with('_'))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    used.sort();
    used.dedup();
    assert!(
        used.len() >= 6,
        "metric names found in alerts.yml: {used:?}"
    );

    let mut redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let ok = server.submit(&json!({"type": "noop"}));
    server.wait_for_status(&ok, "completed", Duration::from_secs(10));
    let text = server.metrics();
    for name in &used {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "alerts.yml uses {name}, which /metrics does not export"
        );
    }
    assert_eq!(metric_value(&text, "redis_up", &[]), Some(1.0));
    redis.stop();
    let down = server.metrics();
    assert_eq!(
        metric_value(&down, "redis_up", &[]),
        Some(0.0),
        "redis_up once Redis is gone"
    );
}

/// deploy/grafana/jobq.json, linted offline: every panel has a title, a place and targets on
/// the provisioned Prometheus data source; every query is valid PromQL (promtool checks them
/// as recording rules) and uses only metrics jobq exports.
#[test]
fn the_shipped_grafana_dashboard_queries_valid_promql_over_jobqs_metrics() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana");
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy.join("jobq.json")).expect("read jobq.json"),
    )
    .expect("jobq.json is JSON");
    let source = std::fs::read_to_string(deploy.join("provisioning/datasources/prometheus.yml"))
        .expect("read the data source provisioning");
    assert!(source.contains("uid: prometheus"), "{source}");
    let provider = std::fs::read_to_string(deploy.join("provisioning/dashboards/jobq.yml"))
        .expect("read the dashboard provisioning");
    assert!(
        provider.contains("path: /var/lib/grafana/dashboards"),
        "{provider}"
    );
    assert_eq!(dash["uid"], "jobq");
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8, "{} panels", panels.len());
    let mut exprs = Vec::new();
    for p in panels {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "a panel without a title: {p}");
        assert!(
            p["gridPos"]["w"].as_u64().is_some_and(|w| w > 0),
            "{title}: gridPos"
        );
        assert_eq!(p["datasource"]["uid"], "prometheus", "{title}: data source");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            exprs.push(t["expr"].as_str().expect("expr").to_string());
        }
    }

    // PromQL syntax and types: promtool checks each query as a recording rule.
    let dir = temp_dir("grafana-lint");
    let rules: String = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| format!("      - record: dashboard:query{i}\n        expr: {e:?}\n"))
        .collect();
    let file = dir.join("dashboard_rules.yml");
    std::fs::write(
        &file,
        format!("groups:\n  - name: dashboard\n    rules:\n{rules}"),
    )
    .expect("write the rules");
    let out = Command::new(promtool())
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("run promtool check rules");
    assert!(
        out.status.success(),
        "a dashboard query is not valid PromQL:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Metric names are the queries' words with an underscore (label names here have none); a
    // histogram's series are its name with _bucket, _sum or _count.
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let ok = server.submit(&json!({"type": "noop"}));
    server.wait_for_status(&ok, "completed", Duration::from_secs(10));
    let text = server.metrics();
    for e in &exprs {
        for word in e
            .split(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .filter(|w| w.contains('_') && !w.starts_with('_') && *w != "histogram_quantile")
        {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| word.strip_suffix(s))
                .filter(|base| text.contains(&format!("# TYPE {base} histogram")))
                .unwrap_or(word);
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "the dashboard queries {word}, which /metrics does not export: {e}"
            );
        }
    }
}

/// `queue_workers` (which JobqNoLiveWorker watches) counts the worker threads of the live
/// processes that serve each queue, from their heartbeats: a process with QUEUES counts for
/// its queues only, one without for every queue, and one that stopped for none.
#[test]
fn queue_workers_counts_the_live_threads_serving_each_queue() {
    let redis = RedisServer::start();
    let mail_only = BinaryServer::spawn(&redis.url(), &[("QUEUES", "mail"), ("NUM_WORKERS", "2")]);
    let every = BinaryServer::spawn(&redis.url(), &[("NUM_WORKERS", "3")]);
    // Paused so the jobs stay pending and the queues are listed.
    for q in ["mail", "other"] {
        mail_only
            .post_json(&format!("/queues/{q}/pause"), &json!({}))
            .expect_status(200, "pause");
        mail_only.submit(&json!({"type": "noop", "queue": q}));
    }
    let workers = |server: &BinaryServer, q: &str| {
        metric_value(&server.metrics(), "queue_workers", &[("queue", q)])
    };
    wait_for(
        "both processes' heartbeats",
        Duration::from_secs(20),
        || match (workers(&mail_only, "mail"), workers(&mail_only, "other")) {
            (Some(5.0), Some(3.0)) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    // The same figures from either process: they are read from Redis.
    assert_eq!(workers(&every, "mail"), Some(5.0));
    every.signal("TERM");
    wait_for(
        "the stopped process to leave",
        Duration::from_secs(40),
        || match (workers(&mail_only, "mail"), workers(&mail_only, "other")) {
            (Some(2.0), Some(0.0)) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
}
