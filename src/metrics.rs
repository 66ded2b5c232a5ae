//! Prometheus metrics under the article's names, labelled by queue (and job type where the
//! registered types bound it). Counters count this process's events; the `queue_size` and
//! `queue_latency_seconds` gauges are read from Redis at scrape time, so they are the same on
//! every process.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::collections::HashSet;
use std::sync::RwLock;

use crate::store::{LiveProcess, QueueInfo, TypeInfo};

/// Most distinct queue label values one process exports; later queues are counted under
/// `_other`, so a client creating queues by the thousand cannot blow up the scrape.
const MAX_QUEUE_LABELS: usize = 100;

pub struct Metrics {
    registry: Registry,
    /// By queue.
    pub jobs_created: IntCounterVec,
    /// By queue and type, as every per-job counter below.
    pub jobs_processed: IntCounterVec,
    pub jobs_failed: IntCounterVec,
    pub jobs_retried: IntCounterVec,
    pub jobs_dlq: IntCounterVec,
    pub jobs_snoozed: IntCounterVec,
    /// By queue, type and the stage the job was in (pending, scheduled, waiting, running).
    pub jobs_cancelled: IntCounterVec,
    pub jobs_expired: IntCounterVec,
    /// Waiting jobs (workflow nodes, `depends_on`) that became pending.
    pub jobs_unblocked: IntCounterVec,
    pub jobs_recovered: IntCounter,
    pub jobs_dlq_evicted: IntCounter,
    pub processing_duration: HistogramVec,
    /// Ready → started, by queue.
    pub job_wait: HistogramVec,
    /// Outcomes recorded per script call: a worker's own (1) or a committer's group (ACK_BATCH).
    pub ack_batch_size: Histogram,
    /// By type and transition (`opened`, `closed`).
    pub breaker_transitions: IntCounterVec,
    /// Command runs stopped by a resource limit, by type and limit (`memory`, `cpu`, `output`).
    pub command_limit_exceeded: IntCounterVec,
    queue_size: IntGaugeVec,
    queue_latency: prometheus::GaugeVec,
    queue_paused: IntGaugeVec,
    /// Worker threads of live processes that serve each queue.
    queue_workers: IntGaugeVec,
    queue_limit: IntGaugeVec,
    type_running: IntGaugeVec,
    breaker_open: IntGaugeVec,
    /// 1 when the last scrape read Redis, 0 when Redis did not answer it.
    redis_up: prometheus::IntGauge,
    http_requests: IntCounterVec,
    /// By schedule: ticks that made a job (triggers not included), ticks that made none because
    /// no process was there in time or the queue was full, and ticks skipped for overlap.
    pub schedule_fires: IntCounterVec,
    pub schedule_misses: IntCounterVec,
    pub schedule_skips: IntCounterVec,
    /// Webhook delivery jobs this process created for events, by event kind (one per event and
    /// subscription that wants it).
    pub events_published: IntCounterVec,
    /// Events the outbox had no room for (it holds 10,000), found by this process.
    pub events_dropped: IntCounter,
    queue_labels: RwLock<HashSet<String>>,
    schedule_labels: RwLock<HashSet<String>>,
}

