//! jobq under test: in-process through the library ([`TestServer`]), or as the real binary
//! ([`BinaryServer`]) where signals, exit codes or per-process state matter.

use super::{free_port, poll, send_signal, temp_dir, Client, RedisServer};
use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Deref;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// jobq started in-process through `jobq::start`. Dropping it shuts it down gracefully.
pub struct TestServer {
    running: Option<jobq::Running>,
    client: Client,
}

impl TestServer {
    /// Starts jobq with the built-in handlers; `tweak` adjusts the test configuration.
    pub fn start(redis: &RedisServer, tweak: impl FnOnce(&mut jobq::Config)) -> TestServer {
        TestServer::with_registry(redis, |_| {}, tweak)
    }

    /// Starts jobq with the built-in handlers plus whatever `register` adds. The configuration
    /// `tweak` starts from: loopback, a port picked by the OS, diagnostic jobs on, quick
    /// retries, short shutdown, mail into the Redis temp dir.
    pub fn with_registry(
        redis: &RedisServer,
        register: impl FnOnce(&mut jobq::Registry),
        tweak: impl FnOnce(&mut jobq::Config),
    ) -> TestServer {
        TestServer::at(redis.url(), redis.dir(), register, tweak)
    }

    /// Starts jobq with no job types but those `register` adds (none built in).
    pub fn bare(
        redis: &RedisServer,
        register: impl FnOnce(&mut jobq::Registry),
        tweak: impl FnOnce(&mut jobq::Config),
    ) -> TestServer {
        let mut registry = jobq::Registry::new();
        register(&mut registry);
        TestServer::try_at(redis.url(), redis.dir(), Some(registry), |_| {}, tweak)
            .unwrap_or_else(|e| panic!("jobq::start failed: {e:?}"))
    }

    /// Starts jobq with the built-in handlers against REDIS_URL `url` (a Redis Cluster's or a
    /// Sentinel group's, say), mail into `dir`.
    pub fn with_url(
        url: String,
        dir: &std::path::Path,
        tweak: impl FnOnce(&mut jobq::Config),
    ) -> TestServer {
        TestServer::at(url, dir, |_| {}, tweak)
    }

    /// [`TestServer::with_url`], giving back what `jobq::start` refused with, if it did.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub fn try_with_url(
        url: String,
        dir: &std::path::Path,
        tweak: impl FnOnce(&mut jobq::Config),
    ) -> Result<TestServer, jobq::Error> {
        TestServer::try_at(url, dir, None, |_| {}, tweak)
    }

    fn at(
        url: String,
        dir: &std::path::Path,
        register: impl FnOnce(&mut jobq::Registry),
        tweak: impl FnOnce(&mut jobq::Config),
    ) -> TestServer {
        TestServer::try_at(url, dir, None, register, tweak)
            .unwrap_or_else(|e| panic!("jobq::start failed: {e:?}"))
    }

    /// `registry`: the job types to start with (None: the built-in ones).
    fn try_at(
        url: String,
        dir: &std::path::Path,
        registry: Option<jobq::Registry>,
        register: impl FnOnce(&mut jobq::Registry),
        tweak: impl FnOnce(&mut jobq::Config),
    ) -> Result<TestServer, jobq::Error> {
        let mut config = jobq::Config {
            redis_url: url,
            host: "127.0.0.1".into(),
            port: 0,
            num_workers: 2,
            http_threads: 4,
            enable_diagnostic_jobs: true,
            backoff_base_ms: 50,
            backoff_max_ms: 200,
            shutdown_timeout_secs: 3,
            log_level: log::LevelFilter::Warn,
            mail_dir: dir.join("mail").to_string_lossy().into_owned(),
            ..jobq::Config::default()
        };
        tweak(&mut config);
        let mut registry = registry.unwrap_or_else(|| {
            jobq::builtin_registry(&config)
                .unwrap_or_else(|e| panic!("builtin_registry failed: {e}"))
        });
        register(&mut registry);
        let running = jobq::start(config, registry)?;
        let mut addr = running.addr();
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        Ok(TestServer {
            running: Some(running),
            client: Client { addr },
        })
    }

    pub fn client(&self) -> Client {
        self.client
    }

    /// Graceful shutdown; returns what `Running::shutdown` returns.
    pub fn stop(mut self) -> Result<jobq::ShutdownReport, jobq::Error> {
        let running = self.running.take().expect("server already stopped");
        running.shutdown()
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

/// The `jobq` binary with an empty environment but for PATH, HOME, TMPDIR and the locale, so
/// no setting of the caller's shell leaks into a test.
pub fn jobq_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jobq"));
    cmd.env_clear()
        .envs(std::env::vars_os().filter(|(name, _)| {
            let name = name.to_string_lossy();
            matches!(&*name, "PATH" | "HOME" | "TMPDIR" | "LANG") || name.starts_with("LC_")
        }));
    cmd
}

