//! What the HTTP threads and the worker threads of one process share, read-only: the settings,
//! the job types, the one Redis backend, the metrics and the served API document. It sits below
//! `server/` and `worker/` (both use it) and above `store/`, `config/` and `metrics`.

use crate::config::Config;
use crate::metrics::Metrics;
use std::sync::Arc;

use crate::handler::Registry;
use crate::store::{Backend, Selection, StorePool};

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
