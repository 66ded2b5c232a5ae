//! A private Redis Sentinel group per test ([`RedisSentinel`]): a master, its replica and three
//! sentinels watching them as [`MASTER_NAME`], five `redis-server` processes on free loopback
//! ports in one temp dir. It owns their start, the wait until every sentinel knows the master,
//! the replica and the other sentinels, a crash of the master (SIGKILL) and the wait for the
//! sentinels to promote the replica, and stopping every process by its PID.
//!
//! Failover is quick on purpose: a sentinel holds the master down after
//! [`DOWN_AFTER_MS`] without an answer, two of three agree (the quorum, and the majority that
//! elects the sentinel leading the failover), and a failed attempt is retried after twice
//! [`FAILOVER_TIMEOUT_MS`]. Measured (Redis 7.0, two shared cores): the group is up in about
//! 2.2 s (the sentinels find each other through hello messages, sent every 2 s); every sentinel
//! names the replica as master, and it answers `ROLE` as one, 2.3 s after the kill. A restarted
//! old master stays a master (an empty one, without persistence) for about 10 s, until a
//! sentinel's periodic INFO sees it and turns it into a replica.

use super::redis_node::{info_field, tear_down, wait_slowly, Kind, RedisNode};
use super::{free_port, grant_access, temp_dir, try_redis_cmd, Access};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The name the sentinels know the master by.
pub const MASTER_NAME: &str = "mymaster";

/// `sentinel down-after-milliseconds`: how long the master may not answer before a sentinel
/// holds it down (subjectively; objectively once the quorum agrees).
pub const DOWN_AFTER_MS: u64 = 1000;

/// `sentinel failover-timeout`: bounds each step of a failover; a failed one is tried again
/// after twice this.
pub const FAILOVER_TIMEOUT_MS: u64 = 5000;

/// What [`RedisSentinel::start_with`] makes; the default is [`RedisSentinel::start`]'s group.
#[derive(Default)]
pub struct SentinelOptions<'a> {
    /// The master and the replica require this password (`requirepass`, and `masterauth` to
    /// reach whichever is master); the sentinels know it (`sentinel auth-pass`) but require
    /// none themselves. The harness's own commands send it.
    pub password: Option<&'a str>,
}

/// A master, one replica, three sentinels (quorum 2) on loopback. Dropping it stops every
/// process (SIGTERM, SIGKILL after 3 s) and removes the temp dir, which a failed test keeps
/// (its path and the end of every process's log are printed).
pub struct RedisSentinel {
    dir: PathBuf,
    master: RedisNode,
    replica: RedisNode,
    sentinels: Vec<RedisNode>,
    /// [`SentinelOptions::password`].
    password: Option<String>,
}

impl RedisSentinel {
    /// Starts the master, then its replica and waits for its sync, then the sentinels, and waits
    /// until each sentinel sees the master up, the replica with its link up, and both other
    /// sentinels.
    pub fn start() -> RedisSentinel {
        RedisSentinel::start_with(SentinelOptions::default())
    }

    /// Starts the group as [`RedisSentinel::start`] does, with `options`.
    pub fn start_with(options: SentinelOptions) -> RedisSentinel {
        let dir = temp_dir("sentinel");
        let auth: Vec<&str> = match options.password {
            Some(pw) => vec!["--requirepass", pw, "--masterauth", pw],
            None => vec![],
        };
        // Without the redis-tls feature `password` is Access's only field.
        #[allow(clippy::needless_update)]
        let access = Access {
            password: options.password.map(str::to_string),
            ..Access::default()
        };
        let master = RedisNode::start(&dir, "master", Kind::Data, free_port, |p, d| {
            data_args(p, d, &auth)
        });
        grant_access(master.port(), access.clone());
        let master_port = master.port().to_string();
        let replica = RedisNode::start(&dir, "replica", Kind::Data, free_port, |p, d| {
            let replica_of = ["--replicaof", "127.0.0.1", &master_port];
            data_args(p, d, &[&auth[..], &replica_of[..]].concat())
        });
        grant_access(replica.port(), access);
        // A sentinel learns of replicas from the master's INFO, which it asks for once it
        // connects and then only every 10 s: the replica is there first so that it is seen at
        // once.
        wait_slowly(
            "the replica's link to its master",
            Duration::from_secs(20),
            || {
                let info: String = replica
                    .cmd(&["INFO", "replication"])
                    .map_err(|e| format!("INFO: {e}"))?;
                match info_field(&info, "master_link_status") {
                    Some("up") => Ok(()),
                    _ => Err(info),
                }
            },
        );
        let sentinels = (1..=3)
            .map(|i| {
                let name = format!("sentinel{i}");
                RedisNode::start(&dir, &name, Kind::Sentinel, free_port, |p, d| {
                    sentinel_args(p, d, master.port(), options.password)
                })
            })
            .collect();
        let group = RedisSentinel {
            dir,
            master,
            replica,
            sentinels,
            password: options.password.map(str::to_string),
        };
        group.wait_until_watched(Duration::from_secs(20));
        group
    }