/// The series of one queue and job type, resolved once: a worker keeps them for each pair it
/// has run, so a job costs no label lookup (on 2 cores the workers' CPU is Redis's CPU too).
pub struct JobSeries {
    pub processed: IntCounter,
    pub failed: IntCounter,
    pub retried: IntCounter,
    pub dlq: IntCounter,
    pub snoozed: IntCounter,
    pub duration: Histogram,
    pub wait: Histogram,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let reg = |c: Box<dyn prometheus::core::Collector>| {
            registry.register(c).expect("metric registered once");
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric name");
            reg(Box::new(c.clone()));
            c
        };
        let counters = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric name");
            reg(Box::new(c.clone()));
            c
        };
        let gauges = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric name");
            reg(Box::new(g.clone()));
            g
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let h =
                HistogramVec::new(HistogramOpts::new(name, help), labels).expect("valid histogram");
            reg(Box::new(h.clone()));
            h
        };
        let qt = &["queue", "type"];
        let queue_latency = prometheus::GaugeVec::new(
            Opts::new(
                "queue_latency_seconds",
                "Age of each queue's oldest ready job, read from Redis at scrape time.",
            ),
            &["queue"],
        )
        .expect("valid gauge");
        reg(Box::new(queue_latency.clone()));
        Metrics {
            jobs_created: counters(
                "jobs_created_total",
                "Jobs accepted by this process's API.",
                &["queue"],
            ),
            jobs_processed: counters(
                "jobs_processed_total",
                "Jobs this process's workers completed successfully.",
                qt,
            ),
            jobs_failed: counters(
                "jobs_failed_total",
                "Failed attempts on this process's workers (each retry's failure counts).",
                qt,
            ),
            jobs_retried: counters(
                "jobs_retried_total",
                "Failed attempts this process scheduled for a retry.",
                qt,
            ),
            jobs_dlq: counters(
                "jobs_dlq_total",
                "Jobs this process moved to the dead-letter queue.",
                qt,
            ),
            jobs_snoozed: counters(
                "jobs_snoozed_total",
                "Attempts that asked to run later (snooze) without using an attempt.",
                qt,
            ),
            jobs_cancelled: counters(
                "jobs_cancelled_total",
                "Jobs this process saw end cancelled, by the stage they were in (pending, scheduled, waiting, running).",
                &["queue", "type", "stage"],
            ),
            jobs_expired: counters(
                "jobs_expired_total",
                "Jobs this process found past their start deadline; they never ran.",
                qt,
            ),
            jobs_unblocked: counters(
                "jobs_unblocked_total",
                "Waiting jobs (workflow nodes, depends_on) that became pending when their parents finished.",
                qt,
            ),
            jobs_recovered: counter(
                "jobs_recovered_total",
                "Jobs this process took back from worker processes that died.",
            ),
            jobs_dlq_evicted: counter(
                "jobs_dlq_evicted_total",
                "Oldest dead-letter jobs this process dropped because the DLQ reached DLQ_MAX_SIZE.",
            ),
            processing_duration: histogram(
                "job_processing_duration_seconds",
                "Time handlers spent on attempts, successful or not.",
                qt,
            ),
            job_wait: histogram(
                "job_wait_seconds",
                "Time from a job being ready to run to its start.",
                &["queue"],
            ),
            ack_batch_size: {
                let opts = HistogramOpts::new(
                    "ack_batch_size",
                    "Job outcomes recorded per script call, a worker's own (1) or a committer's group (ACK_BATCH).",
                )
                .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]);
                let h = Histogram::with_opts(opts).expect("valid histogram");
                reg(Box::new(h.clone()));
                h
            },
            breaker_transitions: counters(
                "breaker_transitions_total",
                "Circuit breaker changes this process saw, by job type and transition.",
                &["type", "transition"],
            ),
            command_limit_exceeded: counters(
                "command_limit_exceeded_total",
                "Command job runs on this process that failed for a resource limit of HANDLERS_FILE, by type and limit (memory, cpu, output).",
                &["type", "limit"],
            ),
            queue_size: gauges(
                "queue_size",
                "Jobs in each state by queue, read from Redis at scrape time (state dlq: the queue's jobs in the dead-letter queue).",
                &["queue", "state"],
            ),
            queue_latency,
            queue_paused: gauges(
                "queue_paused",
                "1 while a queue is paused.",
                &["queue"],
            ),
            queue_workers: gauges(
                "queue_workers",
                "Worker threads of live processes (heartbeat not expired) that serve each queue, read from Redis at scrape time; 0 while no process serves it.",
                &["queue"],
            ),
            queue_limit: gauges(
                "queue_concurrency_limit",
                "A queue's global concurrency limit (absent when none).",
                &["queue"],
            ),
            type_running: gauges(
                "type_running_jobs",
                "Jobs of each type running over all processes, read from Redis at scrape time.",
                &["type"],
            ),
            breaker_open: gauges(
                "breaker_open",
                "1 while a job type's circuit breaker is open or half open.",
                &["type"],
            ),
            redis_up: {
                let g = prometheus::IntGauge::new(
                    "redis_up",
                    "1 when this scrape read Redis, 0 when Redis did not answer it.",
                )
                .expect("valid gauge");
                reg(Box::new(g.clone()));
                g
            },
            http_requests: counters(
                "http_requests_total",
                "HTTP requests this process answered, by route pattern and status; refused submissions show as 400, 401, 413 or 503 on route \"/jobs\" or \"/jobs/batch\".",
                &["route", "status"],
            ),
            schedule_fires: counters(
                "schedule_fires_total",
                "Schedule ticks this process turned into a job (one per tick over all processes).",
                &["schedule"],
            ),
            schedule_misses: counters(
                "schedule_misses_total",
                "Schedule ticks this process found missed (no process in time, or the queue full) and made no job for.",
                &["schedule"],
            ),
            schedule_skips: counters(
                "schedule_skips_total",
                "Schedule ticks this process skipped because the last tick's job was still pending or running (overlap skip).",
                &["schedule"],
            ),
            events_published: counters(
                "events_published_total",
                "Webhook delivery jobs this process created for subscribed events, by event kind (one per event and subscription).",
                &["event"],
            ),
            events_dropped: counter(
                "events_dropped_total",
                "Events this process found dropped because the outbox was full (10,000 events waiting to be published).",
            ),
            queue_labels: RwLock::new(HashSet::new()),
            schedule_labels: RwLock::new(HashSet::new()),
            registry,
        }
    }

    /// The label value for `queue`: itself for the first MAX_QUEUE_LABELS queues seen,
    /// `_other` after that.
    pub fn queue_label<'a>(&self, queue: &'a str) -> &'a str {
        bounded_label(&self.queue_labels, queue)
    }

    /// The label value for a schedule: as [`Metrics::queue_label`], with a set of its own.
    pub fn schedule_label<'a>(&self, schedule: &'a str) -> &'a str {
        bounded_label(&self.schedule_labels, schedule)
    }

    /// The series of a job of `queue` and type `kind`.
    pub fn job_series(&self, queue: &str, kind: &str) -> JobSeries {
        let q = self.queue_label(queue);
        let c = |v: &IntCounterVec| v.with_label_values(&[q, kind]);
        JobSeries {
            processed: c(&self.jobs_processed),
            failed: c(&self.jobs_failed),
            retried: c(&self.jobs_retried),
            dlq: c(&self.jobs_dlq),
            snoozed: c(&self.jobs_snoozed),
            duration: self.processing_duration.with_label_values(&[q, kind]),
            wait: self.job_wait.with_label_values(&[q]),
        }
    }

    /// Starts the series of every job counter at 0 for each of `queues` and `types`, so a
    /// scrape shows every family from the start (a series that appears only with its first
    /// event hides that event from `rate()` and `increase()`).
    pub fn init_series(&self, queues: &[String], types: &[&str]) {
        for q in queues {
            let q = self.queue_label(q);
            self.jobs_created.with_label_values(&[q]);
            self.job_wait.with_label_values(&[q]);
            for t in types {
                self.job_series(q, t);
            }
        }
    }

    /// Starts the `command_limit_exceeded_total` series of command type `kind` at 0 for each
    /// of its `limits` (`memory`, `cpu`, `output`), so they show before the first event.
    pub fn init_command_limits(&self, kind: &str, limits: &[&str]) {
        for limit in limits {
            self.command_limit_exceeded
                .with_label_values(&[kind, limit]);
        }
    }

    /// Counts a command run of type `kind` stopped by its `limit` (`memory`, `cpu`, `output`).
    pub fn count_command_limit(&self, kind: &str, limit: &str) {
        self.command_limit_exceeded
            .with_label_values(&[kind, limit])
            .inc();
    }

    /// Counts one answered request; `route` is a pattern of the route table or "unmatched".
    pub fn count_request(&self, route: &str, status: u16) {
        self.http_requests
            .with_label_values(&[route, &status.to_string()])
            .inc();
    }

    /// The text exposition; the queues, types and live processes read from Redis refresh the
    /// gauges when Redis answered.
    pub fn render(&self, state: Option<(&[QueueInfo], &[TypeInfo], &[LiveProcess])>) -> String {
        self.redis_up.set(i64::from(state.is_some()));
        if let Some((queues, types, live)) = state {
            self.queue_size.reset();
            self.queue_latency.reset();
            self.queue_paused.reset();
            self.queue_limit.reset();
            self.queue_workers.reset();
            let served: Vec<Served> = live.iter().filter_map(Served::of).collect();
            for q in queues {
                let label = self.queue_label(&q.name);
                let threads: u64 = served.iter().map(|s| s.threads_for(&q.name)).sum();
                self.queue_workers
                    .with_label_values(&[label])
                    .add(threads.min(i64::MAX as u64) as i64);
                for (st, n) in [
                    ("waiting", q.waiting),
                    ("pending", q.pending),
                    ("scheduled", q.scheduled),
                    ("running", q.running),
                    ("dlq", q.failed),
                ] {
                    self.queue_size
                        .with_label_values(&[label, st])
                        .add(n.min(i64::MAX as u64) as i64);
                }
                self.queue_latency
                    .with_label_values(&[label])
                    .set(q.latency_secs);
                self.queue_paused
                    .with_label_values(&[label])
                    .set(i64::from(q.paused));
                if let Some(n) = q.limit_fields.get("conc").and_then(|v| v.parse().ok()) {
                    self.queue_limit.with_label_values(&[label]).set(n);
                }
            }
            for t in types {
                self.type_running
                    .with_label_values(&[&t.name])
                    .set(t.running.min(i64::MAX as u64) as i64);
                self.breaker_open
                    .with_label_values(&[&t.name])
                    .set(i64::from(t.breaker_state != "closed"));
            }
        }
        let mut buf = Vec::with_capacity(4096);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding of gathered metrics cannot fail");
        String::from_utf8(buf).expect("metric text is UTF-8")
    }
}

