//! The stall guard on git transfers (`MIRROR_STALL_TIMEOUT`): a transfer during which no byte moves for
//! that long fails, like git's `http.lowSpeedLimit`, instead of waiting for the deadline (or, on the
//! command line, for an hour).
//!
//! The HTTP client bounds a request only as a whole, so the guard sits between our code and it: every
//! response (headers and body) is read, and every request body written, through a small relay thread,
//! and our side waits for the relay at most the stall timeout each time it needs the peer — while
//! waiting for the next bytes of an answer, or for the peer to take the bytes sent before. Time our own
//! side spends elsewhere (writing a pack into the target) never counts. A stall trips the guard, which
//! the run reads to report the repository failed with [`Stall`], whatever error the protocol code made
//! of it. A relay left blocked on a silent peer ends with the request, which the deadline bounds.
//!
//! The guard also carries the repository's [`Cancellation`]: waits are taken in short slices, and a
//! transfer whose repository was abandoned ends at the next slice with [`Cancelled`].

use std::io::{self, BufRead, Read, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::cancel::{Cancellation, Cancelled};
use gix::protocol::transport::client::blocking_io::http::{
    self, GetResponse, PostBodyDataKind, PostResponse,
};

/// `MIRROR_STALL_TIMEOUT`'s default.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How many bytes a relay reads from the HTTP client at a time.
const RELAY_CHUNK: usize = 64 * 1024;
/// The longest a wait goes without looking at the cancellation.
const CANCELLATION_SLICE: Duration = Duration::from_millis(100);

/// What the transfer was waiting for when it stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// The next bytes of an answer.
    ForAnswer,
    /// The peer to take the request body sent so far.
    ForPeerToRead,
}

/// A transfer in which no byte moved for the stall timeout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url}: no byte moved for {seconds} s while {} (MIRROR_STALL_TIMEOUT)", match .waiting {
    Waiting::ForAnswer => "waiting for the server's answer",
    Waiting::ForPeerToRead => "waiting for the server to read what was sent",
})]
pub struct Stall {
    /// The repository URL (never with credentials).
    pub url: String,
    pub seconds: u64,
    pub waiting: Waiting,
}

/// One repository's stall guard, shared by its source and target connections: the time limit, the
/// first stall seen, and the repository's cancellation.
#[derive(Debug, Clone)]
pub struct StallGuard {
    timeout: Duration,
    tripped: Arc<OnceLock<Stall>>,
    cancellation: Cancellation,
}

impl Default for StallGuard {
    fn default() -> Self {
        StallGuard::new(DEFAULT_STALL_TIMEOUT)
    }
}

impl StallGuard {
    pub fn new(timeout: Duration) -> StallGuard {
        StallGuard::with_cancellation(timeout, Cancellation::default())
    }

    /// A guard whose waits also end when `cancellation` is set.
    pub fn with_cancellation(timeout: Duration, cancellation: Cancellation) -> StallGuard {
        StallGuard {
            timeout,
            tripped: Arc::default(),
            cancellation,
        }
    }

    /// The repository's cancellation, for the work that does not go through a transfer.
    pub fn cancellation(&self) -> &Cancellation {
        &self.cancellation
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The first stall, if a transfer stalled.
    pub fn tripped(&self) -> Option<&Stall> {
        self.tripped.get()
    }

    fn trip(&self, url: &str, waiting: Waiting) -> io::Error {
        let stall = Stall {
            url: url.to_owned(),
            seconds: self.timeout.as_secs(),
            waiting,
        };
        let _ = self.tripped.set(stall.clone());
        io::Error::new(io::ErrorKind::TimedOut, stall)
    }

    /// Waits on `receive` (a `recv_timeout`) for at most the stall timeout, in slices, ending early
    /// with [`Cancelled`] once the repository is abandoned. `Ok(None)`: the stall timeout passed.
    fn wait<T>(
        &self,
        mut receive: impl FnMut(Duration) -> Result<T, RecvTimeoutError>,
    ) -> io::Result<Option<Result<T, RecvTimeoutError>>> {
        let until = std::time::Instant::now() + self.timeout;
        loop {
            if let Err(cancelled) = self.cancellation.check() {
                return Err(io::Error::other(cancelled));
            }
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match receive(left.min(CANCELLATION_SLICE)) {
                Err(RecvTimeoutError::Timeout) => continue,
                other => return Ok(Some(other)),
            }
        }
    }
}

/// Whether an I/O error is a transfer ended by its repository's cancellation.
pub fn is_cancelled(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|inner| inner.is::<Cancelled>())
}

