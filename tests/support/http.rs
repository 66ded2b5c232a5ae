//! HTTP: well-formed requests go through `ureq` ([`Client`]); raw sockets only for what a proper
//! client would not send: malformed requests ([`send_raw`]), pipelining and slow clients.

use super::wait_for;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::Duration;

/// Timeout of a connect and of each read or write.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    /// A header's value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics with the body if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            let (status, body) = (self.status, &self.body);
            panic!("response body is not JSON ({e}); status {status}, body {body:?}")
        })
    }

    /// Asserts the status, showing the body if it differs.
    pub fn expect_status(&self, status: u16, context: &str) -> &Resp {
        assert_eq!(
            self.status, status,
            "{context}: expected HTTP {status}, got {} with body {:?}",
            self.status, self.body
        );
        self
    }

    /// Asserts a JSON error response: the status, `Content-Type: application/json` and a body
    /// `{"error": "<non-empty string>"}`. Returns the message.
    pub fn expect_json_error(&self, status: u16, context: &str) -> String {
        self.expect_status(status, context);
        self.expect_json_content_type(context);
        let v = self.json();
        let msg = v["error"].as_str().filter(|m| !m.is_empty());
        msg.unwrap_or_else(|| panic!("{context}: no non-empty string \"error\" field: {v}"))
            .to_string()
    }

    /// Asserts `Content-Type: application/json`.
    pub fn expect_json_content_type(&self, context: &str) {
        let ct = self.header("content-type").unwrap_or("");
        assert!(
            ct.to_ascii_lowercase().starts_with("application/json"),
            "{context}: Content-Type is {ct:?}, expected application/json (status {}, body {:?})",
            self.status,
            self.body
        );
    }
}

/// The one agent every well-formed request goes through. It keeps no idle connections (each
/// request opens its own and closes it, so tests that count the server's connections see only
/// their own), follows no redirects and returns 4xx/5xx answers as responses, not errors.
fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_idle_connections(0)
            .allow_non_standard_methods(true)
            .user_agent("jobq-integration-tests")
            .timeout_connect(Some(HTTP_TIMEOUT))
            .timeout_per_read(Some(HTTP_TIMEOUT))
            .timeout_per_write(Some(HTTP_TIMEOUT))
            .build()
            .into()
    })
}

/// An HTTP client bound to one server address. Each request goes on a new connection
/// (`Connection: close`), and a non-empty body is sent as `application/json`.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub addr: SocketAddr,
}

