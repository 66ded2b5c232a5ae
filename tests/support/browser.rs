//! A real headless Chromium for the dashboard's browser tests ([`Browser`]): a small synchronous
//! W3C WebDriver client speaking to `chromedriver` over HTTP (ureq), plus where test artefacts
//! such as screenshots go ([`artifacts_dir`]).
//!
//! Each [`Browser`] owns one `chromedriver` on a free loopback port, which owns one Chromium
//! session with a fresh profile in a temp dir. Every request and every wait is bounded; a wait
//! that gives up panics saying what it waited for, the page's URL and the start of its text.
//!
//! What a dashboard test should know:
//! - Pages load data asynchronously: after [`Browser::goto`] wait for what the test needs with
//!   [`Browser::wait_for`] (an element) or [`Browser::wait_until`] (any JS condition). The
//!   element actions ([`Browser::click`], [`Browser::type_into`], [`Browser::text`],
//!   [`Browser::attr`]) wait for their element to exist for up to [`Browser::WAIT`] themselves.
//! - [`Browser::exec`] awaits a returned Promise (W3C execute/sync does), so on a page whose
//!   Content-Security-Policy lets it connect, `exec("return fetch('/stats').then(r => r.json())",
//!   &[])` gives the JSON. jobq's API answers (JSON, text) forbid everything
//!   (`default-src 'none'`): a fetch from such a page fails, and the refusal is a console error.
//! - Console errors and failed loads (a 4xx/5xx answer, a refused connection) are read from
//!   chromedriver's `POST /session/{id}/se/log` (`{"type": "browser"}`), which works in W3C mode
//!   with this chromedriver (156); entries of level SEVERE are the errors. Chromedriver hands out
//!   each entry once, so the harness keeps them: [`Browser::console_errors`] is every error
//!   since the start, [`Browser::take_console_errors`] also forgets them. Entries can arrive a
//!   moment after the page acted: [`Browser::wait_console_error`] waits for one.
//! - `window.alert/confirm/prompt` dialogs stay open (`unhandledPromptBehavior: ignore`) until
//!   the test handles them with [`Browser::accept_dialog`] or [`Browser::dismiss_dialog`]; while
//!   one is open every other command fails with "unexpected alert open".

use super::{find_tool, free_port, temp_dir};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::fs::{self, File};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key under which W3C WebDriver passes an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium's flags. Without the background-networking ones Chromium keeps trying to reach
/// Google's services, which this closed network refuses (noise in the logs, and slow starts).
const CHROMIUM_ARGS: [&str; 10] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

/// Longest a single WebDriver command may take; above chromedriver's page-load and script
/// timeouts (set to [`PAGE_TIMEOUT`]) so chromedriver's own timeout error comes first.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Page-load and script timeout of the session.
const PAGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of a `/status` probe while chromedriver starts, and of the session's deletion.
const QUICK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long chromedriver may take to answer `/status` as ready.
const DRIVER_START_TIMEOUT: Duration = Duration::from_secs(20);
/// How often the browser waits poll (each poll is a round trip through chromedriver).
const BROWSER_POLL: Duration = Duration::from_millis(50);

/// `target/test-artifacts/dashboard/` under the crate root, created if missing: where the
/// browser tests keep screenshots for a person (or CI's artefacts) to look at.
pub fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/dashboard");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// A W3C element reference, as [`Browser::find`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub id: String,
}

impl Element {
    /// The element as an argument of [`Browser::exec`], where it arrives as the DOM element.
    pub fn arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }
}

/// An error answer of chromedriver: the W3C error code ("no such element", ...) and message.
#[derive(Debug, Clone)]
pub struct WdError {
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Chromedriver appends "(Session info: ...)" and more lines; the first says it all.
        let first = self.message.lines().next().unwrap_or("");
        // The message often repeats the code: "javascript error: javascript error: ...".
        let first = first
            .strip_prefix(&format!("{}: ", self.error))
            .unwrap_or(first);
        write!(f, "{}: {first}", self.error)
    }
}

/// A headless Chromium driven through its own chromedriver. Dropping it deletes the session
/// (Chromium quits) and then kills chromedriver's process group (chromedriver and whatever of
/// Chromium is still left), so nothing outlives the test.
pub struct Browser {
    driver: Child,
    /// `http://127.0.0.1:PORT/session/ID`
    session: String,
    agent: ureq::Agent,
    /// chromedriver's log and output, Chromium's profile.
    dir: PathBuf,
    /// Every browser log entry read so far (chromedriver gives each out once).
    log: RefCell<Vec<LogEntry>>,
}

