//! `HANDLERS_FILE`: the TOML file of command job types, read and checked once when the
//! configuration is read, into a [`HandlersFile`] of [`CommandSpec`]s. A bad file is a
//! configuration error that names its line and column; the command handlers
//! (`handlers::command`) only run what these specs say.
//!
//! ```toml
//! [commands.thumbnail]
//! run = ["/usr/local/bin/make-thumbnail", "--quality", "80"]   # argv: never a shell string
//! timeout_secs = 60                                           # default 300
//! env = { CACHE_DIR = "/var/cache/thumbs" }
//! working_dir = "/srv/media"
//! permanent_exit_codes = [65]                                 # these go straight to the DLQ
//! memory_mb = 256          # resident memory of its process group, sampled by jobq
//! cpu_secs = 10            # CPU time of each process (RLIMIT_CPU)
//! max_output_kb = 512      # stdout
//! nofile = 1024            # open files of each process (RLIMIT_NOFILE)
//! ```
//!
//! The four resource limits are checked here against their ranges, and `cpu_secs` and `nofile`
//! also against jobq's own hard limits, which its children inherit and cannot raise (unless jobq
//! has CAP_SYS_RESOURCE): a value the kernel would refuse stops start-up, naming its line,
//! rather than failing every job. See `handlers::command` for what each limit does.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default `timeout_secs` of a command.
pub const DEFAULT_TIMEOUT_SECS: u64 = 300;
/// Largest `timeout_secs`: a day.
pub const MAX_TIMEOUT_SECS: u64 = 86_400;

/// Names no command may take: every built-in type, whether or not this build or configuration
/// registers it, so a handlers file means the same everywhere. (Listed here rather than in
/// `handlers/`, which registers them, because the file is checked when the configuration is
/// read, and the configuration depends on nothing above it.)
pub const BUILTIN_TYPES: &[&str] = &[
    "email",
    "image_resize",
    "analytics",
    "report",
    "webhook",
    "noop",
    "sleep",
    "fail",
];

/// Longest job type name.
pub const MAX_TYPE_LEN: usize = 64;

/// Whether `kind` is a usable job type name: 1-64 of `[A-Za-z0-9_.:-]`. Defined here, at the
/// bottom layer, because HANDLERS_FILE names types; the registry and the API use the same rule.
pub fn is_valid_type_name(kind: &str) -> bool {
    !kind.is_empty()
        && kind.len() <= MAX_TYPE_LEN
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

/// A loaded HANDLERS_FILE: where it was read from, and the command types it defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlersFile {
    /// The path as given in HANDLERS_FILE (shown by `Config::settings`).
    pub path: String,
    /// One per `[commands.<type>]` table, in the order of their names.
    pub commands: Vec<CommandSpec>,
}

/// One command job type, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    /// The job type.
    pub kind: String,
    /// Absolute path of the program (a bare name in `run` is looked up in PATH at load time).
    pub program: PathBuf,
    /// Arguments after the program, as given (no shell).
    pub args: Vec<String>,
    /// Longest one attempt may run before its process group is killed.
    pub timeout: Duration,
    /// Variables set for the program, besides the short inherited allow-list.
    pub env: BTreeMap<String, String>,
    /// Where the program runs; jobq's own working directory when None.
    pub working_dir: Option<PathBuf>,
    /// Exit codes that mean "do not retry": the job goes to the DLQ at once.
    pub permanent_exit_codes: Vec<i32>,
    /// Resource limits of each run; none by default.
    pub limits: ResourceLimits,
}

/// The resource limits of a command type (`memory_mb`, `cpu_secs`, `max_output_kb`, `nofile`),
/// each None when not set. KB and MB are 1024 bytes and 1024 KB, as in `ulimit`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceLimits {
    /// Most resident memory of the program's process group, summed over its processes: jobq
    /// samples it while the program runs and kills the group past it.
    pub memory_mb: Option<u64>,
    /// Most CPU time of each process (RLIMIT_CPU: SIGXCPU at N s, SIGKILL at N + 1).
    pub cpu_secs: Option<u64>,
    /// Most bytes on stdout, in KB: past it jobq kills the group.
    pub max_output_kb: Option<u64>,
    /// Most open files of each process (RLIMIT_NOFILE, soft and hard).
    pub nofile: Option<u64>,
}

