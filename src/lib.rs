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

pub mod app;
pub mod config;
pub mod context;
pub mod handlers;
pub mod job;
pub mod metrics;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod worker;

pub use app::{start, Error, Running, ShutdownReport};
pub use config::{Config, ConfigError, Role};
pub use handlers::builtin_registry;
pub use job::{Job, JobStatus};
pub use shutdown::Shutdown;
pub use worker::{Cancellation, Handler, JobContext, JobError, JobResult, Registry};
