//! The `webhook` job: one HTTP request to the payload's `url` (`payload.rs` checks it), sent
//! with ureq's blocking client through a resolver that refuses private, loopback and
//! link-local addresses unless WEBHOOK_ALLOW lists the host (`address.rs`), signed with
//! HMAC-SHA256 when WEBHOOK_SECRET is set (`signature.rs`); the answer becomes the result or
//! an error of the right kind (`outcome.rs`).
//!
//! Redirects are not followed (a 3xx is a status like any other), no proxy from the
//! environment is used (a proxy would resolve the name itself, past the address check), and
//! https trusts the system's CA certificates, read once when the first webhook runs.

mod address;
mod outcome;
mod payload;
mod signature;

use serde_json::{Map, Value};
use std::io::Read;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
use ureq::unversioned::transport::DefaultConnector;
use ureq::RequestExt;

use crate::config::WebhookAllow;
use crate::handler::{Handler, JobContext, JobError, JobResult};
use address::GuardedResolver;
use outcome::{Answer, BODY_LIMIT, KEPT_HEADERS};
use payload::{Body, Spec};
use signature::Signer;

/// The `User-Agent` of every webhook request.
const USER_AGENT: &str = concat!("jobq/", env!("CARGO_PKG_VERSION"));

/// The `webhook` handler: WEBHOOK_ALLOW, the signing key, and one HTTP client shared by every
/// worker (its connection pool keeps a connection to a busy receiver open between jobs).
pub struct Webhook {
    allow: Option<WebhookAllow>,
    signer: Option<Signer>,
    client: OnceLock<Client>,
}

struct Client {
    agent: ureq::Agent,
    /// Whether any CA certificate was found; without one every https webhook would fail
    /// with a TLS error that does not say why.
    has_roots: bool,
}

impl Webhook {
    /// The handler for WEBHOOK_ALLOW (`allow`; None: every public destination) and
    /// WEBHOOK_SECRET (`secret`; None: requests are not signed).
    pub fn new(allow: Option<WebhookAllow>, secret: Option<&str>) -> Webhook {
        Webhook {
            allow,
            signer: secret.map(Signer::new),
            client: OnceLock::new(),
        }
    }

    /// The payload checked, and its destination allowed.
    fn check(&self, payload: &Value) -> Result<Spec, String> {
        let spec = payload::parse(payload)?;
        address::check_destination(&spec.host, spec.port, self.allow.as_ref())
            .map_err(|e| format!("\"url\": {e}"))?;
        Ok(spec)
    }

