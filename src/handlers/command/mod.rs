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
//!
//! # Resource limits
//!
//! A table may set four limits ([`ResourceLimits`]). Two are the kernel's, applied in the
//! child with setrlimit(2): `cpu_secs` (RLIMIT_CPU) and `nofile` (RLIMIT_NOFILE). jobq forbids
//! unsafe code, so it cannot run code between fork and exec (`pre_exec`); instead the program is
//! started through `/bin/sh -c 'ulimit ...; exec "$@"' jobq-limits <program> <args>`: the
//! shell's `ulimit` is setrlimit in its own process, and `exec` replaces the shell with the
//! program, which keeps its pid, its process group and its limits, so the supervision above is
//! unchanged. Only types with one of these two limits go through the shell; the others are
//! started directly as before. (Re-executing jobq itself as the setter would depend on
//! `current_exe()`, which is not jobq in a program that embeds it, or in tests.) Just before
//! `exec` the shell writes [`MARKER`] on stdout, which the reader strips: a run whose stdout
//! does not start with it never reached the program (a limit was refused: above the inherited
//! hard limit, or a shell without that `ulimit` option), and fails permanently with the shell's
//! error rather than running unlimited. `config::handlers_file` refuses such values up front
//! when it can tell.
//!
//! - `cpu_secs = N`: soft limit N, hard N + 1, so the program gets SIGXCPU at N seconds of CPU
//!   time and SIGKILL at N + 1 if it ignores that. RLIMIT_CPU is per process: each process of
//!   the group has its own N seconds (a child killed for it shows as whatever its parent makes
//!   of that). When the program itself dies of SIGXCPU, or of a SIGKILL that jobq did not send
//!   after N seconds of CPU time (read from /proc while it is an unreaped zombie), the attempt
//!   fails permanently with `cpu time limit N s exceeded`, and the rest of its group is killed
//!   as after any exit. A program that handles SIGXCPU and exits has the last word: its exit
//!   status counts as usual.
//! - `nofile = N`: RLIMIT_NOFILE, soft and hard N, per process. Nothing is killed for it: the
//!   program's `open` fails with EMFILE.
//! - `memory_mb = N`: enforced by jobq, not the kernel. The supervisor sums the resident memory
//!   (RSS) of the processes of the program's group every 100 ms (`process::MEMORY_SAMPLE`; less
//!   often on a host with thousands of processes, to keep the cost under 1% of a core) and
//!   kills the group past N MB: the attempt fails permanently with `out of memory (limit N MB)`,
//!   which jobq knows for certain because it did the kill. Pages shared between processes (a
//!   forked child's copy-on-write pages) count in each, so the sum errs high, never low.
//!   RLIMIT_AS was the alternative, but it counts address space reserved, not memory used (Go,
//!   the JVM and sanitizers reserve far more than they touch), and a program over it sees a
//!   failed allocation and crashes in its own way, which jobq cannot tell from any other crash.
//!   The price of sampling: a program that allocates very fast can overshoot by what it
//!   allocates in one interval before it is killed; for a hard cap use a cgroup (systemd
//!   `MemoryMax=`, `docker run --memory`) as well.
//! - `max_output_kb = N`: the most bytes the program may write on stdout (stderr is only
//!   tailed, so it is not limited). Past N KB the group is killed and the attempt fails
//!   permanently with `output limit N KB exceeded`. The result is still the first 64 KiB.
//!
//! Each memory, CPU and output failure is counted in
//! `command_limit_exceeded_total{type, limit="memory|cpu|output"}`.

mod parents;
mod process;
mod stderr;

use nix::sys::signal::Signal;
use serde_json::Value;
use std::os::unix::process::ExitStatusExt;
use std::process::Command as Process;
use std::sync::Arc;
use std::time::Duration;

pub use crate::config::{CommandSpec, ResourceLimits};
use crate::handler::{Handler, JobContext, JobError, JobResult};
use parents::ParentsFile;
use process::{Capture, Finished, Stop, Watch};

