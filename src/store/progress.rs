//! Progress reports of running jobs: [`Store::set_progress`] writes the `progress` field of a job
//! record through `lua/progress.lua`, only while the job still runs under the caller's claim.

use super::scripts::scripts;
use super::{Store, StoreError};

impl Store {
    /// Sets the progress of job `id` (`percent` 0-100, clamped by the script too, and a short
    /// message) if it is `running` under claim number `claim`; false when it is not (finished,
    /// taken back, claimed again, expired or deleted), in which case nothing was written.
    pub fn set_progress(
        &mut self,
        id: &str,
        claim: &str,
        percent: u8,
        message: &str,
    ) -> Result<bool, StoreError> {
        let mut inv = scripts().progress.prepare_invoke();
        inv.key(self.keys.job(id))
            .arg(claim)
            .arg(percent.min(100))
            .arg(message);
        // Safe to send twice: a second write sets the same value (with a later `at`).
        let written: i64 = self.conn.run_idempotent(|c| inv.invoke(c))?;
        Ok(written == 1)
    }
}
