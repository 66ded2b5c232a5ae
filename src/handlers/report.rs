//! The `report` job: `{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD", "events"?: [...],
//! "format": "csv" | "json"}` writes the `analytics` aggregates of those UTC days (both ends
//! included, at most 366 days) into a file in REPORT_DIR: one row per event and day that had the
//! event, with its count, distinct users and property sums, plus a total per event (distinct
//! users over the whole range count each user once). Without "events", every event seen in the
//! range is reported. The file is written atomically (temp file, then rename).

use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use super::analytics::{is_event_name, redis_error};
use crate::config::Config;
use crate::handler::{Handler, JobContext, JobError, JobResult};
use crate::store::analytics::Aggregates;

/// Longest range of one report, in days.
pub const MAX_DAYS: i64 = 366;
/// Most events named in one report.
pub const MAX_EVENTS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", expecting = "\"csv\" or \"json\"")]
enum Format {
    Csv,
    Json,
}

impl Format {
    fn ext(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Parsed {
    from: NaiveDate,
    to: NaiveDate,
    events: Option<Vec<String>>,
    format: Format,
}

/// The payload as sent; [`parse`] checks what serde cannot (dates, the range, event names).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    events: Option<Vec<ReportEvent>>,
    #[serde(default)]
    format: Option<Format>,
}

/// One of `"events"`: an event name, quoted as sent when it is not one.
#[derive(Deserialize)]
#[serde(try_from = "Value")]
struct ReportEvent(String);

impl TryFrom<Value> for ReportEvent {
    type Error = String;
    fn try_from(v: Value) -> Result<ReportEvent, String> {
        match v {
            Value::String(s) if is_event_name(&s) => Ok(ReportEvent(s)),
            v => Err(format!(
                "\"events\": {v} is not an event name (1-64 characters of A-Z a-z 0-9 _ - . :)"
            )),
        }
    }
}

fn date(value: Option<String>, field: &str) -> Result<NaiveDate, String> {
    let s = value.ok_or_else(|| format!("\"{field}\" is required, e.g. \"2026-01-31\""))?;
    let bad = || {
        format!(
            "\"{field}\": {} must be a date like 2026-01-31",
            Value::String(s.clone())
        )
    };
    let shaped = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shaped {
        return Err(bad());
    }
    NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|_| bad())
}

fn parse(p: &Value) -> Result<Parsed, String> {
    let p: Payload = super::payload::decode(
        p,
        "the payload must be an object like {\"from\": \"2026-01-01\", \"to\": \"2026-01-31\", \"format\": \"csv\"}",
    )?;
    let from = date(p.from, "from")?;
    let to = date(p.to, "to")?;
    if from > to {
        return Err(format!("\"from\" ({from}) is after \"to\" ({to})"));
    }
    let days = (to - from).num_days() + 1;
    if days > MAX_DAYS {
        return Err(format!(
            "\"to\": the range has {days} days; at most {MAX_DAYS} in one report"
        ));
    }
    let events = match p.events {
        None => None,
        Some(items) if !items.is_empty() && items.len() <= MAX_EVENTS => {
            let seen: BTreeSet<String> = items.into_iter().map(|e| e.0).collect();
            Some(seen.into_iter().collect())
        }
        Some(items) => {
            let names: Vec<String> = items.into_iter().map(|e| e.0).collect();
            return Err(format!(
                "\"events\" must list 1-{MAX_EVENTS} event names, got {}",
                json!(names)
            ));
        }
    };
    let format = p
        .format
        .ok_or("\"format\" is required: \"csv\" or \"json\"")?;
    Ok(Parsed {
        from,
        to,
        events,
        format,
    })
}

pub struct Report {
    dir: PathBuf,
}

impl Report {
    pub fn new(c: &Config) -> Report {
        Report {
            dir: PathBuf::from(&c.report_dir),
        }
    }
}

/// A number for CSV and logs: integers without a fraction.
fn num(v: f64) -> String {
    format!("{v}")
}

fn render_csv(a: &Aggregates) -> String {
    let props: BTreeSet<&String> = a
        .rows
        .iter()
        .flat_map(|r| r.sums.keys())
        .chain(a.totals.values().flat_map(|t| t.sums.keys()))
        .collect();
    let mut out = String::from("date,event,count,unique_users");
    for p in &props {
        let _ = write!(out, ",sum_{p}");
    }
    out.push('\n');
    // Event and property names are [A-Za-z0-9_.:-] only, so no field needs quoting.
    let mut line = |date: &str,
                    event: &str,
                    count: u64,
                    users: u64,
                    sums: &std::collections::BTreeMap<String, f64>| {
        let _ = write!(out, "{date},{event},{count},{users}");
        for p in &props {
            let _ = write!(out, ",{}", sums.get(*p).map_or(String::new(), |v| num(*v)));
        }
        out.push('\n');
    };
    for r in &a.rows {
        line(&r.date, &r.event, r.count, r.unique_users, &r.sums);
    }
    for (event, t) in &a.totals {
        line("total", event, t.count, t.unique_users, &t.sums);
    }
    out
}

/// The payload's schema for the API document, as `parse` checks it. Not expressed: the dates
/// must exist, `from` must not be after `to`, and the range is at most 366 days.
pub fn payload_schema() -> Value {
    let date = |what: &str| {
        json!({
            "type": "string",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
            "description": format!("{what} (UTC, included), like 2026-01-31.")
        })
    };
    json!({
        "type": "object",
        "description": "A report of the analytics counts of 1-366 days, written to REPORT_DIR.",
        "additionalProperties": false,
        "required": ["from", "to", "format"],
        "properties": {
            "from": date("The first day"),
            "to": date("The last day"),
            "events": {
                "type": "array",
                "nullable": true,
                "minItems": 1,
                "maxItems": MAX_EVENTS,
                "items": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$"},
                "description": "The events to report; default every event seen in the range."
            },
            "format": {"type": "string", "enum": ["csv", "json"]}
        },
        "example": {"from": "2026-01-01", "to": "2026-01-31", "format": "csv"}
    })
}

