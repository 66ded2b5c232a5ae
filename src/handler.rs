//! The [`Handler`] trait, the context a handler runs with, and the [`Registry`] of job types.
//!
//! This is what a Rust program embedding jobq implements: a handler takes a [`JobContext`] and
//! returns a JSON result or a [`JobError`] that says whether a retry could help.

mod progress;

use serde_json::{Map, Value};

pub(crate) use progress::ProgressSink;

use crate::job::JobId;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::{StoreError, StorePool};

/// What a handler returns: a result (stored with the job; `Value::Null` for none) or an error.
pub type JobResult = Result<Value, JobError>;

/// What kind of failure an attempt had, which decides what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Worth retrying after the backoff: a peer that is down, a timeout of a call.
    Transient,
    /// No retry can fix it (a corrupt input, a rejected recipient): straight to the DLQ.
    Permanent,
    /// The attempt ran past its deadline (`timeout_secs` or JOB_TIMEOUT_SECS); retried like a
    /// transient error.
    TimedOut,
    /// Not a failure: "not now, try again in this long" (a downstream service asked to wait).
    /// The job goes back to scheduled without using up an attempt, at most MAX_SNOOZES times.
    Snooze(Duration),
    /// The handler stopped because the job was cancelled through the API
    /// ([`Cancellation::job_cancelled`]): no retry.
    Cancelled,
}

/// Why an attempt failed, and whether another attempt could succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    /// What went wrong, in words for the job's `error` field and the log.
    pub message: String,
    /// What happens next: a retry, the DLQ at once, or a retry as a timed-out attempt.
    pub kind: ErrorKind,
}

impl JobError {
    /// An error worth retrying after the backoff (a timeout, a peer that is down).
    pub fn transient(message: impl Into<String>) -> JobError {
        JobError {
            message: message.into(),
            kind: ErrorKind::Transient,
        }
    }

    /// An error no retry can fix.
    pub fn permanent(message: impl Into<String>) -> JobError {
        JobError {
            message: message.into(),
            kind: ErrorKind::Permanent,
        }
    }

    /// The attempt outlived its deadline.
    pub fn timed_out(message: impl Into<String>) -> JobError {
        JobError {
            message: message.into(),
            kind: ErrorKind::TimedOut,
        }
    }

    /// The handler stopped because the job was cancelled through the API; return it when
    /// [`JobContext::is_cancelled`] is true and [`Cancellation::job_cancelled`] says why.
    pub fn cancelled(message: impl Into<String>) -> JobError {
        JobError {
            message: message.into(),
            kind: ErrorKind::Cancelled,
        }
    }

    /// "Not now, try again in `delay`": the job is rescheduled without using up an attempt
    /// (counted in `jobs_snoozed_total`; past MAX_SNOOZES snoozes it counts as a failure).
    pub fn snooze(delay: Duration, message: impl Into<String>) -> JobError {
        JobError {
            message: message.into(),
            kind: ErrorKind::Snooze(delay),
        }
    }

    /// The delay asked for, when this is a snooze.
    pub fn snooze_delay(&self) -> Option<Duration> {
        match self.kind {
            ErrorKind::Snooze(d) => Some(d),
            _ => None,
        }
    }

