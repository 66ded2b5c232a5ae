//! The `email` job: `{"to": "a@b.c" | [...], "subject"?, "body"?, "from"?, "html"?, "reply_to"?}`;
//! a missing subject or body is empty, so the article's `{"to": "test@example.com"}` is a job.
//!
//! The message is built with lettre's builder (RFC 5322 headers, MIME parts, encoded words and
//! transfer encodings all done by a library that mail servers have seen a lot of). Then either:
//!
//! - with `SMTP_URL` set (and the `smtp` feature, on by default), it is sent through that server
//!   with lettre's blocking client: `smtps://` wraps the connection in TLS from the start,
//!   `smtp://` upgrades with STARTTLS when the server offers it (required when the URL carries a
//!   password or says `?tls=required`; `?tls=opportunistic` allows plain text). A 4xx
//!   answer or a connection problem is transient (retried after the backoff); a 5xx answer is
//!   permanent and sends the job straight to the dead-letter queue, with the server's answer
//!   quoted in the job's error.
//! - otherwise it is written as an `.eml` file into MAIL_DIR, atomically: a temp file renamed into
//!   place, so a reader never sees half a message. Any mail client opens these files.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::str::FromStr;

use crate::config::Config;
use crate::worker::{Handler, JobContext, JobError, JobResult};

pub struct Email {
    dir: PathBuf,
    default_from: String,
    #[cfg(feature = "smtp")]
    smtp: Option<smtp::Sender>,
}

/// A payload that passed validation.
struct Mail {
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
    local_ok && domain_ok && lettre::Address::from_str(s).is_ok()
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

/// An optional string field: absent or null is `None`.
fn text(payload: &Value, field: &str) -> Result<Option<String>, String> {
    match payload.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(format!("\"{field}\" must be a string, got {v}")),
    }
}

/// Where `SMTP_URL` points: `smtp://[user[:password]@]host[:port][?tls=required]` or
/// `smtps://…`. User and password are percent-decoded (`%40` for `@` in a user name).
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    /// `smtps://`: TLS from the first byte (port 465 by default).
    pub implicit_tls: bool,
    /// Refuse to send when the server does not offer STARTTLS: `?tls=required`, and the default
    /// for an `smtp://` URL with a password (`?tls=opportunistic` allows plain text).
    pub require_starttls: bool,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

