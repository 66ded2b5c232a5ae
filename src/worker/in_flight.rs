//! What this process holds, as the heartbeat sees it: the job each worker runs, the jobs in
//! transit from a claim's reply to a worker, and a counter per claiming thread. With these the
//! heartbeat tells a job that a lost claim reply stranded in the running list from one this
//! process really has, even across a stall of the whole process.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::handler::Cancellation;

/// The jobs this process holds, as the heartbeat must see them to tell a job that a lost claim
/// reply stranded in the running list from one this process really has.
///
/// A claimed job is held from the moment its claim's reply is read: first "in transit" (from
/// the fetcher or the committer through the channel to a worker, or from an acknowledgement
/// that claimed it to the same worker's next run), then in its worker's slot until its outcome
/// is stored, or, with group commit, "being acknowledged" from its worker's slot until the
/// committer has stored its outcome. The gap
/// before the reply is read is covered by a claim counter per claiming thread, odd while a
/// claiming call is under way: see [`Snapshot::progressed_since`].
pub struct InFlight {
    slots: Vec<Mutex<Option<(Started, Cancellation)>>>,
    transit: Mutex<HashSet<String>>,
    /// Jobs in transit that were cancelled through the API before a worker started them: their
    /// worker cancels them as it starts them (see [`InFlight::cancel_job`]).
    doomed: Mutex<HashSet<String>>,
    /// Finished jobs handed to the committer whose outcome is not stored yet.
    acking: Mutex<HashSet<String>>,
    /// One per worker (by slot), then the fetcher's, then each committer's.
    claims: Vec<AtomicU64>,
}

/// A job a worker runs now, as the heartbeat reports it (`GET /workers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub id: String,
    pub kind: String,
    pub queue: String,
    /// When this worker started it, by this host's clock (ms since the epoch): the read side
    /// prefers the record's `started_at`, from Redis's clock.
    pub at_ms: i64,
}

impl Started {
    /// A job starting now.
    pub fn now(id: &str, kind: &str, queue: &str) -> Started {
        Started {
            id: id.to_string(),
            kind: kind.to_string(),
            queue: queue.to_string(),
            at_ms: chrono::Utc::now().timestamp_millis(),
        }
    }
}

/// What the heartbeat reads of [`InFlight`]: the ids held, and each claiming thread's counter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub held: HashSet<String>,
    pub claims: Vec<u64>,
}

