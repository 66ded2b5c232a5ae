//! The `jobq` command line, run as the real binary: `--help` and `--version` answer without
//! starting a server, unknown arguments are refused, `jobq health` probes a running server and
//! `jobq check-config` reports the configuration with its secrets masked.

use crate::harness::*;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `jobq args` with only `env` set among jobq's variables (see [`jobq_command`]). A command that should answer
/// at once but starts a server instead is killed, and the test fails saying so.
fn jobq(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = jobq_command();
    // A port nobody serves, so a server started by mistake fails here rather than elsewhere.
    cmd.env("PORT", free_port().to_string());
    cmd.envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn the jobq binary");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect output");
            panic!(
                "jobq {args:?} was still running after 20 s (a server started?); stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(POLL);
    }
    child.wait_with_output().expect("collect output")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_and_version_print_and_exit_without_serving() {
    for flag in ["--help", "-h"] {
        let out = jobq(&[flag], &[]);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{flag}: {stdout}");
        for word in [
            "serve",
            "health",
            "check-config",
            "--version",
            "Configuration",
        ] {
            assert!(stdout.contains(word), "{flag}: {word} missing:\n{stdout}");
        }
        assert_eq!(text(&out.stderr), "", "{flag} logs nothing");
    }
    for flag in ["--version", "-V"] {
        let out = jobq(&[flag], &[]);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(
            text(&out.stdout),
            format!("jobq {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

#[test]
fn unknown_arguments_are_refused_with_the_usage() {
    for (args, named) in [
        (&["--port", "9000"][..], "\"--port\""),
        (&["start"], "\"start\""),
        (&["health", "now"], "\"now\""),
    ] {
        let out = jobq(args, &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(named),
            "{args:?}: {named} missing:\n{stderr}"
        );
        assert!(stderr.contains("Usage: jobq"), "{args:?}:\n{stderr}");
        assert_eq!(text(&out.stdout), "", "{args:?}");
    }
}

#[test]
fn health_answers_for_the_server_of_this_environment() {
    let mut redis = RedisServer::start();
    let server = BinaryServer::spawn(&redis.url(), &[("API_TOKEN", "cli-token-0123456789abcdef")]);
    let port = server.client().addr.port().to_string();

    // HOST=0.0.0.0 (as in the container) is asked on loopback; /health needs no token.
    let out = jobq(&["health"], &[("HOST", "0.0.0.0"), ("PORT", &port)]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.starts_with("healthy"), "{stdout}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");

    // The server answers, but its Redis is gone: unhealthy.
    redis.stop();
    let out = jobq(&["health"], &[("PORT", &port)]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("503 unhealthy"), "{stdout}");
    drop(server);

    // Nothing listens.
    let out = jobq(&["health"], &[("PORT", &free_port().to_string())]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("cannot connect"), "{stdout}");
}

#[test]
fn check_config_prints_masked_settings_or_every_problem() {
    let dir = temp_dir("check-config");
    let handlers = dir.join("handlers.toml");
    std::fs::write(
        &handlers,
        "[commands.hello]\nrun = [\"/bin/echo\", \"hi\"]\n",
    )
    .unwrap();
    let handlers = handlers.to_string_lossy().into_owned();
    let out = jobq(
        &["check-config"],
        &[
            ("REDIS_URL", "redis://app:redis-secret-pw@127.0.0.1:6399/2"),
            ("API_TOKEN", "cli-token-secret-0123456789"),
            ("API_TOKEN_READONLY", "cli-readonly-secret-0123456789"),
            ("HANDLERS_FILE", &handlers),
            ("NUM_WORKERS", "7"),
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    for line in [
        "REDIS_URL=redis://app:***@127.0.0.1:6399/2",
        "API_TOKEN=***",
        "API_TOKEN_READONLY=***",
        "NUM_WORKERS=7",
        &format!("HANDLERS_FILE={handlers}"),
        "MAIL_FROM=jobq@localhost",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line} missing:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("hello"),
        "the command type is listed:\n{stdout}"
    );
    assert!(
        !stdout.contains("redis-secret-pw")
            && !stdout.contains("token-secret")
            && !stdout.contains("readonly-secret"),
        "{stdout}"
    );

    std::fs::write(&handlers, "[commands.hello]\nrun = \"not a list\"\n").unwrap();
    let out = jobq(
        &["check-config"],
        &[
            ("PORT", "99999"),
            ("MAX_ATTEMPTS", "0"),
            ("HANDLERS_FILE", &handlers),
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for name in ["PORT", "MAX_ATTEMPTS", "HANDLERS_FILE", "docs/job-types.md"] {
        assert!(stderr.contains(name), "{name} missing:\n{stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);

    // A read-only token without API_TOKEN would guard nothing: the server refuses to start.
    for args in [&["check-config"][..], &[]] {
        let out = jobq(
            args,
            &[("API_TOKEN_READONLY", "cli-readonly-secret-0123456789")],
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "jobq {args:?}: {stderr}");
        assert!(
            stderr.contains("API_TOKEN_READONLY is set without API_TOKEN")
                && !stderr.contains("readonly-secret"),
            "jobq {args:?}: {stderr}"
        );
    }
}

#[test]
fn the_start_up_line_lists_every_setting_with_secrets_masked() {
    let redis = RedisServer::start();
    let server = BinaryServer::spawn(
        &redis.url(),
        &[
            ("API_TOKEN", "cli-token-secret-0123456789"),
            ("MAIL_FROM", "noreply@example.com"),
        ],
    );
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("starting jobq"))
        .unwrap_or_else(|| panic!("no start-up line:\n{log}"));
    for setting in [
        "HANDLERS_FILE=(unset)",
        "MAIL_DIR=",
        "IMAGE_DIR=./data/images",
        "REPORT_DIR=./data/reports",
        "MAIL_FROM=noreply@example.com",
        "API_TOKEN=***",
        "NUM_WORKERS=2",
    ] {
        assert!(line.contains(setting), "{setting} missing from {line}");
    }
    assert!(!log.contains("token-secret"), "{log}");
}
