//! Prometheus metrics under the article's names. Counters count this process's events; the
//! `queue_size` gauge is read from Redis at scrape time, so it is the same on every process.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::store::Stats;

pub struct Metrics {
    registry: Registry,
    pub jobs_created: IntCounter,
    pub jobs_processed: IntCounter,
    pub jobs_failed: IntCounter,
    pub jobs_retried: IntCounter,
    pub jobs_dlq: IntCounter,
    pub jobs_recovered: IntCounter,
    pub jobs_dlq_evicted: IntCounter,
    pub processing_duration: Histogram,
    queue_size: IntGaugeVec,
    http_requests: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric name");
            registry
                .register(Box::new(c.clone()))
                .expect("metric registered once");
            c
        };
        let jobs_created = counter("jobs_created_total", "Jobs accepted by this process's API.");
        let jobs_processed = counter(
            "jobs_processed_total",
            "Jobs this process's workers completed successfully.",
        );
        let jobs_failed = counter(
            "jobs_failed_total",
            "Failed attempts on this process's workers (each retry's failure counts).",
        );
        let jobs_retried = counter(
            "jobs_retried_total",
            "Failed attempts this process scheduled for a retry.",
        );
        let jobs_dlq = counter(
            "jobs_dlq_total",
            "Jobs this process moved to the dead-letter queue.",
        );
        let jobs_recovered = counter(
            "jobs_recovered_total",
            "Jobs this process took back from worker processes that died.",
        );
        let jobs_dlq_evicted = counter(
            "jobs_dlq_evicted_total",
            "Oldest dead-letter jobs this process dropped because the DLQ reached DLQ_MAX_SIZE.",
        );
        let processing_duration = Histogram::with_opts(HistogramOpts::new(
            "job_processing_duration_seconds",
            "Time handlers spent on attempts, successful or not.",
        ))
        .expect("valid histogram");
        registry
            .register(Box::new(processing_duration.clone()))
            .expect("metric registered once");
        let queue_size = IntGaugeVec::new(
            Opts::new(
                "queue_size",
                "Jobs in each state, read from Redis at scrape time.",
            ),
            &["state"],
        )
        .expect("valid gauge");
        registry
            .register(Box::new(queue_size.clone()))
            .expect("metric registered once");
        // Labels are the route's pattern ("/jobs/{id}", not the id) or "unmatched", and the
        // status: a bounded set, whatever clients send.
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests this process answered, by route pattern and status; refused submissions show as 400, 401, 413 or 503 on route \"/jobs\" or \"/jobs/batch\".",
            ),
            &["route", "status"],
        )
        .expect("valid counter");
        registry
            .register(Box::new(http_requests.clone()))
            .expect("metric registered once");
        Metrics {
            registry,
            jobs_created,
            jobs_processed,
            jobs_failed,
            jobs_retried,
            jobs_dlq,
            jobs_recovered,
            jobs_dlq_evicted,
            processing_duration,
            queue_size,
            http_requests,
        }
    }

    /// Counts one answered request; `route` is a pattern of the route table or "unmatched".
    pub fn count_request(&self, route: &str, status: u16) {
        self.http_requests
            .with_label_values(&[route, &status.to_string()])
            .inc();
    }

    /// The text exposition; `stats` refreshes the queue gauges when Redis answered.
    pub fn render(&self, stats: Option<&Stats>) -> String {
        if let Some(s) = stats {
            for (state, n) in [
                ("pending", s.pending_jobs),
                ("scheduled", s.scheduled_jobs),
                ("running", s.running_jobs),
                ("dlq", s.dlq_size),
            ] {
                self.queue_size
                    .with_label_values(&[state])
                    .set(n.min(i64::MAX as u64) as i64);
            }
        }
        let mut buf = Vec::with_capacity(4096);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding of gathered metrics cannot fail");
        String::from_utf8(buf).expect("metric text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
