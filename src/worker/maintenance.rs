//! The periodic threads every process runs besides its workers: the scheduler that promotes due
//! delayed jobs and retries and makes the schedules' due ticks (`cron.rs`), the heartbeat that says this process is alive, and the reaper that
//! returns the jobs of dead processes to pending.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::context::{note_job_events, Shared};
use crate::shutdown::{spawn_periodic, RetryDelay, Shutdown};
use crate::store::{RedisState, StoreError, Stores};
use crate::worker::{BeatInfo, InFlight, Snapshot};
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

/// Promotes due scheduled jobs into pending and makes the schedules' due ticks; sleeps until the
/// next is due (at most 200 ms).
pub fn spawn_scheduler(
    shared: &Arc<Shared>,
    shutdown: &Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    let mut store = shared.backend.open();
    let mut retry = RetryDelay::default();
    let mut ticker = super::cron::Ticker::default();
    let shared = shared.clone();
    // The minute (Redis's clock) whose history snapshot this process has seen taken.
    let mut snapshot_minute = 0i64;
    // The partitions Redis listed when this process last said it serves fewer.
    let mut told_partitions = 0;
    spawn_periodic("jobq-scheduler", shutdown, move || {
        let promoted = match store.promote(PROMOTE_BATCH) {
            Ok(p) => {
                retry.reset();
                // Once a minute each process offers the minute's history snapshot; the first
                // takes it (see lua/history.lua).
                if p.now_us / 60_000_000 != snapshot_minute {
                    match store.snapshot_history() {
                        Ok((minute, _)) => snapshot_minute = minute,
                        Err(e) => log_unexpected("scheduler", &e),
                    }
                    told_partitions = tell_new_partitions(&mut store, told_partitions);
                }
                if p.moved as usize == PROMOTE_BATCH {
                    Duration::ZERO
                } else {
                    match p.next_due_us {
                        Some(due) if due > p.now_us => {
                            Duration::from_micros((due - p.now_us) as u64).min(SCHEDULER_MAX_SLEEP)
                        }
                        Some(_) => Duration::ZERO,
                        None => SCHEDULER_MAX_SLEEP,
                    }
                }
            }
            Err(e) => {
                log_unexpected("scheduler", &e);
                return retry.next_delay();
            }
        };
        // The schedules' ticks: the sleep also ends at the next one, so a tick is made on time
        // rather than up to 200 ms late.
        match ticker.run(&shared, &mut store) {
            Ok(Some(tick)) => promoted.min(tick),
            Ok(None) => promoted,
            Err(e) => {
                log_unexpected("scheduler", &e);
                retry.next_delay()
            }
        }
    })
}

/// Once a minute: warns, once per count, when another process has added partitions
/// (QUEUE_PARTITIONS) that this one does not serve until it restarts. Returns the count told.
fn tell_new_partitions(store: &mut Stores, told: usize) -> usize {
    match (store.partitions_listed(), store.partitions()) {
        (Ok(listed), Ok(served)) if listed > served && listed != told => {
            log::warn!(
                "Redis lists {listed} partitions (QUEUE_PARTITIONS) and this process serves the {served} it found at start-up: restart it to claim from and report on the new ones"
            );
            listed
        }
        (Err(e), _) | (_, Err(e)) => {
            log_unexpected("scheduler", &e);
            told
        }
        _ => told,
    }
}

/// Keeps this process's heartbeat alive, and returns to pending any job in this process's
/// running list that no worker holds.
///
/// Such a job can only come from a claim whose reply Redis sent but this process never read (a
/// read timeout): the job moved into the running list, yet no worker got it. It is put back as
/// it was, the attempt not counted, once it was seen unheld on two beats in a row *and* every
/// claiming call that was under way at the first has ended (see `Snapshot::progressed_since`):
/// a reply still unread after a process-wide stall is not mistaken for a lost one.
pub fn spawn_heartbeat(
    shared: &Arc<Shared>,
    worker_id: &str,
    info: BeatInfo,
    in_flight: Arc<InFlight>,
    shutdown: &Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    let mut store = shared.backend.open();
    let live = Liveness::from_recovery_secs(shared.config.recovery_secs);
    let id = worker_id.to_string();
    let serves = shared.selection.named();
    let mut suspects = Suspects::default();
    let shared = shared.clone();
    spawn_periodic("jobq-heartbeat", shutdown, move || {
        let info = info.json(Some(&in_flight));
        if let Err(e) = store.heartbeat(&id, live.ttl, &info, serves.as_deref()) {
            log_unexpected("heartbeat", &e);
            // Try again soon: a missed beat while Redis restarts must not outlive the TTL.
            return Duration::from_millis(200);
        }
        // The running list first, then what the process holds: see `InFlight::snapshot`.
        match store.held(&id) {
            Ok(listed) => {
                let stranded = suspects.observe(listed, in_flight.snapshot());
                if !stranded.is_empty() {
                    match store.requeue(&id, &stranded) {
                        Ok(back) => {
                            note_job_events(&shared, &back.events);
                            for job in back.ids {
                                log::warn!(
                                    "job {job} returned to pending: it was claimed but a lost Redis reply kept it from any worker"
                                );
                            }
                        }
                        Err(e) => log_unexpected("heartbeat", &e),
                    }
                }
            }
            Err(e) => log_unexpected("heartbeat", &e),
        }
        live.beat
    })
}

