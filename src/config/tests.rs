//! Tests of reading the environment into a [`Config`].

use super::env::normalize_redis_url;
use super::*;
use std::collections::HashMap;

fn from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn defaults_match_the_documented_table() {
    let c = from(&[]).unwrap();
    assert_eq!(c.redis_url, "redis://127.0.0.1:6379");
    assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 8081));
    assert_eq!(c.num_workers, 5);
    assert_eq!(c.max_queue_size, 1000);
    assert_eq!(c.max_attempts, 3);
    assert_eq!((c.backoff_base_ms, c.backoff_max_ms), (1000, 30_000));
    assert_eq!(c.job_ttl_secs, 604_800);
    assert_eq!(c.max_body_bytes, 1_048_576);
    assert_eq!(c.shutdown_timeout_secs, 30);
    assert_eq!(c.log_level, log::LevelFilter::Info);
    assert!(!c.enable_diagnostic_jobs);
    assert_eq!(c.role, Role::All);
    assert_eq!(c.key_prefix, "{jobq}");
}

#[test]
fn bare_host_port_becomes_a_url() {
    let c = from(&[("REDIS_URL", "redis:6379")]).unwrap();
    assert_eq!(c.redis_url, "redis://redis:6379");
    assert_eq!(
        normalize_redis_url("localhost").unwrap(),
        "redis://localhost:6379"
    );
    assert_eq!(
        normalize_redis_url("redis://u:p@h:7000/2").unwrap(),
        "redis://u:p@h:7000/2"
    );
    assert!(normalize_redis_url("host:notaport").is_err());
}

#[test]
fn every_bad_value_is_reported_by_name() {
    let err = from(&[
        ("PORT", "99999"),
        ("NUM_WORKERS", "-1"),
        ("MAX_ATTEMPTS", "0"),
        ("LOG_LEVEL", "loud"),
        ("ENABLE_DIAGNOSTIC_JOBS", "maybe"),
        ("ROLE", "boss"),
    ])
    .unwrap_err();
    let text = err.to_string();
    for name in [
        "PORT",
        "NUM_WORKERS",
        "MAX_ATTEMPTS",
        "LOG_LEVEL",
        "ENABLE_DIAGNOSTIC_JOBS",
        "ROLE",
    ] {
        assert!(text.contains(name), "{name} missing from {text}");
    }
    assert_eq!(err.problems.len(), 6);
}

#[test]
fn backoff_cap_below_base_is_refused() {
    let err = from(&[("BACKOFF_BASE_MS", "500"), ("BACKOFF_MAX_MS", "100")]).unwrap_err();
    assert!(err.to_string().contains("BACKOFF_MAX_MS"));
}

#[test]
fn values_are_trimmed_and_empty_means_default() {
    let c = from(&[
        ("NUM_WORKERS", " 8 "),
        ("PORT", ""),
        ("ENABLE_DIAGNOSTIC_JOBS", "yes"),
    ])
    .unwrap();
    assert_eq!(c.num_workers, 8);
    assert_eq!(c.port, 8081);
    assert!(c.enable_diagnostic_jobs);
}

#[test]
fn prefix_needs_a_hash_tag() {
    assert!(from(&[("REDIS_PREFIX", "{staging}")]).is_ok());
    assert!(from(&[("REDIS_PREFIX", "app:{jobq}")]).is_ok());
    for bad in ["jobq", "{}jobq", "{jobq", "jo bq{x}"] {
        let e = from(&[("REDIS_PREFIX", bad)]).unwrap_err();
        assert!(e.to_string().contains("REDIS_PREFIX"), "{bad}");
    }
    assert!(from(&[("SHUTDOWN_TIMEOUT_SECS", "99999999999")]).is_err());
    assert!(from(&[("JOB_TIMEOUT_SECS", "99999999999")]).is_err());
}

