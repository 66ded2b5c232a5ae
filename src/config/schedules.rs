//! Cron schedules as settings: a schedule's document ([`ScheduleSpec`]: cron pattern, time zone,
//! the job it makes, what to do about overlap and missed ticks), its one checker (for the HTTP
//! API's JSON and `SCHEDULES_FILE` alike), the fire times it gives ([`Timing`], through croner),
//! and `SCHEDULES_FILE` itself ([`SchedulesFile`]).
//!
//! ```toml
//! [schedules.nightly-report]
//! cron = "0 3 * * *"
//! timezone = "Europe/Berlin"
//! missed = "run_once"
//! job = { type = "report", payload = { days = 1 }, queue = "reports" }
//! ```
//!
//! The job's own fields are checked here for their shape only (an object with a `"type"`);
//! their values go through the same validation as `POST /jobs` in the layer that knows the job
//! types (`server/schedules.rs`; at start-up `app.rs` for the file's schedules).

use chrono::{DateTime, TimeZone, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::ops::Range;
use toml::de::{DeTable, DeValue};

use super::handlers_file::line_col;
use super::limits::{span_at, to_json};
use super::queues::{is_valid_queue_name, MAX_QUEUE_NAME_LEN};

/// The fields of a schedule document.
const FIELDS: [&str; 5] = ["cron", "timezone", "job", "overlap", "missed"];
/// The fields a schedule's job may have: those of `POST /jobs` that make sense every time (no
/// delay, run_at or idempotency key).
pub const JOB_FIELDS: [&str; 7] = [
    "type",
    "payload",
    "queue",
    "priority",
    "group",
    "max_attempts",
    "timeout_secs",
];
/// Longest cron pattern accepted.
const MAX_CRON_LEN: usize = 200;

/// Checks a schedule name: the rule of queue names, 1-64 characters of `A-Z a-z 0-9 _ - . :`.
pub fn check_schedule_name(name: &str) -> Result<(), String> {
    if !is_valid_queue_name(name) {
        return Err(format!(
            "schedule name {name:?} must be 1-{MAX_QUEUE_NAME_LEN} characters of A-Z a-z 0-9 _ - . :"
        ));
    }
    Ok(())
}

/// What a tick does while the job of the schedule's last tick is still pending or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Makes its job anyway (the default).
    Allow,
    /// Makes no job; the tick is counted as skipped.
    Skip,
}

/// What happens to ticks that passed while no jobq process was there to fire them (found more
/// than the grace period late).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// No job for them (the default); they are counted as missed.
    Skip,
    /// One job for all of them, then the next tick to come.
    RunOnce,
}

impl Overlap {
    /// The value as the API and SCHEDULES_FILE spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Overlap::Allow => "allow",
            Overlap::Skip => "skip",
        }
    }
}

impl Missed {
    /// The value as the API and SCHEDULES_FILE spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Missed::Skip => "skip",
            Missed::RunOnce => "run_once",
        }
    }
}

/// The time zone a pattern is read in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Zone {
    Utc,
    #[cfg(feature = "tz")]
    Named(chrono_tz::Tz),
}

impl Zone {
    fn parse(name: &str) -> Result<Zone, String> {
        if name == "UTC" {
            return Ok(Zone::Utc);
        }
        #[cfg(feature = "tz")]
        {
            name.parse::<chrono_tz::Tz>().map(Zone::Named).map_err(|_| {
                format!(
                    "unknown time zone {name:?}; use an IANA name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\""
                )
            })
        }
        #[cfg(not(feature = "tz"))]
        Err(format!(
            "time zone {name:?} is not available: this jobq was built without the \"tz\" feature (the time-zone database), so only \"UTC\" is accepted"
        ))
    }
}

/// When a schedule fires: its cron pattern read in its time zone. Times are microseconds since
/// the epoch, as the store's clock gives them; fire times are whole seconds.
///
/// DST, as croner does it (the rule of Vixie cron): a time of day that a spring-forward gap
/// skips (02:30 in Europe/Berlin on 2026-03-29) fires once, at the first instant after the gap
/// (03:00 local); a time of day that a fall-back overlap repeats (02:30 on 2026-10-25) fires
/// once, at its first pass. Patterns with a wildcard or step in the second, minute or hour
/// field follow real time instead: none in the gap, and in the repeated hour every match of
/// both passes.
#[derive(Debug, Clone)]
pub struct Timing {
    cron: Cron,
    zone: Zone,
}

/// Searches past this year give up: a pattern that matches nothing before it never fires.
const SEARCH_LIMIT_YEARS: i64 = 5;

