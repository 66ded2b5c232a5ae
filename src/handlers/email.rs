//! The `email` job: `{"to": "a@b.c" | [...], "subject", "body", "from"?, "html"?, "reply_to"?}`.
//!
//! Each message is written as an RFC 5322 `.eml` file into MAIL_DIR (the embedded default for
//! local runs, readable by any mail client), atomically: a temp file renamed into place, so a
//! reader never sees half a message.

use chrono::Utc;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use crate::config::Config;
use crate::worker::{Handler, JobContext, JobError, JobResult};

pub struct Email {
    dir: PathBuf,
    default_from: String,
}

/// A payload that passed validation.
struct Message {
    from: String,
    to: Vec<String>,
    reply_to: Option<String>,
    subject: String,
    body: String,
    html: Option<String>,
}

/// Whether `s` is a plain address such as `user@example.com` (no display name).
pub fn is_address(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b));
    let domain_ok = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    local_ok && domain_ok
}

fn address(payload: &Value, field: &str) -> Result<Option<String>, String> {
    match payload.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if is_address(s) => Ok(Some(s.clone())),
        Some(v) => Err(format!(
            "\"{field}\": {v} is not an address like user@example.com"
        )),
    }
}

fn text(payload: &Value, field: &str, required: bool) -> Result<Option<String>, String> {
    match payload.get(field) {
        None | Some(Value::Null) if required => Err(format!("\"{field}\" is required")),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(format!("\"{field}\" must be a string, got {v}")),
    }
}

impl Email {
    pub fn from_config(c: &Config) -> Email {
        Email {
            dir: PathBuf::from(&c.mail_dir),
            default_from: c.mail_from.clone(),
        }
    }

    fn parse(&self, p: &Value) -> Result<Message, String> {
        if !p.is_object() {
            return Err(
                "the payload must be an object with \"to\", \"subject\" and \"body\"".into(),
            );
        }
        let to = match p.get("to") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) if !items.is_empty() && items.len() <= 100 => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("\"to\": {v} is not a string"))
                })
                .collect::<Result<_, _>>()?,
            Some(Value::Array(_)) => return Err("\"to\" must list 1 to 100 addresses".into()),
            Some(v) => {
                return Err(format!(
                    "\"to\" must be an address or a list of them, got {v}"
                ))
            }
            None => return Err("\"to\" is required".into()),
        };
        if let Some(bad) = to.iter().find(|a| !is_address(a)) {
            return Err(format!(
                "\"to\": {bad:?} is not an address like user@example.com"
            ));
        }
        let subject = text(p, "subject", true)?.unwrap_or_default();
        if subject.contains(['\r', '\n']) {
            return Err("\"subject\" must be one line".into());
        }
        Ok(Message {
            from: address(p, "from")?.unwrap_or_else(|| self.default_from.clone()),
            to,
            reply_to: address(p, "reply_to")?,
            subject,
            body: text(p, "body", true)?.unwrap_or_default(),
            html: text(p, "html", false)?,
        })
    }
}

impl Handler for Email {
    fn validate(&self, payload: &Value) -> Result<(), String> {
        self.parse(payload).map(|_| ())
    }

    fn run(&self, job: &JobContext) -> JobResult {
        let msg = self.parse(&job.payload).map_err(JobError::permanent)?;
        let eml = render(&msg, &job.id);
        std::fs::create_dir_all(&self.dir).map_err(|e| {
            JobError::transient(format!(
                "cannot create MAIL_DIR {}: {e}",
                self.dir.display()
            ))
        })?;
        let path = self.dir.join(format!("{}.eml", job.id));
        let tmp = self.dir.join(format!(".{}.eml.tmp", job.id));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(eml.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            JobError::transient(format!("cannot write {}: {e}", path.display()))
        })?;
        log::info!(
            "job {} (email) wrote {} for {}",
            job.id,
            path.display(),
            msg.to.join(", ")
        );
        Ok(json!({ "file": path.display().to_string(), "to": msg.to, "bytes": eml.len() }))
    }
}

