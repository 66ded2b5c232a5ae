//! The HTTP API: a tiny_http server shared by a fixed set of request threads, each with its own
//! Redis connection. tiny_http reads requests on its own per-connection threads and queues them;
//! our threads take them with a timeout so a shutdown is noticed within 250 ms.

mod reply;
mod routes;

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
        let server = tiny_http::Server::http(addr).map_err(|e| {
            format!("cannot listen on {addr}: {e}; is another process using the port?")
        })?;
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
