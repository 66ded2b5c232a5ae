//! Test harness: a private `redis-server` per test, jobq in-process ([`TestServer`]) or as the
//! real binary ([`BinaryServer`]), a tiny HTTP/1.1 client ([`Client`]), a tiny RESP client
//! ([`RedisServer::redis_cmd`]), and helpers for timestamps and Prometheus text.
//!
//! Every wait here is bounded and, when it gives up, says what it waited for and the last thing
//! it saw. Nothing asserts on elapsed wall-clock time except as a generous upper bound.

#![allow(dead_code)]

use serde_json::Value;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Read, write and connect timeout of one HTTP request.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often wait loops poll.
pub const POLL: Duration = Duration::from_millis(20);

// ------------------------------------------------------------------------------------------------
// Waiting
// ------------------------------------------------------------------------------------------------

/// Calls `probe` every [`POLL`] until it returns `Ok`, for at most `timeout`. `Err` carries a
/// description of what the probe saw, reported if the wait gives up.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe() {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        std::thread::sleep(POLL);
    }
}

// ------------------------------------------------------------------------------------------------
// Files, ports, tools
// ------------------------------------------------------------------------------------------------

static TEMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty directory under the system temp dir, unique within this machine at this time
/// (process id plus a counter).
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("jobq-it-{tag}-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create temp dir {}: {e}", dir.display()));
    dir
}

/// A loopback port that was free a moment ago (bind port 0, read it, release it). Callers that
/// lose the race to another process retry with a new port.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for a free port");
    listener
        .local_addr()
        .expect("local_addr of listener")
        .port()
}

/// Finds an external tool: the path in `env_var` if set, else `name` on PATH, else in the usual
/// system folders.
fn find_tool(env_var: &str, name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "{env_var}={} does not name an existing file",
            p.display()
        );
        return Some(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    ["/usr/bin", "/usr/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn redis_server_bin() -> PathBuf {
    find_tool("JOBQ_TEST_REDIS_SERVER", "redis-server").unwrap_or_else(|| {
        panic!(
            "redis-server not found (looked at $JOBQ_TEST_REDIS_SERVER, PATH and /usr/bin). \
             The integration tests start a private redis-server per test: run scripts/test, \
             which installs it, or install the redis-server package, or set \
             JOBQ_TEST_REDIS_SERVER to its path."
        )
    })
}

/// Path of `promtool`, or a panic saying how to get it.
pub fn promtool_bin() -> PathBuf {
    find_tool("JOBQ_TEST_PROMTOOL", "promtool").unwrap_or_else(|| {
        panic!(
            "promtool not found (looked at $JOBQ_TEST_PROMTOOL, PATH and /usr/bin). \
             Run scripts/test, which installs it (Debian package prometheus), or set \
             JOBQ_TEST_PROMTOOL to its path."
        )
    })
}

/// The last `max` bytes of a file, as text (for failure messages).
fn tail_of(path: &Path, max: usize) -> String {
    let text = fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()));
    if text.len() <= max {
        text
    } else {
        let mut start = text.len() - max;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        format!("...{}", &text[start..])
    }
}

// ------------------------------------------------------------------------------------------------
// Redis
// ------------------------------------------------------------------------------------------------

/// A private `redis-server` on a free loopback port, in its own temp dir, without persistence
/// unless started with [`RedisServer::start_persistent`]. Dropping it kills the process (by its
/// own handle) and removes the dir.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    opts: RedisOptions,
    child: Mutex<Option<Child>>,
}

/// How to start a redis-server beyond the defaults (loopback, no persistence).
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// Extra command-line arguments, after the defaults (a later one wins), e.g.
    /// `["--requirepass", "pw"]`. Files they name (certificates) can live in a [`temp_dir`].
    pub args: Vec<String>,
    /// Serve TLS only: the port is given as `--tls-port` and `--port` is 0; `args` must carry
    /// `--tls-cert-file`, `--tls-key-file` and `--tls-ca-cert-file`. [`RedisServer::redis_cmd`]
    /// does not speak TLS.
    pub tls: bool,
}

impl RedisOptions {
    /// Options with these extra arguments.
    pub fn args(args: &[&str]) -> RedisOptions {
        RedisOptions {
            args: args.iter().map(|a| a.to_string()).collect(),
            tls: false,
        }
    }
}

