//! The built-in job types against real peers: an SMTP server (Python's aiosmtpd) on loopback,
//! real PNG/JPEG/WebP files, Redis aggregates read back through reports, and operator-defined
//! commands whose process groups are checked in /proc.
//!
//! Every test has its own redis-server, its own SMTP server where it needs one, and its own temp
//! dirs, so they run in parallel. Messages are parsed back with Python's `email` package
//! (tests/support/parse_eml.py), which knows nothing of how jobq wrote them.

use crate::harness::*;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn support(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(file)
}

// ------------------------------------------------------------------------------------------------
// An SMTP server (tests/support/smtp_server.py)
// ------------------------------------------------------------------------------------------------

#[cfg(feature = "smtp")]
mod smtp_peer {
    use super::*;
    use std::process::{Child, Stdio};
    use std::time::Instant;

    /// aiosmtpd on a free loopback port, killed (by its own handle) when dropped.
    pub struct SmtpPeer {
        child: Child,
        pub port: u16,
        dir: PathBuf,
    }

    impl SmtpPeer {
        /// Starts the server with extra flags (`--rcpt-code 451`, ...); tries up to 3 ports.
        pub fn start(flags: &[&str]) -> SmtpPeer {
            let dir = temp_dir("smtp");
            let mut last = String::new();
            for attempt in 0..3 {
                let port = free_port();
                let ready = dir.join(format!("ready-{attempt}"));
                let log = fs::File::create(dir.join(format!("server-{attempt}.log"))).unwrap();
                let mut child = Command::new("python3")
                    .arg(support("smtp_server.py"))
                    .args(["--port", &port.to_string()])
                    .arg("--dir")
                    .arg(dir.join("inbox"))
                    .arg("--ready-file")
                    .arg(&ready)
                    .args(flags)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot run python3 for the SMTP test server: {e}"));
                let deadline = Instant::now() + Duration::from_secs(15);
                loop {
                    if ready.exists() {
                        return SmtpPeer { child, port, dir };
                    }
                    if let Ok(Some(status)) = child.try_wait() {
                        last = fs::read_to_string(dir.join(format!("server-{attempt}.log")))
                            .unwrap_or_default();
                        assert!(
                            status.code() != Some(3),
                            "aiosmtpd is missing; scripts/test installs it (python3 -m pip install aiosmtpd): {last}"
                        );
                        break;
                    }
                    if Instant::now() >= deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        last = "did not become ready within 15 s".into();
                        break;
                    }
                    std::thread::sleep(POLL);
                }
            }
            panic!("the SMTP test server did not start: {last}");
        }

        pub fn url(&self) -> String {
            format!("smtp://127.0.0.1:{}", self.port)
        }

