//! Partitions (`QUEUE_PARTITIONS`): several complete jobq keyspaces, each under a hash tag of
//! its own, so that on a Redis Cluster each sits in its own slot and the partitions spread over
//! the masters. This file owns where they are ([`Layout`]: their tags, kept in Redis, and how
//! they were placed) and where a job goes; `stores.rs` sends each call to its partition. With
//! one partition (the default) everything is partition 0, whose keys are REDIS_PREFIX's.
//!
//! A job lives wholly in one partition: its record, its queue's lists and counts, its
//! idempotency and unique keys, the running list of the process holding it. So every state
//! change stays one script on one slot, exactly as with one partition. What a partition does
//! not share with the others is documented in docs/SCALING.md: order within a queue, limits and
//! a batch's atomicity hold per partition.
//!
//! The partitions' tags are kept in Redis (`P:partitions` in partition 0), so every process
//! agrees on them; a partition's job ids begin with its tag's four hex digits, so an id alone
//! says where its job is.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::conn::Target;
use super::keys::Keys;
use super::{Backend, Store, StoreError};
use crate::config::QueuePartitions;
use crate::job::{JobId, NewJob};

/// Where the partitions are, as every process of a deployment sees them.
pub struct Layout {
    parts: Vec<PartSpec>,
    /// Tag → partition, for partitions 1 and on.
    by_tag: HashMap<u16, usize>,
    config: QueuePartitions,
    /// Round-robin counter for creates without a key.
    turn: AtomicUsize,
}

/// One partition: its keys and how to reach the node that holds them.
pub(super) struct PartSpec {
    pub target: Arc<Target>,
    pub keys: Arc<Keys>,
}

impl Layout {
    /// Partition `p`'s connector and keys.
    pub(super) fn spec(&self, p: usize) -> (Arc<Target>, Arc<Keys>) {
        (self.parts[p].target.clone(), self.parts[p].keys.clone())
    }

