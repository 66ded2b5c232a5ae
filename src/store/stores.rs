//! [`Stores`]: one thread's handle on every partition (see `partitions.rs`). It places each
//! create in one partition, sends each call about a job to that job's partition, claims from
//! every partition in turn, and fans the deployment-wide reads out and merges them. With one
//! partition (the default) every call goes straight to partition 0's [`Store`].
//!
//! Merged reads go partition by partition: the DLQ and the explorer list partition 0's
//! entries first, then partition 1's, each newest first; their cursors name the partition.

use std::collections::{BTreeMap, HashMap};
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use super::dlq_groups::DlqGroup;
use super::ends::{CancelOutcome, JobEvent, Workflow};
use super::explore::{Index, JobFilter, Place, Walked, WorkflowSummary};
use super::history::Minute;
use super::jobs::{Acked, ClaimBatch, Claimed, FailMode, FailOutcome, Promoted, Requeued};
use super::liveness::Reaped;
use super::partitions::Layout;
use super::queues::{QueueInfo, Target as LimitTarget, TypeInfo};
use super::schedules::{Fired, Tick};
use super::{Backend, CreateOutcome, DlqSelect, Selection, Stats, Store, StoreError};
use crate::job::{Job, JobId, NewJob};

/// One thread's handle on every partition. Dereferences to partition 0's [`Store`], which
/// keeps what is not partitioned (schedules, history snapshots' list of processes, analytics).
pub struct Stores {
    parts: Vec<Store>,
    backend: Backend,
    read_timeout: Duration,
    layout: Option<Arc<Layout>>,
    /// The partition the next claim starts with.
    turn: usize,
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

    /// Partition `p`'s store.
    pub fn part(&mut self, p: usize) -> &mut Store {
        &mut self.parts[p]
    }

