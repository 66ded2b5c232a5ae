//! Progress reports of a running job: [`super::JobContext::progress`] hands them to the sink the
//! worker sets, which writes at most one every [`MIN_INTERVAL`] to the job's record, so a
//! chatty handler cannot flood Redis. The latest report wins: one held back goes out with the
//! next report after the interval, or when the handler returns ([`ProgressSink::finish`]). No
//! thread per job: writes happen on the reporting thread.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::store::{StoreError, StorePool};

/// At most one write per job in this time.
pub const MIN_INTERVAL: Duration = Duration::from_millis(500);
/// After a failed write (Redis unreachable), no other is tried for this long, so a handler
/// that reports often does not wait out a connect timeout on every report.
const PAUSE_AFTER_ERROR: Duration = Duration::from_secs(5);
/// Longer messages are cut to this many characters.
pub const MAX_MESSAGE_CHARS: usize = 200;

/// Writes one report; Ok(false) when the job no longer runs under this claim.
type Write = dyn Fn(u8, &str) -> Result<bool, StoreError> + Send + Sync;

/// Where a job's progress reports go: its record, rate-limited.
pub(crate) struct ProgressSink {
    write: Box<Write>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// No write before this.
    next_at: Option<Instant>,
    /// The last value written.
    written: Option<(u8, String)>,
    /// The latest value not written yet.
    held: Option<(u8, String)>,
    /// No more writes: the handler returned, or the job moved on.
    closed: bool,
    /// A failed write was logged (once per job is enough).
    warned: bool,
}

impl fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProgressSink").finish_non_exhaustive()
    }
}

impl ProgressSink {
    /// A sink that writes with `write`.
    pub(crate) fn new(
        write: impl Fn(u8, &str) -> Result<bool, StoreError> + Send + Sync + 'static,
    ) -> Arc<ProgressSink> {
        Arc::new(ProgressSink {
            write: Box::new(write),
            state: Mutex::new(State::default()),
        })
    }

    /// The sink of job `id` run under claim number `claim`, writing through `pool`.
    pub(crate) fn to_store(pool: Arc<StorePool>, id: String, claim: String) -> Arc<ProgressSink> {
        ProgressSink::new(move |percent, message| {
            pool.with(|s| s.set_progress(&id, &claim, percent, message))
        })
    }

    /// Reports `percent` (clamped to 100) and `message` (cut to [`MAX_MESSAGE_CHARS`]): written
    /// now if the last write is [`MIN_INTERVAL`] old, else held for a later report.
    pub(crate) fn report(&self, percent: u8, message: &str) {
        let value = (percent.min(100), cut(message.trim()));
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.closed || (st.held.is_none() && st.written.as_ref() == Some(&value)) {
            return;
        }
        if st.next_at.is_some_and(|t| Instant::now() < t) {
            st.held = Some(value);
            return;
        }
        self.send(&mut st, value);
    }

    /// The handler returned: writes a report still held back (the job is still `running` until
    /// its outcome is recorded), then ignores any later one.
    pub(crate) fn finish(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(value) = st.held.take() {
            if !st.closed {
                self.send(&mut st, value);
            }
        }
        st.closed = true;
    }

    /// Writes `value` under the lock, so reports from two threads (a handler and its helper)
    /// keep their order and their interval.
    fn send(&self, st: &mut State, value: (u8, String)) {
        st.held = None;
        match (self.write)(value.0, &value.1) {
            Ok(true) => {
                st.next_at = Some(Instant::now() + MIN_INTERVAL);
                st.written = Some(value);
            }
            // Finished, taken back or claimed again: its record is no longer this run's.
            Ok(false) => st.closed = true,
            Err(e) => {
                st.next_at = Some(Instant::now() + PAUSE_AFTER_ERROR);
                if !std::mem::replace(&mut st.warned, true) {
                    log::warn!("a job's progress could not be stored ({e}); it runs on");
                }
            }
        }
    }
}

/// `s` cut to [`MAX_MESSAGE_CHARS`] characters.
fn cut(s: &str) -> String {
    match s.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((end, _)) => s[..end].to_string(),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writes a test sink saw.
    type Log = Arc<Mutex<Vec<(u8, String)>>>;

    /// A sink that records its writes; `answer` is what each write returns.
    fn recording(answer: Result<bool, StoreError>) -> (Arc<ProgressSink>, Log) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = log.clone();
        let sink = ProgressSink::new(move |p, m| {
            seen.lock().unwrap().push((p, m.to_string()));
            answer.clone()
        });
        (sink, log)
    }

    #[test]
    fn reports_are_rate_limited_and_the_latest_wins() {
        let (sink, log) = recording(Ok(true));
        sink.report(10, "a");
        for p in 11..=30 {
            sink.report(p, "b");
        }
        assert_eq!(*log.lock().unwrap(), [(10, "a".to_string())]);
        std::thread::sleep(MIN_INTERVAL + Duration::from_millis(20));
        sink.report(40, "c");
        sink.report(50, "d");
        sink.finish();
        sink.report(60, "after the end");
        assert_eq!(
            *log.lock().unwrap(),
            [(10, "a".into()), (40, "c".into()), (50, "d".into())]
        );
    }

    #[test]
    fn values_are_clamped_cut_and_not_repeated() {
        let (sink, log) = recording(Ok(true));
        sink.report(255, &"é".repeat(300));
        std::thread::sleep(MIN_INTERVAL + Duration::from_millis(20));
        sink.report(100, &"é".repeat(201));
        sink.finish();
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 1, "the same value is not written twice");
        assert_eq!(
            (log[0].0, log[0].1.chars().count()),
            (100, MAX_MESSAGE_CHARS)
        );
    }

    #[test]
    fn a_job_that_moved_on_gets_no_more_writes() {
        let (sink, log) = recording(Ok(false));
        sink.report(1, "x");
        std::thread::sleep(MIN_INTERVAL + Duration::from_millis(20));
        sink.report(2, "y");
        sink.finish();
        assert_eq!(log.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_failed_write_pauses_the_reports() {
        let (sink, log) = recording(Err(StoreError::unavailable("down")));
        sink.report(1, "x");
        std::thread::sleep(MIN_INTERVAL + Duration::from_millis(20));
        sink.report(2, "y");
        assert_eq!(log.lock().unwrap().len(), 1);
    }
}
