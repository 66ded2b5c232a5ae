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

use redis::Script;
use std::sync::OnceLock;

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
