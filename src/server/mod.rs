//! The HTTP API: a tiny_http server shared by a fixed set of request threads, each with its own
//! Redis connection. tiny_http reads requests on its own per-connection threads and queues them;
//! our threads take them with a timeout so a shutdown is noticed within 250 ms.
//!
//! Hostile clients are bounded here: the listening socket carries read and write timeouts that
//! every accepted connection inherits (so an idle or trickling client is dropped), and the
//! patched tiny_http (vendor/tiny_http) serves at most MAX_CONNECTIONS at once, refusing the
//! rest with a 503 instead of a thread each.

mod auth;
mod cross_site;
mod dlq;
mod dlq_groups;
mod error;
mod explorer;
mod input;
mod jobs;
pub mod openapi;
mod ops;
mod queues;
mod reply;
mod router;
mod schedules;
mod subscriptions;
mod ui;
mod workers;
mod workflows;

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::context::Shared;
use crate::job::NewJob;
use crate::shutdown::Shutdown;
use crate::store::Stores;
pub use error::ApiError;
pub use reply::Reply;
use router::Step;

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
        let refusal = ApiError::Busy(format!(
            "too many open connections (MAX_CONNECTIONS={}); retry shortly",
            shared.config.max_connections
        ))
        .into_reply()
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

/// Most requests one thread takes from the queue at once. Job submissions among them are
/// created in one Redis round trip, so under load a thread spends one wait on Redis for many
/// requests instead of one each; when the queue is short nothing waits to fill a batch.
const MAX_GATHER: usize = 32;

fn serve(server: &tiny_http::Server, shared: &Arc<Shared>, shutdown: &Shutdown) {
    let mut store = shared.backend.open();
    let mut gathered = Vec::with_capacity(MAX_GATHER);
    let (mut creating, mut jobs) = (Vec::new(), Vec::new());
    while !shutdown.is_triggered() {
        match server.recv_timeout(Duration::from_millis(250)) {
            Ok(Some(r)) => gathered.push(r),
            Ok(None) => continue,
            Err(e) => {
                log::error!("HTTP server stopped accepting requests: {e}");
                return;
            }
        }
        while gathered.len() < MAX_GATHER {
            match server.try_recv() {
                Ok(Some(r)) => gathered.push(r),
                _ => break,
            }
        }
        // The gathered requests come from different connections: the patched tiny_http reads
        // a connection's next request only once its last one is answered, so the requests of
        // a pipelining client take effect in order even when two threads take them. Among
        // different connections no order is promised, so other requests are answered at once.
        for mut request in gathered.drain(..) {
            match guard(|| router::plan(&mut request, shared, &mut store)) {
                Ok(Step::Create(job)) => {
                    creating.push(request);
                    jobs.push(job);
                }
                Ok(Step::Reply(reply)) | Err(reply) => respond(request, reply),
            }
        }
        create_gathered(&mut creating, &mut jobs, shared, &mut store);
    }
}

/// Creates the gathered submissions in one round trip and answers their requests.
fn create_gathered(
    requests: &mut Vec<tiny_http::Request>,
    jobs: &mut Vec<NewJob>,
    shared: &Shared,
    store: &mut Stores,
) {
    if jobs.is_empty() {
        return;
    }
    let replies = guard(|| jobs::create_gathered(jobs, shared, store))
        .unwrap_or_else(|reply| vec![reply; jobs.len()]);
    for (request, reply) in requests.drain(..).zip(replies) {
        respond(request, reply);
    }
    jobs.clear();
}

/// Runs route code, turning a panic (a bug) into a 500 so the thread keeps serving.
fn guard<T>(f: impl FnOnce() -> T) -> Result<T, Reply> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| {
        ApiError::Internal(
            "internal error while handling this request; this is a bug in jobq, please report it"
                .into(),
        )
        .into_reply()
    })
}

fn respond(request: tiny_http::Request, reply: Reply) {
    // The client may have gone away; nothing to do about that.
    let _ = request.respond(reply.into_response());
}
