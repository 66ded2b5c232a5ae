//! Configuration: one [`Config`] struct read once from the environment, validated as a whole.
//!
//! Every problem is collected before reporting, so an operator fixes a bad deployment in one go
//! rather than one variable per restart. Defaults live in [`Config::default`] and nowhere else.

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
    /// `REDIS_URL`: `redis://[user:pass@]host:port[/db]`, or the bare `host:port` form.
    pub redis_url: String,
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
    /// `HTTP_THREADS`: threads answering HTTP requests.
    pub http_threads: usize,
    /// `MAX_QUEUE_SIZE`: pending plus scheduled jobs accepted before `POST /jobs` answers 503.
    pub max_queue_size: u64,
    /// `MAX_ATTEMPTS`: attempts before a job goes to the dead-letter queue.
    pub max_attempts: u32,
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
    /// `METRICS_PUBLIC`: leaves `/metrics` open to a scraper even with API_TOKEN set.
    pub metrics_public: bool,
    /// `MAX_CONNECTIONS`: open HTTP connections served at once; more get 503.
    pub max_connections: usize,
    /// `REDIS_CA_CERT`: PEM file of the CA that signed a `rediss://` server's certificate.
    pub redis_ca_cert: Option<String>,
    /// `REDIS_CLIENT_CERT` / `REDIS_CLIENT_KEY`: PEM client certificate and key for `rediss://`.
    pub redis_client_cert: Option<String>,
    pub redis_client_key: Option<String>,
    /// `MAIL_DIR`: where the `email` job writes `.eml` files.
    pub mail_dir: String,
    /// `MAIL_FROM`: default sender of `email` jobs.
    pub mail_from: String,
    /// `SMTP_URL`: `smtp://user:pass@host:port` (STARTTLS required with a password or
    /// `?tls=required`, else used when offered; `?tls=opportunistic` allows plain text)
    /// or `smtps://…` (TLS from the start). When set, `email` jobs are sent through it instead
    /// of written into MAIL_DIR. Needs the `smtp` cargo feature (on by default).
    pub smtp_url: Option<String>,
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
    /// `HANDLERS_FILE`: a TOML file of operator-defined command job types (see docs/job-types.md).
    pub handlers_file: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            redis_url: "redis://127.0.0.1:6379".into(),
            key_prefix: "{jobq}".into(),
            host: "127.0.0.1".into(),
            port: 8081,
            role: Role::All,
            num_workers: 5,
            http_threads: default_http_threads(),
            max_queue_size: 1000,
            max_attempts: 3,
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
            handlers_file: None,
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
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (the environment in production, a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        let mut r = Reader {
            lookup: &lookup,
            problems: Vec::new(),
        };
        if let Some(url) = r.string("REDIS_URL") {
            match normalize_redis_url(&url) {
                Ok(u) => c.redis_url = u,
                Err(e) => r
                    .problems
                    .push(format!("REDIS_URL={:?}: {e}", mask_url(&url))),
            }
        }
        if let Some(p) = r.string("REDIS_PREFIX") {
            if !has_hash_tag(&p) || p.contains(char::is_whitespace) {
                r.problems.push(format!(
                    "REDIS_PREFIX={p:?}: expected a key prefix with a {{hash tag}} and no spaces, e.g. {{jobq}} or {{jobq-staging}}, so every key lands in one Redis Cluster slot"
                ));
            } else {
                c.key_prefix = p;
            }
        }
        if let Some(h) = r.string("HOST") {
            c.host = h;
        }
        r.parse("PORT", "a TCP port 0-65535", &mut c.port, |_| true);
        if let Some(v) = r.string("ROLE") {
            match v.parse() {
                Ok(role) => c.role = role,
                Err(()) => r
                    .problems
                    .push(format!("ROLE={v:?}: expected one of all, api, worker")),
            }
        }
        r.parse(
            "NUM_WORKERS",
            "an integer 0-1024",
            &mut c.num_workers,
            |n| *n <= 1024,
        );
        r.parse(
            "HTTP_THREADS",
            "an integer 1-1024",
            &mut c.http_threads,
            |n| (1..=1024).contains(n),
        );
        r.parse(
            "MAX_QUEUE_SIZE",
            "a positive integer",
            &mut c.max_queue_size,
            |n| *n > 0,
        );
        r.parse(
            "MAX_ATTEMPTS",
            "an integer 1-1000",
            &mut c.max_attempts,
            |n| (1..=1000).contains(n),
        );
        r.parse(
            "BACKOFF_BASE_MS",
            "an integer of milliseconds, at least 1",
            &mut c.backoff_base_ms,
            |n| *n >= 1,
        );
        r.parse(
            "BACKOFF_MAX_MS",
            "an integer of milliseconds, at least 1",
            &mut c.backoff_max_ms,
            |n| *n >= 1,
        );
        r.parse(
            "JOB_TTL_SECS",
            "an integer of seconds from 1 to 315360000 (ten years)",
            &mut c.job_ttl_secs,
            |n| (1..=TEN_YEARS_SECS).contains(n),
        );
        r.parse(
            "MAX_BODY_BYTES",
            "an integer of bytes, at least 256",
            &mut c.max_body_bytes,
            |n| *n >= 256,
        );
        r.parse(
            "SHUTDOWN_TIMEOUT_SECS",
            "an integer of seconds, at most 86400",
            &mut c.shutdown_timeout_secs,
            |n| *n <= 86_400,
        );
        r.parse(
            "RECOVERY_SECS",
            "an integer of seconds from 3 to 3600",
            &mut c.recovery_secs,
            |n| (3..=3600).contains(n),
        );
        r.parse(
            "JOB_TIMEOUT_SECS",
            "an integer of seconds from 1 to 604800 (a week)",
            &mut c.job_timeout_secs,
            |n| (1..=604_800).contains(n),
        );
        if let Some(v) = r.string("LOG_LEVEL") {
            match v.parse::<log::LevelFilter>() {
                Ok(l) if l != log::LevelFilter::Off => c.log_level = l,
                _ => r.problems.push(format!(
                    "LOG_LEVEL={v:?}: expected one of error, warn, info, debug, trace"
                )),
            }
        }
        r.flag("ENABLE_DIAGNOSTIC_JOBS", &mut c.enable_diagnostic_jobs);
        r.parse(
            "DLQ_MAX_SIZE",
            "an integer from 1 to 1000000",
            &mut c.dlq_max_size,
            |n| (1..=1_000_000).contains(n),
        );
        r.parse(
            "IDEMPOTENCY_TTL_SECS",
            "an integer of seconds from 1 to 315360000 (ten years)",
            &mut c.idempotency_ttl_secs,
            |n| (1..=TEN_YEARS_SECS).contains(n),
        );
        r.parse(
            "MAX_CONNECTIONS",
            "an integer 1-65536",
            &mut c.max_connections,
            |n| (1..=65_536).contains(n),
        );
        if let Some(t) = r.string("API_TOKEN") {
            if t.len() < 16 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                r.problems.push(
                    "API_TOKEN: expected at least 16 printable characters without spaces (e.g. from `openssl rand -hex 32`)".into(),
                );
            } else {
                c.api_token = Some(t);
            }
        }
        r.flag("METRICS_PUBLIC", &mut c.metrics_public);
        for (name, slot) in [
            ("REDIS_CA_CERT", &mut c.redis_ca_cert),
            ("REDIS_CLIENT_CERT", &mut c.redis_client_cert),
            ("REDIS_CLIENT_KEY", &mut c.redis_client_key),
        ] {
            if let Some(path) = r.string(name) {
                if std::path::Path::new(&path).is_file() {
                    *slot = Some(path);
                } else {
                    r.problems
                        .push(format!("{name}={path:?}: expected a readable PEM file"));
                }
            }
        }
        if c.redis_client_cert.is_some() != c.redis_client_key.is_some() {
            r.problems
                .push("REDIS_CLIENT_CERT and REDIS_CLIENT_KEY: set both or neither".into());
        }
        if let Some(v) = r.string("MAIL_DIR") {
            c.mail_dir = v;
        }
        if let Some(v) = r.string("MAIL_FROM") {
            if crate::handlers::email::is_address(&v) {
                c.mail_from = v;
            } else {
                r.problems.push(format!(
                    "MAIL_FROM={v:?}: expected an address like jobq@example.com"
                ));
            }
        }
        if let Some(v) = r.string("SMTP_URL") {
            match crate::handlers::email::SmtpUrl::parse(&v) {
                Ok(_) if !cfg!(feature = "smtp") => r.problems.push(format!(
                    "SMTP_URL={}: this jobq was built without the \"smtp\" feature; unset SMTP_URL (email jobs then write .eml files into MAIL_DIR) or build with default features",
                    mask_url(&v)
                )),
                Ok(_) => c.smtp_url = Some(v),
                Err(e) if v.contains("://") => {
                    r.problems.push(format!("SMTP_URL={}: {e}", mask_url(&v)))
                }
                // Not even URL-shaped: it cannot be masked reliably, so it is not echoed.
                Err(e) => r.problems.push(format!("SMTP_URL (value not shown): {e}")),
            }
        }
        r.parse(
            "SMTP_TIMEOUT_SECS",
            "an integer of seconds 1-600",
            &mut c.smtp_timeout_secs,
            |n| (1..=600).contains(n),
        );
        if let Some(v) = r.string("IMAGE_DIR") {
            c.image_dir = v;
        }
        if let Some(v) = r.string("REPORT_DIR") {
            c.report_dir = v;
        }
        r.parse(
            "ANALYTICS_RETENTION_DAYS",
            "an integer of days 1-36500",
            &mut c.analytics_retention_days,
            |n| (1..=36_500).contains(n),
        );
        if let Some(v) = r.string("HANDLERS_FILE") {
            // Loaded again when the registry is built; reading it here reports a bad file with
            // every other problem, before anything starts.
            match crate::handlers::command::load_file(std::path::Path::new(&v)) {
                Ok(_) => c.handlers_file = Some(v),
                Err(e) => r.problems.push(format!(
                    "HANDLERS_FILE={v:?}: {e}; the format is in docs/job-types.md"
                )),
            }
        }
        if c.backoff_max_ms < c.backoff_base_ms {
            r.problems.push(format!(
                "BACKOFF_MAX_MS={} is below BACKOFF_BASE_MS={}: the cap must be at least the base delay",
                c.backoff_max_ms, c.backoff_base_ms
            ));
        }
        if r.problems.is_empty() {
            Ok(c)
        } else {
            Err(ConfigError {
                problems: r.problems,
            })
        }
    }

    /// Every setting as `(VARIABLE, value)`, in the order of the README's table, with secrets
    /// masked: API_TOKEN shows only whether it is set, REDIS_URL and SMTP_URL hide their
    /// passwords. The start-up log line and `jobq check-config` both print this, so what an
    /// operator checks is what the server runs with.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| UNSET.into());
        vec![
            ("REDIS_URL", mask_url(&self.redis_url)),
            ("REDIS_PREFIX", self.key_prefix.clone()),
            ("REDIS_CA_CERT", opt(&self.redis_ca_cert)),
            ("REDIS_CLIENT_CERT", opt(&self.redis_client_cert)),
            ("REDIS_CLIENT_KEY", opt(&self.redis_client_key)),
            ("HOST", self.host.clone()),
            ("PORT", self.port.to_string()),
            ("ROLE", self.role.as_str().into()),
            ("NUM_WORKERS", self.num_workers.to_string()),
            ("HTTP_THREADS", self.http_threads.to_string()),
            ("MAX_CONNECTIONS", self.max_connections.to_string()),
            ("MAX_QUEUE_SIZE", self.max_queue_size.to_string()),
            ("MAX_ATTEMPTS", self.max_attempts.to_string()),
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
                self.smtp_url.as_deref().map_or(UNSET.into(), mask_url),
            ),
            ("SMTP_TIMEOUT_SECS", self.smtp_timeout_secs.to_string()),
            ("IMAGE_DIR", self.image_dir.clone()),
            ("REPORT_DIR", self.report_dir.clone()),
            (
                "ANALYTICS_RETENTION_DAYS",
                self.analytics_retention_days.to_string(),
            ),
            ("HANDLERS_FILE", opt(&self.handlers_file)),
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

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
}