impl ResourceLimits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        *self != ResourceLimits::default()
    }

    /// The `limit` labels of `command_limit_exceeded_total` these limits can count: `memory`,
    /// `cpu`, `output` (nofile kills nothing).
    pub fn counted(&self) -> Vec<&'static str> {
        [
            (self.memory_mb, "memory"),
            (self.cpu_secs, "cpu"),
            (self.max_output_kb, "output"),
        ]
        .into_iter()
        .filter_map(|(v, label)| v.map(|_| label))
        .collect()
    }

    /// Whether a limit that the kernel applies in the child (`cpu_secs`, `nofile`) is set:
    /// only then is the program started through `/bin/sh` to set them.
    pub fn needs_rlimits(&self) -> bool {
        self.cpu_secs.is_some() || self.nofile.is_some()
    }
}

/// Range of `memory_mb`: 1 MB to 1 TB.
pub const MEMORY_MB_RANGE: RangeInclusive<u64> = 1..=1_048_576;
/// Range of `cpu_secs`: a second to a day.
pub const CPU_SECS_RANGE: RangeInclusive<u64> = 1..=86_400;
/// Range of `max_output_kb`: 1 KB to 1 GB.
pub const MAX_OUTPUT_KB_RANGE: RangeInclusive<u64> = 1..=1_048_576;
/// Range of `nofile`: enough for a program to start (stdin, stdout, stderr, a library or two),
/// up to Linux's default `fs.nr_open`.
pub const NOFILE_RANGE: RangeInclusive<u64> = 16..=1_048_576;

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
    memory_mb: Option<toml::Spanned<u64>>,
    cpu_secs: Option<toml::Spanned<u64>>,
    max_output_kb: Option<toml::Spanned<u64>>,
    nofile: Option<toml::Spanned<u64>>,
}

/// `line:column` (from 1) of byte offset `at` in `text`.
pub(super) fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl HandlersFile {
    /// Reads and checks a handlers file. The error names the file and the line and column of
    /// the problem, e.g. `handlers.toml:4:7: ...`.
    pub fn load(path: &str) -> Result<HandlersFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        Ok(HandlersFile {
            path: path.to_string(),
            commands: parse(&text, path)?,
        })
    }
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
        if BUILTIN_TYPES.contains(&kind.as_str()) {
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
        if raw.permanent_exit_codes.contains(&75) {
            return Err(at(
                raw_span,
                format!(
                    "[commands.{kind}] permanent_exit_codes: 75 cannot be listed, it means \"try again later\" (snooze)"
                ),
            ));
        }
        let limit = |name: &str, value: Option<toml::Spanned<u64>>, range: RangeInclusive<u64>| {
            let Some(v) = value else { return Ok(None) };
            if range.contains(v.get_ref()) {
                Ok(Some(*v.get_ref()))
            } else {
                Err(at(
                    v.span(),
                    format!(
                        "[commands.{kind}] {name}: expected {}-{}",
                        range.start(),
                        range.end()
                    ),
                ))
            }
        };
        let spans = (
            raw.cpu_secs.as_ref().map(|v| v.span()),
            raw.nofile.as_ref().map(|v| v.span()),
        );
        let limits = ResourceLimits {
            memory_mb: limit("memory_mb", raw.memory_mb, MEMORY_MB_RANGE)?,
            cpu_secs: limit("cpu_secs", raw.cpu_secs, CPU_SECS_RANGE)?,
            max_output_kb: limit("max_output_kb", raw.max_output_kb, MAX_OUTPUT_KB_RANGE)?,
            nofile: limit("nofile", raw.nofile, NOFILE_RANGE)?,
        };
        if let (Some(secs), Some(span)) = (limits.cpu_secs, spans.0) {
            // RLIMIT_CPU gets a hard limit one second above the soft one (see handlers::command).
            within_hard_limit(nix::sys::resource::Resource::RLIMIT_CPU, secs + 1)
                .map_err(|e| at(span, format!("[commands.{kind}] cpu_secs: {e}")))?;
        }
        if let (Some(n), Some(span)) = (limits.nofile, spans.1) {
            within_hard_limit(nix::sys::resource::Resource::RLIMIT_NOFILE, n)
                .map_err(|e| at(span, format!("[commands.{kind}] nofile: {e}")))?;
        }
        out.push(CommandSpec {
            kind,
            program,
            args: args.to_vec(),
            timeout: Duration::from_secs(timeout_secs),
            env,
            working_dir,
            permanent_exit_codes: raw.permanent_exit_codes,
            limits,
        });
    }
    Ok(out)
}