/// How much of stdout becomes the result.
pub const STDOUT_CAP: usize = 64 * 1024;
/// How much of the end of stderr goes into the error.
pub const STDERR_TAIL: usize = 2 * 1024;
/// The shell that sets the kernel limits before it `exec`s the program (see the module docs).
const SHELL: &str = "/bin/sh";
/// What that shell writes on stdout just before `exec`: proof that the limits were set.
const MARKER: &str = "jobq: limits set\n";
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

    /// The process to start for `job`, and what the supervisor must watch: the program itself,
    /// or, with `cpu_secs` or `nofile`, the shell that sets them and becomes the program.
    fn process(&self, job: &JobContext) -> (Process, Watch) {
        let spec = &self.spec;
        let limits = &spec.limits;
        let mut watch = Watch {
            memory_bytes: limits.memory_mb.map(|mb| mb * 1024 * 1024),
            output_bytes: limits.max_output_kb.map(|kb| kb * 1024),
            marker: None,
        };
        let mut cmd = if limits.needs_rlimits() {
            let mut sets = Vec::new();
            if let Some(n) = limits.cpu_secs {
                // Soft and hard at N + 1 in one call, then the soft one down to N: valid
                // whatever the inherited soft limit was (a soft limit above the hard one is
                // refused, so setting either alone first can fail).
                sets.push(format!("ulimit -t {}", n + 1));
                sets.push(format!("ulimit -S -t {n}"));
            }
            if let Some(n) = limits.nofile {
                sets.push(format!("ulimit -n {n}"));
            }
            // The shell exports PWD; the program would not see it without the shell.
            if !spec.env.contains_key("PWD") {
                sets.push("unset PWD".into());
            }
            sets.push(format!("printf '%s\\n' '{}'", MARKER.trim_end()));
            sets.push("exec \"$@\"".into());
            watch.marker = Some(MARKER.as_bytes());
            let mut cmd = Process::new(SHELL);
            cmd.arg("-c")
                .arg(sets.join(" && "))
                .arg("jobq-limits")
                .arg(&spec.program);
            cmd
        } else {
            Process::new(&spec.program)
        };
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
        (cmd, watch)
    }

    /// Counts a run stopped by a limit (`memory`, `cpu`, `output`) in
    /// `command_limit_exceeded_total`.
    fn count(job: &JobContext, limit: &str) {
        if let Some(m) = &job.metrics {
            m.count_command_limit(&job.kind, limit);
        }
    }
}

impl Handler for Command {
    fn run(&self, job: &JobContext) -> JobResult {
        let spec = &self.spec;
        let program = spec.program.display().to_string();
        let (mut cmd, watch) = self.process(job);
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
            cpu,
        } = process::supervise(
            &mut cmd,
            job,
            spec.timeout,
            self.cancel_grace,
            watch,
            &program,
        )
        .map_err(|e| {
            JobError::transient(format!("cannot start {program} for {}: {e}", job.kind))
        })?;
        let limits = &spec.limits;

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
            Some(Stop::OutOfMemory { resident }) => {
                Self::count(job, "memory");
                return Err(JobError::permanent(format!(
                    "out of memory (limit {} MB): {program} and its process group were killed at {} MB resident{}",
                    limits.memory_mb.unwrap_or_default(),
                    resident.div_ceil(1024 * 1024),
                    with_stderr(&cap.stderr)
                )));
            }
            Some(Stop::OutputLimit) | None => {}
        }
        if !cap.marker_seen {
            // The shell failed before `exec`: the program never ran (see the module docs).
            return Err(JobError::permanent(format!(
                "cannot apply the limits of {} ({}) with {SHELL}, so {program} was not started{}",
                job.kind,
                rlimits_text(limits),
                with_stderr(&cap.stderr)
            )));
        }
        if let Some(kb) = limits.max_output_kb {
            if cap.stdout_total as u64 > kb * 1024 {
                Self::count(job, "output");
                return Err(JobError::permanent(format!(
                    "output limit {kb} KB exceeded: {program} wrote more than {} bytes on stdout{}{}",
                    kb * 1024,
                    if stop.is_some() { "; its process group was killed" } else { "" },
                    with_stderr(&cap.stderr)
                )));
            }
        }
        let status = status.map_err(|e| {
            JobError::transient(format!("cannot get the exit status of {program}: {e}"))
        })?;
        if let Some(secs) = limits.cpu_secs {
            // SIGXCPU comes from the kernel at the soft limit (jobq never sends it), SIGKILL at
            // the hard one, N + 1 s, when the program ignored SIGXCPU: jobq sent none here (it
            // stopped nothing), so a SIGKILL after N s of CPU time is that. (/proc's count and
            // the kernel's limit check can differ by a tenth of a second; the second between
            // the soft and hard limits covers it.)
            let how = match status.signal().and_then(|s| Signal::try_from(s).ok()) {
                Some(Signal::SIGXCPU) => Some("was killed by SIGXCPU"),
                Some(Signal::SIGKILL) if cpu.is_some_and(|c| c >= Duration::from_secs(secs)) => {
                    Some("ignored SIGXCPU and was killed by SIGKILL at the hard limit")
                }
                _ => None,
            };
            if let Some(how) = how {
                Self::count(job, "cpu");
                return Err(JobError::permanent(format!(
                    "cpu time limit {secs} s exceeded: {program} {how}; its process group was killed{}",
                    with_stderr(&cap.stderr)
                )));
            }
        }
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

/// The kernel limits as written in HANDLERS_FILE, for an error.
fn rlimits_text(limits: &ResourceLimits) -> String {
    let mut parts = Vec::new();
    if let Some(n) = limits.cpu_secs {
        parts.push(format!("cpu_secs = {n}"));
    }
    if let Some(n) = limits.nofile {
        parts.push(format!("nofile = {n}"));
    }
    parts.join(", ")
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