/// How often a process with running jobs asks Redis whether one of them has been cancelled.
const CANCEL_WATCH: Duration = Duration::from_millis(250);

/// Tells a running job's handler when its cancellation has been asked for (`POST
/// /jobs/{id}/cancel` marks it in Redis; only this process knows the thread that runs it).
/// Asks Redis only while this process runs jobs: one pipelined `SISMEMBER` per running job.
pub fn spawn_cancel_watch(
    shared: &Arc<Shared>,
    in_flight: Arc<InFlight>,
    stop: &Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    let mut store = shared.backend.open();
    // Jobs already told, so each is logged once.
    let mut told: HashSet<String> = HashSet::new();
    spawn_periodic("jobq-cancel-watch", stop, move || {
        let running = in_flight.running_ids();
        told.retain(|id| running.contains(id));
        if running.is_empty() {
            return CANCEL_WATCH;
        }
        match store.cancel_requested(&running) {
            Ok(ids) => {
                for id in ids {
                    if in_flight.cancel_job(&id) && told.insert(id.clone()) {
                        log::info!("job {id} is being stopped: its cancellation was asked for");
                    }
                }
            }
            Err(e) => log_unexpected("cancel watch", &e),
        }
        CANCEL_WATCH
    })
}

/// Jobs in the running list that this process did not hold at the last beat, with what it
/// held then.
#[derive(Debug, Default)]
pub struct Suspects {
    ids: HashSet<String>,
    seen: Snapshot,
}

