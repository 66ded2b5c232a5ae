//! Operator-defined job types that run a program: one per [`CommandSpec`], which the
//! configuration reads from the `[commands.<type>]` tables of HANDLERS_FILE
//! (`config::handlers_file`). This module is the handler: the program's environment, and what
//! its exit means for the job; `process.rs` supervises the running program.
//!
//! The job's payload (JSON) is the program's stdin; `JOB_ID`, `JOB_TYPE`, `JOB_ATTEMPT` and
//! `JOB_MAX_ATTEMPTS` are in its environment (and `JOB_PARENTS_FILE` for a workflow job whose
//! parents have results, see `parents.rs`), which is otherwise only `PATH`, `HOME`, `LANG`,
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
                job.kind,
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
mod tests {
    use super::*;
    use crate::handler::is_valid_type_name;
    use crate::handler::{Cancellation, ErrorKind};
    use serde_json::json;
    use std::time::{Duration, Instant};

    fn ctx(payload: Value) -> JobContext {
        JobContext::new("job-1", "cmd", payload, 2, 3, Cancellation::new(None))
    }

    fn cmd(spec: CommandSpec) -> Command {
        Command::new(spec, Duration::from_secs(10))
    }

    fn spec(run: &[&str]) -> CommandSpec {
        let text = format!(
            "[commands.cmd]\nrun = [{}]\ntimeout_secs = 5\n",
            run.iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        crate::config::handlers_file::parse(&text, "t.toml")
            .unwrap()
            .remove(0)
    }

    #[test]
    fn handlers_file_refuses_the_type_names_the_registry_refuses() {
        let names = [
            "a",
            "billing.sync",
            "x:y-z_1",
            "",
            "has space",
            "é",
            &"x".repeat(64),
        ];
        for name in names.iter().copied().chain([&*"x".repeat(65)]) {
            let text = format!("[commands.{name:?}]\nrun = [\"/bin/true\"]\n");
            let file_ok = crate::config::handlers_file::parse(&text, "t.toml").is_ok();
            assert_eq!(file_ok, is_valid_type_name(name), "{name:?}");
        }
    }

    #[test]
    fn json_stdout_is_the_result_and_env_is_set() {
        let c = cmd(spec(&[
            "/bin/sh",
            "-c",
            "read -r p; printf '{\"in\": %s, \"id\": \"%s\", \"attempt\": %s, \"type\": \"%s\"}' \"$p\" \"$JOB_ID\" \"$JOB_ATTEMPT\" \"$JOB_TYPE\"",
        ]));
        let r = c.run(&ctx(json!({"n": 1}))).unwrap();
        assert_eq!(
            r,
            json!({"in": {"n": 1}, "id": "job-1", "attempt": 2, "type": "cmd"})
        );
    }

    #[test]
    fn text_stdout_is_a_string_and_stderr_tail_is_the_error() {
        let c = cmd(spec(&["/bin/sh", "-c", "echo hello there"]));
        assert_eq!(c.run(&ctx(json!({}))).unwrap(), json!("hello there"));
        let c = cmd(spec(&[
            "/bin/sh",
            "-c",
            "i=0; while [ $i -lt 500 ]; do echo \"noise line $i\" >&2; i=$((i+1)); done; echo 'the real reason' >&2; exit 3",
        ]));
        let e = c.run(&ctx(json!({}))).unwrap_err();
        assert!(!e.is_permanent());
        assert!(e.message.contains("exited with status 3"), "{e}");
        assert!(e.message.ends_with("the real reason"), "{e}");
        assert!(e.message.len() < STDERR_TAIL + 200, "{}", e.message.len());
    }

    #[test]
    fn exit_75_snoozes_for_the_seconds_on_stdout() {
        let e = cmd(spec(&["/bin/sh", "-c", "echo 2.5; exit 75"]))
            .run(&ctx(json!({})))
            .unwrap_err();
        assert_eq!(e.snooze_delay(), Some(Duration::from_millis(2500)), "{e}");
        let e = cmd(spec(&["/bin/sh", "-c", "exit 75"]))
            .run(&ctx(json!({})))
            .unwrap_err();
        assert_eq!(e.snooze_delay(), Some(DEFAULT_SNOOZE), "{e}");
    }

    #[test]
    fn listed_exit_codes_are_permanent() {
        let mut s = spec(&["/bin/sh", "-c", "exit 65"]);
        s.permanent_exit_codes = vec![65];
        let e = cmd(s).run(&ctx(json!({}))).unwrap_err();
        assert!(e.is_permanent(), "{e}");
    }

    #[test]
    fn big_output_does_not_block() {
        // 1 MiB on each pipe: more than a pipe buffer holds, so both must be read while it runs.
        let c = cmd(spec(&[
            "/bin/sh",
            "-c",
            "head -c 1048576 /dev/zero | tr '\\0' x; head -c 1048576 /dev/zero | tr '\\0' y >&2",
        ]));
        let r = c.run(&ctx(json!({}))).unwrap();
        assert_eq!(r.as_str().unwrap().len(), STDOUT_CAP);
    }

    #[test]
    fn a_timeout_kills_the_program() {
        let mut s = spec(&["/bin/sh", "-c", "sleep 30"]);
        s.timeout = Duration::from_millis(200);
        let started = Instant::now();
        let e = cmd(s).run(&ctx(json!({}))).unwrap_err();
        assert!(e.message.starts_with("timed out after 0 s"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    /// Whether process `pid` is gone: no /proc entry, or a zombie waiting to be reaped by
    /// whoever inherited it. Waits up to 5 s for it.
    fn gone(pid: i32) -> bool {
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return true,
                Ok(stat) => {
                    let state = stat.rsplit_once(") ").map(|(_, r)| r.chars().next());
                    if state == Some(Some('Z')) {
                        return true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Runs a program that writes its pid and a child's pid (a child that ignores SIGTERM) to a
    /// file, then cancels the job through the API once both are written. Returns the error and
    /// the pids.
    fn cancel_a_running(on_term: &str, grace: Duration) -> (JobError, Vec<i32>) {
        let dir = std::env::temp_dir().join(format!("jobq-cancel-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir).unwrap();
        let pids = dir.join("pids");
        let script = format!(
            "trap '{on_term}' TERM; (trap '' TERM; exec sleep 300) & echo $$ $! > {}.tmp; mv {0}.tmp {0}; while :; do sleep 0.05; done",
            pids.display()
        );
        let mut s = spec(&["/bin/sh", "-c", &script]);
        s.timeout = Duration::from_secs(60);
        let cancel = Cancellation::new(None);
        let job = JobContext::new("job-1", "cmd", json!({}), 1, 3, cancel.clone());
        let watcher = {
            let pids = pids.clone();
            std::thread::spawn(move || {
                let until = Instant::now() + Duration::from_secs(10);
                while !pids.exists() && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(10));
                }
                cancel.cancel_job();
            })
        };
        let e = Command::new(s, grace).run(&job).unwrap_err();
        watcher.join().unwrap();
        let pids: Vec<i32> = std::fs::read_to_string(&pids)
            .unwrap()
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(pids.len(), 2, "{pids:?}");
        (e, pids)
    }

    #[test]
    fn a_cancelled_job_gets_sigterm_then_its_group_is_killed() {
        let started = Instant::now();
        let (e, pids) = cancel_a_running("exit 0", Duration::from_secs(20));
        assert_eq!(e.kind, ErrorKind::Cancelled, "{e}");
        assert!(
            e.message.starts_with(
                "cancelled: SIGTERM sent to the process group of /bin/sh, exited after 0."
            ),
            "{e}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no grace waited"
        );
        for pid in pids {
            assert!(gone(pid), "process {pid} outlived the cancellation");
        }
    }

    #[test]
    fn a_cancelled_job_that_ignores_sigterm_is_killed_after_the_grace() {
        let started = Instant::now();
        let (e, pids) = cancel_a_running("", Duration::from_millis(300));
        assert_eq!(e.kind, ErrorKind::Cancelled, "{e}");
        assert_eq!(
            e.message,
            "cancelled: SIGTERM sent to the process group of /bin/sh, did not exit within 0.3 s, SIGKILL sent"
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
        for pid in pids {
            assert!(gone(pid), "process {pid} outlived the cancellation");
        }
    }

    #[test]
    fn progress_lines_on_stderr_reach_the_job_record() {
        use crate::handler::ProgressSink;
        use crate::store::test_redis::TestRedis;
        use crate::store::{Selection, StorePool};
        let redis = TestRedis::start();
        let mut store = redis.store();
        let new = crate::job::NewJob {
            id: crate::job::JobId::new_random(),
            kind: "cmd".into(),
            payload: "{}".into(),
            delay_ms: 0,
            run_at_us: None,
            max_attempts: 3,
            timeout_secs: None,
            idempotency_key: None,
            queue: "default".into(),
            priority: crate::job::Priority::Normal,
            group: None,
        };
        store.create(std::slice::from_ref(&new), 100, 60).unwrap();
        store
            .heartbeat("p1", Duration::from_secs(30), "{}", None)
            .unwrap();
        let claimed = store
            .claim("p1", 1, &Selection::All)
            .unwrap()
            .unwrap()
            .jobs
            .remove(0);
        let mut job = ctx(json!({}));
        job.id = crate::job::JobId::from_stored(claimed.id.clone());
        job.progress = Some(ProgressSink::to_store(
            StorePool::new(redis.backend()),
            claimed.id.clone(),
            claimed.claim.clone(),
        ));
        let c = cmd(spec(&[
            "/bin/sh",
            "-c",
            "echo 'progress: 10 starting' >&2; sleep 1; echo 'progress: 40 resizing' >&2; echo 'progress: 45 held back' >&2; echo 'progress: oops' >&2; exit 3",
        ]));
        let e = c.run(&job).unwrap_err();
        assert!(
            e.message.ends_with("exited with status 3: progress: oops"),
            "{e}"
        );
        let shown = |store: &mut crate::store::Store| {
            let p = store.job(&claimed.id).unwrap().unwrap().progress.unwrap();
            (p.percent, p.message)
        };
        assert_eq!(shown(&mut store), (40, "resizing".to_string()));
        // The worker's last step: what the rate limit held back goes out.
        job.progress.as_ref().unwrap().finish();
        assert_eq!(shown(&mut store), (45, "held back".to_string()));
    }

    #[test]
    fn parent_results_come_in_a_private_file_that_is_removed_afterwards() {
        let mut job = ctx(json!({"n": 1}));
        job.parents
            .insert("resize".into(), json!({"file": "a.png"}));
        job.parents.insert("0b9e-id".into(), Value::Null);
        let c = cmd(spec(&[
            "/bin/sh",
            "-c",
            r#"read -r p; f="$JOB_PARENTS_FILE"; printf '{"payload": %s, "parents": %s, "path": "%s", "modes": "%s %s"}' "$p" "$(cat "$f")" "$f" "$(stat -c %a "$f")" "$(stat -c %a "$(dirname "$f")")""#,
        ]));
        let r = c.run(&job).unwrap();
        assert_eq!(r["payload"], json!({"n": 1}), "stdin stays the payload");
        assert_eq!(
            r["parents"],
            json!({"resize": {"file": "a.png"}, "0b9e-id": null})
        );
        assert_eq!(r["modes"], "600 700");
        let path = std::path::PathBuf::from(r["path"].as_str().unwrap());
        assert!(!path.exists(), "{path:?} is left behind");
        assert!(
            !path.parent().unwrap().exists(),
            "its directory is left behind"
        );

        // Without parents there is no file, and no variable.
        let c = cmd(spec(&[
            "/bin/sh",
            "-c",
            "echo \"${JOB_PARENTS_FILE-unset}\"",
        ]));
        assert_eq!(c.run(&ctx(json!({}))).unwrap(), json!("unset"));
    }
}
