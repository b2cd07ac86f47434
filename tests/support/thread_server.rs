//! The thread-per-connection TCP server under the test git server and the CodeCommit stand-in (and the
//! benchmark's git server): listens on 127.0.0.1, gives each connection a thread of its own, and when
//! dropped stops accepting, shuts every open connection down and waits for the threads to end.

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};

/// Locks a mutex, going on with the data even if a thread panicked while holding it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether the server is stopping; connection handlers check it between requests.
#[derive(Default)]
pub struct Stop(AtomicBool);

impl Stop {
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Default)]
struct Connections {
    stop: Stop,
    next_id: AtomicU64,
    /// Open connections (a clone of each socket), to shut them down when the server stops.
    open: Mutex<HashMap<u64, TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A listening server. Dropping it stops it.
pub struct ThreadServer {
    addr: SocketAddr,
    connections: Arc<Connections>,
    accept_thread: Option<JoinHandle<()>>,
}

impl ThreadServer {
    /// Listens on a free port of 127.0.0.1 and serves every connection with `serve` on a thread
    /// named after `name`. Returns once listening.
    pub fn start<F>(name: &str, serve: F) -> ThreadServer
    where
        F: Fn(TcpStream, &Stop) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:0 for the {name}: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("local address of the {name}'s listener: {e}"));
        let connections = Arc::new(Connections::default());
        let accepting = Arc::clone(&connections);
        let thread_name = name.replace(' ', "-");
        let accept_thread = thread::Builder::new()
            .name(format!("{thread_name}-accept-{}", addr.port()))
            .spawn(move || accept_loop(listener, accepting, Arc::new(serve), thread_name))
            .unwrap_or_else(|e| panic!("spawn the {name}'s accept thread: {e}"));
        ThreadServer {
            addr,
            connections,
            accept_thread: Some(accept_thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

fn accept_loop<F>(
    listener: TcpListener,
    connections: Arc<Connections>,
    serve: Arc<F>,
    thread_name: String,
) where
    F: Fn(TcpStream, &Stop) + Send + Sync + 'static,
{
    for conn in listener.incoming() {
        if connections.stop.requested() {
            break;
        }
        let Ok(stream) = conn else { continue };
        let Ok(clone) = stream.try_clone() else {
            continue;
        };
        let id = connections.next_id.fetch_add(1, Ordering::SeqCst);
        lock(&connections.open).insert(id, clone);
        let serving = Arc::clone(&connections);
        let serve = Arc::clone(&serve);
        let spawned = thread::Builder::new()
            .name(format!("{thread_name}-conn-{id}"))
            .spawn(move || {
                serve(stream, &serving.stop);
                lock(&serving.open).remove(&id);
            });
        match spawned {
            Ok(handle) => lock(&connections.threads).push(handle),
            Err(_) => {
                lock(&connections.open).remove(&id);
            }
        }
    }
}

impl Drop for ThreadServer {
    fn drop(&mut self) {
        self.connections.stop.0.store(true, Ordering::SeqCst);
        // Wake the accept loop up; it sees the stop flag and ends.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        // No new connection can appear now. Shutting the sockets down makes every blocked read or
        // write of a connection thread fail, so the threads (and any child processes) end.
        for stream in lock(&self.connections.open).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let threads: Vec<JoinHandle<()>> = lock(&self.connections.threads).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}
