//! Process supervision for command jobs: the program runs in a process group of its own, its
//! stdout and stderr are read on helper threads (so a chatty program never blocks on a full
//! pipe), and when it exits, times out or is cancelled the whole group is killed with SIGKILL.
//! A job cancelled through the API gets SIGTERM first and a grace period to exit cleanly.
//! Exit is noticed with `waitid(WNOWAIT)`, which leaves the program an unreaped zombie until its
//! group has been killed, so its pid (the group id) cannot be reused by then.
//!
//! The supervisor also enforces the limits that jobq, not the kernel, applies ([`Watch`]): the
//! resident memory of the group, sampled from /proc every [`MEMORY_SAMPLE`] (or less often on a
//! host with many processes), and the bytes on stdout, counted by the reader; past either, the
//! group is killed with SIGKILL. And it reads the program's CPU time from /proc while the exited
//! program is still an unreaped zombie, so the handler can tell a kill by RLIMIT_CPU from other
//! deaths.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command as Process, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::stderr::StderrLines;
use super::{STDERR_TAIL, STDOUT_CAP};
use crate::handler::JobContext;

/// How long to wait for a finished command's output pipes to close.
const DRAIN_WAIT: Duration = Duration::from_secs(2);
/// How often the resident memory of a group with a memory limit is summed, at most. Each
/// sample reads /proc/<pid>/stat of every process on the host (to find the group's members,
/// which may have been re-parented): about 5 µs a process, under a millisecond for a hundred.
/// So that a host with thousands of processes does not pay for it, the next sample waits at
/// least 100 times as long as this one took (at most 1% of a core per running command), up to
/// [`MEMORY_SAMPLE_MAX`]. A program that allocates faster than that can overshoot its limit by
/// what it allocates in one interval.
pub const MEMORY_SAMPLE: Duration = Duration::from_millis(100);
/// The longest interval between two memory samples.
pub const MEMORY_SAMPLE_MAX: Duration = Duration::from_secs(1);

/// The limits the supervisor enforces itself, beyond the timeout. Default: none.
#[derive(Debug, Default, Clone, Copy)]
pub struct Watch {
    /// Kill the group when the resident memory of its processes, summed, passes this many bytes.
    pub memory_bytes: Option<u64>,
    /// Kill the group once more than this many bytes came on stdout.
    pub output_bytes: Option<u64>,
    /// What the program is started through writes this on stdout just before it `exec`s the
    /// program (see `handlers::command`): stripped from stdout, and its absence tells that the
    /// program never started.
    pub marker: Option<&'static [u8]>,
}

/// How a supervised program ended.
pub struct Finished {
    /// Its exit status (after its group was killed, when it was stopped).
    pub status: std::io::Result<ExitStatus>,
    /// Why it was stopped, when it did not exit by itself.
    pub stop: Option<Stop>,
    pub capture: Capture,
    pub elapsed: Duration,
    /// The program's CPU time (user and system, all its threads) when it exited by itself;
    /// None when it was stopped or /proc could not tell.
    pub cpu: Option<Duration>,
}

