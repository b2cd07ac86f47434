//! A fault-injecting TCP proxy for the soak tests: placed between the binary and a test git server, it
//! forwards every connection byte for byte and, when faults are switched on, gives some connections one
//! fault at a seeded random byte offset of one direction:
//! - **cut**: both sockets are shut down there, mid-request or mid-response;
//! - **stall**: nothing moves for a bounded time, then the stream goes on or is cut;
//! - **corrupt**: one byte of a pack (counted from the `PACK` signature) is flipped, so only pack data is
//!   damaged, never the HTTP framing before it or the ref names and ids the protocol lists.
//!
//! Faults are drawn per connection, in arrival order, from a splitmix64 generator seeded by the test, so
//! a seed replays the same faults as long as connections arrive in the same order (one repository at a
//! time). The proxy also counts the bytes it has forwarded, so a test can act on observed progress
//! ([`FaultProxy::wait_until_forwarded`]) instead of on time. Thread per connection, standard library only.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::thread_server::{Stop, ThreadServer};

/// How long connecting to the upstream server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a stall looks whether the proxy is stopping.
const STALL_SLICE: Duration = Duration::from_millis(20);

/// Locks a mutex, going on with the data even if a thread panicked while holding it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The splitmix64 generator: small, fast, and the same sequence for a seed on every machine.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (0 when `bound` is 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }

    /// True `percent` times out of 100.
    pub fn percent(&mut self, percent: u32) -> bool {
        self.below(100) < u64::from(percent)
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// Which way bytes flow through a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to server: requests, and the packs of pushes.
    ToServer,
    /// Server to client: responses, and the packs of fetches.
    ToClient,
}

/// What happens to a connection once its fault's offset is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Both sockets shut down after `at` bytes of `direction`.
    Cut { direction: Direction, at: u64 },
    /// After `at` bytes of `direction` nothing moves for `stall`; then the stream goes on, or is cut.
    Stall {
        direction: Direction,
        at: u64,
        stall: Duration,
        then_cut: bool,
    },
    /// The byte `pack_offset` bytes after the first `PACK` signature of `direction` is XORed with `xor`
    /// (never 0).
    Corrupt {
        direction: Direction,
        pack_offset: u64,
        xor: u8,
    },
}

impl Fault {
    fn direction(&self) -> Direction {
        match *self {
            Fault::Cut { direction, .. }
            | Fault::Stall { direction, .. }
            | Fault::Corrupt { direction, .. } => direction,
        }
    }
}

/// How often, where and how long faults strike (see [`FaultProxy::inject`]).
#[derive(Clone, Copy, Debug)]
pub struct FaultRates {
    /// Percent of connections cut.
    pub cut_percent: u32,
    /// Percent of connections stalled.
    pub stall_percent: u32,
    /// Percent of connections whose pack gets a corrupt byte.
    pub corrupt_percent: u32,
    /// Percent of faults that hit the client-to-server direction (the rest hit responses).
    pub to_server_percent: u32,
    /// Cuts and stalls happen below this many bytes of their direction.
    pub max_offset: u64,
    /// Corruption happens below this many bytes after the `PACK` signature.
    pub max_pack_offset: u64,
    /// Ordinary stalls last below this long.
    pub max_stall: Duration,
    /// Percent of stalls that instead hang for `hang` (to be ended by the client's own deadline).
    pub hang_percent: u32,
    /// How long a hanging stall lasts at most (the proxy lets go afterwards, so every wait ends).
    pub hang: Duration,
}

/// One connection the proxy carried.
#[derive(Clone, Debug)]
pub struct ConnectionLog {
    pub id: u64,
    /// The fault drawn for it, if any.
    pub fault: Option<Fault>,
    /// Whether the fault's offset was reached (a fault beyond the end of the stream never strikes).
    pub struck: bool,
    pub to_server_bytes: u64,
    pub to_client_bytes: u64,
}

struct Shared {
    upstream: SocketAddr,
    /// The rates and the generator while faults are on.
    faults: Mutex<Option<(FaultRates, SplitMix64)>>,
    next_id: AtomicU64,
    /// Bytes forwarded so far, both directions together.
    forwarded: Mutex<u64>,
    forwarded_grew: Condvar,
    log: Mutex<Vec<ConnectionLog>>,
}

