//! The built-in dashboard at `/ui/`: how its files are served (types, the page's own
//! Content-Security-Policy, the redirect, caching, who may load them), and the dashboard in a
//! real headless Chromium (`harness::browser`) against a real jobq and Redis: every page loads
//! cleanly, counts move, search finds one failure among 10,000 jobs, a failure group drains,
//! the explorer retries and deletes what its filter selects, a queue pauses and resumes, a running job is cancelled, the read-only token sees no
//! action, and the refresh moves no layout and stops while the tab is hidden. Each page's
//! screenshot is kept under `target/test-artifacts/dashboard/`.
//!
//! The page's hooks: `main[data-page]` gets `data-ready="1"` after its first load (and
//! `data-id` on a job's or workflow's page); rows carry `data-job`, `data-queue`, `data-group`,
//! `data-schedule` or `data-worker`; state-changing buttons `data-action`, and the in-page
//! confirm dialog is `#confirm` with `#confirm-ok`.

use crate::harness::browser::{artifacts_dir, Browser};
use crate::harness::*;
use jobq::{JobContext, JobError, JobResult};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "it-token-5d41402abc4b2a76b9719d91";

/// The policy the dashboard's files carry: nothing inline, nothing from elsewhere.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

#[test]
fn the_dashboard_files_are_served_with_their_own_policy() {
    let redis = RedisServer::start();
    // The files are public even when the API needs a token: they hold no data.
    let server = TestServer::start(&redis, |c| c.api_token = Some(TOKEN.into()));

    let r = server.get("/ui");
    r.expect_status(308, "GET /ui");
    assert_eq!(r.header("location"), Some("/ui/"), "{r:?}");

    let mut etags = Vec::new();
    for (path, ty, needle) in [
        (
            "/ui/",
            "text/html; charset=utf-8",
            "<script type=\"module\" src=\"app.js\"",
        ),
        (
            "/ui/app.js",
            "text/javascript; charset=utf-8",
            "from './lib.js'",
        ),
        (
            "/ui/lib.js",
            "text/javascript; charset=utf-8",
            "export async function api(",
        ),
        (
            "/ui/pages.js",
            "text/javascript; charset=utf-8",
            "export const PAGES",
        ),
        (
            "/ui/app.css",
            "text/css; charset=utf-8",
            "prefers-color-scheme",
        ),
        ("/ui/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let r = server.get(path);
        r.expect_status(200, path);
        assert_eq!(r.header("content-type"), Some(ty), "{path}");
        assert_eq!(
            r.header("content-security-policy"),
            Some(PAGE_POLICY),
            "{path}"
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{path}");
        assert!(r.body.contains(needle), "{path}: {}", r.body);
        etags.push(r.header("etag").expect("an ETag").to_string());

        let head = server.request("HEAD", path, b"");
        head.expect_status(200, &format!("HEAD {path}"));
        assert!(head.body.is_empty(), "HEAD {path} has no body");
        assert_eq!(head.header("content-type"), Some(ty), "HEAD {path}");
    }
    // One build, one tag; sent back, it gets a 304 without a body.
    assert!(etags.windows(2).all(|w| w[0] == w[1]), "{etags:?}");
    let r = server.request_with("GET", "/ui/app.js", &[("If-None-Match", &etags[0])], b"");
    r.expect_status(304, "GET /ui/app.js with its ETag");
    assert!(r.body.is_empty());

    let msg = server
        .get("/ui/secrets.json")
        .expect_json_error(404, "an unknown dashboard file");
    assert!(msg.contains("/ui/"), "{msg}");
    server
        .get("/ui/app.js/x")
        .expect_json_error(404, "below a file");
    let r = server.request("POST", "/ui/", b"");
    r.expect_json_error(405, "POST /ui/");
    assert_eq!(r.header("allow"), Some("GET, HEAD"));

    // The API's answers keep the API's policy, and the data still needs the token.
    let r = server.get("/stats");
    r.expect_json_error(401, "GET /stats without the token");
    assert_eq!(
        r.header("content-security-policy"),
        Some("default-src 'none'; frame-ancestors 'none'")
    );
}

#[test]
fn a_worker_process_serves_no_dashboard() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| c.role = jobq::Role::Worker);
    let msg = server
        .get("/ui/")
        .expect_json_error(404, "GET /ui/ on ROLE=worker");
    assert!(msg.contains("ROLE=worker"), "{msg}");
}