    /// The partitions' prefixes, for the start-up log.
    pub(super) fn describe(&self) -> String {
        self.parts
            .iter()
            .map(|p| p.keys.prefix().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// How many partitions there are.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// The partition holding job (or workflow) `id`: the one whose tag its first four hex
    /// digits are, else 0.
    pub fn part_of_id(&self, id: &str) -> usize {
        if self.parts.len() == 1 {
            return 0;
        }
        id.get(..4)
            .and_then(|h| u16::from_str_radix(h, 16).ok())
            .and_then(|t| self.by_tag.get(&t).copied())
            .unwrap_or(0)
    }

    /// The partitions `queue` is created into: `count` of them from `first` on (wrapping).
    fn queue_parts(&self, queue: &str) -> (usize, usize) {
        let n = self.parts.len();
        let count = (self.config.of(queue) as usize).clamp(1, n);
        let first = if count == n {
            0
        } else {
            (fnv1a(queue.as_bytes()) % n as u64) as usize
        };
        (first, count)
    }

    /// The partition for `jobs`, created together (a batch, a workflow, one submission): that
    /// of the first parent outside them; else picked within the first job's queue's
    /// partitions by the first unique or idempotency key (so a repeat meets its first), else
    /// in turn.
    pub(super) fn pick(&self, jobs: &[NewJob]) -> usize {
        let ours = |p: &String| jobs.iter().any(|j| j.id.as_str() == p);
        if let Some(parent) = jobs.iter().flat_map(|j| &j.parents).find(|p| !ours(p)) {
            return self.part_of_id(parent);
        }
        let Some(first) = jobs.first() else { return 0 };
        let (start, count) = self.queue_parts(&first.queue);
        let key = jobs
            .iter()
            .find_map(|j| j.unique_key.as_deref().or(j.idempotency_key.as_deref()));
        let j = match key {
            Some(k) => (fnv1a(k.as_bytes()) % count as u64) as usize,
            None => self.turn.fetch_add(1, Ordering::Relaxed) % count,
        };
        (start + j) % self.parts.len()
    }

    /// `id` made to name partition `p`: its first four hex digits replaced by the partition's
    /// tag, or, for partition 0, a new random id if they happen to be some partition's tag.
    pub(super) fn id_in(&self, id: &str, p: usize) -> String {
        if p == 0 {
            let mut id = id.to_string();
            while self.part_of_id(&id) != 0 {
                id = JobId::new_random().to_string();
            }
            return id;
        }
        let tag = self
            .by_tag
            .iter()
            .find(|(_, &i)| i == p)
            .map(|(t, _)| *t)
            .unwrap_or_default();
        format!("{tag:04x}{}", id.get(4..).unwrap_or_default())
    }
}

/// FNV-1a, 64 bits: a stable hash (the same in every process and release) for placing queues
/// and keys.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The key prefix of the partition with `tag`: the tag's four hex digits added to the
/// prefix's hash tag, `{jobq}` → `{jobq~0a1f}`.
pub fn partition_prefix(base: &str, tag: u16) -> String {
    match base
        .find('{')
        .and_then(|o| base[o..].find('}').map(|c| o + c))
    {
        Some(close) => format!("{}~{tag:04x}{}", &base[..close], &base[close..]),
        None => format!("{base}{{~{tag:04x}}}"),
    }
}

/// Builds the layout from the partition tags read from Redis.
pub(super) fn layout(backend: &Backend, tags: &[u16], config: &QueuePartitions) -> Layout {
    let (target, keys) = backend.base();
    let mut parts = vec![PartSpec {
        target: target.clone(),
        keys: keys.clone(),
    }];
    let mut by_tag = HashMap::new();
    for &tag in tags {
        let prefix = partition_prefix(keys.prefix(), tag);
        let target = match &**target {
            #[cfg(feature = "cluster")]
            Target::Found(f) => Arc::new(Target::Found(f.for_prefix(&prefix))),
            _ => target.clone(),
        };
        by_tag.insert(tag, parts.len());
        parts.push(PartSpec {
            target,
            keys: Arc::new(Keys::new(&prefix)),
        });
    }
    Layout {
        parts,
        by_tag,
        config: config.clone(),
        turn: AtomicUsize::new(0),
    }
}

/// Picks `more` new tags for a deployment whose partitions now have `have` (partition 0's
/// prefix `base` aside): on a Redis Cluster (`slots`: its `CLUSTER SLOTS` answer) each lands
/// on the master that holds the fewest partitions; elsewhere they are simply the next unused.
pub(super) fn choose_tags(
    base: &str,
    have: &[u16],
    more: usize,
    slots: Option<&redis::Value>,
) -> Vec<u16> {
    let mut taken: Vec<u16> = have.to_vec();
    let mut out = Vec::with_capacity(more);
    #[cfg(feature = "cluster")]
    if let Some(slots) = slots {
        use super::topology::{key_slot, slot_master};
        let master_of = |prefix: &str| slot_master(slots, key_slot(prefix.as_bytes()));
        // Every master, by the first slot it serves.
        let mut masters: Vec<String> = Vec::new();
        for start in (0u16..16384).step_by(64) {
            if let Some(m) = slot_master(slots, start) {
                if !masters.contains(&m) {
                    masters.push(m);
                }
            }
        }
        let mut load: Vec<usize> = vec![0; masters.len()];
        let count = |m: Option<String>, load: &mut Vec<usize>| {
            if let Some(i) = m.and_then(|m| masters.iter().position(|x| *x == m)) {
                load[i] += 1;
            }
        };
        count(master_of(base), &mut load);
        for &t in have {
            count(master_of(&partition_prefix(base, t)), &mut load);
        }
        if !masters.is_empty() {
            for _ in 0..more {
                let target = (0..masters.len()).min_by_key(|&i| load[i]).unwrap_or(0);
                let found = (1..=u16::MAX).find(|t| {
                    !taken.contains(t)
                        && master_of(&partition_prefix(base, *t)).as_deref()
                            == Some(masters[target].as_str())
                });
                let Some(t) = found else { break };
                load[target] += 1;
                taken.push(t);
                out.push(t);
            }
            if out.len() == more {
                return out;
            }
        }
    }
    #[cfg(not(feature = "cluster"))]
    let _ = (base, slots);
    let mut t = 1u16;
    while out.len() < more && t < u16::MAX {
        if !taken.contains(&t) {
            taken.push(t);
            out.push(t);
        }
        t += 1;
    }
    out
}

/// Extends the list only if no other process has since: `ARGV[1]` is the length read.
const EXTEND: &str = "if redis.call('LLEN', KEYS[1]) == tonumber(ARGV[1]) then \
    for i = 2, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end end \
    return redis.call('LRANGE', KEYS[1], 0, -1)";

impl Store {
    /// The partition tags kept in Redis (`P:partitions`), after adding (with `choose`, given
    /// those there, how many more, and a Cluster's `CLUSTER SLOTS`) enough for `wanted`
    /// partitions besides partition 0.
    pub(super) fn partition_tags(
        &mut self,
        wanted: usize,
        choose: impl Fn(&[u16], usize, Option<&redis::Value>) -> Vec<u16>,
    ) -> Result<Vec<u16>, StoreError> {
        let key = self.keys.partitions.clone();
        let parse = |list: Vec<String>| -> Result<Vec<u16>, StoreError> {
            list.iter()
                .map(|t| {
                    u16::from_str_radix(t, 16).map_err(|_| {
                        StoreError::corrupt(format!("{key} holds {t:?}, not a partition tag"))
                    })
                })
                .collect()
        };
        let mut have = parse(
            self.conn
                .run_idempotent(|c| redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query(c))?,
        )?;
        // Another process may extend the list between the read and the write: read again.
        for _ in 0..3 {
            if have.len() >= wanted {
                break;
            }
            // Not a Cluster (or one that will not say): the tags need no placing.
            let slots: Option<redis::Value> = self
                .conn
                .run_idempotent(|c| redis::cmd("CLUSTER").arg("SLOTS").query(c))
                .ok();
            let new = choose(&have, wanted - have.len(), slots.as_ref());
            let script = redis::Script::new(EXTEND);
            let mut inv = script.prepare_invoke();
            inv.key(&key).arg(have.len());
            for t in &new {
                inv.arg(format!("{t:04x}"));
            }
            let list: Vec<String> = self.conn.run(|c| inv.invoke(c))?;
            have = parse(list)?;
        }
        Ok(have)
    }

    /// How many partitions Redis lists now (partition 0's list, so through partition 0's
    /// store): more than `Stores::partitions` once another process has added some since this
    /// one read the layout (it serves them after a restart).
    pub fn partitions_listed(&mut self) -> Result<usize, StoreError> {
        let key = &self.keys.partitions;
        let more: usize = self
            .conn
            .run_idempotent(|c| redis::cmd("LLEN").arg(key).query(c))?;
        Ok(1 + more)
    }

    /// Blocks until a token is in this process's wake list, or `timeout` passes, and takes it
    /// (`BLPOP`): a fetcher's waker thread, which tells the fetcher that this partition may
    /// have work.
    pub fn take_wake(&mut self, worker: &str, timeout: Duration) -> Result<bool, StoreError> {
        let k = self.keys.wake(worker);
        let got: Option<(String, String)> = self.conn.run_idempotent(|c| {
            redis::cmd("BLPOP")
                .arg(&k)
                .arg(timeout.as_secs_f64().max(0.001))
                .query(c)
        })?;
        Ok(got.is_some())
    }
}