/// gix's reqwest client with every response and request body relayed under the stall guard.
pub struct Guarded {
    inner: http::reqwest::Remote,
    guard: StallGuard,
    url: String,
}

impl Guarded {
    pub fn new(guard: StallGuard, url: &str) -> Guarded {
        Guarded {
            inner: http::reqwest::Remote::default(),
            guard,
            url: url.to_owned(),
        }
    }

    fn reader<R: Read + Send + 'static>(&self, inner: R) -> StallReader {
        StallReader::new(inner, self.guard.clone(), &self.url)
    }
}

impl http::Http for Guarded {
    type Headers = StallReader;
    type ResponseBody = StallReader;
    type PostBody = StallWriter;

    fn get(
        &mut self,
        url: &str,
        base_url: &str,
        headers: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> gix::Result<GetResponse<StallReader, StallReader>> {
        let response = self.inner.get(url, base_url, headers)?;
        Ok(GetResponse {
            headers: self.reader(response.headers),
            body: self.reader(response.body),
        })
    }

    fn post(
        &mut self,
        url: &str,
        base_url: &str,
        headers: impl IntoIterator<Item = impl AsRef<str>>,
        body: PostBodyDataKind,
    ) -> gix::Result<PostResponse<StallReader, StallReader, StallWriter>> {
        let response = self.inner.post(url, base_url, headers, body)?;
        Ok(PostResponse {
            post_body: StallWriter::new(response.post_body, self.guard.clone(), &self.url),
            headers: self.reader(response.headers),
            body: self.reader(response.body),
        })
    }

    fn configure(&mut self, config: &dyn std::any::Any) -> gix::Result {
        self.inner.configure(config)
    }

    fn redirected_base_url(&self) -> Option<String> {
        self.inner.redirected_base_url()
    }
}

/// Reads an answer through a relay thread, waiting at most the stall timeout for each chunk.
pub struct StallReader {
    chunks: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    position: usize,
    guard: StallGuard,
    url: String,
}

impl StallReader {
    fn new<R: Read + Send + 'static>(mut inner: R, guard: StallGuard, url: &str) -> StallReader {
        let (sender, chunks) = mpsc::sync_channel(1);
        // Ends at the end of the answer, on its error, or when the reader is gone.
        std::thread::spawn(move || loop {
            let mut chunk = vec![0; RELAY_CHUNK];
            let (item, last) = match inner.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    chunk.truncate(n);
                    (Ok(chunk), false)
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => (Err(err), true),
            };
            if sender.send(item).is_err() || last {
                break;
            }
        });
        StallReader {
            chunks,
            chunk: Vec::new(),
            position: 0,
            guard,
            url: url.to_owned(),
        }
    }
}

impl BufRead for StallReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.position == self.chunk.len() {
            let chunks = &self.chunks;
            match self.guard.wait(|slice| chunks.recv_timeout(slice))? {
                Some(Ok(Ok(chunk))) => {
                    self.chunk = chunk;
                    self.position = 0;
                }
                Some(Ok(Err(err))) => return Err(err),
                None | Some(Err(RecvTimeoutError::Timeout)) => {
                    return Err(self.guard.trip(&self.url, Waiting::ForAnswer))
                }
                Some(Err(RecvTimeoutError::Disconnected)) => return Ok(&[]),
            }
        }
        Ok(&self.chunk[self.position..])
    }

    fn consume(&mut self, amount: usize) {
        self.position = (self.position + amount).min(self.chunk.len());
    }
}

impl Read for StallReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// Writes a request body through a relay thread: each write waits at most the stall timeout for the
/// peer to have taken the previous one.
pub struct StallWriter {
    chunks: Option<SyncSender<Vec<u8>>>,
    taken: Receiver<io::Result<()>>,
    in_flight: bool,
    guard: StallGuard,
    url: String,
}

