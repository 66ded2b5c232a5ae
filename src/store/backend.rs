//! [`Backend`]: where Redis is and how to reach it (REDIS_URL, the TLS files of a `rediss://`
//! URL), the key names, and the one [`Health`] of the process. Every connection is opened from
//! it, so a process has one of each.
//!
//! REDIS_URL names one Redis (`redis://`, `rediss://`, `unix://`: a [`Target::Direct`]) or,
//! with the "cluster" feature, the seed nodes of a Redis Cluster or the Sentinels of a master
//! (`redis+cluster://`, `redis+sentinel://`: a [`Target::Found`], see `topology.rs`).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::conn::{Conn, Target, COMMAND_TIMEOUT};
use super::keys::Keys;
use super::partitions::{self, Layout};
use super::Stores;
use super::{Health, Store, StoreError};
use crate::config::{Config, QueuePartitions};

/// REDIS_WAIT_REPLICAS and REDIS_WAIT_TIMEOUT_MS: after a create, how many replicas must
/// confirm it (`WAIT`) before it is acknowledged, and how long to wait for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitReplicas {
    pub replicas: u32,
    pub timeout: Duration,
}

/// Shared by all threads of a process: where Redis is, the key names, and Redis's health.
#[derive(Clone)]
pub struct Backend {
    target: Arc<Target>,
    keys: Arc<Keys>,
    health: Arc<Health>,
    /// JOB_TTL_SECS: how long the record of an ended job is kept.
    job_ttl_secs: u64,
    /// None when REDIS_WAIT_REPLICAS is 0.
    wait: Option<WaitReplicas>,
    /// QUEUE_PARTITIONS.
    partitions: QueuePartitions,
    /// The partitions, once read from Redis (see `partitions.rs`).
    layout: Arc<OnceLock<Arc<Layout>>>,
}

impl Backend {
    /// Where Redis is (REDIS_URL), with the TLS files of a `rediss://` URL, and the key prefix.
    pub fn from_config(c: &Config) -> Result<Backend, StoreError> {
        Ok(Backend {
            target: Arc::new(target(c)?),
            keys: Arc::new(Keys::new(&c.key_prefix)),
            health: Health::new(&c.redis_url),
            job_ttl_secs: c.job_ttl_secs,
            wait: (c.redis_wait_replicas > 0).then(|| WaitReplicas {
                replicas: c.redis_wait_replicas,
                timeout: Duration::from_millis(c.redis_wait_timeout_ms),
            }),
            partitions: c.queue_partitions.clone(),
            layout: Arc::default(),
        })
    }

    /// A backend for `url` without TLS files, for tests against a private redis-server.
    #[cfg(test)]
    pub(crate) fn for_tests(url: &str, prefix: &str) -> Backend {
        Backend {
            target: Arc::new(Target::Direct(
                redis::Client::open(url).expect("a valid URL"),
            )),
            keys: Arc::new(Keys::new(prefix)),
            health: Health::new(url),
            job_ttl_secs: 7 * 24 * 3600,
            wait: None,
            partitions: QueuePartitions::default(),
            layout: Arc::default(),
        }
    }

    /// The same, spreading every queue over `n` partitions.
    #[cfg(test)]
    pub(crate) fn with_partitions(mut self, n: u32) -> Backend {
        self.partitions.default = n;
        self
    }

    /// Checks the Redis settings as [`Backend::from_config`] does (the URL, the TLS files),
    /// without keeping anything: for start-up checks that run before the process's one
    /// `Backend` is built.
    pub fn check(c: &Config) -> Result<(), StoreError> {
        Backend::from_config(c).map(drop)
    }

    /// Connections for ordinary commands, one per partition (each opened on first use).
    pub fn open(&self) -> Stores {
        Stores::new(self.clone(), COMMAND_TIMEOUT)
    }

    /// Connections that may block in `BLMOVE` for up to `block`.
    pub fn open_blocking(&self, block: Duration) -> Stores {
        Stores::new(self.clone(), block + COMMAND_TIMEOUT)
    }

    /// A connection to partition `p`, which the layout must have.
    pub(crate) fn open_part(&self, p: usize, read_timeout: Duration) -> Store {
        let (target, keys) = match (p, self.layout.get()) {
            (0, _) | (_, None) => (self.target.clone(), self.keys.clone()),
            (p, Some(l)) => l.spec(p),
        };
        Store {
            conn: Conn::new(target, self.health.clone(), read_timeout),
            keys,
            job_ttl_secs: self.job_ttl_secs,
            wait: self.wait,
        }
    }

    /// Partition 0's connector and keys.
    pub(super) fn base(&self) -> (&Arc<Target>, &Arc<Keys>) {
        (&self.target, &self.keys)
    }

    /// The layout, if some thread has read it already.
    pub(super) fn known_layout(&self) -> Option<Arc<Layout>> {
        self.layout.get().cloned()
    }

