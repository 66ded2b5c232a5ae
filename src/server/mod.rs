//! The HTTP API: a tiny_http server shared by a fixed set of request threads, each with its own
//! Redis connection. tiny_http reads requests on its own per-connection threads and queues them;
//! our threads take them with a timeout so a shutdown is noticed within 250 ms.
//!
//! Hostile clients are bounded here: the listening socket carries read and write timeouts that
//! every accepted connection inherits (so an idle or trickling client is dropped), and the
//! patched tiny_http (vendor/tiny_http) serves at most MAX_CONNECTIONS at once, refusing the
//! rest with a 503 instead of a thread each.

mod reply;
pub mod routes;

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::app::Shared;
use crate::shutdown::Shutdown;
pub use reply::Reply;

pub struct HttpServer {
    server: Arc<tiny_http::Server>,
    threads: Vec<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` and starts the request threads.
    pub fn start(
        shared: &Arc<Shared>,
        addr: &str,
        shutdown: &Shutdown,
    ) -> Result<HttpServer, String> {
        let listener = listen(addr).map_err(|e| {
            format!("cannot listen on {addr}: {e}; is another process using the port?")
        })?;
        let refusal = Reply::error(
            503,
            format!(
                "too many open connections (MAX_CONNECTIONS={}); retry shortly",
                shared.config.max_connections
            ),
        )
        .with_header("Retry-After", "1")
        .into_raw_close();
        let limit = tiny_http::ConnectionLimit {
            max_connections: shared.config.max_connections,
            refusal,
            eager_body: shared.config.max_body_bytes,
        };
        let server = tiny_http::Server::from_listener_with_limit(listener, None, limit)
            .map_err(|e| format!("cannot serve HTTP on {addr}: {e}"))?;
        let server = Arc::new(server);
        let mut threads = Vec::new();
        for i in 0..shared.config.http_threads {
            let (server, shared, shutdown) = (server.clone(), shared.clone(), shutdown.clone());
            let t = std::thread::Builder::new()
                .name(format!("jobq-http-{i}"))
                .spawn(move || serve(&server, &shared, &shutdown))
                .map_err(|e| format!("cannot start an HTTP thread: {e}"))?;
            threads.push(t);
        }
        Ok(HttpServer { server, threads })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server
            .server_addr()
            .to_ip()
            .expect("bound to an IP address")
    }

    /// Waits for the request threads (which stop once shutdown is triggered), then closes the
    /// listening socket.
    pub fn stop(self) {
        self.server.unblock();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// How long a connection may stay silent, whether between requests or in the middle of one,
/// and how long a write to a client that does not read may block.
pub const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds `addr` with SO_REUSEADDR and the socket timeouts set on the listening socket, which
/// Linux copies to every accepted socket.
fn listen(addr: &str) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    use std::net::ToSocketAddrs;
    let addr = addr.to_socket_addrs()?.next().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "address resolves to nothing",
        )
    })?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_read_timeout(Some(SOCKET_TIMEOUT))?;
    socket.set_write_timeout(Some(SOCKET_TIMEOUT))?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

fn serve(server: &tiny_http::Server, shared: &Arc<Shared>, shutdown: &Shutdown) {
    let mut store = shared.backend.open();
    while !shutdown.is_triggered() {
        let mut request = match server.recv_timeout(Duration::from_millis(250)) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                log::error!("HTTP server stopped accepting requests: {e}");
                return;
            }
        };
        // A panic in a route is a bug; answer 500 and keep the thread serving.
        let reply = catch_unwind(AssertUnwindSafe(|| {
            routes::handle(&mut request, shared, &mut store)
        }))
        .unwrap_or_else(|_| {
            Reply::error(500, "internal error while handling this request; this is a bug in jobq, please report it")
        });
        // The client may have gone away; nothing to do about that.
        let _ = request.respond(reply.into_response());
    }
}