impl StallWriter {
    fn new<W: Write + Send + 'static>(mut inner: W, guard: StallGuard, url: &str) -> StallWriter {
        let (sender, chunks) = mpsc::sync_channel::<Vec<u8>>(1);
        let (taken_sender, taken) = mpsc::sync_channel(1);
        // Ends when the writer is gone (dropping `inner` ends the request body) or the peer fails.
        std::thread::spawn(move || {
            for chunk in chunks {
                let result = inner.write_all(&chunk);
                let failed = result.is_err();
                if taken_sender.send(result).is_err() || failed {
                    break;
                }
            }
        });
        StallWriter {
            chunks: Some(sender),
            taken,
            in_flight: false,
            guard,
            url: url.to_owned(),
        }
    }

    /// Waits for the chunk in flight to be taken by the peer.
    fn settle(&mut self) -> io::Result<()> {
        if !self.in_flight {
            return Ok(());
        }
        let taken = &self.taken;
        match self.guard.wait(|slice| taken.recv_timeout(slice))? {
            Some(Ok(result)) => {
                self.in_flight = false;
                result
            }
            None | Some(Err(RecvTimeoutError::Timeout)) => {
                Err(self.guard.trip(&self.url, Waiting::ForPeerToRead))
            }
            Some(Err(RecvTimeoutError::Disconnected)) => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }
}

impl Write for StallWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.settle()?;
        let sender = self.chunks.as_ref().ok_or(io::ErrorKind::BrokenPipe)?;
        // The relay is idle (the chunk before was taken), so this never blocks.
        sender
            .send(buf.to_vec())
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        self.in_flight = true;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.settle()
    }
}

impl Drop for StallWriter {
    fn drop(&mut self) {
        // Closing the channel lets the relay write what is in flight, then end the request body.
        self.chunks.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that never returns, like an answer that never comes.
    struct Silent(mpsc::Receiver<()>);

    impl Read for Silent {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            let _ = self.0.recv();
            Ok(0)
        }
    }

    #[test]
    fn an_answer_that_stops_trips_the_guard_and_a_flowing_one_does_not() {
        let guard = StallGuard::new(Duration::from_millis(200));
        let mut flowing = StallReader::new(&b"0000"[..], guard.clone(), "http://h/r.git");
        let mut all = String::new();
        flowing.read_to_string(&mut all).unwrap();
        assert_eq!(all, "0000");
        assert!(guard.tripped().is_none());

        let (_keep, never) = mpsc::channel();
        let mut silent = StallReader::new(Silent(never), guard.clone(), "http://h/r.git");
        let err = silent.read(&mut [0; 4]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let stall = guard.tripped().cloned().unwrap();
        assert_eq!(stall.waiting, Waiting::ForAnswer);
        assert!(
            stall.to_string().contains("MIRROR_STALL_TIMEOUT"),
            "{stall}"
        );
    }

    #[test]
    fn an_abandoned_transfer_ends_at_once_without_tripping_the_guard() {
        // A stall timeout far beyond the test's patience: only the cancellation can end the wait.
        let cancellation = Cancellation::default();
        let guard = StallGuard::with_cancellation(Duration::from_secs(3600), cancellation.clone());
        let (_keep, never) = mpsc::channel();
        let mut silent = StallReader::new(Silent(never), guard.clone(), "http://h/r.git");
        let abandon = std::thread::spawn(move || cancellation.cancel());
        let err = silent.read(&mut [0; 4]).unwrap_err();
        assert!(is_cancelled(&err), "{err}");
        assert!(guard.tripped().is_none());
        abandon.join().unwrap();
    }

    /// A writer that takes one write and then never another, like a peer that stopped reading.
    struct StopsReading(bool, mpsc::Receiver<()>);

    impl Write for StopsReading {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if std::mem::replace(&mut self.0, true) {
                let _ = self.1.recv();
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_peer_that_stops_reading_trips_the_guard() {
        let guard = StallGuard::new(Duration::from_millis(200));
        let (_keep, never) = mpsc::channel();
        let mut writer =
            StallWriter::new(StopsReading(false, never), guard.clone(), "http://h/t.git");
        writer.write_all(b"first").unwrap();
        writer.write_all(b"second").unwrap();
        let err = writer.flush().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(
            guard.tripped().map(|s| s.waiting),
            Some(Waiting::ForPeerToRead)
        );
    }
}
