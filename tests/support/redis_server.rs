//! A private `redis-server` per test, on a free loopback port in its own temp dir, and one
//! command at a time to it through the `redis` crate ([`RedisServer::redis_cmd`]).

use super::{find_tool, free_port, poll, send_signal, temp_dir};
use redis::FromRedisValue;
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// Key of a job's record hash under the default prefix.
pub fn job_key(id: &str) -> String {
    format!("{{jobq}}:job:{id}")
}

/// Key of the list of pending jobs of queue `default`, priority normal, no group, under the
/// default prefix.
pub const PENDING_KEY: &str = "{jobq}:q:{default}:ready:normal";

/// The hash of queue `default`'s counts and settings.
pub const DEFAULT_QUEUE_META: &str = "{jobq}:q:{default}:meta";

/// A private `redis-server` on loopback, without persistence unless its arguments turn it on.
/// Dropping it kills the process (by its own handle) and removes the dir.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    /// Extra command-line arguments, after the defaults (a later one wins).
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts redis-server with extra arguments, e.g. `["--requirepass", "pw"]`, on a free port
    /// (up to 5 tries). With `--tls-cert-file` among them it serves TLS only (`--tls-port`),
    /// which [`RedisServer::redis_cmd`] does not speak.
    pub fn start_with(args: &[&str]) -> RedisServer {
        let hint = "Run scripts/test, which installs it, or install the redis-server package.";
        let mut redis = RedisServer {
            port: 0,
            dir: temp_dir("redis"),
            bin: find_tool("JOBQ_TEST_REDIS_SERVER", "redis-server", hint),
            args: args.iter().map(|a| a.to_string()).collect(),
            child: None,
        };
        redis.spawn_retrying();
        redis
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

    /// Kills the server (SIGKILL); keeps the dir and port. Its data is lost unless it keeps an
    /// AOF, which a restart reloads.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends the server a signal: "STOP" freezes it (it keeps its port and accepts connections
    /// but answers nothing, like a Redis that hangs), "CONT" lets it go on.
    pub fn signal(&self, sig: &str) {
        match &self.child {
            Some(child) => send_signal(child.id(), sig),
            None => panic!("redis-server on port {} is not running", self.port),
        }
    }

    /// Starts the server again on the same port, dir and arguments.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn_retrying();
    }

    /// [`RedisServer::spawn`], up to 5 tries. A first start picks a new free port for each try
    /// (a cluster node also listens on port + 10000, its bus); a restart keeps its port.
    fn spawn_retrying(&mut self) {
        let first_start = self.port == 0;
        let cluster = self.args.iter().any(|a| a == "--cluster-enabled");
        let mut errors = Vec::new();
        for _ in 0..5 {
            if first_start {
                let mut ports = std::iter::repeat_with(free_port);
                self.port = ports.find(|p| !cluster || *p <= 55535).unwrap();
            }
            match self.spawn() {
                Ok(()) => return,
                Err(e) => errors.push(e),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("could not start redis-server:\n{}", errors.join("\n"));
    }

    /// Starts the process and waits until it is ready, up to 30 s: long enough for a restart
    /// that loads a large AOF (a test makes one that takes seconds).
    fn spawn(&mut self) -> Result<(), String> {
        let log_path = self.dir.join("redis.log");
        let log_start = fs::metadata(&log_path).map_or(0, |m| m.len() as usize);
        let log = OpenOptions::new().create(true).append(true).open(&log_path);
        let log = log.map_err(|e| format!("{}: {e}", log_path.display()))?;
        let port = self.port.to_string();
        let mut cmd = Command::new(&self.bin);
        cmd.args(["--bind", "127.0.0.1", "--appendonly", "no", "--save", ""])
            .arg("--dir")
            .arg(&self.dir);
        match self.args.iter().any(|a| a == "--tls-cert-file") {
            true => cmd.args(["--port", "0", "--tls-port", &port]),
            false => cmd.args(["--port", &port]),
        };
        let mut child = cmd
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", self.bin.display()))?;
        // Its own log says when it listens. (A PING could be answered by another test's Redis
        // that took this port first, while this one is failing to bind it.)
        let listening = || {
            let log = fs::read(&log_path).unwrap_or_default();
            String::from_utf8_lossy(log.get(log_start..).unwrap_or_default())
                .contains("Ready to accept connections")
        };
        let ready = poll(Duration::from_secs(30), || match child.try_wait() {
            Ok(Some(status)) => Ok(Err(format!("exited ({status}) before it was ready"))),
            _ if listening() => Ok(Ok(())),
            _ => Err("was not ready within 30 s".to_string()),
        });
        if let Err(e) = ready.and_then(|r| r) {
            let _ = child.kill();
            let _ = child.wait();
            // Its log follows when the test fails (see Drop).
            return Err(format!("redis-server on port {port} {e}"));
        }
        self.child = Some(child);
        Ok(())
    }

    /// [`try_redis_cmd`] to this server; panics if Redis cannot be reached, answers with an
    /// error or with a reply that is not a `T`.
    pub fn redis_cmd<T: FromRedisValue>(&self, args: &[&str]) -> T {
        try_redis_cmd(self.port, args)
            .unwrap_or_else(|e| panic!("{args:?} to redis on port {}: {e}", self.port))
    }
}

/// How the harness reaches a node that takes no bare connection: with its password, over TLS
/// with a client certificate. A topology grants it for its nodes' ports while they run
/// ([`grant_access`]), so every harness command to them ([`try_redis_cmd`] and all that is
/// built on it) authenticates and speaks TLS, whichever helper sends it.
#[derive(Clone, Default)]
pub struct Access {
    pub password: Option<String>,
    #[cfg(feature = "redis-tls")]
    pub tls: Option<redis::TlsCertificates>,
}

/// The [`Access`] of each port that needs one. A port is in it only while a node of this
/// process holds it: granted once the node listens, revoked before it is stopped.
static ACCESS: Mutex<BTreeMap<u16, Access>> = Mutex::new(BTreeMap::new());

/// From now on [`try_redis_cmd`] reaches `port` with `access`.
pub fn grant_access(port: u16, access: Access) {
    ACCESS.lock().unwrap().insert(port, access);
}

/// [`try_redis_cmd`] reaches `port` with a bare connection again.
pub fn revoke_access(port: u16) {
    ACCESS.lock().unwrap().remove(&port);
}

/// Sends one command to the Redis on loopback `port` on a fresh connection and decodes the reply
/// as a `T` (`redis::Value` for any reply, `()` to ignore it). A port granted an [`Access`] is
/// reached with it.
pub fn try_redis_cmd<T: FromRedisValue>(port: u16, args: &[&str]) -> redis::RedisResult<T> {
    let (name, rest) = args.split_first().expect("a command");
    let access = ACCESS
        .lock()
        .unwrap()
        .get(&port)
        .cloned()
        .unwrap_or_default();
    #[cfg(feature = "redis-tls")]
    let tls = access.tls;
    #[cfg(not(feature = "redis-tls"))]
    let tls: Option<()> = None;
    let scheme = if tls.is_some() { "rediss" } else { "redis" };
    let info =
        redis::IntoConnectionInfo::into_connection_info(format!("{scheme}://127.0.0.1:{port}"))?;
    // Nothing but the command itself, as a bare RESP client would send: no CLIENT SETINFO.
    let mut settings = info.redis_settings().clone().set_skip_set_lib_name();
    if let Some(password) = &access.password {
        settings = settings.set_password(password);
    }
    let info = info.set_redis_settings(settings);
    let client = match tls {
        #[cfg(feature = "redis-tls")]
        Some(certs) => redis::Client::build_with_tls(info, certs)?,
        _ => redis::Client::open(info)?,
    };
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(5))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.set_write_timeout(Some(Duration::from_secs(10)))?;
    redis::cmd(name).arg(rest).query(&mut conn)
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            let log = fs::read(self.dir.join("redis.log")).unwrap_or_default();
            let tail = String::from_utf8_lossy(&log[log.len().saturating_sub(4000)..]);
            eprintln!("--- redis log ({}) ---\n{tail}", self.dir.display());
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