    /// `redis+sentinel://127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/mymaster`, with `:PASSWORD@`
    /// before the hosts if the group has one.
    pub fn url(&self) -> String {
        let ports = self.sentinel_ports();
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let auth = self
            .password
            .as_ref()
            .map_or(String::new(), |pw| format!(":{pw}@"));
        format!("redis+sentinel://{auth}{}/{MASTER_NAME}", nodes.join(","))
    }

    /// The port of the node started as the master (after a failover it is not the master any
    /// more; [`RedisSentinel::current_master_port`] is).
    pub fn master_port(&self) -> u16 {
        self.master.port()
    }

    /// The port of the node started as the replica.
    pub fn replica_port(&self) -> u16 {
        self.replica.port()
    }

    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(RedisNode::port).collect()
    }

    /// The temp dir: a folder per process (`master`, `replica`, `sentinel1`...) with its
    /// `redis.log`, a sentinel's also with its `sentinel.conf` as it rewrote it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The master's port as the first sentinel names it (`SENTINEL get-master-addr-by-name`).
    pub fn current_master_port(&self) -> u16 {
        let port = self.sentinels[0].port();
        master_addr(port).unwrap_or_else(|e| panic!("sentinel {port}: {e}"))
    }

    /// Kills the node started as the master with SIGKILL (a crash: no goodbye to the replica or
    /// the sentinels).
    pub fn kill_master(&mut self) {
        self.master.kill();
    }

    /// Starts the killed master again, same port and dir, as a master with no data: a sentinel
    /// that has failed it over turns it into a replica of the new master when it next asks it
    /// for INFO (every 10 s), so for up to 10 s two nodes answer `ROLE` as a master. Does not
    /// wait for that.
    pub fn restart_master(&mut self) {
        self.master.restart();
    }

    /// Waits, up to `timeout`, until every sentinel names a master other than the node started
    /// as the master, and that node answers `ROLE` as a master. Returns its port.
    pub fn wait_for_promotion(&self, timeout: Duration) -> u16 {
        let old = self.master.port();
        wait_slowly("the sentinels to promote a new master", timeout, || {
            let mut named = None;
            for sentinel in &self.sentinels {
                let port = master_addr(sentinel.port())?;
                if port == old || named.is_some_and(|n| n != port) {
                    return Err(format!("sentinel {} names {port}", sentinel.port()));
                }
                named = Some(port);
            }
            let port = named.expect("three sentinels");
            let role: Vec<redis::Value> =
                try_redis_cmd(port, &["ROLE"]).map_err(|e| format!("ROLE on {port}: {e}"))?;
            match role.first() {
                Some(redis::Value::BulkString(r)) if r == b"master" => Ok(port),
                r => Err(format!("{port}'s ROLE begins {r:?}")),
            }
        })
    }

    /// Waits, up to `timeout`, until every sentinel sees the master up (no `s_down`/`o_down`
    /// flag, no failover running), both other sentinels, and the replica with its link up.
    pub fn wait_until_watched(&self, timeout: Duration) {
        let replica = self.replica.port().to_string();
        wait_slowly("the sentinels to watch the master", timeout, || {
            for sentinel in &self.sentinels {
                let port = sentinel.port();
                let master = fields(sentinel.cmd(&["SENTINEL", "MASTER", MASTER_NAME]))
                    .map_err(|e| format!("SENTINEL MASTER on {port}: {e}"))?;
                let seen = |k: &str| master.get(k).map(String::as_str);
                if seen("flags") != Some("master") || seen("num-other-sentinels") != Some("2") {
                    return Err(format!("sentinel {port}: {master:?}"));
                }
                let replicas: Vec<Vec<String>> = sentinel
                    .cmd(&["SENTINEL", "REPLICAS", MASTER_NAME])
                    .map_err(|e| format!("SENTINEL REPLICAS on {port}: {e}"))?;
                let replicas: Vec<HashMap<String, String>> =
                    replicas.into_iter().map(pairs).collect();
                let ok = replicas.iter().any(|r| {
                    r.get("port") == Some(&replica)
                        && r.get("flags").map(String::as_str) == Some("slave")
                        && r.get("master-link-status").map(String::as_str) == Some("ok")
                });
                if !ok {
                    return Err(format!("sentinel {port}'s replicas: {replicas:?}"));
                }
            }
            Ok(())
        })
    }
}