impl Suspects {
    /// Takes one beat's view (the running list, then the process's snapshot) and returns the
    /// jobs now known to be stranded.
    pub fn observe(&mut self, listed: Vec<String>, now: Snapshot) -> Vec<String> {
        let unheld: HashSet<String> = listed
            .into_iter()
            .filter(|j| !now.held.contains(j))
            .collect();
        if !now.progressed_since(&self.seen) {
            // A claim under way at the last beat is still unanswered (the process stalled, or
            // Redis is slow): judge nothing yet, keep the earlier view.
            self.ids.retain(|j| unheld.contains(j));
            return Vec::new();
        }
        let stranded = unheld.intersection(&self.ids).cloned().collect();
        self.ids = unheld;
        self.seen = now;
        stranded
    }
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
    let mut grace = Grace::new(live.ttl);
    spawn_periodic("jobq-reaper", shutdown, move || {
        // After a Redis restart (or a long stall) every heartbeat restored from disk may have
        // expired while its process is alive: judge no one until live processes have had one
        // TTL, after Redis answers again, to beat.
        let seen = store.redis_state();
        if let Err(e) = &seen {
            log_unexpected("reaper", e);
        }
        if !grace.allows(seen.ok().as_ref(), Instant::now()) {
            return live.reap_every;
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
                Ok(Some(r)) if r.requeued.is_empty() && r.dead.is_empty() => {
                    note_job_events(&shared, &r.events);
                }
                Ok(Some(r)) => {
                    note_job_events(&shared, &r.events);
                    let n = r.requeued.len() + r.dead.len();
                    let m = &shared.metrics;
                    // Each recovered job is a failed attempt, retried or buried like any other.
                    m.jobs_recovered.inc_by(n as u64);
                    for (i, (queue, kind)) in r.placement.iter().enumerate() {
                        let series = m.job_series(queue, kind);
                        series.failed.inc();
                        if i < r.requeued.len() {
                            series.retried.inc();
                        } else {
                            series.dlq.inc();
                        }
                    }
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

/// When the reaper may judge a heartbeat: only once the Redis it reads has been seen answering,
/// as the same server (`run_id`) and not loading its data, for at least one heartbeat TTL.
///
/// Redis keeps expiry times as absolute times, so every heartbeat key restored from disk may
/// be expired by the time Redis answers, however long the load took; Redis's own uptime counts
/// the load too. Measured from this reaper's first good look instead, after a restart, a
/// failover, a load, an outage or a stall longer than a command timeout (all seen as an error
/// or a new `run_id`) every live process has had a full TTL to beat again. The cost: a process
/// that has just started reaps nothing for one TTL.
#[derive(Debug)]
pub struct Grace {
    ttl: Duration,
    run_id: Option<String>,
    since: Instant,
}

impl Grace {
    pub fn new(ttl: Duration) -> Grace {
        Grace {
            ttl,
            run_id: None,
            since: Instant::now(),
        }
    }

    /// Takes what the reaper saw of Redis now (None: an error) and says whether it may reap.
    pub fn allows(&mut self, seen: Option<&RedisState>, now: Instant) -> bool {
        let Some(seen) = seen.filter(|s| !s.loading) else {
            self.run_id = None;
            return false;
        };
        if self.run_id.as_deref() != Some(seen.run_id.as_str()) {
            self.run_id = Some(seen.run_id.clone());
            self.since = now;
        }
        // The same `run_id` all along means the same server process, so Redis's own uptime is
        // at least this long too.
        now.duration_since(self.since) >= self.ttl
    }
}

/// Outages are logged once by `Health`; anything else is a bug worth reporting.
fn log_unexpected(who: &str, e: &StoreError) {
    if !e.is_unavailable() {
        log::error!("{who}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(held: &[&str], claims: &[u64]) -> Snapshot {
        Snapshot {
            held: held.iter().map(|s| s.to_string()).collect(),
            claims: claims.to_vec(),
        }
    }

    fn list(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_job_unheld_on_two_beats_with_no_claim_under_way_is_stranded() {
        let mut s = Suspects::default();
        assert!(s
            .observe(list(&["a", "b"]), snap(&["a"], &[0, 2]))
            .is_empty());
        // b's claim reply was lost: the call ended (2 → 4) without handing b to anyone.
        assert_eq!(
            s.observe(list(&["a", "b"]), snap(&["a"], &[0, 4])),
            list(&["b"])
        );
    }

    #[test]
    fn a_claim_reply_unread_across_a_stall_is_not_taken_for_a_lost_one() {
        let mut s = Suspects::default();
        // The fetcher (last counter) is in a claim call (odd) whose reply holds c.
        assert!(s.observe(list(&["c"]), snap(&[], &[0, 3])).is_empty());
        // The process stalled; the next beat comes first, the claim still unanswered.
        assert!(s.observe(list(&["c"]), snap(&[], &[0, 3])).is_empty());
        assert!(s.observe(list(&["c"]), snap(&[], &[0, 3])).is_empty());
        // The reply is read: c is in transit, then running. Never requeued.
        assert!(s.observe(list(&["c"]), snap(&["c"], &[0, 4])).is_empty());
        assert!(s.observe(list(&["c"]), snap(&["c"], &[0, 4])).is_empty());
    }

    #[test]
    fn a_job_in_transit_counts_as_held_and_a_finished_one_leaves_the_list() {
        let mut s = Suspects::default();
        assert!(s.observe(list(&["d"]), snap(&["d"], &[1, 0])).is_empty());
        // d ran and was acknowledged between the two reads of the next beat.
        assert!(s.observe(list(&["d"]), snap(&[], &[2, 0])).is_empty());
        assert!(s.observe(list(&[]), snap(&[], &[2, 0])).is_empty());
    }

    fn state(run_id: &str, loading: bool) -> RedisState {
        RedisState {
            run_id: run_id.into(),
            loading,
        }
    }

    #[test]
    fn the_reaper_waits_a_ttl_after_first_seeing_redis() {
        let ttl = Duration::from_secs(2);
        let t0 = Instant::now();
        let mut g = Grace::new(ttl);
        // Redis has been up for a day, but this reaper has only just looked.
        assert!(!g.allows(Some(&state("r1", false)), t0));
        assert!(!g.allows(Some(&state("r1", false)), t0 + ttl / 2));
        assert!(g.allows(Some(&state("r1", false)), t0 + ttl));
    }

    #[test]
    fn a_long_load_is_not_counted_as_grace() {
        let ttl = Duration::from_secs(2);
        let t0 = Instant::now();
        let mut g = Grace::new(ttl);
        assert!(!g.allows(Some(&state("r1", false)), t0));
        assert!(g.allows(Some(&state("r1", false)), t0 + ttl));
        // Redis restarts and loads its AOF for 30 s: errors, then `loading`.
        assert!(!g.allows(None, t0 + ttl * 2));
        assert!(!g.allows(Some(&state("r2", true)), t0 + ttl * 12));
        // Loaded, with an uptime well past the TTL: heartbeats restored from disk are all
        // expired, so live processes get a full TTL from now to beat again.
        let loaded = t0 + ttl * 16;
        assert!(!g.allows(Some(&state("r2", false)), loaded));
        assert!(!g.allows(Some(&state("r2", false)), loaded + ttl / 2));
        assert!(g.allows(Some(&state("r2", false)), loaded + ttl));
    }

    #[test]
    fn a_new_server_at_the_same_address_restarts_the_grace() {
        let ttl = Duration::from_secs(2);
        let t0 = Instant::now();
        let mut g = Grace::new(ttl);
        g.allows(Some(&state("r1", false)), t0);
        assert!(g.allows(Some(&state("r1", false)), t0 + ttl * 5));
        // A failover: another server, up for long, answers without any error in between.
        assert!(!g.allows(Some(&state("r9", false)), t0 + ttl * 6));
        assert!(g.allows(Some(&state("r9", false)), t0 + ttl * 7));
    }

    #[test]
    fn default_recovery_fits_in_fifteen_seconds() {
        let l = Liveness::from_recovery_secs(15);
        assert_eq!(l.ttl, Duration::from_secs(10));
        assert_eq!(l.beat, Duration::from_secs(2));
        assert_eq!(l.reap_every, Duration::from_millis(1500));
        assert!(l.ttl + l.reap_every < Duration::from_secs(15));
    }
}