/// Runs `cmd` for `job`: in a process group of its own, the payload as JSON on its stdin,
/// until it exits, `timeout` passes or the job is cancelled; then kills what is left of its
/// group and collects its output. A job cancelled through the API first gets SIGTERM and up to
/// `grace` to exit; a group past a limit of `watch` is killed at once. `program` names it in
/// logs. Fails only when it cannot start.
pub fn supervise(
    cmd: &mut Process,
    job: &JobContext,
    timeout: Duration,
    grace: Duration,
    watch: Watch,
    program: &str,
) -> std::io::Result<Finished> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);

    let capture = Arc::new(Mutex::new(Capture {
        marker_seen: watch.marker.is_none(),
        ..Capture::default()
    }));
    // Set by the stdout reader past `watch.output_bytes`; the loop below kills the group.
    let too_much_output = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<()>();
    let mut pipes = 0;
    let mut helper_error = None;
    if let Some(out) = child.stdout.take() {
        let cap = capture.clone();
        let over = too_much_output.clone();
        // The part of the marker not read yet: it comes before anything the program writes.
        let mut marker = watch.marker.unwrap_or_default();
        let keep = move |chunk: Option<&[u8]>| {
            let Some(mut chunk) = chunk else { return };
            let mut cap = cap.lock().unwrap_or_else(|e| e.into_inner());
            if !marker.is_empty() {
                let n = marker.len().min(chunk.len());
                if chunk[..n] == marker[..n] {
                    (marker, chunk) = (&marker[n..], &chunk[n..]);
                    cap.marker_seen = marker.is_empty();
                } else {
                    marker = &[]; // not the wrapper's: the program never started
                }
            }
            keep_stdout(&mut cap, chunk);
            if watch
                .output_bytes
                .is_some_and(|max| cap.stdout_total as u64 > max)
            {
                over.store(true, Ordering::SeqCst);
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
    let mut next_sample = Instant::now();
    let mut cpu = None;
    let stop = if let Some(e) = helper_error {
        log::error!("job {}: cannot start a helper thread: {e}", job.id);
        Some(Stop::Cancelled)
    } else {
        loop {
            if has_exited(pid) {
                // Still an unreaped zombie: /proc/<pid>/stat holds its final CPU time.
                cpu = read_stat(pid.as_raw()).map(|s| s.cpu);
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
            if too_much_output.load(Ordering::SeqCst) {
                break Some(Stop::OutputLimit);
            }
            if let Some(max) = watch.memory_bytes {
                let now = Instant::now();
                if now >= next_sample {
                    let resident = group_resident(pid.as_raw());
                    let took = now.elapsed();
                    next_sample = now + (took * 100).clamp(MEMORY_SAMPLE, MEMORY_SAMPLE_MAX);
                    if resident > max {
                        break Some(Stop::OutOfMemory { resident });
                    }
                }
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
        cpu,
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
    /// Whether the [`Watch::marker`] came first on stdout (true when none was expected).
    pub marker_seen: bool,
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
    /// The group's resident memory passed [`Watch::memory_bytes`]: `resident` bytes at the
    /// sample that saw it.
    OutOfMemory {
        resident: u64,
    },
    /// More than [`Watch::output_bytes`] came on stdout.
    OutputLimit,
}

/// What the supervisor reads of a process in /proc/<pid>/stat.
#[derive(Debug, Clone, Copy)]
pub struct ProcStat {
    /// Its process group.
    pub pgrp: i32,
    /// User and system CPU time of all its threads.
    pub cpu: Duration,
    /// Resident memory, in bytes.
    pub resident: u64,
}

/// Clock ticks per second and page size, the units of /proc/<pid>/stat.
fn units() -> (u64, u64) {
    use nix::unistd::{sysconf, SysconfVar};
    static UNITS: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
    *UNITS.get_or_init(|| {
        let get = |v, default: u64| match sysconf(v) {
            Ok(Some(n)) if n > 0 => n as u64,
            _ => default,
        };
        (
            get(SysconfVar::CLK_TCK, 100),
            get(SysconfVar::PAGE_SIZE, 4096),
        )
    })
}

/// Reads /proc/<pid>/stat (see proc(5)); None when the process is gone.
pub fn read_stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces and parentheses: the
    // fields after it follow the last ") ". Counting from field 3 (state) as 0: pgrp is 2,
    // utime 11, stime 12, rss 21.
    let rest = text.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<i64>().ok());
    let (tick, page) = units();
    let ticks = num(11)?.max(0) as u64 + num(12)?.max(0) as u64;
    Some(ProcStat {
        pgrp: i32::try_from(num(2)?).ok()?,
        cpu: Duration::from_millis(ticks * 1000 / tick),
        resident: num(21)?.max(0) as u64 * page,
    })
}

/// The resident memory of the processes of group `pgid`, summed (pages shared between them,
/// such as a forked child's copy-on-write pages, count once per process: an overestimate,
/// never an underestimate). Members are found by scanning /proc, since a child whose parent
/// exited is re-parented away from the program but stays in its group.
pub fn group_resident(pgid: i32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(read_stat)
        .filter(|s| s.pgrp == pgid)
        .map(|s| s.resident)
        .sum()
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