    /// Whether the job goes to the dead-letter queue without another attempt.
    pub fn is_permanent(&self) -> bool {
        self.kind == ErrorKind::Permanent
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for JobError {}

impl From<String> for JobError {
    fn from(message: String) -> Self {
        JobError::transient(message)
    }
}

impl From<&str> for JobError {
    fn from(message: &str) -> Self {
        JobError::transient(message)
    }
}

/// A flag a handler polls to learn that it should stop: its attempt timed out, the process is
/// shutting down, or the job was cancelled through the API. Threads cannot be killed, so long
/// handlers check it between steps; [`Cancellation::job_cancelled`] tells the last reason from
/// the others, since a cancelled job is not retried while a stopped attempt is.
#[derive(Debug, Clone)]
pub struct Cancellation {
    /// [`STOP`] and [`JOB`] bits: one atomic, so a reader never sees a reason without the flag.
    flag: Arc<AtomicU8>,
    deadline: Option<Instant>,
}

/// The process is stopping (or the caller asked to stop for its own reasons).
const STOP: u8 = 1;
/// The job was cancelled through the API.
const JOB: u8 = 2;

impl Cancellation {
    /// A flag that is set by [`Cancellation::cancel`], [`Cancellation::cancel_job`] or, if
    /// given, once `deadline` passes.
    pub fn new(deadline: Option<Instant>) -> Cancellation {
        Cancellation {
            flag: Arc::new(AtomicU8::new(0)),
            deadline,
        }
    }
    /// Asks the handler to stop because the process is stopping: the attempt is not the job's
    /// last word, it runs again.
    pub fn cancel(&self) {
        self.flag.fetch_or(STOP, Ordering::SeqCst);
    }
    /// Asks the handler to stop because the job was cancelled through the API.
    pub fn cancel_job(&self) {
        self.flag.fetch_or(JOB, Ordering::SeqCst);
    }
    /// True once the attempt's deadline has passed or either kind of cancel was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst) != 0 || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
    /// True only when the job was cancelled through the API ([`Cancellation::cancel_job`]),
    /// whatever else happened too: the handler should then return [`JobError::cancelled`].
    pub fn job_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst) & JOB != 0
    }
    /// The error a handler that stops on this flag returns: [`JobError::cancelled`] when the
    /// job was cancelled through the API, else a transient error (the attempt runs again).
    pub(crate) fn stop_error(&self, message: impl Into<String>) -> JobError {
        if self.job_cancelled() {
            JobError::cancelled(message)
        } else {
            JobError::transient(message)
        }
    }
    /// When the attempt times out, if it has a limit.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
    /// Sleeps for `d` unless cancelled first; returns false if it was cut short.
    pub fn sleep(&self, d: Duration) -> bool {
        let end = Instant::now() + d;
        loop {
            if self.is_cancelled() {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            std::thread::sleep((end - now).min(Duration::from_millis(20)));
        }
    }
}

/// Everything a handler knows about the job it runs.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The job's id.
    pub id: JobId,
    /// Its type, the name the handler was registered under.
    pub kind: String,
    /// The submitted payload (`{}` when none was given).
    pub payload: Value,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// Attempts allowed before the job goes to the dead-letter queue.
    pub max_attempts: u32,
    /// Set when the attempt's time is up, the process is shutting down or the job was cancelled
    /// through the API; long handlers poll it between steps ([`JobContext::is_cancelled`]).
    pub cancel: Cancellation,
    /// Redis for the built-in handlers that keep data there (analytics, report): the process's
    /// one pool, set by the worker. None in a context built with [`JobContext::new`].
    pub(crate) store: Option<Arc<StorePool>>,
    /// Where [`JobContext::progress`] reports go, set by the worker; None in a context built
    /// with [`JobContext::new`], where reports go nowhere.
    pub(crate) progress: Option<Arc<ProgressSink>>,
    /// The results of a workflow job's parents, by parent name (its `ref`, else its id), set
    /// by the worker; empty for a job without parents.
    pub(crate) parents: Map<String, Value>,
    /// The W3C trace context of this attempt (`00-<trace id>-<span id>-<flags>`): the trace
    /// the job was submitted in, with a span id of this attempt's own. None when the job was
    /// submitted without one.
    pub(crate) traceparent: Option<String>,
    /// The `tracestate` submitted with the trace context, passed on as given.
    pub(crate) tracestate: Option<String>,
    /// The process's metrics, for handlers that count events of their own (commands stopped
    /// by a resource limit), set by the worker; None in a context built with
    /// [`JobContext::new`], where nothing is counted.
    pub(crate) metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl JobContext {
    /// A context for running a handler outside a worker (a test, a tool). It has no Redis, so
    /// the built-in `analytics` and `report` handlers fail in it with a transient error.
    pub fn new(
        id: impl Into<String>,
        kind: impl Into<String>,
        payload: Value,
        attempt: u32,
        max_attempts: u32,
        cancel: Cancellation,
    ) -> JobContext {
        JobContext {
            id: JobId::from_stored(id.into()),
            kind: kind.into(),
            payload,
            attempt,
            max_attempts,
            cancel,
            store: None,
            progress: None,
            parents: Map::new(),
            traceparent: None,
            tracestate: None,
            metrics: None,
        }
    }

    /// The same context, in the trace `traceparent` (a W3C `traceparent` value, used as given).
    pub fn with_traceparent(mut self, traceparent: impl Into<String>) -> JobContext {
        self.traceparent = Some(traceparent.into());
        self
    }

    /// This attempt's W3C `traceparent` (`00-<trace id>-<span id>-<flags>`), when the job was
    /// submitted with one: the submitter's trace id, with a span id of this attempt's own, so
    /// a handler that calls out can pass it on and a tracing system can join the dots.
    pub fn traceparent(&self) -> Option<&str> {
        self.traceparent.as_deref()
    }

    /// Its type as log lines name it: with the attempt's traceparent when it has one, as the
    /// worker's own lines about the job do.
    pub fn kind_label(&self) -> crate::job::trace::KindLabel<'_> {
        crate::job::trace::KindLabel(&self.kind, self.traceparent.as_deref())
    }

