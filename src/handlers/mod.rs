//! Built-in job types, and the registry a plain `jobq` binary starts with.

pub mod diagnostic;
pub mod email;

use crate::config::Config;
use crate::worker::Registry;

/// The handlers the `jobq` binary registers: `email` always, the diagnostic types when
/// ENABLE_DIAGNOSTIC_JOBS is set. An embedding program starts from this and adds its own.
///
/// Fails with a message naming the variable when a handler's configuration cannot work.
pub fn builtin_registry(config: &Config) -> Result<Registry, String> {
    let mut r = Registry::new();
    r.register("email", email::Email::from_config(config));
    if config.enable_diagnostic_jobs {
        diagnostic::register(&mut r);
    }
    Ok(r)
}
