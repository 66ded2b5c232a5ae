//! One `redis-server` process of a multi-process topology ([`super::RedisCluster`],
//! [`super::RedisSentinel`]): a data node or a sentinel, in its own folder under the topology's
//! temp dir, with its log there, stopped by the PID of the process this harness started. Also the
//! small tools those topologies share: a bounded run of `redis-cli`, a slower poll than
//! [`super::wait_for`]'s, and reading `INFO` fields.

use super::{find_tool, free_port, revoke_access, send_signal, try_redis_cmd};
use redis::FromRedisValue;
use std::fs::{self, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How often the topologies poll their nodes: each probe opens a few connections to several
/// processes, and the machine's two cores are shared, so not every 20 ms like [`super::POLL`].
pub const TOPOLOGY_POLL: Duration = Duration::from_millis(100);

/// How long a stopping node gets after SIGTERM before it is sent SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

const SERVER_HINT: &str =
    "Run scripts/test, which installs it, or install the redis-server package.";

pub fn redis_server_bin() -> PathBuf {
    find_tool("JOBQ_TEST_REDIS_SERVER", "redis-server", SERVER_HINT)
}

pub fn redis_cli_bin() -> PathBuf {
    let hint = "Run scripts/test, which installs it, or install the redis-tools package.";
    find_tool("JOBQ_TEST_REDIS_CLI", "redis-cli", hint)
}

/// A loopback port for a cluster node: free a moment ago, and so is its cluster bus port
/// (port + 10000, which therefore must stay <= 65535).
pub fn free_cluster_port() -> u16 {
    std::iter::repeat_with(free_port)
        .take(1000)
        .find(|&p| p <= 55535 && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok())
        .expect("a free port whose bus port (+10000) is free too")
}

/// Which log line says that the process listens: a data node says it is ready; a sentinel says
/// nothing of the kind, but prints its ID only after it has bound its port.
#[derive(Clone, Copy)]
pub enum Kind {
    Data,
    Sentinel,
}

impl Kind {
    fn ready_line(self) -> &'static str {
        match self {
            Kind::Data => "Ready to accept connections",
            Kind::Sentinel => "Sentinel ID is",
        }
    }
}

