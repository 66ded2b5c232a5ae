//! Process supervision for command jobs: the program runs in a process group of its own, its
//! stdout and stderr are read on helper threads (so a chatty program never blocks on a full
//! pipe), and when it exits, times out or is cancelled the whole group is killed with SIGKILL.
//! A job cancelled through the API gets SIGTERM first and a grace period to exit cleanly.
//! Exit is noticed with `waitid(WNOWAIT)`, which leaves the program an unreaped zombie until its
//! group has been killed, so its pid (the group id) cannot be reused by then.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command as Process, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::stderr::StderrLines;
use super::{STDERR_TAIL, STDOUT_CAP};
use crate::handler::JobContext;

/// How long to wait for a finished command's output pipes to close.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// How a supervised program ended.
pub struct Finished {
    /// Its exit status (after its group was killed, when it was stopped).
    pub status: std::io::Result<ExitStatus>,
    /// Why it was stopped, when it did not exit by itself.
    pub stop: Option<Stop>,
    pub capture: Capture,
    pub elapsed: Duration,
}

/// Runs `cmd` for `job`: in a process group of its own, the payload as JSON on its stdin,
/// until it exits, `timeout` passes or the job is cancelled; then kills what is left of its
/// group and collects its output. A job cancelled through the API first gets SIGTERM and up to
/// `grace` to exit. `program` names it in logs. Fails only when it cannot start.
pub fn supervise(
    cmd: &mut Process,
    job: &JobContext,
    timeout: Duration,
    grace: Duration,
    program: &str,
) -> std::io::Result<Finished> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);

    let capture = Arc::new(Mutex::new(Capture::default()));
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<()>();
    let mut pipes = 0;
    let mut helper_error = None;
    if let Some(out) = child.stdout.take() {
        let cap = capture.clone();
        let keep = move |chunk: Option<&[u8]>| {
            if let Some(chunk) = chunk {
                keep_stdout(&mut cap.lock().unwrap_or_else(|e| e.into_inner()), chunk);
            }
        };
        match drain(out, done_tx.clone(), keep) {
            Ok(()) => pipes += 1,
            Err(e) => helper_error = Some(e),
        }
    }
    if let Some(err) = child.stderr.take() {
        // Line by line: progress lines are reports, the rest the tail kept for errors.
        let mut lines = StderrLines::new(capture.clone(), job.progress.clone());
        let keep = move |chunk: Option<&[u8]>| match chunk {
            Some(chunk) => lines.feed(chunk),
            None => lines.end(),
        };
        match drain(err, done_tx.clone(), keep) {
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

    let deadline = started + timeout;
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
            if job.cancel.job_cancelled() {
                break Some(Stop::JobCancelled(terminate(pid, grace)));
            }
            if job.cancel.is_cancelled() {
                break Some(Stop::Cancelled);
            }
            std::thread::sleep(poll);
            poll = (poll * 2).min(Duration::from_millis(50));
        }
    };
    // On a timeout this stops the program and its children; after a normal exit (or one on
    // SIGTERM) it stops whatever the program left running in its group.
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
                job.kind_label()
            );
            break;
        }
    }
    let capture = std::mem::take(&mut *capture.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Finished {
        status,
        stop,
        capture,
        elapsed,
    })
}

/// What the output readers collected.
#[derive(Default)]
pub struct Capture {
    /// The first [`STDOUT_CAP`] bytes of stdout.
    pub stdout: Vec<u8>,
    /// How many bytes came on stdout in all.
    pub stdout_total: usize,
    /// The end of stderr: at least the last [`STDERR_TAIL`] bytes.
    pub stderr: Vec<u8>,
}

/// Reads a pipe to its end on a helper thread, handing each chunk to `keep` (then None at the
/// end), so the program never blocks on a full pipe. Sends on `done` when the pipe closes.
fn drain(
    mut pipe: impl Read + Send + 'static,
    done: crossbeam_channel::Sender<()>,
    mut keep: impl FnMut(Option<&[u8]>) + Send + 'static,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("jobq-cmd-pipe".into())
        .spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => keep(Some(&buf[..n])),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            keep(None);
            let _ = done.send(());
        })
        .map(|_| ())
}

fn keep_stdout(c: &mut Capture, chunk: &[u8]) {
    c.stdout_total += chunk.len();
    let room = STDOUT_CAP.saturating_sub(c.stdout.len());
    c.stdout.extend_from_slice(&chunk[..chunk.len().min(room)]);
}

pub(super) fn keep_stderr(c: &mut Capture, chunk: &[u8]) {
    c.stderr.extend_from_slice(chunk);
    if c.stderr.len() > 2 * STDERR_TAIL {
        let cut = c.stderr.len() - STDERR_TAIL;
        c.stderr.drain(..cut);
    }
}

/// The last [`STDERR_TAIL`] bytes of stderr as trimmed text.
pub fn stderr_tail(stderr: &[u8]) -> String {
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
pub enum Stop {
    TimedOut,
    /// The attempt's time limit passed or the process is shutting down: SIGKILL at once.
    Cancelled,
    /// Cancelled through the API: SIGTERM, then SIGKILL. Holds how long after the SIGTERM the
    /// program exited, or None when it was still running after the grace period.
    JobCancelled(Option<Duration>),
}

/// Sends SIGTERM to group `pgid` and waits up to `grace` for the program (its leader) to exit;
/// returns how long that took, or None when it did not. The caller sends SIGKILL to the group
/// either way, for whatever is still running in it. The program is not reaped here, so its
/// pid still names the group when the SIGKILL goes out.
fn terminate(pgid: nix::unistd::Pid, grace: Duration) -> Option<Duration> {
    use nix::sys::signal::{killpg, Signal};
    let sent = Instant::now();
    match killpg(pgid, Signal::SIGTERM) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => log::warn!("cannot send SIGTERM to process group {pgid}: {e}"),
    }
    let until = sent + grace;
    loop {
        if has_exited(pgid) {
            return Some(sent.elapsed());
        }
        let now = Instant::now();
        if now >= until {
            return None;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(20)));
    }
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
