//! Finding the Redis that holds jobq's keys when REDIS_URL names several hosts: the node of a
//! Redis Cluster that owns the prefix's slot (`redis+cluster://`), or the master that Sentinel
//! names (`redis+sentinel://`). Each new connection asks again, so after a failover the next
//! reconnect (`conn.rs`) lands on the new master.
//!
//! Why a plain `redis::Connection` to that one node, and not the redis crate's own clients:
//!
//! - Every key of jobq shares one hash tag, so one node serves every command; a connection to
//!   it behaves exactly as the single-Redis one does: pipelines (the gathered creates, the
//!   heartbeat's `MULTI`), `INFO`, `WAIT` and the blocking `BLMOVE` go to that node, with the
//!   same read and write timeouts.
//! - The sync `ClusterConnection` refuses `redis::Pipeline` (`supports_pipelining()` is false),
//!   sends `PING`, `INFO` and `WAIT` to every master, and by default resends a command up to 16
//!   times after an I/O error or a timeout: a state-changing script could run twice. jobq never
//!   resends a command that may have run (see `conn.rs`).
//! - The sync `SentinelClient` connects to Sentinels and masters without a connect or read
//!   timeout, so a Sentinel that hangs would hang every thread reconnecting through it.
//!
//! What is found is checked before use: the node must say `ROLE` master. A `MOVED` or `READONLY`
//! answer later (the slot moved, the master was demoted) drops the connection, and the command,
//! which Redis did not run, is sent once more on a fresh one (`conn.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};

use redis::{RedisError, RedisResult, Value};

use super::conn::{is_rejection as is_refusal, COMMAND_TIMEOUT, CONNECT_TIMEOUT};
use crate::config::redis_url::{MultiHostUrl, Topology};

/// TLS material of `rediss+…` URLs: REDIS_CA_CERT and the client certificate, as read once.
#[cfg(feature = "redis-tls")]
pub type Tls = Option<redis::TlsCertificates>;
#[cfg(not(feature = "redis-tls"))]
pub type Tls = ();

/// How to reach the master of jobq's keys behind a multi-host REDIS_URL.
pub struct Finder {
    url: MultiHostUrl,
    /// The slot of the key prefix (cluster).
    slot: u16,
    #[cfg_attr(not(feature = "redis-tls"), allow(dead_code))]
    tls: Tls,
    /// The host to ask first: the last one that answered, so a dead seed or Sentinel costs
    /// its connect timeout once, not on every reconnect.
    first: AtomicUsize,
}

impl Finder {
    pub fn new(url: MultiHostUrl, prefix: &str, tls: Tls) -> Finder {
        Finder {
            url,
            slot: key_slot(prefix.as_bytes()),
            tls,
            first: AtomicUsize::new(0),
        }
    }

    /// The same hosts and TLS material, for the keys under `prefix` (a partition's, whose
    /// hash tag may sit on another master).
    #[cfg_attr(
        not(feature = "redis-tls"),
        allow(clippy::clone_on_copy, clippy::unit_arg)
    )]
    pub fn for_prefix(&self, prefix: &str) -> Finder {
        Finder {
            url: self.url.clone(),
            slot: key_slot(prefix.as_bytes()),
            tls: self.tls.clone(),
            first: AtomicUsize::new(self.first.load(Ordering::Relaxed)),
        }
    }

    /// A connection to the current master, with COMMAND_TIMEOUT read and write timeouts (the
    /// caller sets its own after). Asks each host in turn, starting with the last that answered.
    /// A refusal (a wrong password, a certificate) is returned at once: no other host will
    /// accept it either.
    pub fn connect(&self) -> RedisResult<redis::Connection> {
        let n = self.url.hosts.len();
        let start = self.first.load(Ordering::Relaxed) % n;
        let mut errors = Vec::new();
        for i in (0..n).map(|k| (start + k) % n) {
            let (host, port) = &self.url.hosts[i];
            let found = match &self.url.topology {
                Topology::Cluster => self.via_seed(host, *port),
                Topology::Sentinel { master } => self.via_sentinel(host, *port, master),
            };
            match found {
                Ok(c) => {
                    self.first.store(i, Ordering::Relaxed);
                    return Ok(c);
                }
                Err(e) if is_refusal(&e) => return Err(e),
                Err(e) => errors.push(format!("{host}:{port}: {e}")),
            }
        }
        let what = match &self.url.topology {
            Topology::Cluster => format!("no Redis Cluster node owns jobq's slot {}", self.slot),
            Topology::Sentinel { master } => format!("no Sentinel names a master for {master:?}"),
        };
        Err(unavailable(format!("{what} ({})", errors.join("; "))))
    }

    /// Asks seed `host:port` which node owns the slot, and connects to that node.
    fn via_seed(&self, host: &str, port: u16) -> RedisResult<redis::Connection> {
        let mut seed = self.open(host, port, true)?;
        let slots: Value = redis::cmd("CLUSTER").arg("SLOTS").query(&mut seed)?;
        let (owner_host, owner_port) = slot_owner(&slots, self.slot).ok_or_else(|| {
            unavailable(format!(
                "the node answers that no node serves slot {}",
                self.slot
            ))
        })?;
        // An empty or '?' endpoint means "the address you reached me on".
        let owner_host = match owner_host.as_str() {
            "" | "?" => host.to_string(),
            _ => owner_host,
        };
        let mut owner = if (owner_host.as_str(), owner_port) == (host, port) {
            seed
        } else {
            self.open(&owner_host, owner_port, true)?
        };
        check_master(&mut owner, &owner_host, owner_port)?;
        Ok(owner)
    }

    /// Asks Sentinel `host:port` for `master`'s address, and connects to the master.
    fn via_sentinel(&self, host: &str, port: u16, master: &str) -> RedisResult<redis::Connection> {
        let mut sentinel = self.open(host, port, false)?;
        let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(master)
            .query(&mut sentinel)?;
        let (master_host, master_port) =
            addr.ok_or_else(|| unavailable(format!("this Sentinel knows no master {master:?}")))?;
        let mut c = self.open(&master_host, master_port, true)?;
        // Mid-failover a Sentinel may still name the old master, come back as a replica.
        check_master(&mut c, &master_host, master_port)?;
        Ok(c)
    }

    /// A connection to `host:port`: with the URL's credentials and database for a data node
    /// (`data`), without them for a Sentinel; TLS as the URL's scheme says.
    fn open(&self, host: &str, port: u16, data: bool) -> RedisResult<redis::Connection> {
        let scheme = if self.url.tls { "rediss" } else { "redis" };
        let host_text = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let info = redis::IntoConnectionInfo::into_connection_info(format!(
            "{scheme}://{host_text}:{port}"
        ))?;
        // No CLIENT SETINFO, as for a plain URL (see backend.rs).
        let mut settings = redis::RedisConnectionInfo::default().set_skip_set_lib_name();
        if data {
            if let Some(u) = &self.url.username {
                settings = settings.set_username(u);
            }
            if let Some(p) = &self.url.password {
                settings = settings.set_password(p);
            }
            settings = settings.set_db(self.url.db);
        }
        let info = info.set_redis_settings(settings);
        let client = self.client(info)?;
        let c = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        c.set_read_timeout(Some(COMMAND_TIMEOUT))?;
        c.set_write_timeout(Some(COMMAND_TIMEOUT))?;
        Ok(c)
    }

    #[cfg(feature = "redis-tls")]
    fn client(&self, info: redis::ConnectionInfo) -> RedisResult<redis::Client> {
        match &self.tls {
            Some(certs) if self.url.tls => redis::Client::build_with_tls(info, certs.clone()),
            _ => redis::Client::open(info),
        }
    }

    #[cfg(not(feature = "redis-tls"))]
    fn client(&self, info: redis::ConnectionInfo) -> RedisResult<redis::Client> {
        redis::Client::open(info)
    }
}

