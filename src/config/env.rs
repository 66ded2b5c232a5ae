//! Reading the environment: [`Config::from_env`] turns variables into a [`Config`], checking
//! every value and collecting every problem before reporting, so an operator fixes a bad
//! deployment in one go rather than one variable per restart.

use std::str::FromStr;

use super::handlers_file::HandlersFile;
use super::limits::LimitsFile;
use super::queues::{parse_queue_partitions, parse_queues, QueueOrder};
use super::redis_url::parse_multi_host;
use super::schedules::SchedulesFile;
use super::smtp::{is_address, SmtpUrl};
use super::webhook::WebhookAllow;
use super::{mask_url, Config, ConfigError};

/// The problem with a webhook setting in a build without webhook jobs (`{}`: the variable).
const WITHOUT_WEBHOOK: &str = "{} is set, but this jobq was built without the \"webhook\" feature, so it has no webhook jobs; unset {} or build with default features";

/// Longest TTL a setting may ask for; larger values would make Redis refuse the EXPIRE midway
/// through a script.
const TEN_YEARS_SECS: u64 = 10 * 365 * 24 * 3600;

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
        r.parse(
            "REDIS_WAIT_REPLICAS",
            "an integer of replicas 0-100 (0: do not wait)",
            &mut c.redis_wait_replicas,
            |n| *n <= 100,
        );
        r.parse(
            "REDIS_WAIT_TIMEOUT_MS",
            "an integer of milliseconds 1-10000",
            &mut c.redis_wait_timeout_ms,
            |n| (1..=10_000).contains(n),
        );
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
            "ACK_BATCH",
            "an integer 1-256 (1: no group commit)",
            &mut c.ack_batch,
            |n| (1..=256).contains(n),
        );
        // QUEUES and QUEUE_ORDER are checked together: strict needs a list, and no weights.
        let queues_raw = r.string("QUEUES");
        let (mut weights_given, mut queues_bad) = (false, false);
        if let Some(v) = &queues_raw {
            match parse_queues(v) {
                Ok(list) => {
                    c.queues = list.queues;
                    weights_given = list.weights_given;
                }
                Err(problems) => {
                    queues_bad = true;
                    r.problems
                        .extend(problems.into_iter().map(|p| format!("QUEUES entry {p}")));
                }
            }
        }
        if let Some(v) = r.string("QUEUE_ORDER") {
            match v.parse() {
                Ok(order) => c.queue_order = order,
                Err(()) => r
                    .problems
                    .push(format!("QUEUE_ORDER={v:?}: expected weighted or strict")),
            }
        }
        // A bad QUEUES is reported above, once, not again as missing.
        if c.queue_order == QueueOrder::Strict && !queues_bad {
            if c.queues.is_empty() {
                r.problems
                    .push("QUEUE_ORDER=strict needs QUEUES to list the queues in order".into());
            } else if weights_given {
                r.problems.push(format!(
                    "QUEUES={}: weights mean nothing with QUEUE_ORDER=strict",
                    queues_raw.as_deref().unwrap_or_default()
                ));
            }
        }
        if let Some(v) = r.string("QUEUE_PARTITIONS") {
            match parse_queue_partitions(&v) {
                Ok(p) => c.queue_partitions = p,
                Err(problems) => r.problems.extend(
                    problems
                        .into_iter()
                        .map(|p| format!("QUEUE_PARTITIONS entry {p}")),
                ),
            }
        }
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
            "MAX_SNOOZES",
            "an integer 0-100000",
            &mut c.max_snoozes,
            |n| *n <= 100_000,
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
        // Read by name here (not in a loop) so the settings test's scan of this file sees both.
        let tokens = [
            ("API_TOKEN", r.string("API_TOKEN")),
            ("API_TOKEN_READONLY", r.string("API_TOKEN_READONLY")),
        ];
        for (name, value) in tokens {
            let Some(t) = value else { continue };
            // The value is never echoed: it is a secret.
            if t.len() < 16 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                r.problems.push(format!(
                    "{name}: expected at least 16 printable characters without spaces (e.g. from `openssl rand -hex 32`)"
                ));
            } else if name == "API_TOKEN" {
                c.api_token = Some(t);
            } else {
                c.api_token_readonly = Some(t);
            }
        }
        if c.api_token_readonly.is_some() && r.string("API_TOKEN").is_none() {
            // Without API_TOKEN no route asks for a token, so a read-only token alone would
            // restrict nothing while seeming to: refuse rather than guess what was meant.
            r.problems.push(
                "API_TOKEN_READONLY is set without API_TOKEN: without API_TOKEN every route is open to anyone; set API_TOKEN too, or unset API_TOKEN_READONLY".into(),
            );
        }
        if c.api_token.is_some() && c.api_token == c.api_token_readonly {
            r.problems.push(
                "API_TOKEN_READONLY equals API_TOKEN: give the read-only token a value of its own"
                    .into(),
            );
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
            if is_address(&v) {
                c.mail_from = v;
            } else {
                r.problems.push(format!(
                    "MAIL_FROM={v:?}: expected an address like jobq@example.com"
                ));
            }
        }
        if let Some(v) = r.string("SMTP_URL") {
            match SmtpUrl::parse(&v) {
                Ok(_) if !cfg!(feature = "smtp") => r.problems.push(format!(
                    "SMTP_URL={}: this jobq was built without the \"smtp\" feature; unset SMTP_URL (email jobs then write .eml files into MAIL_DIR) or build with default features",
                    mask_url(&v)
                )),
                Ok(url) => c.smtp_url = Some(url),
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
        if let Some(v) = r.string("WEBHOOK_ALLOW") {
            match WebhookAllow::parse(&v) {
                Ok(_) if !cfg!(feature = "webhook") => r.problems.push(WITHOUT_WEBHOOK.replace("{}", "WEBHOOK_ALLOW")),
                Ok(list) => c.webhook_allow = Some(list),
                Err(problems) => r.problems.extend(problems.into_iter().map(|p| {
                    format!("WEBHOOK_ALLOW entry {p}; entries are host, host:port or *.domain, comma-separated")
                })),
            }
        }
        if let Some(v) = r.string("WEBHOOK_SECRET") {
            // The value is never echoed: it is a secret.
            if !cfg!(feature = "webhook") {
                r.problems
                    .push(WITHOUT_WEBHOOK.replace("{}", "WEBHOOK_SECRET"));
            } else if v.len() < 16 || !v.bytes().all(|b| b.is_ascii_graphic()) {
                r.problems.push(
                    "WEBHOOK_SECRET: expected at least 16 printable characters without spaces (e.g. from `openssl rand -hex 32`)".into(),
                );
            } else {
                c.webhook_secret = Some(v);
            }
        }
        if let Some(v) = r.string("HANDLERS_FILE") {
            // Read and checked here, once: a bad file is reported with every other problem,
            // before anything starts, and the handlers get the checked commands.
            match HandlersFile::load(&v) {
                Ok(file) => c.handlers_file = Some(file),
                Err(e) => r.problems.push(format!(
                    "HANDLERS_FILE={v:?}: {e}; the format is in docs/job-types.md"
                )),
            }
        }
        r.parse(
            "CANCEL_GRACE_SECS",
            "an integer of seconds, at most 3600",
            &mut c.cancel_grace_secs,
            |n| *n <= 3600,
        );
        if let Some(v) = r.string("LIMITS_FILE") {
            // As HANDLERS_FILE: a bad file is reported with every other problem, before anything
            // starts.
            match LimitsFile::load(&v) {
                Ok(file) => c.limits_file = Some(file),
                Err(e) => r.problems.push(format!(
                    "LIMITS_FILE={v:?}: {e}; the format is in docs/limits.md"
                )),
            }
        }
        if let Some(v) = r.string("SCHEDULES_FILE") {
            // As LIMITS_FILE. The job types its jobs name are checked at start-up, against the
            // registry.
            match SchedulesFile::load(&v) {
                Ok(file) => c.schedules_file = Some(file),
                Err(e) => r.problems.push(format!(
                    "SCHEDULES_FILE={v:?}: {e}; the format is in docs/schedules.md"
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
/// (or bare `host`), which becomes `redis://host:port`; and `redis+cluster://…` and
/// `redis+sentinel://…` (also `rediss+`) when built with the "cluster" feature.
pub fn normalize_redis_url(raw: &str) -> Result<String, String> {
    if let Some(parsed) = parse_multi_host(raw) {
        let scheme = raw.split_once("://").map_or(raw, |(s, _)| s);
        return match parsed {
            Err(e) => Err(e),
            Ok(_) if !cfg!(feature = "cluster") => Err(format!(
                "{scheme}:// needs the \"cluster\" feature, which this jobq was built without; rebuild with default features, or point REDIS_URL at one Redis (redis://host:port)"
            )),
            Ok(_) => Ok(raw.to_string()),
        };
    }
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
