//! A server that accepts every connection, reads whatever the client sends and never answers a byte:
//! the peer that makes a client without time limits wait forever. Dropping it shuts every connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::thread_server::ThreadServer;

pub struct SilentServer {
    server: ThreadServer,
    accepted: Arc<AtomicUsize>,
}

impl SilentServer {
    /// Listens on a free port of 127.0.0.1.
    pub fn start() -> SilentServer {
        let accepted = Arc::new(AtomicUsize::new(0));
        let counting = Arc::clone(&accepted);
        let server = ThreadServer::start("silent server", move |mut stream, _stop| {
            counting.fetch_add(1, Ordering::SeqCst);
            // Ends when the client closes or the server, stopping, shuts the socket down.
            let _ = std::io::copy(&mut stream, &mut std::io::sink());
        });
        SilentServer { server, accepted }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr())
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// How many connections were accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}
