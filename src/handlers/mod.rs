//! Built-in job types, and the registry a plain `jobq` binary starts with.

pub mod analytics;
pub mod command;
pub mod diagnostic;
pub mod email;
#[cfg(feature = "image")]
pub mod image_resize;
mod payload;
pub mod report;
#[cfg(feature = "webhook")]
pub mod webhook;

use std::io::Write;
use std::path::Path;

use crate::config::Config;
use crate::handler::JobError;
use crate::handler::Registry;

/// The handlers the `jobq` binary registers: `email`, `analytics`, `report`, `image_resize`
/// (with the `image` feature), `webhook` (with the `webhook` feature), the diagnostic types
/// when ENABLE_DIAGNOSTIC_JOBS is set, and the command types of HANDLERS_FILE. An embedding
/// program starts from this and adds its own.
///
/// Fails, with a message naming the variable, when SMTP_URL cannot be used (the SMTP client
/// cannot be set up, or this build lacks the `smtp` feature). HANDLERS_FILE was read and
/// checked with the configuration.
pub fn builtin_registry(config: &Config) -> Result<Registry, String> {
    let mut r = Registry::new();
    r.register(
        "email",
        email::Email::new(
            config.smtp_url.as_ref(),
            std::time::Duration::from_secs(config.smtp_timeout_secs),
            &config.mail_dir,
            &config.mail_from,
        )?,
    );
    #[cfg(feature = "image")]
    r.register(
        "image_resize",
        image_resize::ImageResize::new(&config.image_dir),
    );
    #[cfg(feature = "webhook")]
    r.register(
        "webhook",
        webhook::Webhook::new(
            config.webhook_allow.clone(),
            config.webhook_secret.as_deref(),
        ),
    );
    // Their Redis connections come with each job (`JobContext`), from the process's one pool;
    // the Redis settings are checked here only so a bad one still stops start-up with exit 2.
    crate::store::Backend::check(config).map_err(|e| e.to_string())?;
    r.register("analytics", analytics::Analytics::new(config));
    r.register("report", report::Report::new(config));
    if config.enable_diagnostic_jobs {
        diagnostic::register(&mut r);
    }
    for spec in config.handlers_file.iter().flat_map(|f| &f.commands) {
        r.register(
            &spec.kind,
            command::Command::new(spec.clone(), config.cancel_grace()),
        );
    }
    Ok(r)
}

/// Writes `bytes` to `path` through a temp file in the same folder and a rename, so a reader
/// never sees a half-written file. The temp name is random and created new (never through an
/// existing file or link), so two runs of one job cannot write into each other's temp file. A
/// failure is transient (a full disk may be cleared).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), JobError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        JobError::transient(format!("cannot write {}: {e}", path.display()))
    })
}
