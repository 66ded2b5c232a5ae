//! Configuration: one [`Config`] struct read once from the environment (`env.rs`), validated as
//! a whole, every setting parsed into a typed value (`smtp.rs`, `handlers_file.rs`, `queues.rs`,
//! `limits.rs`, `schedules.rs`, `webhook.rs`).
//!
//! This is the bottom layer: nothing under `config/` uses anything else from the crate, and the
//! parts that need a setting (handlers, store, server) get it typed from here. Defaults live in
//! [`Config::default`] and nowhere else.

mod env;
pub mod handlers_file;
pub mod limits;
pub mod queues;
pub mod redis_url;
pub mod schedules;
pub mod smtp;
pub mod webhook;

pub use handlers_file::{CommandSpec, HandlersFile, ResourceLimits};
pub use limits::{Breaker, GroupLimits, Limits, LimitsFile, LimitsPatch, Rate, Scope};
pub use queues::{QueueOrder, QueuePartitions};
pub use schedules::{FileSchedule, Missed, Overlap, ScheduleSpec, SchedulesFile, Timing};
pub use smtp::SmtpUrl;
pub use webhook::WebhookAllow;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Which parts of jobq this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// HTTP API and workers (the default).
    All,
    /// HTTP API only: accepts and reports jobs, runs none.
    Api,
    /// Workers, plus `/health` and `/metrics` on PORT so every process can be scraped.
    Worker,
}

impl Role {
    /// The ROLE value that selects this role.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Api => "api",
            Role::Worker => "worker",
        }
    }
    /// Whether this process serves the job API (`POST /jobs`, `GET /jobs/{id}`, `/stats`).
    pub fn serves_api(self) -> bool {
        matches!(self, Role::All | Role::Api)
    }
    /// Whether this process runs workers.
    pub fn runs_workers(self) -> bool {
        matches!(self, Role::All | Role::Worker)
    }
}

impl FromStr for Role {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "all" => Ok(Role::All),
            "api" => Ok(Role::Api),
            "worker" => Ok(Role::Worker),
            _ => Err(()),
        }
    }
}

