//! Operator-defined job types that run a program: one `[commands.<type>]` table each in the TOML
//! file named by HANDLERS_FILE.
//!
//! ```toml
//! [commands.thumbnail]
//! run = ["/usr/local/bin/make-thumbnail", "--quality", "80"]   # argv: never a shell string
//! timeout_secs = 60                                           # default 300
//! env = { CACHE_DIR = "/var/cache/thumbs" }
//! working_dir = "/srv/media"
//! permanent_exit_codes = [65]                                 # these go straight to the DLQ
//! ```
//!
//! The job's payload (JSON) is the program's stdin; `JOB_ID`, `JOB_TYPE`, `JOB_ATTEMPT` and
//! `JOB_MAX_ATTEMPTS` are in its environment, which is otherwise only `PATH`, `HOME`, `LANG`,
//! `LC_ALL`, `TZ`, `TMPDIR`, `USER`, `LOGNAME` (when jobq has them) and the table's `env`: jobq's
//! own secrets (REDIS_URL, SMTP_URL, API_TOKEN) are not handed down. Exit status 0 is success and
//! stdout (first 64 KiB) the result: JSON when it parses, else a string. Any other status fails
//! the attempt with the last 2 KiB of stderr as the error: transient (retried), unless the status
//! is listed in `permanent_exit_codes`.
//!
//! Each program runs in a process group of its own. Past `timeout_secs`, or when the attempt is
//! cancelled (its JOB_TIMEOUT_SECS, or a shutdown that outlived SHUTDOWN_TIMEOUT_SECS), the whole
//! group is killed with SIGKILL, children included. When the program exits by itself, whatever
//! it left running in its group is killed too, so no job leaves processes behind. (A child that
//! starts a session or group of its own has opted out of this.)

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::worker::handler::is_valid_type_name;
use crate::worker::{Handler, JobContext, JobError, JobResult};

/// Default `timeout_secs` of a command.
pub const DEFAULT_TIMEOUT_SECS: u64 = 300;
/// Largest `timeout_secs`: a day.
pub const MAX_TIMEOUT_SECS: u64 = 86_400;
/// How much of stdout becomes the result.
pub const STDOUT_CAP: usize = 64 * 1024;
/// How much of the end of stderr goes into the error.
pub const STDERR_TAIL: usize = 2 * 1024;
/// Variables of jobq's own environment a command inherits.
const INHERITED_ENV: &[&str] = &[
    "PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME",
];
/// How long to wait for a finished command's output pipes to close.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// One command job type, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// The job type.
    pub kind: String,
    /// Absolute path of the program (a bare name in `run` is looked up in PATH at load time).
    pub program: PathBuf,
    pub args: Vec<String>,
    pub timeout: Duration,
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<PathBuf>,
    pub permanent_exit_codes: Vec<i32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    commands: BTreeMap<toml::Spanned<String>, toml::Spanned<RawCommand>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    run: toml::Spanned<Vec<String>>,
    timeout_secs: Option<toml::Spanned<u64>>,
    #[serde(default)]
    env: Option<toml::Spanned<BTreeMap<String, String>>>,
    working_dir: Option<toml::Spanned<String>>,
    #[serde(default)]
    permanent_exit_codes: Vec<i32>,
}

