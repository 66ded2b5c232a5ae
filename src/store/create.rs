//! Creating jobs: one `create.lua` call for one job or an all-or-none batch, and the pipelined
//! round trip that creates many gathered submissions each on its own.

use redis::Value as RV;

use super::decode::create_outcome;
use super::scripts::scripts;
use super::{Store, StoreError};
use crate::job::{NewJob, OnParentFailure};
use serde_json::{Map, Value};

/// What [`Store::create`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// One entry per submitted job, in order.
    Created(Vec<Created>),
    /// This queue's pending plus scheduled jobs would exceed the limit; nothing was written.
    Full { queue: String },
    /// A unique key is held by `holder`, which is pending, scheduled, waiting or running.
    UniqueTaken { key: String, holder: String },
    /// Job `id` names a parent that does not exist (or whose record has expired).
    UnknownParent { id: String, parent: String },
    /// Job `id` names a parent that has failed, been cancelled or expired (`status`), and did
    /// not ask to run anyway.
    ParentEnded {
        id: String,
        parent: String,
        status: String,
    },
    /// Job `id` names a parent in another partition (QUEUE_PARTITIONS): a job and its parents
    /// must share one.
    ParentElsewhere { id: String, parent: String },
}

/// One job of a [`CreateOutcome::Created`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub id: String,
    /// False when an idempotency key named an earlier job, whose id this is.
    pub new: bool,
}

impl Store {
    /// Creates `jobs` atomically: all of them, or none when the new ones would take a queue's
    /// pending plus scheduled jobs past `max_queue`. A job whose idempotency key was seen within
    /// `idempotency_ttl_secs` is not created again; the earlier job's id is returned instead.
    pub fn create(
        &mut self,
        jobs: &[NewJob],
        max_queue: u64,
        idempotency_ttl_secs: u64,
    ) -> Result<CreateOutcome, StoreError> {
        let inv = self.create_invocation(jobs, max_queue, idempotency_ttl_secs, None);
        let reply: Vec<RV> = self.conn.run(|c| inv.invoke(c))?;
        let outcome = create_outcome(reply)?;
        // Checked first: without REDIS_WAIT_REPLICAS a create costs nothing more.
        if let (Some(_), CreateOutcome::Created(created)) = (self.wait, &outcome) {
            let new: Vec<&str> = created
                .iter()
                .filter(|c| c.new)
                .map(|c| c.id.as_str())
                .collect();
            if !new.is_empty() {
                self.confirm_replicas(|| jobs_named(&new))?;
            }
        }
        Ok(outcome)
    }

    /// Creates a workflow's nodes (`jobs`, parents first, each with its `node_ref` and its
    /// parents' new ids) and its record `id` with `nodes` ({ref: id} as JSON) in one step, all
    /// or none, as [`Store::create`] creates a batch.
    pub fn create_workflow(
        &mut self,
        id: &str,
        nodes: &str,
        jobs: &[NewJob],
        max_queue: u64,
    ) -> Result<CreateOutcome, StoreError> {
        let inv = self.create_invocation(jobs, max_queue, 0, Some((id, nodes)));
        let reply: Vec<RV> = self.conn.run(|c| inv.invoke(c))?;
        let outcome = create_outcome(reply)?;
        if self.wait.is_some() && matches!(outcome, CreateOutcome::Created(_)) {
            self.confirm_replicas(|| format!("workflow {id} with its {} job(s) was", jobs.len()))?;
        }
        Ok(outcome)
    }

    /// With REDIS_WAIT_REPLICAS set, waits (`WAIT`, on the connection that just wrote) until
    /// that many replicas hold every write this connection has made, the create just done
    /// included, or REDIS_WAIT_TIMEOUT_MS passes. [`StoreError::Unconfirmed`] when they did not
    /// all confirm it: `what` names what was stored nonetheless.
    ///
    /// What this buys: a 201 then means the job was on the master and on that many replicas,
    /// so a failover to one of them keeps it. What it does not: replicas confirm receipt, not
    /// a write to disk (that is their `appendfsync`); and Sentinel or Cluster may still promote
    /// a replica that had not received it, if the confirmed ones are down at that moment.
    pub(super) fn confirm_replicas(
        &mut self,
        what: impl FnOnce() -> String,
    ) -> Result<(), StoreError> {
        let Some(w) = self.wait else { return Ok(()) };
        let detail = match self.conn.wait_replicas(w.replicas, w.timeout) {
            Ok(Some(n)) if n >= u64::from(w.replicas) => return Ok(()),
            Ok(Some(n)) => format!(
                "WAIT saw {n} of {} replica(s) confirm it within {} ms",
                w.replicas,
                w.timeout.as_millis()
            ),
            Ok(None) => "the connection that stored it broke before WAIT".into(),
            Err(e) => format!("WAIT failed: {e}"),
        };
        Err(StoreError::Unconfirmed {
            message: format!(
                "{} stored on the Redis master but not confirmed on {} replica(s) ({detail}); a failover now could lose it. Retrying with the same idempotency key is safe: it cannot create a second job",
                what(),
                w.replicas
            ),
        })
    }

