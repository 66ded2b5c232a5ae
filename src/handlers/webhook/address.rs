//! Where a webhook may go: the address classifier ([`non_public`]), the check of a URL's host
//! against WEBHOOK_ALLOW and the private-address rule ([`check_destination`], at submission and
//! again before sending), and the resolver the HTTP client connects through
//! ([`GuardedResolver`]).
//!
//! The resolver is the part that closes DNS rebinding: a name is resolved once, here, every
//! address it gives is checked, and the client connects only to the addresses this resolver
//! returned. Nothing resolves the name a second time between the check and the connection.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

use crate::config::webhook::{Allowed, Host, WebhookAllow};

/// Why `ip` is not a public internet address, or None when it is. IPv4 addresses inside IPv6
/// (mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:aabb:ccdd::`) are judged by
/// the IPv4 address they lead to.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, ..) => "an unspecified (\"this network\") address",
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => "a private address (RFC 1918)",
        (100, 64..=127, _) => "a shared (carrier-grade NAT) address",
        (127, ..) => "a loopback address",
        (169, 254, _) => "a link-local address (where cloud metadata services answer)",
        (192, 0, 0) => "an IETF protocol address",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (198, 18..=19, _) => "a benchmarking address",
        (224..=239, ..) => "a multicast address",
        _ if ip.is_broadcast() => "the broadcast address",
        (240..=255, ..) => "a reserved address",
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return non_public_v4(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    Some(match s {
        _ if ip.is_unspecified() => "an unspecified address",
        _ if ip.is_loopback() => "a loopback address",
        // ::a.b.c.d, deprecated "IPv4-compatible" addresses: nothing public uses them.
        [0, 0, 0, 0, 0, 0, ..] => "an IPv4-compatible (deprecated) address",
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => return non_public_v4(embedded(hi, lo)),
        [0x64, 0xff9b, 1, ..] => "a local-use NAT64 address",
        [0x2002, hi, lo, ..] => return non_public_v4(embedded(hi, lo)),
        [0x100, 0, 0, 0, ..] => "a discard-only address",
        [0x2001, 0xdb8, ..] => "a documentation address",
        [x, ..] if x & 0xfe00 == 0xfc00 => "a unique local (private) address",
        [x, ..] if x & 0xffc0 == 0xfe80 => "a link-local address",
        [x, ..] if x & 0xffc0 == 0xfec0 => "a site-local (deprecated, private) address",
        [x, ..] if x & 0xff00 == 0xff00 => "a multicast address",
        _ => return None,
    })
}

/// How a destination that may be called is allowed: whether its addresses may be private.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Public addresses only.
    Public,
    /// Listed exactly in WEBHOOK_ALLOW: any address.
    Any,
}

/// Whether `host`:`port` may be called under `allow`: not when WEBHOOK_ALLOW is set and does not
/// list it, nor when it is a literal address that is not public and not listed exactly. A
/// name's addresses are checked when it is resolved ([`GuardedResolver`]).
pub fn check_destination(
    host: &Host,
    port: u16,
    allow: Option<&WebhookAllow>,
) -> Result<Reach, String> {
    let reach = match allow.map(|a| a.permits(host, port)) {
        None | Some(Allowed::ByPattern) => Reach::Public,
        Some(Allowed::Explicitly) => Reach::Any,
        Some(Allowed::No) => {
            return Err(format!(
                "{host}:{port} is not a destination WEBHOOK_ALLOW permits; ask the operator to add it (host or host:port) if webhooks should reach it"
            ))
        }
    };
    if let (Host::Ip(ip), Reach::Public) = (host, reach) {
        if let Some(why) = non_public(*ip) {
            return Err(format!(
                "{host} is {why}; webhooks reach such addresses only when WEBHOOK_ALLOW lists the host exactly (e.g. WEBHOOK_ALLOW={host}:{port})"
            ));
        }
    }
    Ok(reach)
}

/// A destination refused without a connection: the error [`GuardedResolver`] gives the HTTP
/// client, which hands it back as `ureq::Error::Other` for the handler to tell apart from a
/// network failure (this one is permanent).
#[derive(Debug)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refused(message: String) -> ureq::Error {
    ureq::Error::Other(Box::new(Refused(message)))
}

