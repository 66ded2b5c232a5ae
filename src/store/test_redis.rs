//! For tests inside the crate: a private redis-server on a free loopback port, in its own temp
//! dir, killed (by its own `Child` handle, never by name) when dropped. The binary is
//! `JOBQ_TEST_REDIS_SERVER`, or `redis-server` on PATH.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Backend, Store};

pub struct TestRedis {
    child: Child,
    dir: PathBuf,
    pub port: u16,
}

impl TestRedis {
    /// Starts one; tries a few ports, since another test may take a free one first.
    pub fn start() -> TestRedis {
        let bin = std::env::var("JOBQ_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let dir = std::env::temp_dir().join(format!(
            "jobq-store-test-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut errors = Vec::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let mut child = Command::new(&bin)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "yes",
                ])
                .arg("--dir")
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {bin} (set JOBQ_TEST_REDIS_SERVER): {e}"));
            match wait_until_up(&mut child, port) {
                Ok(()) => return TestRedis { child, dir, port },
                Err(e) => errors.push(e),
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("could not start {bin}:\n{}", errors.join("\n"));
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A plain client, for looking at keys behind the store's back.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("a valid URL")
    }

    /// A connection for raw commands in a test.
    pub fn raw(&self) -> redis::Connection {
        self.client().get_connection().expect("redis answers")
    }

    /// The process's backend as jobq builds it, with the default key prefix.
    pub fn backend(&self) -> Backend {
        Backend::for_tests(&self.url(), PREFIX)
    }

    /// Partition 0's store alone: the transitions as one partition sees them.
    pub fn store(&self) -> Store {
        self.backend()
            .open_part(0, crate::store::conn::COMMAND_TIMEOUT)
    }
}

/// Waits for the server on `port` to answer PING, or for `child` to exit.
fn wait_until_up(child: &mut Child, port: u16) -> Result<(), String> {
    let until = Instant::now() + Duration::from_secs(10);
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("a valid URL");
    while Instant::now() < until {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("port {port}: redis-server exited ({status})"));
        }
        let pong = client
            .get_connection_with_timeout(Duration::from_millis(500))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
        if pong.is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("port {port}: no answer within 10 s"))
}

/// The key prefix the tests use (jobq's default).
pub const PREFIX: &str = "{jobq}";

impl Drop for TestRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