struct Reader<'a, F: Fn(&str) -> Option<String>> {
    lookup: &'a F,
    problems: Vec<String>,
}

impl<F: Fn(&str) -> Option<String>> Reader<'_, F> {
    /// The trimmed value of `name`; unset and empty both mean "use the default".
    fn string(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn parse<T: FromStr + Copy>(
        &mut self,
        name: &str,
        expected: &str,
        slot: &mut T,
        valid: impl Fn(&T) -> bool,
    ) {
        let Some(raw) = self.string(name) else { return };
        match raw.parse::<T>() {
            Ok(v) if valid(&v) => *slot = v,
            _ => self
                .problems
                .push(format!("{name}={raw:?}: expected {expected}")),
        }
    }
}

impl<F: Fn(&str) -> Option<String>> Reader<'_, F> {
    fn flag(&mut self, name: &str, slot: &mut bool) {
        let Some(v) = self.string(name) else { return };
        match parse_bool(&v) {
            Some(b) => *slot = b,
            None => self
                .problems
                .push(format!("{name}={v:?}: expected true or false")),
        }
    }
}

/// Whether a key prefix carries a non-empty `{hash tag}`: Redis Cluster hashes only the part
/// between the first `{` and the next `}`.
fn has_hash_tag(prefix: &str) -> bool {
    prefix
        .split_once('{')
        .and_then(|(_, rest)| rest.split_once('}'))
        .is_some_and(|(tag, _)| !tag.is_empty())
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Accepts `redis://…`, `rediss://…`, `unix://…` as they are and the article's bare `host:port`
/// (or bare `host`), which becomes `redis://host:port`.
pub fn normalize_redis_url(raw: &str) -> Result<String, String> {
    let url = if raw.contains("://") {
        raw.to_string()
    } else {
        let (host, port) = match raw.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (raw, "6379"),
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err("expected redis://host:port[/db] or host:port".into());
        }
        format!("redis://{host}:{port}")
    };
    redis::parse_redis_url(&url)
        .map(|_| url.clone())
        .ok_or_else(|| "expected redis://host:port[/db] or host:port".into())
        .and_then(
            |u| match redis::IntoConnectionInfo::into_connection_info(u.as_str()) {
                Ok(_) => Ok(u),
                Err(e) => Err(format!("not a usable Redis URL: {e}")),
            },
        )
}