// ---- in the browser ----------------------------------------------------------------------

/// How long a page may take to show what a test waits for: one load, or a change that the
/// next refresh (every 3 s) shows.
const SHOWN: Duration = Duration::from_secs(12);

/// A dashboard page, `hash` being its route (`/overview`, `/jobs/<id>`).
fn page_url(server: &TestServer, hash: &str) -> String {
    format!("http://{}/ui/#{hash}", server.addr)
}

/// Opens the page of `hash` and waits for its first load; `page` is its `data-page`.
fn open(browser: &Browser, server: &TestServer, hash: &str, page: &str) {
    browser.goto(&page_url(server, hash));
    ready(browser, page);
}

/// Waits for the page `page` to have loaded once.
fn ready(browser: &Browser, page: &str) {
    browser.wait_for(
        &format!("main[data-page=\"{page}\"][data-ready=\"1\"]"),
        SHOWN,
    );
}

fn screenshot(browser: &Browser, name: &str) {
    browser.screenshot(&artifacts_dir().join(format!("{name}.png")));
}

/// Clicks the confirm button of the in-page dialog and waits for the dialog to close.
fn confirm(browser: &Browser) -> String {
    browser.wait_for("#confirm[open]", SHOWN);
    let text = browser.text("#confirm-text");
    browser.click("#confirm-ok");
    browser.wait_until(
        "!document.querySelector('#confirm').open",
        SHOWN,
        "the confirm dialog to close",
    );
    text
}

/// The number a stat card shows on the overview.
fn card(browser: &Browser, stat: &str) -> u64 {
    let text = browser.text(&format!("[data-stat=\"{stat}\"] .n"));
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("card {stat} shows {text:?}"))
}

/// Waits until `probe` holds, polling the API (not the page).
fn wait_api(what: &str, probe: impl FnMut() -> Result<(), String>) {
    wait_for(what, SHOWN, probe);
}

/// A jobq whose `charge` type fails for good while `failing` is set, with `n` charges
/// submitted and failed (in the DLQ); returns it and their ids.
fn failed_charges(
    redis: &RedisServer,
    failing: &Arc<AtomicBool>,
    n: u64,
    tweak: impl FnOnce(&mut jobq::Config),
) -> (TestServer, Vec<String>) {
    let server = TestServer::with_registry(
        redis,
        |r| {
            r.register("charge", flaky(failing));
        },
        tweak,
    );
    let ids: Vec<String> = (0..n)
        .map(|order| server.submit(&json!({"type": "charge", "payload": {"order": order}})))
        .collect();
    for id in &ids {
        server.wait_for_status(id, "failed", SHOWN);
    }
    (server, ids)
}

/// Waits until every job of `ids` has completed, asking the API.
fn wait_completed(server: &TestServer, ids: &[String]) {
    wait_api("the jobs to complete", || {
        let done = ids
            .iter()
            .filter(|id| server.job(id)["status"] == "completed")
            .count();
        (done == ids.len())
            .then_some(())
            .ok_or(format!("{done} of {} completed", ids.len()))
    });
}

/// A type that fails while `failing` is set and succeeds once it is cleared.
fn flaky(failing: &Arc<AtomicBool>) -> impl Fn(&JobContext) -> JobResult + Send + Sync + 'static {
    let failing = failing.clone();
    move |job: &JobContext| -> JobResult {
        if failing.load(Ordering::SeqCst) {
            let order = job.payload["order"].as_u64().unwrap_or(0);
            Err(JobError::permanent(format!(
                "payment gateway refused order {order}: card expired"
            )))
        } else {
            Ok(json!({"charged": true}))
        }
    }
}