#[test]
fn passwords_are_masked() {
    assert_eq!(
        mask_url("redis://user:hunter2@h:6379/0"),
        "redis://user:***@h:6379/0"
    );
    assert_eq!(mask_url("redis://:pw@h:6379"), "redis://:***@h:6379");
    assert_eq!(mask_url("redis://h:6379"), "redis://h:6379");
    assert_eq!(mask_url("redis://user@h:6379"), "redis://user@h:6379");
    let err = from(&[("REDIS_URL", "redis://u:hunter2@h:notaport")]).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn job_handler_settings_have_defaults_and_are_read() {
    let c = from(&[]).unwrap();
    assert_eq!(c.smtp_url, None);
    assert_eq!(c.smtp_timeout_secs, 30);
    assert_eq!(c.image_dir, "./data/images");
    assert_eq!(c.report_dir, "./data/reports");
    assert_eq!(c.analytics_retention_days, 400);
    assert_eq!(c.handlers_file, None);
    assert_eq!(c.cancel_grace_secs, 10);

    let handlers = std::env::temp_dir().join(format!("jobq-cfg-{}.toml", std::process::id()));
    std::fs::write(
        &handlers,
        "[commands.hello]\nrun = [\"/bin/echo\", \"hi\"]\n",
    )
    .unwrap();
    let c = from(&[
        ("IMAGE_DIR", "/srv/images"),
        ("REPORT_DIR", "/srv/reports"),
        ("SMTP_TIMEOUT_SECS", "5"),
        ("ANALYTICS_RETENTION_DAYS", "30"),
        ("HANDLERS_FILE", handlers.to_str().unwrap()),
        ("CANCEL_GRACE_SECS", "0"),
    ])
    .unwrap();
    assert_eq!(c.cancel_grace(), Duration::ZERO);
    assert_eq!(
        (c.image_dir.as_str(), c.report_dir.as_str()),
        ("/srv/images", "/srv/reports")
    );
    assert_eq!((c.smtp_timeout_secs, c.analytics_retention_days), (5, 30));
    let file = c.handlers_file.expect("HANDLERS_FILE is read");
    assert_eq!(Some(file.path.as_str()), handlers.to_str());
    assert_eq!(file.commands[0].kind, "hello", "{file:?}");
    let _ = std::fs::remove_file(&handlers);
}

#[test]
fn bad_job_handler_settings_are_reported_by_name() {
    let handlers = std::env::temp_dir().join(format!("jobq-cfg-bad-{}.toml", std::process::id()));
    std::fs::write(&handlers, "[commands.hello]\nrun = [\"/bin/echo\"\n").unwrap();
    let err = from(&[
        ("SMTP_URL", "http://user:hunter2@mail.example.com"),
        ("SMTP_TIMEOUT_SECS", "0"),
        ("ANALYTICS_RETENTION_DAYS", "-1"),
        ("HANDLERS_FILE", handlers.to_str().unwrap()),
        ("CANCEL_GRACE_SECS", "3601"),
    ])
    .unwrap_err();
    let text = err.to_string();
    for name in [
        "SMTP_URL",
        "SMTP_TIMEOUT_SECS",
        "ANALYTICS_RETENTION_DAYS",
        "HANDLERS_FILE",
        "CANCEL_GRACE_SECS",
    ] {
        assert!(text.contains(name), "{name} missing from {text}");
    }
    assert_eq!(err.problems.len(), 5, "{text}");
    assert!(
        !text.contains("hunter2"),
        "the SMTP password leaked: {text}"
    );
    assert!(
        text.contains(":2:"),
        "the handlers file error names the line: {text}"
    );
    let _ = std::fs::remove_file(&handlers);

    let err = from(&[("HANDLERS_FILE", "/no/such/handlers.toml")]).unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
    // Not URL-shaped: not echoed at all, since it cannot be masked reliably.
    let err = from(&[("SMTP_URL", "user:hunter2@mail")]).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn settings_list_every_variable_with_secrets_masked() {
    let c = from(&[
        ("REDIS_URL", "redis://u:hunter2@h:6379"),
        ("API_TOKEN", "0123456789abcdef-secret"),
        ("MAIL_DIR", "/srv/my mail"),
    ])
    .unwrap();
    let line = c.summary();
    for name in [
        "REDIS_URL=redis://u:***@h:6379",
        "API_TOKEN=***",
        "HANDLERS_FILE=(unset)",
        "MAIL_DIR=\"/srv/my mail\"",
        "MAIL_FROM=jobq@localhost",
        "IMAGE_DIR=./data/images",
        "REPORT_DIR=./data/reports",
        "LOG_LEVEL=info",
    ] {
        assert!(line.contains(name), "{name} missing from {line}");
    }
    assert!(
        !line.contains("hunter2") && !line.contains("-secret"),
        "{line}"
    );
    // Every variable the reader takes is listed.
    let names: Vec<&str> = c.settings().iter().map(|(n, _)| *n).collect();
    let source = include_str!("env.rs");
    let read: Vec<&str> = source
        .split("r.string(\"")
        .chain(source.split("r.parse(\n            \""))
        .chain(source.split("r.parse(\""))
        .chain(source.split("r.flag(\""))
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .filter(|v| v.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_'))
        .collect();
    assert!(read.len() >= 28, "the scan found only {read:?}");
    for var in read {
        assert!(names.contains(&var), "{var} is not in Config::settings");
    }
}

#[test]
fn smtp_url_needs_the_smtp_feature() {
    let r = from(&[("SMTP_URL", "smtps://u:pw@mail.example.com")]);
    if cfg!(feature = "smtp") {
        let url = r.unwrap().smtp_url.expect("SMTP_URL is read");
        assert!(
            url.implicit_tls && url.host == "mail.example.com",
            "{url:?}"
        );
        assert_eq!(url.masked(), "smtps://u:***@mail.example.com");
    } else {
        let text = r.unwrap_err().to_string();
        assert!(
            text.contains("\"smtp\" feature") && !text.contains(":pw@"),
            "{text}"
        );
    }
}

#[test]
fn webhook_settings_are_read_typed_and_the_secret_is_masked() {
    let c = from(&[]).unwrap();
    assert_eq!(
        (c.webhook_allow.as_ref(), c.webhook_secret.as_ref()),
        (None, None)
    );
    let r = from(&[
        ("WEBHOOK_ALLOW", "Hooks.Example.com, *.partner.example:8443"),
        ("WEBHOOK_SECRET", "whsec-0123456789abcdef"),
    ]);
    if cfg!(feature = "webhook") {
        let c = r.unwrap();
        let allow = c.webhook_allow.as_ref().expect("WEBHOOK_ALLOW is read");
        assert_eq!(
            allow.to_string(),
            "hooks.example.com,*.partner.example:8443"
        );
        assert_eq!(c.webhook_secret.as_deref(), Some("whsec-0123456789abcdef"));
        let line = c.summary();
        assert!(
            line.contains("WEBHOOK_ALLOW=hooks.example.com,*.partner.example:8443")
                && line.contains("WEBHOOK_SECRET=***")
                && !line.contains("0123456789abcdef"),
            "{line}"
        );
        let err = from(&[
            ("WEBHOOK_ALLOW", "ok.example,*,bad host"),
            ("WEBHOOK_SECRET", "short secret 0123456789"),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.problems.len(), 3, "{text}");
        assert!(
            err.problems[..2]
                .iter()
                .all(|p| p.starts_with("WEBHOOK_ALLOW entry ")),
            "{text}"
        );
        assert!(
            err.problems[2].starts_with("WEBHOOK_SECRET: ") && !text.contains("0123456789"),
            "the secret must not be echoed: {text}"
        );
    } else {
        let text = r.unwrap_err().to_string();
        assert!(
            text.contains("WEBHOOK_ALLOW is set") && text.contains("\"webhook\" feature"),
            "{text}"
        );
        assert!(!text.contains("0123456789abcdef"), "{text}");
    }
}

#[test]
fn queues_take_weights_after_the_last_colon() {
    let c = from(&[]).unwrap();
    assert!(c.queues.is_empty(), "unset serves every queue");
    assert_eq!(c.queue_order, QueueOrder::Weighted);
    assert_eq!(c.max_snoozes, 100);
    assert_eq!(c.limits_file, None);

    let c = from(&[(
        "QUEUES",
        " critical:5, default , mail:eu, mail:us:3, bulk:1,",
    )])
    .unwrap();
    let want = [
        ("critical", 5),
        ("default", 1),
        ("mail:eu", 1),
        ("mail:us", 3),
        ("bulk", 1),
    ];
    let got: Vec<(&str, u32)> = c.queues.iter().map(|(q, w)| (q.as_str(), *w)).collect();
    assert_eq!(got, want);
    // Written back so it reads the same: "v:2" is a name, so its weight must be shown.
    let c = from(&[("QUEUES", "a:2,b,v:2:1"), ("MAX_SNOOZES", "0")]).unwrap();
    assert_eq!(c.queues[2], ("v:2".into(), 1));
    assert_eq!(c.max_snoozes, 0);
    let line = c.summary();
    assert!(line.contains("QUEUES=a:2,b,v:2:1 "), "{line}");
    assert!(line.contains("QUEUE_ORDER=weighted"), "{line}");

    let c = from(&[("QUEUES", "high,low"), ("QUEUE_ORDER", "STRICT")]).unwrap();
    assert_eq!(c.queue_order, QueueOrder::Strict);
    assert_eq!(c.queues, vec![("high".into(), 1), ("low".into(), 1)]);
}

#[test]
fn bad_queues_are_reported_one_line_each() {
    let err = from(&[
        ("QUEUES", "a:0,b c,a,d:1001,e:99999999999,ok,ok"),
        ("MAX_SNOOZES", "100001"),
        ("QUEUE_ORDER", "random"),
    ])
    .unwrap_err();
    let text = err.to_string();
    for want in [
        "QUEUES entry \"a:0\": the weight after the last ':' must be an integer from 1 to 1000",
        "QUEUES entry \"b c\": a queue name must be 1-64 characters",
        "QUEUES entry \"d:1001\"",
        "QUEUES entry \"e:99999999999\"",
        "QUEUES entry \"ok\" is listed twice",
        "MAX_SNOOZES=\"100001\"",
        "QUEUE_ORDER=\"random\": expected weighted or strict",
    ] {
        assert!(text.contains(want), "{want} missing from {text}");
    }
    // "a" is listed once: "a:0" was refused, not added.
    assert_eq!(err.problems.len(), 7, "{text}");
    let long = "q".repeat(65);
    assert!(from(&[("QUEUES", long.as_str())]).is_err());
    assert!(from(&[("QUEUES", "q".repeat(64).as_str())]).is_ok());
}

#[test]
fn strict_order_needs_queues_without_weights() {
    let err = from(&[("QUEUE_ORDER", "strict")]).unwrap_err();
    assert_eq!(
        err.problems,
        vec!["QUEUE_ORDER=strict needs QUEUES to list the queues in order"]
    );
    let err = from(&[("QUEUE_ORDER", "strict"), ("QUEUES", " , ")]).unwrap_err();
    assert!(err.to_string().contains("needs QUEUES"), "{err}");
    let err = from(&[("QUEUE_ORDER", "strict"), ("QUEUES", "high,low:1")]).unwrap_err();
    assert_eq!(
        err.problems,
        vec!["QUEUES=high,low:1: weights mean nothing with QUEUE_ORDER=strict"]
    );
    // A bad QUEUES is reported once, not again as missing.
    let err = from(&[("QUEUE_ORDER", "strict"), ("QUEUES", "a b")]).unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    // A last ':'-part that is not all digits is part of the name, not a weight.
    assert!(from(&[("QUEUE_ORDER", "strict"), ("QUEUES", "mail:eu,mail:us")]).is_ok());
}

#[test]
fn limits_file_is_read_and_checked() {
    let dir = std::env::temp_dir();
    let good = dir.join(format!("jobq-limits-{}.toml", std::process::id()));
    std::fs::write(
        &good,
        "[queues.default]\nconcurrency = 10\n\n[types.email]\nbreaker = { consecutive = 10 }\n",
    )
    .unwrap();
    let c = from(&[("LIMITS_FILE", good.to_str().unwrap())]).unwrap();
    let file = c.limits_file.clone().expect("LIMITS_FILE is read");
    assert_eq!(Some(file.path.as_str()), good.to_str());
    assert_eq!(file.queues["default"].concurrency, Some(10));
    assert_eq!(
        file.types["email"].breaker.as_ref().unwrap().cooldown_secs,
        30
    );
    assert!(c
        .summary()
        .contains(&format!("LIMITS_FILE={}", good.display())));
    let _ = std::fs::remove_file(&good);

    let bad = dir.join(format!("jobq-limits-bad-{}.toml", std::process::id()));
    std::fs::write(
        &bad,
        "[types.email]\nconcurrency = 3\ngroup = { concurrency = 1 }\n",
    )
    .unwrap();
    let err = from(&[("LIMITS_FILE", bad.to_str().unwrap()), ("MAX_SNOOZES", "x")]).unwrap_err();
    assert_eq!(err.problems.len(), 2, "{err}");
    let line = &err.problems[1];
    assert!(line.starts_with("LIMITS_FILE=\""), "{line}");
    assert!(
        line.contains(".toml:3:1: [types.email] group: group limits apply per queue"),
        "{line}"
    );
    assert!(
        line.ends_with("; the format is in docs/limits.md"),
        "{line}"
    );
    let _ = std::fs::remove_file(&bad);

    let err = from(&[("LIMITS_FILE", "/no/such/limits.toml")]).unwrap_err();
    assert!(err.to_string().contains("cannot read"), "{err}");
}

#[test]
fn a_read_only_token_needs_api_token_and_a_value_of_its_own() {
    let ro = "readonly-0123456789abcdef";
    let full = "full-0123456789abcdef";
    let c = from(&[("API_TOKEN", full), ("API_TOKEN_READONLY", ro)]).unwrap();
    assert_eq!(c.api_token_readonly.as_deref(), Some(ro));
    let line = c.summary();
    assert!(line.contains("API_TOKEN_READONLY=***"), "{line}");
    assert!(
        !line.contains("readonly-") && !line.contains("full-"),
        "{line}"
    );

    let alone = from(&[("API_TOKEN_READONLY", ro)]).unwrap_err().to_string();
    assert!(alone.contains("without API_TOKEN"), "{alone}");
    assert!(!alone.contains(ro), "{alone}");
    let same = from(&[("API_TOKEN", full), ("API_TOKEN_READONLY", full)])
        .unwrap_err()
        .to_string();
    assert!(
        same.contains("equals API_TOKEN") && !same.contains(full),
        "{same}"
    );
    let short = from(&[("API_TOKEN", full), ("API_TOKEN_READONLY", "short")])
        .unwrap_err()
        .to_string();
    assert!(
        short.contains("API_TOKEN_READONLY: expected at least 16"),
        "{short}"
    );
}

#[test]
fn cluster_and_sentinel_urls_are_read_and_masked() {
    let urls = [
        (
            "redis+cluster://app:hunter2@10.0.0.1:7000,10.0.0.2:7001",
            "redis+cluster://app:***@10.0.0.1:7000,10.0.0.2:7001",
        ),
        (
            "rediss+cluster://:hunter2@h1:7000,h2:7000",
            "rediss+cluster://:***@h1:7000,h2:7000",
        ),
        (
            "redis+sentinel://:hunter2@s1:26379,s2:26379,s3:26379/mymaster?db=1",
            "redis+sentinel://:***@s1:26379,s2:26379,s3:26379/mymaster?db=1",
        ),
    ];
    for (url, masked) in urls {
        let r = from(&[("REDIS_URL", url)]);
        if cfg!(feature = "cluster") {
            let c = r.unwrap();
            assert_eq!(c.redis_url, url);
            let line = c.summary();
            assert!(line.contains(&format!("REDIS_URL={masked}")), "{line}");
            assert!(!line.contains("hunter2"), "{line}");
        } else {
            let e = r.unwrap_err().to_string();
            assert!(e.contains("needs the \"cluster\" feature"), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }
    // A bad one is reported without its password, whatever the build.
    let e = from(&[("REDIS_URL", "redis+sentinel://:hunter2@s1:26379")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("master's name is missing"), "{e}");
    assert!(!e.contains("hunter2") && e.contains(":***@"), "{e}");
}

#[test]
fn wait_settings_have_defaults_and_bounds() {
    let c = from(&[]).unwrap();
    assert_eq!((c.redis_wait_replicas, c.redis_wait_timeout_ms), (0, 1000));
    let c = from(&[
        ("REDIS_WAIT_REPLICAS", "2"),
        ("REDIS_WAIT_TIMEOUT_MS", "250"),
    ])
    .unwrap();
    assert_eq!((c.redis_wait_replicas, c.redis_wait_timeout_ms), (2, 250));
    // WAIT with timeout 0 would block forever: refused.
    for (name, v) in [
        ("REDIS_WAIT_TIMEOUT_MS", "0"),
        ("REDIS_WAIT_TIMEOUT_MS", "10001"),
        ("REDIS_WAIT_REPLICAS", "-1"),
        ("REDIS_WAIT_REPLICAS", "101"),
    ] {
        let e = from(&[(name, v)]).unwrap_err().to_string();
        assert!(e.contains(name), "{e}");
    }
}