    /// Creates each job on its own (as separate `create` calls would, each with its own
    /// capacity check and outcome) in one round trip: the HTTP threads gather concurrent
    /// `POST /jobs` requests into one of these. Returns one outcome per job, in order.
    ///
    /// NOSCRIPT answers and a failed round trip are handled as [`Store::invoke_each`] says: a
    /// job that was stored is never reported as failed.
    pub fn create_each(
        &mut self,
        jobs: &[NewJob],
        max_queue: u64,
        idempotency_ttl_secs: u64,
    ) -> Vec<Result<CreateOutcome, StoreError>> {
        let invs: Vec<_> = jobs
            .iter()
            .map(|j| {
                self.create_invocation(
                    std::slice::from_ref(j),
                    max_queue,
                    idempotency_ttl_secs,
                    None,
                )
            })
            .collect();
        let out = self.invoke_each(&scripts().create, &invs, |reply| match reply {
            RV::Array(items) => create_outcome(items),
            other => Err(StoreError::redis(format!(
                "create script answered {other:?}"
            ))),
        });
        let mut out: Vec<Result<CreateOutcome, StoreError>> = out
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    Err(StoreError::unavailable(
                        "Redis kept losing jobq's scripts (SCRIPT FLUSH?); the job was not created, retry shortly",
                    ))
                })
            })
            .collect();
        // One WAIT covers every job of the round trip: each gets its answer from it.
        let new_job = |o: &Result<CreateOutcome, StoreError>| match o {
            Ok(CreateOutcome::Created(c)) => c.first().filter(|c| c.new).map(|c| c.id.clone()),
            _ => None,
        };
        if self.wait.is_some() && out.iter().any(|o| new_job(o).is_some()) {
            if let Err(StoreError::Unconfirmed { message }) = self.confirm_replicas(String::new) {
                for o in &mut out {
                    if let Some(id) = new_job(o) {
                        *o = Err(StoreError::Unconfirmed {
                            message: format!("job {id} was{message}"),
                        });
                    }
                }
            }
        }
        out
    }

    fn create_invocation(
        &self,
        jobs: &[NewJob],
        max_queue: u64,
        idempotency_ttl_secs: u64,
        workflow: Option<(&str, &str)>,
    ) -> redis::ScriptInvocation<'static> {
        let k = &self.keys;
        let mut inv = scripts().create.prepare_invoke();
        inv.key(&k.counters);
        let (wf, nodes) = workflow.unwrap_or_default();
        inv.arg(k.prefix())
            .arg(max_queue)
            .arg(idempotency_ttl_secs)
            .arg(self.job_ttl_secs)
            .arg(wf)
            .arg(nodes);
        for j in jobs {
            // Without an idempotency key the bare `<prefix>:idem:` stands in: declaring '' would
            // name a key in Redis Cluster slot 0, outside the prefix's slot (CROSSSLOT).
            inv.key(k.job(&j.id))
                .key(k.idempotency(j.idempotency_key.as_deref().unwrap_or_default()));
            inv.arg(j.id.as_str())
                .arg(&j.kind)
                .arg(&j.payload)
                .arg(j.max_attempts)
                .arg(j.delay_ms)
                .arg(j.run_at_us.map(|t| t.to_string()).unwrap_or_default())
                .arg(j.timeout_secs.map(|t| t.to_string()).unwrap_or_default())
                .arg(u8::from(j.idempotency_key.is_some()))
                .arg(&j.queue)
                .arg(j.priority.as_str())
                .arg(j.group.as_deref().unwrap_or_default())
                .arg(extras(j));
        }
        inv
    }
}

/// "job X" or "jobs X, Y" for [`Store::confirm_replicas`].
fn jobs_named(ids: &[&str]) -> String {
    match ids {
        [one] => format!("job {one} was"),
        many => format!("jobs {} were", many.join(", ")),
    }
}

/// The rarer settings of a job as one JSON object of strings (see `lua/create.lua`), or ''
/// for a job that uses none of them: most jobs, which then cost the script one empty argument.
fn extras(j: &NewJob) -> String {
    let mut x = Map::new();
    let mut put = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            x.insert(name.to_string(), Value::String(v));
        }
    };
    put("unique", j.unique_key.clone());
    // A string: Lua's numbers would print a µs time as 1.7e+15.
    put("expires", j.expires_at_us.map(|t| t.to_string()));
    put(
        "parents",
        (!j.parents.is_empty()).then(|| j.parents.join(",")),
    );
    put("ref", j.node_ref.clone());
    put(
        "opf",
        (j.on_parent_failure == OnParentFailure::Run).then(|| "run".to_string()),
    );
    put("schedule", j.schedule.clone());
    if let Some(t) = &j.trace {
        put("traceparent", Some(t.traceparent.clone()));
        put("tracestate", t.tracestate.clone());
    }
    if x.is_empty() {
        String::new()
    } else {
        Value::Object(x).to_string()
    }
}
