//! What the HTTP threads and the worker threads of one process share, read-only: the settings,
//! the job types, the one Redis backend, the metrics and the served API document. It sits below
//! `server/` and `worker/` (both use it) and above `store/`, `config/` and `metrics`.

use crate::config::Config;
use crate::metrics::Metrics;
use std::sync::Arc;

use crate::handler::Registry;
use crate::store::{Backend, EventKind, JobEvent, Selection, StorePool};

/// What every thread of a process shares, read-only.
pub struct Shared {
    pub config: Config,
    pub registry: Registry,
    pub backend: Backend,
    /// Redis connections for the handlers that need Redis, opened from `backend`.
    pub store_pool: Arc<StorePool>,
    pub metrics: Metrics,
    /// The document served at `GET /openapi.json`, built at start-up from the registry.
    pub openapi: String,
    /// The queues this process's workers claim from (QUEUES, QUEUE_ORDER).
    pub selection: Selection,
}

/// Logs and counts the events a store call reported: jobs cancelled (with the stage they were
/// in), expired before they could start, or made ready when their parents finished.
pub fn note_job_events(shared: &Shared, events: &[JobEvent]) {
    let m = &shared.metrics;
    for e in events {
        let q = m.queue_label(&e.queue);
        match e.kind {
            EventKind::Cancelled => {
                m.jobs_cancelled
                    .with_label_values(&[q, &e.job_type, &e.detail])
                    .inc();
                log::info!("job {} ({}) cancelled while {}", e.id, e.job_type, e.detail);
            }
            EventKind::Expired => {
                m.jobs_expired.with_label_values(&[q, &e.job_type]).inc();
                log::warn!(
                    "job {} ({}) expired: its start deadline passed before it could start; it will not run",
                    e.id,
                    e.job_type
                );
            }
            EventKind::Ready => {
                m.jobs_unblocked.with_label_values(&[q, &e.job_type]).inc();
                log::info!("job {} ({}) ready: {}", e.id, e.job_type, e.detail);
            }
        }
    }
}
