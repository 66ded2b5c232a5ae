//! The RFC 5322 message of an `email` job, built with lettre's builder (headers, MIME parts,
//! encoded words and transfer encodings all done by a library that mail servers have seen a lot
//! of), and its `Message-ID`.

use super::payload::Mail;
use crate::handler::JobError;

/// The message-id of a job's email: stable across retries, so a receiver can spot a duplicate.
pub fn message_id(mail: &Mail, id: &str) -> String {
    let domain = mail.from.rsplit_once('@').map_or("localhost", |(_, d)| d);
    format!("<{id}@{domain}>")
}

/// Builds the RFC 5322 message. Fails only on input validation let through, so: permanent.
pub fn build(mail: &Mail, id: &str) -> Result<lettre::Message, JobError> {
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
