//! The settings of `webhook` jobs: WEBHOOK_ALLOW, the destinations webhooks may reach, parsed
//! into a typed list ([`WebhookAllow`]) and matched against a URL's host and port; and [`Host`],
//! a URL host in the one spelling both sides compare (a lower-case name without a final dot, or
//! an IP address).
//!
//! Matching says *how* a destination is allowed ([`Allowed`]): only a host named exactly (not a
//! `*.domain` pattern) may lead to a private, loopback or link-local address, so a wildcard
//! entry cannot be turned into a way into the internal network by whoever controls DNS below it.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// A URL's host: a DNS name (lower case, no final dot) or an IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A DNS name such as `hooks.example.com`.
    Name(String),
    /// An IPv4 or IPv6 literal (IPv6 written in brackets in a URL).
    Ip(IpAddr),
}

impl Host {
    /// Reads a host as a URL writes it: `example.com`, `192.0.2.7` or `[2001:db8::1]`. Names are
    /// letters, digits and `-` in dot-separated labels (an internationalised name in its
    /// `xn--` form). A last label that starts with a digit must be part of a dotted-quad IPv4
    /// address: the C library also reads `127.1`, `0x7f.1` or `2130706433` as addresses, and no
    /// top-level domain starts with a digit, so such a host is refused rather than guessed at.
    pub fn parse(raw: &str) -> Result<Host, String> {
        if let Some(inner) = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            return inner
                .parse::<Ipv6Addr>()
                .map(|ip| Host::Ip(IpAddr::V6(ip)))
                .map_err(|_| {
                    format!("{raw:?} is not an IPv6 address (zone ids are not supported)")
                });
        }
        if let Ok(ip) = raw.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        let name = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
        let labels_ok = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !labels_ok {
            return Err(format!(
                "{raw:?} is not a host name (letters, digits and '-' in dot-separated labels), an IPv4 address or an [IPv6] address"
            ));
        }
        if name
            .rsplit('.')
            .next()
            .is_some_and(|last| last.starts_with(|c: char| c.is_ascii_digit()))
        {
            return Err(format!(
                "{raw:?} is neither a host name nor an IPv4 address written as four decimal numbers (like 192.0.2.7)"
            ));
        }
        Ok(Host::Name(name))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(n),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// How WEBHOOK_ALLOW lets a destination through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// Not listed: refused.
    No,
    /// Matched by a `*.domain` entry: public addresses only.
    ByPattern,
    /// The host is listed by name or address (with this port or any): its addresses may be
    /// private, loopback or link-local too.
    Explicitly,
}

/// One entry of WEBHOOK_ALLOW.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// `host` or `host:port`: exactly this host.
    Exact(Host, Option<u16>),
    /// `*.domain` or `*.domain:port`: any name ending in `.domain` (not `domain` itself); held
    /// as the suffix with its dot.
    Suffix(String, Option<u16>),
}

/// WEBHOOK_ALLOW: the destinations `webhook` jobs may reach. Parsed once when the configuration
/// is read; [`WebhookAllow::parse`] makes one from a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAllow {
    entries: Vec<Entry>,
}

impl WebhookAllow {
    /// Reads a comma-separated list of `host`, `host:port`, `*.domain` and `*.domain:port`
    /// entries (IPv6 addresses in brackets: `[fd00::5]:8443`). Every bad entry is reported.
    pub fn parse(raw: &str) -> Result<WebhookAllow, Vec<String>> {
        let mut entries = Vec::new();
        let mut problems = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match parse_entry(item) {
                Ok(e) => entries.push(e),
                Err(e) => problems.push(format!("{item:?}: {e}")),
            }
        }
        if entries.is_empty() && problems.is_empty() {
            problems.push("lists no host".into());
        }
        if problems.is_empty() {
            Ok(WebhookAllow { entries })
        } else {
            Err(problems)
        }
    }

    /// Whether a request to `host`:`port` is allowed, and how.
    pub fn permits(&self, host: &Host, port: u16) -> Allowed {
        let port_ok = |p: &Option<u16>| p.is_none_or(|p| p == port);
        let mut best = Allowed::No;
        for e in &self.entries {
            match e {
                Entry::Exact(h, p) if h == host && port_ok(p) => return Allowed::Explicitly,
                Entry::Suffix(s, p) if port_ok(p) => {
                    if matches!(host, Host::Name(n) if n.ends_with(s.as_str())) {
                        best = Allowed::ByPattern;
                    }
                }
                _ => {}
            }
        }
        best
    }
}

impl fmt::Display for WebhookAllow {
    /// The entries as parsed (names in lower case), comma-separated: what `jobq check-config`
    /// shows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let port = match e {
                Entry::Exact(h, p) => {
                    write!(f, "{h}")?;
                    p
                }
                Entry::Suffix(s, p) => {
                    write!(f, "*{s}")?;
                    p
                }
            };
            if let Some(p) = port {
                write!(f, ":{p}")?;
            }
        }
        Ok(())
    }
}

