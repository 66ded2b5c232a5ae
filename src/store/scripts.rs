//! The Lua scripts behind every state transition, hashed once at start-up.
//!
//! Each script is one atomic step in Redis: a crash of jobq between two commands can never leave
//! a job half-moved. `lua/common.lua` (the clock, keys, counts, the queue selection) is prepended
//! to each script, and to those that need them `lua/insert.lua` (writing new jobs),
//! `lua/events.lua` (the event subscriptions' outbox, before `finish.lua` wherever it goes),
//! `lua/finish.lua` (the ends of a job and what they settle: unique keys, workflows, children),
//! `lua/fast.lua` (the short claim of the acknowledgements), `lua/complete_job.lua` and
//! `lua/fail_job.lua` (the acknowledgements as functions, one job at a time or grouped by
//! `lua/ack.lua`), `lua/dead.lua` (error history, the
//! DLQ move, its groups by cause, DLQ selection), `lua/flow.lua` (the general claim step,
//! parking) and `lua/select.lua` (the explorer's filter), so each step
//! is written once.
//! `redis::Script` sends EVALSHA and reloads the script after a Redis restart.

use redis::{Script, ScriptInvocation, Value as RV};
use std::sync::OnceLock;

use super::decode::{is_noscript, pipeline_error};
use super::{Store, StoreError};

pub struct Scripts {
    pub create: Script,
    pub claim: Script,
    pub complete: Script,
    pub fail: Script,
    pub ack: Script,
    pub promote: Script,
    pub requeue: Script,
    pub reap: Script,
    pub dlq_retry: Script,
    pub dlq_delete: Script,
    pub dlq_page: Script,
    pub dlq_groups: Script,
    pub stats: Script,
    pub queues: Script,
    pub control: Script,
    pub why: Script,
    pub cancel: Script,
    pub workflow: Script,
    pub history: Script,
    pub progress: Script,
    pub schedule_put: Script,
    pub schedule_control: Script,
    pub schedule_read: Script,
    pub schedule_due: Script,
    pub fire: Script,
    pub workers: Script,
    pub explore: Script,
    pub delete: Script,
    pub workflows: Script,
    pub subscriptions: Script,
    pub outbox: Script,
    pub publish: Script,
}

macro_rules! script {
    // `lua/common.lua`, then the preludes named (in this order), then the script itself, as
    // build.rs copies them: without their comment lines.
    // Each script carries only the preludes it uses: every function of a script is defined
    // anew on each call, and Redis runs Lua slowly enough for that to show in the drain.
    ($($prelude:literal),* ; $file:literal) => {
        Script::new(concat!(
            include_str!(concat!(env!("OUT_DIR"), "/lua/common.lua")),
            $(include_str!(concat!(env!("OUT_DIR"), "/lua/", $prelude, ".lua")),)*
            include_str!(concat!(env!("OUT_DIR"), "/lua/", $file))
        ))
    };
}

/// The scripts, built (and their SHA1 computed) on first use only.
pub fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        create: script!("insert"; "create.lua"),
        claim: script!("events", "finish", "flow"; "claim.lua"),
        complete: script!("events", "finish", "fast", "complete_job"; "complete.lua"),
        fail: script!("events", "finish", "dead", "fast", "fail_job"; "fail.lua"),
        ack: script!("events", "finish", "dead", "fast", "complete_job", "fail_job"; "ack.lua"),
        promote: script!("events", "finish", "flow"; "promote.lua"),
        requeue: script!("events", "finish"; "requeue.lua"),
        reap: script!("events", "finish", "dead"; "reap.lua"),
        dlq_retry: script!("events", "finish", "dead"; "dlq_retry.lua"),
        dlq_delete: script!("events", "finish", "dead"; "dlq_delete.lua"),
        dlq_page: script!(; "dlq_page.lua"),
        dlq_groups: script!("dead"; "dlq_groups.lua"),
        stats: script!(; "stats.lua"),
        queues: script!(; "queues.lua"),
        control: script!("events", "finish", "flow"; "control.lua"),
        why: script!(; "why.lua"),
        cancel: script!("events", "finish", "select"; "cancel.lua"),
        workflow: script!(; "workflow.lua"),
        history: script!(; "history.lua"),
        progress: script!(; "progress.lua"),
        schedule_put: script!(; "schedule_put.lua"),
        schedule_control: script!(; "schedule_control.lua"),
        schedule_read: script!(; "schedule_read.lua"),
        schedule_due: script!(; "schedule_due.lua"),
        fire: script!("events", "insert"; "fire.lua"),
        workers: script!(; "workers.lua"),
        explore: script!("select"; "explore.lua"),
        delete: script!("events", "finish", "dead"; "delete.lua"),
        workflows: script!(; "workflows.lua"),
        subscriptions: script!(; "subscriptions.lua"),
        outbox: script!(; "outbox.lua"),
        publish: script!("insert"; "publish.lua"),
    })
}

impl Store {
    /// Sends `invs`, calls of `script`, in one pipelined round trip, each still its own atomic
    /// step, and decodes each answer with `decode` (a server error is classified first).
    ///
    /// A pipeline sends EVALSHA only, so after a Redis restart, failover or `SCRIPT FLUSH` some
    /// calls may answer NOSCRIPT while others ran (another connection may load the script
    /// between two of them). Only the calls that answered NOSCRIPT are sent again, after
    /// loading the script, so a call that ran is never reported as failed. When a round trip
    /// fails, the calls not yet answered get its error (a timeout may have run them). A second
    /// NOSCRIPT right after loading needs yet another SCRIPT FLUSH in between; three rounds end
    /// even that: None for a call that never ran.
    pub(super) fn invoke_each<T: Clone>(
        &mut self,
        script: &Script,
        invs: &[ScriptInvocation<'_>],
        decode: impl Fn(RV) -> Result<T, StoreError>,
    ) -> Vec<Option<Result<T, StoreError>>> {
        let mut out: Vec<Option<Result<T, StoreError>>> = vec![None; invs.len()];
        let mut todo: Vec<usize> = (0..invs.len()).collect();
        for round in 0..3 {
            let mut pipe = redis::pipe();
            pipe.ignore_errors();
            for &i in &todo {
                pipe.invoke_script(&invs[i]);
            }
            let replies = self.conn.run(|c| {
                if round > 0 {
                    script.load(c)?;
                }
                pipe.query::<Vec<RV>>(c)
            });
            let replies = match replies {
                Ok(r) => r,
                Err(e) => {
                    for &i in &todo {
                        out[i] = Some(Err(e.clone()));
                    }
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
                    RV::ServerError(e) => {
                        self.conn.note_reply_error(e.code());
                        Err(pipeline_error(&e))
                    }
                    other => decode(other),
                });
            }
            todo = again;
            if todo.is_empty() {
                break;
            }
        }
        out
    }
}
