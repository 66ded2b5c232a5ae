//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the `traceparent` a job was
//! submitted with, checked, and the one each attempt runs in. jobq exports no spans itself; it
//! carries the submitter's trace id to the handler (`JobContext::traceparent`, a command's
//! `TRACEPARENT`, a webhook's `traceparent` header) with a span id of each attempt's own, so
//! the caller's tracing system can join the request that created a job to the work it did.

use rand::Rng;

/// Longest `tracestate` kept (the specification's 32 members of at most 256 characters would
/// allow more, but it also lets a vendor cut to 512).
pub const MAX_TRACESTATE_LEN: usize = 512;

/// A job's trace context as submitted: `traceparent` checked and lower-cased, `tracestate`
/// passed on as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub traceparent: String,
    pub tracestate: Option<String>,
}

/// Checks a `traceparent` value, `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`;
/// returns it lower-cased. A later version (01-fe) may carry more fields after the flags,
/// which are dropped as the specification says; version `ff` and all-zero ids are invalid.
pub fn parse_traceparent(v: &str) -> Result<String, String> {
    let v = v.trim().to_ascii_lowercase();
    let parts: Vec<&str> = v.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let ok = parts.len() >= 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && (parts.len() == 4 || parts[0] != "00")
        && hex(parts[1], 32)
        && parts[1].bytes().any(|b| b != b'0')
        && hex(parts[2], 16)
        && parts[2].bytes().any(|b| b != b'0')
        && hex(parts[3], 2);
    if !ok {
        return Err(format!(
            "{v:?} is not a W3C traceparent: send 00-<32 hex digits of trace id>-<16 hex digits of parent span id>-<2 hex digits of flags>, ids not all zero"
        ));
    }
    Ok(format!("00-{}-{}-{}", parts[1], parts[2], parts[3]))
}

/// Checks a `tracestate` value: at most [`MAX_TRACESTATE_LEN`] printable ASCII characters.
pub fn check_tracestate(v: &str) -> Result<(), String> {
    if v.len() > MAX_TRACESTATE_LEN || !v.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(format!(
            "tracestate must be at most {MAX_TRACESTATE_LEN} printable ASCII characters"
        ));
    }
    Ok(())
}

/// The trace context of one attempt of a job submitted in `traceparent`: the same trace id
/// and flags, a new random span id (the attempt is a child of the submitter's span).
pub fn attempt_traceparent(traceparent: &str) -> String {
    let mut span = 0u64;
    while span == 0 {
        span = rand::rng().random();
    }
    match traceparent.split('-').collect::<Vec<_>>()[..] {
        [v, trace, _, flags] => format!("{v}-{trace}-{span:016x}-{flags}"),
        // Stored values were checked by parse_traceparent; anything else is passed on as is.
        _ => traceparent.to_string(),
    }
}

/// A job's type as its log lines name it: `email`, or `email, traceparent 00-…-01` for a job
/// in a trace, so a log search by trace id finds every line of the job.
pub struct KindLabel<'a>(pub &'a str, pub Option<&'a str>);

impl std::fmt::Display for KindLabel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.1 {
            Some(t) => write!(f, "{}, traceparent {t}", self.0),
            None => f.write_str(self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_kept_lower_cased() {
        assert_eq!(parse_traceparent(TP).unwrap(), TP);
        assert_eq!(parse_traceparent(&TP.to_uppercase()).unwrap(), TP);
        // A later version's extra fields are dropped, and it is read as version 00.
        let v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra";
        assert_eq!(parse_traceparent(v1).unwrap(), TP);
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more",
            "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
        ] {
            let e = parse_traceparent(bad).unwrap_err();
            assert!(e.contains("W3C traceparent"), "{bad}: {e}");
        }
        assert!(check_tracestate("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE").is_ok());
        assert!(check_tracestate(&"a".repeat(MAX_TRACESTATE_LEN + 1)).is_err());
        assert!(check_tracestate("a=\u{7f}").is_err());
    }

    #[test]
    fn each_attempt_is_a_child_span_of_the_same_trace() {
        let a = attempt_traceparent(TP);
        let b = attempt_traceparent(TP);
        assert_ne!(a, b);
        for t in [&a, &b] {
            assert_eq!(parse_traceparent(t).unwrap(), *t);
            assert_eq!(
                t.split('-').nth(1),
                Some("4bf92f3577b34da6a3ce929d0e0e4736")
            );
            assert!(t.ends_with("-01") && !t.contains("00f067aa0ba902b7"), "{t}");
        }
    }
}