/// What one live process's heartbeat says it serves (`worker/beat.rs`): its worker threads and
/// the queues they take jobs from (None: every queue).
struct Served {
    threads: u64,
    queues: Option<Vec<String>>,
}

impl Served {
    /// None for a process without workers (ROLE=api) or an unreadable heartbeat.
    fn of(p: &LiveProcess) -> Option<Served> {
        let beat: serde_json::Value = serde_json::from_str(&p.beat).ok()?;
        if beat["role"] == "api" {
            return None;
        }
        let queues = match &beat["queues"] {
            serde_json::Value::Array(qs) => Some(
                qs.iter()
                    .filter_map(|q| q.as_str().map(str::to_string))
                    .collect(),
            ),
            _ => None,
        };
        Some(Served {
            threads: beat["workers"].as_u64()?,
            queues,
        })
    }

    fn threads_for(&self, queue: &str) -> u64 {
        match &self.queues {
            Some(qs) if !qs.iter().any(|q| q == queue) => 0,
            _ => self.threads,
        }
    }
}

/// `value` for the first MAX_QUEUE_LABELS values seen in `seen`, `_other` after that.
fn bounded_label<'a>(seen: &RwLock<HashSet<String>>, value: &'a str) -> &'a str {
    let known = |seen: &HashSet<String>| seen.contains(value);
    if known(&seen.read().unwrap_or_else(|e| e.into_inner())) {
        return value;
    }
    let mut seen = seen.write().unwrap_or_else(|e| e.into_inner());
    if known(&seen) {
        return value;
    }
    if seen.len() < MAX_QUEUE_LABELS {
        seen.insert(value.to_string());
        return value;
    }
    "_other"
}

/// Shown as a name only (a `JobContext` holds one and is `Debug`).
impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
