//! The `email` payload: `{"to": "a@b.c" | [...], "subject"?, "body"?, "from"?, "html"?,
//! "reply_to"?}` as a serde struct, checked into a [`Mail`]; and its schema for the API
//! document. A missing subject or body is empty, so the article's `{"to": "test@example.com"}`
//! is a job.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::smtp::is_address;

/// Most recipients of one message.
const MAX_RECIPIENTS: usize = 100;

/// A payload that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub reply_to: Option<String>,
    pub subject: String,
    pub body: String,
    pub html: Option<String>,
}

/// The payload as sent. Only `to` is required (checked in [`parse`], for its own message).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    #[serde(default)]
    to: Option<Recipients>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    html: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    reply_to: Option<String>,
}

/// `"to"`: one address or a list of 1-100, as strings (checked to be addresses in [`parse`]).
#[derive(Deserialize)]
#[serde(try_from = "Value")]
struct Recipients(Vec<String>);

impl TryFrom<Value> for Recipients {
    type Error = String;
    fn try_from(v: Value) -> Result<Recipients, String> {
        match v {
            Value::String(s) => Ok(Recipients(vec![s])),
            Value::Array(items) if !items.is_empty() && items.len() <= MAX_RECIPIENTS => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    v => Err(format!("\"to\": {v} is not a string")),
                })
                .collect::<Result<_, _>>()
                .map(Recipients),
            Value::Array(_) => Err("\"to\" must list 1 to 100 addresses".into()),
            v => Err(format!(
                "\"to\" must be an address or a list of them, got {v}"
            )),
        }
    }
}

/// An optional address field, checked.
fn address(field: &str, value: Option<String>) -> Result<Option<String>, String> {
    match value {
        Some(s) if !is_address(&s) => Err(format!(
            "\"{field}\": {} is not an address like user@example.com",
            Value::String(s)
        )),
        other => Ok(other),
    }
}

/// Checks a payload; `default_from` (MAIL_FROM) is the sender when it gives none.
pub fn parse(p: &Value, default_from: &str) -> Result<Mail, String> {
    let p: Payload = crate::handlers::payload::decode(
        p,
        "the payload must be an object with \"to\" (and optionally \"subject\" and \"body\")",
    )?;
    let to = p.to.ok_or("\"to\" is required")?.0;
    if let Some(bad) = to.iter().find(|a| !is_address(a)) {
        return Err(format!(
            "\"to\": {bad:?} is not an address like user@example.com"
        ));
    }
    let subject = p.subject.unwrap_or_default();
    if subject.contains(['\r', '\n']) {
        return Err("\"subject\" must be one line".into());
    }
    Ok(Mail {
        from: address("from", p.from)?.unwrap_or_else(|| default_from.to_string()),
        to,
        reply_to: address("reply_to", p.reply_to)?,
        subject,
        body: p.body.unwrap_or_default(),
        html: p.html,
    })
}

/// The payload's schema for the API document. Addresses get a pattern that admits every address
/// [`is_address`](crate::config::smtp::is_address) does (and some it refuses), so a client is never told a valid one is wrong.
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
        "description": "An email, written to MAIL_DIR as an .eml file or sent through SMTP_URL.",
        "additionalProperties": false,
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
