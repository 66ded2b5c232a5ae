//! Flow control settings: the [`Limits`] of a queue or job type (concurrency, rate, per-group
//! limits, circuit breaker); the one checker of their values, which both a JSON change from the
//! HTTP API ([`LimitsPatch::from_json`]) and `LIMITS_FILE` ([`LimitsFile`]) go through, so every
//! range is written once; and their flat form in a Redis hash ([`Limits::to_fields`]).
//!
//! ```toml
//! [queues.default]
//! concurrency = 10
//! rate = { limit = 100, period_secs = 1 }
//! group = { concurrency = 5, rate = { limit = 10, period_secs = 1 } }
//!
//! [types.email]
//! breaker = { consecutive = 10, cooldown_secs = 30 }
//! ```

use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::handlers_file::{is_valid_type_name, line_col, MAX_TYPE_LEN};
use super::queues::{is_valid_queue_name, MAX_QUEUE_NAME_LEN};

/// Largest concurrency limit, of a queue, a job type or a group.
pub const MAX_CONCURRENCY: u32 = 1_000_000;
/// Largest `limit` of a [`Rate`].
pub const MAX_RATE_LIMIT: u32 = 1_000_000;
/// Longest `period_secs` of a [`Rate`]: a day.
pub const MAX_PERIOD_SECS: u64 = 86_400;
/// Largest `consecutive` of a [`Breaker`].
pub const MAX_CONSECUTIVE: u32 = 10_000;
/// Smallest `window` of a [`Breaker`]: a ratio of one attempt is just `consecutive = 1`.
pub const MIN_WINDOW: u32 = 2;
/// Largest `window` of a [`Breaker`].
pub const MAX_WINDOW: u32 = 100;
/// `window` of a [`Breaker`] that does not give one.
pub const DEFAULT_WINDOW: u32 = 20;
/// Longest `cooldown_secs` of a [`Breaker`]: a day.
pub const MAX_COOLDOWN_SECS: u64 = 86_400;
/// `cooldown_secs` of a [`Breaker`] that does not give one.
pub const DEFAULT_COOLDOWN_SECS: u64 = 30;

/// A rate: at most `limit` starts per `period_secs`, spaced evenly.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rate {
    /// Starts allowed per period, 1-1000000.
    pub limit: u32,
    /// The period in seconds, 1-86400.
    pub period_secs: u64,
}

/// Limits that apply to each group of a queue separately (a job's group is set when it is
/// created); at least one is set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupLimits {
    /// Jobs of one group running at once, 1-1000000.
    pub concurrency: Option<u32>,
    /// Starts of one group's jobs.
    pub rate: Option<Rate>,
}

/// Circuit breaker of a job type: opens after `consecutive` failures in a row, or when at least
/// `failure_ratio` of the last `window` attempts failed (window full); stays open
/// `cooldown_secs`. At least one of `consecutive` and `failure_ratio` is set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breaker {
    /// Failures in a row that open the breaker, 1-10000.
    pub consecutive: Option<u32>,
    /// Share of failed attempts in a full window that opens the breaker, above 0 and at most 1.
    pub failure_ratio: Option<f64>,
    /// Attempts the ratio is taken over, 2-100 (default 20).
    pub window: u32,
    /// How long the breaker stays open, 1-86400 seconds (default 30).
    pub cooldown_secs: u64,
}

/// The limits of one queue or one job type; `None` is no limit. Serialized with `null` for the
/// limits that are not set, so a client sees every field.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Limits {
    /// Jobs running at once, 1-1000000.
    pub concurrency: Option<u32>,
    /// Starts per period.
    pub rate: Option<Rate>,
    /// Limits per group (queues only).
    pub group: Option<GroupLimits>,
    /// Circuit breaker (job types only).
    pub breaker: Option<Breaker>,
}

/// What a set of limits belongs to: a queue or a job type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// A named queue: `group` limits allowed, no `breaker`.
    Queue,
    /// A job type: `breaker` allowed, no `group` limits.
    Type,
}

impl Scope {
    /// `"queue"` or `"type"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Queue => "queue",
            Scope::Type => "type",
        }
    }

    /// The top-level fields of limits in this scope, as named in errors.
    fn fields(self) -> &'static [&'static str] {
        match self {
            Scope::Queue => &["concurrency", "rate", "group"],
            Scope::Type => &["concurrency", "rate", "breaker"],
        }
    }

    /// The LIMITS_FILE table of this scope.
    fn table(self) -> &'static str {
        match self {
            Scope::Queue => "queues",
            Scope::Type => "types",
        }
    }
}