/// One entry of the browser log.
#[derive(Debug, Clone)]
struct LogEntry {
    level: String,
    source: String,
    message: String,
}

impl Browser {
    /// How long the element actions wait for their element.
    pub const WAIT: Duration = Duration::from_secs(10);

    /// Starts chromedriver and a headless Chromium session; see the module docs. Finds the
    /// binaries through `JOBQ_TEST_CHROMEDRIVER` and `JOBQ_TEST_CHROMIUM`, else on PATH.
    pub fn start() -> Browser {
        let hint = "Run scripts/test, which installs it, or install the Debian packages \
                    chromium and chromium-driver.";
        let chromedriver = find_tool("JOBQ_TEST_CHROMEDRIVER", "chromedriver", hint);
        let chromium = find_tool("JOBQ_TEST_CHROMIUM", "chromium", hint);
        let dir = temp_dir("browser");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(COMMAND_TIMEOUT))
            .build()
            .into();

        // A free port may be taken by someone else before chromedriver binds it: a few tries.
        let mut tries = 0;
        let (driver, base) = loop {
            tries += 1;
            let port = free_port();
            let mut driver = spawn_driver(&chromedriver, port, &dir);
            let base = format!("http://127.0.0.1:{port}");
            match wait_ready(&agent, &base, &mut driver, &dir) {
                Ok(()) => break (driver, base),
                Err(e) => {
                    kill_group(&mut driver);
                    if tries == 3 {
                        panic!("chromedriver did not start: {e}\n{}", driver_log_tail(&dir));
                    }
                }
            }
        };

