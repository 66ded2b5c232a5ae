//! Integration tests of jobq: a real redis-server per test, jobq started in-process through the
//! library (or as the real binary where signals or per-process counters matter), and an HTTP
//! client speaking to it over loopback. The harness lives in `tests/support/`.
//!
//! One test binary with a module per topic, so the harness is compiled once. Every test starts
//! its own redis-server on a free port, so tests run in parallel without sharing state.
//!
//! Needs `redis-server` (and `redis-cli` for the Redis Cluster tests, `promtool` for one metrics
//! test, `chromium` and `chromedriver` for the browser tests); `scripts/test` installs them.
//! `JOBQ_TEST_REDIS_SERVER`, `JOBQ_TEST_REDIS_CLI`, `JOBQ_TEST_PROMTOOL`, `JOBQ_TEST_CHROMIUM`
//! and `JOBQ_TEST_CHROMEDRIVER` override where they are looked for.

#![forbid(unsafe_code)]

#[path = "../support/mod.rs"]
mod support;
// The test modules `use crate::harness::*`.
use support as harness;

mod access;
mod api;
mod browser;
mod cancellation;
mod cli;
mod concurrency;
mod correctness;
mod dashboard;
mod dlq_groups;
mod explorer;
mod flow;
mod group_commit;
mod handlers;
mod high_availability;
mod http_server;
mod lifecycle;
mod metrics;
mod openapi;
mod recovery;
mod redis_tls_topology;
mod retry;
mod schedules;
mod scheduling;
mod security;
mod shutdown;
mod subscriptions;
mod topology;
mod tracing;
#[cfg(feature = "webhook")]
mod webhooks;
mod workers;
mod workflows;