/// The whole configuration of one jobq process. Fields are public so an embedding program or a
/// test can start from [`Config::default`] and change what it needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// `REDIS_URL`: `redis://[user:pass@]host:port[/db]`, or the bare `host:port` form; with the
    /// "cluster" feature also `redis+cluster://h1:p1,h2:p2` and
    /// `redis+sentinel://s1:p1,s2:p2/mastername` (see [`redis_url`]).
    pub redis_url: String,
    /// `REDIS_WAIT_REPLICAS`: after a create, `WAIT` for this many replicas to confirm it
    /// before answering 201 (0: do not wait).
    pub redis_wait_replicas: u32,
    /// `REDIS_WAIT_TIMEOUT_MS`: how long that `WAIT` may take.
    pub redis_wait_timeout_ms: u64,
    /// `REDIS_PREFIX`: prefix of every key; it carries a `{hash tag}` so that all of jobq's keys
    /// live in one Redis Cluster slot and multi-key scripts stay legal there.
    pub key_prefix: String,
    /// `HOST`: HTTP bind address.
    pub host: String,
    /// `PORT`: HTTP port; 0 picks a free one (tests).
    pub port: u16,
    /// `ROLE`: all, api or worker.
    pub role: Role,
    /// `NUM_WORKERS`: worker threads; 0 runs no jobs.
    pub num_workers: usize,
    /// `ACK_BATCH`: most outcomes recorded in one script call (group commit); 1 records each
    /// job's outcome in a call of its own, from its worker thread.
    pub ack_batch: usize,
    /// `QUEUES`: the queues this process's workers take jobs from, as `(name, weight)`
    /// (`name[:weight]`, comma-separated, weight 1-1000, default 1); empty serves every queue
    /// that exists.
    pub queues: Vec<(String, u32)>,
    /// `QUEUE_ORDER`: weighted (each queue in proportion to its weight) or strict (the first of
    /// QUEUES with a job ready).
    pub queue_order: QueueOrder,
    /// `QUEUE_PARTITIONS`: how many partitions (each a keyspace under its own hash tag, so on
    /// a Redis Cluster its own slot) each queue's jobs are spread over; 1 by default.
    pub queue_partitions: QueuePartitions,
    /// `HTTP_THREADS`: threads answering HTTP requests.
    pub http_threads: usize,
    /// `MAX_QUEUE_SIZE`: pending plus scheduled jobs accepted before `POST /jobs` answers 503.
    pub max_queue_size: u64,
    /// `MAX_ATTEMPTS`: attempts before a job goes to the dead-letter queue.
    pub max_attempts: u32,
    /// `MAX_SNOOZES`: how many times a job may be snoozed before a snooze counts as a failed
    /// attempt.
    pub max_snoozes: u32,
    /// `BACKOFF_BASE_MS`: delay before the second attempt.
    pub backoff_base_ms: u64,
    /// `BACKOFF_MAX_MS`: cap of any retry delay.
    pub backoff_max_ms: u64,
    /// `JOB_TTL_SECS`: how long a completed job's record is kept.
    pub job_ttl_secs: u64,
    /// `MAX_BODY_BYTES`: larger request bodies get 413.
    pub max_body_bytes: usize,
    /// `SHUTDOWN_TIMEOUT_SECS`: how long running jobs may take to finish on shutdown.
    pub shutdown_timeout_secs: u64,
    /// `RECOVERY_SECS`: a dead process's jobs go back to pending within this many seconds.
    pub recovery_secs: u64,
    /// `JOB_TIMEOUT_SECS`: default limit of one attempt.
    pub job_timeout_secs: u64,
    /// `LOG_LEVEL`: error, warn, info, debug or trace.
    pub log_level: log::LevelFilter,
    /// `ENABLE_DIAGNOSTIC_JOBS`: registers `noop`, `sleep` and `fail`.
    pub enable_diagnostic_jobs: bool,
    /// `DLQ_MAX_SIZE`: dead-letter entries kept; past it the oldest are dropped (and counted).
    pub dlq_max_size: u64,
    /// `IDEMPOTENCY_TTL_SECS`: how long an `Idempotency-Key` maps to its first job.
    pub idempotency_ttl_secs: u64,
    /// `API_TOKEN`: when set, every endpoint but `GET /health` needs `Authorization: Bearer …`.
    pub api_token: Option<String>,
    /// `API_TOKEN_READONLY`: a second bearer token that may call the GET routes only (other
    /// methods answer 403). Needs API_TOKEN: alone it would guard nothing, so it is refused.
    pub api_token_readonly: Option<String>,
    /// `METRICS_PUBLIC`: leaves `/metrics` open to a scraper even with API_TOKEN set.
    pub metrics_public: bool,
    /// `MAX_CONNECTIONS`: open HTTP connections served at once; more get 503.
    pub max_connections: usize,
    /// `REDIS_CA_CERT`: PEM file of the CA that signed a `rediss://` server's certificate.
    pub redis_ca_cert: Option<String>,
    /// `REDIS_CLIENT_CERT` / `REDIS_CLIENT_KEY`: PEM client certificate and key for `rediss://`.
    pub redis_client_cert: Option<String>,
    /// The key of `redis_client_cert`.
    pub redis_client_key: Option<String>,
    /// `MAIL_DIR`: where the `email` job writes `.eml` files.
    pub mail_dir: String,
    /// `MAIL_FROM`: default sender of `email` jobs.
    pub mail_from: String,
    /// `SMTP_URL`: `smtp://user:pass@host:port` (STARTTLS required with a password or
    /// `?tls=required`, else used when offered; `?tls=opportunistic` allows plain text)
    /// or `smtps://…` (TLS from the start). When set, `email` jobs are sent through it instead
    /// of written into MAIL_DIR. Needs the `smtp` cargo feature (on by default). Parsed when
    /// read; [`SmtpUrl::parse`] makes one from a string.
    pub smtp_url: Option<SmtpUrl>,
    /// `SMTP_TIMEOUT_SECS`: limit of the SMTP connect and of each SMTP command.
    pub smtp_timeout_secs: u64,
    /// `IMAGE_DIR`: the folder `image_resize` paths are relative to; nothing outside it is read
    /// or written.
    pub image_dir: String,
    /// `REPORT_DIR`: where `report` jobs write their files.
    pub report_dir: String,
    /// `ANALYTICS_RETENTION_DAYS`: how long a day of `analytics` aggregates is kept in Redis after
    /// its last event.
    pub analytics_retention_days: u64,
    /// `WEBHOOK_ALLOW`: the hosts (`host`, `host:port`, `*.domain`) `webhook` jobs may reach;
    /// None allows every public address. Private, loopback and link-local addresses are
    /// reached only through a host listed here exactly. Needs the `webhook` cargo feature.
    pub webhook_allow: Option<WebhookAllow>,
    /// `WEBHOOK_SECRET`: when set, `webhook` requests carry `X-Jobq-Signature`, an HMAC-SHA256
    /// of the timestamp and the body under this key. Needs the `webhook` cargo feature.
    pub webhook_secret: Option<String>,
    /// `HANDLERS_FILE`: a TOML file of operator-defined command job types (see docs/job-types.md),
    /// read and checked when the configuration is read; [`HandlersFile::load`] reads one.
    pub handlers_file: Option<HandlersFile>,
    /// `CANCEL_GRACE_SECS`: how long a command job cancelled through the API has to exit after
    /// SIGTERM before its process group gets SIGKILL.
    pub cancel_grace_secs: u64,
    /// `LIMITS_FILE`: a TOML file of limits per queue and per job type (see docs/limits.md),
    /// applied at start-up; read and checked when the configuration is read.
    pub limits_file: Option<LimitsFile>,
    /// `SCHEDULES_FILE`: a TOML file of cron schedules (see docs/schedules.md), synced into
    /// Redis at start-up; read and checked when the configuration is read.
    pub schedules_file: Option<SchedulesFile>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            redis_url: "redis://127.0.0.1:6379".into(),
            key_prefix: "{jobq}".into(),
            redis_wait_replicas: 0,
            redis_wait_timeout_ms: 1000,
            host: "127.0.0.1".into(),
            port: 8081,
            role: Role::All,
            num_workers: 5,
            ack_batch: 16,
            queues: Vec::new(),
            queue_order: QueueOrder::Weighted,
            queue_partitions: QueuePartitions::default(),
            http_threads: default_http_threads(),
            max_queue_size: 1000,
            max_attempts: 3,
            max_snoozes: 100,
            backoff_base_ms: 1000,
            backoff_max_ms: 30_000,
            job_ttl_secs: 7 * 24 * 3600,
            max_body_bytes: 1024 * 1024,
            shutdown_timeout_secs: 30,
            recovery_secs: 15,
            job_timeout_secs: 300,
            log_level: log::LevelFilter::Info,
            enable_diagnostic_jobs: false,
            dlq_max_size: 10_000,
            idempotency_ttl_secs: 86_400,
            api_token: None,
            api_token_readonly: None,
            metrics_public: false,
            max_connections: 1024,
            redis_ca_cert: None,
            redis_client_cert: None,
            redis_client_key: None,
            mail_dir: "./data/mail".into(),
            mail_from: "jobq@localhost".into(),
            smtp_url: None,
            smtp_timeout_secs: 30,
            image_dir: "./data/images".into(),
            report_dir: "./data/reports".into(),
            analytics_retention_days: 400,
            webhook_allow: None,
            webhook_secret: None,
            handlers_file: None,
            cancel_grace_secs: 10,
            limits_file: None,
            schedules_file: None,
        }
    }
}