        let mut browser = Browser {
            driver,
            session: String::new(),
            agent,
            dir,
            log: RefCell::new(Vec::new()),
        };
        let profile = browser.dir.join("profile");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
            "unhandledPromptBehavior": "ignore",
        }}});
        let created = browser
            .request("POST", &format!("{base}/session"), Some(&caps))
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver could not start Chromium ({}): {e}\n{}",
                    chromium.display(),
                    driver_log_tail(&browser.dir)
                )
            });
        let id = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("POST /session answered without a sessionId: {created}"));
        browser.session = format!("{base}/session/{id}");
        let ms = PAGE_TIMEOUT.as_millis() as u64;
        browser.cmd(
            "POST",
            "/timeouts",
            json!({"pageLoad": ms, "script": ms, "implicit": 0}),
        );
        browser
    }

    /// Opens `url` and waits for its load event (not for what its scripts fetch afterwards).
    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", json!({ "url": url }));
    }

    /// Reloads the page.
    pub fn refresh(&self) {
        self.cmd("POST", "/refresh", json!({}));
    }

    /// The page's current URL.
    pub fn url(&self) -> String {
        self.get("/url").as_str().unwrap_or_default().to_string()
    }

    /// The first element matching the CSS selector, now; panics if there is none.
    pub fn find(&self, css: &str) -> Element {
        self.try_find(css)
            .unwrap_or_else(|e| self.fail(&format!("no element matches {css:?} ({e})")))
    }

    /// Every element matching the CSS selector, now (maybe none).
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self.cmd("POST", "/elements", by_css(css));
        let found = found.as_array().cloned().unwrap_or_default();
        found.iter().map(element).collect()
    }

    /// Waits up to `timeout` for an element matching the CSS selector to exist.
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        self.poll(timeout, || self.try_find(css))
            .unwrap_or_else(|e| {
                self.fail(&format!(
                    "timed out after {timeout:?} waiting for {css:?} ({e})"
                ))
            })
    }

    /// Waits up to `timeout` for the JS expression `js` to be truthy; `what` names the wait in
    /// the panic message. An expression that throws counts as false (its error is shown).
    pub fn wait_until(&self, js: &str, timeout: Duration, what: &str) {
        let script = format!("return !!({js});");
        let probe = || match self.try_cmd("POST", "/execute/sync", exec_body(&script, &[])) {
            Ok(Value::Bool(true)) => Ok(()),
            Ok(v) => Err(format!("{js} is {v}")),
            Err(e) => Err(format!("{js} failed: {e}")),
        };
        self.poll(timeout, probe).unwrap_or_else(|e| {
            self.fail(&format!(
                "timed out after {timeout:?} waiting for {what}; last: {e}"
            ))
        });
    }

    /// Clicks the element matching `css`, waiting up to [`Browser::WAIT`] for it to exist.
    pub fn click(&self, css: &str) {
        let el = self.wait_for(css, Self::WAIT);
        self.el_cmd(&el, css, "POST", "/click", json!({}));
    }

    /// Empties the input matching `css` and types `text` into it (key events, as a user would).
    pub fn type_into(&self, css: &str, text: &str) {
        let el = self.wait_for(css, Self::WAIT);
        self.el_cmd(&el, css, "POST", "/clear", json!({}));
        self.el_cmd(&el, css, "POST", "/value", json!({ "text": text }));
    }

    /// The rendered text of the element matching `css` ("" if it is hidden).
    pub fn text(&self, css: &str) -> String {
        let el = self.wait_for(css, Self::WAIT);
        let v = self.el_cmd(&el, css, "GET", "/text", Value::Null);
        v.as_str().unwrap_or_default().to_string()
    }

    /// An attribute of the element matching `css` (the HTML attribute, not the DOM property).
    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        let el = self.wait_for(css, Self::WAIT);
        let v = self.el_cmd(&el, css, "GET", &format!("/attribute/{name}"), Value::Null);
        v.as_str().map(str::to_string)
    }

    /// Runs `js` as a function body in the page (`return` gives the result, `arguments[i]` the
    /// args; [`Element::arg`] passes an element). A returned Promise is awaited.
    pub fn exec(&self, js: &str, args: &[Value]) -> Value {
        self.try_cmd("POST", "/execute/sync", exec_body(js, args))
            .unwrap_or_else(|e| self.fail(&format!("script failed: {e}\nscript: {js}")))
    }

    /// Writes a PNG screenshot of the viewport to `path` (parent folders are created).
    pub fn screenshot(&self, path: &Path) {
        let b64 = self.get("/screenshot");
        let png = base64_decode(b64.as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("the screenshot is not base64: {e}"));
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
        }
        fs::write(path, png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// Resizes the window (the viewport is a little smaller).
    pub fn set_window_size(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            json!({"width": width, "height": height}),
        );
    }

    /// Every console error and failed load since the browser started, as "source: message",
    /// e.g. `console-api: http://... 2:32 "x"` or `network: http://.../nope - Failed to load
    /// resource: the server responded with a status of 404 (Not Found)`.
    pub fn console_errors(&self) -> Vec<String> {
        self.read_log();
        let log = self.log.borrow();
        let errors = log.iter().filter(|e| e.level == "SEVERE");
        errors
            .map(|e| format!("{}: {}", e.source, e.message))
            .collect()
    }

    /// Like [`Browser::console_errors`], and forgets them, so a later call shows only new ones.
    pub fn take_console_errors(&self) -> Vec<String> {
        let errors = self.console_errors();
        self.log.borrow_mut().retain(|e| e.level != "SEVERE");
        errors
    }

    /// Waits up to `timeout` for a console error containing `needle`; returns it.
    pub fn wait_console_error(&self, needle: &str, timeout: Duration) -> String {
        let found = self.poll(timeout, || {
            let errors = self.console_errors();
            let hit = errors.iter().find(|e| e.contains(needle)).cloned();
            hit.ok_or_else(|| format!("errors so far: {errors:?}"))
        });
        found.unwrap_or_else(|e| {
            self.fail(&format!(
                "no console error containing {needle:?} within {timeout:?}; {e}"
            ))
        })
    }

    /// Waits up to `timeout` for an alert/confirm/prompt dialog, clicks OK; returns its text.
    pub fn accept_dialog(&self, timeout: Duration) -> String {
        self.answer_dialog("/alert/accept", timeout)
    }

    /// Waits up to `timeout` for a dialog and clicks Cancel; returns its text.
    pub fn dismiss_dialog(&self, timeout: Duration) -> String {
        self.answer_dialog("/alert/dismiss", timeout)
    }

    fn answer_dialog(&self, action: &str, timeout: Duration) -> String {
        let text = self.poll(timeout, || {
            let t = self.try_cmd("GET", "/alert/text", Value::Null);
            t.map_err(|e| e.to_string())
        });
        let text = text
            .unwrap_or_else(|e| self.fail(&format!("no dialog opened within {timeout:?} ({e})")));
        self.cmd("POST", action, json!({}));
        text.as_str().unwrap_or_default().to_string()
    }

    /// The page's `document.body.innerText` (empty if it cannot be read, e.g. under a dialog).
    pub fn body_text(&self) -> String {
        let js = "return document.body ? document.body.innerText : ''";
        let text = self.try_cmd("POST", "/execute/sync", exec_body(js, &[]));
        text.ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Where chromedriver's log and Chromium's profile are (kept if the test panics).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    // ---- plumbing ----

    fn try_find(&self, css: &str) -> Result<Element, WdError> {
        self.try_cmd("POST", "/element", by_css(css))
            .map(|v| element(&v))
    }

    /// A command of the session; panics with the page's state if chromedriver refuses it.
    fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_cmd(method, path, body)
            .unwrap_or_else(|e| self.fail(&format!("{method} {path} failed: {e}")))
    }

    fn get(&self, path: &str) -> Value {
        self.cmd("GET", path, Value::Null)
    }

    fn el_cmd(&self, el: &Element, css: &str, method: &str, path: &str, body: Value) -> Value {
        let path = format!("/element/{}{path}", el.id);
        self.try_cmd(method, &path, body)
            .unwrap_or_else(|e| self.fail(&format!("{method} {path} on {css:?} failed: {e}")))
    }

    fn try_cmd(&self, method: &str, path: &str, body: Value) -> Result<Value, WdError> {
        let url = format!("{}{path}", self.session);
        self.request(method, &url, (method == "POST").then_some(&body))
    }

    /// One WebDriver request; the answer's `value`, or the W3C error it carries. A transport
    /// failure is a panic: chromedriver is local, so it means chromedriver is gone or stuck.
    fn request(&self, method: &str, url: &str, body: Option<&Value>) -> Result<Value, WdError> {
        let sent = match (method, body) {
            ("GET", _) => self.agent.get(url).call(),
            ("DELETE", _) => self.agent.delete(url).call(),
            (_, body) => self
                .agent
                .post(url)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or(&json!({})).to_string()),
        };
        let mut resp =
            sent.unwrap_or_else(|e| panic!("{method} {url}: {e}\n{}", driver_log_tail(&self.dir)));
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(256 << 20)
            .read_to_string()
            .unwrap_or_else(|e| panic!("{method} {url}: reading the answer: {e}"));
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {url}: HTTP {status}, not JSON ({e}): {text}"));
        let value = v.get("value").cloned().unwrap_or(Value::Null);
        match value.get("error").and_then(Value::as_str) {
            Some(error) if status >= 400 => Err(WdError {
                error: error.to_string(),
                message: value["message"].as_str().unwrap_or_default().to_string(),
            }),
            _ => Ok(value),
        }
    }

    /// Reads the browser log entries chromedriver has collected since the last read.
    fn read_log(&self) {
        let entries = self.cmd("POST", "/se/log", json!({ "type": "browser" }));
        let entries = entries.as_array().cloned().unwrap_or_default();
        let field = |e: &Value, k: &str| e[k].as_str().unwrap_or_default().to_string();
        self.log
            .borrow_mut()
            .extend(entries.iter().map(|e| LogEntry {
                level: field(e, "level"),
                source: field(e, "source"),
                message: field(e, "message"),
            }));
    }

    /// Calls `probe` every [`BROWSER_POLL`] until it returns `Ok`, for at most `timeout`.
    fn poll<T, E: ToString>(
        &self,
        timeout: Duration,
        mut probe: impl FnMut() -> Result<T, E>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match probe() {
                Ok(v) => return Ok(v),
                Err(e) if Instant::now() >= deadline => return Err(e.to_string()),
                Err(_) => std::thread::sleep(BROWSER_POLL),
            }
        }
    }

    /// Panics with `what` plus where the page is and the start of what it shows.
    fn fail(&self, what: &str) -> ! {
        // Reading the URL must not panic again (under an open dialog it fails).
        let url = self
            .try_cmd("GET", "/url", Value::Null)
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|e| format!("(unknown: {e})"));
        let text: String = self.body_text().chars().take(600).collect();
        panic!("browser: {what}\n  page: {url}\n  page text: {text:?}")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Deleting the session makes chromedriver quit Chromium and wait for it; bounded, and
        // the process-group kill below gets whatever it left.
        if !self.session.is_empty() {
            let _ = self
                .agent
                .delete(&self.session)
                .config()
                .timeout_global(Some(QUICK_TIMEOUT))
                .build()
                .call();
        }
        kill_group(&mut self.driver);
        if std::thread::panicking() {
            let errors = self.log.borrow();
            let errors = errors
                .iter()
                .map(|e| format!("  {} {}", e.level, e.message));
            eprintln!(
                "--- browser log read so far ---\n{}\n--- chromedriver log and profile kept in {} ---",
                errors.collect::<Vec<_>>().join("\n"),
                self.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Starts chromedriver on 127.0.0.1:`port` as the leader of a new process group. Chromium and
/// its helpers stay in that group, so one `killpg` ends them all, and only them.
fn spawn_driver(bin: &Path, port: u16, dir: &Path) -> Child {
    let out = File::create(dir.join("chromedriver.out")).expect("create chromedriver.out");
    Command::new(bin)
        .arg(format!("--port={port}"))
        .arg(format!(
            "--log-path={}",
            dir.join("chromedriver.log").display()
        ))
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("clone a file handle"))
        .stderr(out)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()))
}

