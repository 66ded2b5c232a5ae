//! Values in jobq's answers: job ids (UUID v4) and RFC 3339 UTC timestamps, through the `uuid`
//! and `chrono` crates jobq itself uses.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// Lower-case hyphenated UUID with version 4 and the RFC 4122 variant.
pub fn is_uuid_v4(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok_and(|u| {
        u.get_version_num() == 4
            && u.get_variant() == uuid::Variant::RFC4122
            && u.hyphenated().to_string() == s
    })
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// Parses an RFC 3339 UTC time of the form `YYYY-MM-DDTHH:MM:SS[.fraction]Z` to milliseconds.
/// Other offsets, even `+00:00`, are refused: jobq writes `Z`.
pub fn parse_rfc3339_ms(s: &str) -> Result<i64, String> {
    s.ends_with('Z')
        .then(|| DateTime::parse_from_rfc3339(s).ok())
        .flatten()
        .map(|t| t.timestamp_millis())
        .ok_or_else(|| format!("{s:?} is not an RFC 3339 UTC time like 2026-01-02T15:04:05.123Z"))
}

/// A timestamp field of a job: `None` if null, its milliseconds if an RFC 3339 UTC string;
/// panics on anything else.
pub fn ts(job: &Value, field: &str) -> Option<i64> {
    match &job[field] {
        Value::Null => None,
        Value::String(s) => Some(
            parse_rfc3339_ms(s).unwrap_or_else(|e| panic!("job field {field}: {e}; job: {job}")),
        ),
        other => panic!("job field {field} is neither null nor a string: {other}; job: {job}"),
    }
}

/// Like [`ts`], but the field must be set.
pub fn ts_req(job: &Value, field: &str) -> i64 {
    ts(job, field).unwrap_or_else(|| panic!("job field {field} is null; job: {job}"))
}
