//! What the HTTP threads and the worker threads of one process share, read-only: the settings,
//! the job types, the one Redis backend, the metrics and the served API document. It sits below
//! `server/` and `worker/` (both use it) and above `store/`, `config/` and `metrics`.

use crate::config::Config;
use crate::metrics::Metrics;
use std::sync::Arc;

use crate::handler::{is_valid_type_name, Registry};
use crate::job::{NewJob, NewJobRequest};
use crate::store::{Backend, EventKind, JobEvent, Selection, StorePool};

/// What every thread of a process shares, read-only.
pub struct Shared {
    pub config: Config,
    pub registry: Registry,
    pub backend: Backend,
    /// Redis connections for the handlers that need Redis, opened from `backend`.
    pub store_pool: Arc<StorePool>,
    /// Shared with each job's context, for handlers that count events of their own.
    pub metrics: Arc<Metrics>,
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

impl Shared {
    /// Validates one submission as `POST /jobs` does: the type's name, then against this
    /// process's job types and the handler's own payload checks.
    pub fn validate_job(&self, req: NewJobRequest) -> Result<NewJob, String> {
        if let Some(kind) = &req.kind {
            if !is_valid_type_name(kind) {
                return Err(format!(
                    "\"type\" must be 1-64 characters of A-Z a-z 0-9 _ - . : (got {} characters)",
                    kind.chars().count()
                ));
            }
        }
        let registry = &self.registry;
        req.validate(
            self.config.max_attempts,
            &registry.types(),
            |kind, payload| registry.get(kind).map_or(Ok(()), |h| h.validate(payload)),
        )
    }

    /// The job a tick of `spec` makes (a new id each call), validated as `POST /jobs` validates
    /// a submission: with `check_type`, against this process's job types and the handler's own
    /// payload checks (a `PUT /schedules/{name}`, SCHEDULES_FILE at start-up, a trigger); without,
    /// only the fields' own rules, so a process that does not run the type still fires the
    /// schedule (its job waits for a process that does).
    pub fn schedule_job(
        &self,
        spec: &crate::config::ScheduleSpec,
        check_type: bool,
    ) -> Result<NewJob, String> {
        let req: NewJobRequest =
            serde_json::from_value(serde_json::Value::Object(spec.job.clone()))
                .map_err(|e| e.to_string())?;
        let kind = req.kind.clone().unwrap_or_default();
        if !is_valid_type_name(&kind) {
            return Err(format!(
                "\"type\" must be 1-64 characters of A-Z a-z 0-9 _ - . : (got {kind:?})"
            ));
        }
        if check_type {
            self.validate_job(req)
        } else {
            req.validate(self.config.max_attempts, &[kind.as_str()], |_, _| Ok(()))
        }
    }
}