/// Whether a child of jobq can set the hard limit of `resource` to `want`: limits are inherited
/// and only lowered, unless the process has CAP_SYS_RESOURCE (root outside a container, usually;
/// not root in a default Docker container). A value above jobq's own hard limit would make every
/// job of the type fail, so it is refused when the file is read. (The child checks again, and a
/// job whose limits cannot be set fails; see `handlers::command`.)
fn within_hard_limit(resource: nix::sys::resource::Resource, want: u64) -> Result<(), String> {
    use nix::sys::resource::{getrlimit, Resource};
    let (_, hard) =
        getrlimit(resource).map_err(|e| format!("cannot read jobq's own limit: {e}"))?;
    let nr_open = (resource == Resource::RLIMIT_NOFILE)
        .then(|| std::fs::read_to_string("/proc/sys/fs/nr_open").ok())
        .flatten()
        .and_then(|s| s.trim().parse::<u64>().ok());
    hard_limit_check(resource, want, hard, nr_open, has_cap_sys_resource)
}

/// [`within_hard_limit`] on given values: jobq's hard limit `hard`, the kernel's `nr_open`
/// (for RLIMIT_NOFILE), and whether jobq can raise limits (asked only when it matters).
fn hard_limit_check(
    resource: nix::sys::resource::Resource,
    want: u64,
    hard: u64,
    nr_open: Option<u64>,
    can_raise: impl FnOnce() -> bool,
) -> Result<(), String> {
    use nix::sys::resource::{Resource, RLIM_INFINITY};
    // Even CAP_SYS_RESOURCE cannot go past fs.nr_open.
    if let Some(max) = nr_open.filter(|&max| want > max) {
        return Err(format!(
            "{want} is above the kernel's most open files per process (fs.nr_open = {max})"
        ));
    }
    if hard == RLIM_INFINITY || want <= hard || can_raise() {
        return Ok(());
    }
    let (what, shell) = match resource {
        Resource::RLIMIT_CPU => ("CPU time limit, in seconds", "ulimit -Ht"),
        _ => ("open files limit", "ulimit -Hn"),
    };
    Err(format!(
        "needs a hard limit of {want}, above jobq's own hard {what} ({hard}, `{shell}`), which its programs inherit and cannot raise; lower the value or raise jobq's limit"
    ))
}

/// Whether this process has CAP_SYS_RESOURCE in its effective set (bit 24 of `CapEff` in
/// /proc/self/status), which lets its children raise hard limits.
fn has_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
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