/// The arguments of a data node (master or replica) on `port` in `dir`, then `extra`.
fn data_args(port: u16, dir: &Path, extra: &[&str]) -> Vec<String> {
    let dir = dir.to_str().expect("a UTF-8 temp dir");
    let port = port.to_string();
    #[rustfmt::skip]
    let args = [
        "--port", &port, "--bind", "127.0.0.1", "--dir", dir,
        "--appendonly", "no", "--save", "",
        // A replica's full sync starts at once, not after the default 5 s wait for others.
        "--repl-diskless-sync-delay", "0",
    ];
    args.iter().chain(extra).map(|a| a.to_string()).collect()
}

/// Writes sentinel `port`'s config into `dir` (a sentinel must have a config file it can
/// rewrite: it records there what it learns) and gives its arguments; with `password`, the
/// sentinel sends it to the master and the replica.
fn sentinel_args(port: u16, dir: &Path, master_port: u16, password: Option<&str>) -> Vec<String> {
    let conf = dir.join("sentinel.conf");
    let mut text = format!(
        "port {port}\n\
         bind 127.0.0.1\n\
         dir {dir}\n\
         sentinel resolve-hostnames no\n\
         sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
         sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
         sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n\
         sentinel parallel-syncs {MASTER_NAME} 1\n",
        dir = dir.display(),
    );
    if let Some(pw) = password {
        text += &format!("sentinel auth-pass {MASTER_NAME} {pw}\n");
    }
    fs::write(&conf, text).unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
    let conf = conf.to_str().expect("a UTF-8 temp dir").to_string();
    vec![conf, "--sentinel".to_string()]
}

/// The master's port as sentinel `port` names it.
fn master_addr(port: u16) -> Result<u16, String> {
    let args = ["SENTINEL", "get-master-addr-by-name", MASTER_NAME];
    let addr: Vec<String> = try_redis_cmd(port, &args).map_err(|e| format!("{args:?}: {e}"))?;
    let p = addr.get(1).and_then(|p| p.parse().ok());
    p.ok_or_else(|| format!("sentinel {port} names {addr:?}"))
}

/// A sentinel's flat `[key, value, key, value...]` reply as a map.
fn fields(reply: redis::RedisResult<Vec<String>>) -> Result<HashMap<String, String>, String> {
    reply.map(pairs).map_err(|e| e.to_string())
}

fn pairs(flat: Vec<String>) -> HashMap<String, String> {
    let mut map = HashMap::new();
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        map.insert(k, v);
    }
    map
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        let nodes = self
            .sentinels
            .iter_mut()
            .chain([&mut self.master, &mut self.replica])
            .collect();
        tear_down(nodes, &self.dir, "the sentinel group's");
    }
}