const GROUP_PER_QUEUE: &str = "group limits apply per queue: set them with PUT /queues/{q}/limits";
const BREAKER_PER_TYPE: &str = "a circuit breaker is set per job type: PUT /types/{t}/limits";

/// A change to limits: a field left out is unchanged, `null` removes that limit.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LimitsPatch {
    /// `None`: unchanged; `Some(None)`: removed; `Some(Some(n))`: set.
    pub concurrency: Option<Option<u32>>,
    /// As `concurrency`.
    pub rate: Option<Option<Rate>>,
    /// As `concurrency` (queues only).
    pub group: Option<Option<GroupLimits>>,
    /// As `concurrency` (job types only).
    pub breaker: Option<Option<Breaker>>,
}

impl LimitsPatch {
    /// Parses a JSON document, refusing unknown fields, wrong types and out-of-range values with
    /// one message naming the field and the allowed range, e.g. "rate.limit: must be an integer
    /// from 1 to 1000000". `group` is allowed only for [`Scope::Queue`], `breaker` only for
    /// [`Scope::Type`]. Inside `group` and `breaker`, `null` is the same as leaving a field out.
    pub fn from_json(v: &Value, scope: Scope) -> Result<LimitsPatch, String> {
        check_patch(v, scope).map_err(|bad| bad.text())
    }

    /// The store fields this change touches: those of every limit it names (set or removed).
    /// Written alone, they leave the other limits as they are in Redis, so two changes of
    /// different limits made at once both take effect.
    pub fn fields(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.concurrency.is_some() {
            out.push("conc");
        }
        if self.rate.is_some() {
            out.extend(["rate_n", "rate_ms"]);
        }
        if self.group.is_some() {
            out.extend(["gconc", "grate_n", "grate_ms"]);
        }
        if self.breaker.is_some() {
            out.extend(["b_consec", "b_ratio", "b_window", "b_cool_ms"]);
        }
        out
    }

    /// `base` with this change made.
    pub fn apply(&self, base: &Limits) -> Limits {
        fn pick<T: Clone>(change: &Option<Option<T>>, old: &Option<T>) -> Option<T> {
            change.as_ref().unwrap_or(old).clone()
        }
        Limits {
            concurrency: pick(&self.concurrency, &base.concurrency),
            rate: pick(&self.rate, &base.rate),
            group: pick(&self.group, &base.group),
            breaker: pick(&self.breaker, &base.breaker),
        }
    }
}

impl Limits {
    /// The fields under which the store keeps limits in a Redis hash, in this order. Periods and
    /// cooldowns are in milliseconds (`_ms`), the unit of the store's clock.
    pub const FIELDS: [&'static str; 10] = [
        "conc",
        "rate_n",
        "rate_ms",
        "gconc",
        "grate_n",
        "grate_ms",
        "b_consec",
        "b_ratio",
        "b_window",
        "b_cool_ms",
    ];

    /// `(field, value)` for every limit that is set, for a Redis hash; see [`Limits::FIELDS`].
    pub fn to_fields(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(n) = self.concurrency {
            out.push(("conc", n.to_string()));
        }
        if let Some(r) = &self.rate {
            out.push(("rate_n", r.limit.to_string()));
            out.push(("rate_ms", (r.period_secs * 1000).to_string()));
        }
        if let Some(g) = &self.group {
            if let Some(n) = g.concurrency {
                out.push(("gconc", n.to_string()));
            }
            if let Some(r) = &g.rate {
                out.push(("grate_n", r.limit.to_string()));
                out.push(("grate_ms", (r.period_secs * 1000).to_string()));
            }
        }
        if let Some(b) = &self.breaker {
            if let Some(n) = b.consecutive {
                out.push(("b_consec", n.to_string()));
            }
            if let Some(r) = b.failure_ratio {
                // Rust prints the shortest text that reads back as the same f64.
                out.push(("b_ratio", r.to_string()));
            }
            out.push(("b_window", b.window.to_string()));
            out.push(("b_cool_ms", (b.cooldown_secs * 1000).to_string()));
        }
        out
    }

