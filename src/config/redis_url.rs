//! REDIS_URL's two forms that name several hosts: `redis+cluster://` (seed nodes of a Redis
//! Cluster) and `redis+sentinel://` (the Sentinels that watch a master, and the master's name),
//! each also with `rediss+` for TLS.
//!
//! The redis crate's URL parser knows one host only, so these are read here: once when the
//! configuration is checked (a bad URL is reported with every other problem) and again when the
//! store builds its connector (`store/topology.rs`), from the same text.

/// What the hosts of a [`MultiHostUrl`] are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// Seed nodes of a Redis Cluster: any one that answers says which node owns jobq's slot.
    Cluster,
    /// Sentinels watching the master named `master`.
    Sentinel { master: String },
}

/// A parsed `redis+cluster://` or `redis+sentinel://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiHostUrl {
    pub topology: Topology,
    /// `rediss+…`: TLS to every host, with REDIS_CA_CERT and the client certificate as for
    /// `rediss://`.
    pub tls: bool,
    /// Credentials for the data nodes (the cluster's nodes, the Sentinels' master); Sentinels
    /// themselves are asked without credentials.
    pub username: Option<String>,
    pub password: Option<String>,
    /// At least one `(host, port)`.
    pub hosts: Vec<(String, u16)>,
    /// The database (`?db=N`, Sentinel only: a Redis Cluster has database 0 alone).
    pub db: i64,
}

/// The usual port of a cluster node.
const REDIS_PORT: u16 = 6379;
/// The usual port of a Sentinel.
const SENTINEL_PORT: u16 = 26379;

/// `None` when `url` is not of a multi-host scheme (it is then a plain redis URL); otherwise
/// the parsed URL, or what is wrong with it (without the password).
pub fn parse_multi_host(url: &str) -> Option<Result<MultiHostUrl, String>> {
    let (scheme, rest) = url.split_once("://")?;
    let (tls, cluster) = match scheme.to_ascii_lowercase().as_str() {
        "redis+cluster" => (false, true),
        "rediss+cluster" => (true, true),
        "redis+sentinel" => (false, false),
        "rediss+sentinel" => (true, false),
        _ => return None,
    };
    Some(parse(rest, tls, cluster))
}

fn parse(rest: &str, tls: bool, cluster: bool) -> Result<MultiHostUrl, String> {
    let form = if cluster {
        "expected redis+cluster://[user:pass@]host:port,host:port,..."
    } else {
        "expected redis+sentinel://[user:pass@]host:port,host:port,.../mastername[?db=N]"
    };
    // The credentials end at the last '@', so a password may hold '@', '/' or '?'.
    let (cred, after) = match rest.rfind('@') {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    let (username, password) = match cred {
        None => (None, None),
        Some(c) => {
            let (u, p) = match c.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (c, None),
            };
            let u = percent_decode(u).ok_or("the user name has a bad %-escape")?;
            let p = p
                .map(|p| percent_decode(p).ok_or("the password has a bad %-escape"))
                .transpose()?;
            ((!u.is_empty()).then_some(u), p.filter(|p| !p.is_empty()))
        }
    };
    let end = after.find(['/', '?']).unwrap_or(after.len());
    let (hosts_text, tail) = after.split_at(end);
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let default_port = if cluster { REDIS_PORT } else { SENTINEL_PORT };
    let hosts = hosts_text
        .split(',')
        .map(|h| host_port(h.trim(), default_port))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{e}; {form}"))?;
    let mut db = 0;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("db", n)) if !cluster => {
                db = n
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| format!("db={n:?}: expected a database number"))?;
            }
            _ => return Err(format!("unknown parameter {pair:?}; {form}")),
        }
    }
    let path = path.trim_start_matches('/');
    let topology = if cluster {
        // `/0` is allowed as a plain URL would write it; a cluster has no other database.
        if !path.is_empty() && path != "0" {
            return Err(format!(
                "a Redis Cluster has database 0 only, not {path:?}; {form}"
            ));
        }
        Topology::Cluster
    } else {
        if path.is_empty() || path.contains('/') {
            return Err(format!("the master's name is missing; {form}"));
        }
        Topology::Sentinel {
            master: percent_decode(path).ok_or("the master's name has a bad %-escape")?,
        }
    };
    Ok(MultiHostUrl {
        topology,
        tls,
        username,
        password,
        hosts,
        db,
    })
}

