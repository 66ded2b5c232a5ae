//! [`Stores`]: one thread's handle on every partition (see `partitions.rs`). This file places
//! each create in one partition and sends each call about a job to that job's partition;
//! `worker_calls.rs` has a worker process's calls (claims in turn, outcomes home, beats
//! everywhere) and `fan_out.rs` the reads that merge every partition's answer. With one
//! partition (the default) every call goes straight to partition 0's [`Store`].

use std::collections::{BTreeMap, HashMap};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ends::{CancelOutcome, JobEvent, Workflow};
use super::partitions::Layout;
use super::queues::Target as LimitTarget;
use super::schedules::{Fired, Tick};
use super::{Backend, CreateOutcome, DlqSelect, Store, StoreError};
use crate::job::{Job, JobId, NewJob};

/// One thread's handle on every partition. Dereferences to partition 0's [`Store`], which
/// keeps what is kept once (schedules, analytics, the heartbeats `GET /workers` shows, Redis's
/// state and health). So a [`Store`] method that touches jobs, queues or types must have a
/// `Stores` method of the same name (here, `worker_calls.rs` or `fan_out.rs`): without one,
/// a call through `Stores` would reach partition 0 alone.
pub struct Stores {
    pub(super) parts: Vec<Store>,
    backend: Backend,
    read_timeout: Duration,
    layout: Option<Arc<Layout>>,
    /// The partition the next claim starts with.
    pub(super) turn: usize,
    /// Per partition: until when claims pass it over, after it failed (see `claim_in`).
    pub(super) resting: Vec<Option<Instant>>,
}

impl Deref for Stores {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.parts[0]
    }
}

impl DerefMut for Stores {
    fn deref_mut(&mut self) -> &mut Store {
        &mut self.parts[0]
    }
}

/// Splits `items` by the partition each belongs to, keeping each one's index.
fn split<T: Clone>(
    items: &[T],
    part: impl Fn(&T) -> usize,
) -> BTreeMap<usize, (Vec<usize>, Vec<T>)> {
    let mut by: BTreeMap<usize, (Vec<usize>, Vec<T>)> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let e = by.entry(part(item)).or_default();
        e.0.push(i);
        e.1.push(item.clone());
    }
    by
}

impl Stores {
    pub(super) fn new(backend: Backend, read_timeout: Duration) -> Stores {
        let first = backend.open_part(0, read_timeout);
        let mut s = Stores {
            parts: vec![first],
            backend,
            read_timeout,
            layout: None,
            turn: 0,
            resting: vec![None],
        };
        if let Some(l) = s.backend.known_layout() {
            s.adopt(l);
        }
        s
    }

    fn adopt(&mut self, l: Arc<Layout>) {
        for p in self.parts.len()..l.len() {
            self.parts
                .push(self.backend.open_part(p, self.read_timeout));
            self.resting.push(None);
        }
        self.layout = Some(l);
    }

    /// The layout, read from Redis by the first call of the process that needs it.
    pub fn layout(&mut self) -> Result<Arc<Layout>, StoreError> {
        if let Some(l) = &self.layout {
            return Ok(l.clone());
        }
        let l = self.backend.layout(&mut self.parts[0])?;
        self.adopt(l.clone());
        Ok(l)
    }

    /// How many partitions there are (reading the layout if need be).
    pub fn partitions(&mut self) -> Result<usize, StoreError> {
        Ok(self.layout()?.len())
    }

