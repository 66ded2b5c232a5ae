//! The only code that speaks Redis. One method per state transition, each a single script call
//! (see `lua/`), plus the reads the API needs. Each thread opens its own [`Store`] from the shared
//! [`Backend`], so no mutex sits between threads and Redis.
//!
//! The methods of [`Store`] are spread over one file per concept: `create.rs` (submissions),
//! `jobs.rs` (claims, acknowledgements, promotion, hand-backs), `acks.rs` (acknowledgements, one or
//! several in one call: group commit), `progress.rs` (progress reports
//! of running jobs), `liveness.rs` (heartbeats and the reaper), `dlq.rs`, `admin.rs` (stats,
//! ping, start-up checks), `dlq_groups.rs` (the DLQ grouped by cause), `schedules.rs` (cron schedules and their ticks), `subscriptions.rs` (event subscriptions, the outbox and the publishing of its events), `explore.rs` (the job explorer's walks, bulk
//! deletion, the workflow list). `topology.rs` finds the master behind a Redis Cluster or Sentinel REDIS_URL. `partitions.rs` keeps where the partitions (QUEUE_PARTITIONS) are, and [`Stores`] (`stores.rs`, `worker_calls.rs`, `fan_out.rs`) is what the rest of jobq holds: one [`Store`] per partition, each call sent to its partition or fanned out. `decode.rs` reads the
//! scripts' replies and `record.rs` a job's hash; `error.rs` says what can go wrong.

mod acks;
mod admin;
pub mod analytics;
mod backend;
pub mod conn;
mod create;
mod decode;
mod dlq;
mod dlq_groups;
mod ends;
mod error;
mod events;
mod explore;
mod fan_out;
pub mod history;
mod jobs;
pub mod keys;
mod liveness;
pub(crate) mod partitions;
mod pool;
mod progress;
mod queues;
mod record;
mod schedules;
mod scripts;
mod stores;
mod subscriptions;
#[cfg(test)]
pub(crate) mod test_redis;
#[cfg(test)]
mod tests;
#[cfg(feature = "cluster")]
mod topology;
mod worker_calls;

use std::sync::Arc;

pub use acks::{Ack, AckReply, Outcome};
pub use admin::RedisState;
pub use admin::Stats;
pub use backend::{Backend, WaitReplicas};
pub use conn::Health;
pub use create::{CreateOutcome, Created};
pub use dlq::DlqSelect;
pub use dlq_groups::DlqGroup;
pub use ends::{CancelOutcome, EventKind, JobEvent};
pub use error::StoreError;
pub use events::PartitionRound;
pub use explore::{Index, JobFilter, Place, Search};
pub use jobs::{Acked, BreakerChange, Claimed, FailMode, FailOutcome, Selection};
pub use liveness::{LiveProcess, LiveProcesses, Reaped};
pub use pool::StorePool;
pub use queues::{QueueInfo, Target, TypeInfo};
pub use schedules::{
    Control, ControlOutcome, DueTick, Fired, PutOutcome, ScheduleRecord, Source, Tick,
};
pub use stores::Stores;
pub use subscriptions::{
    Subscription, SubscriptionFilter, SubscriptionSpec, DELIVERY_TYPE, EVENT_KINDS,
};

/// How many recently completed ids the completed list keeps (it is trimmed back to this size
/// once it has grown 100 past it).
pub const COMPLETED_LIST_MAX: u64 = 1000;

/// One thread's handle on Redis.
pub struct Store {
    conn: conn::Conn,
    keys: Arc<keys::Keys>,
    /// JOB_TTL_SECS, for the records that a cancellation or a start deadline ends.
    job_ttl_secs: u64,
    /// REDIS_WAIT_REPLICAS: the replicas that must confirm a create (see `create.rs`).
    wait: Option<WaitReplicas>,
}