/// `host:port`, `host` (the default port) or `[v6]:port`.
fn host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("host {text:?} lacks its ']'"))?;
        (h, after.strip_prefix(':'))
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(format!("empty host in {text:?}"));
    }
    let port = match port {
        None => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("host {text:?}: the port is not 1-65535"))?,
    };
    Ok((host.to_string(), port))
}

/// `%XX` escapes decoded, as in the userinfo of any URL; None for a bad escape or bytes that
/// are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> MultiHostUrl {
        parse_multi_host(url).expect("multi-host").expect("valid")
    }

    fn bad(url: &str) -> String {
        parse_multi_host(url)
            .expect("multi-host")
            .expect_err("invalid")
    }

    #[test]
    fn plain_urls_are_not_multi_host() {
        for url in [
            "redis://h:6379",
            "rediss://h",
            "unix:///tmp/r.sock",
            "h:6379",
        ] {
            assert!(parse_multi_host(url).is_none(), "{url}");
        }
    }

    #[test]
    fn cluster_urls() {
        let u = ok("redis+cluster://10.0.0.1:7000,10.0.0.2:7001,node3");
        assert_eq!(u.topology, Topology::Cluster);
        assert!(!u.tls);
        assert_eq!(
            u.hosts,
            vec![
                ("10.0.0.1".into(), 7000),
                ("10.0.0.2".into(), 7001),
                ("node3".into(), 6379)
            ]
        );
        assert_eq!((u.username, u.password, u.db), (None, None, 0));
        let u = ok("rediss+cluster://app:p%40ss@[::1]:7000,h:7001/0");
        assert!(u.tls);
        assert_eq!(u.username.as_deref(), Some("app"));
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!(u.hosts[0], ("::1".into(), 7000));
        // A raw '@' in the password: the credentials end at the last one.
        let u = ok("redis+cluster://:a@b@h:7000");
        assert_eq!((u.username, u.password.as_deref()), (None, Some("a@b")));
    }

    #[test]
    fn sentinel_urls() {
        let u = ok("redis+sentinel://:pw@s1:26379,s2:26380,s3/mymaster?db=2");
        assert_eq!(
            u.topology,
            Topology::Sentinel {
                master: "mymaster".into()
            }
        );
        assert_eq!(u.hosts.len(), 3);
        assert_eq!(u.hosts[2], ("s3".into(), 26379));
        assert_eq!(u.password.as_deref(), Some("pw"));
        assert_eq!(u.db, 2);
        assert!(ok("rediss+sentinel://s1/m").tls);
    }

    #[test]
    fn bad_urls_say_what_is_wrong_without_the_password() {
        assert!(bad("redis+sentinel://s1:26379").contains("master's name is missing"));
        assert!(bad("redis+sentinel://s1:26379/").contains("master's name is missing"));
        assert!(bad("redis+cluster://h:7000/3").contains("database 0 only"));
        assert!(bad("redis+cluster://h:7000?db=1").contains("unknown parameter"));
        assert!(bad("redis+cluster://h:99999").contains("not 1-65535"));
        assert!(bad("redis+cluster://h:7000,,h2").contains("empty host"));
        assert!(bad("redis+cluster://").contains("empty host"));
        assert!(bad("redis+sentinel://s/m?db=x").contains("database number"));
        let e = bad("redis+cluster://u:secret@h:0");
        assert!(!e.contains("secret"), "{e}");
    }
}