/// The proxy. Dropping it stops it (open connections are shut down).
pub struct FaultProxy {
    server: ThreadServer,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 and forwards every connection to `upstream`, without faults until
    /// [`FaultProxy::inject`] is called.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let shared = Arc::new(Shared {
            upstream,
            faults: Mutex::new(None),
            next_id: AtomicU64::new(0),
            forwarded: Mutex::new(0),
            forwarded_grew: Condvar::new(),
            log: Mutex::new(Vec::new()),
        });
        let serving = Arc::clone(&shared);
        let server = ThreadServer::start("fault proxy", move |client, stop| {
            proxy_connection(client, &serving, stop)
        });
        FaultProxy { server, shared }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// `base_url() + "/" + path`
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url(), path.trim_start_matches('/'))
    }

    /// From now on every new connection draws a fault from `rates`, with a generator seeded by `seed`.
    pub fn inject(&self, seed: u64, rates: FaultRates) {
        *lock(&self.shared.faults) = Some((rates, SplitMix64::new(seed)));
    }

    /// New connections pass untouched from now on (connections already open keep their fault).
    pub fn stop_faults(&self) {
        *lock(&self.shared.faults) = None;
    }

    /// Bytes forwarded so far, both directions together.
    pub fn forwarded_bytes(&self) -> u64 {
        *lock(&self.shared.forwarded)
    }

    /// Waits until at least `bytes` have been forwarded in all (see [`FaultProxy::forwarded_bytes`]),
    /// at most `limit`. Returns whether they were.
    pub fn wait_until_forwarded(&self, bytes: u64, limit: Duration) -> bool {
        let guard = lock(&self.shared.forwarded);
        let (count, _) = self
            .shared
            .forwarded_grew
            .wait_timeout_while(guard, limit, |n| *n < bytes)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *count >= bytes
    }

    /// Every connection that has ended so far.
    pub fn connections(&self) -> Vec<ConnectionLog> {
        lock(&self.shared.log).clone()
    }

    pub fn clear_connections(&self) {
        lock(&self.shared.log).clear();
    }
}

/// Draws the fault of a new connection, if faults are on.
fn draw_fault(shared: &Shared) -> Option<Fault> {
    let mut faults = lock(&shared.faults);
    let (rates, rng) = faults.as_mut()?;
    let roll = rng.below(100) as u32;
    let direction = if rng.percent(rates.to_server_percent) {
        Direction::ToServer
    } else {
        Direction::ToClient
    };
    let at = rng.below(rates.max_offset);
    if roll < rates.cut_percent {
        return Some(Fault::Cut { direction, at });
    }
    if roll < rates.cut_percent + rates.stall_percent {
        let stall = if rng.percent(rates.hang_percent) {
            rates.hang
        } else {
            Duration::from_millis(rng.below(rates.max_stall.as_millis() as u64))
        };
        let then_cut = rng.percent(50);
        return Some(Fault::Stall {
            direction,
            at,
            stall,
            then_cut,
        });
    }
    if roll < rates.cut_percent + rates.stall_percent + rates.corrupt_percent {
        let pack_offset = rng.below(rates.max_pack_offset);
        let xor = (rng.below(255) + 1) as u8;
        return Some(Fault::Corrupt {
            direction,
            pack_offset,
            xor,
        });
    }
    None
}

fn proxy_connection(client: TcpStream, shared: &Shared, stop: &Stop) {
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let fault = draw_fault(shared);
    let Ok(upstream) = TcpStream::connect_timeout(&shared.upstream, CONNECT_TIMEOUT) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (Ok(client_reader), Ok(upstream_reader)) = (client.try_clone(), upstream.try_clone())
    else {
        let _ = client.shutdown(Shutdown::Both);
        let _ = upstream.shutdown(Shutdown::Both);
        return;
    };
    let fault_of = |direction| fault.filter(|f| f.direction() == direction);
    let (to_server, to_client) = thread::scope(|s| {
        let responses = s.spawn(|| {
            let mut pump = Pump::new(fault_of(Direction::ToClient), shared, stop);
            pump.run(upstream_reader, &client, &upstream);
            pump
        });
        let mut requests = Pump::new(fault_of(Direction::ToServer), shared, stop);
        requests.run(client_reader, &upstream, &client);
        let responses = responses.join();
        (requests, responses)
    });
    let Ok(to_client) = to_client else {
        return;
    };
    lock(&shared.log).push(ConnectionLog {
        id,
        fault,
        struck: to_server.struck || to_client.struck,
        to_server_bytes: to_server.offset,
        to_client_bytes: to_client.offset,
    });
}

