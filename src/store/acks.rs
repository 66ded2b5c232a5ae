//! Group commit: the outcomes of several of a process's jobs recorded in one script call
//! (`lua/ack.lua`), each exactly as its own acknowledgement ([`Store::complete`],
//! [`Store::fail`]) would record it, each worker's next job claimed with its outcome. The
//! committer thread (`worker/committer.rs`) gathers them; [`Stores::ack`] sends each
//! partition's share in one call.

use redis::ScriptInvocation;

use super::decode::{complete_reply, fail_reply};
use super::jobs::{Acked, Claimed, FailMode, FailOutcome};
use super::scripts::scripts;
use super::{Selection, Store, StoreError, Stores, COMPLETED_LIST_MAX};

/// What a worker makes of an attempt, for the acknowledgement.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Succeeded, with its result (JSON) if any; the record expires `ttl_secs` later.
    Completed {
        result: Option<String>,
        ttl_secs: u64,
    },
    /// Failed: see [`Store::fail`].
    Failed {
        error: String,
        delay_ms: u64,
        mode: FailMode,
        /// DLQ_MAX_SIZE and MAX_SNOOZES.
        limits: (u64, u32),
    },
}

/// One acknowledgement: the claim it settles, its outcome, and whether the worker wants its
/// next job claimed with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ack {
    pub id: String,
    /// The claim's number: only this claim of the job can record an outcome.
    pub claim: String,
    pub queue: String,
    pub kind: String,
    pub group: String,
    /// The partition the job was claimed from.
    pub part: usize,
    pub outcome: Outcome,
    pub claim_next: bool,
}

impl Ack {
    pub fn new(job: &Claimed, outcome: Outcome, claim_next: bool) -> Ack {
        Ack {
            id: job.id.clone(),
            claim: job.claim.clone(),
            queue: job.queue.clone(),
            kind: job.kind.clone(),
            group: job.group.clone(),
            part: job.part,
            outcome,
            claim_next,
        }
    }
}

/// What an acknowledgement did: complete's answer or fail's.
#[derive(Debug, Clone, PartialEq)]
pub enum AckReply {
    Completed(Acked<bool>),
    Failed(Acked<FailOutcome>),
}

impl AckReply {
    /// Complete's answer; an error if this was fail's (never, for a completion's ack).
    pub fn completed(self) -> Result<Acked<bool>, StoreError> {
        match self {
            AckReply::Completed(a) => Ok(a),
            AckReply::Failed(_) => Err(StoreError::redis("a completion got fail's answer")),
        }
    }

    /// Fail's answer; an error if this was complete's (never, for a failure's ack).
    pub fn failed(self) -> Result<Acked<FailOutcome>, StoreError> {
        match self {
            AckReply::Failed(a) => Ok(a),
            AckReply::Completed(_) => Err(StoreError::redis("a failure got complete's answer")),
        }
    }

    /// The next job claimed with it, if any.
    pub fn next(&self) -> Option<&Claimed> {
        match self {
            AckReply::Completed(a) => a.next.as_ref(),
            AckReply::Failed(a) => a.next.as_ref(),
        }
    }

    /// The answer of partition `part`, whose next job, claimed in the same call, is that
    /// partition's.
    fn in_part(mut self, part: usize) -> AckReply {
        let next = match &mut self {
            AckReply::Completed(a) => a.next.as_mut(),
            AckReply::Failed(a) => a.next.as_mut(),
        };
        if let Some(n) = next {
            n.part = part;
        }
        self
    }
}

/// The arguments of complete.lua or fail.lua from the job's id on (ARGV 2 onwards, before the
/// selection); ack.lua takes the same after a 'c' or an 'f'.
fn outcome_args(inv: &mut ScriptInvocation, a: &Ack) {
    inv.arg(&a.id);
    match &a.outcome {
        Outcome::Completed { result, ttl_secs } => {
            inv.arg(result.as_deref().unwrap_or(""))
                .arg(ttl_secs)
                .arg(COMPLETED_LIST_MAX)
                .arg(u8::from(a.claim_next))
                .arg(&a.claim)
                .arg(&a.queue)
                .arg(&a.kind)
                .arg(&a.group);
        }
        Outcome::Failed {
            error,
            delay_ms,
            mode,
            limits: (dlq_cap, max_snoozes),
        } => {
            inv.arg(error)
                .arg(delay_ms)
                .arg(match mode {
                    FailMode::Retry => "retry",
                    FailMode::Permanent => "permanent",
                    FailMode::Snooze => "snooze",
                })
                .arg(dlq_cap)
                .arg(u8::from(a.claim_next))
                .arg(&a.claim)
                .arg(&a.queue)
                .arg(&a.kind)
                .arg(&a.group)
                .arg(max_snoozes);
        }
    }
}

fn decoded(a: &Ack, reply: &[String]) -> AckReply {
    match a.outcome {
        Outcome::Completed { .. } => AckReply::Completed(complete_reply(reply)),
        Outcome::Failed { .. } => AckReply::Failed(fail_reply(reply)),
    }
}