/// A Redis reply.
#[derive(Debug, Clone, PartialEq)]
pub enum RespValue {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(String),
    Array(Vec<RespValue>),
    Nil,
}

impl RespValue {
    /// The text of a simple string or bulk reply.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            RespValue::Simple(s) | RespValue::Bulk(s) => Some(s),
            _ => None,
        }
    }
    /// An integer reply, or a bulk/simple string holding an integer.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            RespValue::Int(n) => Some(*n),
            RespValue::Simple(s) | RespValue::Bulk(s) => s.parse().ok(),
            _ => None,
        }
    }
    /// The string elements of an array reply (nil array → empty).
    pub fn strings(&self) -> Vec<String> {
        match self {
            RespValue::Array(items) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }
    pub fn is_nil(&self) -> bool {
        matches!(self, RespValue::Nil)
    }
}

impl RedisServer {
    /// Starts redis-server on a free port; tries up to 5 ports.
    pub fn start() -> RedisServer {
        RedisServer::start_with(RedisOptions::default())
    }

    /// Starts redis-server with the AOF on and fsynced on every write, so [`RedisServer::stop`]
    /// (a SIGKILL) and [`RedisServer::restart`] keep every acknowledged write.
    pub fn start_persistent() -> RedisServer {
        RedisServer::start_with(RedisOptions::args(&[
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ]))
    }