/// An RFC 2047 encoded word for non-ASCII header text; ASCII passes through.
fn header_text(s: &str) -> String {
    if s.is_ascii() {
        s.to_string()
    } else {
        format!("=?UTF-8?B?{}?=", base64(s.as_bytes()))
    }
}

fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Body text with CRLF line ends, as RFC 5322 requires.
fn crlf(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\n', "\r\n")
}

fn render(m: &Message, id: &str) -> String {
    let domain = m.from.rsplit_once('@').map_or("localhost", |(_, d)| d);
    let mut out = String::new();
    let _ = write!(out, "Date: {}\r\n", Utc::now().to_rfc2822());
    let _ = write!(out, "From: {}\r\n", m.from);
    let _ = write!(out, "To: {}\r\n", m.to.join(", "));
    if let Some(r) = &m.reply_to {
        let _ = write!(out, "Reply-To: {r}\r\n");
    }
    let _ = write!(out, "Subject: {}\r\n", header_text(&m.subject));
    let _ = write!(out, "Message-ID: <{id}@{domain}>\r\n");
    out.push_str("MIME-Version: 1.0\r\n");
    let plain = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n";
    match &m.html {
        None => {
            let _ = write!(out, "{plain}\r\n{}\r\n", crlf(&m.body));
        }
        Some(html) => {
            let boundary = format!("jobq-{id}");
            let _ = write!(
                out,
                "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n\
                 --{boundary}\r\n{plain}\r\n{}\r\n\
                 --{boundary}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{}\r\n\
                 --{boundary}--\r\n",
                crlf(&m.body),
                crlf(html)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email {
            dir: PathBuf::from("/nonexistent"),
            default_from: "jobq@localhost".into(),
        }
    }

    #[test]
    fn addresses() {
        assert!(is_address("user@example.com"));
        assert!(is_address("a@b.c"));
        assert!(is_address("jobq@localhost"));
        assert!(is_address("first.last+tag@sub.example.org"));
        for bad in [
            "not an address",
            "@x.com",
            "a@",
            "a@@b",
            "a b@c.d",
            "a@-x.com",
            "a..b@c.d",
            "a@b..c",
        ] {
            assert!(!is_address(bad), "{bad}");
        }
    }

    #[test]
    fn payload_errors_name_the_field() {
        let e = email();
        assert!(e
            .validate(&json!({"to": "not an address", "subject": "s", "body": "b"}))
            .unwrap_err()
            .contains("\"to\""));
        assert!(e
            .validate(&json!({"to": "a@b.c", "body": "b"}))
            .unwrap_err()
            .contains("\"subject\""));
        assert!(e
            .validate(&json!({"to": "a@b.c", "subject": "s"}))
            .unwrap_err()
            .contains("\"body\""));
        assert!(e
            .validate(&json!({"to": "a@b.c", "subject": "a\r\nBcc: x@y.z", "body": "b"}))
            .unwrap_err()
            .contains("one line"));
        assert!(e
            .validate(&json!({"to": ["a@b.c", 3], "subject": "s", "body": "b"}))
            .is_err());
        assert!(e
            .validate(
                &json!({"to": ["a@b.c", "d@e.f"], "subject": "s", "body": "b", "from": "x@y.z"})
            )
            .is_ok());
    }

    #[test]
    fn renders_rfc5322() {
        let m = email()
            .parse(&json!({"to": "user@example.com", "subject": "Grüße", "body": "line1\nline2"}))
            .unwrap();
        let eml = render(&m, "id-1");
        assert!(eml.contains("From: jobq@localhost\r\n"));
        assert!(eml.contains("To: user@example.com\r\n"));
        assert!(eml.contains("Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n"));
        assert!(eml.contains("Message-ID: <id-1@localhost>\r\n"));
        assert!(eml.ends_with("\r\n\r\nline1\r\nline2\r\n"));
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
        assert_eq!(base64(b"Man"), "TWFu");
    }
}
