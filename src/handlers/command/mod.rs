//! Operator-defined job types that run a program: one per [`CommandSpec`], which the
//! configuration reads from the `[commands.<type>]` tables of HANDLERS_FILE
//! (`config::handlers_file`). This module is the handler: the program's environment, and what
//! its exit means for the job; `process.rs` supervises the running program.
//!
//! The job's payload (JSON) is the program's stdin; `JOB_ID`, `JOB_TYPE`, `JOB_ATTEMPT` and
//! `JOB_MAX_ATTEMPTS` are in its environment (and `JOB_PARENTS_FILE` for a workflow job whose
//! parents have results, see `parents.rs`; `TRACEPARENT` and `TRACESTATE` for a job submitted
//! in a trace, the attempt's own span), which is otherwise only `PATH`, `HOME`, `LANG`,
//! `LC_ALL`, `TZ`, `TMPDIR`, `USER`, `LOGNAME` (when jobq has them) and the table's `env`: jobq's
//! own secrets (REDIS_URL, SMTP_URL, API_TOKEN) are not handed down. Exit status 0 is success and
//! stdout (first 64 KiB) the result: JSON when it parses, else a string. Any other status fails
//! the attempt with the last 2 KiB of stderr as the error: transient (retried), unless the status
//! is listed in `permanent_exit_codes`. Status 75 (`EX_TEMPFAIL`) snoozes the job: it runs again
//! after the seconds printed first on stdout (60 when none), without using up an attempt.
//!
//! Each program runs in a process group of its own. Past `timeout_secs`, or when the attempt is
//! cancelled (its JOB_TIMEOUT_SECS, or a shutdown that outlived SHUTDOWN_TIMEOUT_SECS), the whole
//! group is killed with SIGKILL, children included. A job cancelled through the API gets SIGTERM
//! first, and CANCEL_GRACE_SECS to exit before the SIGKILL. When the program exits by itself,
//! whatever it left running in its group is killed too, so no job leaves processes behind. (A
//! child that starts a session or group of its own has opted out of this.)

mod parents;
mod process;
mod stderr;

use serde_json::Value;
use std::os::unix::process::ExitStatusExt;
use std::process::Command as Process;
use std::sync::Arc;
use std::time::Duration;

pub use crate::config::CommandSpec;
use crate::handler::{Handler, JobContext, JobError, JobResult};
use parents::ParentsFile;
use process::{Capture, Finished, Stop};

/// How much of stdout becomes the result.
pub const STDOUT_CAP: usize = 64 * 1024;
/// How much of the end of stderr goes into the error.
pub const STDERR_TAIL: usize = 2 * 1024;
/// Variables of jobq's own environment a command inherits.
const INHERITED_ENV: &[&str] = &[
    "PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME",
];

/// The handler of one command job type.
pub struct Command {
    spec: Arc<CommandSpec>,
    /// CANCEL_GRACE_SECS: from SIGTERM to SIGKILL when the job is cancelled through the API.
    cancel_grace: Duration,
}

impl Command {
    pub fn new(spec: CommandSpec, cancel_grace: Duration) -> Command {
        Command {
            spec: Arc::new(spec),
            cancel_grace,
        }
    }
}