    /// The layout: read from Redis (through `p0`, partition 0's store) the first time, adding
    /// the partitions QUEUE_PARTITIONS asks for beyond those that exist.
    pub(super) fn layout(&self, p0: &mut Store) -> Result<Arc<Layout>, StoreError> {
        if let Some(l) = self.layout.get() {
            return Ok(l.clone());
        }
        let wanted = self.partitions.most() as usize - 1;
        let tags = p0.partition_tags(wanted, |have, more, slots| {
            partitions::choose_tags(self.keys.prefix(), have, more, slots)
        })?;
        let l = Arc::new(partitions::layout(self, &tags, &self.partitions));
        if l.len() > 1 {
            log::info!("{} partitions: {}", l.len(), l.describe());
        }
        Ok(self.layout.get_or_init(|| l).clone())
    }

    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }
}

/// The connector REDIS_URL asks for.
#[cfg_attr(not(feature = "redis-tls"), allow(clippy::let_unit_value))]
fn target(c: &Config) -> Result<Target, StoreError> {
    #[cfg(feature = "cluster")]
    if let Some(parsed) = crate::config::redis_url::parse_multi_host(&c.redis_url) {
        let url = parsed.map_err(|e| StoreError::Rejected {
            message: format!("REDIS_URL: {e}"),
            source: None,
        })?;
        let tls = if url.tls { tls_files(c)? } else { none_tls() };
        return Ok(Target::Found(super::topology::Finder::new(
            url,
            &c.key_prefix,
            tls,
        )));
    }
    let info = redis::IntoConnectionInfo::into_connection_info(c.redis_url.as_str())
        .map_err(|e| StoreError::rejected(format!("REDIS_URL: {e}"), e))?;
    // No CLIENT SETINFO on connect: two more round trips, each of which would wait out the
    // read timeout when Redis hangs, and nothing jobq needs.
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    let info = info.set_redis_settings(settings);
    let tls_files = c.redis_ca_cert.is_some() || c.redis_client_cert.is_some();
    let client = if tls_files {
        tls_client(c, info)?
    } else {
        redis::Client::open(info).map_err(|e| StoreError::rejected(format!("REDIS_URL: {e}"), e))?
    };
    Ok(Target::Direct(client))
}

/// REDIS_CA_CERT and the client certificate, read; None when neither is set (the system's CAs
/// are then trusted, without a client certificate).
#[cfg(feature = "redis-tls")]
fn tls_files(c: &Config) -> Result<Option<redis::TlsCertificates>, StoreError> {
    let read = |what: &str, path: &str| {
        std::fs::read(path).map_err(|e| StoreError::rejected(format!("{what} {path}: {e}"), e))
    };
    let root_cert = match &c.redis_ca_cert {
        Some(p) => Some(read("REDIS_CA_CERT", p)?),
        None => None,
    };
    let client_tls = match (&c.redis_client_cert, &c.redis_client_key) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read("REDIS_CLIENT_CERT", cert)?,
            client_key: read("REDIS_CLIENT_KEY", key)?,
        }),
        _ => None,
    };
    Ok(
        (root_cert.is_some() || client_tls.is_some()).then_some(redis::TlsCertificates {
            client_tls,
            root_cert,
        }),
    )
}

#[cfg(all(feature = "cluster", feature = "redis-tls"))]
fn none_tls() -> super::topology::Tls {
    None
}

/// Without the "redis-tls" feature a `rediss+…` URL cannot be served.
#[cfg(all(feature = "cluster", not(feature = "redis-tls")))]
fn tls_files(_: &Config) -> Result<super::topology::Tls, StoreError> {
    Err(StoreError::Rejected {
        message: "a rediss+cluster:// or rediss+sentinel:// REDIS_URL needs the redis-tls feature; rebuild with it".into(),
        source: None,
    })
}

#[cfg(all(feature = "cluster", not(feature = "redis-tls")))]
fn none_tls() -> super::topology::Tls {}

#[cfg(feature = "redis-tls")]
fn tls_client(c: &Config, info: redis::ConnectionInfo) -> Result<redis::Client, StoreError> {
    let certs = tls_files(c)?.unwrap_or(redis::TlsCertificates {
        client_tls: None,
        root_cert: None,
    });
    redis::Client::build_with_tls(info, certs)
        .map_err(|e| StoreError::rejected(format!("Redis TLS settings: {e}"), e))
}

#[cfg(not(feature = "redis-tls"))]
fn tls_client(_: &Config, _: redis::ConnectionInfo) -> Result<redis::Client, StoreError> {
    Err(StoreError::Rejected {
        message: "REDIS_CA_CERT and REDIS_CLIENT_CERT need the redis-tls feature; rebuild with it"
            .into(),
        source: None,
    })
}
