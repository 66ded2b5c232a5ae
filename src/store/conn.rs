//! One thread's Redis connection: connected lazily with a timeout, given read and write timeouts,
//! and dropped on any transport error so the next call reconnects on a fresh socket.
//!
//! [`Health`] is shared by every connection of the process: it turns many failing calls into one
//! log line when Redis goes away and one when it is back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::StoreError;
use crate::config::mask_url;

/// How long to wait for a TCP connection to Redis.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1500);
/// How long any ordinary command may take. Keeps API answers within about 2 s when Redis hangs.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(1500);

/// Whether Redis answered the last call, shared by all threads of a process.
#[derive(Debug)]
pub struct Health {
    up: AtomicBool,
    url: String,
}

impl Health {
    pub fn new(url: &str) -> Arc<Health> {
        Arc::new(Health {
            up: AtomicBool::new(true),
            url: mask_url(url),
        })
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn mark_up(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            log::warn!("Redis at {} is reachable again", self.url);
        }
    }

    fn mark_down(&self, why: &str) {
        if self.up.swap(false, Ordering::Relaxed) {
            log::error!(
                "Redis at {} is unavailable ({why}); jobs wait and requests get 503 until it is back",
                self.url
            );
        }
    }
}

/// Where a [`Conn`] gets its connections.
pub enum Target {
    /// One Redis: a `redis://`, `rediss://` or `unix://` REDIS_URL.
    Direct(redis::Client),
    /// Whichever node is the master now, behind a Redis Cluster's seed nodes or Sentinels
    /// (`redis+cluster://`, `redis+sentinel://`): asked anew on each connect.
    #[cfg(feature = "cluster")]
    Found(super::topology::Finder),
}

impl Target {
    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        match self {
            Target::Direct(client) => client.get_connection_with_timeout(CONNECT_TIMEOUT),
            #[cfg(feature = "cluster")]
            Target::Found(finder) => finder.connect(),
        }
    }

    /// Whether the master can move under a connection (a failover, a slot moved): then
    /// `MOVED` and `READONLY` mean "ask again where the master is", not a passing state.
    fn follows_failover(&self) -> bool {
        match self {
            Target::Direct(_) => false,
            #[cfg(feature = "cluster")]
            Target::Found(_) => true,
        }
    }
}

/// A connection owned by one thread.
pub struct Conn {
    target: Arc<Target>,
    conn: Option<redis::Connection>,
    health: Arc<Health>,
    read_timeout: Duration,
    /// Whether the last failure was the socket being closed (as opposed to a timeout).
    last_was_closed: bool,
    /// Whether the last failure was a master that is no longer one (`MOVED`, `READONLY` on a
    /// Cluster or Sentinel target): Redis ran nothing, so the command may be sent again.
    last_was_moved: bool,
}

impl Conn {
    /// `read_timeout` must exceed the block time of any blocking command sent on this connection.
    pub fn new(target: Arc<Target>, health: Arc<Health>, read_timeout: Duration) -> Conn {
        Conn {
            target,
            conn: None,
            health,
            read_timeout,
            last_was_closed: false,
            last_was_moved: false,
        }
    }

    /// Runs `f` on the connection, connecting first if needed. Transport errors drop the socket
    /// and mark Redis down; server errors (a script bug, a wrong type) leave both alone.
    ///
    /// On a Cluster or Sentinel target, a master that has stopped being one since the
    /// connection was made answers `MOVED` or `READONLY` without running anything: the
    /// connection is replaced (the new one asks where the master is now) and `f` is sent once
    /// more, so a failover costs the callers nothing once the new master is up.
    pub fn run<T>(
        &mut self,
        mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        match self.run_once(&mut f) {
            Err(_) if self.last_was_moved => self.run_once(&mut f),
            other => other,
        }
    }

    /// Like [`Conn::run`], for commands that may safely run twice (reads, and writes that set
    /// what is already set). A socket that sat idle may be stale: Redis restarted since, and
    /// the first use finds the old connection closed. Such a command is sent once more on a
    /// fresh connection (as redis-rb and others do) rather than failing a request while Redis
    /// is in fact up. A command that changes state is not: whether it ran before the socket
    /// closed cannot be known. Nor is a timeout retried: the command may still be running.
    pub fn run_idempotent<T>(
        &mut self,
        mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let reused = self.conn.is_some();
        match self.run_once(&mut f) {
            Err(_) if self.last_was_moved => self.run_once(&mut f),
            Err(e) if e.is_unavailable() && reused && self.last_was_closed => self.run_once(&mut f),
            other => other,
        }
    }