/// `line:column` (from 1) of byte offset `at` in `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Reads and checks a handlers file. The error names the file and the line and column of the
/// problem, e.g. `handlers.toml:4:7: ...`.
pub fn load_file(path: &Path) -> Result<Vec<CommandSpec>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Parses handlers-file text; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<Vec<CommandSpec>, String> {
    let at = |span: std::ops::Range<usize>, msg: String| {
        let (l, c) = line_col(text, span.start);
        format!("{origin}:{l}:{c}: {msg}")
    };
    let doc: FileDoc = toml::from_str(text).map_err(|e| {
        let msg = e.message().trim().to_string();
        match e.span() {
            Some(span) => at(span, msg),
            None => format!("{origin}: {msg}"),
        }
    })?;
    let mut out = Vec::new();
    for (name, raw) in doc.commands {
        let kind = name.get_ref().clone();
        let name_at = |msg: String| at(name.span(), msg);
        if !is_valid_type_name(&kind) {
            return Err(name_at(format!(
                "[commands.{kind}]: a job type must be 1-64 characters of A-Z a-z 0-9 _ - . :"
            )));
        }
        if super::BUILTIN_TYPES.contains(&kind.as_str()) {
            return Err(name_at(format!(
                "[commands.{kind}]: {kind:?} is a built-in job type; pick another name"
            )));
        }
        let raw_span = raw.span();
        let raw = raw.into_inner();
        let run_span = raw.run.span();
        let run = raw.run.into_inner();
        let Some((program, args)) = run.split_first() else {
            return Err(at(
                run_span,
                format!("[commands.{kind}] run: give the program and its arguments, e.g. run = [\"/usr/local/bin/tool\", \"--flag\"]"),
            ));
        };
        let program = resolve_program(program).map_err(|e| at(run_span.clone(), e))?;
        if args.iter().any(|a| a.contains('\0')) {
            return Err(at(run_span, "run: an argument contains a NUL byte".into()));
        }
        let timeout_secs = match raw.timeout_secs {
            None => DEFAULT_TIMEOUT_SECS,
            Some(t) if (1..=MAX_TIMEOUT_SECS).contains(t.get_ref()) => *t.get_ref(),
            Some(t) => {
                return Err(at(
                    t.span(),
                    format!("timeout_secs: expected 1-{MAX_TIMEOUT_SECS} seconds"),
                ))
            }
        };
        let env = match raw.env {
            None => BTreeMap::new(),
            Some(env) => {
                let span = env.span();
                let env = env.into_inner();
                if let Some(bad) = env
                    .iter()
                    .find(|(k, v)| k.is_empty() || k.contains(['=', '\0']) || v.contains('\0'))
                {
                    return Err(at(
                        span,
                        format!("env: {:?} is not a usable variable name and value", bad.0),
                    ));
                }
                env
            }
        };
        let working_dir = match raw.working_dir {
            None => None,
            Some(d) => {
                let p = PathBuf::from(d.get_ref());
                if !p.is_dir() {
                    return Err(at(
                        d.span(),
                        format!("working_dir: {:?} is not a directory", d.get_ref()),
                    ));
                }
                Some(p)
            }
        };
        if raw
            .permanent_exit_codes
            .iter()
            .any(|c| !(1..=255).contains(c))
        {
            return Err(at(
                raw_span,
                format!("[commands.{kind}] permanent_exit_codes: exit statuses are 1-255"),
            ));
        }
        out.push(CommandSpec {
            kind,
            program,
            args: args.to_vec(),
            timeout: Duration::from_secs(timeout_secs),
            env,
            working_dir,
            permanent_exit_codes: raw.permanent_exit_codes,
        });
    }
    Ok(out)
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// An absolute path stays as it is (it must be an executable file); a bare name is looked up in
/// PATH now, so a typo fails at start-up rather than at the first job.
fn resolve_program(program: &str) -> Result<PathBuf, String> {
    if program.is_empty() || program.contains('\0') {
        return Err("run: the program name is empty".into());
    }
    let p = Path::new(program);
    if p.is_absolute() {
        return if is_executable(p) {
            Ok(p.to_path_buf())
        } else {
            Err(format!("run: {program:?} is not an executable file"))
        };
    }
    if program.contains('/') {
        return Err(format!(
            "run: {program:?} is a relative path; give an absolute path or a bare name found in PATH"
        ));
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|c| c.is_absolute() && is_executable(c))
        .ok_or_else(|| format!("run: {program:?} is not found in PATH"))
}

/// The handler of one command job type.
pub struct Command {
    spec: Arc<CommandSpec>,
}

impl Command {
    pub fn new(spec: CommandSpec) -> Command {
        Command {
            spec: Arc::new(spec),
        }
    }
}

/// What the output readers collected.
#[derive(Default)]
struct Capture {
    stdout: Vec<u8>,
    stdout_total: usize,
    stderr: Vec<u8>,
}

/// Reads a pipe to its end on a helper thread, handing each chunk to `keep`, so the program
/// never blocks on a full pipe. Sends on `done` when the pipe closes.
fn drain(
    mut pipe: impl Read + Send + 'static,
    capture: Arc<Mutex<Capture>>,
    done: crossbeam_channel::Sender<()>,
    keep: fn(&mut Capture, &[u8]),
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("jobq-cmd-pipe".into())
        .spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => keep(
                        &mut capture.lock().unwrap_or_else(|e| e.into_inner()),
                        &buf[..n],
                    ),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            let _ = done.send(());
        })
        .map(|_| ())
}

fn keep_stdout(c: &mut Capture, chunk: &[u8]) {
    c.stdout_total += chunk.len();
    let room = STDOUT_CAP.saturating_sub(c.stdout.len());
    c.stdout.extend_from_slice(&chunk[..chunk.len().min(room)]);
}

fn keep_stderr(c: &mut Capture, chunk: &[u8]) {
    c.stderr.extend_from_slice(chunk);
    if c.stderr.len() > 2 * STDERR_TAIL {
        let cut = c.stderr.len() - STDERR_TAIL;
        c.stderr.drain(..cut);
    }
}

/// The last [`STDERR_TAIL`] bytes of stderr as trimmed text.
fn stderr_tail(stderr: &[u8]) -> String {
    let start = stderr.len().saturating_sub(STDERR_TAIL);
    let text = String::from_utf8_lossy(&stderr[start..]);
    let text = text.trim();
    if start > 0 {
        format!("...{text}")
    } else {
        text.to_string()
    }
}