/// The `jobq` binary as a child process, with stdout and stderr captured to files in its own
/// temp dir. Dropping it kills the process; if the test failed, its log is printed.
pub struct BinaryServer {
    child: Child,
    client: Client,
    dir: PathBuf,
    /// Whether its LOG_LEVEL shows the info line that names the port it listens on.
    logs_listening: bool,
}

impl BinaryServer {
    /// Starts the binary and waits (10 s at most) until `GET /health` answers 200. Up to 3
    /// tries, for a process that loses the race for its port to another process.
    pub fn spawn(redis_url: &str, env: &[(&str, &str)]) -> BinaryServer {
        for attempt in 1..=3 {
            let mut server = BinaryServer::launch(redis_url, env);
            match server.wait_healthy(Duration::from_secs(10)) {
                Ok(()) => return server,
                Err(_) if attempt < 3 && server.lost_its_port() => {}
                Err(e) => panic!("jobq binary did not become healthy: {e}"),
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
        let defaults = [
            ("HOST", "127.0.0.1"),
            ("PORT", &port.to_string()),
            ("REDIS_URL", redis_url),
            ("ENABLE_DIAGNOSTIC_JOBS", "true"),
            ("LOG_LEVEL", "info"),
            ("NUM_WORKERS", "2"),
            ("HTTP_THREADS", "4"),
        ];
        let child = jobq_command()
            .envs(defaults)
            .env("MAIL_DIR", dir.join("mail"))
            .envs(env.iter().copied())
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", env!("CARGO_BIN_EXE_jobq")));
        let level = env.iter().rev().find(|(k, _)| *k == "LOG_LEVEL");
        BinaryServer {
            child,
            client: Client {
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            },
            dir,
            logs_listening: matches!(level, None | Some((_, "info" | "debug" | "trace"))),
        }
    }

    fn wait_healthy(&mut self, timeout: Duration) -> Result<(), String> {
        // The 200 must come from this process: if it lost its port to another test's server,
        // that one answers until this one exits. (It may listen on another address of this
        // host, HOST=0.0.0.0 say: the port is what tells.)
        let listening = format!(":{} (role", self.client.addr.port());
        poll(timeout, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Ok(Err(format!("the process exited early ({status})")));
            }
            let ours = || !self.logs_listening || self.log().contains(&listening);
            match self.client.try_request("GET", "/health", b"")? {
                r if r.status == 200 && ours() => Ok(Ok(())),
                r => Err(format!("HTTP {} {}", r.status, r.body)),
            }
        })
        .unwrap_or_else(|last| Err(format!("no 200 within {timeout:?}; last: {last}")))
    }

    /// Whether the process exited because another process had taken its port.
    fn lost_its_port(&mut self) -> bool {
        let log = self.log();
        let exited = !matches!(self.child.try_wait(), Ok(None));
        exited && (log.contains("in use") || log.contains("AddrInUse"))
    }

    pub fn client(&self) -> Client {
        self.client
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal ("INT", "TERM", "KILL", "STOP", ...).
    pub fn signal(&self, sig: &str) {
        send_signal(self.pid(), sig);
    }

    /// Waits for the process to exit, polling; `None` if it is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let pid = self.pid();
        poll(timeout, || match self.child.try_wait() {
            Ok(exited) => exited.ok_or_else(|| "still running".to_string()),
            Err(e) => panic!("try_wait on jobq pid {pid}: {e}"),
        })
        .ok()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// Everything the process printed: stdout, then stderr.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default() + &self.stderr()
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
            let (pid, log) = (self.pid(), self.log());
            eprintln!("--- jobq binary log (pid {pid}) ---\n{log}");
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