#[test]
fn every_page_loads_without_a_console_error_or_a_failed_request() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| c.max_attempts = 1);
    for i in 0..3 {
        server.submit(&json!({"type": "noop", "queue": "mail", "payload": {"n": i}}));
    }
    let failed =
        server.submit(&json!({"type": "fail", "payload": {"message": "disk /dev/sdb1 is full"}}));
    let running =
        server.submit(&json!({"type": "sleep", "payload": {"ms": 60000}, "queue": "slow"}));
    server
        .request(
            "PUT",
            "/schedules/cleanup",
            json!({"cron": "0 0 * * * *", "job": {"type": "noop"}})
                .to_string()
                .as_bytes(),
        )
        .expect_status(201, "PUT /schedules/cleanup");
    let wf = server.post_json(
        "/workflows",
        &json!({"jobs": [
            {"ref": "fetch", "type": "noop"},
            {"ref": "resize", "type": "noop", "depends_on": ["fetch"]},
            {"ref": "notify", "type": "noop", "depends_on": ["resize"]}]}),
    );
    wf.expect_status(201, "POST /workflows");
    let workflow = wf.json()["workflow_id"].as_str().unwrap().to_string();
    server.wait_for_status(&failed, "failed", SHOWN);
    server.wait_for_status(&running, "running", SHOWN);

    let browser = Browser::start();
    browser.goto(&format!("http://{}/ui", server.addr));
    ready(&browser, "overview");
    assert_eq!(
        browser.url(),
        page_url(&server, "/overview"),
        "/ui leads to the overview"
    );
    let pages = [
        ("/overview", "overview", "[data-stat=total_jobs]"),
        ("/queues", "queues", "[data-queue=mail]"),
        ("/jobs", "jobs", "[data-job]"),
        ("/failures", "failures", "[data-group]"),
        ("/schedules", "schedules", "[data-schedule=cleanup]"),
        ("/workflows", "workflows", "[data-workflow]"),
        (
            &format!("/workflows/{workflow}"),
            "workflow",
            ".dag [data-job]",
        ),
        ("/workers", "workers", "[data-worker]"),
        (
            &format!("/jobs/{running}"),
            "job",
            "[data-action=cancel-job]",
        ),
        (&format!("/jobs/{failed}"), "job", "[data-action=retry-job]"),
    ];
    for (hash, page, shows) in pages {
        open(&browser, &server, hash, page);
        browser.wait_for(shows, SHOWN);
        let name = if page == "job" {
            format!(
                "job-{}",
                if hash.ends_with(&running) {
                    "running"
                } else {
                    "failed"
                }
            )
        } else {
            page.to_string()
        };
        screenshot(&browser, &name);
    }
    // The job's errors and the workflow's nodes are shown.
    assert!(browser.body_text().contains("disk /dev/sdb1 is full"));
    // A phone's width.
    browser.set_window_size(390, 844);
    open(&browser, &server, "/overview", "overview");
    screenshot(&browser, "overview-phone");
    assert_eq!(browser.console_errors(), Vec::<String>::new());
}

#[test]
fn the_overview_counts_move_as_jobs_are_submitted() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    server.submit(&json!({"type": "noop"}));
    server.wait_for_stat("completed_jobs", 1, SHOWN);
    let browser = Browser::start();
    open(&browser, &server, "/overview", "overview");
    assert_eq!(card(&browser, "total_jobs"), 1);
    let batch: Vec<Value> = (0..5)
        .map(|i| json!({"type": "noop", "payload": {"i": i}}))
        .collect();
    server
        .post_json("/jobs/batch", &json!({ "jobs": batch }))
        .expect_status(201, "POST /jobs/batch");
    browser.wait_until(
        "document.querySelector('[data-stat=total_jobs] .n').textContent === '6'",
        SHOWN,
        "the overview to count 6 jobs",
    );
    browser.wait_until(
        "document.querySelector('[data-stat=completed_jobs] .n').textContent === '6'",
        SHOWN,
        "the overview to count 6 completed jobs",
    );
    assert_eq!(card(&browser, "pending_jobs"), 0);
    screenshot(&browser, "overview-counts");
    assert_eq!(browser.console_errors(), Vec::<String>::new());
}

