//! The browser harness (`tests/support/browser.rs`) against a real jobq: a headless Chromium
//! opens jobq's pages, reads them, acts on elements, takes a PNG screenshot, reports console
//! errors and failed loads, and answers `confirm()` dialogs. The dashboard's tests rely on each
//! of these, so a broken Chromium setup fails here first, with the harness named.

use crate::harness::browser::{artifacts_dir, base64_decode, Browser};
use crate::harness::*;
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// jobq's page `path` as a URL the browser can open.
fn url(server: &TestServer, path: &str) -> String {
    format!("http://{}{path}", server.addr)
}

#[test]
fn browser_reads_a_jobq_page_acts_on_elements_and_takes_a_screenshot() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let browser = Browser::start();

    browser.goto(&url(&server, "/health"));
    assert_eq!(browser.url(), url(&server, "/health"));
    // Chromium shows a JSON answer as text in a <pre>.
    let body = browser.wait_for("pre", WAIT);
    let shown: Value = serde_json::from_str(&browser.text("pre"))
        .unwrap_or_else(|e| panic!("the page does not show JSON ({e}): {}", browser.body_text()));
    assert_eq!(shown, json!({"status": "healthy"}));
    assert_eq!(browser.find("pre"), body);
    assert_eq!(browser.find_all("pre"), vec![body.clone()]);
    let tag = browser.exec("return arguments[0].tagName", &[body.arg()]);
    assert_eq!(tag, json!("PRE"));
    // A returned Promise is awaited.
    let later = "return new Promise(done => setTimeout(() => done(arguments[0] + 1), 50))";
    assert_eq!(browser.exec(later, &[json!(41)]), json!(42));

    // A small form put into the page by script stands in for the dashboard's: it appears a
    // moment later, as content that a page fetches does.
    browser.exec(
        "setTimeout(() => {
           const f = document.createElement('form');
           f.innerHTML = '<input id=q value=old><button id=go type=button data-n=0>Go</button>';
           document.body.append(f);
           document.getElementById('go').addEventListener('click', e => {
             e.target.dataset.n = Number(e.target.dataset.n) + 1;
             document.title = document.getElementById('q').value;
           });
         }, 300)",
        &[],
    );
    browser.type_into("#q", "queue-a");
    browser.click("#go");
    assert_eq!(browser.attr("#go", "data-n").as_deref(), Some("1"));
    browser.wait_until("document.title === 'queue-a'", WAIT, "the click handler");
    assert_eq!(browser.text("#go"), "Go");
    assert!(browser.find_all("#nothing-like-this").is_empty());

    browser.set_window_size(800, 600);
    let viewport = browser.exec("return [window.innerWidth, window.innerHeight]", &[]);
    let path = artifacts_dir().join("harness-health.png");
    let _ = std::fs::remove_file(&path);
    browser.screenshot(&path);
    let png = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    // The IHDR chunk's width and height are the viewport's.
    let be32 = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    assert_eq!(&png[12..16], b"IHDR");
    assert_eq!(json!([be32(16), be32(20)]), viewport, "screenshot size");
    assert!(png.len() > 1000, "a {} byte screenshot", png.len());

    assert_eq!(browser.console_errors(), Vec::<String>::new());
}

#[test]
fn browser_reports_console_errors_and_failed_loads() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let browser = Browser::start();
    assert!(browser.dir().join("chromedriver.log").is_file());

    browser.goto(&url(&server, "/health"));
    browser.refresh();
    assert_eq!(browser.take_console_errors(), Vec::<String>::new());

    browser.exec(
        "console.error('broken widget'); console.log('not an error')",
        &[],
    );
    let error = browser.wait_console_error("broken widget", WAIT);
    assert!(error.starts_with("console-api: "), "{error}");

    // A route jobq does not have: the page loads, and its 404 is a failed load.
    browser.goto(&url(&server, "/no-such-page"));
    let error = browser.wait_console_error("404", WAIT);
    assert!(error.contains("/no-such-page"), "{error}");
    // What the page's Content-Security-Policy refuses counts too: jobq's API answers allow
    // nothing (`default-src 'none'`), so even a fetch of the same origin from them is refused.
    let fetched = "return fetch('/stats').then(r => 'fetched', e => e.message)";
    assert_eq!(browser.exec(fetched, &[]), json!("Failed to fetch"));
    let error = browser.wait_console_error("Content Security Policy", WAIT);
    assert!(error.contains("/stats"), "{error}");

    // The refused fetch is reported twice: as a CSP violation and as the fetch's failure.
    let errors = browser.take_console_errors();
    let mut sources: Vec<&str> = errors.iter().filter_map(|e| e.split(':').next()).collect();
    sources.sort_unstable();
    let expected = ["console-api", "javascript", "network", "security"];
    assert_eq!(sources, expected, "{errors:#?}");
    assert!(
        !errors.iter().any(|e| e.contains("not an error")),
        "{errors:#?}"
    );
    assert_eq!(browser.console_errors(), Vec::<String>::new());
}

#[test]
fn browser_answers_confirm_dialogs() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let browser = Browser::start();
    browser.goto(&url(&server, "/health"));

    // As a button's handler would: the dialog opens after the command that caused it returned.
    let ask = "setTimeout(() => { window.answer = confirm(arguments[0]); }, 100)";
    browser.exec(ask, &[json!("Cancel job?")]);
    assert_eq!(browser.accept_dialog(WAIT), "Cancel job?");
    assert_eq!(browser.exec("return window.answer", &[]), json!(true));

    browser.exec(ask, &[json!("Delete schedule?")]);
    assert_eq!(browser.dismiss_dialog(WAIT), "Delete schedule?");
    assert_eq!(browser.exec("return window.answer", &[]), json!(false));
}

#[test]
fn browser_wait_that_gives_up_names_the_page_and_what_it_shows() {
    let redis = RedisServer::start();
    let server = TestServer::start(&redis, |_| {});
    let browser = Browser::start();
    browser.goto(&url(&server, "/health"));

    let short = Duration::from_millis(300);
    let gave_up = |wait: &dyn Fn()| -> String {
        let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(wait))
            .expect_err("the wait should give up");
        err.downcast_ref::<String>().cloned().unwrap_or_default()
    };
    let msg = gave_up(&|| {
        browser.wait_for("#jobs-table", short);
    });
    assert!(msg.contains("waiting for \"#jobs-table\""), "{msg}");
    assert!(
        msg.contains(&format!("page: {}", url(&server, "/health"))),
        "{msg}"
    );
    assert!(msg.contains("healthy"), "{msg}");
    let msg = gave_up(&|| browser.wait_until("window.loaded", short, "the page to load"));
    assert!(msg.contains("the page to load"), "{msg}");
    assert!(msg.contains("window.loaded is false"), "{msg}");
}

#[test]
fn base64_decoder_of_the_screenshots() {
    assert_eq!(base64_decode("").unwrap(), b"");
    assert_eq!(base64_decode("Zg==").unwrap(), b"f");
    assert_eq!(base64_decode("Zm8=").unwrap(), b"fo");
    assert_eq!(base64_decode("Zm9v").unwrap(), b"foo");
    assert_eq!(base64_decode("Zm9vYmFy\nYg").unwrap(), b"foobarb");
    assert_eq!(base64_decode("iVBORw0KGgo=").unwrap(), b"\x89PNG\r\n\x1a\n");
    assert_eq!(base64_decode("+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
    assert!(base64_decode("Zm9v!").is_err());
}
