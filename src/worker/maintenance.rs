//! The periodic threads every process runs besides its workers: the scheduler that promotes due
//! delayed jobs and retries, the heartbeat that says this process is alive, and the reaper that
//! returns the jobs of dead processes to pending.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::app::Shared;
use crate::shutdown::{spawn_periodic, RetryDelay, Shutdown};
use crate::store::StoreError;
use crate::worker::InFlight;
use std::collections::HashSet;

/// Most scheduled jobs promoted per script call; more are taken by an immediate next call.
const PROMOTE_BATCH: usize = 500;
/// Longest the scheduler sleeps: bounds how late a job scheduled by another process starts.
const SCHEDULER_MAX_SLEEP: Duration = Duration::from_millis(200);

/// The error a recovered job carries.
pub const DIED_ERROR: &str = "worker process died while running this job";

/// Timings derived from RECOVERY_SECS: a heartbeat lives for two thirds of it and is refreshed
/// five times in that span, and the reaper looks every tenth, so a dead process's jobs are back
/// in pending within about 0.8 × RECOVERY_SECS while a live one can miss four beats in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    pub ttl: Duration,
    pub beat: Duration,
    pub reap_every: Duration,
}

impl Liveness {
    pub fn from_recovery_secs(secs: u64) -> Liveness {
        let total = Duration::from_secs(secs);
        let ttl = total * 2 / 3;
        Liveness {
            ttl,
            beat: ttl / 5,
            reap_every: total / 10,
        }
    }
}

/// Promotes due scheduled jobs into pending; sleeps until the next is due (at most 200 ms).
pub fn spawn_scheduler(
    shared: &Arc<Shared>,
    shutdown: &Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    let mut store = shared.backend.open();
    let mut retry = RetryDelay::default();
    spawn_periodic("jobq-scheduler", shutdown, move || {
        match store.promote(PROMOTE_BATCH) {
            Ok(p) => {
                retry.reset();
                if p.moved as usize == PROMOTE_BATCH {
                    return Duration::ZERO;
                }
                match p.next_due_us {
                    Some(due) if due > p.now_us => {
                        Duration::from_micros((due - p.now_us) as u64).min(SCHEDULER_MAX_SLEEP)
                    }
                    Some(_) => Duration::ZERO,
                    None => SCHEDULER_MAX_SLEEP,
                }
            }
            Err(e) => {
                log_unexpected("scheduler", &e);
                retry.next_delay()
            }
        }
    })
}

/// Keeps this process's heartbeat alive, and returns to pending any job in this process's
/// running list that no worker holds.
///
/// Such a job can only come from a claim whose reply Redis sent but this process never read (a
/// read timeout): the job moved into the running list, yet no worker got it. Seen on two beats
/// in a row (a job handed from fetcher to worker is in transit for microseconds, not seconds),
/// it is put back as it was, the attempt not counted.
pub fn spawn_heartbeat(
    shared: &Arc<Shared>,
    worker_id: &str,
    in_flight: Arc<InFlight>,
    shutdown: &Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    let mut store = shared.backend.open();
    let live = Liveness::from_recovery_secs(shared.config.recovery_secs);
    let id = worker_id.to_string();
    let info = serde_json::json!({
        "pid": std::process::id(),
        "workers": shared.config.num_workers,
        "started_at": chrono::Utc::now().to_rfc3339(),
    })
    .to_string();
    let mut suspects: HashSet<String> = HashSet::new();
    spawn_periodic("jobq-heartbeat", shutdown, move || {
        if let Err(e) = store.heartbeat(&id, live.ttl, &info) {
            log_unexpected("heartbeat", &e);
            // Try again soon: a missed beat while Redis restarts must not outlive the TTL.
            return Duration::from_millis(200);
        }
        match store.held(&id) {
            Ok(held) => {
                let running = in_flight.ids();
                let unheld: HashSet<String> =
                    held.into_iter().filter(|j| !running.contains(j)).collect();
                let stranded: Vec<String> = unheld.intersection(&suspects).cloned().collect();
                if !stranded.is_empty() {
                    match store.requeue(&id, &stranded) {
                        Ok(ids) => {
                            for job in ids {
                                log::warn!(
                                    "job {job} returned to pending: it was claimed but a lost Redis reply kept it from any worker"
                                );
                            }
                        }
                        Err(e) => log_unexpected("heartbeat", &e),
                    }
                }
                suspects = unheld;
            }
            Err(e) => log_unexpected("heartbeat", &e),
        }
        live.beat
    })
}

/// Looks for worker processes whose heartbeat has expired and recovers their jobs.
pub fn spawn_reaper(
    shared: &Arc<Shared>,
    own_id: Option<String>,
    shutdown: &Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    let mut store = shared.backend.open();
    let live = Liveness::from_recovery_secs(shared.config.recovery_secs);
    let shared = shared.clone();
    let stop = shutdown.clone();
    spawn_periodic("jobq-reaper", shutdown, move || {
        // After a Redis restart every heartbeat restored from disk may already have expired;
        // give live processes one TTL to beat again before judging anyone dead.
        match store.uptime_secs() {
            Ok(Some(up)) if Duration::from_secs(up) < live.ttl => return live.reap_every,
            Ok(_) => {}
            Err(e) => {
                log_unexpected("reaper", &e);
                return live.reap_every;
            }
        }
        let workers = match store.workers() {
            Ok(w) => w,
            Err(e) => {
                log_unexpected("reaper", &e);
                return live.reap_every;
            }
        };
        for w in workers.iter().filter(|w| Some(*w) != own_id.as_ref()) {
            if stop.is_triggered() {
                break;
            }
            match store.reap(w, DIED_ERROR, shared.config.dlq_max_size) {
                // Another process's reaper got there first, or the process held nothing.
                Ok(Some(r)) if r.requeued.is_empty() && r.dead.is_empty() => {}
                Ok(Some(r)) => {
                    let n = r.requeued.len() + r.dead.len();
                    let m = &shared.metrics;
                    // Each recovered job is a failed attempt, retried or buried like any other.
                    m.jobs_recovered.inc_by(n as u64);
                    m.jobs_failed.inc_by(n as u64);
                    m.jobs_retried.inc_by(r.requeued.len() as u64);
                    m.jobs_dlq.inc_by(r.dead.len() as u64);
                    log::warn!(
                        "worker process {w} stopped beating; recovered {} job(s): {} back to pending, {} to the DLQ",
                        n,
                        r.requeued.len(),
                        r.dead.len()
                    );
                    for id in &r.requeued {
                        log::warn!("job {id} returned to pending: {DIED_ERROR}");
                    }
                    for id in &r.dead {
                        log::error!("job {id} moved to the DLQ: {DIED_ERROR}, attempts spent");
                    }
                    super::note_evicted(&shared, &r.evicted);
                }
                Ok(None) => {}
                Err(e) => log_unexpected("reaper", &e),
            }
        }
        live.reap_every
    })
}

/// Outages are logged once by `Health`; anything else is a bug worth reporting.
fn log_unexpected(who: &str, e: &StoreError) {
    if !matches!(e, StoreError::Unavailable(_)) {
        log::error!("{who}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_recovery_fits_in_fifteen_seconds() {
        let l = Liveness::from_recovery_secs(15);
        assert_eq!(l.ttl, Duration::from_secs(10));
        assert_eq!(l.beat, Duration::from_secs(2));
        assert_eq!(l.reap_every, Duration::from_millis(1500));
        assert!(l.ttl + l.reap_every < Duration::from_secs(15));
    }
}