    /// Limits from a Redis hash written by [`Limits::to_fields`]. Other fields are ignored; a
    /// value that does not parse, or is out of range or not whole seconds, is skipped as if
    /// absent, so a hand-edited hash cannot give the store limits the API would refuse.
    pub fn from_fields(h: &HashMap<String, String>) -> Limits {
        let int = |field: &str, range: IntRange| h.get(field).and_then(|s| range.parse(s));
        let secs = |field: &str, range: IntRange| {
            h.get(field)
                .and_then(|s| s.trim().parse::<u64>().ok())
                .filter(|ms| ms % 1000 == 0)
                .and_then(|ms| range.check(ms / 1000))
        };
        let rate = |n: &str, ms: &str| {
            Some(Rate {
                limit: int(n, RATE_LIMIT)? as u32,
                period_secs: secs(ms, PERIOD_SECS)?,
            })
        };
        let group = GroupLimits {
            concurrency: int("gconc", CONCURRENCY).map(|n| n as u32),
            rate: rate("grate_n", "grate_ms"),
        };
        let breaker = Breaker {
            consecutive: int("b_consec", CONSECUTIVE).map(|n| n as u32),
            failure_ratio: h
                .get("b_ratio")
                .and_then(|s| s.trim().parse::<f64>().ok())
                .filter(|r| is_ratio(*r)),
            window: int("b_window", WINDOW).map_or(DEFAULT_WINDOW, |n| n as u32),
            cooldown_secs: secs("b_cool_ms", COOLDOWN_SECS).unwrap_or(DEFAULT_COOLDOWN_SECS),
        };
        Limits {
            concurrency: int("conc", CONCURRENCY).map(|n| n as u32),
            rate: rate("rate_n", "rate_ms"),
            group: (group.concurrency.is_some() || group.rate.is_some()).then_some(group),
            breaker: (breaker.consecutive.is_some() || breaker.failure_ratio.is_some())
                .then_some(breaker),
        }
    }
}

/// `LIMITS_FILE`: limits per queue and per job type, applied at start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitsFile {
    /// The path as given in LIMITS_FILE (shown by `Config::settings`).
    pub path: String,
    /// One per `[queues.<name>]` table.
    pub queues: BTreeMap<String, Limits>,
    /// One per `[types.<name>]` table.
    pub types: BTreeMap<String, Limits>,
}

impl LimitsFile {
    /// Reads and checks a limits file. The error names the file and the line and column of the
    /// problem, e.g. `limits.toml:3:17: [queues.default] rate.limit: ...`.
    pub fn load(path: &str) -> Result<LimitsFile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        LimitsFile::parse(&text, path)
    }

    /// Parses limits-file text; `path` names it in errors. Each table goes through the same
    /// checker as the API's JSON, after conversion to JSON; the error is then placed on the
    /// field it names.
    pub fn parse(text: &str, path: &str) -> Result<LimitsFile, String> {
        let at = |span: Range<usize>, msg: String| {
            let (l, c) = line_col(text, span.start);
            format!("{path}:{l}:{c}: {msg}")
        };
        let doc = DeTable::parse(text).map_err(|e| {
            let msg = e.message().trim().to_string();
            match e.span() {
                Some(span) => at(span, msg),
                None => format!("{path}: {msg}"),
            }
        })?;
        let mut file = LimitsFile {
            path: path.to_string(),
            queues: BTreeMap::new(),
            types: BTreeMap::new(),
        };
        for (key, value) in doc.get_ref().iter() {
            let (scope, out) = match key.get_ref().as_ref() {
                "queues" => (Scope::Queue, &mut file.queues),
                "types" => (Scope::Type, &mut file.types),
                other => {
                    return Err(at(
                        key.span(),
                        format!(
                            "{other}: unknown table; expected [queues.<name>] or [types.<name>]"
                        ),
                    ))
                }
            };
            let DeValue::Table(entries) = value.get_ref() else {
                return Err(at(
                    value.span(),
                    format!("{}: expected tables such as [{0}.<name>]", scope.table()),
                ));
            };
            for (name, limits) in entries.iter() {
                let (name_span, name) = (name.span(), name.get_ref().as_ref());
                let section = section(scope, name);
                let valid = match scope {
                    Scope::Queue => is_valid_queue_name(name),
                    Scope::Type => is_valid_type_name(name),
                };
                if !valid {
                    let (what, max) = match scope {
                        Scope::Queue => ("queue name", MAX_QUEUE_NAME_LEN),
                        Scope::Type => ("job type", MAX_TYPE_LEN),
                    };
                    return Err(at(
                        name_span,
                        format!(
                            "{section}: a {what} must be 1-{max} characters of A-Z a-z 0-9 _ - . :"
                        ),
                    ));
                }
                let patch = check_patch(&to_json(limits.get_ref()), scope)
                    .map_err(|bad| at(locate(limits, &bad), format!("{section} {}", bad.text())))?;
                out.insert(name.to_string(), patch.apply(&Limits::default()));
            }
        }
        Ok(file)
    }
}