impl Client {
    /// Any method, with extra request headers (`Authorization`, `Idempotency-Key`, ...).
    pub fn try_request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Resp, String> {
        let addr = self.addr;
        let what = format!("{method} http://{addr}{path}");
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"))
            .header("Connection", "close");
        // Like any client, an explicit length for a method that carries a body, even an empty one.
        if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
            req = req.header("Content-Length", body.len());
        }
        if !body.is_empty() {
            req = req.header("Content-Type", "application/json");
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(body).map_err(|e| format!("{what}: {e}"))?;
        let mut r = agent().run(req).map_err(|e| format!("{what}: {e}"))?;
        let body = r
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .map_err(|e| format!("{what}: reading the body: {e}"))?;
        let headers = r.headers().iter();
        Ok(Resp {
            status: r.status().as_u16(),
            headers: headers
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                .collect(),
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    pub fn try_request(&self, method: &str, path: &str, body: &[u8]) -> Result<Resp, String> {
        self.try_request_with(method, path, &[], body)
    }

    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> Resp {
        self.request_with(method, path, &[], body)
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, b"")
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Resp {
        self.request("POST", path, body.to_string().as_bytes())
    }

    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        self.try_request_with(method, path, headers, body)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `POST /jobs`, asserting 201 and a UUID v4 `job_id`; returns the id.
    pub fn submit(&self, job: &Value) -> String {
        let r = self.post_json("/jobs", job);
        r.expect_status(201, &format!("POST /jobs {job}"));
        let v = r.json();
        let id = v["job_id"]
            .as_str()
            .unwrap_or_else(|| panic!("POST /jobs {job}: no string job_id in {v}"))
            .to_string();
        assert!(super::is_uuid_v4(&id), "job_id {id:?} is not a UUID v4");
        id
    }

    /// `GET path`, asserting 200.
    fn get_ok(&self, path: &str) -> Resp {
        let r = self.get(path);
        r.expect_status(200, &format!("GET {path}"));
        r
    }

    /// `GET /jobs/{id}`, asserting 200.
    pub fn job(&self, id: &str) -> Value {
        self.get_ok(&format!("/jobs/{id}")).json()
    }

    /// `GET /stats`, asserting 200.
    pub fn stats(&self) -> Value {
        self.get_ok("/stats").json()
    }

    /// One integer field of `/stats`.
    pub fn stat(&self, field: &str) -> u64 {
        let s = self.stats();
        s[field]
            .as_u64()
            .unwrap_or_else(|| panic!("/stats field {field:?} is not an unsigned integer: {s}"))
    }

    /// `GET /metrics` body, asserting 200.
    pub fn metrics(&self) -> String {
        self.get_ok("/metrics").body
    }

    /// Polls `GET /jobs/{id}` until its status is `status`; returns the job. Gives up at once if
    /// the job reaches a different final state (completed or failed). A 503 counts as "not yet":
    /// right after Redis comes back, a request thread may still hold a dead socket.
    pub fn wait_for_status(&self, id: &str, status: &str, timeout: Duration) -> Value {
        wait_for(&format!("job {id} to be {status}"), timeout, || {
            let r = self.get(&format!("/jobs/{id}"));
            if r.status == 503 {
                return Err(format!("HTTP 503 {}", r.body));
            }
            r.expect_status(200, &format!("GET /jobs/{id}"));
            let job = r.json();
            let now = job["status"].as_str().unwrap_or("<no status>").to_string();
            if now == status {
                return Ok(job);
            }
            if matches!(
                now.as_str(),
                "completed" | "failed" | "cancelled" | "expired"
            ) {
                panic!("job {id} ended {now} while waiting for it to be {status}: {job}");
            }
            Err(job.to_string())
        })
    }

    /// The lifecycle every Redis topology must carry (one Redis, a Cluster): a job run, an
    /// idempotent repeat answered with the first id, a batch with a delayed job, and a job
    /// that fails both its attempts into the DLQ. Five jobs in all; returns the dead one's id.
    pub fn run_lifecycle(&self) -> String {
        let plain = self.submit(&json!({"type": "noop"}));
        self.wait_for_status(&plain, "completed", Duration::from_secs(10));
        let keyed = json!({"type": "noop", "idempotency_key": "once"});
        let id = self.submit(&keyed);
        let again = self.post_json("/jobs", &keyed);
        again.expect_status(200, "idempotent repeat");
        assert_eq!(again.json()["job_id"], json!(id));
        let batch = self.post_json(
            "/jobs/batch",
            &json!({"jobs": [{"type": "noop"}, {"type": "noop", "delay_ms": 50}]}),
        );
        batch.expect_status(201, "batch");
        for id in batch.json()["job_ids"].as_array().unwrap() {
            self.wait_for_status(id.as_str().unwrap(), "completed", Duration::from_secs(10));
        }
        let failing = self.submit(&json!({"type": "fail", "max_attempts": 2}));
        let dead = self.wait_for_status(&failing, "failed", Duration::from_secs(10));
        assert_eq!(dead["attempt"], json!(2), "{dead}");
        failing
    }

    /// Polls `/stats` until `field` equals `want`; returns the stats.
    pub fn wait_for_stat(&self, field: &str, want: u64, timeout: Duration) -> Value {
        wait_for(&format!("/stats {field} == {want}"), timeout, || {
            let s = self.stats();
            match s[field].as_u64() == Some(want) {
                true => Ok(s),
                false => Err(s.to_string()),
            }
        })
    }
}

/// One HTTP/1.1 request as bytes, with a JSON body when `body` is not empty.
pub fn raw_request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut head: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    if !body.is_empty() {
        let len = body.len();
        head += &format!("Content-Type: application/json\r\nContent-Length: {len}\r\n");
    }
    format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n{body}").into_bytes()
}

/// A connection for requests written by hand, with [`HTTP_TIMEOUT`] for every operation.
pub fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let connected = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT).and_then(|s| {
        s.set_read_timeout(Some(HTTP_TIMEOUT))?;
        s.set_write_timeout(Some(HTTP_TIMEOUT))?;
        Ok(s)
    });
    connected.map_err(|e| format!("connect to {addr}: {e}"))
}

/// Reads one response: status line, headers, then a body of Content-Length bytes, or up to the
/// end of the stream without one. (jobq and its tiny_http always send a Content-Length.)
pub fn read_response(reader: &mut impl BufRead) -> Result<Resp, String> {
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let status = match line.split_whitespace().collect::<Vec<_>>()[..] {
        [version, code, ..] if version.starts_with("HTTP/1.") => code.parse().ok(),
        _ => None,
    };
    let status = status.ok_or_else(|| format!("bad status line {line:?}"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        match line.trim_end().split_once(':') {
            Some((k, v)) => headers.push((k.trim().to_string(), v.trim().to_string())),
            None if line.trim_end().is_empty() => break,
            None => return Err(format!("bad header line {line:?}")),
        }
    }
    let mut resp = Resp {
        status,
        headers,
        body: String::new(),
    };
    let len = resp.header("content-length").map(str::parse).transpose();
    let len: Option<u64> = len.map_err(|e| format!("bad Content-Length: {e}"))?;
    let mut body = Vec::new();
    let read = reader.take(len.unwrap_or(u64::MAX)).read_to_end(&mut body);
    match read {
        Ok(n) if len.is_none_or(|len| n as u64 == len) => {}
        Ok(n) => return Err(format!("the body ended after {n} of {len:?} bytes")),
        Err(e) => return Err(format!("reading the body: {e}")),
    }
    resp.body = String::from_utf8_lossy(&body).into_owned();
    Ok(resp)
}

/// Sends `request` as it is (it may be malformed on purpose) on a new connection and reads one
/// response; `what` names the request in errors. A failed write (a server that answers before
/// reading everything) still reads whatever came back.
pub fn send_raw(addr: SocketAddr, request: &[u8], what: &str) -> Result<Resp, String> {
    let mut stream = connect(addr).map_err(|e| format!("{what}: {e}"))?;
    let write_err = stream.write_all(request).err();
    read_response(&mut BufReader::new(stream))
        .map_err(|e| format!("{what}: {e} (write error: {write_err:?})"))
}