    /// Runs `f` on every partition, going on past one that fails (a master failing over must
    /// not hold up the others); the answers of those that answered, or the first error when
    /// none did.
    pub(super) fn each<T>(
        &mut self,
        mut f: impl FnMut(&mut Store) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        let mut failed = None;
        for s in self.all()? {
            match f(s) {
                Ok(v) => out.push(v),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        match failed {
            Some(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }

    /// Runs `f` on every partition, going on past one that fails; the first error once all
    /// were tried. For changes every partition must have (a beat, a pause): the caller retries.
    pub(super) fn every(
        &mut self,
        mut f: impl FnMut(&mut Store) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut failed = None;
        for s in self.all()? {
            if let Err(e) = f(s) {
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Partition `p`'s store.
    pub fn part(&mut self, p: usize) -> &mut Store {
        &mut self.parts[p]
    }

    /// Every partition's store, after reading the layout.
    pub(super) fn all(&mut self) -> Result<&mut [Store], StoreError> {
        self.layout()?;
        Ok(&mut self.parts)
    }

    fn part_of(&mut self, id: &str) -> Result<usize, StoreError> {
        Ok(self.layout()?.part_of_id(id))
    }

    /// Runs `f` on `id`'s partition; when that is not partition 0 and finds nothing, on
    /// partition 0 too (a job created before the partitions, whose id happens to begin with a
    /// tag).
    fn find<T>(
        &mut self,
        id: &str,
        mut f: impl FnMut(&mut Store) -> Result<Option<T>, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let p = self.part_of(id)?;
        match f(&mut self.parts[p])? {
            None if p != 0 => f(&mut self.parts[0]),
            found => Ok(found),
        }
    }

    /// Runs `f` on each partition with the ids of `ids` it holds; returns the answers with the
    /// indexes (into `ids`) they are for.
    pub(super) fn by_part<T>(
        &mut self,
        ids: &[String],
        mut f: impl FnMut(&mut Store, &[String]) -> Result<T, StoreError>,
    ) -> Result<Vec<(Vec<usize>, T)>, StoreError> {
        let l = self.layout()?;
        if l.len() == 1 {
            return Ok(vec![(
                (0..ids.len()).collect(),
                f(&mut self.parts[0], ids)?,
            )]);
        }
        let mut out = Vec::new();
        for (p, (idx, group)) in split(ids, |id| l.part_of_id(id)) {
            out.push((idx, f(&mut self.parts[p], &group)?));
        }
        Ok(out)
    }

    /// Gives `jobs` (created together) ids of the partition they will be created in. A
    /// workflow's nodes naming each other as parents keep doing so.
    pub fn place(&mut self, jobs: &mut [NewJob]) -> Result<(), StoreError> {
        let l = self.layout()?;
        if l.len() == 1 {
            return Ok(());
        }
        let p = l.pick(jobs);
        let renamed: HashMap<String, String> = jobs
            .iter()
            .map(|j| (j.id.to_string(), l.id_in(&j.id, p)))
            .collect();
        for j in jobs.iter_mut() {
            j.id = JobId::from_stored(renamed[j.id.as_str()].clone());
            for parent in &mut j.parents {
                if let Some(new) = renamed.get(parent.as_str()) {
                    *parent = new.clone();
                }
            }
        }
        Ok(())
    }

    /// A new id in the partition of `id` (a workflow's, beside its nodes).
    pub fn sibling_id(&mut self, id: &str) -> Result<String, StoreError> {
        let l = self.layout()?;
        Ok(l.id_in(&JobId::new_random(), l.part_of_id(id)))
    }

    /// The partition of `jobs`, placed together by [`Stores::place`]; or why they cannot be
    /// created together: a parent in another partition.
    fn part_for(&mut self, jobs: &[NewJob]) -> Result<Result<usize, CreateOutcome>, StoreError> {
        let l = self.layout()?;
        let p = jobs.first().map_or(0, |j| l.part_of_id(&j.id));
        for j in jobs {
            if let Some(parent) = j.parents.iter().find(|x| l.part_of_id(x) != p) {
                return Ok(Err(CreateOutcome::ParentElsewhere {
                    id: j.id.to_string(),
                    parent: parent.clone(),
                }));
            }
        }
        Ok(Ok(p))
    }

    pub fn create(
        &mut self,
        jobs: &[NewJob],
        max_queue: u64,
        idempotency_ttl_secs: u64,
    ) -> Result<CreateOutcome, StoreError> {
        match self.part_for(jobs)? {
            Ok(p) => self.parts[p].create(jobs, max_queue, idempotency_ttl_secs),
            Err(refused) => Ok(refused),
        }
    }

    pub fn create_workflow(
        &mut self,
        id: &str,
        nodes: &str,
        jobs: &[NewJob],
        max_queue: u64,
    ) -> Result<CreateOutcome, StoreError> {
        match self.part_for(jobs)? {
            Ok(p) => self.parts[p].create_workflow(id, nodes, jobs, max_queue),
            Err(refused) => Ok(refused),
        }
    }

    /// Each job on its own, as [`Store::create_each`], each in the partition its id names.
    pub fn create_each(
        &mut self,
        jobs: &[NewJob],
        max_queue: u64,
        idempotency_ttl_secs: u64,
    ) -> Vec<Result<CreateOutcome, StoreError>> {
        let l = match self.layout() {
            Ok(l) => l,
            Err(e) => return jobs.iter().map(|_| Err(e.clone())).collect(),
        };
        if l.len() == 1 {
            return self.parts[0].create_each(jobs, max_queue, idempotency_ttl_secs);
        }
        let mut out: Vec<Option<Result<CreateOutcome, StoreError>>> = vec![None; jobs.len()];
        for (p, (idx, group)) in split(jobs, |j| l.part_of_id(&j.id)) {
            // A parent elsewhere: refused alone, before the round trip.
            let (ok, refused): (Vec<_>, Vec<_>) = idx
                .iter()
                .zip(group)
                .partition(|(_, j)| j.parents.iter().all(|x| l.part_of_id(x) == p));
            for (&i, j) in refused {
                let parent = j.parents.iter().find(|x| l.part_of_id(x) != p);
                out[i] = Some(Ok(CreateOutcome::ParentElsewhere {
                    id: j.id.to_string(),
                    parent: parent.cloned().unwrap_or_default(),
                }));
            }
            let (idx, group): (Vec<usize>, Vec<NewJob>) =
                ok.into_iter().map(|(&i, j)| (i, j)).unzip();
            let answers = self.parts[p].create_each(&group, max_queue, idempotency_ttl_secs);
            for (i, a) in idx.into_iter().zip(answers) {
                out[i] = Some(a);
            }
        }
        out.into_iter()
            .map(|o| o.unwrap_or_else(|| Err(StoreError::redis("no answer for a job"))))
            .collect()
    }

    /// A schedule's tick, in partition 0 where the schedules are.
    pub fn fire(&mut self, tick: &Tick, job: &NewJob, max_queue: u64) -> Result<Fired, StoreError> {
        let job = self.at_home(job)?;
        self.parts[0].fire(tick, &job, max_queue)
    }

    pub fn trigger(
        &mut self,
        name: &str,
        job: &NewJob,
        max_queue: u64,
    ) -> Result<Fired, StoreError> {
        let job = self.at_home(job)?;
        self.parts[0].trigger(name, &job, max_queue)
    }

    /// `job` with an id of partition 0.
    fn at_home(&mut self, job: &NewJob) -> Result<NewJob, StoreError> {
        let l = self.layout()?;
        let mut job = job.clone();
        if l.len() > 1 {
            job.id = JobId::from_stored(l.id_in(&job.id, 0));
        }
        Ok(job)
    }

    pub fn job(&mut self, id: &str) -> Result<Option<Job>, StoreError> {
        self.find(id, |s| s.job(id))
    }

    pub fn dlq_job(&mut self, id: &str) -> Result<Option<Job>, StoreError> {
        self.find(id, |s| s.dlq_job(id))
    }

    pub fn workflow(&mut self, id: &str) -> Result<Option<Workflow>, StoreError> {
        self.find(id, |s| s.workflow(id))
    }

    pub fn set_progress(
        &mut self,
        id: &str,
        claim: &str,
        percent: u8,
        message: &str,
    ) -> Result<bool, StoreError> {
        let p = self.part_of(id)?;
        self.parts[p].set_progress(id, claim, percent, message)
    }

    pub fn cancel(
        &mut self,
        ids: &[String],
    ) -> Result<(Vec<CancelOutcome>, Vec<JobEvent>), StoreError> {
        let answers = self.by_part(ids, |s, g| s.cancel(g))?;
        let mut outcomes = vec![CancelOutcome::Missing; ids.len()];
        let mut events = Vec::new();
        for (idx, (o, e)) in answers {
            for (i, o) in idx.into_iter().zip(o) {
                outcomes[i] = o;
            }
            events.extend(e);
        }
        Ok((outcomes, events))
    }

    pub fn cancel_requested(&mut self, ids: &[String]) -> Result<Vec<String>, StoreError> {
        let answers = self.by_part(ids, |s, g| s.cancel_requested(g))?;
        Ok(answers.into_iter().flat_map(|(_, v)| v).collect())
    }

    pub fn parent_results(
        &mut self,
        ids: &[String],
    ) -> Result<serde_json::Map<String, serde_json::Value>, StoreError> {
        let answers = self.by_part(ids, |s, g| s.parent_results(g))?;
        Ok(answers.into_iter().flat_map(|(_, m)| m).collect())
    }

    /// The records of `ids`, in their order; those gone are left out.
    pub fn jobs(&mut self, ids: &[String]) -> Result<Vec<Job>, StoreError> {
        let answers = self.by_part(ids, |s, g| s.jobs(g))?;
        if answers.len() == 1 {
            return Ok(answers.into_iter().flat_map(|(_, v)| v).collect());
        }
        let mut found: HashMap<String, Job> = answers
            .into_iter()
            .flat_map(|(_, v)| v)
            .map(|j| (j.id.to_string(), j))
            .collect();
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    pub fn delete_ended(&mut self, ids: &[String]) -> Result<Vec<(String, String)>, StoreError> {
        let answers = self.by_part(ids, |s, g| s.delete_ended(g))?;
        let mut found: HashMap<String, String> = answers.into_iter().flat_map(|(_, v)| v).collect();
        Ok(ids
            .iter()
            .filter_map(|id| found.remove(id).map(|s| (id.clone(), s)))
            .collect())
    }

    pub fn dlq_retry(&mut self, which: DlqSelect) -> Result<Vec<String>, StoreError> {
        Ok(self.on_dlq(which, |s, w| s.dlq_retry(w))?.concat())
    }

    pub fn dlq_delete(&mut self, which: DlqSelect) -> Result<u64, StoreError> {
        Ok(self
            .on_dlq(which, |s, w| s.dlq_delete(w))?
            .into_iter()
            .sum())
    }

    /// Runs a DLQ action where its selection lives: one job's partition, each partition with
    /// the ids it holds, or every partition (a type, a group, all); one answer per call.
    fn on_dlq<T>(
        &mut self,
        which: DlqSelect,
        mut f: impl FnMut(&mut Store, DlqSelect) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        match which {
            DlqSelect::One(id) => {
                let p = self.part_of(id)?;
                Ok(vec![f(&mut self.parts[p], which)?])
            }
            DlqSelect::Ids(ids) => Ok(self
                .by_part(ids, |s, g| f(s, DlqSelect::Ids(g)))?
                .into_iter()
                .map(|(_, v)| v)
                .collect()),
            _ => self.all()?.iter_mut().map(|s| f(s, which)).collect(),
        }
    }

    pub fn declare_queues(&mut self, queues: &[String]) -> Result<(), StoreError> {
        self.every(|s| s.declare_queues(queues))
    }

    /// In every partition; one that fails is reported once the others have it, and the same
    /// call again sets it there too.
    pub fn set_paused(&mut self, target: LimitTarget, paused: bool) -> Result<(), StoreError> {
        self.every(|s| s.set_paused(target, paused))
    }

    pub fn set_limits(
        &mut self,
        target: LimitTarget,
        all: &[&str],
        set: &[(&str, String)],
    ) -> Result<(), StoreError> {
        self.every(|s| s.set_limits(target, all, set))
    }
}
