//! The `jobq` command line: which subcommand to run, `jobq health` (a probe for container
//! health checks, which need no curl in the image) and `jobq check-config`.
//!
//! Hand-rolled: five words and two flags do not need a parser crate.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

/// What the arguments ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Serve,
    Help,
    Version,
    Health,
    CheckConfig,
}

/// The text of `jobq --help`.
pub const USAGE: &str = "\
Usage: jobq [COMMAND]

A background-job server: jobs over HTTP, kept in Redis, run on a pool of threads.

Commands:
  serve          Start the server (the default when no command is given)
  health         Ask the server on HOST:PORT for GET /health; exit 0 when it answers
                 200 healthy, 1 otherwise (for container health checks)
  check-config   Validate the environment and HANDLERS_FILE as start-up does, print the
                 effective settings with secrets masked; exit 0 if valid, 2 if not
                 (Redis is not contacted)

Options:
  -h, --help     Print this help and exit
  -V, --version  Print the version and exit

Settings are environment variables (REDIS_URL, PORT, API_TOKEN, ...), listed with their
defaults in the \"Configuration\" section of README.md; HANDLERS_FILE's format is in
docs/job-types.md.
";

/// Reads the arguments after the program name. Anything unknown, or more than one command,
/// is an error naming the argument.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut args = args.into_iter();
    let Some(first) = args.next() else {
        return Ok(Command::Serve);
    };
    let command = match first.as_str() {
        "serve" => Command::Serve,
        "health" => Command::Health,
        "check-config" => Command::CheckConfig,
        "-h" | "--help" | "help" => Command::Help,
        "-V" | "--version" => Command::Version,
        other if other.starts_with('-') => return Err(format!("unknown option {other:?}")),
        other => return Err(format!("unknown command {other:?}")),
    };
    match args.next() {
        None => Ok(command),
        // `jobq health --help` and the like still get the help rather than an error.
        Some(a) if matches!(a.as_str(), "-h" | "--help") => Ok(Command::Help),
        Some(a) => Err(format!("unexpected argument {a:?} after {first:?}")),
    }
}

/// How long `jobq health` waits to connect, to send and for the answer, each.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

