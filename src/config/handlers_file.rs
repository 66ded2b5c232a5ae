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
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
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
}