/// One redis-server process. Its arguments are fixed at its first start, so a restart comes back
/// on the same port, in the same folder (a cluster node finds its `nodes.conf` there, a sentinel
/// its rewritten config).
pub struct RedisNode {
    /// "node3", "sentinel1": names its folder and its lines in a failed test's output.
    name: String,
    dir: PathBuf,
    port: u16,
    kind: Kind,
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisNode {
    /// Starts a node named `name` in `parent/name` on a port from `pick_port`, up to 5 tries (a
    /// port may be taken between the pick and the bind). `args(port, dir)` gives redis-server's
    /// whole command line for that port; it may write files into `dir` (a sentinel's config).
    pub fn start(
        parent: &Path,
        name: &str,
        kind: Kind,
        pick_port: fn() -> u16,
        args: impl Fn(u16, &Path) -> Vec<String>,
    ) -> RedisNode {
        let dir = parent.join(name);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let mut errors = Vec::new();
        for _ in 0..5 {
            let port = pick_port();
            let mut node = RedisNode {
                name: name.to_string(),
                dir: dir.clone(),
                port,
                kind,
                args: args(port, &dir),
                child: None,
            };
            match node.spawn() {
                Ok(()) => return node,
                Err(e) => errors.push(e),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("could not start {name}:\n{}", errors.join("\n"));
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the process and waits, up to 20 s, until its own log says it listens. (A PING
    /// could be answered by another test's Redis that took this port first.)
    fn spawn(&mut self) -> Result<(), String> {
        let log_path = self.log_path();
        let log_start = fs::metadata(&log_path).map_or(0, |m| m.len() as usize);
        let log = OpenOptions::new().create(true).append(true).open(&log_path);
        let log = log.map_err(|e| format!("{}: {e}", log_path.display()))?;
        let bin = redis_server_bin();
        let mut child = Command::new(&bin)
            .args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let ready_line = self.kind.ready_line();
        let listening = || {
            let log = fs::read(&log_path).unwrap_or_default();
            String::from_utf8_lossy(log.get(log_start..).unwrap_or_default()).contains(ready_line)
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let outcome = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Err(format!("exited ({status}) before it was ready")),
                _ if listening() => break Ok(()),
                _ if Instant::now() >= deadline => break Err("was not ready within 20 s".into()),
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        };
        if let Err(e) = outcome {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{} on port {} {e}; log: {}",
                self.name,
                self.port,
                log_path.display()
            ));
        }
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL, as a crash or a pulled plug would end it: no goodbye to its peers, no saving.
    /// Waits for the process to be gone (a killed process ends at once) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal(child.id(), "KILL");
            let _ = child.wait();
        }
    }

    /// Starts the node again, same port, folder and arguments, after [`RedisNode::kill`].
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is still running", self.name);
        let mut last = String::new();
        // Its port can be held for a moment by a connection of the killed process.
        for _ in 0..5 {
            match self.spawn() {
                Ok(()) => return,
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        panic!("could not restart {}: {last}", self.name);
    }

    /// [`try_redis_cmd`] to this node.
    pub fn cmd<T: FromRedisValue>(&self, args: &[&str]) -> redis::RedisResult<T> {
        try_redis_cmd(self.port, args)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// The end of its log, for a failed test's output.
    pub fn log_tail(&self, bytes: usize) -> String {
        let log = fs::read(self.log_path()).unwrap_or_default();
        let tail = String::from_utf8_lossy(&log[log.len().saturating_sub(bytes)..]).into_owned();
        format!(
            "--- {} (port {}), {} ---\n{tail}",
            self.name,
            self.port,
            self.log_path().display()
        )
    }
}

/// Stops every running node: SIGTERM to all at once (a node then exits in milliseconds, having
/// nothing to save), then SIGKILL to any still there after [`STOP_GRACE`]. Every signal goes to the
/// PID of a process this harness started.
pub fn stop_all<'a>(nodes: impl IntoIterator<Item = &'a mut RedisNode>) {
    let mut running: Vec<Child> = nodes.into_iter().filter_map(|n| n.child.take()).collect();
    for child in &running {
        send_signal(child.id(), "TERM");
    }
    let deadline = Instant::now() + STOP_GRACE;
    while !running.is_empty() && Instant::now() < deadline {
        running.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
        std::thread::sleep(Duration::from_millis(20));
    }
    for mut child in running {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A topology's end: stops `nodes` ([`stop_all`]), their ports' [`super::Access`] revoked first;
/// after a failed test prints the end of each one's log and keeps `dir` (`what` names whose
/// files they are), else removes `dir`.
pub fn tear_down(mut nodes: Vec<&mut RedisNode>, dir: &Path, what: &str) {
    nodes.iter().for_each(|n| revoke_access(n.port()));
    stop_all(nodes.iter_mut().map(|n| &mut **n));
    if std::thread::panicking() {
        for node in &nodes {
            eprintln!("{}", node.log_tail(1500));
        }
        eprintln!("--- {what} files are kept in {} ---", dir.display());
    } else {
        let _ = fs::remove_dir_all(dir);
    }
}

/// Calls `probe` every [`TOPOLOGY_POLL`] until it returns `Ok`, for at most `timeout`; panics with
/// what it waited for and the last `Err` if it never does.
pub fn wait_slowly<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(last) if Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => std::thread::sleep(TOPOLOGY_POLL),
        }
    }
}

/// Runs `redis-cli args`, for at most `timeout` (then kills it, by its PID), with its output in
/// `log`. `Ok` with the output if it exits 0, else `Err` saying why with the output.
pub fn run_redis_cli(args: &[String], log: &Path, timeout: Duration) -> Result<String, String> {
    let out = fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let bin = redis_cli_bin();
    let mut child = Command::new(&bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(|e| e.to_string())?)
        .stderr(out)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            _ if Instant::now() >= deadline => break None,
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let output = fs::read_to_string(log).unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok(output),
        Some(s) => Err(format!(
            "redis-cli {} exited ({s}):\n{output}",
            args.join(" ")
        )),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!(
                "redis-cli {} took over {timeout:?}:\n{output}",
                args.join(" ")
            ))
        }
    }
}

/// The value of `field` in an `INFO` reply (`field:value` lines).
pub fn info_field<'a>(info: &'a str, field: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}
