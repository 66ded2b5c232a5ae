use super::*;
use serde_json::json;

fn us(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
        .timestamp_micros()
}

fn show(t: i64) -> String {
    DateTime::from_timestamp_micros(t)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn runs(cron: &str, tz: &str, from: &str, n: usize) -> Vec<String> {
    let t = Timing::parse(cron, tz).unwrap();
    let first = t.next_after(us(from)).unwrap();
    t.runs_from(first, n).into_iter().map(show).collect()
}

#[test]
fn five_and_six_fields_and_names() {
    assert_eq!(
        runs("*/5 * * * *", "UTC", "2026-01-01T00:00:01Z", 3),
        [
            "2026-01-01T00:05:00Z",
            "2026-01-01T00:10:00Z",
            "2026-01-01T00:15:00Z"
        ]
    );
    assert_eq!(
        runs("*/10 * * * * *", "UTC", "2026-01-01T00:00:00Z", 3),
        [
            "2026-01-01T00:00:10Z",
            "2026-01-01T00:00:20Z",
            "2026-01-01T00:00:30Z"
        ]
    );
    assert_eq!(
        runs("@hourly", "UTC", "2026-01-01T00:00:00Z", 2),
        ["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]
    );
    // Strictly after, from inside a second.
    let t = Timing::parse("* * * * * *", "UTC").unwrap();
    assert_eq!(
        t.next_after(us("2026-01-01T00:00:00.5Z")),
        Some(us("2026-01-01T00:00:01Z"))
    );
    assert_eq!(
        t.next_after(us("2026-01-01T00:00:01Z")),
        Some(us("2026-01-01T00:00:02Z"))
    );
}

#[test]
fn bad_patterns_and_zones_name_the_field() {
    for (cron, want) in [
        ("", "cron: must be a cron pattern"),
        ("* * * *", "has 4 fields"),
        ("* * * * * * 2026", "has 7 fields"),
        ("61 * * * *", "not a valid cron pattern"),
        ("@sometimes", "not a valid cron pattern"),
        ("0 0 30 2 *", "matches no time"),
    ] {
        let e =
            ScheduleSpec::from_json(&json!({"cron": cron, "job": {"type": "noop"}})).unwrap_err();
        assert!(e.starts_with("cron: ") && e.contains(want), "{cron:?}: {e}");
    }
    let e = ScheduleSpec::from_json(
        &json!({"cron": "* * * * *", "timezone": "Mars/Olympus", "job": {"type": "noop"}}),
    )
    .unwrap_err();
    assert!(e.starts_with("timezone: "), "{e}");
    let cases = [
        (json!({"cron": "* * * * *"}), "job: is required"),
        (
            json!({"cron": "* * * * *", "job": {}}),
            "job.type: is required",
        ),
        (
            json!({"cron": "* * * * *", "job": {"type": 3}}),
            "job.type: must be a string",
        ),
        (
            json!({"cron": "* * * * *", "job": {"type": "noop", "delay_ms": 5}}),
            "job.delay_ms: unknown field",
        ),
        (
            json!({"cron": "* * * * *", "job": {"type": "noop"}, "overlap": "never"}),
            "overlap: \"never\": expected",
        ),
        (
            json!({"cron": "* * * * *", "job": {"type": "noop"}, "missed": "all"}),
            "missed: \"all\": expected",
        ),
        (
            json!({"cron": 5, "job": {"type": "noop"}}),
            "cron: must be a string",
        ),
        (json!({"job": {"type": "noop"}}), "cron: is required"),
        (
            json!({"cron": "* * * * *", "job": {"type": "noop"}, "every": 1}),
            "every: unknown field",
        ),
        (json!([1]), "schedule: must be an object"),
    ];
    for (v, want) in cases {
        let e = ScheduleSpec::from_json(&v).unwrap_err();
        assert!(e.starts_with(want), "{v}: {e:?} lacks {want:?}");
    }
}

#[test]
fn defaults_are_filled_in() {
    let s =
        ScheduleSpec::from_json(&json!({"cron": " 0 3 * * * ", "job": {"type": "noop"}})).unwrap();
    assert_eq!(
        s.to_json(),
        json!({"cron": "0 3 * * *", "timezone": "UTC", "job": {"type": "noop"},
               "overlap": "allow", "missed": "skip"})
    );
}

#[cfg(feature = "tz")]
#[test]
fn spring_forward_fires_a_skipped_time_once_right_after_the_gap() {
    // Europe/Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST, so 02:30 never happens.
    assert_eq!(
        runs("30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z", 4),
        [
            "2026-03-28T01:30:00Z", // 02:30 CET
            "2026-03-29T01:00:00Z", // 03:00 CEST, the first instant after the gap
            "2026-03-30T00:30:00Z", // 02:30 CEST
            "2026-03-31T00:30:00Z",
        ]
    );
    // A wildcard pattern follows real time: nothing in the gap, no extra run.
    assert_eq!(
        runs("0 * * * *", "Europe/Berlin", "2026-03-29T00:30:00Z", 2),
        ["2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"] // 03:00, 04:00 CEST
    );
}

#[cfg(feature = "tz")]
#[test]
fn fall_back_fires_a_repeated_time_once_at_its_first_pass() {
    // Europe/Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET, so 02:30 happens twice.
    assert_eq!(
        runs("30 2 * * *", "Europe/Berlin", "2026-10-23T12:00:00Z", 4),
        [
            "2026-10-24T00:30:00Z", // 02:30 CEST
            "2026-10-25T00:30:00Z", // 02:30 CEST, the first pass only
            "2026-10-26T01:30:00Z", // 02:30 CET
            "2026-10-27T01:30:00Z",
        ]
    );
    // A wildcard pattern follows real time: the repeated hour's matches both happen.
    assert_eq!(
        runs("0 * * * *", "Europe/Berlin", "2026-10-24T23:30:00Z", 4),
        [
            "2026-10-25T00:00:00Z", // 02:00 CEST
            "2026-10-25T01:00:00Z", // 02:00 CET
            "2026-10-25T02:00:00Z", // 03:00 CET
            "2026-10-25T03:00:00Z",
        ]
    );
}

#[cfg(not(feature = "tz"))]
#[test]
fn without_the_tz_feature_only_utc_is_accepted() {
    let e = ScheduleSpec::from_json(
        &json!({"cron": "* * * * *", "timezone": "Europe/Berlin", "job": {"type": "noop"}}),
    )
    .unwrap_err();
    assert!(e.contains("without the \"tz\" feature"), "{e}");
}

#[test]
fn a_good_file_parses() {
    let f = SchedulesFile::parse(
        r#"
[schedules.nightly]
cron = "0 3 * * *"
timezone = "UTC"
missed = "run_once"
job = { type = "report", payload = { days = 1 } }

[schedules."tick:fast"]
cron = "*/10 * * * * *"
overlap = "skip"

[schedules."tick:fast".job]
type = "noop"
queue = "fast"
"#,
        "s.toml",
    )
    .unwrap();
    assert_eq!(f.path, "s.toml");
    let n = &f.schedules["nightly"];
    assert_eq!(n.spec.missed, Missed::RunOnce);
    assert_eq!(n.spec.job["payload"], json!({"days": 1}));
    assert_eq!(n.job_at, "s.toml:6:7");
    let t = &f.schedules["tick:fast"];
    assert_eq!(t.spec.overlap, Overlap::Skip);
    assert_eq!(t.spec.job["queue"], "fast");
    assert!(SchedulesFile::parse("", "e.toml")
        .unwrap()
        .schedules
        .is_empty());
}

#[test]
fn file_errors_name_the_line_column_and_field() {
    let cases = [
        ("[schedules.a]\ncron = \n", "s.toml:2:"),
        (
            "[schedules.a]\ncron = \"61 * * * *\"\njob = { type = \"noop\" }\n",
            "s.toml:2:8: [schedules.a] cron: \"61 * * * *\" is not a valid cron pattern",
        ),
        (
            "[schedules.a]\ncron = \"* * * * *\"\nevery = 3\njob = { type = \"noop\" }\n",
            "s.toml:3:1: [schedules.a] every: unknown field",
        ),
        (
            "[schedules.a]\ncron = \"* * * * *\"\njob = { type = \"noop\", delay_ms = 3 }\n",
            "s.toml:3:24: [schedules.a] job.delay_ms: unknown field",
        ),
        (
            "[schedules.a]\ncron = \"* * * * *\"\ntimezone = \"Nowhere/City\"\njob = { type = \"noop\" }\n",
            "s.toml:3:12: [schedules.a] timezone:",
        ),
        (
            "[schedules.a]\ncron = \"* * * * *\"\n",
            "s.toml:1:1: [schedules.a] job: is required",
        ),
        (
            "[schedules.\"a b\"]\ncron = \"* * * * *\"\n",
            "s.toml:1:12: [schedules.\"a b\"]: schedule name \"a b\" must be",
        ),
        ("[cron.a]\n", "s.toml:1:2: cron: unknown table"),
        ("schedules = 1\n", "s.toml:1:13: schedules: expected tables"),
    ];
    for (text, want) in cases {
        let err = SchedulesFile::parse(text, "s.toml").unwrap_err();
        assert!(err.contains(want), "{text:?}: {err:?} lacks {want:?}");
    }
    let err = SchedulesFile::load("/no/such/schedules.toml").unwrap_err();
    assert!(err.contains("cannot read /no/such/schedules.toml"), "{err}");
}

#[test]
fn odd_patterns_are_refused_or_accepted_quickly_and_never_panic() {
    let started = std::time::Instant::now();
    for cron in [
        "*/0 * * * *",
        "0-59/100 * * * *",
        "60-1 * * * *",
        "1-0 * * * *",
        "99999999999999999999 * * * *",
        "* * 31 2 *",
        "* * * 30 2 *",
        "0 0 29 2 1",
        "0 0 * * 8",
        "L * * * *",
        "0 0 L * *",
        "0 0 * * 5#5",
        "0 0 31W * *",
        "@reboot",
        "@",
        "? ? ? ? ?",
        "0 0 1 1 * 2099",
        "* * * * * *\u{0}",
        "ünï cödé * * *",
    ] {
        let _ = ScheduleSpec::from_json(&json!({"cron": cron, "job": {"type": "noop"}}));
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