impl SmtpUrl {
    /// Parses and checks an SMTP URL; the error says what is wrong in words.
    pub fn parse(raw: &str) -> Result<SmtpUrl, String> {
        let expected = "expected smtp://user:pass@host:port or smtps://user:pass@host:port";
        let (scheme, rest) = raw.split_once("://").ok_or(expected)?;
        let implicit_tls = match scheme.to_ascii_lowercase().as_str() {
            "smtp" => false,
            "smtps" => true,
            _ => return Err(format!("unknown scheme {scheme:?}: {expected}")),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        // None: the default, decided once the credentials are known (below).
        let tls_choice = match query {
            None | Some("") => None,
            Some("tls=required") if !implicit_tls => Some(true),
            Some("tls=opportunistic") if !implicit_tls => Some(false),
            Some(q) => {
                return Err(format!(
                "unsupported query {q:?}: only ?tls=required or ?tls=opportunistic on smtp:// URLs"
            ))
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err(format!("unexpected path in {rest:?}: {expected}"));
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, pass) = match u.split_once(':') {
                    Some((user, pass)) => (user, Some(pass)),
                    None => (u, None),
                };
                let user = percent_decode(user).map_err(|e| format!("user name: {e}"))?;
                let pass = pass
                    .map(percent_decode)
                    .transpose()
                    .map_err(|e| format!("password: {e}"))?;
                ((!user.is_empty()).then_some(user), pass)
            }
        };
        // With credentials, STARTTLS is required unless asked otherwise: taken opportunistically,
        // a server (or anyone between) that does not offer it would get the password in clear.
        let require_starttls = !implicit_tls && tls_choice.unwrap_or(password.is_some());
        let default_port = if implicit_tls { 465 } else { 587 };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or("unclosed [ in an IPv6 host".to_string())?;
            let port = match after {
                "" => default_port,
                p => p
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or(format!("bad port {p:?}"))?,
            };
            (h.to_string(), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    p.parse::<u16>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or(format!("bad port {p:?}: expected 1-65535"))?,
                ),
                None => (hostport.to_string(), default_port),
            }
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
        {
            return Err(format!("bad host {host:?}: {expected}"));
        }
        if password.is_some() && user.is_none() {
            return Err("a password without a user name".into());
        }
        Ok(SmtpUrl {
            implicit_tls,
            require_starttls,
            host,
            port,
            user,
            password,
        })
    }

    /// The URL for logs and results, password masked.
    pub fn display(&self) -> String {
        let scheme = if self.implicit_tls { "smtps" } else { "smtp" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let cred = match (&self.user, &self.password) {
            (Some(u), Some(_)) => format!("{u}:***@"),
            (Some(u), None) => format!("{u}@"),
            _ => String::new(),
        };
        let query = match (self.require_starttls, self.password.is_some()) {
            _ if self.implicit_tls => "",
            (true, _) => "?tls=required",
            (false, true) => "?tls=opportunistic",
            (false, false) => "",
        };
        format!("{scheme}://{cred}{host}:{}{query}", self.port)
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a % not followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent-encoded bytes that are not UTF-8".to_string())
}

impl Email {
    /// The handler for `config`: SMTP when SMTP_URL is set, else `.eml` files into MAIL_DIR.
    /// Fails when SMTP_URL cannot be used (a bad URL, or a build without the `smtp` feature).
    pub fn from_config(c: &Config) -> Result<Email, String> {
        #[cfg(feature = "smtp")]
        let smtp = match &c.smtp_url {
            Some(raw) => {
                let url = SmtpUrl::parse(raw).map_err(|e| format!("SMTP_URL: {e}"))?;
                let sender =
                    smtp::Sender::new(&url, std::time::Duration::from_secs(c.smtp_timeout_secs))?;
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
        if c.smtp_url.is_some() {
            return Err(
                "SMTP_URL is set, but this jobq was built without the \"smtp\" feature; unset it to write .eml files into MAIL_DIR, or build with default features"
                    .into(),
            );
        }
        Ok(Email {
            dir: PathBuf::from(&c.mail_dir),
            default_from: c.mail_from.clone(),
            #[cfg(feature = "smtp")]
            smtp,
        })
    }

    fn parse(&self, p: &Value) -> Result<Mail, String> {
        if !p.is_object() {
            return Err(
                "the payload must be an object with \"to\" (and optionally \"subject\" and \"body\")"
                    .into(),
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
        let subject = text(p, "subject")?.unwrap_or_default();
        if subject.contains(['\r', '\n']) {
            return Err("\"subject\" must be one line".into());
        }
        Ok(Mail {
            from: address(p, "from")?.unwrap_or_else(|| self.default_from.clone()),
            to,
            reply_to: address(p, "reply_to")?,
            subject,
            body: text(p, "body")?.unwrap_or_default(),
            html: text(p, "html")?,
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

/// The message-id of a job's email: stable across retries, so a receiver can spot a duplicate.
fn message_id(mail: &Mail, id: &str) -> String {
    let domain = mail.from.rsplit_once('@').map_or("localhost", |(_, d)| d);
    format!("<{id}@{domain}>")
}

/// Builds the RFC 5322 message. Fails only on input validation let through, so: permanent.
fn build(mail: &Mail, id: &str) -> Result<lettre::Message, JobError> {
    use lettre::message::{Mailbox, MultiPart, SinglePart};
    let mailbox = |field: &str, a: &str| -> Result<Mailbox, JobError> {
        a.parse::<Mailbox>()
            .map_err(|e| JobError::permanent(format!("\"{field}\": {a:?}: {e}")))
    };
    let mut b = lettre::Message::builder()
        .from(mailbox("from", &mail.from)?)
        .subject(mail.subject.clone())
        .message_id(Some(message_id(mail, id)))
        .date_now();
    for to in &mail.to {
        b = b.to(mailbox("to", to)?);
    }
    if let Some(r) = &mail.reply_to {
        b = b.reply_to(mailbox("reply_to", r)?);
    }
    let built = match &mail.html {
        None => b.singlepart(SinglePart::plain(mail.body.clone())),
        Some(html) => b.multipart(MultiPart::alternative_plain_html(
            mail.body.clone(),
            html.clone(),
        )),
    };
    built.map_err(|e| JobError::permanent(format!("cannot build the message: {e}")))
}

/// The payload's schema for the API document. Addresses get a pattern that admits every address
/// [`is_address`] does (and some it refuses), so a client is never told a valid one is wrong.
pub fn payload_schema() -> Value {
    let address = json!({
        "type": "string",
        "pattern": "^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9.-]{1,253}$",
        "description": "A plain address such as user@example.com (no display name)."
    });
    let optional = |mut s: Value, description: &str| {
        s["nullable"] = json!(true);
        s["description"] = json!(description);
        s
    };
    json!({
        "type": "object",
        "description": "An email, written to MAIL_DIR as an .eml file or sent through SMTP_URL. Other fields are ignored.",
        "required": ["to"],
        "properties": {
            "to": {
                "oneOf": [
                    address,
                    {"type": "array", "minItems": 1, "maxItems": 100, "items": address}
                ],
                "description": "The recipient, or 1-100 of them."
            },
            "subject": {
                "type": "string",
                "nullable": true,
                "pattern": "^[^\\r\\n]*$",
                "description": "One line; empty when absent."
            },
            "body": {"type": "string", "nullable": true, "description": "Plain text; empty when absent."},
            "html": {"type": "string", "nullable": true, "description": "An HTML alternative to the body."},
            "from": optional(address.clone(), "The sender; default MAIL_FROM."),
            "reply_to": optional(address.clone(), "The Reply-To address.")
        },
        "example": {"to": "user@example.com", "subject": "Hi", "body": "Hello"}
    })
}

impl Handler for Email {
    fn validate(&self, payload: &Value) -> Result<(), String> {
        self.parse(payload).map(|_| ())
    }

    fn payload_schema(&self) -> Option<Value> {
        Some(payload_schema())
    }

    fn run(&self, job: &JobContext) -> JobResult {
        let mail = self.parse(&job.payload).map_err(JobError::permanent)?;
        let msg = build(&mail, &job.id)?;
        #[cfg(feature = "smtp")]
        if let Some(smtp) = &self.smtp {
            return smtp.send(job, &mail, &msg);
        }
        self.write_eml(job, &mail, &msg.formatted())
    }
}

#[cfg(feature = "smtp")]
mod smtp {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    use lettre::transport::smtp::extension::ClientId;
    use lettre::transport::smtp::SmtpTransport;
    use lettre::Transport as _;
    use serde_json::json;
    use std::time::Duration;

    use super::{message_id, Mail, SmtpUrl};
    use crate::worker::{JobContext, JobError, JobResult};

    /// A configured SMTP client. Each send opens its own connection (no pool): a handful of
    /// worker threads need no more, and a fresh connection never trips over a server that closed
    /// an idle one.
    pub struct Sender {
        transport: SmtpTransport,
        /// SMTP_URL with the password masked, for logs, errors and results.
        display: String,
        timeout: Duration,
    }

    /// The name this host gives in EHLO: its host name when it is a plain DNS name, else the
    /// address literal lettre uses by default.
    fn hello_name() -> ClientId {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| {
                !h.is_empty()
                    && h.len() <= 253
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            })
            .map(ClientId::Domain)
            .unwrap_or_default()
    }

    impl Sender {
        pub fn new(url: &SmtpUrl, timeout: Duration) -> Result<Sender, String> {
            let display = url.display();
            let tls_params = || {
                TlsParameters::new(url.host.clone())
                    .map_err(|e| format!("SMTP_URL {display}: cannot set up TLS: {e}"))
            };
            let tls = if url.implicit_tls {
                Tls::Wrapper(tls_params()?)
            } else if url.require_starttls {
                Tls::Required(tls_params()?)
            } else {
                Tls::Opportunistic(tls_params()?)
            };
            let mut b = SmtpTransport::builder_dangerous(url.host.clone())
                .port(url.port)
                .tls(tls)
                .hello_name(hello_name())
                .timeout(Some(timeout));
            if let Some(user) = &url.user {
                b = b.credentials(Credentials::new(
                    user.clone(),
                    url.password.clone().unwrap_or_default(),
                ));
            }
            Ok(Sender {
                transport: b.build(),
                display,
                timeout,
            })
        }

        pub fn send(&self, job: &JobContext, mail: &Mail, msg: &lettre::Message) -> JobResult {
            match self.transport.send(msg) {
                Ok(resp) => {
                    let answer = format!(
                        "{} {}",
                        resp.code(),
                        resp.message().collect::<Vec<_>>().join(" ")
                    );
                    log::info!(
                        "job {} (email) sent through {} to {}: {}",
                        job.id,
                        self.display,
                        mail.to.join(", "),
                        answer.trim_end()
                    );
                    Ok(json!({
                        "sent_via": self.display,
                        "to": mail.to,
                        "message_id": message_id(mail, &job.id),
                        "response": answer.trim_end(),
                    }))
                }
                Err(e) => Err(self.classify(&e)),
            }
        }

        /// 5xx → permanent (no retry can make the server accept it); 4xx, timeouts, refused
        /// connections and TLS failures → transient.
        fn classify(&self, e: &lettre::transport::smtp::Error) -> JobError {
            let server = &self.display;
            if e.is_permanent() {
                JobError::permanent(format!("SMTP server {server} rejected the message: {e}"))
            } else if e.is_transient() {
                JobError::transient(format!(
                    "SMTP server {server} deferred the message (retrying later): {e}"
                ))
            } else if e.is_timeout() {
                JobError::transient(format!(
                    "SMTP server {server} did not answer within {} s: {e}",
                    self.timeout.as_secs()
                ))
            } else if e.is_tls() {
                JobError::transient(format!(
                    "TLS with SMTP server {server} failed: {e}; check that its certificate is trusted by this host (ca-certificates)"
                ))
            } else {
                JobError::transient(format!("cannot send through SMTP server {server}: {e}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email {
            dir: PathBuf::from("/nonexistent"),
            default_from: "jobq@localhost".into(),
            #[cfg(feature = "smtp")]
            smtp: None,
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
        let m = email().parse(&payload).unwrap();
        String::from_utf8(build(&m, "id-1").unwrap().formatted()).unwrap()
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

    #[test]
    fn smtp_urls() {
        let u = SmtpUrl::parse("smtp://user%40x:p%3Ass@mail.example.com:2525").unwrap();
        assert_eq!(u.host, "mail.example.com");
        assert_eq!(u.port, 2525);
        assert_eq!(u.user.as_deref(), Some("user@x"));
        assert_eq!(u.password.as_deref(), Some("p:ss"));
        // A password makes STARTTLS required unless plain text is allowed explicitly.
        assert!(!u.implicit_tls && u.require_starttls);
        assert_eq!(
            u.display(),
            "smtp://user@x:***@mail.example.com:2525?tls=required"
        );
        assert!(!format!("{u:?}").contains("p:ss"));
        let u = SmtpUrl::parse("smtp://u:pw@relay.local?tls=opportunistic").unwrap();
        assert!(!u.require_starttls);
        assert_eq!(
            u.display(),
            "smtp://u:***@relay.local:587?tls=opportunistic"
        );
        let u = SmtpUrl::parse("smtp://relay.local").unwrap();
        assert!(!u.require_starttls);

        let u = SmtpUrl::parse("smtps://mail.example.com").unwrap();
        assert!(u.implicit_tls);
        assert_eq!((u.port, u.user.clone()), (465, None));
        let u = SmtpUrl::parse("smtp://127.0.0.1?tls=required").unwrap();
        assert_eq!(u.port, 587);
        assert!(u.require_starttls);
        let u = SmtpUrl::parse("SMTP://[::1]:25").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 25));

        for bad in [
            "http://mail.example.com",
            "mail.example.com:25",
            "smtp://",
            "smtp://host:0",
            "smtp://host:99999",
            "smtp://host:25/path",
            "smtp://host?tls=maybe",
            "smtps://host?tls=required",
            "smtp://:pw@host",
            "smtp://u:%zz@host",
        ] {
            assert!(SmtpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