/// Waits (bounded) for our chromedriver to be ready: it says it started (so the port is its
/// own, not another test's chromedriver's) and `/status` says ready. An error if it exited
/// (e.g. its port was taken: "port not available. Exiting...") or never got ready.
fn wait_ready(
    agent: &ureq::Agent,
    base: &str,
    driver: &mut Child,
    dir: &Path,
) -> Result<(), String> {
    let deadline = Instant::now() + DRIVER_START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = driver.try_wait() {
            return Err(format!("chromedriver exited with {status}"));
        }
        let out = fs::read_to_string(dir.join("chromedriver.out")).unwrap_or_default();
        let last = if !out.contains("was started successfully") {
            "chromedriver has not said it started".to_string()
        } else {
            let probe = agent
                .get(format!("{base}/status"))
                .config()
                .timeout_global(Some(QUICK_TIMEOUT))
                .build()
                .call();
            match probe.map(|mut r| r.body_mut().read_to_string()) {
                Ok(Ok(text)) => {
                    let v: Value = serde_json::from_str(&text).unwrap_or_default();
                    if v["value"]["ready"] == json!(true) {
                        return Ok(());
                    }
                    text
                }
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            }
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "{base}/status not ready after {DRIVER_START_TIMEOUT:?}; last: {last}"
            ));
        }
        std::thread::sleep(BROWSER_POLL);
    }
}

