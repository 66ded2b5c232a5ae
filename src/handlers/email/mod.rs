//! The `email` job: its payload is checked (`payload.rs`), built into a message with lettre
//! (`message.rs`), then either:
//!
//! - with `SMTP_URL` set (and the `smtp` feature, on by default), it is sent through that server
//!   with lettre's blocking client: `smtps://` wraps the connection in TLS from the start,
//!   `smtp://` upgrades with STARTTLS when the server offers it (required when the URL carries a
//!   password or says `?tls=required`; `?tls=opportunistic` allows plain text). A 4xx
//!   answer or a connection problem is transient (retried after the backoff); a 5xx answer is
//!   permanent and sends the job straight to the dead-letter queue, with the server's answer
//!   quoted in the job's error (`smtp.rs`).
//! - otherwise it is written as an `.eml` file into MAIL_DIR, atomically: a temp file renamed into
//!   place, so a reader never sees half a message. Any mail client opens these files.

mod message;
mod payload;
#[cfg(feature = "smtp")]
mod smtp;

use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

use crate::config::SmtpUrl;
use crate::handler::{Handler, JobContext, JobError, JobResult};
use payload::Mail;

pub struct Email {
    dir: PathBuf,
    default_from: String,
    #[cfg(feature = "smtp")]
    smtp: Option<smtp::Sender>,
}

impl Email {
    /// The handler for these settings: SMTP through `smtp_url` (SMTP_URL) when given, each SMTP
    /// step limited to `smtp_timeout`; else `.eml` files into `mail_dir` (MAIL_DIR). `mail_from`
    /// (MAIL_FROM) is the sender of a payload without `from`. Fails when the SMTP client cannot
    /// be set up, or in a build without the `smtp` feature when `smtp_url` is given.
    pub fn new(
        smtp_url: Option<&SmtpUrl>,
        smtp_timeout: Duration,
        mail_dir: &str,
        mail_from: &str,
    ) -> Result<Email, String> {
        #[cfg(feature = "smtp")]
        let smtp = match smtp_url {
            Some(url) => {
                let sender = smtp::Sender::new(url, smtp_timeout)?;
                log::info!(
                    "email jobs are sent through {} ({})",
                    url.display(),
                    if url.implicit_tls {
                        "TLS"
                    } else if url.require_starttls {
                        "STARTTLS required"
                    } else {
                        "STARTTLS when the server offers it"
                    }
                );
                Some(sender)
            }
            None => None,
        };
        #[cfg(not(feature = "smtp"))]
        {
            let _ = smtp_timeout;
            if smtp_url.is_some() {
                return Err(
                    "SMTP_URL is set, but this jobq was built without the \"smtp\" feature; unset it to write .eml files into MAIL_DIR, or build with default features"
                        .into(),
                );
            }
        }
        Ok(Email {
            dir: PathBuf::from(mail_dir),
            default_from: mail_from.to_string(),
            #[cfg(feature = "smtp")]
            smtp,
        })
    }

    fn write_eml(&self, job: &JobContext, mail: &Mail, eml: &[u8]) -> JobResult {
        std::fs::create_dir_all(&self.dir).map_err(|e| {
            JobError::transient(format!(
                "cannot create MAIL_DIR {}: {e}",
                self.dir.display()
            ))
        })?;
        let path = self.dir.join(format!("{}.eml", job.id));
        super::write_atomically(&path, eml)?;
        log::info!(
            "job {} (email) wrote {} for {}",
            job.id,
            path.display(),
            mail.to.join(", ")
        );
        Ok(json!({ "file": path.display().to_string(), "to": mail.to, "bytes": eml.len() }))
    }
}

impl Handler for Email {
    fn validate(&self, payload: &Value) -> Result<(), String> {
        payload::parse(payload, &self.default_from).map(|_| ())
    }

    fn payload_schema(&self) -> Option<Value> {
        Some(payload::payload_schema())
    }