impl Store {
    /// Records `acks` (all of this store's partition) in one atomic script call, in order; one
    /// alone goes through its own script, whose set-up is smaller. Answers in the same order.
    pub fn ack(
        &mut self,
        worker: &str,
        acks: &[Ack],
        sel: &Selection,
    ) -> Result<Vec<AckReply>, StoreError> {
        let k = &self.keys;
        if let [a] = acks {
            let mut inv = match a.outcome {
                Outcome::Completed { .. } => scripts().complete.prepare_invoke(),
                Outcome::Failed { .. } => scripts().fail.prepare_invoke(),
            };
            inv.key(k.running(worker));
            match a.outcome {
                Outcome::Completed { .. } => inv.key(&k.completed),
                Outcome::Failed { .. } => inv.key(&k.dlq),
            };
            inv.key(&k.counters)
                .key(k.job(&a.id))
                .key(k.heartbeat(worker))
                .arg(k.prefix());
            outcome_args(&mut inv, a);
            inv.arg(sel.args());
            let reply: Vec<String> = self.conn.run(|c| inv.invoke(c))?;
            return Ok(vec![decoded(a, &reply)]);
        }
        let mut inv = scripts().ack.prepare_invoke();
        inv.key(k.running(worker))
            .key(&k.completed)
            .key(&k.dlq)
            .key(&k.counters)
            .key(k.heartbeat(worker))
            .arg(k.prefix())
            .arg(acks.len());
        for a in acks {
            inv.key(k.job(&a.id));
            inv.arg(match a.outcome {
                Outcome::Completed { .. } => "c",
                Outcome::Failed { .. } => "f",
            });
            outcome_args(&mut inv, a);
        }
        inv.arg(sel.args());
        let reply: Vec<String> = self.conn.run(|c| inv.invoke(c))?;
        split_replies(acks, &reply)
    }
}

impl Store {
    /// One acknowledgement through its own script.
    pub(super) fn only(
        &mut self,
        worker: &str,
        ack: &Ack,
        sel: &Selection,
    ) -> Result<AckReply, StoreError> {
        self.ack(worker, std::slice::from_ref(ack), sel)?
            .pop()
            .ok_or_else(|| StoreError::redis("an acknowledgement got no answer"))
    }
}

/// ack.lua's answer, `{n, len, answer..., len, answer...}`, one answer per ack.
fn split_replies(acks: &[Ack], reply: &[String]) -> Result<Vec<AckReply>, StoreError> {
    let bad = || {
        StoreError::redis(format!(
            "ack.lua answered {} values that do not add up",
            reply.len()
        ))
    };
    if reply.first().and_then(|n| n.parse::<usize>().ok()) != Some(acks.len()) {
        return Err(bad());
    }
    let mut at = 1;
    let mut out = Vec::with_capacity(acks.len());
    for a in acks {
        let len: usize = reply.get(at).and_then(|n| n.parse().ok()).ok_or_else(bad)?;
        let one = reply.get(at + 1..at + 1 + len).ok_or_else(bad)?;
        out.push(decoded(a, one));
        at += 1 + len;
    }
    Ok(out)
}

impl Stores {
    /// Records `acks`, each in the partition its job came from: one call per partition, the
    /// partitions one after the other. Answers in the order of `acks`; a partition that fails
    /// fails only its own acks. A next job claimed with an ack knows its partition.
    pub fn ack(
        &mut self,
        worker: &str,
        acks: &[Ack],
        sel: &Selection,
    ) -> Vec<Result<AckReply, StoreError>> {
        let mut parts: Vec<usize> = acks.iter().map(|a| a.part).collect();
        parts.sort_unstable();
        parts.dedup();
        if let [p] = parts[..] {
            return self.ack_in(p, worker, acks, sel);
        }
        let mut out: Vec<Option<Result<AckReply, StoreError>>> = vec![None; acks.len()];
        for p in parts {
            let (idx, group): (Vec<usize>, Vec<Ack>) = acks
                .iter()
                .enumerate()
                .filter(|(_, a)| a.part == p)
                .map(|(i, a)| (i, a.clone()))
                .unzip();
            for (i, r) in idx.into_iter().zip(self.ack_in(p, worker, &group, sel)) {
                out[i] = Some(r);
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(StoreError::redis("an acknowledgement was not sent"))))
            .collect()
    }

    /// One acknowledgement, in a call of its own.
    pub fn ack_one(
        &mut self,
        worker: &str,
        ack: &Ack,
        sel: &Selection,
    ) -> Result<AckReply, StoreError> {
        let p = ack.part;
        self.part(p).only(worker, ack, sel).map(|r| r.in_part(p))
    }

    /// `acks`, all of partition `p`, in one call there: an answer for each, or the call's
    /// error for each.
    fn ack_in(
        &mut self,
        p: usize,
        worker: &str,
        acks: &[Ack],
        sel: &Selection,
    ) -> Vec<Result<AckReply, StoreError>> {
        match self.part(p).ack(worker, acks, sel) {
            Ok(replies) => replies.into_iter().map(|r| Ok(r.in_part(p))).collect(),
            Err(e) => vec![Err(e); acks.len()],
        }
    }
}