/// How [`Config::settings`] shows an optional setting that is not set.
pub const UNSET: &str = "(unset)";

/// Longest TTL a setting may ask for; larger values would make Redis refuse the EXPIRE midway
/// through a script.
const TEN_YEARS_SECS: u64 = 10 * 365 * 24 * 3600;

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
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_documented_table() {
        let c = from(&[]).unwrap();
        assert_eq!(c.redis_url, "redis://127.0.0.1:6379");
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 8081));
        assert_eq!(c.num_workers, 5);
        assert_eq!(c.max_queue_size, 1000);
        assert_eq!(c.max_attempts, 3);
        assert_eq!((c.backoff_base_ms, c.backoff_max_ms), (1000, 30_000));
        assert_eq!(c.job_ttl_secs, 604_800);
        assert_eq!(c.max_body_bytes, 1_048_576);
        assert_eq!(c.shutdown_timeout_secs, 30);
        assert_eq!(c.log_level, log::LevelFilter::Info);
        assert!(!c.enable_diagnostic_jobs);
        assert_eq!(c.role, Role::All);
        assert_eq!(c.key_prefix, "{jobq}");
    }

    #[test]
    fn bare_host_port_becomes_a_url() {
        let c = from(&[("REDIS_URL", "redis:6379")]).unwrap();
        assert_eq!(c.redis_url, "redis://redis:6379");
        assert_eq!(
            normalize_redis_url("localhost").unwrap(),
            "redis://localhost:6379"
        );
        assert_eq!(
            normalize_redis_url("redis://u:p@h:7000/2").unwrap(),
            "redis://u:p@h:7000/2"
        );
        assert!(normalize_redis_url("host:notaport").is_err());
    }

    #[test]
    fn every_bad_value_is_reported_by_name() {
        let err = from(&[
            ("PORT", "99999"),
            ("NUM_WORKERS", "-1"),
            ("MAX_ATTEMPTS", "0"),
            ("LOG_LEVEL", "loud"),
            ("ENABLE_DIAGNOSTIC_JOBS", "maybe"),
            ("ROLE", "boss"),
        ])
        .unwrap_err();
        let text = err.to_string();
        for name in [
            "PORT",
            "NUM_WORKERS",
            "MAX_ATTEMPTS",
            "LOG_LEVEL",
            "ENABLE_DIAGNOSTIC_JOBS",
            "ROLE",
        ] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
        assert_eq!(err.problems.len(), 6);
    }

    #[test]
    fn backoff_cap_below_base_is_refused() {
        let err = from(&[("BACKOFF_BASE_MS", "500"), ("BACKOFF_MAX_MS", "100")]).unwrap_err();
        assert!(err.to_string().contains("BACKOFF_MAX_MS"));
    }

    #[test]
    fn values_are_trimmed_and_empty_means_default() {
        let c = from(&[
            ("NUM_WORKERS", " 8 "),
            ("PORT", ""),
            ("ENABLE_DIAGNOSTIC_JOBS", "yes"),
        ])
        .unwrap();
        assert_eq!(c.num_workers, 8);
        assert_eq!(c.port, 8081);
        assert!(c.enable_diagnostic_jobs);
    }

    #[test]
    fn prefix_needs_a_hash_tag() {
        assert!(from(&[("REDIS_PREFIX", "{staging}")]).is_ok());
        assert!(from(&[("REDIS_PREFIX", "app:{jobq}")]).is_ok());
        for bad in ["jobq", "{}jobq", "{jobq", "jo bq{x}"] {
            let e = from(&[("REDIS_PREFIX", bad)]).unwrap_err();
            assert!(e.to_string().contains("REDIS_PREFIX"), "{bad}");
        }
        assert!(from(&[("SHUTDOWN_TIMEOUT_SECS", "99999999999")]).is_err());
        assert!(from(&[("JOB_TIMEOUT_SECS", "99999999999")]).is_err());
    }

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_url("redis://user:hunter2@h:6379/0"),
            "redis://user:***@h:6379/0"
        );
        assert_eq!(mask_url("redis://:pw@h:6379"), "redis://:***@h:6379");
        assert_eq!(mask_url("redis://h:6379"), "redis://h:6379");
        assert_eq!(mask_url("redis://user@h:6379"), "redis://user@h:6379");
        let err = from(&[("REDIS_URL", "redis://u:hunter2@h:notaport")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn job_handler_settings_have_defaults_and_are_read() {
        let c = from(&[]).unwrap();
        assert_eq!(c.smtp_url, None);
        assert_eq!(c.smtp_timeout_secs, 30);
        assert_eq!(c.image_dir, "./data/images");
        assert_eq!(c.report_dir, "./data/reports");
        assert_eq!(c.analytics_retention_days, 400);
        assert_eq!(c.handlers_file, None);

        let handlers = std::env::temp_dir().join(format!("jobq-cfg-{}.toml", std::process::id()));
        std::fs::write(
            &handlers,
            "[commands.hello]\nrun = [\"/bin/echo\", \"hi\"]\n",
        )
        .unwrap();
        let c = from(&[
            ("IMAGE_DIR", "/srv/images"),
            ("REPORT_DIR", "/srv/reports"),
            ("SMTP_TIMEOUT_SECS", "5"),
            ("ANALYTICS_RETENTION_DAYS", "30"),
            ("HANDLERS_FILE", handlers.to_str().unwrap()),
        ])
        .unwrap();
        assert_eq!(
            (c.image_dir.as_str(), c.report_dir.as_str()),
            ("/srv/images", "/srv/reports")
        );
        assert_eq!((c.smtp_timeout_secs, c.analytics_retention_days), (5, 30));
        assert_eq!(c.handlers_file.as_deref(), handlers.to_str());
        let _ = std::fs::remove_file(&handlers);
    }

    #[test]
    fn bad_job_handler_settings_are_reported_by_name() {
        let handlers =
            std::env::temp_dir().join(format!("jobq-cfg-bad-{}.toml", std::process::id()));
        std::fs::write(&handlers, "[commands.hello]\nrun = [\"/bin/echo\"\n").unwrap();
        let err = from(&[
            ("SMTP_URL", "http://user:hunter2@mail.example.com"),
            ("SMTP_TIMEOUT_SECS", "0"),
            ("ANALYTICS_RETENTION_DAYS", "-1"),
            ("HANDLERS_FILE", handlers.to_str().unwrap()),
        ])
        .unwrap_err();
        let text = err.to_string();
        for name in [
            "SMTP_URL",
            "SMTP_TIMEOUT_SECS",
            "ANALYTICS_RETENTION_DAYS",
            "HANDLERS_FILE",
        ] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
        assert_eq!(err.problems.len(), 4, "{text}");
        assert!(
            !text.contains("hunter2"),
            "the SMTP password leaked: {text}"
        );
        assert!(
            text.contains(":2:"),
            "the handlers file error names the line: {text}"
        );
        let _ = std::fs::remove_file(&handlers);

        let err = from(&[("HANDLERS_FILE", "/no/such/handlers.toml")]).unwrap_err();
        assert!(err.to_string().contains("cannot read"), "{err}");
        // Not URL-shaped: not echoed at all, since it cannot be masked reliably.
        let err = from(&[("SMTP_URL", "user:hunter2@mail")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn settings_list_every_variable_with_secrets_masked() {
        let c = from(&[
            ("REDIS_URL", "redis://u:hunter2@h:6379"),
            ("API_TOKEN", "0123456789abcdef-secret"),
            ("MAIL_DIR", "/srv/my mail"),
        ])
        .unwrap();
        let line = c.summary();
        for name in [
            "REDIS_URL=redis://u:***@h:6379",
            "API_TOKEN=***",
            "HANDLERS_FILE=(unset)",
            "MAIL_DIR=\"/srv/my mail\"",
            "MAIL_FROM=jobq@localhost",
            "IMAGE_DIR=./data/images",
            "REPORT_DIR=./data/reports",
            "LOG_LEVEL=info",
        ] {
            assert!(line.contains(name), "{name} missing from {line}");
        }
        assert!(
            !line.contains("hunter2") && !line.contains("-secret"),
            "{line}"
        );
        // Every variable the reader takes is listed.
        let names: Vec<&str> = c.settings().iter().map(|(n, _)| *n).collect();
        let source = include_str!("config.rs");
        let read: Vec<&str> = source
            .split("r.string(\"")
            .chain(source.split("r.parse(\n            \""))
            .chain(source.split("r.parse(\""))
            .chain(source.split("r.flag(\""))
            .skip(1)
            .filter_map(|s| s.split('"').next())
            .filter(|v| v.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_'))
            .collect();
        assert!(read.len() >= 28, "the scan found only {read:?}");
        for var in read {
            assert!(names.contains(&var), "{var} is not in Config::settings");
        }
    }

    #[test]
    fn smtp_url_needs_the_smtp_feature() {
        let r = from(&[("SMTP_URL", "smtps://u:pw@mail.example.com")]);
        if cfg!(feature = "smtp") {
            assert_eq!(
                r.unwrap().smtp_url.as_deref(),
                Some("smtps://u:pw@mail.example.com")
            );
        } else {
            let text = r.unwrap_err().to_string();
            assert!(
                text.contains("\"smtp\" feature") && !text.contains(":pw@"),
                "{text}"
            );
        }
    }
}