    /// The client, made on first use: reading the system's CA certificates costs a few
    /// milliseconds that a process running no webhook need not spend.
    fn client(&self) -> &Client {
        self.client.get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                log::warn!("webhook jobs: reading the system's CA certificates: {e}");
            }
            let certs: Vec<Certificate<'static>> = found
                .certs
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()).to_owned())
                .collect();
            if certs.is_empty() {
                log::warn!("webhook jobs: no CA certificates found on this host, so https webhooks fail; install ca-certificates or point SSL_CERT_FILE at a PEM bundle");
            }
            let tls = TlsConfig::builder()
                .provider(TlsProvider::Rustls)
                .root_certs(RootCerts::new_with_certs(&certs))
                .unversioned_rustls_crypto_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .build();
            let config = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .proxy(None)
                .user_agent(USER_AGENT)
                .tls_config(tls)
                .build();
            Client {
                agent: ureq::Agent::with_parts(
                    config,
                    DefaultConnector::new(),
                    GuardedResolver::new(self.allow.clone()),
                ),
                has_roots: !certs.is_empty(),
            }
        })
    }

    /// The request's headers: the payload's, a Content-Type for its body, then jobq's own.
    fn headers(&self, job: &JobContext, spec: &Spec, body: &[u8]) -> Vec<(String, String)> {
        let trace = job.traceparent();
        let mut h: Vec<(String, String)> = spec
            .headers
            .iter()
            // The job's own trace context wins over one written into the payload.
            .filter(|(k, _)| trace.is_none() || !k.eq_ignore_ascii_case("traceparent"))
            .cloned()
            .collect();
        let content_type = match spec.body {
            Body::Json(_) => Some("application/json"),
            Body::Text(_) => Some("text/plain; charset=utf-8"),
            Body::None => None,
        };
        if let Some(ct) = content_type.filter(|_| !spec.has_header("content-type")) {
            h.push(("Content-Type".into(), ct.into()));
        }
        h.push(("X-Jobq-Job-Id".into(), job.id.to_string()));
        h.push(("X-Jobq-Attempt".into(), job.attempt.to_string()));
        if let Some(e) = &spec.event {
            h.push(("X-Jobq-Event".into(), e.kind.clone()));
            h.push(("X-Jobq-Event-Id".into(), e.id.clone()));
            h.push(("X-Jobq-Subscription".into(), e.subscription.clone()));
        }
        if let Some(tp) = trace {
            h.push(("traceparent".into(), tp.into()));
        }
        if let Some(signer) = &self.signer {
            let t = chrono::Utc::now().timestamp();
            h.push((signature::HEADER.into(), signer.sign(t, body)));
        }
        h
    }

    /// Sends the request and reads the answer (status, kept headers, the body's start).
    fn send(&self, job: &JobContext, spec: &Spec) -> Result<Answer, JobError> {
        let client = self.client();
        if spec.origin.starts_with("https:") && !client.has_roots {
            return Err(JobError::transient(format!(
                "{} {}: this host has no CA certificates to check the receiver's with; install ca-certificates (or set SSL_CERT_FILE) and restart jobq",
                spec.method, spec.origin
            )));
        }
        let body: &[u8] = match &spec.body {
            Body::None => b"",
            Body::Json(b) => b,
            Body::Text(s) => s.as_bytes(),
        };
        let mut builder = ureq::http::Request::builder()
            .method(spec.method)
            .uri(&spec.url);
        for (k, v) in self.headers(job, spec, body) {
            builder = builder.header(k, v);
        }
        // A request without a body is sent without one (no `Content-Length: 0` on a GET).
        let sent = match spec.body {
            Body::None => builder.body(()).map(|r| {
                r.with_agent(&client.agent)
                    .configure()
                    .timeout_global(Some(spec.timeout))
                    .run()
            }),
            _ => builder.body(body.to_vec()).map(|r| {
                r.with_agent(&client.agent)
                    .configure()
                    .timeout_global(Some(spec.timeout))
                    .run()
            }),
        };
        let mut resp = sent
            .map_err(|e| {
                JobError::permanent(format!(
                    "{} {}: the request cannot be built: {e}",
                    spec.method, spec.origin
                ))
            })?
            .map_err(|e| outcome::network_failure(spec, e))?;
        let headers: Map<String, Value> = KEPT_HEADERS
            .iter()
            .filter_map(|name| {
                let v = resp.headers().get(*name)?;
                Some((
                    name.to_string(),
                    Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
                ))
            })
            .collect();
        let mut body = Vec::new();
        // The status has been given; a body that breaks off is kept as far as it came.
        let read = resp
            .body_mut()
            .as_reader()
            .take(BODY_LIMIT as u64 + 1)
            .read_to_end(&mut body);
        let truncated = read.is_err() || body.len() > BODY_LIMIT;
        if let Err(e) = read {
            log::debug!("job {} (webhook): reading the answer's body: {e}", job.id);
        }
        body.truncate(BODY_LIMIT);
        Ok(Answer {
            status: resp.status().as_u16(),
            headers,
            body,
            truncated,
        })
    }
}

impl Handler for Webhook {
    fn validate(&self, payload: &Value) -> Result<(), String> {
        if payload.get("event").is_some_and(|e| !e.is_null()) {
            return Err(payload::SUBMITTED_EVENT.into());
        }
        self.check(payload).map(|_| ())
    }

    fn payload_schema(&self) -> Option<Value> {
        Some(payload::payload_schema())
    }

    fn run(&self, job: &JobContext) -> JobResult {
        // Checked again: WEBHOOK_ALLOW may have changed since the job was submitted.
        let mut spec = self.check(&job.payload).map_err(JobError::permanent)?;
        if job.is_cancelled() {
            return Err(job.cancel.stop_error("stopped before the webhook was sent"));
        }
        // A blocking call cannot be interrupted, so it gets no longer than the attempt has.
        if let Some(deadline) = job.cancel.deadline() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(JobError::timed_out(
                    "the attempt's time ran out before the webhook was sent",
                ));
            }
            spec.timeout = spec.timeout.min(left);
        }
        let started = Instant::now();
        let answer = self.send(job, &spec)?;
        log::debug!(
            "job {} (webhook) {} {} answered {} in {} ms",
            job.id,
            spec.method,
            spec.origin,
            answer.status,
            started.elapsed().as_millis()
        );
        if spec.expect.accepts(answer.status) {
            Ok(answer.result())
        } else {
            Err(outcome::failure(&spec, &answer, chrono::Utc::now()))
        }
    }
}