#[cfg(test)]
mod tests {
    use super::*;

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
            (
                "[commands.a]\nrun = [\"/bin/true\"]\npermanent_exit_codes = [75]\n",
                "75 cannot be listed",
            ),
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
    fn resource_limits_parse_and_default_to_none() {
        let specs = parse(
            "[commands.a]\nrun = [\"/bin/true\"]\nmemory_mb = 256\ncpu_secs = 10\nmax_output_kb = 512\nnofile = 1024\n\n[commands.b]\nrun = [\"/bin/true\"]\n",
            "h.toml",
        )
        .unwrap();
        let a = specs[0].limits;
        assert_eq!(
            a,
            ResourceLimits {
                memory_mb: Some(256),
                cpu_secs: Some(10),
                max_output_kb: Some(512),
                nofile: Some(1024),
            }
        );
        assert!(a.any() && a.needs_rlimits());
        assert_eq!(a.counted(), ["memory", "cpu", "output"]);
        let b = specs[1].limits;
        assert_eq!(b, ResourceLimits::default());
        assert!(!b.any() && !b.needs_rlimits() && b.counted().is_empty());
        let jobq_only = ResourceLimits {
            memory_mb: Some(1),
            max_output_kb: Some(1),
            ..ResourceLimits::default()
        };
        assert!(!jobq_only.needs_rlimits());
    }

    #[test]
    fn resource_limits_out_of_range_name_the_field_the_bounds_and_the_place() {
        let cases = [
            (
                "memory_mb = 0",
                "h.toml:3:13: [commands.a] memory_mb: expected 1-1048576",
            ),
            (
                "memory_mb = 1048577",
                "h.toml:3:13: [commands.a] memory_mb: expected 1-1048576",
            ),
            (
                "cpu_secs = 0",
                "h.toml:3:12: [commands.a] cpu_secs: expected 1-86400",
            ),
            (
                "cpu_secs = 86401",
                "h.toml:3:12: [commands.a] cpu_secs: expected 1-86400",
            ),
            (
                "max_output_kb = 0",
                "h.toml:3:17: [commands.a] max_output_kb: expected 1-1048576",
            ),
            (
                "nofile = 15",
                "h.toml:3:10: [commands.a] nofile: expected 16-1048576",
            ),
            (
                "nofile = 1048577",
                "h.toml:3:10: [commands.a] nofile: expected 16-1048576",
            ),
            ("memory_mb = -1", "h.toml:3:13"),
            ("memory_mb = \"1G\"", "h.toml:3:13"),
            ("memory = 5", "h.toml:3:1"),
        ];
        for (line, want) in cases {
            let text = format!("[commands.a]\nrun = [\"/bin/true\"]\n{line}\n");
            let err = parse(&text, "h.toml").unwrap_err();
            assert!(err.starts_with(want), "{line:?}: {err:?} lacks {want:?}");
        }
    }

    #[test]
    fn limits_the_kernel_would_refuse_are_refused_when_read() {
        use nix::sys::resource::Resource;
        let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let err = within_hard_limit(Resource::RLIMIT_NOFILE, nr_open + 1).unwrap_err();
        assert!(err.contains("fs.nr_open"), "{err}");
        // What this process may set is accepted: its own hard limit.
        let (_, hard) = nix::sys::resource::getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        within_hard_limit(Resource::RLIMIT_NOFILE, hard.min(nr_open)).unwrap();

        // Above jobq's hard limit: refused unless jobq may raise it (CAP_SYS_RESOURCE).
        let check = |want, hard, can_raise: bool| {
            hard_limit_check(Resource::RLIMIT_CPU, want, hard, None, || can_raise)
        };
        assert_eq!(check(11, 11, false), Ok(()));
        assert_eq!(check(11, nix::sys::resource::RLIM_INFINITY, false), Ok(()));
        assert_eq!(check(12, 11, true), Ok(()));
        let err = check(12, 11, false).unwrap_err();
        assert!(
            err.contains("above jobq's own hard CPU time limit, in seconds (11, `ulimit -Ht`)"),
            "{err}"
        );
        let err = hard_limit_check(Resource::RLIMIT_NOFILE, 2048, 1024, Some(4096), || false)
            .unwrap_err();
        assert!(err.contains("(1024, `ulimit -Hn`)"), "{err}");
        let err =
            hard_limit_check(Resource::RLIMIT_NOFILE, 8192, 1024, Some(4096), || true).unwrap_err();
        assert!(err.contains("fs.nr_open = 4096"), "{err}");
    }
}
