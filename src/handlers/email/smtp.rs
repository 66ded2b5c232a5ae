//! Sending through `SMTP_URL` with lettre's blocking client, and what an SMTP failure means for
//! the job: a 5xx answer is permanent, everything else (4xx, timeouts, refused connections, TLS)
//! is transient.

use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::SmtpTransport;
use lettre::Transport as _;
use serde_json::json;
use std::time::Duration;

use super::message::message_id;
use super::payload::Mail;
use crate::config::SmtpUrl;
use crate::handler::{JobContext, JobError, JobResult};

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