    /// Every partition's store, after reading the layout.
    fn all(&mut self) -> Result<&mut [Store], StoreError> {
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
    fn by_part<T>(
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
        match which {
            DlqSelect::One(id) => {
                let p = self.part_of(id)?;
                self.parts[p].dlq_retry(which)
            }
            DlqSelect::Ids(ids) => Ok(self
                .by_part(ids, |s, g| s.dlq_retry(DlqSelect::Ids(g)))?
                .into_iter()
                .flat_map(|(_, v)| v)
                .collect()),
            _ => {
                let mut out = Vec::new();
                for s in self.all()? {
                    out.extend(s.dlq_retry(which)?);
                }
                Ok(out)
            }
        }
    }

    pub fn dlq_delete(&mut self, which: DlqSelect) -> Result<u64, StoreError> {
        match which {
            DlqSelect::One(id) => {
                let p = self.part_of(id)?;
                self.parts[p].dlq_delete(which)
            }
            DlqSelect::Ids(ids) => Ok(self
                .by_part(ids, |s, g| s.dlq_delete(DlqSelect::Ids(g)))?
                .into_iter()
                .map(|(_, n)| n)
                .sum()),
            _ => {
                let mut n = 0;
                for s in self.all()? {
                    n += s.dlq_delete(which)?;
                }
                Ok(n)
            }
        }
    }

    /// A page of the DLQ: partition 0's entries first, then partition 1's, each newest first.
    pub fn dlq_page(&mut self, offset: u64, limit: u64) -> Result<(u64, Vec<Job>), StoreError> {
        let (mut skip, mut total, mut jobs) = (offset, 0, Vec::new());
        for s in self.all()? {
            let want = limit.saturating_sub(jobs.len() as u64);
            let (size, page) = s.dlq_page(skip, want)?;
            total += size;
            skip = skip.saturating_sub(size);
            jobs.extend(page);
        }
        Ok((total, jobs))
    }

    pub fn dlq_groups(
        &mut self,
        fingerprint: Option<&str>,
        upto: Option<i64>,
    ) -> Result<(u64, Vec<DlqGroup>), StoreError> {
        let mut size = 0;
        let mut merged: Vec<DlqGroup> = Vec::new();
        for s in self.all()? {
            let (n, groups) = s.dlq_groups(fingerprint, upto)?;
            size += n;
            for g in groups {
                match merged.iter_mut().find(|m| m.fingerprint == g.fingerprint) {
                    Some(m) => {
                        m.count += g.count;
                        m.first_seen = m.first_seen.min(g.first_seen);
                        if g.last_seen > m.last_seen {
                            m.last_seen = g.last_seen;
                            m.sample = g.sample;
                        }
                    }
                    None => merged.push(g),
                }
            }
        }
        merged.sort_by(|a, b| b.count.cmp(&a.count).then(b.last_seen.cmp(&a.last_seen)));
        Ok((size, merged))
    }

    pub fn cancel_matching(
        &mut self,
        filter: &JobFilter,
        dry_run: bool,
        most: usize,
    ) -> Result<(u64, bool, i64, Vec<JobEvent>), StoreError> {
        let (mut n, mut more, mut at, mut events) = (0, false, 0, Vec::new());
        for s in self.all()? {
            let (k, m, t, e) = s.cancel_matching(filter, dry_run, most)?;
            n += k;
            more |= m;
            at = at.max(t);
            events.extend(e);
        }
        Ok((n, more, at, events))
    }

    /// Walks `index` partition by partition (each newest first); a place of a partition other
    /// than 0 carries its number: `<p>@<first value>`.
    pub fn explore(
        &mut self,
        index: Index,
        filter: &JobFilter,
        from: Option<&Place>,
        want: usize,
        budget: usize,
    ) -> Result<Walked, StoreError> {
        let n = self.partitions()?;
        let (mut p, mut inner) = match from {
            None => (0, None),
            Some((a, b)) => match a.split_once('@') {
                Some((p, a)) => match p.parse::<usize>() {
                    Ok(p) if p < n => (
                        p,
                        (!a.is_empty() || !b.is_empty()).then(|| (a.to_string(), b.clone())),
                    ),
                    // A cursor of a partition that is no more: nothing left to walk.
                    _ => {
                        return Ok(Walked {
                            next: None,
                            seen: 0,
                            now_us: 0,
                            ids: Vec::new(),
                        })
                    }
                },
                None => (0, Some((a.clone(), b.clone()))),
            },
        };
        let mut walked = Walked {
            next: None,
            seen: 0,
            now_us: 0,
            ids: Vec::new(),
        };
        loop {
            let w = self.parts[p].explore(
                index,
                filter,
                inner.as_ref(),
                want - walked.ids.len(),
                budget.saturating_sub(walked.seen as usize).max(1),
            )?;
            walked.seen += w.seen;
            walked.now_us = walked.now_us.max(w.now_us);
            walked.ids.extend(w.ids);
            let at = |p: usize, (a, b): Place| match p {
                0 => (a, b),
                p => (format!("{p}@{a}"), b),
            };
            match w.next {
                Some(next) => {
                    walked.next = Some(at(p, next));
                    return Ok(walked);
                }
                None if p + 1 < n => {
                    p += 1;
                    inner = None;
                    if walked.ids.len() >= want || walked.seen as usize >= budget {
                        walked.next = Some(at(p, (String::new(), String::new())));
                        return Ok(walked);
                    }
                }
                None => return Ok(walked),
            }
        }
    }

    pub fn workflows(&mut self, limit: usize) -> Result<Vec<WorkflowSummary>, StoreError> {
        let mut all = Vec::new();
        for s in self.all()? {
            all.extend(s.workflows(limit)?);
        }
        all.sort_by_key(|w| std::cmp::Reverse(w.created_at));
        all.truncate(limit);
        Ok(all)
    }

    pub fn stats(&mut self) -> Result<Stats, StoreError> {
        let mut total = Stats::default();
        for s in self.all()? {
            let st = s.stats()?;
            total.total_jobs += st.total_jobs;
            total.pending_jobs += st.pending_jobs;
            total.running_jobs += st.running_jobs;
            total.completed_jobs += st.completed_jobs;
            total.failed_jobs += st.failed_jobs;
            total.dlq_size += st.dlq_size;
            total.scheduled_jobs += st.scheduled_jobs;
            total.waiting_jobs += st.waiting_jobs;
            total.cancelled_jobs += st.cancelled_jobs;
            total.expired_jobs += st.expired_jobs;
            for (name, q) in st.queues {
                let t = total.queues.entry(name).or_default();
                t.pending += q.pending;
                t.scheduled += q.scheduled;
                t.running += q.running;
                t.failed += q.failed;
                t.waiting += q.waiting;
                t.paused |= q.paused;
            }
        }
        Ok(total)
    }

    pub fn queues(&mut self, name: Option<&str>) -> Result<Vec<QueueInfo>, StoreError> {
        let mut merged: Vec<QueueInfo> = Vec::new();
        for s in self.all()? {
            for q in s.queues(name)? {
                match merged.iter_mut().find(|m| m.name == q.name) {
                    Some(m) => {
                        m.pending += q.pending;
                        m.scheduled += q.scheduled;
                        m.running += q.running;
                        m.failed += q.failed;
                        m.waiting += q.waiting;
                        m.paused |= q.paused;
                        m.latency_secs = m.latency_secs.max(q.latency_secs);
                        if m.limit_fields.is_empty() {
                            m.limit_fields = q.limit_fields;
                        }
                    }
                    None => merged.push(q),
                }
            }
        }
        merged.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(merged)
    }

    pub fn types(&mut self, names: &[String]) -> Result<Vec<TypeInfo>, StoreError> {
        let rank = |s: &str| match s {
            "open" => 2,
            "half_open" | "half" => 1,
            _ => 0,
        };
        let mut merged: Vec<TypeInfo> = Vec::new();
        for s in self.all()? {
            for t in s.types(names)? {
                match merged.iter_mut().find(|m| m.name == t.name) {
                    Some(m) => {
                        m.running += t.running;
                        m.parked += t.parked;
                        m.paused |= t.paused;
                        if rank(&t.breaker_state) > rank(&m.breaker_state) {
                            m.breaker_state = t.breaker_state;
                            m.breaker_until_us = t.breaker_until_us;
                        }
                    }
                    None => merged.push(t),
                }
            }
        }
        Ok(merged)
    }

    pub fn known_types(&mut self) -> Result<Vec<String>, StoreError> {
        let mut all = Vec::new();
        for s in self.all()? {
            all.extend(s.known_types()?);
        }
        all.sort();
        all.dedup();
        Ok(all)
    }

    pub fn history(
        &mut self,
        minutes: u64,
        queue: Option<&str>,
    ) -> Result<Vec<Minute>, StoreError> {
        let mut parts = Vec::new();
        for s in self.all()? {
            parts.push(s.history(minutes, queue)?);
        }
        let mut total = parts.remove(0);
        for other in parts {
            for m in &mut total {
                let Some(o) = other.iter().find(|o| o.minute == m.minute) else {
                    continue;
                };
                match (&mut m.counts, &o.counts) {
                    (Some(mine), Some(theirs)) => {
                        for (name, v) in mine.iter_mut() {
                            if let Some((_, w)) = theirs.iter().find(|(n, _)| n == name) {
                                *v += w;
                            }
                        }
                    }
                    (None, Some(theirs)) => m.counts = Some(theirs.clone()),
                    _ => {}
                }
            }
        }
        Ok(total)
    }

    pub fn snapshot_history(&mut self) -> Result<(i64, bool), StoreError> {
        let mut first = None;
        for s in self.all()? {
            let r = s.snapshot_history()?;
            first.get_or_insert(r);
        }
        Ok(first.unwrap_or_default())
    }

    pub fn declare_queues(&mut self, queues: &[String]) -> Result<(), StoreError> {
        for s in self.all()? {
            s.declare_queues(queues)?;
        }
        Ok(())
    }

    pub fn set_paused(&mut self, target: LimitTarget, paused: bool) -> Result<(), StoreError> {
        for s in self.all()? {
            s.set_paused(target, paused)?;
        }
        Ok(())
    }

    pub fn set_limits(
        &mut self,
        target: LimitTarget,
        all: &[&str],
        set: &[(&str, String)],
    ) -> Result<(), StoreError> {
        for s in self.all()? {
            s.set_limits(target, all, set)?;
        }
        Ok(())
    }

    /// Claims up to `max` jobs from the partitions in turn, starting after the one that last
    /// gave a full batch (or failed); each claimed job knows its partition. A partition that
    /// fails after others gave jobs ends the batch with those: they are in this process's
    /// running lists already.
    pub fn claim(
        &mut self,
        worker: &str,
        max: usize,
        sel: &Selection,
    ) -> Result<Option<ClaimBatch>, StoreError> {
        let n = self.partitions()?;
        if n == 1 {
            return self.parts[0].claim(worker, max, sel);
        }
        let mut all = ClaimBatch::default();
        for k in 0..n {
            let p = (self.turn + k) % n;
            let mut b = match self.parts[p].claim(worker, max - all.jobs.len(), sel) {
                Ok(Some(b)) => b,
                failed => {
                    self.turn = (p + 1) % n;
                    if all.jobs.is_empty() {
                        return failed;
                    }
                    break;
                }
            };
            b.jobs.iter_mut().for_each(|j| j.part = p);
            all.now_us = all.now_us.max(b.now_us);
            all.next_start_us = match (all.next_start_us, b.next_start_us) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            all.events.extend(b.events);
            all.jobs.extend(b.jobs);
            if all.jobs.len() >= max {
                self.turn = (p + 1) % n;
                break;
            }
        }
        Ok(Some(all))
    }

    pub fn complete(
        &mut self,
        worker: &str,
        job: &Claimed,
        result: Option<&str>,
        ttl_secs: u64,
        claim_next: bool,
        sel: &Selection,
    ) -> Result<Acked<bool>, StoreError> {
        let mut a =
            self.parts[job.part].complete(worker, job, result, ttl_secs, claim_next, sel)?;
        if let Some(next) = &mut a.next {
            next.part = job.part;
        }
        Ok(a)
    }

    #[allow(clippy::too_many_arguments)]
    pub fn fail(
        &mut self,
        worker: &str,
        job: &Claimed,
        error: &str,
        delay_ms: u64,
        mode: FailMode,
        limits: (u64, u32),
        claim_next: bool,
        sel: &Selection,
    ) -> Result<Acked<FailOutcome>, StoreError> {
        let mut a = self.parts[job.part]
            .fail(worker, job, error, delay_ms, mode, limits, claim_next, sel)?;
        if let Some(next) = &mut a.next {
            next.part = job.part;
        }
        Ok(a)
    }

    pub fn promote(&mut self, limit: usize) -> Result<Promoted, StoreError> {
        let mut total: Option<Promoted> = None;
        for s in self.all()? {
            let p = s.promote(limit)?;
            total = Some(match total {
                None => p,
                Some(t) => Promoted {
                    moved: t.moved + p.moved,
                    next_due_us: match (t.next_due_us, p.next_due_us) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    },
                    now_us: t.now_us,
                },
            });
        }
        total.ok_or_else(|| StoreError::redis("no partition"))
    }