    /// Starts redis-server with extra options; tries up to 5 ports.
    pub fn start_with(opts: RedisOptions) -> RedisServer {
        let bin = redis_server_bin();
        let dir = temp_dir("redis");
        let mut errors = Vec::new();
        // A cluster node also listens on port + 10000 (the cluster bus).
        let cluster = opts.args.iter().any(|a| a == "--cluster-enabled");
        for _ in 0..5 {
            let port = loop {
                let p = free_port();
                if !cluster || p <= 55535 {
                    break p;
                }
            };
            match spawn_redis(&bin, port, &dir, &opts) {
                Ok(child) => {
                    return RedisServer {
                        port,
                        dir,
                        bin,
                        opts,
                        child: Mutex::new(Some(child)),
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        let _ = fs::remove_dir_all(&dir);
        panic!(
            "could not start {} after 5 tries:\n{}",
            bin.display(),
            errors.join("\n")
        );
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's own temp dir (also a good home for other per-test files).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn is_running(&self) -> bool {
        self.child.lock().unwrap().is_some()
    }

    /// Kills the server (SIGKILL); keeps the dir and port. Its data is lost unless it was started
    /// with [`RedisServer::start_persistent`], whose AOF a restart reloads.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): it keeps its port and accepts connections but answers
    /// nothing, like a Redis that hangs. [`RedisServer::resume`] undoes it; dropping kills it.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = match &*self.child.lock().unwrap() {
            Some(child) => child.id().to_string(),
            None => panic!("redis-server on port {} is not running", self.port),
        };
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(&pid)
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill -{sig} {pid}: {e}"));
        assert!(status.success(), "kill -{sig} {pid} failed: {status}");
    }

    /// Starts the server again on the same port, dir and options.
    pub fn restart(&self) {
        self.stop();
        let mut errors = Vec::new();
        for _ in 0..5 {
            match spawn_redis(&self.bin, self.port, &self.dir, &self.opts) {
                Ok(child) => {
                    *self.child.lock().unwrap() = Some(child);
                    return;
                }
                Err(e) => {
                    errors.push(e);
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        panic!(
            "could not restart redis-server on port {}:\n{}",
            self.port,
            errors.join("\n")
        );
    }

    /// Sends one command and returns the reply. Panics if Redis cannot be reached.
    pub fn redis_cmd(&self, args: &[&str]) -> RespValue {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to redis at {addr} for {args:?}: {e}"));
        stream.set_read_timeout(Some(HTTP_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(HTTP_TIMEOUT)).unwrap();
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a.as_bytes());
            req.extend_from_slice(b"\r\n");
        }
        stream
            .write_all(&req)
            .unwrap_or_else(|e| panic!("send {args:?} to redis: {e}"));
        let mut reader = BufReader::new(stream);
        read_resp(&mut reader).unwrap_or_else(|e| panic!("reply to {args:?} from redis: {e}"))
    }

    /// `HGET key field` as an optional string.
    pub fn hget(&self, key: &str, field: &str) -> Option<String> {
        match self.redis_cmd(&["HGET", key, field]) {
            RespValue::Nil => None,
            RespValue::Bulk(s) => Some(s),
            other => panic!("HGET {key} {field}: unexpected reply {other:?}"),
        }
    }

    /// `LRANGE key 0 -1`
    pub fn lrange_all(&self, key: &str) -> Vec<String> {
        match self.redis_cmd(&["LRANGE", key, "0", "-1"]) {
            v @ RespValue::Array(_) => v.strings(),
            RespValue::Nil => Vec::new(),
            other => panic!("LRANGE {key}: unexpected reply {other:?}"),
        }
    }
}

impl RedisServer {
    /// A one-node Redis Cluster: cluster mode on, every slot assigned to this node, and the
    /// cluster reporting `cluster_state:ok`.
    pub fn start_cluster_node() -> RedisServer {
        let redis = RedisServer::start_with(RedisOptions::args(&[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
        ]));
        let added = redis.redis_cmd(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
        assert_eq!(
            added.as_str(),
            Some("OK"),
            "CLUSTER ADDSLOTSRANGE: {added:?}"
        );
        wait_for("cluster_state:ok", Duration::from_secs(10), || {
            let info = redis.redis_cmd(&["CLUSTER", "INFO"]);
            match info.as_str() {
                Some(text) if text.contains("cluster_state:ok") => Ok(()),
                _ => Err(format!("{info:?}")),
            }
        });
        redis
    }
}

/// Sends `requests` on one connection in a single write (HTTP pipelining) and reads their
/// answers, in order. Each answer must carry a Content-Length (jobq's do).
pub fn send_pipelined(addr: SocketAddr, requests: &[Vec<u8>]) -> Vec<Resp> {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream.set_read_timeout(Some(HTTP_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(HTTP_TIMEOUT)).unwrap();
    stream
        .write_all(&requests.concat())
        .unwrap_or_else(|e| panic!("send pipelined requests to {addr}: {e}"));
    let mut reader = BufReader::new(stream);
    let mut out = Vec::new();
    for i in 0..requests.len() {
        let mut status_line = String::new();
        reader
            .read_line(&mut status_line)
            .unwrap_or_else(|e| panic!("answer {i} of {}: {e}", requests.len()));
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("answer {i}: bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("header line");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let len: usize = header_of(&headers, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("answer {i} has no Content-Length: {headers:?}"));
        let mut body = vec![0; len];
        reader.read_exact(&mut body).expect("answer body");
        out.push(Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    out
}

/// One HTTP/1.1 request as bytes, with a JSON body when `body` is not empty.
pub fn raw_request(
    method: &str,
    path: &str,
    extra_headers: &[(&str, &str)],
    body: &str,
) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (k, v) in extra_headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        r.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r.into_bytes()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "--- redis log ({}) ---\n{}",
                self.dir.display(),
                tail_of(&self.dir.join("redis.log"), 4000)
            );
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn spawn_redis(bin: &Path, port: u16, dir: &Path, opts: &RedisOptions) -> Result<Child, String> {
    let log_path = dir.join("redis.log");
    let log_start = fs::metadata(&log_path).map_or(0, |m| m.len() as usize);
    let (plain_port, tls_port) = if opts.tls {
        (0, Some(port))
    } else {
        (port, None)
    };
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("open {}: {e}", log_path.display()))?;
    let log2 = log
        .try_clone()
        .map_err(|e| format!("dup log handle: {e}"))?;
    let mut cmd = Command::new(bin);
    cmd.arg("--port")
        .arg(plain_port.to_string())
        .args(["--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir)
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"]);
    if let Some(p) = tls_port {
        cmd.arg("--tls-port").arg(p.to_string());
    }
    let mut child = cmd
        .args(&opts.args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
    // Long enough for a restart that loads a large AOF (a test makes one that takes seconds).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "redis-server on port {port} exited ({status}) before it was ready; log:\n{}",
                tail_of(&log_path, 2000)
            ));
        }
        // Its own log says when it listens. (A PING could be answered by another test's Redis
        // that took this port first, while this one is failing to bind it.)
        let ready = fs::read(&log_path).is_ok_and(|b| {
            String::from_utf8_lossy(b.get(log_start..).unwrap_or_default())
                .contains("Ready to accept connections")
        });
        if ready {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "redis-server on port {port} was not ready within 30 s; log:\n{}",
                tail_of(&log_path, 2000)
            ));
        }
        std::thread::sleep(POLL);
    }
}

fn read_resp(r: &mut impl BufRead) -> Result<RespValue, String> {
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    let line = line
        .strip_suffix("\r\n")
        .ok_or_else(|| format!("truncated reply line {line:?}"))?;
    if line.is_empty() {
        return Err("empty reply line".into());
    }
    let (kind, rest) = line.split_at(1);
    let int = |s: &str| {
        s.parse::<i64>()
            .map_err(|e| format!("bad integer {s:?} in reply: {e}"))
    };
    match kind {
        "+" => Ok(RespValue::Simple(rest.to_string())),
        "-" => Ok(RespValue::Error(rest.to_string())),
        ":" => Ok(RespValue::Int(int(rest)?)),
        "_" => Ok(RespValue::Nil),
        "$" => {
            let n = int(rest)?;
            if n < 0 {
                return Ok(RespValue::Nil);
            }
            let mut buf = vec![0u8; n as usize + 2];
            r.read_exact(&mut buf).map_err(|e| e.to_string())?;
            buf.truncate(n as usize);
            Ok(RespValue::Bulk(String::from_utf8_lossy(&buf).into_owned()))
        }
        "*" => {
            let n = int(rest)?;
            if n < 0 {
                return Ok(RespValue::Nil);
            }
            (0..n)
                .map(|_| read_resp(r))
                .collect::<Result<Vec<_>, _>>()
                .map(RespValue::Array)
        }
        _ => Err(format!("unknown reply type in {line:?}")),
    }
}

/// Key of a job's record hash under the default prefix.
pub fn job_key(id: &str) -> String {
    format!("{{jobq}}:job:{id}")
}

/// Key of the list of pending jobs under the default prefix.
pub const PENDING_KEY: &str = "{jobq}:pending";

// ------------------------------------------------------------------------------------------------
// HTTP
// ------------------------------------------------------------------------------------------------

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
            panic!(
                "response body is not JSON ({e}); status {}, body {:?}",
                self.status, self.body
            )
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
        let msg = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{context}: error body has no string \"error\" field: {v}"));
        assert!(!msg.is_empty(), "{context}: empty error message in {v}");
        msg.to_string()
    }

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

fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Decodes a chunked body. `None` while it is incomplete (or malformed).
fn decode_chunked(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find_bytes(data, b"\r\n")?;
        let size_line = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

struct Head {
    status: u16,
    headers: Vec<(String, String)>,
    body_start: usize,
}

fn parse_head(buf: &[u8]) -> Option<Result<Head, String>> {
    let end = find_bytes(buf, b"\r\n\r\n")?;
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Some(Err(format!("bad status line {status_line:?}")));
    }
    let status = match parts.next().and_then(|s| s.parse::<u16>().ok()) {
        Some(s) => s,
        None => return Some(Err(format!("bad status line {status_line:?}"))),
    };
    let mut headers = Vec::new();
    for line in lines {
        match line.split_once(':') {
            Some((k, v)) => headers.push((k.trim().to_string(), v.trim().to_string())),
            None => return Some(Err(format!("bad header line {line:?}"))),
        }
    }
    Some(Ok(Head {
        status,
        headers,
        body_start: end + 4,
    }))
}

fn header_of<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn is_chunked(headers: &[(String, String)]) -> bool {
    header_of(headers, "transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
}

/// Whether `buf` holds a whole response (so we need not wait for the server to close).
fn response_complete(buf: &[u8]) -> bool {
    let Some(Ok(head)) = parse_head(buf) else {
        return false;
    };
    let body = &buf[head.body_start..];
    if is_chunked(&head.headers) {
        return decode_chunked(body).is_some();
    }
    match header_of(&head.headers, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(len) => body.len() >= len,
        None => false,
    }
}

fn parse_response(buf: &[u8], eof: bool) -> Result<Resp, String> {
    let head = match parse_head(buf) {
        Some(h) => h?,
        None => return Err("no complete header block".into()),
    };
    let raw = &buf[head.body_start..];
    let body = if is_chunked(&head.headers) {
        decode_chunked(raw).ok_or("bad or truncated chunked body")?
    } else if let Some(len) =
        header_of(&head.headers, "content-length").and_then(|v| v.parse::<usize>().ok())
    {
        if raw.len() < len {
            return Err(format!(
                "truncated body: {} of {len} bytes{}",
                raw.len(),
                if eof { " before the server closed" } else { "" }
            ));
        }
        raw[..len].to_vec()
    } else {
        raw.to_vec()
    };
    Ok(Resp {
        status: head.status,
        headers: head.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Sends one request on a new connection (`Connection: close`) and reads the response. A failed
/// write (a server that answers before reading a large body) still reads whatever came back.
pub fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    content_type: Option<&str>,
) -> Result<Resp, String> {
    let headers: Vec<(&str, &str)> = content_type
        .map(|ct| ("Content-Type", ct))
        .into_iter()
        .collect();
    try_http_with_headers(addr, method, path, &headers, body)
}

/// Like [`try_http`], with extra request headers (`Authorization`, `Idempotency-Key`, ...).
pub fn try_http_with_headers(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Resp, String> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         User-Agent: jobq-integration-tests\r\nAccept: */*\r\n"
    );
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    send_raw(addr, &request, &format!("{method} http://{addr}{path}"))
}

/// Sends `request` as it is (it may be malformed on purpose) on a new connection and reads one
/// response; `what` names the request in errors. A failed write still reads whatever came back.
pub fn send_raw(addr: SocketAddr, request: &[u8], what: &str) -> Result<Resp, String> {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)
        .map_err(|e| format!("{what}: connect: {e}"))?;
    stream
        .set_read_timeout(Some(HTTP_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(HTTP_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let write_err = stream.write_all(request).err();

    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut eof = false;
    let read_err = loop {
        if response_complete(&buf) {
            break None;
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                eof = true;
                break None;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Some(e),
        }
    };
    if buf.is_empty() {
        return Err(format!(
            "{what}: no response (write error: {write_err:?}, read error: {read_err:?})"
        ));
    }
    parse_response(&buf, eof).map_err(|e| {
        format!(
            "{what}: {e} (write error: {write_err:?}, read error: {read_err:?}); raw response: {:?}",
            String::from_utf8_lossy(&buf)
        )
    })
}

/// An HTTP client bound to one server address.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub addr: SocketAddr,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn try_request(&self, method: &str, path: &str, body: &[u8]) -> Result<Resp, String> {
        let ct = (!body.is_empty()).then_some("application/json");
        try_http(self.addr, method, path, body, ct)
    }

    /// Any method; a non-empty body is sent as `application/json`.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> Resp {
        self.try_request(method, path, body)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, b"")
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Resp {
        self.request("POST", path, body.to_string().as_bytes())
    }

    /// Any method with extra request headers; a non-empty body is sent as `application/json`.
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Resp {
        let mut all = headers.to_vec();
        if !body.is_empty() {
            all.push(("Content-Type", "application/json"));
        }
        try_http_with_headers(self.addr, method, path, &all, body).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn post_raw(&self, path: &str, body: &[u8], content_type: &str) -> Resp {
        try_http(self.addr, "POST", path, body, Some(content_type))
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
        assert!(is_uuid_v4(&id), "job_id {id:?} is not a UUID v4");
        id
    }

    /// `GET /jobs/{id}`, asserting 200.
    pub fn job(&self, id: &str) -> Value {
        let r = self.get(&format!("/jobs/{id}"));
        r.expect_status(200, &format!("GET /jobs/{id}"));
        r.json()
    }

    /// `GET /stats`, asserting 200.
    pub fn stats(&self) -> Value {
        let r = self.get("/stats");
        r.expect_status(200, "GET /stats");
        r.json()
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
        let r = self.get("/metrics");
        r.expect_status(200, "GET /metrics");
        r.body
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
            if matches!(now.as_str(), "completed" | "failed") {
                panic!("job {id} ended {now} while waiting for it to be {status}: {job}");
            }
            Err(job.to_string())
        })
    }

    /// Polls `/stats` until `field` equals `want`; returns the stats.
    pub fn wait_for_stat(&self, field: &str, want: u64, timeout: Duration) -> Value {
        wait_for(&format!("/stats {field} == {want}"), timeout, || {
            let s = self.stats();
            if s[field].as_u64() == Some(want) {
                Ok(s)
            } else {
                Err(s.to_string())
            }
        })
    }

    /// Polls `/metrics` until the sum of samples of `name` reaches at least `want`; returns the
    /// text of that scrape.
    pub fn wait_for_metric(&self, name: &str, want: f64, timeout: Duration) -> String {
        wait_for(&format!("metric {name} >= {want}"), timeout, || {
            let text = self.metrics();
            match metric_sum(&text, name) {
                Some(v) if v >= want => Ok(text),
                other => Err(format!("{name} = {other:?}")),
            }
        })
    }
}

// ------------------------------------------------------------------------------------------------
// jobq in-process
// ------------------------------------------------------------------------------------------------

/// The configuration every in-process test server starts from: loopback, a port picked by the
/// OS, diagnostic jobs on, quick retries, short shutdown, mail into the Redis temp dir.
pub fn test_config(redis: &RedisServer) -> jobq::Config {
    jobq::Config {
        redis_url: redis.url(),
        host: "127.0.0.1".into(),
        port: 0,
        num_workers: 2,
        http_threads: 4,
        enable_diagnostic_jobs: true,
        backoff_base_ms: 50,
        backoff_max_ms: 200,
        shutdown_timeout_secs: 3,
        log_level: log::LevelFilter::Warn,
        mail_dir: redis.dir().join("mail").to_string_lossy().into_owned(),
        ..jobq::Config::default()
    }
}

/// jobq started in-process through `jobq::start`. Dropping it shuts it down gracefully.
pub struct TestServer {
    running: Option<jobq::Running>,
    client: Client,
}

impl TestServer {
    /// Starts jobq with the built-in handlers; `tweak` adjusts [`test_config`].
    pub fn start(redis: &RedisServer, tweak: impl FnOnce(&mut jobq::Config)) -> TestServer {
        TestServer::with_registry(redis, |_| {}, tweak)
    }

    /// Starts jobq with the built-in handlers plus whatever `register` adds.
    pub fn with_registry(
        redis: &RedisServer,
        register: impl FnOnce(&mut jobq::Registry),
        tweak: impl FnOnce(&mut jobq::Config),
    ) -> TestServer {
        let mut config = test_config(redis);
        tweak(&mut config);
        let mut registry = jobq::builtin_registry(&config)
            .unwrap_or_else(|e| panic!("builtin_registry failed: {e}"));
        register(&mut registry);
        let running =
            jobq::start(config, registry).unwrap_or_else(|e| panic!("jobq::start failed: {e:?}"));
        let mut addr = running.addr();
        if addr.ip().is_unspecified() {
            addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        TestServer {
            running: Some(running),
            client: Client::new(addr),
        }
    }

    pub fn client(&self) -> Client {
        self.client
    }

    /// Graceful shutdown; returns what `Running::shutdown` returns.
    pub fn stop(mut self) -> Result<jobq::ShutdownReport, jobq::Error> {
        self.running
            .take()
            .expect("server already stopped")
            .shutdown()
    }
}

impl Deref for TestServer {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.shutdown();
        }
    }
}

// ------------------------------------------------------------------------------------------------
// jobq as the real binary
// ------------------------------------------------------------------------------------------------

/// Every variable jobq reads; removed from the child's environment so the caller's shell cannot
/// leak settings into a test.
pub const JOBQ_VARS: &[&str] = &[
    "REDIS_URL",
    "REDIS_PREFIX",
    "HOST",
    "PORT",
    "ROLE",
    "NUM_WORKERS",
    "HTTP_THREADS",
    "MAX_QUEUE_SIZE",
    "MAX_ATTEMPTS",
    "BACKOFF_BASE_MS",
    "BACKOFF_MAX_MS",
    "JOB_TTL_SECS",
    "MAX_BODY_BYTES",
    "SHUTDOWN_TIMEOUT_SECS",
    "RECOVERY_SECS",
    "JOB_TIMEOUT_SECS",
    "LOG_LEVEL",
    "ENABLE_DIAGNOSTIC_JOBS",
    "MAIL_DIR",
    "MAIL_FROM",
    "SMTP_URL",
    "SMTP_TIMEOUT_SECS",
    "IMAGE_DIR",
    "REPORT_DIR",
    "ANALYTICS_RETENTION_DAYS",
    "HANDLERS_FILE",
    "DLQ_MAX_SIZE",
    "IDEMPOTENCY_TTL_SECS",
    "API_TOKEN",
    "METRICS_PUBLIC",
    "MAX_CONNECTIONS",
    "REDIS_CA_CERT",
    "REDIS_CLIENT_CERT",
    "REDIS_CLIENT_KEY",
    "RUST_LOG",
];

/// The `jobq` binary as a child process, with stdout and stderr captured to files.
pub struct BinaryServer {
    child: Child,
    client: Client,
    dir: PathBuf,
    /// Whether its LOG_LEVEL shows the info line that names the port it listens on.
    logs_listening: bool,
}

impl BinaryServer {
    /// Starts the binary and waits (10 s at most) until `GET /health` answers 200.
    pub fn spawn(redis_url: &str, env: &[(&str, &str)]) -> BinaryServer {
        for attempt in 1..=3 {
            let mut server = BinaryServer::launch(redis_url, env);
            match server.wait_healthy(Duration::from_secs(10)) {
                Ok(()) => return server,
                Err(e) => {
                    let log = server.log();
                    let lost_port_race = server.has_exited()
                        && (log.contains("in use") || log.contains("AddrInUse"));
                    if lost_port_race && attempt < 3 {
                        continue;
                    }
                    panic!("jobq binary did not become healthy: {e}\n--- its log ---\n{log}");
                }
            }
        }
        unreachable!()
    }

    /// Starts the binary without waiting for anything (for tests of start-up failures).
    pub fn launch(redis_url: &str, env: &[(&str, &str)]) -> BinaryServer {
        let dir = temp_dir("bin");
        let port = free_port();
        let out = File::create(dir.join("stdout.log")).expect("create stdout.log");
        let err = File::create(dir.join("stderr.log")).expect("create stderr.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_jobq"));
        for var in JOBQ_VARS {
            cmd.env_remove(var);
        }
        cmd.env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("REDIS_URL", redis_url)
            .env("ENABLE_DIAGNOSTIC_JOBS", "true")
            .env("LOG_LEVEL", "info")
            .env("NUM_WORKERS", "2")
            .env("HTTP_THREADS", "4")
            .env("MAIL_DIR", dir.join("mail"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", env!("CARGO_BIN_EXE_jobq")));
        let level = env
            .iter()
            .rev()
            .find(|(k, _)| *k == "LOG_LEVEL")
            .map(|(_, v)| *v);
        BinaryServer {
            child,
            client: Client::new(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
            dir,
            logs_listening: matches!(level, None | Some("info" | "debug" | "trace")),
        }
    }

    fn wait_healthy(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("the process exited early ({status})"));
            }
            // The 200 must come from this process: if it lost its port to another test's
            // server, that one answers until this one exits. (It may listen on another address
            // of this host, HOST=0.0.0.0 say: the port is what tells.)
            let listening = format!(":{} (role", self.client.addr.port());
            let last = match self.client.try_request("GET", "/health", b"") {
                Ok(r)
                    if r.status == 200
                        && (!self.logs_listening || self.log().contains(&listening)) =>
                {
                    return Ok(())
                }
                Ok(r) => format!("HTTP {} {}", r.status, r.body),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "GET /health did not answer 200 within {timeout:?}; last: {last}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn client(&self) -> Client {
        self.client
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends a signal ("INT", "TERM", ...) with the `kill` command.
    pub fn signal(&self, sig: &str) {
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(&pid)
            .status()
            .or_else(|_| {
                Command::new("sh")
                    .args(["-c", "kill -s \"$0\" \"$1\"", sig, &pid])
                    .status()
            })
            .unwrap_or_else(|e| panic!("cannot run kill -{sig} {pid}: {e}"));
        assert!(status.success(), "kill -{sig} {pid} failed: {status}");
    }

    /// Waits for the process to exit, polling; `None` if it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => {}
                Err(e) => panic!("try_wait on jobq pid {}: {e}", self.pid()),
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// Everything the process printed: stdout, then stderr.
    pub fn log(&self) -> String {
        format!("{}{}", self.stdout(), self.stderr())
    }
}

impl Deref for BinaryServer {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for BinaryServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- jobq binary log (pid {}) ---\n{}",
                self.child.id(),
                self.log()
            );
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

// ------------------------------------------------------------------------------------------------
// Values
// ------------------------------------------------------------------------------------------------

/// Lower-case hyphenated UUID with version 4 and the RFC 4122 variant.
pub fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses an RFC 3339 UTC time of the form `YYYY-MM-DDTHH:MM:SS[.fraction]Z` to milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not an RFC 3339 UTC time like 2026-01-02T15:04:05.123Z");
    let body = s.strip_suffix('Z').ok_or_else(bad)?;
    let b = body.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
        let part = &body[r];
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return Err(bad());
    }
    let mut millis = 0;
    if b.len() > 19 {
        let frac = body[19..].strip_prefix('.').ok_or_else(bad)?;
        if frac.is_empty() || !frac.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let mut digits: String = frac.chars().take(3).collect();
        while digits.len() < 3 {
            digits.push('0');
        }
        millis = digits.parse::<i64>().map_err(|_| bad())?;
    }
    let days = days_from_civil(year, month, day);
    Ok(((days * 24 + hour) * 60 + min) * 60_000 + sec * 1000 + millis)
}

/// Formats milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_rfc3339_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

/// A timestamp field of a job: `None` if null, its milliseconds if an RFC 3339 UTC string;
/// panics on anything else.
pub fn ts(job: &Value, field: &str) -> Option<i64> {
    match &job[field] {
        Value::Null => None,
        Value::String(s) => Some(
            parse_rfc3339_ms(s).unwrap_or_else(|e| panic!("job field {field}: {e}; job: {job}")),
        ),
        other => panic!("job field {field} is neither null nor a string: {other}; job: {job}"),
    }
}

/// Like [`ts`], but the field must be set.
pub fn ts_req(job: &Value, field: &str) -> i64 {
    ts(job, field).unwrap_or_else(|| panic!("job field {field} is null; job: {job}"))
}

// ------------------------------------------------------------------------------------------------
// Prometheus text
// ------------------------------------------------------------------------------------------------

/// One sample line of the text exposition format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

fn parse_labels(s: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(labels);
        }
        let mut key = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((key.trim().to_string(), value));
    }
}

/// Parses every sample line (comments and blank lines skipped; unparsable lines skipped).
pub fn parse_samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, labels, rest) = match line.find(['{', ' ']) {
            Some(i) if line.as_bytes()[i] == b'{' => {
                let Some(close) = line.rfind('}') else {
                    continue;
                };
                let Some(labels) = parse_labels(&line[i + 1..close]) else {
                    continue;
                };
                (&line[..i], labels, &line[close + 1..])
            }
            Some(i) => (&line[..i], Vec::new(), &line[i..]),
            None => continue,
        };
        let Some(value) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        else {
            continue;
        };
        out.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    out
}

/// Sum of the samples of metric `name` that carry all of `labels`; `None` if there are none.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = parse_samples(text)
        .into_iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
        .collect();
    (!matching.is_empty()).then(|| matching.iter().sum())
}

/// Sum of all samples of metric `name` (over all label values); `None` if there are none.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    metric_value(text, name, &[])
}

// ------------------------------------------------------------------------------------------------
// Self-checks of the harness
// ------------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_parses_and_formats_round_trip() {
        assert_eq!(
            parse_rfc3339_ms("2026-04-07T10:30:00.000Z").unwrap(),
            1_775_557_800_000
        );
        assert_eq!(
            parse_rfc3339_ms("2030-01-01T00:00:00.25Z").unwrap(),
            1_893_456_000_250
        );
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z").unwrap(), 0);
        assert!(parse_rfc3339_ms("2026-04-07T10:30:00+00:00").is_err());
        assert!(parse_rfc3339_ms("2026-04-07 10:30").is_err());
        for ms in [0, 1_775_557_800_123, 951_782_400_000, now_ms()] {
            assert_eq!(parse_rfc3339_ms(&format_rfc3339_ms(ms)).unwrap(), ms);
        }
        assert_eq!(
            format_rfc3339_ms(951_782_400_000),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn responses_parse_with_length_or_chunks() {
        let raw = b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        assert!(response_complete(raw));
        let r = parse_response(raw, true).unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.header("CONTENT-TYPE"), Some("application/json"));
        assert_eq!(r.body, "{}");

        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert!(response_complete(raw));
        assert_eq!(parse_response(raw, true).unwrap().body, "abcde");
        assert!(!response_complete(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab"
        ));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", true).is_err());
    }

    #[test]
    fn prometheus_samples_are_parsed() {
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
    fn uuid_v4_check() {
        assert!(is_uuid_v4("550e8400-e29b-41d4-a716-446655440000"));
        assert!(!is_uuid_v4("550e8400-e29b-11d4-a716-446655440000"));
        assert!(!is_uuid_v4("550E8400-E29B-41D4-A716-446655440000"));
        assert!(!is_uuid_v4("not-a-uuid"));
    }
}
