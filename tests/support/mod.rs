//! Test harness: a private `redis-server` per test ([`RedisServer`]), or a private Redis
//! Cluster ([`RedisCluster`]) or Sentinel group ([`RedisSentinel`]), jobq in-process
//! ([`TestServer`]) or as the real binary ([`BinaryServer`]), an HTTP client ([`Client`]) and a
//! headless Chromium for the dashboard's browser tests ([`browser::Browser`]), and a webhook
//! receiver ([`Receiver`]).
//! Every wait is bounded and, when it gives up, says what it waited for and what it last saw.

pub mod browser;
mod http;
mod jobq_server;
mod metrics;
#[cfg(feature = "webhook")]
mod receiver;
mod redis_cluster;
mod redis_node;
mod redis_sentinel;
mod redis_server;
mod tls;
mod values;

pub use self::http::*;
pub use self::jobq_server::*;
pub use self::metrics::*;
#[cfg(feature = "webhook")]
pub use self::receiver::*;
pub use self::redis_cluster::*;
pub use self::redis_sentinel::*;
pub use self::redis_server::*;
pub use self::tls::*;
pub use self::values::*;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How often wait loops poll.
pub const POLL: Duration = Duration::from_millis(20);

/// Calls `probe` every [`POLL`] until it returns `Ok`, for at most `timeout`; panics with the
/// last `Err` (what the probe saw) if it never does.
pub fn wait_for<T>(what: &str, timeout: Duration, probe: impl FnMut() -> Result<T, String>) -> T {
    poll(timeout, probe).unwrap_or_else(|last| {
        panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}")
    })
}

/// Like [`wait_for`], but giving up returns the last `Err` instead of panicking.
fn poll<T>(timeout: Duration, mut probe: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(v) => return Ok(v),
            Err(last) if Instant::now() >= deadline => return Err(last),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// Sends a signal ("TERM", "KILL", "STOP", "CONT", ...) to a process this harness started.
fn send_signal(pid: u32, sig: &str) {
    let signal: Signal = format!("SIG{sig}").parse().expect("a signal name");
    let pid = Pid::from_raw(pid.try_into().expect("a pid"));
    kill(pid, signal).unwrap_or_else(|e| panic!("kill -{sig} {pid}: {e}"));
}

/// A fresh, empty directory under the system temp dir, named by process id and a counter.
pub fn temp_dir(tag: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("jobq-it-{tag}-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create temp dir {}: {e}", dir.display()));
    dir
}

/// A loopback port that was free a moment ago; callers that lose it to another process retry.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 for a free port");
    listener.local_addr().expect("local_addr").port()
}

/// Finds an external tool: the path in `env_var` if set, else `name` on PATH, else in the usual
/// system folders; panics saying how to get it (`hint`) if it is nowhere.
pub fn find_tool(env_var: &str, name: &str, hint: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "{env_var}={} is not a file", p.display());
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} not found (looked at ${env_var}, PATH and /usr/bin). {hint}")
        })
}
