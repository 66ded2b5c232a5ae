//! The reads of [`Stores`] that span partitions: each asks every partition and merges the
//! answers (sums, a queue's largest latency, a type's worst breaker state). Listings go
//! partition by partition: the DLQ and the explorer show partition 0's entries first, then
//! partition 1's, each newest first, and a place past partition 0 names it (`<p>@…`).
//! With one partition each answer is partition 0's as it is, its order included.

use super::dlq_groups::DlqGroup;
use super::ends::JobEvent;
use super::explore::{Index, JobFilter, Place, Walked, WorkflowSummary};
use super::history::Minute;
use super::queues::{QueueInfo, TypeInfo};
use super::{Stats, StoreError, Stores};
use crate::job::Job;

impl Stores {
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
        if self.partitions()? == 1 {
            return self.parts[0].dlq_groups(fingerprint, upto);
        }
        let mut size = 0;
        let mut merged: Vec<DlqGroup> = Vec::new();
        for s in self.all()? {
            let (n, groups) = s.dlq_groups(fingerprint, upto)?;
            size += n;
            for g in groups {
                merge_into(
                    &mut merged,
                    g,
                    |g| &g.fingerprint,
                    |m, g| {
                        m.count += g.count;
                        m.first_seen = m.first_seen.min(g.first_seen);
                        if g.last_seen > m.last_seen {
                            m.last_seen = g.last_seen;
                            m.sample = g.sample;
                        }
                    },
                );
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
            let w = self.part(p).explore(
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
        if self.partitions()? == 1 {
            return self.parts[0].workflows(limit);
        }
        let mut all = Vec::new();
        for s in self.all()? {
            all.extend(s.workflows(limit)?);
        }
        all.sort_by_key(|w| std::cmp::Reverse(w.created_at));
        all.truncate(limit);
        Ok(all)
    }

    pub fn stats(&mut self) -> Result<Stats, StoreError> {
        if self.partitions()? == 1 {
            return self.parts[0].stats();
        }
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
        if self.partitions()? == 1 {
            return self.parts[0].queues(name);
        }
        let mut merged: Vec<QueueInfo> = Vec::new();
        for s in self.all()? {
            for q in s.queues(name)? {
                merge_into(
                    &mut merged,
                    q,
                    |q| &q.name,
                    |m, q| {
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
                    },
                );
            }
        }
        merged.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(merged)
    }

    pub fn types(&mut self, names: &[String]) -> Result<Vec<TypeInfo>, StoreError> {
        if self.partitions()? == 1 {
            return self.parts[0].types(names);
        }
        let rank = |s: &str| match s {
            "open" => 2,
            "half_open" => 1,
            _ => 0,
        };
        let mut merged: Vec<TypeInfo> = Vec::new();
        for s in self.all()? {
            for t in s.types(names)? {
                merge_into(
                    &mut merged,
                    t,
                    |t| &t.name,
                    |m, t| {
                        m.running += t.running;
                        m.parked += t.parked;
                        m.paused |= t.paused;
                        if rank(&t.breaker_state) > rank(&m.breaker_state) {
                            m.breaker_state = t.breaker_state;
                            m.breaker_until_us = t.breaker_until_us;
                        }
                    },
                );
            }
        }
        Ok(merged)
    }

    pub fn known_types(&mut self) -> Result<Vec<String>, StoreError> {
        if self.partitions()? == 1 {
            return self.parts[0].known_types();
        }
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
}

/// Adds `item` to `merged`: folded by `add` into the entry with the same `key` (a queue, a type
/// or a failure group that another partition also answered), or appended.
fn merge_into<T, K: PartialEq + ?Sized>(
    merged: &mut Vec<T>,
    item: T,
    key: impl Fn(&T) -> &K,
    add: impl FnOnce(&mut T, T),
) {
    match merged.iter_mut().position(|m| key(m) == key(&item)) {
        Some(i) => add(&mut merged[i], item),
        None => merged.push(item),
    }
}