/// Fails unless the node says it is a master (`ROLE`).
fn check_master(c: &mut redis::Connection, host: &str, port: u16) -> RedisResult<()> {
    let role: Value = redis::cmd("ROLE").query(c)?;
    let first = match &role {
        Value::Array(items) => items.first(),
        _ => None,
    };
    match first {
        Some(Value::BulkString(b)) if b.as_slice() == b"master" => Ok(()),
        _ => Err(unavailable(format!(
            "{host}:{port} is not a master (yet): a failover may be under way"
        ))),
    }
}

/// The master (`host:port`) that serves `slot` in a `CLUSTER SLOTS` answer, for placing
/// partitions; None outside a Cluster's answer.
pub fn slot_master(slots: &Value, slot: u16) -> Option<String> {
    slot_owner(slots, slot).map(|(h, p)| format!("{h}:{p}"))
}

/// The master's `(host, port)` of the range holding `slot` in a `CLUSTER SLOTS` answer:
/// `[[start, end, [host, port, id, …], replicas…], …]`.
fn slot_owner(slots: &Value, slot: u16) -> Option<(String, u16)> {
    let Value::Array(ranges) = slots else {
        return None;
    };
    ranges.iter().find_map(|r| {
        let Value::Array(r) = r else { return None };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (r.first(), r.get(1), r.get(2))
        else {
            return None;
        };
        if !(*start..=*end).contains(&i64::from(slot)) {
            return None;
        }
        let host = match master.first()? {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::SimpleString(s) => s.clone(),
            Value::Nil => String::new(),
            _ => return None,
        };
        let port = match master.get(1)? {
            Value::Int(p) => u16::try_from(*p).ok()?,
            _ => return None,
        };
        Some((host, port))
    })
}

/// The Redis Cluster slot of `key`: CRC16 (XMODEM) of its hash tag, or of the whole key when
/// it has none, modulo 16384, as Redis computes it.
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16_xmodem(tagged) % 16384
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// An error that reads as an outage (`conn::classify` makes it `Unavailable`), with `what`.
fn unavailable(what: String) -> RedisError {
    RedisError::from(std::io::Error::new(std::io::ErrorKind::NotConnected, what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from CLUSTER KEYSLOT on Redis 7.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{jobq}"), key_slot(b"jobq"));
        assert_eq!(key_slot(b"{jobq}:job:1"), key_slot(b"{jobq}:counters"));
        assert_eq!(key_slot(b"{jobq}:q:{mail}:meta"), key_slot(b"jobq"));
        // An empty tag is no tag: the whole key is hashed.
        assert_eq!(key_slot(b"{}x"), crc16_xmodem(b"{}x") % 16384);
    }

    #[test]
    fn the_owner_is_read_from_cluster_slots() {
        let node = |h: &str, p: i64| {
            Value::Array(vec![
                Value::BulkString(h.as_bytes().to_vec()),
                Value::Int(p),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let slots = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("10.0.0.1", 7000),
                node("10.0.0.4", 7003),
            ]),
            Value::Array(vec![Value::Int(5461), Value::Int(16383), node("", 7001)]),
        ]);
        assert_eq!(slot_owner(&slots, 0), Some(("10.0.0.1".into(), 7000)));
        assert_eq!(slot_owner(&slots, 5460), Some(("10.0.0.1".into(), 7000)));
        assert_eq!(slot_owner(&slots, 5461), Some((String::new(), 7001)));
        assert_eq!(slot_owner(&Value::Array(vec![]), 1), None);
    }
}