    fn run(&self, job: &JobContext) -> JobResult {
        let mail = payload::parse(&job.payload, &self.default_from).map_err(JobError::permanent)?;
        let msg = message::build(&mail, &job.id)?;
        #[cfg(feature = "smtp")]
        if let Some(smtp) = &self.smtp {
            return smtp.send(job, &mail, &msg);
        }
        self.write_eml(job, &mail, &msg.formatted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn email() -> Email {
        Email::new(
            None,
            Duration::from_secs(1),
            "/nonexistent",
            "jobq@localhost",
        )
        .unwrap()
    }

    #[test]
    fn payload_errors_name_the_field() {
        let e = email();
        assert!(e
            .validate(&json!({"to": "not an address", "subject": "s", "body": "b"}))
            .unwrap_err()
            .contains("\"to\""));
        assert!(e
            .validate(&json!({"to": "a@b.c", "subject": 3}))
            .unwrap_err()
            .contains("\"subject\""));
        assert!(e
            .validate(&json!({"to": "a@b.c", "body": ["b"]}))
            .unwrap_err()
            .contains("\"body\""));
        assert!(e
            .validate(&json!({"subject": "s", "body": "b"}))
            .unwrap_err()
            .contains("\"to\" is required"));
        assert!(e
            .validate(&json!({"to": "a@b.c", "subject": "a\r\nBcc: x@y.z", "body": "b"}))
            .unwrap_err()
            .contains("one line"));
        assert!(e
            .validate(&json!({"to": ["a@b.c", 3], "subject": "s", "body": "b"}))
            .is_err());
        assert!(e
            .validate(&json!({"to": "a@b.c", "subject": "s", "body": "b", "reply_to": "x"}))
            .unwrap_err()
            .contains("\"reply_to\""));
        assert!(e
            .validate(
                &json!({"to": ["a@b.c", "d@e.f"], "subject": "s", "body": "b", "from": "x@y.z"})
            )
            .is_ok());
    }

    fn eml(payload: Value) -> String {
        let m = payload::parse(&payload, "jobq@localhost").unwrap();
        String::from_utf8(message::build(&m, "id-1").unwrap().formatted()).unwrap()
    }

    #[test]
    fn renders_rfc5322() {
        let text =
            eml(json!({"to": "user@example.com", "subject": "Grüße", "body": "line1\nline2"}));
        assert!(text.contains("From: jobq@localhost\r\n"), "{text}");
        assert!(text.contains("To: user@example.com\r\n"), "{text}");
        assert!(text.contains("Message-ID: <id-1@localhost>\r\n"), "{text}");
        assert!(text.contains("Date: "), "{text}");
        assert!(
            text.contains("Content-Type: text/plain; charset=utf-8"),
            "{text}"
        );
        // Non-ASCII subjects become RFC 2047 encoded words.
        let subject = text.lines().find(|l| l.starts_with("Subject: ")).unwrap();
        assert!(
            subject.is_ascii() && subject.contains("=?utf-8?"),
            "{subject}"
        );
        assert!(text.contains("line1\r\nline2"), "{text}");
    }

    #[test]
    fn subject_and_body_may_be_left_out() {
        // The payload of the article's load test.
        let text = eml(json!({"to": "test@example.com"}));
        assert!(text.contains("To: test@example.com\r\n"), "{text}");
        assert!(text.contains("Subject: \r\n"), "{text}");
    }

    #[test]
    fn html_makes_a_multipart_alternative() {
        let text = eml(json!({
            "to": ["a@b.c", "d@e.f"], "subject": "s", "body": "plain", "html": "<b>rich</b>",
            "from": "x@y.z", "reply_to": "r@y.z"
        }));
        assert!(text.contains("To: a@b.c, d@e.f\r\n"), "{text}");
        assert!(text.contains("Reply-To: r@y.z\r\n"), "{text}");
        assert!(text.contains("Message-ID: <id-1@y.z>\r\n"), "{text}");
        assert!(text.contains("multipart/alternative"), "{text}");
        assert!(
            text.contains("<b>rich</b>") && text.contains("plain"),
            "{text}"
        );
    }
}