#[test]
fn the_explorer_finds_one_failure_among_ten_thousand_jobs_by_a_word_of_its_error() {
    const JOBS: u64 = 10_000;
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| {
        c.num_workers = 4;
        c.max_queue_size = 20_000;
    });
    let needle = server.submit(&json!({"type": "fail", "max_attempts": 1,
        "payload": {"message": "the flux capacitor overheated at 88 mph"}}));
    for chunk in 0..JOBS / 1000 {
        let jobs: Vec<Value> = (0..1000)
            .map(|i| json!({"type": "noop", "payload": {"n": chunk * 1000 + i}}))
            .collect();
        server
            .post_json("/jobs/batch", &json!({ "jobs": jobs }))
            .expect_status(201, "POST /jobs/batch");
    }
    wait_for("10,000 jobs completed", Duration::from_secs(60), || {
        let done = server.stat("completed_jobs");
        (done >= JOBS)
            .then_some(())
            .ok_or(format!("{done} completed"))
    });
    server.wait_for_status(&needle, "failed", SHOWN);

    let browser = Browser::start();
    open(&browser, &server, "/jobs", "jobs");
    browser.type_into("form.filters [name=q]", "capacitor");
    browser.click("form.filters button[type=submit]");
    let row = format!("[data-job=\"{needle}\"]");
    // The search may stop at its work bound before it gets to the job: continue until found.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if !browser.find_all(&row).is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the search never showed {needle}: {}",
            browser.body_text()
        );
        if browser
            .find_all("main[data-ready] [data-ui=next-page]")
            .is_empty()
        {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let before = browser.attr(".pager", "data-cursor").unwrap_or_default();
        browser.click("[data-ui=next-page]");
        browser.wait_until(
            &format!("document.querySelector('.pager').dataset.cursor !== {before:?}"),
            SHOWN,
            "the next part of the search",
        );
    }
    assert!(
        browser.url().contains("q=capacitor"),
        "the filter is in the URL: {}",
        browser.url()
    );
    let rows = browser.find_all("tr[data-job]");
    assert_eq!(
        rows.len(),
        1,
        "only the failure matches: {}",
        browser.body_text()
    );
    assert!(browser.text(&row).contains("flux capacitor"));
    screenshot(&browser, "jobs-search");
    browser.click(&format!("{row} a"));
    browser.wait_for(
        &format!("main[data-page=job][data-id=\"{needle}\"][data-ready]"),
        SHOWN,
    );
    assert!(browser
        .text("ol.timeline")
        .contains("the flux capacitor overheated at 88 mph"));
    assert_eq!(browser.console_errors(), Vec::<String>::new());
}

#[test]
fn retrying_a_failure_group_drains_it() {
    let redis = RedisServer::start();
    let failing = Arc::new(AtomicBool::new(true));
    let (server, ids) = failed_charges(&redis, &failing, 4, |_| {});
    let groups = server.get("/dlq/groups").json();
    let fp = groups["groups"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(groups["groups"][0]["count"], 4, "{groups}");
    failing.store(false, Ordering::SeqCst);

    let browser = Browser::start();
    open(&browser, &server, "/failures", "failures");
    let row = format!("[data-group=\"{fp}\"]");
    assert!(browser.text(&row).contains("card expired"));
    screenshot(&browser, "failures-before");
    browser.click(&format!("{row} [data-action=retry-group]"));
    let asked = confirm(&browser);
    assert!(
        asked.starts_with("4 failed job(s)"),
        "the dry run's count is shown: {asked}"
    );
    wait_completed(&server, &ids);
    browser.wait_until(
        &format!("!document.querySelector('{row}')"),
        SHOWN,
        "the group to leave the failures page",
    );
    assert!(browser.text("#banner-text").contains("4 job(s) sent back"));
    assert_eq!(server.get("/dlq/groups").json()["dlq_size"], 0);
    screenshot(&browser, "failures-drained");
    assert_eq!(browser.console_errors(), Vec::<String>::new());
}

#[test]
fn a_queue_is_paused_and_resumed_from_the_queues_page() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    server.submit(&json!({"type": "noop", "queue": "mail"}));
    let paused = || server.get("/queues/mail").json()["paused"] == true;

    let browser = Browser::start();
    open(&browser, &server, "/queues", "queues");
    browser.click("[data-queue=mail] [data-action=pause-queue]");
    wait_api("queue mail paused", || {
        paused().then_some(()).ok_or("not paused".into())
    });
    browser.wait_for("[data-queue=mail] [data-action=resume-queue]", SHOWN);
    assert!(browser.text("[data-queue=mail]").contains("paused"));
    screenshot(&browser, "queues-paused");
    // A paused queue holds its jobs.
    let held = server.submit(&json!({"type": "noop", "queue": "mail"}));
    browser.click("[data-queue=mail] [data-action=resume-queue]");
    wait_api("queue mail resumed", || {
        (!paused()).then_some(()).ok_or("paused".into())
    });
    browser.wait_for("[data-queue=mail] [data-action=pause-queue]", SHOWN);
    server.wait_for_status(&held, "completed", SHOWN);
    assert_eq!(browser.console_errors(), Vec::<String>::new());
}