    /// The `tracestate` submitted with the job's trace context, to pass on beside
    /// [`JobContext::traceparent`].
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// Reports how far the job has got: `percent` (0-100; more is taken as 100) and what it is
    /// doing (cut to 200 characters), shown as `progress` by `GET /jobs/{id}` while it runs.
    /// Cheap to call often: at most one report per job is written every 500 ms, the latest
    /// winning (one held back is written by a later call, or when the handler returns). Never
    /// fails the job; a report that cannot be stored is dropped. Does nothing outside a worker.
    pub fn progress(&self, percent: u8, message: &str) {
        if let Some(sink) = &self.progress {
            sink.report(percent, message);
        }
    }

    /// The results of this workflow job's parents, keyed by each parent's name in the workflow
    /// (its `ref`, else its id); `Value::Null` for a parent that returned none. Empty for a job
    /// without parents.
    pub fn parent_results(&self) -> &Map<String, Value> {
        &self.parents
    }

    /// Whether the handler should stop: the attempt timed out, the process is shutting down, or
    /// the job was cancelled through the API (`self.cancel.job_cancelled()` tells that one
    /// apart; return [`JobError::cancelled`] then).
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Runs `f` on one of the process's Redis connections.
    pub(crate) fn with_store<T>(
        &self,
        f: impl FnOnce(&mut crate::store::Stores) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &self.store {
            Some(pool) => pool.with(f),
            None => Err(StoreError::unavailable(
                "this job runs outside a worker, without a Redis connection",
            )),
        }
    }
}

/// Runs jobs of one type. Closures `Fn(&JobContext) -> JobResult` are handlers too.
pub trait Handler: Send + Sync + 'static {
    /// Does the work. Runs on a worker thread; may block.
    fn run(&self, job: &JobContext) -> JobResult;

    /// Checks a payload when the job is submitted, so a doomed job is refused with a 400 instead
    /// of being accepted. The message names the offending field.
    fn validate(&self, _payload: &Value) -> Result<(), String> {
        Ok(())
    }

    /// The payload's JSON Schema (the OpenAPI 3.0 dialect), shown for this type in the document
    /// served at `GET /openapi.json`. It should accept no less than [`Handler::validate`] does,
    /// since clients generate requests from it. `None`: the document allows any JSON payload.
    fn payload_schema(&self) -> Option<Value> {
        None
    }
}

