//! jobq: a background-job server. Jobs arrive over HTTP, live in Redis, and run on a fixed pool of
//! OS threads, with retries (exponential backoff with jitter), a dead-letter queue, Prometheus
//! metrics and a clean drain on shutdown. No async runtime: every thread blocks, with a timeout.
//!
//! ```text
//! POST /jobs ─▶ pending ─▶ running ─▶ completed (record expires after JOB_TTL_SECS)
//!      │          ▲   ▲       │
//!      │          │   │       ├─▶ scheduled (retry after backoff) ─▶ pending
//!      └─ delayed ┘   │       └─▶ failed + DLQ (attempts spent or permanent error)
//!        (scheduled)  └── reaper: running job of a process whose heartbeat expired
//! ```
//! Each arrow is one Lua script in Redis, so a crash between two commands cannot leave a job in
//! two states or none. See docs/ARCHITECTURE.md and docs/redis-keys.md.
//!
//! Embedding: build a [`Registry`] (start from [`builtin_registry`] to keep the built-in types),
//! register handlers, and [`start`] it; see `examples/embed.rs`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

// Every module is private: an embedding program sees only what is re-exported below. The
// layers, bottom up (a module uses only those below it): config, job, shutdown; store;
// metrics; handler (the job-type API); handlers (built-in job types); context; server and
// worker; app. See docs/ARCHITECTURE.md.
mod app;
mod config;
mod context;
mod handler;
mod handlers;
mod job;
mod metrics;
mod server;
mod shutdown;
mod store;
mod worker;

pub use app::{start, Error, Running, ShutdownReport};
pub use config::QueuePartitions;
pub use config::{Breaker, GroupLimits, Limits, LimitsFile, LimitsPatch, QueueOrder, Rate, Scope};
pub use config::{
    CommandSpec, Config, ConfigError, HandlersFile, ResourceLimits, Role, SmtpUrl, WebhookAllow,
};
pub use config::{FileSchedule, Missed, Overlap, ScheduleSpec, SchedulesFile, Timing};
pub use handler::{Cancellation, ErrorKind, Handler, JobContext, JobError, JobResult, Registry};
pub use handlers::builtin_registry;
pub use job::{Job, JobId, JobStatus};
pub use shutdown::Shutdown;
pub use store::StoreError;