/// `[queues.name]`, with the name quoted when TOML needs it (`[queues."mail:eu"]`).
fn section(scope: Scope, name: &str) -> String {
    let bare = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if bare {
        format!("[{}.{name}]", scope.table())
    } else {
        format!("[{}.{name:?}]", scope.table())
    }
}

/// A TOML value as JSON, for the checker. What JSON cannot hold (an integer beyond i64, a
/// non-finite float, a date) becomes a string, which the checker then refuses by type.
/// SCHEDULES_FILE's tables go through it too.
pub(super) fn to_json(v: &DeValue<'_>) -> Value {
    match v {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .map_or_else(|_| Value::String(i.to_string()), Value::from),
        DeValue::Float(f) => f
            .as_str()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::String(f.to_string()), Value::Number),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::String(d.to_string()),
        DeValue::Array(a) => Value::Array(a.iter().map(|e| to_json(e.get_ref())).collect()),
        DeValue::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.get_ref().to_string(), to_json(v.get_ref())))
                .collect(),
        ),
    }
}

/// Where in the file the checker's complaint belongs: the deepest field of its path that the
/// file has (the key itself for an unknown field, else the value).
fn locate(limits: &Spanned<DeValue<'_>>, bad: &Bad) -> Range<usize> {
    span_at(limits, &bad.path, bad.at_key)
}

/// The span of the field at `path` below `node` (its deepest part the file has): the key when
/// `at_key` (the name is the problem), else the value.
pub(super) fn span_at(node: &Spanned<DeValue<'_>>, path: &[String], at_key: bool) -> Range<usize> {
    let mut node = node;
    let mut span = node.span();
    for (i, segment) in path.iter().enumerate() {
        let DeValue::Table(t) = node.get_ref() else {
            break;
        };
        let Some((k, v)) = t.iter().find(|(k, _)| k.get_ref() == segment) else {
            break;
        };
        span = if at_key && i + 1 == path.len() {
            k.span()
        } else {
            v.span()
        };
        node = v;
    }
    span
}

/// An inclusive range of integers, with the words that state it. The one statement of each
/// limit's range, used by the checker and by [`Limits::from_fields`].
#[derive(Clone, Copy)]
struct IntRange {
    lo: u64,
    hi: u64,
}

const CONCURRENCY: IntRange = IntRange {
    lo: 1,
    hi: MAX_CONCURRENCY as u64,
};
const RATE_LIMIT: IntRange = IntRange {
    lo: 1,
    hi: MAX_RATE_LIMIT as u64,
};
const PERIOD_SECS: IntRange = IntRange {
    lo: 1,
    hi: MAX_PERIOD_SECS,
};
const CONSECUTIVE: IntRange = IntRange {
    lo: 1,
    hi: MAX_CONSECUTIVE as u64,
};
const WINDOW: IntRange = IntRange {
    lo: MIN_WINDOW as u64,
    hi: MAX_WINDOW as u64,
};
const COOLDOWN_SECS: IntRange = IntRange {
    lo: 1,
    hi: MAX_COOLDOWN_SECS,
};

impl IntRange {
    fn check(self, n: u64) -> Option<u64> {
        (self.lo..=self.hi).contains(&n).then_some(n)
    }
    fn parse(self, s: &str) -> Option<u64> {
        s.trim().parse().ok().and_then(|n| self.check(n))
    }
    fn expected(self) -> String {
        format!("must be an integer from {} to {}", self.lo, self.hi)
    }
}

fn is_ratio(r: f64) -> bool {
    r > 0.0 && r <= 1.0
}

/// A complaint of the checker: the field (`rate.limit`; empty for the whole document) and what
/// is wrong with it. `at_key`: the field's name is the problem (unknown, or not allowed here),
/// so a file error points at the key rather than its value.
struct Bad {
    path: Vec<String>,
    msg: String,
    at_key: bool,
}

impl Bad {
    fn new(path: Vec<String>, msg: impl Into<String>) -> Bad {
        Bad {
            path,
            msg: msg.into(),
            at_key: false,
        }
    }
    fn text(&self) -> String {
        if self.path.is_empty() {
            format!("limits: {}", self.msg)
        } else {
            format!("{}: {}", self.path.join("."), self.msg)
        }
    }
}

fn child(path: &[String], key: &str) -> Vec<String> {
    let mut p = path.to_vec();
    p.push(key.to_string());
    p
}