/// The resolver of the webhook client: ureq's own (the system's resolver, with ureq's timeout),
/// then every address checked with [`non_public`] unless WEBHOOK_ALLOW lists the host exactly.
/// One address that is not public refuses the whole name, rather than trying the others: a
/// name that mixes them is a rebinding attempt or a misconfiguration, and either way the
/// operator should decide.
#[derive(Debug)]
pub struct GuardedResolver {
    /// WEBHOOK_ALLOW, to tell a host listed exactly (any address) from the others.
    allow: Option<WebhookAllow>,
    /// ureq's own: the system's resolver, on a thread of its own when a timeout applies.
    inner: DefaultResolver,
}

impl GuardedResolver {
    pub fn new(allow: Option<WebhookAllow>) -> GuardedResolver {
        GuardedResolver {
            allow,
            inner: DefaultResolver::default(),
        }
    }
}

impl Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let authority = uri
            .authority()
            .ok_or_else(|| ureq::Error::BadUri(format!("{uri} has no host")))?;
        let host = Host::parse(authority.host()).map_err(refused)?;
        let port = authority
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let reach = check_destination(&host, port, self.allow.as_ref()).map_err(refused)?;
        let addrs = self.inner.resolve(uri, config, timeout)?;
        if reach == Reach::Public {
            for addr in addrs.iter() {
                if let Some(why) = non_public(addr.ip()) {
                    return Err(refused(format!(
                        "{host} resolves to {}, {why}; no connection was made. If webhooks are meant to reach it, add the host to WEBHOOK_ALLOW (e.g. WEBHOOK_ALLOW={host}:{port})",
                        addr.ip()
                    )));
                }
            }
        }
        log::debug!("webhook: {host}:{port} resolved to {:?}", &addrs[..]);
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> Option<&'static str> {
        non_public(s.parse().unwrap())
    }

    #[test]
    fn addresses_are_classified() {
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "169.253.0.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(class(public), None, "{public}");
        }
        let cases = [
            ("0.0.0.0", "unspecified"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.254", "carrier-grade NAT"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("169.254.169.254", "cloud metadata"),
            ("192.0.0.8", "IETF"),
            ("198.51.100.7", "documentation"),
            ("198.18.0.1", "benchmarking"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::ffff:0.0.0.0", "unspecified"),
            ("::127.0.0.1", "IPv4-compatible"),
            ("64:ff9b::7f00:1", "loopback"),
            ("64:ff9b:1::1", "NAT64"),
            ("2002:a00:1::", "private"),
            ("fc00::1", "unique local"),
            ("fd12:3456::1", "unique local"),
            ("fe80::1", "link-local"),
            ("febf::1", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("100::1", "discard"),
            ("2001:db8::1", "documentation"),
        ];
        for (ip, want) in cases {
            let got = class(ip).unwrap_or_else(|| panic!("{ip} counted as public"));
            assert!(got.contains(want), "{ip}: {got:?} does not say {want:?}");
        }
    }

    #[test]
    fn destinations_need_the_allow_list_for_private_addresses() {
        let h = |s: &str| Host::parse(s).unwrap();
        assert_eq!(
            check_destination(&h("hooks.example.com"), 443, None),
            Ok(Reach::Public)
        );
        assert_eq!(
            check_destination(&h("localhost"), 80, None),
            Ok(Reach::Public)
        );
        let e = check_destination(&h("127.0.0.1"), 8080, None).unwrap_err();
        assert!(
            e.contains("loopback") && e.contains("WEBHOOK_ALLOW=127.0.0.1:8080"),
            "{e}"
        );
        let e = check_destination(&h("[::ffff:a9fe:a9fe]"), 80, None).unwrap_err();
        assert!(e.contains("cloud metadata"), "{e}");

        let allow = WebhookAllow::parse("127.0.0.1:8080,*.example.com,[fd00::1]").unwrap();
        let a = Some(&allow);
        assert_eq!(check_destination(&h("127.0.0.1"), 8080, a), Ok(Reach::Any));
        assert_eq!(check_destination(&h("[fd00::1]"), 9, a), Ok(Reach::Any));
        assert_eq!(
            check_destination(&h("in.example.com"), 443, a),
            Ok(Reach::Public)
        );
        let e = check_destination(&h("127.0.0.1"), 8081, a).unwrap_err();
        assert!(
            e.contains("127.0.0.1:8081 is not a destination WEBHOOK_ALLOW permits"),
            "{e}"
        );
        let e = check_destination(&h("other.org"), 443, a).unwrap_err();
        assert!(e.contains("WEBHOOK_ALLOW"), "{e}");
    }
}