    /// Sends `WAIT replicas timeout` on the connection that made this thread's last writes and
    /// returns how many replicas confirmed them; None when that connection has been dropped
    /// since (a transport error, a failover): a `WAIT` on a new connection would confirm
    /// nothing of what the old one wrote, so nothing is sent.
    pub fn wait_replicas(
        &mut self,
        replicas: u32,
        timeout: Duration,
    ) -> Result<Option<u64>, StoreError> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(None);
        };
        // WAIT blocks for up to `timeout`: the read timeout must outlast it, and is restored
        // after so the next command has its usual limit.
        let block = timeout + COMMAND_TIMEOUT;
        let longer = block > self.read_timeout;
        let raised = match longer {
            true => conn.set_read_timeout(Some(block)),
            false => Ok(()),
        };
        let n = raised.and_then(|()| {
            redis::cmd("WAIT")
                .arg(replicas)
                .arg(timeout.as_millis() as u64)
                .query::<u64>(conn)
        });
        // Restored whatever WAIT answered: a server error keeps the connection.
        let restored = match longer {
            true => conn.set_read_timeout(Some(self.read_timeout)),
            false => Ok(()),
        };
        let r = n.and_then(|n| restored.map(|()| n));
        match r {
            Ok(n) => {
                self.health.mark_up();
                Ok(Some(n))
            }
            Err(e) => Err(self.failed(e, false)),
        }
    }

    fn run_once<T>(
        &mut self,
        f: &mut impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.last_was_closed = false;
        self.last_was_moved = false;
        let fresh = self.conn.is_none();
        if fresh {
            match self.connect() {
                Ok(c) => self.conn = Some(c),
                Err(e) => {
                    // A refusal (wrong password, bad certificate) is not an outage: the caller
                    // reports it (at start-up as the one reason jobq cannot start).
                    if is_rejection(&e) {
                        return Err(classify(e));
                    }
                    let message = describe(&e);
                    self.health.mark_down(&message);
                    return Err(StoreError::Unavailable {
                        message,
                        source: Some(e),
                    });
                }
            }
        }
        let conn = self.conn.as_mut().expect("connected above");
        match f(conn) {
            Ok(v) => {
                self.health.mark_up();
                Ok(v)
            }
            Err(e) => Err(self.failed(e, fresh)),
        }
    }

    /// Sorts a failed command's error, dropping the connection when it cannot be trusted any
    /// more and noting Redis's health. `fresh`: the connection was made for this command.
    fn failed(&mut self, e: redis::RedisError, fresh: bool) -> StoreError {
        let (rejected, transport) = (is_rejection(&e), is_transport(&e));
        let passing = e.code().and_then(transient_state).is_some();
        let moved =
            self.target.follows_failover() && matches!(e.code(), Some("MOVED" | "READONLY"));
        // A reply that did not parse may leave the socket mid-stream: replace it too.
        if rejected || transport || moved || e.kind() == redis::ErrorKind::Parse {
            self.conn = None;
        }
        self.last_was_closed = !rejected && transport && !e.is_timeout();
        // Sent again at once on a new connection (see `run`): no news for the log yet. A fresh
        // connection that meets it too is reported like any passing state.
        self.last_was_moved = moved && !fresh;
        let err = classify(e);
        match &err {
            _ if self.last_was_moved => {}
            // Only a transport failure on a fresh connection says Redis itself is gone: this
            // keeps the log to one line when Redis goes away and one when it is back.
            StoreError::Unavailable { message, .. } if transport && fresh => {
                self.health.mark_down(message)
            }
            StoreError::Unavailable { message, .. } if passing => self.health.mark_down(message),
            // Redis answered, but not as expected (a script error, a reply of another type).
            StoreError::Redis { .. } => self.health.mark_up(),
            _ => {}
        }
        err
    }

    /// Forgets the connection after a reply of a pipeline sent with `ignore_errors` answered
    /// `code`, when that says the master has moved (as [`Conn::run`] does for a command's own
    /// error), so the next call asks where the master is now.
    pub fn note_reply_error(&mut self, code: &str) {
        if self.target.follows_failover() && matches!(code, "MOVED" | "READONLY") {
            self.conn = None;
        }
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let c = self.target.connect()?;
        c.set_read_timeout(Some(self.read_timeout))?;
        c.set_write_timeout(Some(COMMAND_TIMEOUT))?;
        Ok(c)
    }
}