impl Snapshot {
    /// Whether every claiming call that was under way at `earlier` has ended since. Only then
    /// can a job missing from both snapshots be stranded: had its claim still been in flight,
    /// its reply (and so the job) may yet reach a worker. Time alone cannot tell: a process
    /// stalled as a whole (a VM pause) takes two beats in a row with its claim reply unread.
    pub fn progressed_since(&self, earlier: &Snapshot) -> bool {
        earlier
            .claims
            .iter()
            .zip(&self.claims)
            .all(|(then, now)| then % 2 == 0 || then != now)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl InFlight {
    pub(super) fn new(workers: usize, committers: usize) -> Arc<InFlight> {
        Arc::new(InFlight {
            slots: (0..workers).map(|_| Mutex::new(None)).collect(),
            transit: Mutex::new(HashSet::new()),
            doomed: Mutex::new(HashSet::new()),
            acking: Mutex::new(HashSet::new()),
            claims: (0..workers + 1 + committers)
                .map(|_| AtomicU64::new(0))
                .collect(),
        })
    }

    /// The claim counter index of the fetcher (workers use their slot).
    pub(super) fn fetcher(&self) -> usize {
        self.slots.len()
    }

    /// The claim counter index of committer `k`.
    pub(super) fn committer(&self, k: usize) -> usize {
        self.slots.len() + 1 + k
    }

    /// Worker `slot` hands its finished job `id` to the committer: held as being acknowledged
    /// (first, so a snapshot never misses it), its slot free.
    pub(super) fn acking(&self, slot: usize, id: &str) {
        lock(&self.acking).insert(id.to_string());
        *lock(&self.slots[slot]) = None;
    }

    /// The committer is done with job `id`: its outcome is stored, or given up on.
    pub(super) fn acked(&self, id: &str) {
        lock(&self.acking).remove(id);
    }

    /// Runs a call that may claim jobs, for claiming thread `who`; the ids `claimed` finds in
    /// its answer are in transit before the call counts as ended.
    pub(super) fn claiming<T>(
        &self,
        who: usize,
        call: impl FnOnce() -> T,
        claimed: impl FnOnce(&T) -> Vec<String>,
    ) -> T {
        self.claims[who].fetch_add(1, Ordering::SeqCst);
        let answer = call();
        let ids = claimed(&answer);
        if !ids.is_empty() {
            lock(&self.transit).extend(ids);
        }
        self.claims[who].fetch_add(1, Ordering::SeqCst);
        answer
    }

    /// A worker starts (`Some`) or has recorded (`None`) a job; a job it starts leaves transit.
    pub(super) fn set(&self, slot: usize, job: Option<(Started, Cancellation)>) {
        let started = job.as_ref().map(|(s, c)| (s.id.clone(), c.clone()));
        *lock(&self.slots[slot]) = job;
        if let Some((id, cancel)) = started {
            // Leaves transit only after the slot holds it, so `cancel_job` finds it in one or
            // the other; a cancellation that came while it was in transit applies now.
            lock(&self.transit).remove(&id);
            if lock(&self.doomed).remove(&id) {
                cancel.cancel_job();
            }
        }
    }

    /// A job in transit that no worker will run (handed back to pending, or lost with a closed
    /// channel).
    pub(super) fn unclaim(&self, id: &str) {
        lock(&self.transit).remove(id);
        lock(&self.doomed).remove(id);
    }

    /// Asks the handler running job `id` to stop because the job was cancelled through the API
    /// ([`Cancellation::cancel_job`]). True when this process holds the job: running it now, or
    /// about to (in transit to a worker, which then starts it already cancelled). False when it
    /// holds no such job.
    pub fn cancel_job(&self, id: &str) -> bool {
        if self.cancel_running(id) {
            return true;
        }
        // Both locks: a worker starting the job moves it from transit to its slot (slot first),
        // so it is either still in transit here, or in a slot, found by the second look.
        let transit = lock(&self.transit);
        if transit.contains(id) {
            lock(&self.doomed).insert(id.to_string());
            return true;
        }
        drop(transit);
        self.cancel_running(id)
    }

    fn cancel_running(&self, id: &str) -> bool {
        let mut found = false;
        self.each(|(held, c)| {
            if held.id == id {
                c.cancel_job();
                found = true;
            }
        });
        found
    }

    /// The ids of the jobs the workers run now (not those in transit).
    pub fn running_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        self.each(|(job, _)| ids.push(job.id.clone()));
        ids
    }

    /// The jobs the workers run now, for the heartbeat (at most one per worker).
    pub fn running(&self) -> Vec<Started> {
        let mut jobs = Vec::new();
        self.each(|(job, _)| jobs.push(job.clone()));
        jobs
    }

    fn each(&self, mut f: impl FnMut(&(Started, Cancellation))) {
        for slot in &self.slots {
            if let Some(job) = &*lock(slot) {
                f(job);
            }
        }
    }

    /// How many workers hold a job now.
    pub fn busy(&self) -> usize {
        let mut n = 0;
        self.each(|_| n += 1);
        n
    }

    /// The ids held now (running, in transit to a worker, or being acknowledged), then the
    /// claim counters. Read
    /// after the running list, so a job claimed before that read is either held here or its
    /// claiming call shows as under way.
    pub fn snapshot(&self) -> Snapshot {
        let mut held = lock(&self.transit).clone();
        held.extend(lock(&self.acking).iter().cloned());
        self.each(|(job, _)| {
            held.insert(job.id.clone());
        });
        let claims = self
            .claims
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .collect();
        Snapshot { held, claims }
    }

    /// Asks every running handler to stop. Called once the drain has put their jobs back to
    /// pending: their outcome can no longer be recorded, so they may as well stop.
    pub fn cancel_all(&self) {
        self.each(|(_, c)| c.cancel());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_job_reaches_the_running_job_only() {
        let held = InFlight::new(2, 0);
        let (a, b) = (Cancellation::new(None), Cancellation::new(None));
        held.set(0, Some((Started::now("a", "t", "q"), a.clone())));
        held.set(1, Some((Started::now("b", "t", "q"), b.clone())));
        let mut ids = held.running_ids();
        ids.sort();
        assert_eq!(ids, ["a", "b"]);
        assert!(held.cancel_job("a"));
        assert!(a.job_cancelled() && !b.is_cancelled());
        assert!(!held.cancel_job("nope"));
        held.cancel_all();
        assert!(b.is_cancelled() && !b.job_cancelled());
        held.set(0, None);
        assert_eq!(held.running_ids(), ["b"]);
        assert!(
            !held.cancel_job("a"),
            "a job whose outcome is stored is not held"
        );
    }

    #[test]
    fn a_job_cancelled_in_transit_starts_cancelled() {
        let held = InFlight::new(1, 0);
        held.claiming(0, || (), |_| vec!["t".to_string(), "u".to_string()]);
        assert!(held.running_ids().is_empty());
        assert!(held.cancel_job("t"));
        let c = Cancellation::new(None);
        held.set(0, Some((Started::now("t", "t", "q"), c.clone())));
        assert!(c.job_cancelled());
        // A job handed back unstarted forgets the request: a later claim runs normally.
        assert!(held.cancel_job("u"));
        held.unclaim("u");
        let c = Cancellation::new(None);
        held.set(0, Some((Started::now("u", "t", "q"), c.clone())));
        assert!(!c.is_cancelled());
    }
}