fn parse_entry(item: &str) -> Result<Entry, String> {
    if item == "*" {
        return Err(
            "\"*\" would allow every host; leave WEBHOOK_ALLOW unset to allow every public host"
                .into(),
        );
    }
    // A bare IPv6 address has colons but no port.
    if let Ok(ip) = item.parse::<Ipv6Addr>() {
        return Ok(Entry::Exact(Host::Ip(IpAddr::V6(ip)), None));
    }
    let (host, port) = match item.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && (!h.contains(':') || h.ends_with(']')) => {
            let port = p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{p:?} is not a port 1-65535"))?;
            (h, Some(port))
        }
        Some(_) if !item.starts_with('[') => {
            return Err("write an IPv6 address in brackets, e.g. [fd00::5]:8443".into())
        }
        _ => (item, None),
    };
    if let Some(domain) = host.strip_prefix("*.") {
        return match Host::parse(domain)? {
            Host::Name(n) => Ok(Entry::Suffix(format!(".{n}"), port)),
            Host::Ip(_) => {
                Err("a pattern \"*.\" needs a domain name after it, not an address".into())
            }
        };
    }
    if host.contains('*') {
        return Err("\"*\" may only start an entry, as in *.example.com".into());
    }
    Ok(Entry::Exact(Host::parse(host)?, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> Host {
        Host::parse(s).unwrap()
    }

    #[test]
    fn hosts_are_read_in_one_spelling() {
        assert_eq!(
            host("Hooks.Example.COM."),
            Host::Name("hooks.example.com".into())
        );
        assert_eq!(host("192.0.2.7"), Host::Ip("192.0.2.7".parse().unwrap()));
        assert_eq!(host("[::1]"), Host::Ip("::1".parse().unwrap()));
        assert_eq!(host("[0:0::1]").to_string(), "[::1]");
        assert_eq!(
            host("xn--bcher-kva.example").to_string(),
            "xn--bcher-kva.example"
        );
        for bad in [
            "",
            "a..b",
            "-a.com",
            "a_b.com",
            "127.1",
            "0x7f.0.0.1",
            "2130706433",
            "1.2.3.4.5",
            "[fe80::1%25eth0]",
            "[1.2.3.4]",
            "bücher.example",
            "a b",
        ] {
            assert!(Host::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn entries_are_parsed_and_shown() {
        let a = WebhookAllow::parse(
            " hooks.example.com , *.Partner.example:8443,10.0.0.5:9000,[fd00::5]:443,::1,",
        )
        .unwrap();
        assert_eq!(
            a.to_string(),
            "hooks.example.com,*.partner.example:8443,10.0.0.5:9000,[fd00::5]:443,[::1]"
        );
        let err = WebhookAllow::parse("ok.example,*,a.*.b,x:0,fd00::5:99999x,[::1]:x,*.10.0.0.1")
            .unwrap_err();
        assert_eq!(err.len(), 6, "{err:?}");
        assert!(err[0].contains("unset"), "{err:?}");
        assert!(WebhookAllow::parse(" , ").unwrap_err()[0].contains("no host"));
        assert!(WebhookAllow::parse("host:port").unwrap_err()[0].contains("port"));
    }

    #[test]
    fn matching_tells_exact_entries_from_patterns() {
        let a = WebhookAllow::parse("hooks.example.com,*.partner.example,127.0.0.1:8080,[::1]")
            .unwrap();
        let p = |h: &str, port| a.permits(&host(h), port);
        assert_eq!(p("hooks.example.com", 443), Allowed::Explicitly);
        assert_eq!(p("HOOKS.example.com.", 80), Allowed::Explicitly);
        assert_eq!(p("a.hooks.example.com", 443), Allowed::No);
        assert_eq!(p("api.partner.example", 443), Allowed::ByPattern);
        assert_eq!(p("x.y.partner.example", 443), Allowed::ByPattern);
        assert_eq!(p("partner.example", 443), Allowed::No);
        assert_eq!(p("evilpartner.example", 443), Allowed::No);
        assert_eq!(p("127.0.0.1", 8080), Allowed::Explicitly);
        assert_eq!(p("127.0.0.1", 8081), Allowed::No);
        assert_eq!(p("[0::1]", 1), Allowed::Explicitly);
        assert_eq!(p("localhost", 8080), Allowed::No);
        // An exact entry wins over a pattern that also matches.
        let a = WebhookAllow::parse("*.example.com,in.example.com:9000").unwrap();
        assert_eq!(
            a.permits(&host("in.example.com"), 9000),
            Allowed::Explicitly
        );
        assert_eq!(a.permits(&host("in.example.com"), 443), Allowed::ByPattern);
    }
}
