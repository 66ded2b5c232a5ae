//! The email settings' types: [`SmtpUrl`] (what `SMTP_URL` says, parsed once when the
//! configuration is read) and [`is_address`], the one check of a plain mail address that both
//! `MAIL_FROM` and the `email` job's payload use.

use std::str::FromStr;

use super::mask_url;

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

/// Where `SMTP_URL` points: `smtp://[user[:password]@]host[:port][?tls=required]` or
/// `smtps://…`. User and password are percent-decoded (`%40` for `@` in a user name).
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    /// `smtps://`: TLS from the first byte (port 465 by default).
    pub implicit_tls: bool,
    /// Refuse to send when the server does not offer STARTTLS: `?tls=required`, and the default
    /// for an `smtp://` URL with a password (`?tls=opportunistic` allows plain text).
    pub require_starttls: bool,
    /// The SMTP server's host name or address.
    pub host: String,
    /// Its port (587 for `smtp://`, 465 for `smtps://` when none is given).
    pub port: u16,
    /// User name for AUTH, percent-decoded.
    pub user: Option<String>,
    /// Password for AUTH, percent-decoded; never logged or shown.
    pub password: Option<String>,
    /// The URL as given, for [`SmtpUrl::masked`]: `jobq check-config` and the start-up line show
    /// the operator's own spelling, password masked, not a rebuilt one.
    source: String,
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
            source: raw.to_string(),
        })
    }

    /// The URL as given, password masked: what [`super::Config::settings`] shows.
    pub fn masked(&self) -> String {
        mask_url(&self.source)
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

#[cfg(test)]
mod tests {
    use super::*;

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