impl Handler for Command {
    fn run(&self, job: &JobContext) -> JobResult {
        let spec = &self.spec;
        let program = spec.program.display().to_string();
        let mut cmd = Process::new(&spec.program);
        cmd.args(&spec.args).env_clear();
        for name in INHERITED_ENV {
            if let Some(v) = std::env::var_os(name) {
                cmd.env(name, v);
            }
        }
        cmd.envs(&spec.env)
            .env("JOB_ID", job.id.as_str())
            .env("JOB_TYPE", &job.kind)
            .env("JOB_ATTEMPT", job.attempt.to_string())
            .env("JOB_MAX_ATTEMPTS", job.max_attempts.to_string());
        // The OpenTelemetry convention for handing a trace to a child process.
        if let Some(tp) = job.traceparent() {
            cmd.env("TRACEPARENT", tp);
        }
        if let Some(ts) = job.tracestate() {
            cmd.env("TRACESTATE", ts);
        }
        if let Some(dir) = &spec.working_dir {
            cmd.current_dir(dir);
        }
        // Kept until the program has ended (the end of this function), then removed.
        let parents = match job.parent_results() {
            results if results.is_empty() => None,
            results => Some(ParentsFile::write(results).map_err(|e| {
                JobError::transient(format!(
                    "cannot write the parents' results for {program}: {e}"
                ))
            })?),
        };
        if let Some(file) = &parents {
            cmd.env("JOB_PARENTS_FILE", file.path());
        }
        let Finished {
            status,
            stop,
            capture: cap,
            elapsed,
        } = process::supervise(&mut cmd, job, spec.timeout, self.cancel_grace, &program).map_err(
            |e| JobError::transient(format!("cannot start {program} for {}: {e}", job.kind)),
        )?;

        match stop {
            Some(Stop::TimedOut) => {
                return Err(JobError::timed_out(format!(
                    "timed out after {} s: {program} and its process group were killed{}",
                    spec.timeout.as_secs(),
                    with_stderr(&cap.stderr)
                )))
            }
            Some(Stop::JobCancelled(exited)) => {
                let how = match exited {
                    Some(after) => format!("exited after {:.1} s", after.as_secs_f64()),
                    None => format!(
                        "did not exit within {} s, SIGKILL sent",
                        secs(self.cancel_grace)
                    ),
                };
                let tail = process::stderr_tail(&cap.stderr);
                return Err(JobError::cancelled(format!(
                    "cancelled: SIGTERM sent to the process group of {program}, {how}{}",
                    if tail.is_empty() { String::new() } else { format!("; stderr: {tail}") }
                )));
            }
            Some(Stop::Cancelled) => {
                return Err(JobError::transient(format!(
                    "cancelled after {} s (the attempt's time limit passed or jobq is shutting down): {program} and its process group were killed",
                    elapsed.as_secs()
                )))
            }
            None => {}
        }
        let status = status.map_err(|e| {
            JobError::transient(format!("cannot get the exit status of {program}: {e}"))
        })?;
        if status.success() {
            log::info!(
                "job {} ({}) {program} exited 0 in {} ms, {} bytes on stdout",
                job.id,
                job.kind_label(),
                elapsed.as_millis(),
                cap.stdout_total
            );
            return Ok(result_of(&cap, &job.id));
        }
        if status.code() == Some(EX_TEMPFAIL) {
            return Err(snooze_of(&cap, &program));
        }
        let (what, permanent) = match (status.code(), status.signal()) {
            (Some(code), _) => (
                format!("exited with status {code}"),
                spec.permanent_exit_codes.contains(&code),
            ),
            (None, Some(sig)) => (format!("was killed by signal {sig}"), false),
            (None, None) => (format!("ended with {status}"), false),
        };
        let message = format!("{program} {what}{}", with_stderr(&cap.stderr));
        Err(if permanent {
            JobError::permanent(message)
        } else {
            JobError::transient(message)
        })
    }
}

/// Exit status 75 (`EX_TEMPFAIL` of sysexits.h): "not now, try again later". The delay is
/// the first thing on stdout, in seconds (`30`, `0.5`); without one, 60 s.
const EX_TEMPFAIL: i32 = 75;
/// The delay of a snooze that names none, and the longest one taken from stdout.
const DEFAULT_SNOOZE: Duration = Duration::from_secs(60);
const MAX_SNOOZE: Duration = Duration::from_secs(7 * 24 * 3600);

fn snooze_of(cap: &Capture, program: &str) -> JobError {
    let said = String::from_utf8_lossy(&cap.stdout);
    let delay = said
        .split_whitespace()
        .next()
        .and_then(|w| w.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(DEFAULT_SNOOZE, |s| {
            Duration::from_secs_f64(s).min(MAX_SNOOZE)
        });
    JobError::snooze(
        delay,
        format!(
            "{program} exited with status 75 (try again later): snoozed for {:.3} s",
            delay.as_secs_f64()
        ),
    )
}

/// A duration in seconds as people write it: `10`, `0.3`.
fn secs(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{:.1}", d.as_secs_f64())
    }
}

fn with_stderr(stderr: &[u8]) -> String {
    let tail = process::stderr_tail(stderr);
    if tail.is_empty() {
        " (nothing on stderr)".into()
    } else {
        format!(": {tail}")
    }
}

/// stdout as the job's result: JSON when it is JSON, else text; nothing → no result.
fn result_of(cap: &Capture, id: &str) -> Value {
    if cap.stdout_total > STDOUT_CAP {
        log::warn!(
            "job {id}: stdout was {} bytes; only the first {STDOUT_CAP} are kept, as text",
            cap.stdout_total
        );
        return Value::String(String::from_utf8_lossy(&cap.stdout).into_owned());
    }
    if cap.stdout.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(&cap.stdout).unwrap_or_else(|_| {
        Value::String(
            String::from_utf8_lossy(&cap.stdout)
                .trim_end_matches(['\n', '\r'])
                .to_string(),
        )
    })
}

#[cfg(test)]
mod tests;