/// Sorts the error of one command by what the caller should do about it, keeping it as the
/// source. Checked in this order: with TLS the handshake, and so a certificate error, comes with
/// the first command rather than with the connect; then the connection itself; then Redis's
/// refusals that waiting cures (out of memory, a passing state); anything else is a bug.
pub fn classify(e: redis::RedisError) -> StoreError {
    if is_rejection(&e) {
        return StoreError::Rejected {
            message: describe(&e),
            source: Some(std::sync::Arc::new(e)),
        };
    }
    let message = if is_transport(&e) {
        describe(&e)
    } else if e.code() == Some("OOM") {
        format!(
            "Redis is out of memory (maxmemory) and refuses writes: raise maxmemory, add workers or wait for jobs to drain ({e})"
        )
    } else if e.code().and_then(transient_state).is_some() {
        server_error_text(&e)
    } else {
        return StoreError::Redis {
            message: e.to_string(),
            source: Some(e),
        };
    };
    StoreError::Unavailable {
        message,
        source: Some(e),
    }
}

/// What a Redis error code means when it names a passing state of the server rather than a
/// fault in the command: Redis refused the command without running it, so it is safe to try
/// again later (HTTP 503 with Retry-After), as after an outage.
pub fn transient_state(code: &str) -> Option<&'static str> {
    Some(match code {
        "BUSY" => "Redis is busy running a long script or function",
        "LOADING" => "Redis is loading its data set into memory",
        "TRYAGAIN" => "Redis Cluster is migrating the keys of this request",
        "MASTERDOWN" => "this Redis replica has lost its master",
        "READONLY" => "this Redis is a read-only replica (a failover may be under way); point REDIS_URL at the master",
        "CLUSTERDOWN" => "Redis Cluster is down",
        // Met twice in a row (a retry follows the first, see `Conn::run`): the cluster has not
        // settled on the slot's new owner yet.
        "MOVED" => "Redis Cluster moved jobq's slot to another node (a failover or resharding)",
        "ASK" => "Redis Cluster is migrating jobq's slot to another node",
        // Redis-rs reloads a script that is missing; missing again, a SCRIPT FLUSH or another
        // restart came in between, and the script did not run.
        "NOSCRIPT" => "Redis lost jobq's scripts (a SCRIPT FLUSH, restart or failover) during this request",
        _ => return None,
    })
}

/// The words for a refusal in a passing state (see [`transient_state`]), with Redis's own text.
fn server_error_text(e: &redis::RedisError) -> String {
    let what = e
        .code()
        .and_then(transient_state)
        .unwrap_or("Redis refused the command");
    format!("{what}; nothing was changed, retry shortly ({e})")
}

/// Whether the connection itself failed (as opposed to Redis answering with an error).
fn is_transport(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
}

/// Whether connecting failed because Redis (or its TLS layer) refused us, which no amount of
/// waiting fixes: a wrong password or user, or a certificate that does not verify.
pub(super) fn is_rejection(e: &redis::RedisError) -> bool {
    if e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
    {
        return true;
    }
    let text = e.to_string().to_ascii_lowercase();
    [
        "password",
        "authentication",
        "certificate",
        "tls",
        "handshake",
    ]
    .iter()
    .any(|w| text.contains(w))
}

/// A Redis error in words an operator can act on.
fn describe(e: &redis::RedisError) -> String {
    if e.is_connection_refusal() {
        format!("connection refused: is redis-server running? ({e})")
    } else if e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"))
    {
        format!("wrong password or user: check the credentials in REDIS_URL ({e})")
    } else if is_rejection(e) {
        format!("check REDIS_URL and the TLS settings (REDIS_CA_CERT, REDIS_CLIENT_CERT) ({e})")
    } else if e.is_timeout() {
        format!("no answer within {} ms ({e})", COMMAND_TIMEOUT.as_millis())
    } else {
        e.to_string()
    }
}