#[test]
fn a_running_job_is_cancelled_from_its_page() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let id = server.submit(&json!({"type": "sleep", "payload": {"ms": 60000}}));
    server.wait_for_status(&id, "running", SHOWN);

    let browser = Browser::start();
    open(&browser, &server, &format!("/jobs/{id}"), "job");
    assert!(browser.text("main .badge").contains("running"));
    browser.click("[data-action=cancel-job]");
    confirm(&browser);
    server.wait_for_status(&id, "cancelled", SHOWN);
    browser.wait_until(
        "document.querySelector('main .badge').textContent === 'cancelled'",
        SHOWN,
        "the page to show the job cancelled",
    );
    assert!(browser.find_all("[data-action=cancel-job]").is_empty());
    browser.wait_for("[data-action=delete-job]", SHOWN);
    screenshot(&browser, "job-cancelled");
    // "Copy as curl" shows a command with a placeholder for the token.
    browser.click("[data-ui=copy-curl]");
    let curl = browser.text("pre.curl");
    assert!(
        curl.contains("Bearer $JOBQ_TOKEN") && curl.contains("\"sleep\""),
        "{curl}"
    );
    assert_eq!(browser.console_errors(), Vec::<String>::new());
}

#[test]
fn the_read_only_token_sees_no_action_and_the_api_refuses_one() {
    const READ_ONLY: &str = "it-readonly-7b8c1f2e9a0d4c3b5e6f";
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |c| {
        c.api_token = Some(TOKEN.into());
        c.api_token_readonly = Some(READ_ONLY.into());
        c.max_attempts = 1;
    });
    let full = format!("Bearer {TOKEN}");
    let submit = |job: Value| {
        let r = server.request_with(
            "POST",
            "/jobs",
            &[("Authorization", &full)],
            job.to_string().as_bytes(),
        );
        r.expect_status(201, "POST /jobs");
        r.json()["job_id"].as_str().unwrap().to_string()
    };
    let running = submit(json!({"type": "sleep", "payload": {"ms": 60000}}));
    submit(json!({"type": "fail"}));
    server
        .request_with(
            "PUT",
            "/schedules/cleanup",
            &[("Authorization", &full)],
            json!({"cron": "0 0 * * * *", "job": {"type": "noop"}})
                .to_string()
                .as_bytes(),
        )
        .expect_status(201, "PUT /schedules/cleanup");

    let browser = Browser::start();
    browser.goto(&page_url(&server, "/overview"));
    browser.wait_for("#login[open]", SHOWN);
    browser.type_into("#login-token", "not-the-token");
    browser.click("#login-form button[type=submit]");
    browser.wait_until(
        "document.querySelector('#login-error').textContent.includes('wrong')",
        SHOWN,
        "the sign-in form to say the token is wrong",
    );
    browser.type_into("#login-token", READ_ONLY);
    browser.click("#login-form button[type=submit]");
    ready(&browser, "overview");
    assert!(browser.text("#who").contains("read-only"));
    for (hash, page, shows) in [
        ("/queues", "queues", "[data-queue=default]"),
        ("/failures", "failures", "[data-group]"),
        ("/schedules", "schedules", "[data-schedule=cleanup]"),
        (&format!("/jobs/{running}"), "job", "[data-ui=copy-curl]"),
        ("/jobs", "jobs", "[data-job]"),
    ] {
        open(&browser, &server, hash, page);
        browser.wait_for(shows, SHOWN);
        let actions = browser.find_all("[data-action]");
        assert!(
            actions.is_empty(),
            "{hash} shows {} action(s) to the read-only token",
            actions.len()
        );
    }
    screenshot(&browser, "read-only-jobs");
    // Signing in, a wrong token first, made no refused request.
    assert_eq!(browser.console_errors(), Vec::<String>::new());
    // The token is kept for the tab, never in the URL; the API refuses a change with it.
    assert_eq!(
        browser.exec("return sessionStorage.getItem('jobq.token')", &[]),
        json!(READ_ONLY)
    );
    assert!(!browser.url().contains(READ_ONLY));
    let status = browser.exec(
        "return fetch('/queues/default/pause', {method: 'POST', headers: {Authorization: 'Bearer ' + sessionStorage.getItem('jobq.token')}}).then(r => r.status)",
        &[],
    );
    assert_eq!(status, json!(403));
    let queue = server.request_with("GET", "/queues/default", &[("Authorization", &full)], b"");
    assert_eq!(queue.json()["paused"], false, "{queue:?}");
}