/// One direction of a connection: copies bytes, applying its fault on the way.
struct Pump<'a> {
    fault: Option<Fault>,
    shared: &'a Shared,
    stop: &'a Stop,
    /// Bytes of this direction forwarded so far.
    offset: u64,
    /// Where the first `PACK` signature starts, once seen.
    pack_start: Option<u64>,
    /// The last bytes seen (up to 3), to find a signature split over two reads.
    tail: Vec<u8>,
    struck: bool,
}

impl<'a> Pump<'a> {
    fn new(fault: Option<Fault>, shared: &'a Shared, stop: &'a Stop) -> Pump<'a> {
        Pump {
            fault,
            shared,
            stop,
            offset: 0,
            pack_start: None,
            tail: Vec::new(),
            struck: false,
        }
    }

    /// Copies `from` to `to` until the end of the stream, an error or a cut. At the end of the stream
    /// the write side of `to` is shut down (a half close, as the peer did); on an error or a cut both
    /// sockets (`to` and `from_socket`, the socket `from` reads) are shut down.
    fn run(&mut self, mut from: TcpStream, to: &TcpStream, from_socket: &TcpStream) {
        let mut to = to;
        let mut buf = vec![0u8; 16 * 1024];
        let cut = |to: &TcpStream| {
            let _ = to.shutdown(Shutdown::Both);
            let _ = from_socket.shutdown(Shutdown::Both);
        };
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => {
                    let _ = to.shutdown(Shutdown::Write);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return cut(to),
            };
            let chunk = &mut buf[..n];
            self.find_pack(chunk);
            let (send_now, then) = self.apply_fault(chunk);
            if to.write_all(&chunk[..send_now]).is_err() {
                return cut(to);
            }
            self.count(send_now as u64);
            match then {
                After::Go => {}
                After::Cut => return cut(to),
                After::Stall { stall, then_cut } => {
                    self.stall(stall);
                    if then_cut || self.stop.requested() {
                        return cut(to);
                    }
                    if to.write_all(&chunk[send_now..]).is_err() {
                        return cut(to);
                    }
                    self.count((chunk.len() - send_now) as u64);
                }
            }
        }
    }

    /// Notes where the first `PACK` signature starts, counting from the start of this direction.
    fn find_pack(&mut self, chunk: &[u8]) {
        if self.pack_start.is_some() {
            return;
        }
        let mut window = self.tail.clone();
        window.extend_from_slice(chunk);
        if let Some(at) = window.windows(4).position(|w| w == b"PACK") {
            self.pack_start = Some(self.offset + at as u64 - self.tail.len() as u64);
        }
        let keep = window.len().min(3);
        self.tail = window[window.len() - keep..].to_vec();
    }

    /// Applies a corruption falling into `chunk` (which starts at `self.offset`), and says how many of
    /// its bytes go out now and what happens then.
    fn apply_fault(&mut self, chunk: &mut [u8]) -> (usize, After) {
        let len = chunk.len() as u64;
        let start = self.offset;
        match self.fault {
            None => (chunk.len(), After::Go),
            Some(Fault::Cut { at, .. }) if at < start + len => {
                self.fault = None;
                self.struck = true;
                ((at.saturating_sub(start)) as usize, After::Cut)
            }
            Some(Fault::Stall {
                at,
                stall,
                then_cut,
                ..
            }) if at < start + len => {
                self.fault = None;
                self.struck = true;
                (
                    (at.saturating_sub(start)) as usize,
                    After::Stall { stall, then_cut },
                )
            }
            Some(Fault::Corrupt {
                pack_offset, xor, ..
            }) => {
                if let Some(pack_start) = self.pack_start {
                    let at = pack_start + pack_offset;
                    if at < start + len {
                        // Struck now, or (signature split over two reads) missed for good.
                        self.fault = None;
                        if at >= start {
                            chunk[(at - start) as usize] ^= xor;
                            self.struck = true;
                        }
                    }
                }
                (chunk.len(), After::Go)
            }
            Some(_) => (chunk.len(), After::Go),
        }
    }

    /// Holds the stream for `stall`, or until the proxy stops.
    fn stall(&self, stall: Duration) {
        let until = Instant::now() + stall;
        while !self.stop.requested() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            thread::sleep(left.min(STALL_SLICE));
        }
    }

    fn count(&mut self, bytes: u64) {
        self.offset += bytes;
        if bytes > 0 {
            *lock(&self.shared.forwarded) += bytes;
            self.shared.forwarded_grew.notify_all();
        }
    }
}

/// What a pump does after sending the bytes before a fault.
enum After {
    Go,
    Cut,
    Stall { stall: Duration, then_cut: bool },
}
