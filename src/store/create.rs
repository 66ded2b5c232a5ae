//! Creating jobs: one `create.lua` call for one job or an all-or-none batch, and the pipelined
//! round trip that creates many gathered submissions each on its own.

use redis::Value as RV;

use super::decode::{create_outcome, is_noscript, pipeline_error};
use super::scripts::scripts;
use super::{Store, StoreError};
use crate::job::{NewJob, OnParentFailure};

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
        create_outcome(reply)
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
        create_outcome(reply)
    }

    /// Creates each job on its own (as separate `create` calls would, each with its own
    /// capacity check and outcome) in one round trip: the HTTP threads gather concurrent
    /// `POST /jobs` requests into one of these. Returns one outcome per job, in order.
    ///
    /// A pipeline sends EVALSHA only, so after a Redis restart, failover or `SCRIPT FLUSH` some
    /// of its calls may answer NOSCRIPT while others ran (another connection may load the
    /// script between two of them). Only the calls that answered NOSCRIPT are sent again,
    /// after loading the script: a job that was stored is never reported as failed. When a
    /// round trip fails, the jobs not yet answered get that error (a timeout may have stored
    /// them; the error says so).
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
        let mut out: Vec<Option<Result<CreateOutcome, StoreError>>> = vec![None; jobs.len()];
        let mut todo: Vec<usize> = (0..jobs.len()).collect();
        // A second NOSCRIPT right after loading needs yet another SCRIPT FLUSH in between;
        // three rounds end even that, with an honest error for what is left.
        for round in 0..3 {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for &i in &todo {
                pipe.invoke_script(&invs[i]);
            }
            let replies = self.conn.run(|c| {
                if round > 0 {
                    scripts().create.load(c)?;
                }
                pipe.query::<Vec<RV>>(c)
            });
            let replies = match replies {
                Ok(r) => r,
                Err(e) => {
                    for &i in &todo {
                        out[i] = Some(Err(e.clone()));
                    }
                    todo.clear();
                    break;
                }
            };
            let mut again = Vec::new();
            for (&i, reply) in todo.iter().zip(replies) {
                out[i] = Some(match reply {
                    r if is_noscript(&r) => {
                        again.push(i);
                        continue;
                    }
                    RV::Array(items) => create_outcome(items),
                    RV::ServerError(e) => Err(pipeline_error(&e)),
                    other => Err(StoreError::redis(format!(
                        "create script answered {other:?}"
                    ))),
                });
            }
            todo = again;
            if todo.is_empty() {
                break;
            }
        }
        out.into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    Err(StoreError::unavailable(
                        "Redis kept losing jobq's scripts (SCRIPT FLUSH?); the job was not created, retry shortly",
                    ))
                })
            })
            .collect()
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
                .arg(j.unique_key.as_deref().unwrap_or_default())
                .arg(j.expires_at_us.map(|t| t.to_string()).unwrap_or_default())
                .arg(j.parents.join(","))
                .arg(j.node_ref.as_deref().unwrap_or_default())
                .arg(match j.on_parent_failure {
                    OnParentFailure::Run => "run",
                    OnParentFailure::Cancel => "",
                })
                .arg(j.schedule.as_deref().unwrap_or_default());
        }
        inv
    }
}