impl Timing {
    /// Parses a pattern: 5 fields, 6 with seconds first, or a name such as `@hourly`.
    pub fn parse(cron: &str, timezone: &str) -> Result<Timing, (&'static str, String)> {
        let pattern = cron.trim();
        if pattern.is_empty() || pattern.len() > MAX_CRON_LEN {
            return Err((
                "cron",
                format!("must be a cron pattern of 1-{MAX_CRON_LEN} characters"),
            ));
        }
        let fields = pattern.split_whitespace().count();
        if !pattern.starts_with('@') && !(5..=6).contains(&fields) {
            return Err((
                "cron",
                format!(
                    "{pattern:?} has {fields} fields; expected 5 (minute hour day-of-month month day-of-week), 6 (seconds first) or a name such as @hourly"
                ),
            ));
        }
        let parsed = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build()
            .parse(pattern)
            .map_err(|e| {
                (
                    "cron",
                    format!("{pattern:?} is not a valid cron pattern: {e}"),
                )
            })?;
        let zone = Zone::parse(timezone).map_err(|e| ("timezone", e))?;
        Ok(Timing { cron: parsed, zone })
    }

    /// The first fire time strictly after `after_us` (µs), or None when there is none within
    /// five years (a pattern such as `0 0 30 2 *`).
    pub fn next_after(&self, after_us: i64) -> Option<i64> {
        // Fire times are whole seconds: search from the second `after_us` falls in.
        let secs = after_us.div_euclid(1_000_000);
        let from = Utc.timestamp_opt(secs, 0).single()?;
        let next = match self.zone {
            Zone::Utc => self.search(&from)?,
            #[cfg(feature = "tz")]
            Zone::Named(tz) => self.search(&from.with_timezone(&tz))?,
        };
        if next.timestamp() - secs > SEARCH_LIMIT_YEARS * 366 * 86_400 {
            return None;
        }
        Some(next.timestamp() * 1_000_000)
    }

    fn search<Z: TimeZone>(&self, from: &DateTime<Z>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(from, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Up to `n` fire times from `first_us` on (it included, as the first).
    pub fn runs_from(&self, first_us: i64, n: usize) -> Vec<i64> {
        let mut out = Vec::with_capacity(n);
        let mut t = first_us;
        out.push(t);
        while out.len() < n {
            match self.next_after(t) {
                Some(next) => {
                    out.push(next);
                    t = next;
                }
                None => break,
            }
        }
        out
    }
}

/// A checked schedule document.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    /// The pattern as given (trimmed).
    pub cron: String,
    /// The IANA time zone name, `UTC` by default.
    pub timezone: String,
    /// The job each tick makes, as an object with the fields of `JOB_FIELDS` (`"type"` at
    /// least); its values are validated like `POST /jobs` by the caller.
    pub job: Map<String, Value>,
    /// What a tick does while the last tick's job is still pending or running.
    pub overlap: Overlap,
    /// What happens to ticks no process was there to make.
    pub missed: Missed,
    /// The parsed pattern.
    pub timing: Timing,
}

/// A complaint of the checker: the field (empty for the whole document), what is wrong, and
/// whether the field's name itself is the problem (a file error then points at the key).
#[derive(Debug, Clone, PartialEq)]
struct Bad {
    path: Vec<String>,
    msg: String,
    at_key: bool,
}

impl Bad {
    fn at(path: &[&str], msg: impl Into<String>) -> Bad {
        Bad {
            path: path.iter().map(|s| s.to_string()).collect(),
            msg: msg.into(),
            at_key: false,
        }
    }

    fn text(&self) -> String {
        if self.path.is_empty() {
            format!("schedule: {}", self.msg)
        } else {
            format!("{}: {}", self.path.join("."), self.msg)
        }
    }
}

/// `v` as an object with keys from `known` only.
fn object<'v>(v: &'v Value, path: &[&str], known: &[&str]) -> Result<&'v Map<String, Value>, Bad> {
    let Value::Object(m) = v else {
        return Err(Bad::at(
            path,
            format!("must be an object with {}", known.join(", ")),
        ));
    };
    if let Some(k) = m.keys().find(|k| !known.contains(&k.as_str())) {
        let mut p: Vec<&str> = path.to_vec();
        p.push(k);
        let mut bad = Bad::at(&p, format!("unknown field; expected {}", known.join(", ")));
        bad.at_key = true;
        return Err(bad);
    }
    Ok(m)
}

/// A string member; absent or null gives `default`.
fn text<'m>(
    m: &'m Map<String, Value>,
    key: &'static str,
    default: Option<&'m str>,
) -> Result<&'m str, Bad> {
    match m.get(key) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => default.ok_or_else(|| Bad::at(&[key], "is required")),
        Some(_) => Err(Bad::at(&[key], "must be a string")),
    }
}

impl ScheduleSpec {
    /// Checks a schedule document, refusing unknown fields and bad values with one message
    /// naming the field, e.g. `cron: "61 * * * *" is not a valid cron pattern: ...`.
    pub fn from_json(v: &Value) -> Result<ScheduleSpec, String> {
        check(v).map_err(|bad| bad.text())
    }

    /// The document as stored and shown: every field, defaults filled in.
    pub fn to_json(&self) -> Value {
        json!({
            "cron": self.cron,
            "timezone": self.timezone,
            "job": self.job,
            "overlap": self.overlap.as_str(),
            "missed": self.missed.as_str(),
        })
    }

    /// The pattern and zone together: a change of either restarts the schedule's rhythm.
    pub fn timing_key(&self) -> String {
        format!("{} {}", self.cron, self.timezone)
    }
}