/// Two request threads per core: each gathers the requests queued when it looks (see
/// `server::MAX_GATHER`) and creates their jobs in one Redis round trip, so a few threads keep
/// the cores busy; more only add context switches (measured with scripts/bench on 2 cores:
/// 4 threads 29k POST /jobs/s, 8 threads 27k).
fn default_http_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cores * 2).clamp(2, 64)
}

/// Every problem found in the environment, one line each naming the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// One line per problem, each naming its variable.
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for p in &self.problems {
            writeln!(f, "  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Every setting as `(VARIABLE, value)`, in the order of the README's table, with secrets
    /// masked: API_TOKEN, API_TOKEN_READONLY and WEBHOOK_SECRET show only whether they are set,
    /// REDIS_URL and SMTP_URL hide their passwords. The start-up log line and `jobq check-config` both print this, so what an
    /// operator checks is what the server runs with.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| UNSET.into());
        vec![
            ("REDIS_URL", mask_url(&self.redis_url)),
            ("REDIS_PREFIX", self.key_prefix.clone()),
            ("REDIS_WAIT_REPLICAS", self.redis_wait_replicas.to_string()),
            (
                "REDIS_WAIT_TIMEOUT_MS",
                self.redis_wait_timeout_ms.to_string(),
            ),
            ("REDIS_CA_CERT", opt(&self.redis_ca_cert)),
            ("REDIS_CLIENT_CERT", opt(&self.redis_client_cert)),
            ("REDIS_CLIENT_KEY", opt(&self.redis_client_key)),
            ("HOST", self.host.clone()),
            ("PORT", self.port.to_string()),
            ("ROLE", self.role.as_str().into()),
            ("NUM_WORKERS", self.num_workers.to_string()),
            ("ACK_BATCH", self.ack_batch.to_string()),
            (
                "QUEUES",
                if self.queues.is_empty() {
                    UNSET.into()
                } else {
                    queues::format_queues(&self.queues)
                },
            ),
            ("QUEUE_ORDER", self.queue_order.as_str().into()),
            (
                "QUEUE_PARTITIONS",
                queues::format_queue_partitions(&self.queue_partitions),
            ),
            ("HTTP_THREADS", self.http_threads.to_string()),
            ("MAX_CONNECTIONS", self.max_connections.to_string()),
            ("MAX_QUEUE_SIZE", self.max_queue_size.to_string()),
            ("MAX_ATTEMPTS", self.max_attempts.to_string()),
            ("MAX_SNOOZES", self.max_snoozes.to_string()),
            ("BACKOFF_BASE_MS", self.backoff_base_ms.to_string()),
            ("BACKOFF_MAX_MS", self.backoff_max_ms.to_string()),
            ("JOB_TTL_SECS", self.job_ttl_secs.to_string()),
            ("JOB_TIMEOUT_SECS", self.job_timeout_secs.to_string()),
            ("RECOVERY_SECS", self.recovery_secs.to_string()),
            (
                "SHUTDOWN_TIMEOUT_SECS",
                self.shutdown_timeout_secs.to_string(),
            ),
            ("MAX_BODY_BYTES", self.max_body_bytes.to_string()),
            ("DLQ_MAX_SIZE", self.dlq_max_size.to_string()),
            (
                "IDEMPOTENCY_TTL_SECS",
                self.idempotency_ttl_secs.to_string(),
            ),
            (
                "API_TOKEN",
                if self.api_token.is_some() {
                    "***"
                } else {
                    UNSET
                }
                .into(),
            ),
            (
                "API_TOKEN_READONLY",
                if self.api_token_readonly.is_some() {
                    "***"
                } else {
                    UNSET
                }
                .into(),
            ),
            ("METRICS_PUBLIC", self.metrics_public.to_string()),
            (
                "ENABLE_DIAGNOSTIC_JOBS",
                self.enable_diagnostic_jobs.to_string(),
            ),
            ("LOG_LEVEL", self.log_level.to_string().to_ascii_lowercase()),
            ("MAIL_DIR", self.mail_dir.clone()),
            ("MAIL_FROM", self.mail_from.clone()),
            (
                "SMTP_URL",
                self.smtp_url.as_ref().map_or(UNSET.into(), SmtpUrl::masked),
            ),
            ("SMTP_TIMEOUT_SECS", self.smtp_timeout_secs.to_string()),
            ("IMAGE_DIR", self.image_dir.clone()),
            ("REPORT_DIR", self.report_dir.clone()),
            (
                "ANALYTICS_RETENTION_DAYS",
                self.analytics_retention_days.to_string(),
            ),
            (
                "WEBHOOK_ALLOW",
                self.webhook_allow
                    .as_ref()
                    .map_or(UNSET.into(), WebhookAllow::to_string),
            ),
            (
                "WEBHOOK_SECRET",
                if self.webhook_secret.is_some() {
                    "***"
                } else {
                    UNSET
                }
                .into(),
            ),
            (
                "HANDLERS_FILE",
                self.handlers_file
                    .as_ref()
                    .map_or(UNSET.into(), |f| f.path.clone()),
            ),
            ("CANCEL_GRACE_SECS", self.cancel_grace_secs.to_string()),
            (
                "LIMITS_FILE",
                self.limits_file
                    .as_ref()
                    .map_or(UNSET.into(), |f| f.path.clone()),
            ),
            (
                "SCHEDULES_FILE",
                self.schedules_file
                    .as_ref()
                    .map_or(UNSET.into(), |f| f.path.clone()),
            ),
        ]
    }

    /// The configuration as one log line: every setting of [`Config::settings`], secrets
    /// masked. Values with spaces are quoted so the line still splits into `NAME=value` pairs.
    pub fn summary(&self) -> String {
        self.settings()
            .iter()
            .map(|(name, value)| {
                if value.is_empty() || value.contains(char::is_whitespace) {
                    format!("{name}={value:?}")
                } else {
                    format!("{name}={value}")
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// CANCEL_GRACE_SECS as a duration.
    pub fn cancel_grace(&self) -> Duration {
        Duration::from_secs(self.cancel_grace_secs)
    }

    /// SHUTDOWN_TIMEOUT_SECS as a duration.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
}

/// How [`Config::settings`] shows an optional setting that is not set.
pub const UNSET: &str = "(unset)";

/// `redis://user:secret@host` → `redis://user:***@host`, for logs; a user without a password
/// stays as it is.
pub fn mask_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.rsplit_once('@') {
        Some((cred, host)) => match cred.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests;