/// `v` as an object whose keys are all in `known`.
fn object<'v>(
    v: &'v Value,
    path: &[String],
    known: &[&str],
) -> Result<&'v Map<String, Value>, Bad> {
    let Value::Object(m) = v else {
        return Err(Bad::new(
            path.to_vec(),
            format!("must be an object with {}", known.join(", ")),
        ));
    };
    match m.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(Bad {
            path: child(path, k),
            msg: format!("unknown field; expected {}", known.join(", ")),
            at_key: true,
        }),
        None => Ok(m),
    }
}

/// A member of an object; absent and `null` both mean "not set" (inside `rate`, `group` and
/// `breaker`, where nothing is removed field by field).
fn member<'m>(m: &'m Map<String, Value>, key: &str) -> Option<&'m Value> {
    m.get(key).filter(|v| !v.is_null())
}

fn int(v: &Value, path: Vec<String>, range: IntRange) -> Result<u64, Bad> {
    v.as_u64()
        .and_then(|n| range.check(n))
        .ok_or_else(|| Bad::new(path, range.expected()))
}

fn optional_int(
    m: &Map<String, Value>,
    path: &[String],
    key: &str,
    range: IntRange,
) -> Result<Option<u64>, Bad> {
    member(m, key)
        .map(|v| int(v, child(path, key), range))
        .transpose()
}

fn required_int(
    m: &Map<String, Value>,
    path: &[String],
    key: &str,
    range: IntRange,
) -> Result<u64, Bad> {
    optional_int(m, path, key, range)?.ok_or_else(|| {
        Bad::new(
            child(path, key),
            format!("is required and {}", range.expected()),
        )
    })
}

fn check_rate(v: &Value, path: &[String]) -> Result<Rate, Bad> {
    let m = object(v, path, &["limit", "period_secs"])?;
    Ok(Rate {
        limit: required_int(m, path, "limit", RATE_LIMIT)? as u32,
        period_secs: required_int(m, path, "period_secs", PERIOD_SECS)?,
    })
}

fn check_group(v: &Value, path: &[String]) -> Result<GroupLimits, Bad> {
    let m = object(v, path, &["concurrency", "rate"])?;
    let group = GroupLimits {
        concurrency: optional_int(m, path, "concurrency", CONCURRENCY)?.map(|n| n as u32),
        rate: member(m, "rate")
            .map(|r| check_rate(r, &child(path, "rate")))
            .transpose()?,
    };
    if group.concurrency.is_none() && group.rate.is_none() {
        return Err(Bad::new(path.to_vec(), "set concurrency, rate or both"));
    }
    Ok(group)
}

fn check_breaker(v: &Value, path: &[String]) -> Result<Breaker, Bad> {
    let m = object(
        v,
        path,
        &["consecutive", "failure_ratio", "window", "cooldown_secs"],
    )?;
    let failure_ratio = match member(m, "failure_ratio") {
        None => None,
        Some(r) => Some(r.as_f64().filter(|r| is_ratio(*r)).ok_or_else(|| {
            Bad::new(
                child(path, "failure_ratio"),
                "must be a number above 0 and at most 1",
            )
        })?),
    };
    let breaker = Breaker {
        consecutive: optional_int(m, path, "consecutive", CONSECUTIVE)?.map(|n| n as u32),
        failure_ratio,
        window: optional_int(m, path, "window", WINDOW)?.map_or(DEFAULT_WINDOW, |n| n as u32),
        cooldown_secs: optional_int(m, path, "cooldown_secs", COOLDOWN_SECS)?
            .unwrap_or(DEFAULT_COOLDOWN_SECS),
    };
    if breaker.consecutive.is_none() && breaker.failure_ratio.is_none() {
        return Err(Bad::new(
            path.to_vec(),
            "set consecutive, failure_ratio or both",
        ));
    }
    Ok(breaker)
}