/// Why the wait for the program ended early.
enum Stop {
    TimedOut,
    Cancelled,
}

/// Whether process `pid` (our child) has exited, without reaping it: while it is an unreaped
/// zombie its pid, and so its process group id, cannot be reused, so killing the group after
/// this can only hit the program's own processes.
fn has_exited(pid: nix::unistd::Pid) -> bool {
    use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
    loop {
        match waitid(
            Id::Pid(pid),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
        ) {
            Ok(WaitStatus::StillAlive) => return false,
            Ok(_) => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            // ECHILD: already reaped (cannot happen: only we wait for it).
            Err(_) => return true,
        }
    }
}

/// SIGKILL to every process in group `pgid`; "no such group" is fine (nothing left).
fn kill_group(pgid: nix::unistd::Pid) {
    use nix::sys::signal::{killpg, Signal};
    match killpg(pgid, Signal::SIGKILL) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => log::warn!("cannot kill process group {pgid}: {e}"),
    }
}

/// When jobq runs as PID 1 (a container without an init), the program's orphaned children are
/// re-parented to it: reap the killed ones of this group so no zombies pile up.
fn reap_orphans(pgid: nix::unistd::Pid) {
    use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        match waitid(Id::PGid(pgid), WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(10)),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return, // ECHILD: none of ours left in that group
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
            .env("JOB_ID", &job.id)
            .env("JOB_TYPE", &job.kind)
            .env("JOB_ATTEMPT", job.attempt.to_string())
            .env("JOB_MAX_ATTEMPTS", job.max_attempts.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(dir) = &spec.working_dir {
            cmd.current_dir(dir);
        }
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|e| {
            JobError::transient(format!("cannot start {program} for {}: {e}", job.kind))
        })?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);

        let capture = Arc::new(Mutex::new(Capture::default()));
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<()>();
        let mut pipes = 0;
        let mut helper_error = None;
        if let Some(out) = child.stdout.take() {
            match drain(out, capture.clone(), done_tx.clone(), keep_stdout) {
                Ok(()) => pipes += 1,
                Err(e) => helper_error = Some(e),
            }
        }
        if let Some(err) = child.stderr.take() {
            match drain(err, capture.clone(), done_tx.clone(), keep_stderr) {
                Ok(()) => pipes += 1,
                Err(e) => helper_error = Some(e),
            }
        }
        if let Some(mut stdin) = child.stdin.take() {
            let payload = job.payload.to_string();
            // A program that never reads stdin must not block the worker: write on a thread.
            // A broken pipe (the program ignored its input) is not an error.
            let spawned = std::thread::Builder::new()
                .name("jobq-cmd-stdin".into())
                .spawn(move || {
                    let _ = stdin.write_all(payload.as_bytes());
                });
            if let Err(e) = spawned {
                helper_error = Some(e);
            }
        }

        let deadline = started + spec.timeout;
        let mut poll = Duration::from_millis(2);
        let stop = if let Some(e) = helper_error {
            log::error!("job {}: cannot start a helper thread: {e}", job.id);
            Some(Stop::Cancelled)
        } else {
            loop {
                if has_exited(pid) {
                    break None;
                }
                if Instant::now() >= deadline {
                    break Some(Stop::TimedOut);
                }
                if job.cancel.is_cancelled() {
                    break Some(Stop::Cancelled);
                }
                std::thread::sleep(poll);
                poll = (poll * 2).min(Duration::from_millis(50));
            }
        };
        // On a timeout this stops the program and its children; after a normal exit it stops
        // whatever the program left running in its group.
        kill_group(pid);
        let status = child.wait();
        reap_orphans(pid);
        let elapsed = started.elapsed();

        // Both pipes close once every process holding them is gone; a straggler that escaped
        // the group could hold them open, so wait a bounded time and take what was read.
        let until = Instant::now() + DRAIN_WAIT;
        for _ in 0..pipes {
            let left = until.saturating_duration_since(Instant::now());
            if done_rx.recv_timeout(left).is_err() {
                log::warn!(
                    "job {} ({}): an output pipe of {program} is still open after it exited (a child outside its process group?); using the output read so far",
                    job.id,
                    job.kind
                );
                break;
            }
        }
        let cap = std::mem::take(&mut *capture.lock().unwrap_or_else(|e| e.into_inner()));

        match stop {
            Some(Stop::TimedOut) => {
                return Err(JobError::transient(format!(
                    "timed out after {} s: {program} and its process group were killed{}",
                    spec.timeout.as_secs(),
                    with_stderr(&cap.stderr)
                )))
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

fn with_stderr(stderr: &[u8]) -> String {
    let tail = stderr_tail(stderr);
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
    use crate::worker::Cancellation;
    use serde_json::json;

    fn ctx(payload: Value) -> JobContext {
        JobContext::new("job-1", "cmd", payload, 2, 3, Cancellation::new(None))
    }

    fn spec(run: &[&str]) -> CommandSpec {
        let text = format!(
            "[commands.cmd]\nrun = [{}]\ntimeout_secs = 5\n",
            run.iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        parse(&text, "t.toml").unwrap().remove(0)
    }

    #[test]
    fn a_good_file_parses() {
        let specs = parse(
            "[commands.resize_pdf]\nrun = [\"sh\", \"-c\", \"cat\"]\n\n[commands.\"billing.sync\"]\nrun = [\"/bin/true\"]\ntimeout_secs = 10\nenv = { A = \"1\" }\nworking_dir = \"/\"\npermanent_exit_codes = [65]\n",
            "h.toml",
        )
        .unwrap();
        assert_eq!(specs.len(), 2);
        let b = &specs[0];
        assert_eq!(b.kind, "billing.sync");
        assert_eq!(b.timeout, Duration::from_secs(10));
        assert_eq!(b.env.get("A").map(String::as_str), Some("1"));
        assert_eq!(b.permanent_exit_codes, vec![65]);
        let r = &specs[1];
        assert!(
            r.program.is_absolute() && r.program.ends_with("sh"),
            "{r:?}"
        );
        assert_eq!(r.args, vec!["-c", "cat"]);
        assert_eq!(r.timeout, Duration::from_secs(DEFAULT_TIMEOUT_SECS));
        assert!(parse("", "empty.toml").unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let cases = [
            ("[commands.a]\nrun = [\"/bin/true\"\n", "h.toml:2:"),
            (
                "[commands.a]\nrun = [\"/bin/true\"]\ntimeout = 3\n",
                "h.toml:3:1",
            ),
            ("[commands.a]\nrun = []\n", "h.toml:2:7"),
            ("[commands.a]\nrun = [\"/no/such/tool\"]\n", "h.toml:2:7"),
            (
                "[commands.a]\nrun = [\"no-such-tool-xyz\"]\n",
                "not found in PATH",
            ),
            ("[commands.a]\nrun = [\"bin/true\"]\n", "relative path"),
            ("\n[commands.email]\nrun = [\"/bin/true\"]\n", "h.toml:2:11"),
            (
                "[commands.\"has space\"]\nrun = [\"/bin/true\"]\n",
                "h.toml:1:",
            ),
            (
                "[commands.a]\nrun = [\"/bin/true\"]\ntimeout_secs = 0\n",
                "h.toml:3:16",
            ),
            (
                "[commands.a]\nrun = [\"/bin/true\"]\nworking_dir = \"/no/such\"\n",
                "h.toml:3:",
            ),
            ("[commands.a]\nrun = \"/bin/true x\"\n", "h.toml:2:7"),
        ];
        for (text, want) in cases {
            let err = parse(text, "h.toml").unwrap_err();
            assert!(err.contains(want), "{text:?}: {err:?} lacks {want:?}");
        }
        assert!(
            parse("\n[commands.email]\nrun = [\"/bin/true\"]\n", "h.toml")
                .unwrap_err()
                .contains("built-in")
        );
    }

    #[test]
    fn json_stdout_is_the_result_and_env_is_set() {
        let c = Command::new(spec(&[
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
        let c = Command::new(spec(&["/bin/sh", "-c", "echo hello there"]));
        assert_eq!(c.run(&ctx(json!({}))).unwrap(), json!("hello there"));
        let c = Command::new(spec(&[
            "/bin/sh",
            "-c",
            "i=0; while [ $i -lt 500 ]; do echo \"noise line $i\" >&2; i=$((i+1)); done; echo 'the real reason' >&2; exit 3",
        ]));
        let e = c.run(&ctx(json!({}))).unwrap_err();
        assert!(!e.permanent);
        assert!(e.message.contains("exited with status 3"), "{e}");
        assert!(e.message.ends_with("the real reason"), "{e}");
        assert!(e.message.len() < STDERR_TAIL + 200, "{}", e.message.len());
    }

    #[test]
    fn listed_exit_codes_are_permanent() {
        let mut s = spec(&["/bin/sh", "-c", "exit 65"]);
        s.permanent_exit_codes = vec![65];
        let e = Command::new(s).run(&ctx(json!({}))).unwrap_err();
        assert!(e.permanent, "{e}");
    }

    #[test]
    fn big_output_does_not_block() {
        // 1 MiB on each pipe: more than a pipe buffer holds, so both must be read while it runs.
        let c = Command::new(spec(&[
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
        let e = Command::new(s).run(&ctx(json!({}))).unwrap_err();
        assert!(e.message.starts_with("timed out after 0 s"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(20));
    }
}