        /// Messages received so far, in order.
        pub fn messages(&self) -> Vec<PathBuf> {
            let mut out: Vec<PathBuf> = fs::read_dir(self.dir.join("inbox"))
                .map(|rd| {
                    rd.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| {
                            p.file_name()
                                .and_then(|n| n.to_str())
                                .is_some_and(|n| n.starts_with("msg-") && n.ends_with(".eml"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.sort();
            out
        }

        /// Every RCPT and DATA answer it gave, one line each.
        pub fn answers(&self) -> Vec<String> {
            fs::read_to_string(self.dir.join("inbox/answers.log"))
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect()
        }
    }

    impl Drop for SmtpPeer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
#[cfg(feature = "smtp")]
use smtp_peer::SmtpPeer;

/// A message file parsed by Python's `email` package.
fn parse_eml(path: &Path) -> Value {
    let out = Command::new("python3")
        .arg(support("parse_eml.py"))
        .arg(path)
        .output()
        .expect("run python3 parse_eml.py");
    assert!(
        out.status.success(),
        "parse_eml.py {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parse_eml.py prints JSON")
}

fn email_payload() -> Value {
    json!({
        "to": ["ana@example.com", "bo@example.org"],
        "from": "shop@example.net",
        "reply_to": "help@example.net",
        "subject": "Ihre Bestellung – Grüße",
        "body": "Hello Ana,\nyour order has shipped.\n\nThanks!",
        "html": "<p>Hello Ana, your order has <b>shipped</b>.</p>"
    })
}

fn check_message(m: &Value, id: &str) {
    assert_eq!(m["from"], "shop@example.net", "{m}");
    assert_eq!(m["to"], json!(["ana@example.com", "bo@example.org"]), "{m}");
    assert_eq!(m["reply_to"], "help@example.net", "{m}");
    assert_eq!(m["subject"], "Ihre Bestellung – Grüße", "{m}");
    assert_eq!(m["message_id"], format!("<{id}@example.net>"), "{m}");
    assert_eq!(m["content_type"], "multipart/alternative", "{m}");
    assert_eq!(
        m["plain"]
            .as_str()
            .map(|s| s.replace("\r\n", "\n").trim_end().to_string()),
        Some("Hello Ana,\nyour order has shipped.\n\nThanks!".to_string()),
        "{m}"
    );
    assert!(
        m["html"].as_str().unwrap_or("").contains("<b>shipped</b>"),
        "{m}"
    );
    assert!(!m["date"].as_str().unwrap_or("").is_empty(), "{m}");
    assert_eq!(m["defects"], json!([]), "{m}");
}

// ------------------------------------------------------------------------------------------------
// email
// ------------------------------------------------------------------------------------------------

#[test]
fn email_without_smtp_writes_an_eml_file_that_parses_back() {
    let redis = RedisServer::start();
    let mail = temp_dir("mail");
    let dir = mail.clone();
    let server = TestServer::start(&redis, move |c| {
        c.mail_dir = dir.to_string_lossy().into_owned();
        c.smtp_url = None;
    });
    let id = server.submit(&json!({"type": "email", "payload": email_payload()}));
    let job = server.wait_for_status(&id, "completed", WAIT);
    let file = mail.join(format!("{id}.eml"));
    assert_eq!(job["result"]["file"], file.display().to_string(), "{job}");
    assert_eq!(
        job["result"]["bytes"].as_u64(),
        Some(fs::metadata(&file).unwrap().len()),
        "{job}"
    );
    check_message(&parse_eml(&file), &id);
    // Only the finished file is left: the temp file was renamed into place.
    let names: Vec<String> = fs::read_dir(&mail)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec![format!("{id}.eml")]);

    // A bad payload is refused at submission, naming the field.
    let msg = server
        .post_json(
            "/jobs",
            &json!({"type": "email", "payload": {"to": "nope", "subject": "s", "body": "b"}}),
        )
        .expect_json_error(400, "email with a bad address");
    assert!(msg.contains("\"to\""), "{msg}");
    let _ = fs::remove_dir_all(&mail);
}

/// The body of the article's vegeta load test, byte for byte: no subject, no body.
#[test]
fn the_articles_email_without_subject_or_body_is_accepted_and_written() {
    let redis = RedisServer::start();
    let mail = temp_dir("mail-article");
    let dir = mail.clone();
    let server = TestServer::start(&redis, move |c| {
        c.mail_dir = dir.to_string_lossy().into_owned();
        c.smtp_url = None;
    });
    let resp = server.request(
        "POST",
        "/jobs",
        br#"{"type":"email","payload":{"to":"test@example.com"}}"#,
    );
    resp.expect_status(201, "the article's email body");
    let id = resp.json()["job_id"].as_str().unwrap().to_string();
    server.wait_for_status(&id, "completed", WAIT);
    let m = parse_eml(&mail.join(format!("{id}.eml")));
    assert_eq!(m["to"], json!(["test@example.com"]), "{m}");
    assert_eq!(m["subject"], "", "{m}");
    assert_eq!(m["defects"], json!([]), "{m}");
    let _ = fs::remove_dir_all(&mail);
}

#[cfg(feature = "smtp")]
#[test]
fn email_is_sent_through_smtp_with_auth_and_the_password_stays_secret() {
    let smtp = SmtpPeer::start(&["--user", "mailer@example.net", "--password", "s3cr:t@pw"]);
    let redis = RedisServer::start();
    // User and password percent-encoded in the URL, as documented. The test server offers no
    // STARTTLS, so plain text must be allowed explicitly: with credentials it is refused by
    // default.
    let url = format!(
        "smtp://mailer%40example.net:s3cr%3At%40pw@127.0.0.1:{}?tls=opportunistic",
        smtp.port
    );
    let server = TestServer::start(&redis, move |c| {
        c.smtp_url = Some(jobq::SmtpUrl::parse(&url).unwrap())
    });
    let id = server.submit(&json!({"type": "email", "payload": email_payload()}));
    let job = server.wait_for_status(&id, "completed", WAIT);
    assert_eq!(job["attempt"], 1, "{job}");
    let result = job["result"].to_string();
    assert!(
        !result.contains("s3cr"),
        "the password leaked into the result: {result}"
    );
    assert!(result.contains("***"), "{result}");
    assert!(
        job["result"]["response"]
            .as_str()
            .unwrap_or("")
            .starts_with("250"),
        "{job}"
    );
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 1, "{:?}", smtp.answers());
    check_message(&parse_eml(&msgs[0]), &id);
}

#[cfg(feature = "smtp")]
#[test]
fn smtp_4xx_is_retried_and_the_second_attempt_is_delivered() {
    let smtp = SmtpPeer::start(&["--rcpt-code", "451", "--fail-times", "1"]);
    let redis = RedisServer::start();
    let url = smtp.url();
    let server = TestServer::start(&redis, move |c| {
        c.smtp_url = Some(jobq::SmtpUrl::parse(&url).unwrap())
    });
    let id = server.submit(&json!({
        "type": "email",
        "payload": {"to": "ana@example.com", "subject": "retry me", "body": "second time lucky"},
        "max_attempts": 3
    }));
    let job = server.wait_for_status(&id, "completed", WAIT);
    assert_eq!(job["attempt"], 2, "{job}");
    let answers = smtp.answers();
    assert!(
        answers[0].starts_with("RCPT ana@example.com 451"),
        "{answers:?}"
    );
    let msgs = smtp.messages();
    assert_eq!(msgs.len(), 1, "{answers:?}");
    let m = parse_eml(&msgs[0]);
    assert_eq!(m["subject"], "retry me", "{m}");
    assert_eq!(
        m["plain"].as_str().map(str::trim_end),
        Some("second time lucky")
    );
}

#[cfg(feature = "smtp")]
#[test]
fn smtp_4xx_every_time_fails_transiently_after_all_attempts() {
    let smtp = SmtpPeer::start(&["--rcpt-code", "451"]);
    let redis = RedisServer::start();
    let url = smtp.url();
    let server = TestServer::start(&redis, move |c| {
        c.smtp_url = Some(jobq::SmtpUrl::parse(&url).unwrap())
    });
    let id = server.submit(&json!({
        "type": "email",
        "payload": {"to": "ana@example.com", "subject": "s", "body": "b"},
        "max_attempts": 2
    }));
    let job = server.wait_for_status(&id, "failed", WAIT);
    assert_eq!(job["attempt"], 2, "{job}");
    let err = job["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("451") && err.contains("try again later"),
        "{job}"
    );
    assert!(err.contains("deferred"), "{job}");
    assert!(smtp.messages().is_empty());
}

#[cfg(feature = "smtp")]
#[test]
fn smtp_5xx_goes_to_the_dlq_after_exactly_one_attempt() {
    let smtp = SmtpPeer::start(&["--data-code", "554"]);
    let redis = RedisServer::start();
    let url = smtp.url();
    let server = TestServer::start(&redis, move |c| {
        c.smtp_url = Some(jobq::SmtpUrl::parse(&url).unwrap())
    });
    let id = server.submit(&json!({
        "type": "email",
        "payload": {"to": "ana@example.com", "subject": "s", "body": "b"},
        "max_attempts": 3
    }));
    let job = server.wait_for_status(&id, "failed", WAIT);
    assert_eq!(job["attempt"], 1, "{job}");
    let err = job["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("rejected") && err.contains("554") && err.contains("5.7.1 Rejected by policy"),
        "the error quotes the server: {job}"
    );
    server.wait_for_stat("dlq_size", 1, Duration::from_secs(5));
    let data: Vec<String> = smtp
        .answers()
        .into_iter()
        .filter(|l| l.starts_with("DATA"))
        .collect();
    assert_eq!(data.len(), 1, "exactly one delivery attempt: {data:?}");
}

#[cfg(feature = "smtp")]
#[test]
fn an_unreachable_smtp_server_is_a_transient_error() {
    let redis = RedisServer::start();
    let port = free_port(); // nothing listens there
    let server = TestServer::start(&redis, move |c| {
        c.smtp_url = Some(jobq::SmtpUrl::parse(&format!("smtp://127.0.0.1:{port}")).unwrap())
    });
    let id = server.submit(&json!({
        "type": "email",
        "payload": {"to": "ana@example.com", "subject": "s", "body": "b"},
        "max_attempts": 2
    }));
    let job = server.wait_for_status(&id, "failed", WAIT);
    assert_eq!(job["attempt"], 2, "retried: {job}");
    let err = job["error"].as_str().unwrap_or_default();
    assert!(err.contains("cannot send through SMTP server"), "{job}");
    assert!(err.to_lowercase().contains("refused"), "{job}");
}

// ------------------------------------------------------------------------------------------------
// image_resize
// ------------------------------------------------------------------------------------------------

#[cfg(feature = "image")]
mod images {
    use super::*;
    use image::{ImageFormat, Rgb, RgbImage};

    /// A 64×48 test picture: three vertical bands, red, green, blue.
    fn picture() -> RgbImage {
        RgbImage::from_fn(64, 48, |x, _| match x * 3 / 64 {
            0 => Rgb([255, 0, 0]),
            1 => Rgb([0, 255, 0]),
            _ => Rgb([0, 0, 255]),
        })
    }

    fn server_with_images(redis: &RedisServer) -> (TestServer, PathBuf) {
        let images = temp_dir("images");
        picture()
            .save_with_format(images.join("in.png"), ImageFormat::Png)
            .unwrap();
        picture()
            .save_with_format(images.join("photo.jpg"), ImageFormat::Jpeg)
            .unwrap();
        let dir = images.clone();
        let server = TestServer::start(redis, move |c| {
            c.image_dir = dir.to_string_lossy().into_owned()
        });
        (server, images)
    }

    fn resize(server: &TestServer, payload: Value) -> Value {
        let id = server.submit(&json!({"type": "image_resize", "payload": payload}));
        server.wait_for_status(&id, "completed", WAIT)
    }

    fn decoded(path: &Path) -> (ImageFormat, u32, u32) {
        let r = image::ImageReader::open(path)
            .unwrap()
            .with_guessed_format()
            .unwrap();
        let format = r.format().expect("a known format");
        let img = r.decode().unwrap();
        (format, img.width(), img.height())
    }

    #[test]
    fn png_and_jpeg_are_resized_to_the_expected_sizes() {
        let redis = RedisServer::start();
        let (server, images) = server_with_images(&redis);
        let cases = [
            (
                json!({"source": "in.png", "output": "w32.png", "width": 32}),
                ImageFormat::Png,
                (32, 24),
            ),
            (
                json!({"source": "in.png", "output": "h12.png", "height": 12}),
                ImageFormat::Png,
                (16, 12),
            ),
            (
                json!({"source": "photo.jpg", "output": "out/w32.jpg", "width": 32}),
                ImageFormat::Jpeg,
                (32, 24),
            ),
            (
                json!({"source": "in.png", "output": "contain.png", "width": 32, "height": 32}),
                ImageFormat::Png,
                (32, 24),
            ),
            (
                json!({"source": "in.png", "output": "cover.png", "width": 32, "height": 32, "fit": "cover"}),
                ImageFormat::Png,
                (32, 32),
            ),
            (
                json!({"source": "photo.jpg", "output": "fill.png", "width": 10, "height": 30, "fit": "fill"}),
                ImageFormat::Png,
                (10, 30),
            ),
            (
                json!({"source": "in.png", "output": "small.webp", "width": 16}),
                ImageFormat::WebP,
                (16, 12),
            ),
            (
                json!({"source": "in.png", "output": "as-jpeg.bin", "width": 8, "format": "jpeg"}),
                ImageFormat::Jpeg,
                (8, 6),
            ),
        ];
        for (payload, format, (w, h)) in cases {
            let job = resize(&server, payload.clone());
            let out = images.join(payload["output"].as_str().unwrap());
            let r = &job["result"];
            assert_eq!(
                (r["width"].as_u64(), r["height"].as_u64()),
                (Some(u64::from(w)), Some(u64::from(h))),
                "{payload}: {job}"
            );
            assert_eq!(r["output"], payload["output"], "{job}");
            assert_eq!(
                r["bytes"].as_u64(),
                Some(fs::metadata(&out).unwrap().len()),
                "{job}"
            );
            assert_eq!(decoded(&out), (format, w, h), "{payload}");
        }
        // cover keeps the centre: the middle (green) band fills the middle of a 16×16 square.
        let job = resize(
            &server,
            json!({"source": "in.png", "output": "sq.png", "width": 16, "height": 16, "fit": "cover"}),
        );
        assert_eq!(job["result"]["width"], 16);
        let sq = image::open(images.join("sq.png")).unwrap().to_rgb8();
        let mid = sq.get_pixel(8, 8);
        assert!(
            mid[1] > 200 && mid[0] < 60 && mid[2] < 60,
            "centre pixel {mid:?}"
        );
        // No temp files are left behind.
        let leftovers: Vec<_> = fs::read_dir(&images)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let _ = fs::remove_dir_all(&images);
    }

    #[test]
    fn paths_outside_image_dir_are_refused() {
        let redis = RedisServer::start();
        let (server, images) = server_with_images(&redis);
        for (payload, field) in [
            (
                json!({"source": "../x.png", "output": "o.png", "width": 8}),
                "\"source\"",
            ),
            (
                json!({"source": "/etc/passwd", "output": "o.png", "width": 8}),
                "\"source\"",
            ),
            (
                json!({"source": "in.png", "output": "a/../../o.png", "width": 8}),
                "\"output\"",
            ),
            (
                json!({"source": "in.png", "output": "/tmp/o.png", "width": 8}),
                "\"output\"",
            ),
        ] {
            let msg = server
                .post_json(
                    "/jobs",
                    &json!({"type": "image_resize", "payload": payload}),
                )
                .expect_json_error(400, &payload.to_string());
            assert!(msg.contains(field), "{payload}: {msg}");
        }

        // Symlinks that lead out are caught at run time, for reading and for writing.
        let outside = temp_dir("outside");
        picture().save(outside.join("secret.png")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret.png"), images.join("link.png")).unwrap();
        std::os::unix::fs::symlink(&outside, images.join("escape")).unwrap();
        for (payload, want) in [
            (
                json!({"source": "link.png", "output": "o.png", "width": 8}),
                "\"source\"",
            ),
            (
                json!({"source": "in.png", "output": "escape/o.png", "width": 8}),
                "\"output\"",
            ),
            (
                json!({"source": "in.png", "output": "escape/new/o.png", "width": 8}),
                "\"output\"",
            ),
        ] {
            let id = server
                .submit(&json!({"type": "image_resize", "payload": payload, "max_attempts": 3}));
            let job = server.wait_for_status(&id, "failed", WAIT);
            assert_eq!(job["attempt"], 1, "permanent: {job}");
            let err = job["error"].as_str().unwrap_or_default();
            assert!(
                err.contains(want) && err.contains("outside IMAGE_DIR"),
                "{job}"
            );
        }
        let mut names: Vec<String> = fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec!["secret.png"],
            "nothing was written outside IMAGE_DIR"
        );
        let _ = fs::remove_dir_all(&images);
        let _ = fs::remove_dir_all(&outside);
    }

    #[test]
    fn corrupt_and_missing_sources_fail_permanently() {
        let redis = RedisServer::start();
        let (server, images) = server_with_images(&redis);
        fs::write(images.join("bad.png"), b"this is not a picture at all").unwrap();
        let png = fs::read(images.join("in.png")).unwrap();
        fs::write(images.join("truncated.png"), &png[..png.len() / 2]).unwrap();
        for (source, want) in [
            ("bad.png", "is not a PNG, JPEG or WebP image"),
            ("truncated.png", "is not a PNG, JPEG or WebP image"),
            (
                "missing.png",
                "no such file \"missing.png\" under IMAGE_DIR",
            ),
        ] {
            let id = server.submit(&json!({
                "type": "image_resize",
                "payload": {"source": source, "output": "o.png", "width": 8},
                "max_attempts": 3
            }));
            let job = server.wait_for_status(&id, "failed", WAIT);
            assert_eq!(job["attempt"], 1, "{source}: straight to the DLQ: {job}");
            assert!(
                job["error"].as_str().unwrap_or("").contains(want),
                "{source}: {job}"
            );
        }
        server.wait_for_stat("dlq_size", 3, Duration::from_secs(5));
        assert!(!images.join("o.png").exists());
        let _ = fs::remove_dir_all(&images);
    }
}

// ------------------------------------------------------------------------------------------------
// analytics and report
// ------------------------------------------------------------------------------------------------

/// Reads a CSV report into (date, event) → (count, unique users).
fn csv_rows(text: &str) -> Vec<(String, String, u64, u64)> {
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("date,event,count,unique_users"),
        "{header}"
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[0].to_string(),
                f[1].to_string(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn reports_match_the_events_sent_in_csv_and_json() {
    let redis = RedisServer::start();
    let reports = temp_dir("reports");
    let dir = reports.clone();
    let server = TestServer::start(&redis, move |c| {
        c.report_dir = dir.to_string_lossy().into_owned();
        c.num_workers = 4;
    });
    // Day 1: signup by u1, u2, u3; purchase by u1 twice (10 + 5). Day 2: signup by u1 (again),
    // u4; purchase by u2 (7). One event outside the range.
    let events = [
        ("signup", "u1", "2026-05-01T08:00:00Z", 0.0),
        ("signup", "u2", "2026-05-01T09:00:00Z", 0.0),
        ("signup", "u3", "2026-05-01T23:59:59Z", 0.0),
        ("purchase", "u1", "2026-05-01T10:00:00Z", 10.0),
        ("purchase", "u1", "2026-05-01T11:00:00+02:00", 5.0),
        ("signup", "u1", "2026-05-02T00:00:00Z", 0.0),
        ("signup", "u4", "2026-05-02T12:00:00Z", 0.0),
        ("purchase", "u2", "2026-05-02T13:00:00Z", 7.0),
        ("signup", "u9", "2026-05-03T00:00:01Z", 0.0),
    ];
    let ids: Vec<String> = events
        .iter()
        .map(|(e, u, t, amount)| {
            let mut p = json!({"event": e, "user_id": u, "timestamp": t});
            if *amount > 0.0 {
                p["properties"] = json!({"amount": amount, "currency": "EUR"});
            }
            server.submit(&json!({"type": "analytics", "payload": p}))
        })
        .collect();
    for id in &ids {
        server.wait_for_status(id, "completed", WAIT);
    }

    let run_report = |payload: Value| -> (Value, String) {
        let id = server.submit(&json!({"type": "report", "payload": payload}));
        let job = server.wait_for_status(&id, "completed", WAIT);
        let file = PathBuf::from(job["result"]["file"].as_str().unwrap());
        assert!(file.starts_with(&reports), "{job}");
        (job["result"].clone(), fs::read_to_string(file).unwrap())
    };

    // CSV over every event seen.
    let (result, text) =
        run_report(json!({"from": "2026-05-01", "to": "2026-05-02", "format": "csv"}));
    let rows = csv_rows(&text);
    let want = [
        ("2026-05-01", "purchase", 2, 1),
        ("2026-05-01", "signup", 3, 3),
        ("2026-05-02", "purchase", 1, 1),
        ("2026-05-02", "signup", 2, 2),
        ("total", "purchase", 3, 2),
        ("total", "signup", 5, 4),
    ];
    let want: Vec<(String, String, u64, u64)> = want
        .iter()
        .map(|(d, e, c, u)| (d.to_string(), e.to_string(), *c, *u))
        .collect();
    assert_eq!(rows, want, "{text}");
    assert!(
        text.lines().next().unwrap().ends_with(",sum_amount"),
        "{text}"
    );
    assert!(text.contains("\n2026-05-01,purchase,2,1,15\n"), "{text}");
    assert!(text.contains("\ntotal,purchase,3,2,22\n"), "{text}");
    assert_eq!(result["rows"], 4, "{result}");
    assert_eq!(result["totals"]["signup"]["count"], 5, "{result}");
    assert_eq!(result["totals"]["signup"]["unique_users"], 4, "{result}");

    // JSON for one named event, plus one never seen.
    let (result, text) = run_report(json!({
        "from": "2026-05-01", "to": "2026-05-03", "format": "json", "events": ["purchase", "refund"]
    }));
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["from"], "2026-05-01");
    assert_eq!(doc["to"], "2026-05-03");
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{doc}");
    assert_eq!(rows[0]["date"], "2026-05-01");
    assert_eq!(rows[0]["count"], 2);
    assert_eq!(rows[0]["unique_users"], 1);
    assert_eq!(rows[0]["sums"]["amount"], 15.0);
    assert_eq!(rows[1]["date"], "2026-05-02");
    assert_eq!(doc["totals"]["purchase"]["count"], 3);
    assert_eq!(doc["totals"]["purchase"]["unique_users"], 2);
    assert_eq!(doc["totals"]["purchase"]["sums"]["amount"], 22.0);
    assert_eq!(doc["totals"]["refund"]["count"], 0);
    assert_eq!(result["totals"], doc["totals"]);

    // A bad range is refused at submission.
    let msg = server
        .post_json("/jobs", &json!({"type": "report", "payload": {"from": "2026-05-02", "to": "2026-05-01", "format": "csv"}}))
        .expect_json_error(400, "report with from after to");
    assert!(msg.contains("\"from\""), "{msg}");
    let leftovers: Vec<_> = fs::read_dir(&reports)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = fs::remove_dir_all(&reports);
}

// ------------------------------------------------------------------------------------------------
// Command jobs (HANDLERS_FILE)
// ------------------------------------------------------------------------------------------------

/// Writes an executable shell script.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Command lines (from /proc) of the processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // A zombie has an empty command line: it is gone, only not yet reaped by its parent.
        if let Ok(raw) = fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmdline.contains(marker) {
                out.push(format!("{}: {cmdline}", name.to_string_lossy()));
            }
        }
    }
    out
}

#[test]
fn command_jobs_return_stdout_fail_with_stderr_and_are_killed_with_their_group() {
    let redis = RedisServer::start();
    let dir = temp_dir("commands");
    let marker = format!("jobq-marker-{}-{}", std::process::id(), now_ms());
    // A copy of sleep whose path carries the marker, so its processes can be found in /proc.
    let marker_sleep = dir.join(&marker);
    fs::copy(
        ["/bin/sleep", "/usr/bin/sleep"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("a sleep binary"),
        &marker_sleep,
    )
    .unwrap();
    let echo = script(
        &dir,
        "echo.sh",
        "payload=$(cat)\nprintf '{\"got\": %s, \"id\": \"%s\", \"attempt\": %s, \"greeting\": \"%s\"}\\n' \"$payload\" \"$JOB_ID\" \"$JOB_ATTEMPT\" \"$GREETING\"",
    );
    let fail = script(
        &dir,
        "fail.sh",
        "i=0\nwhile [ $i -lt 300 ]; do echo \"progress line $i\" >&2; i=$((i+1)); done\necho 'cannot reach the billing API: 503' >&2\nexit 3",
    );
    let hang = script(
        &dir,
        "hang.sh",
        &format!("\"{0}\" 300 &\n\"{0}\" 301", marker_sleep.display()),
    );
    let toml = format!(
        "[commands.echo_json]\nrun = [{echo:?}]\nenv = {{ GREETING = \"hi\" }}\n\n\
         [commands.flaky]\nrun = [{fail:?}]\n\n\
         [commands.hang]\nrun = [{hang:?}]\ntimeout_secs = 2\n\n\
         [commands.words]\nrun = [\"sh\", \"-c\", \"echo plain words\"]\n",
        echo = echo.display().to_string(),
        fail = fail.display().to_string(),
        hang = hang.display().to_string(),
    );
    let file = dir.join("handlers.toml");
    fs::write(&file, toml).unwrap();
    let path = file.to_string_lossy().into_owned();
    let server = TestServer::start(&redis, move |c| {
        c.handlers_file = Some(jobq::HandlersFile::load(&path).unwrap());
        c.num_workers = 3;
    });

    // Success: JSON on stdout is the result; the payload came on stdin, JOB_* and env are set.
    let id = server.submit(&json!({"type": "echo_json", "payload": {"n": 42, "s": "x"}}));
    let job = server.wait_for_status(&id, "completed", WAIT);
    assert_eq!(
        job["result"],
        json!({"got": {"n": 42, "s": "x"}, "id": id, "attempt": 1, "greeting": "hi"}),
        "{job}"
    );
    let id = server.submit(&json!({"type": "words"}));
    let job = server.wait_for_status(&id, "completed", WAIT);
    assert_eq!(job["result"], "plain words", "{job}");

    // Failure: retried (transient), with the tail of stderr as the error.
    let id = server.submit(&json!({"type": "flaky", "max_attempts": 2}));
    let job = server.wait_for_status(&id, "failed", WAIT);
    assert_eq!(job["attempt"], 2, "{job}");
    let err = job["error"].as_str().unwrap_or_default();
    assert!(err.contains("exited with status 3"), "{job}");
    assert!(err.ends_with("cannot reach the billing API: 503"), "{job}");
    assert!(!err.contains("progress line 0\n"), "only the tail: {err}");
    assert!(err.len() < 2300, "{} bytes", err.len());

    // Timeout: the command and the child it started are killed, as a group.
    let id = server.submit(&json!({"type": "hang", "max_attempts": 1}));
    wait_for(
        "the hang command's sleeps to start",
        Duration::from_secs(10),
        || {
            let found = processes_with(&marker);
            if found.len() >= 2 {
                Ok(())
            } else {
                Err(format!("{found:?}"))
            }
        },
    );
    let job = server.wait_for_status(&id, "failed", WAIT);
    assert!(
        job["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("timed out after 2 s"),
        "{job}"
    );
    wait_for(
        "no process with the marker left",
        Duration::from_secs(5),
        || {
            let found = processes_with(&marker);
            if found.is_empty() {
                Ok(())
            } else {
                Err(format!("{found:?}"))
            }
        },
    );
    drop(server);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_command_jobs_progress_lines_show_in_get_jobs() {
    let redis = RedisServer::start();
    let dir = temp_dir("progress");
    let go = dir.join("go");
    // Reports, then waits (at most 20 s) for the test to let it finish.
    let slow = script(
        &dir,
        "slow.sh",
        &format!(
            "echo 'progress: 30 warming up' >&2\ni=0\nwhile [ ! -e {go:?} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done\necho done"
        ),
    );
    let file = dir.join("handlers.toml");
    fs::write(
        &file,
        format!(
            "[commands.slow]\nrun = [{:?}]\n",
            slow.display().to_string()
        ),
    )
    .unwrap();
    let path = file.to_string_lossy().into_owned();
    let server = TestServer::start(&redis, move |c| {
        c.handlers_file = Some(jobq::HandlersFile::load(&path).unwrap());
        c.num_workers = 1;
    });
    let id = server.submit(&json!({"type": "slow"}));
    let job = wait_for("the progress report", WAIT, || {
        let job = server.job(&id);
        if job["progress"]["percent"] == 30 {
            Ok(job)
        } else {
            Err(job.to_string())
        }
    });
    assert_eq!(job["status"], "running", "{job}");
    assert_eq!(job["progress"]["message"], "warming up", "{job}");
    assert!(job["progress"]["at"].is_string(), "{job}");
    fs::write(&go, "").unwrap();
    let job = server.wait_for_status(&id, "completed", WAIT);
    assert_eq!(job["result"], "done", "{job}");
    drop(server);
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_handlers_file_stops_the_binary_naming_the_line() {
    let dir = temp_dir("badhandlers");
    let file = dir.join("handlers.toml");
    fs::write(
        &file,
        "[commands.ok]\nrun = [\"/bin/true\"]\n\n[commands.broken]\nrun = [\"/bin/true\"]\ntimeout_secs = \"soon\"\n",
    )
    .unwrap();
    let file = file.to_string_lossy().into_owned();
    // Nothing listens on this Redis port: configuration is checked before Redis is needed.
    let redis_url = format!("redis://127.0.0.1:{}", free_port());
    let mut bin = BinaryServer::launch(&redis_url, &[("HANDLERS_FILE", file.as_str())]);
    let status = bin
        .wait_exit(Duration::from_secs(10))
        .expect("jobq exits when HANDLERS_FILE is bad");
    assert_eq!(status.code(), Some(2), "{}", bin.log());
    let log = bin.stderr();
    assert!(log.contains("HANDLERS_FILE"), "{log}");
    assert!(
        log.contains("handlers.toml:6:16"),
        "line and column of the bad value: {log}"
    );
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn commands_over_their_memory_cpu_or_output_limits_go_to_the_dlq_counted_by_limit() {
    let redis = RedisServer::start();
    // Every file (and so every process's command line) is under a directory named after the
    // marker, so what is left of the commands can be found in /proc.
    let marker = format!("jobq-limits-{}-{}", std::process::id(), now_ms());
    let top = temp_dir("limits");
    let dir = top.join(&marker);
    fs::create_dir_all(&dir).unwrap();
    let marker_sleep = dir.join("sleep");
    fs::copy(
        ["/bin/sleep", "/usr/bin/sleep"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("a sleep binary"),
        &marker_sleep,
    )
    .unwrap();
    // Touches 300 MB (bytes multiplication writes every page), then waits for a kill.
    let hog = dir.join("hog.py");
    fs::write(
        &hog,
        "import sys, time\nprint('allocating', file=sys.stderr, flush=True)\nb = b'x' * (300 * 1024 * 1024)\ntime.sleep(120)\n",
    )
    .unwrap();
    // A child left in the group, then a busy loop.
    let spin = script(
        &dir,
        "spin.sh",
        &format!("\"{}\" 300 &\nwhile :; do :; done", marker_sleep.display()),
    );
    let chatty = script(
        &dir,
        "chatty.sh",
        &format!(
            "head -c 20000 /dev/zero | tr '\\0' x\n\"{}\" 120",
            marker_sleep.display()
        ),
    );
    let file = dir.join("handlers.toml");
    fs::write(
        &file,
        format!(
            "[commands.hog]\nrun = [\"python3\", {hog:?}]\ntimeout_secs = 120\nmemory_mb = 64\n\n\
             [commands.spin]\nrun = [{spin:?}]\ntimeout_secs = 120\ncpu_secs = 1\nnofile = 64\n\n\
             [commands.chatty]\nrun = [{chatty:?}]\ntimeout_secs = 120\nmax_output_kb = 10\n",
            hog = hog.display().to_string(),
            spin = spin.display().to_string(),
            chatty = chatty.display().to_string(),
        ),
    )
    .unwrap();
    let path = file.to_string_lossy().into_owned();
    let server = TestServer::start(&redis, move |c| {
        c.handlers_file = Some(jobq::HandlersFile::load(&path).unwrap());
        c.num_workers = 3;
    });
    let limit_count = |text: &str, kind: &str, limit: &str| {
        metric_value(
            text,
            "command_limit_exceeded_total",
            &[("type", kind), ("limit", limit)],
        )
    };
    // The series of each type's limits start at 0.
    let text = server.metrics();
    for (kind, limit) in [("hog", "memory"), ("spin", "cpu"), ("chatty", "output")] {
        assert_eq!(limit_count(&text, kind, limit), Some(0.0), "{text}");
    }

    let submit = |kind: &str| server.submit(&json!({"type": kind, "max_attempts": 3}));
    let (hog_id, spin_id, chatty_id) = (submit("hog"), submit("spin"), submit("chatty"));
    let wait = Duration::from_secs(120);
    let dead = |id: &str| {
        let job = server.wait_for_status(id, "failed", wait);
        // Permanent: one attempt, then the DLQ.
        assert_eq!(job["attempt"], 1, "{job}");
        let r = server.get(&format!("/dlq/{id}"));
        r.expect_status(200, "the job is in the DLQ");
        r.json()["error"].as_str().unwrap_or_default().to_string()
    };
    let err = dead(&hog_id);
    assert!(err.starts_with("out of memory (limit 64 MB): "), "{err}");
    assert!(err.ends_with(": allocating"), "the stderr tail: {err}");
    let err = dead(&spin_id);
    assert!(
        err.starts_with(&format!(
            "cpu time limit 1 s exceeded: {} was killed by SIGXCPU",
            spin.display()
        )),
        "{err}"
    );
    let err = dead(&chatty_id);
    assert!(err.starts_with("output limit 10 KB exceeded: "), "{err}");

    let text = wait_for("the limits counted", Duration::from_secs(10), || {
        let text = server.metrics();
        let counts: Vec<_> = [("hog", "memory"), ("spin", "cpu"), ("chatty", "output")]
            .iter()
            .map(|(kind, limit)| limit_count(&text, kind, limit))
            .collect();
        if counts.iter().all(|c| *c == Some(1.0)) {
            Ok(text)
        } else {
            Err(format!("{counts:?}"))
        }
    });
    assert_eq!(
        metric_sum(&text, "command_limit_exceeded_total"),
        Some(3.0),
        "{text}"
    );
    wait_for(
        "no process of the commands left",
        Duration::from_secs(10),
        || match processes_with(&marker) {
            found if found.is_empty() => Ok(()),
            found => Err(format!("{found:?}")),
        },
    );
    drop(server);
    let _ = fs::remove_dir_all(&top);
}
