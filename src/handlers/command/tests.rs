//! The command handler run against real programs (`/bin/sh` scripts): results, errors,
//! snoozes, timeouts, cancellation, progress lines and parent results.

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
    let new = crate::job::NewJob::plain("cmd");
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

// ------------------------------------------------------------------------------------------------
// Resource limits
// ------------------------------------------------------------------------------------------------

/// A spec read from HANDLERS_FILE text with `extra` lines in its table (limits, timeout).
fn spec_with(run: &[&str], extra: &str) -> CommandSpec {
    let text = format!(
        "[commands.cmd]\nrun = [{}]\n{extra}\n",
        run.iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    crate::config::handlers_file::parse(&text, "t.toml")
        .unwrap()
        .remove(0)
}

/// A context that counts in metrics of its own, as a worker's does.
fn counted_ctx() -> (JobContext, Arc<crate::metrics::Metrics>) {
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let mut job = ctx(json!({}));
    job.metrics = Some(metrics.clone());
    (job, metrics)
}

fn limit_count(m: &crate::metrics::Metrics, limit: &str) -> u64 {
    m.command_limit_exceeded
        .with_label_values(&["cmd", limit])
        .get()
}

/// A private directory for a test's files, and the path of its `pids` file there.
fn pid_dir(name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("jobq-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&dir).unwrap();
    let pids = dir.join("pids");
    (dir, pids)
}

/// The pids a program wrote to `file` (written to a temp name and renamed, so whole).
fn read_pids(file: &std::path::Path) -> Vec<i32> {
    std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("{file:?}: {e}"))
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// Python that takes `mb` MB and touches every page (bytes multiplication writes them), then
/// waits: only a kill ends it before the timeout.
fn hog(mb: u64) -> String {
    format!("b = b'x' * ({mb} * 1024 * 1024); import time; time.sleep(120)")
}

#[test]
fn a_program_over_its_memory_limit_fails_permanently_and_is_killed() {
    let (dir, pids) = pid_dir("oom");
    let script = format!(
        "import os; open('{0}.tmp', 'w').write(str(os.getpid())); os.rename('{0}.tmp', '{0}'); {1}",
        pids.display(),
        hog(300)
    );
    let s = spec_with(
        &["python3", "-c", &script],
        "timeout_secs = 120\nmemory_mb = 64",
    );
    let (job, metrics) = counted_ctx();
    let e = cmd(s).run(&job).unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert!(
        e.message.starts_with("out of memory (limit 64 MB): "),
        "{e}"
    );
    assert!(e.message.contains("process group were killed at"), "{e}");
    assert_eq!(limit_count(&metrics, "memory"), 1);
    for pid in read_pids(&pids) {
        assert!(gone(pid), "process {pid} outlived the memory kill");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn memory_is_summed_over_the_group_so_a_forked_child_is_caught() {
    // The program itself stays small; the child it starts in the background takes 300 MB.
    let (dir, pids) = pid_dir("oom-child");
    let script = format!(
        "python3 -c \"{}\" & echo $$ $! > {1}.tmp; mv {1}.tmp {1}; wait",
        hog(300),
        pids.display()
    );
    let s = spec_with(
        &["/bin/sh", "-c", &script],
        "timeout_secs = 120\nmemory_mb = 64",
    );
    let (job, metrics) = counted_ctx();
    let e = cmd(s).run(&job).unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert!(
        e.message.starts_with("out of memory (limit 64 MB): "),
        "{e}"
    );
    assert_eq!(limit_count(&metrics, "memory"), 1);
    let pids = read_pids(&pids);
    assert_eq!(pids.len(), 2, "{pids:?}");
    for pid in pids {
        assert!(gone(pid), "process {pid} outlived the memory kill");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs a busy loop under `cpu_secs = 1`, after `setup` (shell), with a child left in its group;
/// returns the error and the pids (the program's and the child's).
fn spin(setup: &str) -> (JobError, Vec<i32>, Arc<crate::metrics::Metrics>) {
    let (dir, pids) = pid_dir("cpu");
    let script = format!(
        "{setup}; sleep 300 & echo $$ $! > {0}.tmp; mv {0}.tmp {0}; while :; do :; done",
        pids.display()
    );
    let s = spec_with(
        &["/bin/sh", "-c", &script],
        "timeout_secs = 120\ncpu_secs = 1",
    );
    let (job, metrics) = counted_ctx();
    let e = cmd(s).run(&job).unwrap_err();
    let pids = read_pids(&pids);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(pids.len(), 2, "{pids:?}");
    (e, pids, metrics)
}

#[test]
fn a_program_over_its_cpu_limit_gets_sigxcpu_and_fails_permanently() {
    let (e, pids, metrics) = spin(":");
    assert!(e.is_permanent(), "{e}");
    assert!(
        e.message.starts_with(
            "cpu time limit 1 s exceeded: /bin/sh was killed by SIGXCPU; its process group was killed (nothing on stderr)"
        ),
        "{e}"
    );
    assert_eq!(limit_count(&metrics, "cpu"), 1);
    for pid in pids {
        assert!(gone(pid), "process {pid} outlived the CPU limit");
    }
}

#[test]
fn a_program_that_ignores_sigxcpu_is_killed_at_the_hard_limit() {
    let (e, pids, metrics) = spin("trap '' XCPU");
    assert!(e.is_permanent(), "{e}");
    assert!(
        e.message
            .starts_with("cpu time limit 1 s exceeded: /bin/sh ignored SIGXCPU and was killed by SIGKILL at the hard limit; "),
        "{e}"
    );
    assert_eq!(limit_count(&metrics, "cpu"), 1);
    for pid in pids {
        assert!(gone(pid), "process {pid} outlived the CPU limit");
    }
}

#[test]
fn nofile_is_the_programs_open_files_limit() {
    let s = spec_with(&["/bin/sh", "-c", "ulimit -Sn; ulimit -Hn"], "nofile = 64");
    assert_eq!(cmd(s).run(&ctx(json!({}))).unwrap(), json!("64\n64"));
    let s = spec_with(&["/bin/sh", "-c", "ulimit -St; ulimit -Ht"], "cpu_secs = 7");
    assert_eq!(cmd(s).run(&ctx(json!({}))).unwrap(), json!("7\n8"));
}

#[test]
fn more_stdout_than_max_output_kb_fails_permanently_and_kills_the_group() {
    let (dir, pids) = pid_dir("output");
    // 200 KB, then a wait that only a kill cuts short.
    let script = format!(
        "echo $$ > {0}.tmp; mv {0}.tmp {0}; head -c 204800 /dev/zero | tr '\\0' x; sleep 120",
        pids.display()
    );
    let s = spec_with(
        &["/bin/sh", "-c", &script],
        "timeout_secs = 120\nmax_output_kb = 100",
    );
    let (job, metrics) = counted_ctx();
    let e = cmd(s).run(&job).unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert!(
        e.message.starts_with(
            "output limit 100 KB exceeded: /bin/sh wrote more than 102400 bytes on stdout; its process group was killed"
        ),
        "{e}"
    );
    assert_eq!(limit_count(&metrics, "output"), 1);
    for pid in read_pids(&pids) {
        assert!(gone(pid), "process {pid} outlived the output limit");
    }
    let _ = std::fs::remove_dir_all(&dir);

    // Within the limit: the output is the result, as without one.
    let s = spec_with(
        &["/bin/sh", "-c", "head -c 51200 /dev/zero | tr '\\0' y"],
        "max_output_kb = 100",
    );
    let r = cmd(s).run(&ctx(json!({}))).unwrap();
    assert_eq!(r.as_str().map(str::len), Some(51200));
}

#[test]
fn a_program_within_its_limits_runs_as_without_them() {
    let all = "memory_mb = 512\ncpu_secs = 60\nmax_output_kb = 64\nnofile = 256";
    let run = [
        "/bin/sh",
        "-c",
        "read -r p; printf '{\"in\": %s, \"attempt\": %s}' \"$p\" \"$JOB_ATTEMPT\"",
    ];
    let want = json!({"in": {"n": 1}, "attempt": 2});
    let (mut job, metrics) = counted_ctx();
    job.payload = json!({"n": 1});
    assert_eq!(cmd(spec_with(&run, all)).run(&job).unwrap(), want);
    assert_eq!(cmd(spec(&run)).run(&job).unwrap(), want);
    for limit in ["memory", "cpu", "output"] {
        assert_eq!(limit_count(&metrics, limit), 0, "{limit}");
    }
    // The same environment, though a shell set the limits (it would have exported PWD).
    let env = |extra: &str| {
        let out = cmd(spec_with(&["env"], extra)).run(&job).unwrap();
        let mut lines: Vec<String> = out.as_str().unwrap().lines().map(String::from).collect();
        lines.sort();
        lines
    };
    let plain = env("");
    assert!(plain.iter().any(|l| l == "JOB_ATTEMPT=2"), "{plain:?}");
    assert_eq!(env(all), plain);
    // A plain failure stays a plain (transient) failure.
    let s = spec_with(&["/bin/sh", "-c", "echo no >&2; exit 3"], "cpu_secs = 60");
    let e = cmd(s).run(&ctx(json!({}))).unwrap_err();
    assert!(!e.is_permanent(), "{e}");
    assert_eq!(e.message, "/bin/sh exited with status 3: no");
}

#[test]
fn only_kernel_limits_start_the_program_through_the_shell() {
    let job = ctx(json!({}));
    let started = |extra: &str| {
        let c = cmd(spec_with(&["/bin/echo", "a b"], extra));
        let (p, _) = c.process(&job);
        let args: Vec<String> = p
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        (p.get_program().to_string_lossy().into_owned(), args)
    };
    // No limit, or only those jobq enforces itself: the program, directly.
    for extra in ["", "memory_mb = 100\nmax_output_kb = 10"] {
        assert_eq!(
            started(extra),
            ("/bin/echo".to_string(), vec!["a b".to_string()])
        );
    }
    let (program, args) = started("cpu_secs = 10\nnofile = 100");
    assert_eq!(program, "/bin/sh");
    assert_eq!(
        args,
        [
            "-c",
            "ulimit -t 11 && ulimit -S -t 10 && ulimit -n 100 && unset PWD && printf '%s\\n' 'jobq: limits set' && exec \"$@\"",
            "jobq-limits",
            "/bin/echo",
            "a b"
        ]
    );
}

#[test]
fn a_limit_the_shell_cannot_set_fails_the_job_instead_of_running_unlimited() {
    // Above fs.nr_open: refused even to root. (HANDLERS_FILE refuses it when read; this spec
    // skips that check to reach the one in the child.)
    let (dir, marker) = pid_dir("refused");
    let mut s = spec(&["/bin/sh", "-c", &format!("touch {}", marker.display())]);
    s.limits.nofile = Some(1 << 40);
    let e = cmd(s).run(&ctx(json!({}))).unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert!(
        e.message.starts_with(
            "cannot apply the limits of cmd (nofile = 1099511627776) with /bin/sh, so /bin/sh was not started: "
        ),
        "{e}"
    );
    assert!(e.message.contains("ulimit"), "the shell's error: {e}");
    assert!(!marker.exists(), "the program ran");
    let _ = std::fs::remove_dir_all(&dir);
}