#[test]
fn the_page_refreshes_without_layout_shift_and_stops_while_hidden() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    server.submit(&json!({"type": "noop"}));
    let browser = Browser::start();
    open(&browser, &server, "/overview", "overview");
    // Layout shifts from now on (none counts input, as nothing is clicked), and the page's
    // calls of GET /stats, one per refresh.
    browser.exec(
        "window.shift = 0; new PerformanceObserver((l) => { for (const e of l.getEntries()) window.shift += e.value; }).observe({type: 'layout-shift'});",
        &[],
    );
    let stats_calls = || {
        browser
            .exec(
                "return performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/stats')).length",
                &[],
            )
            .as_u64()
            .unwrap()
    };
    let first = stats_calls();
    // Counts change under the page for a few refreshes.
    for i in 0..3 {
        let batch: Vec<Value> = (0..200).map(|_| json!({"type": "noop"})).collect();
        server
            .post_json("/jobs/batch", &json!({ "jobs": batch }))
            .expect_status(201, "POST /jobs/batch");
        let want = 1 + 200 * (i + 1);
        browser.wait_until(
            &format!(
                "document.querySelector('[data-stat=total_jobs] .n').textContent === '{}'",
                fmt_thousands(want)
            ),
            SHOWN,
            "the overview to count the new jobs",
        );
    }
    assert!(stats_calls() >= first + 3, "the page refreshed");
    let shift = browser.exec("return window.shift", &[]).as_f64().unwrap();
    assert!(
        shift < 0.01,
        "refreshing moved the layout: cumulative shift {shift}"
    );

    // Hidden, the page asks nothing; visible again, it refreshes at once.
    browser.exec(
        "Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'}); document.dispatchEvent(new Event('visibilitychange'));",
        &[],
    );
    std::thread::sleep(Duration::from_millis(500));
    let hidden = stats_calls();
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(stats_calls(), hidden, "no refresh while the tab is hidden");
    browser.exec(
        "Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'visible'}); document.dispatchEvent(new Event('visibilitychange'));",
        &[],
    );
    browser.wait_until(
        &format!("performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/stats')).length > {hidden}"),
        SHOWN,
        "a refresh once visible again",
    );
    assert_eq!(browser.console_errors(), Vec::<String>::new());
}

/// A count as the page shows it: 1,401.
fn fmt_thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn the_explorer_retries_and_deletes_what_its_filter_selects() {
    let redis = RedisServer::start();
    let failing = Arc::new(AtomicBool::new(true));
    let (server, charges) = failed_charges(&redis, &failing, 3, |c| c.max_attempts = 1);
    let other = server.submit(&json!({"type": "fail", "payload": {"message": "other cause"}}));
    server.wait_for_status(&other, "failed", SHOWN);
    failing.store(false, Ordering::SeqCst);

    let browser = Browser::start();
    open(&browser, &server, "/jobs?status=failed&type=charge", "jobs");
    browser.wait_for(&format!("[data-job=\"{}\"]", charges[0]), SHOWN);
    browser.click("[data-action=bulk-retry]");
    let asked = confirm(&browser);
    assert!(
        asked.starts_with("3 job(s) match"),
        "the dry run's count: {asked}"
    );
    wait_completed(&server, &charges);
    assert_eq!(server.job(&other)["status"], "failed", "outside the filter");

    // The completed charges, deleted by filter from the same page.
    open(
        &browser,
        &server,
        "/jobs?status=completed&type=charge",
        "jobs",
    );
    browser.wait_for(&format!("[data-job=\"{}\"]", charges[0]), SHOWN);
    browser.click("[data-action=bulk-delete]");
    let asked = confirm(&browser);
    assert!(
        asked.starts_with("3 job(s) match"),
        "the dry run's count: {asked}"
    );
    wait_api("the charges deleted", || {
        let left = charges
            .iter()
            .filter(|id| server.get(&format!("/jobs/{id}")).status != 404)
            .count();
        (left == 0).then_some(()).ok_or(format!("{left} left"))
    });
    browser.wait_until(
        &format!("!document.querySelector('[data-job=\"{}\"]')", charges[0]),
        SHOWN,
        "the deleted jobs to leave the list",
    );
    screenshot(&browser, "jobs-bulk-deleted");
    assert_eq!(server.job(&other)["status"], "failed");
    assert_eq!(browser.console_errors(), Vec::<String>::new());
}
