//! [`StorePool`]: Redis connections for job handlers (analytics, report). A worker thread takes
//! an idle [`Stores`], uses it and puts it back, so handlers never share a connection with each
//! other or with the worker's own store, and do not connect per job.

use std::fmt;
use std::sync::{Arc, Mutex};

use super::{Backend, StoreError, Stores};

/// Idle connections a [`StorePool`] keeps.
const MAX_IDLE: usize = 64;

/// Connections opened from the process's one [`Backend`], kept for reuse.
pub struct StorePool {
    backend: Backend,
    idle: Mutex<Vec<Stores>>,
}

impl fmt::Debug for StorePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorePool").finish_non_exhaustive()
    }
}

impl StorePool {
    pub fn new(backend: Backend) -> Arc<StorePool> {
        Arc::new(StorePool {
            backend,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Runs `f` on an idle connection (or a new one), then returns it to the pool. A connection
    /// whose socket broke reconnects by itself on its next use.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut Stores) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let taken = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut store = taken.unwrap_or_else(|| self.backend.open());
        let result = f(&mut store);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(store);
        }
        result
    }
}