    pub fn requeue_all(&mut self, worker: &str) -> Result<Requeued, StoreError> {
        let mut all = Requeued::default();
        for s in self.all()? {
            let r = s.requeue_all(worker)?;
            all.ids.extend(r.ids);
            all.events.extend(r.events);
        }
        Ok(all)
    }

    pub fn requeue(&mut self, worker: &str, ids: &[String]) -> Result<Requeued, StoreError> {
        let mut all = Requeued::default();
        for (_, r) in self.by_part(ids, |s, g| s.requeue(worker, g))? {
            all.ids.extend(r.ids);
            all.events.extend(r.events);
        }
        Ok(all)
    }

    pub fn held(&mut self, worker: &str) -> Result<Vec<String>, StoreError> {
        let mut all = Vec::new();
        for s in self.all()? {
            all.extend(s.held(worker)?);
        }
        Ok(all)
    }

    /// The beat goes to every partition: each one's claims check it, and each one's reaper.
    pub fn heartbeat(
        &mut self,
        worker: &str,
        ttl: Duration,
        info: &str,
        serves: Option<&[String]>,
    ) -> Result<(), StoreError> {
        for s in self.all()? {
            s.heartbeat(worker, ttl, info, serves)?;
        }
        Ok(())
    }

    pub fn deregister(&mut self, worker: &str) -> Result<(), StoreError> {
        for s in self.all()? {
            s.deregister(worker)?;
        }
        Ok(())
    }

    /// The processes any partition knows: one whose reaping failed on one partition is
    /// still listed there, and reaped again.
    pub fn workers(&mut self) -> Result<Vec<String>, StoreError> {
        let mut all = Vec::new();
        for s in self.all()? {
            all.extend(s.workers()?);
        }
        all.sort();
        all.dedup();
        Ok(all)
    }

    pub fn reap(
        &mut self,
        worker: &str,
        error: &str,
        dlq_cap: u64,
    ) -> Result<Option<Reaped>, StoreError> {
        let mut all: Option<Reaped> = None;
        for s in self.all()? {
            if let Some(r) = s.reap(worker, error, dlq_cap)? {
                let t = all.get_or_insert_with(Reaped::default);
                t.requeued.extend(r.requeued);
                t.dead.extend(r.dead);
                t.evicted.extend(r.evicted);
                t.placement.extend(r.placement);
                t.events.extend(r.events);
            }
        }
        Ok(all)
    }
}
