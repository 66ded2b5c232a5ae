//! The Lua scripts behind every state transition, hashed once at start-up.
//!
//! Each script is one atomic step in Redis: a crash of jobq between two commands can never leave
//! a job half-moved. `redis::Script` sends EVALSHA and reloads the script after a Redis restart.

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
}

/// The scripts, built (and their SHA1 computed) on first use only.
pub fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        create: Script::new(include_str!("lua/create.lua")),
        claim: Script::new(include_str!("lua/claim.lua")),
        complete: Script::new(include_str!("lua/complete.lua")),
        fail: Script::new(include_str!("lua/fail.lua")),
        promote: Script::new(include_str!("lua/promote.lua")),
        requeue: Script::new(include_str!("lua/requeue.lua")),
        reap: Script::new(include_str!("lua/reap.lua")),
    })
}