impl Handler for Report {
    fn validate(&self, payload: &Value) -> Result<(), String> {
        parse(payload).map(|_| ())
    }

    fn payload_schema(&self) -> Option<Value> {
        Some(payload_schema())
    }

    fn run(&self, job: &JobContext) -> JobResult {
        let p = parse(&job.payload).map_err(JobError::permanent)?;
        let days: Vec<String> = p
            .from
            .iter_days()
            .take_while(|d| *d <= p.to)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .collect();
        job.progress(10, &format!("reading {} day(s) of aggregates", days.len()));
        let agg = job
            .with_store(|s| s.read_aggregates(&days, p.events.as_deref()))
            .map_err(|e| redis_error("reading analytics aggregates", e))?;
        if job.is_cancelled() {
            return Err(job
                .cancel
                .stop_error("cancelled before the report was written"));
        }
        job.progress(60, "writing the report");
        let body = match p.format {
            Format::Csv => render_csv(&agg),
            Format::Json => {
                let doc = json!({
                    "from": p.from.to_string(),
                    "to": p.to.to_string(),
                    "generated_at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "rows": agg.rows,
                    "totals": agg.totals,
                });
                let mut s = serde_json::to_string_pretty(&doc)
                    .map_err(|e| JobError::transient(format!("cannot render the report: {e}")))?;
                s.push('\n');
                s
            }
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| {
            JobError::transient(format!(
                "cannot create REPORT_DIR {}: {e}",
                self.dir.display()
            ))
        })?;
        let name = format!(
            "report-{}-to-{}-{}.{}",
            p.from,
            p.to,
            job.id,
            p.format.ext()
        );
        let path = self.dir.join(&name);
        super::write_atomically(&path, body.as_bytes())?;
        log::info!(
            "job {} (report) wrote {} ({} rows, {} events, {} to {})",
            job.id,
            path.display(),
            agg.rows.len(),
            agg.totals.len(),
            p.from,
            p.to
        );
        Ok(json!({
            "file": path.display().to_string(),
            "format": p.format.ext(),
            "rows": agg.rows.len(),
            "bytes": body.len(),
            "totals": agg.totals,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::analytics::{DayAggregate, EventTotal};
    use std::collections::BTreeMap;

    #[test]
    fn payloads_are_checked_by_field() {
        let ok = parse(
            &json!({"from": "2026-01-01", "to": "2026-12-31", "format": "csv",
                               "events": ["b", "a", "b"]}),
        )
        .unwrap();
        assert_eq!(ok.events, Some(vec!["a".to_string(), "b".to_string()]));
        assert!(
            parse(&json!({"from": "2024-01-01", "to": "2024-12-31", "format": "json"})).is_ok()
        );
        for (bad, field) in [
            (json!({"to": "2026-01-01", "format": "csv"}), "\"from\""),
            (
                json!({"from": "2026-1-1", "to": "2026-01-01", "format": "csv"}),
                "\"from\"",
            ),
            (
                json!({"from": "2026-02-30", "to": "2026-03-01", "format": "csv"}),
                "\"from\"",
            ),
            (
                json!({"from": "2026-01-02", "to": "2026-01-01", "format": "csv"}),
                "\"from\"",
            ),
            (
                json!({"from": "2025-01-01", "to": "2026-01-02", "format": "csv"}),
                "366",
            ),
            (
                json!({"from": "2026-01-01", "to": "2026-01-01"}),
                "\"format\"",
            ),
            (
                json!({"from": "2026-01-01", "to": "2026-01-01", "format": "xml"}),
                "\"format\"",
            ),
            (
                json!({"from": "2026-01-01", "to": "2026-01-01", "format": "csv", "events": []}),
                "\"events\"",
            ),
            (
                json!({"from": "2026-01-01", "to": "2026-01-01", "format": "csv", "events": ["a b"]}),
                "\"events\"",
            ),
            (
                json!({"from": "2026-01-01", "to": "2026-01-01", "format": "csv", "evnts": ["a"]}),
                "\"evnts\"",
            ),
        ] {
            let err = parse(&bad).unwrap_err();
            assert!(err.contains(field), "{bad}: {err}");
        }
    }

    #[test]
    fn csv_has_a_row_per_day_and_a_total_per_event() {
        let sums = |v: &[(&str, f64)]| -> BTreeMap<String, f64> {
            v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
        };
        let a = Aggregates {
            rows: vec![DayAggregate {
                date: "2026-01-01".into(),
                event: "paid".into(),
                count: 2,
                unique_users: 1,
                sums: sums(&[("amount", 12.5)]),
            }],
            totals: [
                (
                    "paid".to_string(),
                    EventTotal {
                        count: 2,
                        unique_users: 1,
                        sums: sums(&[("amount", 12.5)]),
                    },
                ),
                ("signup".to_string(), EventTotal::default()),
            ]
            .into_iter()
            .collect(),
        };
        assert_eq!(
            render_csv(&a),
            "date,event,count,unique_users,sum_amount\n2026-01-01,paid,2,1,12.5\ntotal,paid,2,1,12.5\ntotal,signup,0,0,\n"
        );
    }
}