fn check(v: &Value) -> Result<ScheduleSpec, Bad> {
    let m = object(v, &[], &FIELDS)?;
    let cron = text(m, "cron", None)?.trim().to_string();
    let timezone = text(m, "timezone", Some("UTC"))?.to_string();
    let timing = Timing::parse(&cron, &timezone).map_err(|(f, e)| Bad::at(&[f], e))?;
    // A pattern that can never match (30 February) would sit in Redis firing nothing.
    if timing.next_after(Utc::now().timestamp_micros()).is_none() {
        return Err(Bad::at(
            &["cron"],
            format!("{cron:?} matches no time in the next {SEARCH_LIMIT_YEARS} years"),
        ));
    }
    let overlap = match text(m, "overlap", Some("allow"))? {
        "allow" => Overlap::Allow,
        "skip" => Overlap::Skip,
        other => {
            return Err(Bad::at(
                &["overlap"],
                format!("{other:?}: expected \"allow\" or \"skip\""),
            ))
        }
    };
    let missed = match text(m, "missed", Some("skip"))? {
        "skip" => Missed::Skip,
        "run_once" => Missed::RunOnce,
        other => {
            return Err(Bad::at(
                &["missed"],
                format!("{other:?}: expected \"skip\" or \"run_once\""),
            ))
        }
    };
    let job = match m.get("job") {
        None | Some(Value::Null) => return Err(Bad::at(
            &["job"],
            "is required: the job each tick makes, e.g. {\"type\": \"report\", \"payload\": {}}",
        )),
        Some(j) => object(j, &["job"], &JOB_FIELDS)?,
    };
    match job.get("type") {
        Some(Value::String(_)) => {}
        None | Some(Value::Null) => return Err(Bad::at(&["job", "type"], "is required")),
        Some(_) => return Err(Bad::at(&["job", "type"], "must be a string")),
    }
    Ok(ScheduleSpec {
        cron,
        timezone,
        job: job.clone(),
        overlap,
        missed,
        timing,
    })
}

/// One schedule of `SCHEDULES_FILE`.
#[derive(Debug, Clone)]
pub struct FileSchedule {
    /// Its document.
    pub spec: ScheduleSpec,
    /// `file:line:column` of its `job` table, for errors found later (an unknown job type).
    pub job_at: String,
}

/// `SCHEDULES_FILE`: schedules declared as code, synced into Redis at start-up (added, changed,
/// removed by name; schedules made through the API are left alone).
#[derive(Debug, Clone)]
pub struct SchedulesFile {
    /// The path as given (shown by `Config::settings`).
    pub path: String,
    /// One per `[schedules.<name>]` table.
    pub schedules: BTreeMap<String, FileSchedule>,
}

impl SchedulesFile {
    /// Reads and checks a schedules file. The error names the file and the line and column of
    /// the problem, e.g. `schedules.toml:3:8: [schedules.nightly] cron: ...`.
    pub fn load(path: &str) -> Result<SchedulesFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        SchedulesFile::parse(&text, path)
    }

    /// Parses schedules-file text; `path` names it in errors. Each table goes through the same
    /// checker as the API's JSON, after conversion to JSON.
    pub fn parse(text: &str, path: &str) -> Result<SchedulesFile, String> {
        let at = |span: Range<usize>| {
            let (l, c) = line_col(text, span.start);
            format!("{path}:{l}:{c}")
        };
        let doc = DeTable::parse(text).map_err(|e| {
            let msg = e.message().trim().to_string();
            match e.span() {
                Some(span) => format!("{}: {msg}", at(span)),
                None => format!("{path}: {msg}"),
            }
        })?;
        let mut file = SchedulesFile {
            path: path.to_string(),
            schedules: BTreeMap::new(),
        };
        for (key, value) in doc.get_ref().iter() {
            if key.get_ref() != "schedules" {
                return Err(format!(
                    "{}: {}: unknown table; expected [schedules.<name>]",
                    at(key.span()),
                    key.get_ref()
                ));
            }
            let DeValue::Table(entries) = value.get_ref() else {
                return Err(format!(
                    "{}: schedules: expected tables such as [schedules.<name>]",
                    at(value.span())
                ));
            };
            for (name, table) in entries.iter() {
                let section = section(name.get_ref());
                check_schedule_name(name.get_ref())
                    .map_err(|e| format!("{}: {section}: {e}", at(name.span())))?;
                let spec = check(&to_json(table.get_ref())).map_err(|bad| {
                    format!(
                        "{}: {section} {}",
                        at(span_at(table, &bad.path, bad.at_key)),
                        bad.text()
                    )
                })?;
                let job_at = at(span_at(table, &["job".to_string()], false));
                file.schedules
                    .insert(name.get_ref().to_string(), FileSchedule { spec, job_at });
            }
        }
        Ok(file)
    }
}

/// `[schedules.name]`, the name quoted when TOML needs it.
fn section(name: &str) -> String {
    let bare = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if bare {
        format!("[schedules.{name}]")
    } else {
        format!("[schedules.{name:?}]")
    }
}

#[cfg(test)]
mod tests;