impl<F> Handler for F
where
    F: Fn(&JobContext) -> JobResult + Send + Sync + 'static,
{
    fn run(&self, job: &JobContext) -> JobResult {
        self(job)
    }
}

/// Job types and their handlers. Built once at start-up, then shared read-only by every thread.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: BTreeMap<String, Arc<dyn Handler>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.handlers.keys()).finish()
    }
}

pub use crate::config::handlers_file::{is_valid_type_name, MAX_TYPE_LEN};

impl Registry {
    /// An empty registry; [`crate::builtin_registry`] gives one with the built-in types.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Registers `handler` for jobs of type `kind`, replacing any earlier one.
    ///
    /// # Panics
    /// If `kind` is not 1-64 characters of letters, digits, `_`, `-`, `.` or `:` — a programming
    /// error in the embedding program, caught at start-up.
    pub fn register(&mut self, kind: &str, handler: impl Handler) -> &mut Registry {
        assert!(
            is_valid_type_name(kind),
            "job type {kind:?} must be 1-{MAX_TYPE_LEN} characters of A-Z a-z 0-9 _ - . :"
        );
        self.handlers.insert(kind.to_string(), Arc::new(handler));
        self
    }

    /// Whether `kind` has a handler.
    pub fn contains(&self, kind: &str) -> bool {
        self.handlers.contains_key(kind)
    }

    /// The handler of `kind`, if registered.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Handler>> {
        self.handlers.get(kind)
    }

    /// Registered type names, sorted.
    pub fn types(&self) -> Vec<&str> {
        self.handlers.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn closures_are_handlers() {
        let mut r = Registry::new();
        r.register("double", |job: &JobContext| -> JobResult {
            let n = job.payload["n"]
                .as_i64()
                .ok_or_else(|| JobError::permanent("n"))?;
            Ok(json!(n * 2))
        });
        let ctx = JobContext::new(
            "x",
            "double",
            json!({"n": 21}),
            1,
            3,
            Cancellation::new(None),
        );
        assert_eq!(r.get("double").unwrap().run(&ctx), Ok(json!(42)));
        // Outside a worker: no parents, and progress goes nowhere.
        assert!(ctx.parent_results().is_empty());
        ctx.progress(50, "half way");
        assert_eq!(r.types(), vec!["double"]);
    }

    #[test]
    fn type_names_are_checked() {
        assert!(is_valid_type_name("image_resize"));
        assert!(is_valid_type_name("billing.invoice:v2"));
        assert!(!is_valid_type_name(""));
        assert!(!is_valid_type_name("has space"));
        assert!(!is_valid_type_name(&"x".repeat(65)));
    }

    #[test]
    fn cancellation_cuts_a_sleep_short() {
        let c = Cancellation::new(Some(Instant::now() + Duration::from_millis(30)));
        assert!(!c.sleep(Duration::from_secs(5)));
        assert!(c.is_cancelled());
        let c = Cancellation::new(None);
        assert!(c.sleep(Duration::from_millis(1)));
        c.cancel();
        assert!(c.is_cancelled());
        assert!(!c.job_cancelled());
        assert_eq!(c.stop_error("x").kind, ErrorKind::Transient);
    }

    #[test]
    fn a_job_cancellation_is_told_apart() {
        let c = Cancellation::new(None);
        let shared = c.clone();
        assert!(!c.is_cancelled() && !c.job_cancelled());
        shared.cancel_job();
        assert!(c.is_cancelled() && c.job_cancelled());
        c.cancel();
        assert!(c.job_cancelled(), "a later stop keeps the reason");
        assert_eq!(c.stop_error("x"), JobError::cancelled("x"));
        assert!(!c.sleep(Duration::from_secs(5)));
        let ctx = JobContext::new("x", "t", json!({}), 1, 1, c);
        assert!(ctx.is_cancelled());
    }
}