/// `jobq health`: GET /health from the server this environment configures. A server bound to
/// every interface (HOST=0.0.0.0 in a container) is asked on loopback.
pub fn health() -> ExitCode {
    // Only HOST and PORT are read, parsed exactly as the server parses them; a bad value in
    // any other variable is no reason to call a running server unhealthy.
    let config = jobq::Config::from_lookup(|name| match name {
        "HOST" | "PORT" => std::env::var(name).ok(),
        _ => None,
    });
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            println!("unhealthy: {}", e.problems.join("; "));
            return ExitCode::FAILURE;
        }
    };
    let target = format!("{}:{}", config.host, config.port);
    match probe(&target) {
        Ok(()) => {
            println!("healthy: jobq at http://{target} answered /health");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("unhealthy: jobq at http://{target}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sends `GET /health` to `target` (`host:port`) and checks for 200 `{"status":"healthy"}`.
pub fn probe(target: &str) -> Result<(), String> {
    let addr = target
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve the address: {e}"))?
        .next()
        .ok_or("the address resolves to nothing")?;
    let addr = SocketAddr::new(reachable(addr.ip()), addr.port());
    let mut stream = TcpStream::connect_timeout(&addr, HEALTH_TIMEOUT)
        .map_err(|e| format!("cannot connect: {e}"))?;
    stream
        .set_read_timeout(Some(HEALTH_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(HEALTH_TIMEOUT)))
        .map_err(|e| format!("cannot set socket timeouts: {e}"))?;
    let request =
        format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("cannot send the request: {e}"))?;
    // The answer is a few dozen bytes; the cap keeps a wrong service on the port from making
    // the probe read forever.
    let mut answer = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut answer)
        .map_err(|e| format!("no complete answer: {e}"))?;
    check_answer(&String::from_utf8_lossy(&answer))
}

/// The address to connect to for a server bound to `ip`: the unspecified address means
/// "every interface", which is not an address to connect to.
fn reachable(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// Checks a whole HTTP answer to `GET /health`.
fn check_answer(answer: &str) -> Result<(), String> {
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or("the answer is not HTTP")?;
    let status = head
        .lines()
        .next()
        .and_then(|l| {
            l.strip_prefix("HTTP/1.1 ")
                .or_else(|| l.strip_prefix("HTTP/1.0 "))
        })
        .and_then(|l| l.get(..3))
        .ok_or("the answer is not HTTP")?;
    let json: Option<serde_json::Value> = serde_json::from_str(body.trim()).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|j| j.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    match (status, field("status").as_deref()) {
        ("200", Some("healthy")) => Ok(()),
        (_, Some("unhealthy")) => Err(format!(
            "{status} unhealthy: {}",
            field("error").unwrap_or_default()
        )),
        _ => Err(format!(
            "answered {status} without {{\"status\":\"healthy\"}}: is jobq the program on this port?"
        )),
    }
}

/// `jobq check-config`: reads the environment and builds the job-type registry (which reads
/// HANDLERS_FILE and the SMTP and TLS settings) exactly as start-up does, without starting
/// anything or contacting Redis.
pub fn check_config() -> ExitCode {
    let config = match jobq::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprint!("jobq: {e}");
            eprintln!("See the \"Configuration\" section of README.md.");
            return ExitCode::from(2);
        }
    };
    // Written without println!, which panics when a reader stops early (`| head` closes the
    // pipe): what it read is all it wanted, and the exit status still says whether all is valid.
    let mut out = std::io::stdout().lock();
    for (name, value) in config.settings() {
        let _ = writeln!(out, "{name}={value}");
    }
    match jobq::builtin_registry(&config) {
        Ok(registry) => {
            let _ = writeln!(
                out,
                "configuration is valid; job types: {}",
                registry.types().join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("jobq: invalid configuration:\n  {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Command, String> {
        parse(a.iter().map(|s| s.to_string()))
    }

    #[test]
    fn commands_and_flags() {
        assert_eq!(args(&[]), Ok(Command::Serve));
        assert_eq!(args(&["serve"]), Ok(Command::Serve));
        assert_eq!(args(&["health"]), Ok(Command::Health));
        assert_eq!(args(&["check-config"]), Ok(Command::CheckConfig));
        for h in ["-h", "--help", "help"] {
            assert_eq!(args(&[h]), Ok(Command::Help), "{h}");
        }
        assert_eq!(args(&["health", "--help"]), Ok(Command::Help));
        for v in ["-V", "--version"] {
            assert_eq!(args(&[v]), Ok(Command::Version), "{v}");
        }
    }

    #[test]
    fn unknown_arguments_are_named() {
        assert!(args(&["--port"]).unwrap_err().contains("\"--port\""));
        assert!(args(&["start"]).unwrap_err().contains("\"start\""));
        let e = args(&["health", "extra"]).unwrap_err();
        assert!(e.contains("\"extra\""), "{e}");
        assert!(args(&["-v"]).is_err(), "only -V is the version");
    }

    #[test]
    fn usage_names_every_command_and_where_settings_are() {
        for word in [
            "serve",
            "health",
            "check-config",
            "--help",
            "--version",
            "README.md",
            "Configuration",
        ] {
            assert!(USAGE.contains(word), "{word} missing from the usage");
        }
    }

    #[test]
    fn answers_to_the_health_probe() {
        let ok =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"status\":\"healthy\"}\n";
        assert_eq!(check_answer(ok), Ok(()));
        let down = "HTTP/1.1 503 Service Unavailable\r\n\r\n{\"status\":\"unhealthy\",\"error\":\"Redis down\"}";
        let e = check_answer(down).unwrap_err();
        assert!(e.contains("503") && e.contains("Redis down"), "{e}");
        let other = "HTTP/1.1 200 OK\r\n\r\n<html></html>";
        assert!(check_answer(other).unwrap_err().contains("is jobq"));
        assert!(check_answer("SSH-2.0-OpenSSH").is_err());
    }

    #[test]
    fn a_server_on_every_interface_is_asked_on_loopback() {
        assert_eq!(
            reachable("0.0.0.0".parse().unwrap()),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            reachable("::".parse().unwrap()),
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        );
        let lan: IpAddr = "10.0.0.7".parse().unwrap();
        assert_eq!(reachable(lan), lan);
    }
}
