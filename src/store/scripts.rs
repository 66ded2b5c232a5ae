//! The Lua scripts behind every state transition, hashed once at start-up.
//!
//! Each script is one atomic step in Redis: a crash of jobq between two commands can never leave
//! a job half-moved. `lua/common.lua` (the clock, keys, counts, the short claim) is prepended to
//! each script, `lua/dead.lua` (error history, the DLQ move) and `lua/flow.lua` (the general
//! claim step, parking, DLQ selection) to those that need them, so each step is written once.
//! `redis::Script` sends EVALSHA and reloads the script after a Redis restart.

use redis::Script;
use std::sync::OnceLock;

pub struct Scripts {
    pub create: Script,
    pub claim: Script,
    pub complete: Script,
    pub fail: Script,
    pub promote: Script,
    pub requeue: Script,
    pub reap: Script,
    pub dlq_retry: Script,
    pub dlq_delete: Script,
    pub dlq_page: Script,
    pub stats: Script,
    pub queues: Script,
    pub control: Script,
    pub why: Script,
    pub schedule_put: Script,
    pub schedule_control: Script,
    pub schedule_read: Script,
    pub schedule_due: Script,
    pub fire: Script,
}

macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/common.lua"),
            include_str!(concat!("lua/", $file))
        ))
    };
    // With `lua/flow.lua` too: the general claim step, parking and the DLQ selection, which
    // the hot acknowledgements leave out (every function of a script is defined anew on each
    // call, and Redis runs Lua slowly enough for that to show in the drain).
    // With `lua/dead.lua`: the error history and the DLQ move.
    (dead $file:literal) => {
        Script::new(concat!(
            include_str!("lua/common.lua"),
            include_str!("lua/dead.lua"),
            include_str!(concat!("lua/", $file))
        ))
    };
    (flow $file:literal) => {
        Script::new(concat!(
            include_str!("lua/common.lua"),
            include_str!("lua/flow.lua"),
            include_str!(concat!("lua/", $file))
        ))
    };
}

/// The scripts, built (and their SHA1 computed) on first use only.
pub fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        create: script!("create.lua"),
        claim: script!(flow "claim.lua"),
        complete: script!("complete.lua"),
        fail: script!(dead "fail.lua"),
        promote: script!(flow "promote.lua"),
        requeue: script!("requeue.lua"),
        reap: script!(dead "reap.lua"),
        dlq_retry: script!(flow "dlq_retry.lua"),
        dlq_delete: script!(flow "dlq_delete.lua"),
        dlq_page: script!("dlq_page.lua"),
        stats: script!("stats.lua"),
        queues: script!("queues.lua"),
        control: script!(flow "control.lua"),
        why: script!("why.lua"),
        schedule_put: script!("schedule_put.lua"),
        schedule_control: script!("schedule_control.lua"),
        schedule_read: script!("schedule_read.lua"),
        schedule_due: script!("schedule_due.lua"),
        // TODO(insert.lua): with the job-insert prelude once it lands.
        fire: script!("fire.lua"),
    })
}