/// SIGKILLs chromedriver's process group, then reaps chromedriver. The kill comes first, while
/// chromedriver is not yet reaped, so the group id cannot belong to anyone else. If chromedriver
/// is already gone its group id vouches for nothing, so nothing is killed: Chromium quits by
/// itself when its pipe to chromedriver closes. Never panics (it runs in `Drop`).
fn kill_group(driver: &mut Child) {
    if !matches!(driver.try_wait(), Ok(None)) {
        return;
    }
    if let Ok(pid) = i32::try_from(driver.id()) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    // Bounded, though a SIGKILLed process exits at once.
    let deadline = Instant::now() + QUICK_TIMEOUT;
    while matches!(driver.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The last lines of chromedriver's output and log, for a panic message.
fn driver_log_tail(dir: &Path) -> String {
    let mut out = String::new();
    for name in ["chromedriver.out", "chromedriver.log"] {
        let text = fs::read_to_string(dir.join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        out.push_str(&format!(
            "--- last lines of {}/{name} ---\n{tail}\n",
            dir.display()
        ));
    }
    out
}

fn by_css(css: &str) -> Value {
    json!({"using": "css selector", "value": css})
}

fn exec_body(script: &str, args: &[Value]) -> Value {
    json!({"script": script, "args": args})
}

fn element(v: &Value) -> Element {
    let id = v[ELEMENT_KEY].as_str();
    let id = id.unwrap_or_else(|| panic!("not an element reference: {v}"));
    Element { id: id.to_string() }
}

/// Decodes standard base64 (with or without padding; whitespace is skipped), which is how
/// WebDriver sends screenshots. Small enough not to need a crate.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for (i, c) in text.bytes().enumerate() {
        let sextet = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' | b' ' => continue,
            _ => return Err(format!("byte {c:#04x} at {i} is not base64")),
        };
        acc = (acc << 6) | u32::from(sextet);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}
