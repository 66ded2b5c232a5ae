//! The Lua scripts behind every state transition, hashed once at start-up.
//!
//! Each script is one atomic step in Redis: a crash of jobq between two commands can never leave
//! a job half-moved. `lua/common.lua` (the clock, error history, the DLQ move) is prepended to
//! each script, so those steps are written once. `redis::Script` sends EVALSHA and reloads the
//! script after a Redis restart.

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
}

macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/common.lua"),
            include_str!(concat!("lua/", $file))
        ))
    };
}

/// The scripts, built (and their SHA1 computed) on first use only.
pub fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        create: script!("create.lua"),
        claim: script!("claim.lua"),
        complete: script!("complete.lua"),
        fail: script!("fail.lua"),
        promote: script!("promote.lua"),
        requeue: script!("requeue.lua"),
        reap: script!("reap.lua"),
        dlq_retry: script!("dlq_retry.lua"),
        dlq_delete: script!("dlq_delete.lua"),
        dlq_page: script!("dlq_page.lua"),
        stats: script!("stats.lua"),
        queues: script!("queues.lua"),
        control: script!("control.lua"),
        why: script!("why.lua"),
    })
}