/// The one checker of limits, for the API's JSON and (converted) LIMITS_FILE tables alike.
fn check_patch(v: &Value, scope: Scope) -> Result<LimitsPatch, Bad> {
    let (foreign, why) = match scope {
        Scope::Queue => ("breaker", BREAKER_PER_TYPE),
        Scope::Type => ("group", GROUP_PER_QUEUE),
    };
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        match m.get(foreign) {
            None => {}
            // What GET shows (every field, null when unset) goes back through PUT: a null
            // breaker of a queue, or group of a type, says what is true anyway.
            Some(Value::Null) => {
                m.remove(foreign);
            }
            // Named here rather than as an "unknown field", which would not say where it belongs.
            Some(_) => {
                return Err(Bad {
                    path: vec![foreign.to_string()],
                    msg: why.to_string(),
                    at_key: true,
                })
            }
        }
    }
    let m = object(&v, &[], scope.fields())?;
    /// Left out: unchanged; `null`: removed; else checked.
    fn field<T>(
        m: &Map<String, Value>,
        key: &str,
        check: impl Fn(&Value, &[String]) -> Result<T, Bad>,
    ) -> Result<Option<Option<T>>, Bad> {
        match m.get(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(v) => check(v, &[key.to_string()]).map(|t| Some(Some(t))),
        }
    }
    Ok(LimitsPatch {
        concurrency: field(m, "concurrency", |v, p| {
            int(v, p.to_vec(), CONCURRENCY).map(|n| n as u32)
        })?,
        rate: field(m, "rate", check_rate)?,
        group: field(m, "group", check_group)?,
        breaker: field(m, "breaker", check_breaker)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(v: Value, scope: Scope) -> Result<LimitsPatch, String> {
        LimitsPatch::from_json(&v, scope)
    }

    #[test]
    fn a_patch_touches_only_the_fields_of_the_limits_it_names() {
        let p = patch(json!({"concurrency": 3, "rate": null}), Scope::Queue).unwrap();
        assert_eq!(p.fields(), ["conc", "rate_n", "rate_ms"]);
        let p = patch(json!({"breaker": {"consecutive": 2}}), Scope::Type).unwrap();
        assert_eq!(p.fields(), ["b_consec", "b_ratio", "b_window", "b_cool_ms"]);
        assert!(patch(json!({}), Scope::Queue).unwrap().fields().is_empty());
    }

    #[test]
    fn a_good_file_parses() {
        let f = LimitsFile::parse(
            r#"
[queues.default]
concurrency = 10
rate = { limit = 100, period_secs = 1 }
group = { concurrency = 5, rate = { limit = 10, period_secs = 1 } }

[queues."mail:eu"]
rate.limit = 5
rate.period_secs = 60

[types.email]
concurrency = 3
rate = { limit = 10_000, period_secs = 3600 }
breaker = { consecutive = 10, cooldown_secs = 30 }

[types.report]
breaker = { failure_ratio = 0.5, window = 20, cooldown_secs = 60 }
"#,
            "l.toml",
        )
        .unwrap();
        assert_eq!(f.path, "l.toml");
        let d = &f.queues["default"];
        assert_eq!(d.concurrency, Some(10));
        assert_eq!(
            d.rate,
            Some(Rate {
                limit: 100,
                period_secs: 1
            })
        );
        let g = d.group.as_ref().unwrap();
        assert_eq!(g.concurrency, Some(5));
        assert_eq!(g.rate.as_ref().unwrap().limit, 10);
        assert_eq!(d.breaker, None);
        assert_eq!(f.queues["mail:eu"].rate.as_ref().unwrap().period_secs, 60);
        let email = &f.types["email"];
        assert_eq!(email.rate.as_ref().unwrap().limit, 10_000);
        assert_eq!(
            email.breaker,
            Some(Breaker {
                consecutive: Some(10),
                failure_ratio: None,
                window: DEFAULT_WINDOW,
                cooldown_secs: 30
            })
        );
        let b = f.types["report"].breaker.as_ref().unwrap();
        assert_eq!(
            (b.failure_ratio, b.window, b.consecutive),
            (Some(0.5), 20, None)
        );
        assert_eq!(LimitsFile::parse("", "e.toml").unwrap().queues.len(), 0);
    }

    #[test]
    fn file_errors_name_the_line_column_and_field() {
        let cases = [
            // Syntax.
            ("[queues.default]\nconcurrency = \n", "l.toml:2:"),
            // Unknown field: the key.
            ("[queues.default]\nconcurrency = 1\nparallel = 3\n", "l.toml:3:1: [queues.default] parallel: unknown field"),
            // Out of range: the value.
            ("[queues.default]\nconcurrency = 0\n", "l.toml:2:15: [queues.default] concurrency: must be an integer from 1 to 1000000"),
            ("[queues.q]\nrate = { limit = 0, period_secs = 1 }\n", "l.toml:2:18: [queues.q] rate.limit: must be an integer from 1 to 1000000"),
            ("[queues.q]\nrate = { limit = 5 }\n", "l.toml:2:8: [queues.q] rate.period_secs: is required"),
            ("[queues.q]\nrate = { limit = 5, period_secs = 86401 }\n", "rate.period_secs: must be an integer from 1 to 86400"),
            ("[queues.q]\nrate = { limit = 5, period_secs = 1, burst = 2 }\n", "l.toml:2:38: [queues.q] rate.burst: unknown field"),
            ("[queues.q]\nconcurrency = \"3\"\n", "l.toml:2:15"),
            ("[queues.q]\nconcurrency = 3.0\n", "l.toml:2:15"),
            ("[queues.q]\nconcurrency = -1\n", "l.toml:2:15"),
            ("[queues.q]\ngroup = {}\n", "l.toml:2:9: [queues.q] group: set concurrency, rate or both"),
            // group under a type, breaker under a queue.
            ("[types.email]\ngroup = { concurrency = 1 }\n", "l.toml:2:1: [types.email] group: group limits apply per queue"),
            ("[queues.q]\nbreaker = { consecutive = 1 }\n", "l.toml:2:1: [queues.q] breaker: a circuit breaker is set per job type"),
            ("[types.t]\nbreaker = { window = 10 }\n", "breaker: set consecutive, failure_ratio or both"),
            ("[types.t]\nbreaker = { failure_ratio = 1.5 }\n", "l.toml:2:29: [types.t] breaker.failure_ratio: must be a number above 0 and at most 1"),
            ("[types.t]\nbreaker = { consecutive = 10001 }\n", "breaker.consecutive: must be an integer from 1 to 10000"),
            ("[types.t]\nbreaker = { consecutive = 1, window = 1 }\n", "breaker.window: must be an integer from 2 to 100"),
            ("[types.t]\nbreaker = { consecutive = 1, cooldown_secs = 0 }\n", "breaker.cooldown_secs: must be an integer from 1 to 86400"),
            // Names.
            ("\n[queues.\"has space\"]\nconcurrency = 1\n", "l.toml:2:9: [queues.\"has space\"]: a queue name must be 1-64"),
            ("[types.\"a/b\"]\nconcurrency = 1\n", "a job type must be 1-64"),
            ("[limits.q]\nconcurrency = 1\n", "l.toml:1:2: limits: unknown table"),
            ("queues = 3\n", "l.toml:1:10: queues: expected tables"),
            ("[queues]\nq = 3\n", "l.toml:2:5: [queues.q] limits: must be an object"),
        ];
        for (text, want) in cases {
            let err = LimitsFile::parse(text, "l.toml").unwrap_err();
            assert!(err.contains(want), "{text:?}: {err:?} lacks {want:?}");
        }
        let err = LimitsFile::load("/no/such/limits.toml").unwrap_err();
        assert!(err.contains("cannot read /no/such/limits.toml"), "{err}");
    }

    #[test]
    fn a_patch_tells_left_out_from_null() {
        let p = patch(json!({"concurrency": 4, "rate": null}), Scope::Queue).unwrap();
        assert_eq!(p.concurrency, Some(Some(4)));
        assert_eq!(p.rate, Some(None));
        assert_eq!((p.group.clone(), p.breaker.clone()), (None, None));

        let base = Limits {
            concurrency: Some(1),
            rate: Some(Rate {
                limit: 9,
                period_secs: 2,
            }),
            group: Some(GroupLimits {
                concurrency: Some(2),
                rate: None,
            }),
            breaker: None,
        };
        let after = p.apply(&base);
        assert_eq!(after.concurrency, Some(4));
        assert_eq!(after.rate, None, "null removes");
        assert_eq!(after.group, base.group, "left out is unchanged");
        assert_eq!(LimitsPatch::default().apply(&base), base);
        assert_eq!(
            patch(json!({}), Scope::Type).unwrap(),
            LimitsPatch::default()
        );

        let p = patch(
            json!({"breaker": {"failure_ratio": 1, "consecutive": null, "window": 50}}),
            Scope::Type,
        )
        .unwrap();
        assert_eq!(
            p.breaker,
            Some(Some(Breaker {
                consecutive: None,
                failure_ratio: Some(1.0),
                window: 50,
                cooldown_secs: DEFAULT_COOLDOWN_SECS
            }))
        );
        // A null of the other scope's field is let through, as nothing.
        assert_eq!(
            patch(json!({"group": null}), Scope::Type).unwrap(),
            LimitsPatch::default()
        );
        // What GET shows (null for unset) goes back through PUT unchanged.
        let shown = serde_json::to_value(&after).unwrap();
        assert_eq!(shown["breaker"], Value::Null);
        assert_eq!(
            patch(shown, Scope::Queue)
                .unwrap()
                .apply(&Limits::default()),
            after
        );
    }

    #[test]
    fn a_bad_patch_names_the_field_and_range() {
        let cases = [
            (
                json!({"rate": {"limit": 0, "period_secs": 1}}),
                Scope::Queue,
                "rate.limit: must be an integer from 1 to 1000000",
            ),
            (
                json!({"rate": {"limit": 1}}),
                Scope::Queue,
                "rate.period_secs: is required and must be an integer from 1 to 86400",
            ),
            (
                json!({"rate": {"limit": null, "period_secs": 1}}),
                Scope::Queue,
                "rate.limit: is required",
            ),
            (
                json!({"rate": 5}),
                Scope::Queue,
                "rate: must be an object with limit, period_secs",
            ),
            (
                json!({"concurrency": 1_000_001}),
                Scope::Type,
                "concurrency: must be an integer from 1 to 1000000",
            ),
            (
                json!({"concurrency": "2"}),
                Scope::Type,
                "concurrency: must be an integer",
            ),
            (
                json!({"concurrency": 2.5}),
                Scope::Type,
                "concurrency: must be an integer",
            ),
            (
                json!({"concurency": 2}),
                Scope::Type,
                "concurency: unknown field; expected concurrency, rate, breaker",
            ),
            (
                json!({"group": {"concurrency": 1, "size": 2}}),
                Scope::Queue,
                "group.size: unknown field; expected concurrency, rate",
            ),
            (
                json!({"group": {"rate": {"limit": 1, "period_secs": 0}}}),
                Scope::Queue,
                "group.rate.period_secs: must be an integer from 1 to 86400",
            ),
            (
                json!({"group": {"concurrency": 1}}),
                Scope::Type,
                "group: group limits apply per queue: set them with PUT /queues/{q}/limits",
            ),
            (
                json!({"breaker": {"consecutive": 3}}),
                Scope::Queue,
                "breaker: a circuit breaker is set per job type: PUT /types/{t}/limits",
            ),
            (
                json!({"breaker": {"failure_ratio": 0}}),
                Scope::Type,
                "breaker.failure_ratio: must be a number above 0 and at most 1",
            ),
            (
                json!({"breaker": {"failure_ratio": "half"}}),
                Scope::Type,
                "breaker.failure_ratio: must be a number",
            ),
            (
                json!({"breaker": {"cooldown_secs": 5}}),
                Scope::Type,
                "breaker: set consecutive, failure_ratio or both",
            ),
            (
                json!([1]),
                Scope::Queue,
                "limits: must be an object with concurrency, rate, group",
            ),
        ];
        for (v, scope, want) in cases {
            let err = patch(v.clone(), scope).unwrap_err();
            assert!(
                err.starts_with(want),
                "{v} ({}): {err:?} lacks {want:?}",
                scope.as_str()
            );
        }
    }

    #[test]
    fn fields_round_trip() {
        let all = Limits {
            concurrency: Some(10),
            rate: Some(Rate {
                limit: 100,
                period_secs: 3600,
            }),
            group: Some(GroupLimits {
                concurrency: None,
                rate: Some(Rate {
                    limit: 3,
                    period_secs: 1,
                }),
            }),
            breaker: Some(Breaker {
                consecutive: Some(5),
                failure_ratio: Some(0.35),
                window: 40,
                cooldown_secs: 90,
            }),
        };
        let fields = all.to_fields();
        assert!(
            fields.contains(&("rate_ms", "3600000".into())),
            "{fields:?}"
        );
        assert!(
            fields.contains(&("b_cool_ms", "90000".into())),
            "{fields:?}"
        );
        assert!(fields.iter().all(|(f, _)| Limits::FIELDS.contains(f)));
        assert!(
            !fields.iter().any(|(f, _)| *f == "gconc"),
            "unset limits have no field"
        );
        let mut h: HashMap<String, String> = fields
            .into_iter()
            .map(|(f, v)| (f.to_string(), v))
            .collect();
        assert_eq!(Limits::from_fields(&h), all);

        assert!(Limits::default().to_fields().is_empty());
        assert_eq!(Limits::from_fields(&HashMap::new()), Limits::default());

        // Unrelated fields are ignored; values that do not parse or are out of range are
        // skipped, and a rate needs both of its halves.
        h.insert("queued".into(), "7".into());
        h.insert("conc".into(), "0".into());
        h.insert("rate_ms".into(), "1500".into());
        h.insert("b_ratio".into(), "x".into());
        h.insert("b_window".into(), "1".into());
        let got = Limits::from_fields(&h);
        assert_eq!(got.concurrency, None);
        assert_eq!(got.rate, None);
        assert_eq!(got.group, all.group);
        let b = got.breaker.unwrap();
        assert_eq!(
            (b.consecutive, b.failure_ratio, b.window),
            (Some(5), None, DEFAULT_WINDOW)
        );
    }
}
