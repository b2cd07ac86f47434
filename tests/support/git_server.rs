//! A real smart-HTTP git server for tests: `git http-backend` run as a CGI program behind a
//! small HTTP/1.1 server built on the standard library only.
//!
//! Every bare repository below a root directory (`root/NAME.git`) is served at
//! `http://127.0.0.1:PORT/NAME.git`, fetches (protocol v0 and v2) and pushes alike. Request
//! bodies, including `Transfer-Encoding: chunked` ones, are streamed into the CGI and the CGI's
//! output is streamed back with chunked transfer-encoding, so packs of any size pass through
//! without being held in memory. Connections are kept alive between requests, as reqwest
//! reuses them.
//!
//! Besides serving, the server can:
//! - demand HTTP Basic credentials ([`Auth`]),
//! - cut the next upload-pack response after a number of bytes
//!   ([`GitServer::cut_next_upload_pack_after`]),
//! - refuse pushes carrying more ref updates than a limit, as CodeCommit does
//!   ([`GitServer::set_max_ref_updates_per_push`], [`RefLimitRefusal`]),
//! - add crafted lines to a repository's protocol v2 `ls-refs` answer, e.g. refs under names git
//!   itself would never advertise ([`GitServer::advertise_extra_refs`]),
//! - pad a repository's receive-pack answers (ref advertisement, report-status) to any size
//!   ([`GitServer::pad_receive_pack_answers`]),
//! - tell which requests it served and how many body bytes went each way
//!   ([`GitServer::requests`]).
//!
//! A served repository can also be made to refuse some ref updates the way a real host's hook does:
//! [`refuse_refs_at_random`] installs git's own `update` hook in it.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use super::thread_server::{Stop, ThreadServer};

/// A custom credential check: (username, password, request) -> accept?
pub type AuthCheck = Arc<dyn Fn(&str, &str, &RequestInfo) -> bool + Send + Sync>;

/// Who may use the server.
#[derive(Clone)]
pub enum Auth {
    /// Anybody, without credentials.
    None,
    /// Only requests carrying exactly these HTTP Basic credentials.
    Basic { user: String, password: String },
    /// Custom check of Basic credentials: called with (username, password, request) – return
    /// true to accept. A request without Basic credentials is refused without calling it.
    Custom(AuthCheck),
}

/// What [`GitServer::pad_receive_pack_answers`] adds to a repository's receive-pack answers.
#[derive(Clone, Debug, Default)]
pub struct ReceivePackPadding {
    /// Raw ref lines (`<oid> <name>`, no newline needed) added to the ref advertisement
    /// (`GET …/info/refs?service=git-receive-pack`), each as a pkt-line.
    pub advertised_refs: Vec<Vec<u8>>,
    /// Raw bytes added to the answer to a push, sent in side-band band 1 (the client must have
    /// asked for `side-band-64k`), that is, after the report-status the client reads there.
    pub push_answer: Vec<u8>,
}

/// What an [`Auth::Custom`] check is told about the request it judges.
#[derive(Clone, Debug)]
pub struct RequestInfo {
    pub method: String,
    /// Path part of the request target, percent-decoded (e.g. `/NAME.git/info/refs`).
    pub path: String,
    /// Query string as sent, without the `?`.
    pub query: String,
    /// The `Host` header.
    pub host: String,
}

/// One request the server answered.
#[derive(Clone, Debug)]
pub struct RequestLog {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    /// Request body bytes received, after de-chunking (still gzip-compressed if the client
    /// compressed it).
    pub request_body_bytes: u64,
    /// Response body bytes sent (not counting chunk framing).
    pub response_body_bytes: u64,
    /// Whether the request body came with `Transfer-Encoding: chunked`.
    pub request_chunked: bool,
    /// The `Git-Protocol` request header, if any (e.g. `version=2`).
    pub git_protocol: Option<String>,
    /// The `Content-Encoding` request header, if any (git gzips larger fetch requests).
    pub content_encoding: Option<String>,
    /// User name of accepted Basic credentials, if any.
    pub user: Option<String>,
    /// Whatever `git http-backend` (and the git programs it ran) wrote to stderr.
    pub cgi_stderr: String,
    /// True when the response was deliberately cut by fault injection.
    pub cut: bool,
}

/// How a push over the ref-update limit is refused (see
/// [`GitServer::set_max_ref_updates_per_push`]). Both answer HTTP 200 with content type
/// `application/x-git-receive-pack-result`, the way receive-pack itself reports refusals, and
/// neither runs `git http-backend`, so nothing in the target repository changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefLimitRefusal {
    /// A report-status answer (`unpack ok`, then `ng <ref> maximum number of ref updates per
    /// push exceeded` for every command, then flush), wrapped in side-band channel 1 when the
    /// client asked for side-band(-64k). git reports every ref as `[remote rejected]`. This is
    /// the default.
    ReportStatus,
    /// A side-band channel 3 (fatal error) packet
    /// `error: maximum number of references per push (N) exceeded: …` followed by flush, the
    /// way a server aborting the whole push answers. Without side-band the message goes out as
    /// an `ERR` pkt-line. git prints `remote: error: maximum number …` and fails with "the
    /// remote end hung up unexpectedly".
    FatalError,
}

/// The server. Dropping it stops accepting, shuts every open connection down and waits for
/// the connection threads to end.
pub struct GitServer {
    server: ThreadServer,
    shared: Arc<Shared>,
}

struct Shared {
    root: PathBuf,
    auth: Auth,
    http_backend: PathBuf,
    cut_next_upload_pack: Mutex<Option<u64>>,
    /// Repositories (`NAME.git`) whose receive-pack POSTs are accepted and then neither read nor answered.
    stalled_pushes: Mutex<Vec<String>>,
    max_ref_updates: Mutex<Option<usize>>,
    /// How many more ref advertisements (`GET …/info/refs`) answer 404, as for a repository that
    /// does not exist yet.
    not_found_next: Mutex<u32>,
    ref_limit_refusal: Mutex<RefLimitRefusal>,
    /// When set, upload-pack POSTs are refused (400) for a repository whose capability advertisement
    /// was never asked for — as a server that does not take protocol v2's stateless requests; it
    /// holds the repositories (`/NAME.git`) whose advertisement was served.
    advertisement_first: Mutex<Option<std::collections::HashSet<String>>>,
    /// Lines added to the `ls-refs` answers of one repository: (`NAME.git`, raw ref lines).
    extra_ls_refs: Mutex<Vec<(String, Vec<Vec<u8>>)>>,
    /// Padding added to the receive-pack answers of one repository: (`NAME.git`, padding).
    receive_pack_padding: Mutex<Vec<(String, ReceivePackPadding)>>,
    log: Mutex<Vec<RequestLog>>,
    /// Requests read but not yet completely answered. A client may act on a response before its
    /// last bytes go out (a pkt-line flush ends a protocol v2 reply before the HTTP chunked
    /// terminator follows), so [`GitServer::requests`] waits for this to reach zero.
    in_flight: Mutex<usize>,
    all_answered: Condvar,
}

/// Locks a mutex, going on with the data even if a thread panicked while holding it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl GitServer {
    /// Serves every repository below `root` (a directory of bare repos like root/NAME.git) at
    /// http://127.0.0.1:PORT/NAME.git. Returns once listening.
    pub fn start(root: &Path, auth: Auth) -> GitServer {
        let root = root
            .canonicalize()
            .unwrap_or_else(|e| panic!("git server root {} is not usable: {e}", root.display()));
        let shared = Arc::new(Shared {
            root,
            auth,
            http_backend: find_http_backend(),
            cut_next_upload_pack: Mutex::new(None),
            stalled_pushes: Mutex::new(Vec::new()),
            max_ref_updates: Mutex::new(None),
            not_found_next: Mutex::new(0),
            ref_limit_refusal: Mutex::new(RefLimitRefusal::ReportStatus),
            advertisement_first: Mutex::new(None),
            extra_ls_refs: Mutex::new(Vec::new()),
            receive_pack_padding: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            in_flight: Mutex::new(0),
            all_answered: Condvar::new(),
        });
        let serving = Arc::clone(&shared);
        let server = ThreadServer::start("git server", move |stream, stop| {
            serve_connection(stream, &serving, stop)
        });
        GitServer { server, shared }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// `base_url() + "/" + path` (a leading `/` of `path` is not doubled).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base_url(), path.trim_start_matches('/'))
    }

    /// Like [`GitServer::url`] but with credentials in it, e.g. `http://user:pw@127.0.0.1:PORT/x.git`,
    /// for the git CLI. User and password are percent-encoded.
    pub fn url_with_credentials(&self, user: &str, password: &str, path: &str) -> String {
        format!(
            "http://{}:{}@{}/{}",
            percent_encode(user),
            percent_encode(password),
            self.server.addr(),
            path.trim_start_matches('/')
        )
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The served root directory (canonicalised).
    pub fn root(&self) -> &Path {
        &self.shared.root
    }

    /// Fault injection: the next `git-upload-pack` POST response is cut (connection closed, no
    /// proper end) after this many response-body bytes. One-shot. Responses shorter than that
    /// (such as a protocol v2 `ls-refs`, which is an upload-pack POST too) pass untouched and
    /// leave it armed: it hits the first upload-pack response reaching `bytes`.
    pub fn cut_next_upload_pack_after(&self, bytes: u64) {
        *lock(&self.shared.cut_next_upload_pack) = Some(bytes);
    }

    /// Fault injection: from now on every receive-pack POST to repository `repo` (`NAME.git`) is
    /// accepted — its request line and headers read — and then nothing more: its body is never read,
    /// no answer is sent, until the server stops. Other requests (the ref advertisement too) are served.
    pub fn stall_pushes_to(&self, repo: &str) {
        lock(&self.shared.stalled_pushes).push(repo.to_owned());
    }

    /// Refuse any receive-pack request carrying more than `n` ref-update commands (`None`: no
    /// limit), the way chosen by [`GitServer::set_ref_limit_refusal`] (default
    /// [`RefLimitRefusal::ReportStatus`]). Gzip-compressed push bodies are not inspected (git
    /// and gix do not compress them).
    pub fn set_max_ref_updates_per_push(&self, n: Option<usize>) {
        *lock(&self.shared.max_ref_updates) = n;
    }

    /// The next `count` ref advertisements (`GET …/info/refs`) answer 404 Not Found, as a host does for
    /// a repository that was created a moment ago and is not visible yet.
    pub fn answer_not_found_next(&self, count: u32) {
        *lock(&self.shared.not_found_next) = count;
    }

    /// From now on every protocol v2 `ls-refs` answer of repository `repo` (`NAME.git`) carries
    /// `lines` too, each a raw ref line as `git upload-pack` writes them (`<oid> <name>[ peeled:<oid>]`,
    /// no newline needed), added before the answer's closing flush. The bytes are sent as given, so
    /// names git refuses to advertise (`..`, `.lock`, bytes that are not UTF-8, control characters)
    /// can be offered. Calling it again replaces the lines; an empty list stops adding.
    pub fn advertise_extra_refs(&self, repo: &str, lines: Vec<Vec<u8>>) {
        let mut extra = lock(&self.shared.extra_ls_refs);
        extra.retain(|(name, _)| name != repo);
        if !lines.is_empty() {
            extra.push((repo.to_owned(), lines));
        }
    }

    /// From now on the receive-pack answers of repository `repo` (`NAME.git`) carry `padding`,
    /// added before their closing flush. Calling it again replaces the padding; the default
    /// padding stops adding.
    pub fn pad_receive_pack_answers(&self, repo: &str, padding: ReceivePackPadding) {
        let mut all = lock(&self.shared.receive_pack_padding);
        all.retain(|(name, _)| name != repo);
        if !padding.advertised_refs.is_empty() || !padding.push_answer.is_empty() {
            all.push((repo.to_owned(), padding));
        }
    }

    /// How pushes over the limit of [`GitServer::set_max_ref_updates_per_push`] are refused.
    /// From now on upload-pack requests are refused until the repository's capability advertisement
    /// has been asked for (a server that does not take protocol v2's stateless requests).
    pub fn require_advertisement_first(&self) {
        *lock(&self.shared.advertisement_first) = Some(Default::default());
    }

    pub fn set_ref_limit_refusal(&self, how: RefLimitRefusal) {
        *lock(&self.shared.ref_limit_refusal) = how;
    }

    /// Everything served so far, in the order the responses ended. Waits (at most 30 s) for
    /// requests still being answered, so that a client that has finished finds all of its
    /// requests here.
    pub fn requests(&self) -> Vec<RequestLog> {
        self.wait_until_answered();
        lock(&self.shared.log).clone()
    }

    pub fn clear_requests(&self) {
        self.wait_until_answered();
        lock(&self.shared.log).clear();
    }

    fn wait_until_answered(&self) {
        let limit = Duration::from_secs(30);
        let guard = lock(&self.shared.in_flight);
        let (left, timeout) = self
            .shared
            .all_answered
            .wait_timeout_while(guard, limit, |n| *n > 0)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        assert!(
            !timeout.timed_out(),
            "{} request(s) still being answered after {limit:?}",
            *left
        );
    }
}

/// `$(git --exec-path)/git-http-backend`, or `git` itself (run as `git http-backend`) if that
/// file is missing.
fn find_http_backend() -> PathBuf {
    let out = Command::new("git")
        .arg("--exec-path")
        .output()
        .expect("run `git --exec-path` (is git installed?)");
    let exec_path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let candidate = Path::new(&exec_path).join("git-http-backend");
    if out.status.success() && candidate.is_file() {
        candidate
    } else {
        PathBuf::from("git")
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 requests

struct Request {
    method: String,
    target_path: String,
    query: String,
    http10: bool,
    /// Header names lower-cased, in arrival order.
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn chunked(&self) -> bool {
        self.header("transfer-encoding")
            .map(|v| {
                v.to_ascii_lowercase()
                    .split(',')
                    .any(|t| t.trim() == "chunked")
            })
            .unwrap_or(false)
    }

    fn content_length(&self) -> Option<u64> {
        self.header("content-length")
            .and_then(|v| v.trim().parse().ok())
    }

    fn wants_close(&self) -> bool {
        let conn = self
            .header("connection")
            .map(|v| v.to_ascii_lowercase())
            .unwrap_or_default();
        if self.http10 {
            !conn.contains("keep-alive")
        } else {
            conn.split(',').any(|t| t.trim() == "close")
        }
    }

    fn expects_continue(&self) -> bool {
        self.header("expect")
            .map(|v| v.eq_ignore_ascii_case("100-continue"))
            .unwrap_or(false)
    }

    fn info(&self) -> RequestInfo {
        RequestInfo {
            method: self.method.clone(),
            path: self.target_path.clone(),
            query: self.query.clone(),
            host: self.header("host").unwrap_or_default().to_string(),
        }
    }

    fn body_kind(&self) -> BodyKind {
        if self.chunked() {
            BodyKind::Chunked {
                left_in_chunk: 0,
                need_crlf: false,
                done: false,
            }
        } else {
            match self.content_length() {
                Some(n) => BodyKind::Fixed(n),
                None => BodyKind::Fixed(0),
            }
        }
    }
}

/// Reads one line (up to LF), failing if it is longer than `limit`. `Ok(None)` at a clean EOF.
fn read_line_limited<R: BufRead>(r: &mut R, limit: usize) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r
        .by_ref()
        .take(limit as u64 + 1)
        .read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if !buf.ends_with(b"\n") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "HTTP line too long or truncated",
        ));
    }
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// Reads a request head. `Ok(None)` when the client closed the connection between requests.
fn read_request<R: BufRead>(r: &mut R) -> io::Result<Option<Request>> {
    let line = loop {
        match read_line_limited(r, 16 * 1024)? {
            None => return Ok(None),
            // Tolerate stray empty lines between requests (RFC 9112 section 2.2).
            Some(l) if l.is_empty() => continue,
            Some(l) => break l,
        }
    };
    let mut parts = line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v)) => (m.to_string(), t.to_string(), v.to_string()),
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad request line",
            ))
        }
    };
    let mut headers = Vec::new();
    let mut total = 0usize;
    loop {
        let h = read_line_limited(r, 64 * 1024)?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, "EOF in request headers")
        })?;
        if h.is_empty() {
            break;
        }
        total += h.len();
        if total > 256 * 1024 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request headers too large",
            ));
        }
        if let Some((name, value)) = h.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let (raw_path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.clone(), String::new()),
    };
    Ok(Some(Request {
        method,
        target_path: percent_decode(&raw_path),
        query,
        http10: version == "HTTP/1.0",
        headers,
    }))
}

enum BodyKind {
    Fixed(u64),
    Chunked {
        left_in_chunk: u64,
        need_crlf: bool,
        done: bool,
    },
}

/// The body of one request, de-chunked, read straight from the connection.
struct Body<'a, R: BufRead> {
    src: &'a mut R,
    kind: BodyKind,
    /// Body bytes handed out so far.
    total: u64,
}

impl<'a, R: BufRead> Body<'a, R> {
    fn new(src: &'a mut R, kind: BodyKind) -> Self {
        Body {
            src,
            kind,
            total: 0,
        }
    }

    fn is_done(&self) -> bool {
        match self.kind {
            BodyKind::Fixed(left) => left == 0,
            BodyKind::Chunked { done, .. } => done,
        }
    }

    /// Reads and throws away the rest of the body.
    fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(|_| ())
    }
}

fn eof_in_body() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed inside the request body",
    )
}

impl<R: BufRead> Read for Body<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = match &mut self.kind {
            BodyKind::Fixed(left) => {
                if *left == 0 {
                    return Ok(0);
                }
                let want = (*left).min(buf.len() as u64) as usize;
                let n = self.src.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(eof_in_body());
                }
                *left -= n as u64;
                n
            }
            BodyKind::Chunked {
                left_in_chunk,
                need_crlf,
                done,
            } => {
                if *done {
                    return Ok(0);
                }
                if *left_in_chunk == 0 {
                    if *need_crlf {
                        let l = read_line_limited(self.src, 2)?.ok_or_else(eof_in_body)?;
                        if !l.is_empty() {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                "chunk not followed by CRLF",
                            ));
                        }
                        *need_crlf = false;
                    }
                    let line = read_line_limited(self.src, 4096)?.ok_or_else(eof_in_body)?;
                    let size_text = line.split(';').next().unwrap_or("").trim();
                    let size = u64::from_str_radix(size_text, 16).map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("bad chunk size {line:?}"),
                        )
                    })?;
                    if size == 0 {
                        // Trailer section, up to an empty line.
                        loop {
                            let t =
                                read_line_limited(self.src, 64 * 1024)?.ok_or_else(eof_in_body)?;
                            if t.is_empty() {
                                break;
                            }
                        }
                        *done = true;
                        return Ok(0);
                    }
                    *left_in_chunk = size;
                }
                let want = (*left_in_chunk).min(buf.len() as u64) as usize;
                let n = self.src.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(eof_in_body());
                }
                *left_in_chunk -= n as u64;
                if *left_in_chunk == 0 {
                    *need_crlf = true;
                }
                n
            }
        };
        self.total += n as u64;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------------
// Connections

fn serve_connection(stream: TcpStream, shared: &Shared, stop: &Stop) {
    let _ = stream.set_nodelay(true);
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    loop {
        if stop.requested() {
            break;
        }
        let req = match read_request(&mut reader) {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(_) => {
                let _ = write_simple(&mut writer, 400, "Bad Request", &[], b"bad request\n", true);
                break;
            }
        };
        if is_stalled_push(&req, shared) {
            // Holds the connection without reading or answering, until the server stops.
            while !stop.requested() {
                std::thread::sleep(STALLED_PUSH_SLICE);
            }
            break;
        }
        let answering = Answering::start(shared);
        let keep_alive = handle_request(&req, &mut reader, &mut writer, shared);
        drop(answering);
        if !keep_alive || req.wants_close() {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
}

/// Counts one request as being answered for as long as it lives (even if answering panics).
struct Answering<'a>(&'a Shared);

impl<'a> Answering<'a> {
    fn start(shared: &'a Shared) -> Self {
        *lock(&shared.in_flight) += 1;
        Answering(shared)
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        let mut in_flight = lock(&self.0.in_flight);
        *in_flight -= 1;
        if *in_flight == 0 {
            self.0.all_answered.notify_all();
        }
    }
}

/// Serves one request. Returns whether the connection may carry another one.
fn handle_request<R: BufRead + Send>(
    req: &Request,
    reader: &mut R,
    writer: &mut TcpStream,
    shared: &Shared,
) -> bool {
    let mut log = RequestLog {
        method: req.method.clone(),
        path: req.target_path.clone(),
        query: req.query.clone(),
        status: 0,
        request_body_bytes: 0,
        response_body_bytes: 0,
        request_chunked: req.chunked(),
        git_protocol: req.header("git-protocol").map(str::to_string),
        content_encoding: req.header("content-encoding").map(str::to_string),
        user: None,
        cgi_stderr: String::new(),
        cut: false,
    };
    match check_auth(req, &shared.auth) {
        AuthResult::Denied => deny(req, reader, writer, shared, log),
        AuthResult::Accepted(user) => {
            log.user = user;
            let not_found = req.method == "GET" && req.target_path.ends_with("/info/refs") && {
                let mut remaining = lock(&shared.not_found_next);
                let hit = *remaining > 0;
                *remaining = remaining.saturating_sub(1);
                hit
            };
            let upload_pack_repo =
                |suffix: &str| req.target_path.strip_suffix(suffix).map(str::to_owned);
            if let Some(seen) = lock(&shared.advertisement_first).as_mut() {
                if req.method == "GET" && req.query.contains("service=git-upload-pack") {
                    seen.extend(upload_pack_repo("/info/refs"));
                } else if let Some(repo) = upload_pack_repo("/git-upload-pack") {
                    if req.method == "POST" && !seen.contains(&repo) {
                        log.status = 400;
                        let body = b"expected the capability advertisement first\n";
                        log.response_body_bytes = body.len() as u64;
                        record(shared, log);
                        return write_simple(
                            writer,
                            400,
                            "Bad Request",
                            &[("Content-Type", "text/plain")],
                            body,
                            true,
                        )
                        .is_ok();
                    }
                }
            }
            if not_found {
                log.status = 404;
                let body = b"Repository not found\n";
                log.response_body_bytes = body.len() as u64;
                record(shared, log);
                return write_simple(
                    writer,
                    404,
                    "Not Found",
                    &[("Content-Type", "text/plain")],
                    body,
                    req.wants_close(),
                )
                .is_ok();
            }
            serve_git(req, reader, writer, shared, log)
        }
    }
}

/// Adds a request to the log, once per request, before its connection may carry the next one.
fn record(shared: &Shared, log: RequestLog) {
    lock(&shared.log).push(log);
}

enum AuthResult {
    Accepted(Option<String>),
    Denied,
}

fn check_auth(req: &Request, auth: &Auth) -> AuthResult {
    if let Auth::None = auth {
        return AuthResult::Accepted(None);
    }
    let Some((user, password)) = req.header("authorization").and_then(parse_basic) else {
        return AuthResult::Denied;
    };
    let ok = match auth {
        Auth::None => true,
        Auth::Basic {
            user: u,
            password: p,
        } => *u == user && *p == password,
        Auth::Custom(check) => check(&user, &password, &req.info()),
    };
    if ok {
        AuthResult::Accepted(Some(user))
    } else {
        AuthResult::Denied
    }
}

/// `Basic <base64(user:password)>` → (user, password), split at the first `:`.
fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64_decode(rest.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Answers 401. Returns whether the connection may carry another request.
fn deny<R: BufRead>(
    req: &Request,
    reader: &mut R,
    writer: &mut TcpStream,
    shared: &Shared,
    mut log: RequestLog,
) -> bool {
    log.status = 401;
    let body = b"authentication required\n";
    log.response_body_bytes = body.len() as u64;
    let headers = [
        ("WWW-Authenticate", "Basic realm=\"git\""),
        ("Content-Type", "text/plain"),
    ];
    if req.expects_continue() {
        // The client holds its body back until told to go on: answer without reading it and
        // close, as the connection cannot be reused without the body.
        record(shared, log);
        let _ = write_simple(writer, 401, "Unauthorized", &headers, body, true);
        return false;
    }
    let mut b = Body::new(reader, req.body_kind());
    let drained = b.drain();
    log.request_body_bytes = b.total;
    record(shared, log);
    if drained.is_err() {
        return false;
    }
    write_simple(
        writer,
        401,
        "Unauthorized",
        &headers,
        body,
        req.wants_close(),
    )
    .is_ok()
}

/// Writes a complete response with a known body.
fn write_simple(
    w: &mut TcpStream,
    status: u16,
    reason: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    close: bool,
) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    w.write_all(&bytes)?;
    w.flush()
}

fn is_upload_pack_post(req: &Request) -> bool {
    req.method == "POST" && req.target_path.ends_with("/git-upload-pack")
}

fn is_receive_pack_post(req: &Request) -> bool {
    req.method == "POST" && req.target_path.ends_with("/git-receive-pack")
}

/// How often a stalled push looks whether the server is stopping.
const STALLED_PUSH_SLICE: Duration = Duration::from_millis(20);

/// Whether `req` is a push [`GitServer::stall_pushes_to`] holds.
fn is_stalled_push(req: &Request, shared: &Shared) -> bool {
    is_receive_pack_post(req)
        && lock(&shared.stalled_pushes).iter().any(|repo| {
            req.target_path
                .ends_with(&format!("/{repo}/git-receive-pack"))
        })
}

/// Serves an authorised request with `git http-backend`. Returns whether the connection may
/// carry another request.
fn serve_git<R: BufRead + Send>(
    req: &Request,
    reader: &mut R,
    writer: &mut TcpStream,
    shared: &Shared,
    mut log: RequestLog,
) -> bool {
    if req.expects_continue() && writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
        record(shared, log);
        return false;
    }
    let mut body = Body::new(reader, req.body_kind());

    // Ref-update limit: look at the command list before deciding to run the backend.
    let mut prefix = Vec::new();
    let limit = *lock(&shared.max_ref_updates);
    if let (Some(max), true) = (
        limit,
        is_receive_pack_post(req) && req.header("content-encoding").is_none(),
    ) {
        let commands = match read_command_section(&mut body, &mut prefix) {
            Ok(c) => c,
            Err(_) => {
                // The connection broke inside the command list.
                log.request_body_bytes = body.total;
                log.status = 400;
                record(shared, log);
                return false;
            }
        };
        if commands.commands.len() > max {
            let drained = body.drain();
            log.request_body_bytes = body.total;
            let how = *lock(&shared.ref_limit_refusal);
            let reply = ref_limit_reply(&commands, max, how);
            log.status = 200;
            log.response_body_bytes = reply.len() as u64;
            record(shared, log);
            let close = drained.is_err() || req.wants_close();
            let sent = write_simple(
                writer,
                200,
                "OK",
                &[
                    ("Content-Type", "application/x-git-receive-pack-result"),
                    ("Cache-Control", "no-cache"),
                ],
                &reply,
                close,
            );
            return sent.is_ok() && !close;
        }
    }

    // Extra ls-refs lines: only an upload-pack request whose first pkt-line is `command=ls-refs`.
    let mut inject = None;
    if let Some(lines) = extra_ls_refs_for(req, shared) {
        match read_first_pkt_line(&mut body, &mut prefix) {
            Ok(true)
                if prefix
                    .get(4..)
                    .is_some_and(|p| p.starts_with(b"command=ls-refs")) =>
            {
                inject = Some(
                    lines
                        .iter()
                        .flat_map(|line| pkt_line(&ref_line(line)))
                        .collect(),
                );
            }
            Ok(_) => {}
            Err(_) => {
                log.request_body_bytes = body.total;
                log.status = 400;
                record(shared, log);
                return false;
            }
        }
    }

    if inject.is_none() {
        inject = receive_pack_padding_for(req, shared);
    }

    let mut child = match spawn_backend(req, shared, log.user.as_deref(), writer.peer_addr().ok()) {
        Ok(c) => c,
        Err(e) => {
            let _ = body.drain();
            log.request_body_bytes = body.total;
            log.status = 500;
            let msg = format!("cannot run git http-backend: {e}\n");
            log.response_body_bytes = msg.len() as u64;
            record(shared, log);
            let _ = write_simple(
                writer,
                500,
                "Internal Server Error",
                &[],
                msg.as_bytes(),
                true,
            );
            return false;
        }
    };
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        let _ = child.wait();
        log.status = 500;
        record(shared, log);
        return false;
    };
    let cut = if is_upload_pack_post(req) {
        Some(&shared.cut_next_upload_pack)
    } else {
        None
    };

    thread::scope(|s| {
        // Request body → CGI stdin, on its own thread so that a backend answering while still
        // reading (or a full pipe either way) cannot deadlock us.
        let feeder = s.spawn(move || feed_stdin(prefix, &mut body, stdin));
        let err_reader = s.spawn(move || {
            let mut buf = Vec::new();
            let mut stderr = stderr;
            let _ = stderr.read_to_end(&mut buf);
            buf
        });
        let response = relay_response(req, stdout, writer, cut, inject);
        match response.finish {
            Finish::Complete { .. } => {}
            Finish::BadGateway(_) => {
                let _ = child.kill();
            }
            Finish::Cut => {
                // Unblock the feeder should it wait for more body; the client learns of the
                // cut below, once the request is logged.
                let _ = writer.shutdown(Shutdown::Read);
                let _ = child.kill();
            }
            Finish::Broken | Finish::CgiBroke => {
                let _ = writer.shutdown(Shutdown::Both);
                let _ = child.kill();
            }
        }
        let _ = child.wait();
        let fed = feeder.join().unwrap_or(FeedOutcome {
            body_bytes: 0,
            body_ok: false,
        });
        let stderr_bytes = err_reader.join().unwrap_or_default();

        log.response_body_bytes = response.body_bytes;
        log.request_body_bytes = fed.body_bytes;
        log.cgi_stderr = String::from_utf8_lossy(&stderr_bytes).into_owned();
        log.cut = matches!(response.finish, Finish::Cut);
        log.status = response.status;
        match response.finish {
            Finish::Complete { chunked, close } => {
                record(shared, log);
                let ended = if chunked {
                    writer.write_all(b"0\r\n\r\n")
                } else {
                    Ok(())
                };
                ended.is_ok() && writer.flush().is_ok() && fed.body_ok && !close
            }
            Finish::BadGateway(msg) => {
                log.status = 502;
                log.response_body_bytes = msg.len() as u64;
                record(shared, log);
                let _ = write_simple(writer, 502, "Bad Gateway", &[], msg.as_bytes(), true);
                false
            }
            Finish::Cut => {
                record(shared, log);
                // Fault injection: no terminating chunk, the connection just goes away.
                let _ = writer.shutdown(Shutdown::Both);
                false
            }
            Finish::Broken | Finish::CgiBroke => {
                record(shared, log);
                false
            }
        }
    })
}

fn spawn_backend(
    req: &Request,
    shared: &Shared,
    user: Option<&str>,
    peer: Option<SocketAddr>,
) -> io::Result<Child> {
    let mut cmd = Command::new(&shared.http_backend);
    if shared.http_backend == Path::new("git") {
        cmd.arg("http-backend");
    }
    // A clean environment: nothing of the test process's git setup may leak into the server.
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("HOME", &shared.root)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", &shared.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("SERVER_SOFTWARE", "repo-mirror-test-git-server")
        .env("REQUEST_METHOD", &req.method)
        .env("PATH_INFO", &req.target_path)
        .env("QUERY_STRING", &req.query)
        .env(
            "REMOTE_ADDR",
            peer.map(|p| p.ip().to_string())
                .unwrap_or_else(|| "127.0.0.1".to_string()),
        );
    let config = [
        ("http.receivepack", "true"),
        ("http.uploadpack", "true"),
        ("uploadpack.allowFilter", "true"),
        ("uploadpack.allowAnySHA1InWant", "true"),
    ];
    cmd.env("GIT_CONFIG_COUNT", config.len().to_string());
    for (i, (k, v)) in config.iter().enumerate() {
        cmd.env(format!("GIT_CONFIG_KEY_{i}"), k)
            .env(format!("GIT_CONFIG_VALUE_{i}"), v);
    }
    if let Some(ct) = req.header("content-type") {
        cmd.env("CONTENT_TYPE", ct);
    }
    // Only a real length: with chunked bodies http-backend must read stdin to EOF.
    if !req.chunked() {
        if let Some(len) = req.content_length() {
            cmd.env("CONTENT_LENGTH", len.to_string());
        }
    }
    if let Some(enc) = req.header("content-encoding") {
        cmd.env("HTTP_CONTENT_ENCODING", enc);
    }
    if let Some(proto) = req.header("git-protocol") {
        cmd.env("GIT_PROTOCOL", proto);
    }
    if let Some(u) = user {
        cmd.env("REMOTE_USER", u);
        cmd.env("AUTH_TYPE", "Basic");
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn()
}

struct FeedOutcome {
    body_bytes: u64,
    /// The whole body was read off the connection (so it can carry the next request).
    body_ok: bool,
}

/// Writes `prefix` and then the rest of the body to the CGI's stdin, closing it at the end. If
/// the CGI stops reading, the rest of the body is still read (and dropped) to keep the
/// connection usable.
fn feed_stdin<R: BufRead>(
    prefix: Vec<u8>,
    body: &mut Body<'_, R>,
    stdin: std::process::ChildStdin,
) -> FeedOutcome {
    let mut stdin = Some(stdin);
    if let Some(pipe) = stdin.as_mut() {
        if pipe.write_all(&prefix).is_err() {
            stdin = None;
        }
    }
    let mut buf = vec![0u8; 64 * 1024];
    let body_ok = loop {
        match body.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => {
                if let Some(pipe) = stdin.as_mut() {
                    if pipe.write_all(&buf[..n]).is_err() {
                        stdin = None;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break false,
        }
    };
    drop(stdin);
    FeedOutcome {
        body_bytes: body.total,
        body_ok,
    }
}

/// How a relayed response ends; see [`relay_response`].
enum Finish {
    /// Body relayed completely. Still to do: the terminating chunk (if `chunked`), and closing
    /// the connection (if `close`).
    Complete { chunked: bool, close: bool },
    /// Nothing sent yet and the CGI gave no usable header section: answer 502 with this.
    BadGateway(&'static str),
    /// Fault injection reached its byte count: the connection is to be cut.
    Cut,
    /// Writing to the client failed.
    Broken,
    /// The CGI's output broke off after the response head went out.
    CgiBroke,
}

struct ResponseOutcome {
    status: u16,
    body_bytes: u64,
    finish: Finish,
}

/// Reads the CGI's answer (headers, then body) and streams it to the client, all but its end
/// (see [`Finish`]). With `cut` given and armed, the body is cut after that many bytes. With `inject`
/// given, the body is held back and sent whole with those bytes before its closing flush-pkt.
fn relay_response(
    req: &Request,
    mut stdout: std::process::ChildStdout,
    writer: &mut TcpStream,
    cut: Option<&Mutex<Option<u64>>>,
    inject: Option<Vec<u8>>,
) -> ResponseOutcome {
    let mut out = ResponseOutcome {
        status: 502,
        body_bytes: 0,
        finish: Finish::Broken,
    };

    // CGI header section, up to the first empty line.
    let mut head = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let (header_end, body_start) = loop {
        if let Some(pos) = find_subslice(&head, b"\r\n\r\n") {
            break (pos, pos + 4);
        }
        if let Some(pos) = find_subslice(&head, b"\n\n") {
            break (pos, pos + 2);
        }
        if head.len() > 256 * 1024 {
            out.finish = Finish::BadGateway("CGI headers too large\n");
            return out;
        }
        match stdout.read(&mut buf) {
            Ok(0) | Err(_) => {
                out.finish = Finish::BadGateway("no CGI response headers\n");
                return out;
            }
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    };
    let header_text = String::from_utf8_lossy(&head[..header_end]).into_owned();
    let mut leftover = head[body_start..].to_vec();

    let mut status = 200u16;
    let mut reason = "OK".to_string();
    let mut headers = Vec::new();
    for line in header_text.lines() {
        let line = line.trim_end_matches('\r');
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "status" => {
                let (code, text) = value.split_once(' ').unwrap_or((value, ""));
                status = code.parse().unwrap_or(500);
                reason = if text.is_empty() {
                    reason_phrase(status).to_string()
                } else {
                    text.to_string()
                };
            }
            // Framing is ours to decide.
            "content-length" | "transfer-encoding" | "connection" => {}
            _ => headers.push(format!("{}: {}", name.trim(), value)),
        }
    }
    out.status = status;

    // HTTP/1.1 clients get chunks; an HTTP/1.0 client gets the raw body ended by closing.
    let chunked = !req.http10;
    let close = req.wants_close() || !chunked;
    let mut response_head = format!("HTTP/1.1 {status} {reason}\r\n");
    for h in &headers {
        response_head.push_str(h);
        response_head.push_str("\r\n");
    }
    if chunked {
        response_head.push_str("Transfer-Encoding: chunked\r\n");
    }
    if close {
        response_head.push_str("Connection: close\r\n");
    }
    response_head.push_str("\r\n");
    if writer.write_all(response_head.as_bytes()).is_err() {
        return out;
    }

    if let Some(inject) = inject {
        let mut whole = std::mem::take(&mut leftover);
        if stdout.read_to_end(&mut whole).is_err() {
            out.finish = Finish::CgiBroke;
            return out;
        }
        let at = if whole.ends_with(b"0000") {
            whole.len() - 4
        } else {
            whole.len()
        };
        whole.splice(at..at, inject);
        if write_body_piece(writer, &whole, chunked).is_err() {
            return out;
        }
        out.body_bytes = whole.len() as u64;
        out.finish = Finish::Complete { chunked, close };
        return out;
    }

    loop {
        let data: Vec<u8> = if !leftover.is_empty() {
            std::mem::take(&mut leftover)
        } else {
            match stdout.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => buf[..n].to_vec(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    out.finish = Finish::CgiBroke;
                    return out;
                }
            }
        };
        let mut slice = &data[..];
        let mut cut_now = false;
        if let Some(cut) = cut {
            let mut armed = lock(cut);
            if let Some(limit) = *armed {
                let room = limit.saturating_sub(out.body_bytes);
                if (slice.len() as u64) >= room {
                    // One-shot: disarmed by the response it cuts.
                    *armed = None;
                    slice = &slice[..room as usize];
                    cut_now = true;
                }
            }
        }
        if !slice.is_empty() && write_body_piece(writer, slice, chunked).is_err() {
            return out;
        }
        out.body_bytes += slice.len() as u64;
        if cut_now {
            let _ = writer.flush();
            out.finish = Finish::Cut;
            return out;
        }
    }
    out.finish = Finish::Complete { chunked, close };
    out
}

fn write_body_piece(w: &mut TcpStream, data: &[u8], chunked: bool) -> io::Result<()> {
    if chunked {
        let mut piece = Vec::with_capacity(data.len() + 16);
        piece.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        piece.extend_from_slice(data);
        piece.extend_from_slice(b"\r\n");
        w.write_all(&piece)
    } else {
        w.write_all(data)
    }
}

fn find_subslice(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "Unknown",
    }
}

// ---------------------------------------------------------------------------------------------
// receive-pack command section and the ref-limit refusal

struct Commands {
    /// Ref names of the `<old> <new> <ref>` commands.
    commands: Vec<String>,
    capabilities: Vec<String>,
}

/// Reads pkt-lines up to the first flush, keeping the raw bytes in `raw` (to be replayed to the
/// backend), and picks out the ref-update commands. Gives up looking (but keeps what it read)
/// at a malformed pkt-line or an unreasonably large section.
fn read_command_section<R: Read>(body: &mut R, raw: &mut Vec<u8>) -> io::Result<Commands> {
    let mut found = Commands {
        commands: Vec::new(),
        capabilities: Vec::new(),
    };
    loop {
        if raw.len() > 64 * 1024 * 1024 {
            return Ok(found);
        }
        let mut len_hex = [0u8; 4];
        if !read_exact_or_eof(body, &mut len_hex, raw)? {
            return Ok(found);
        }
        let Some(len) = std::str::from_utf8(&len_hex)
            .ok()
            .and_then(|s| usize::from_str_radix(s, 16).ok())
        else {
            return Ok(found);
        };
        if len == 0 {
            return Ok(found); // flush-pkt: end of the command list
        }
        if len < 4 {
            return Ok(found); // delim/response-end: not part of a v0/v1 push request
        }
        let mut payload = vec![0u8; len - 4];
        if !read_exact_or_eof(body, &mut payload, raw)? {
            return Ok(found);
        }
        let (line, caps) = match payload.iter().position(|b| *b == 0) {
            Some(nul) => (&payload[..nul], Some(&payload[nul + 1..])),
            None => (&payload[..], None),
        };
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\n');
        let mut words = line.splitn(3, ' ');
        if let (Some(old), Some(new), Some(name)) = (words.next(), words.next(), words.next()) {
            let is_oid = |s: &str| {
                (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
            };
            if is_oid(old) && is_oid(new) {
                found.commands.push(name.to_string());
            }
        }
        if let Some(caps) = caps {
            let caps = String::from_utf8_lossy(caps);
            found.capabilities.extend(
                caps.trim_end_matches('\n')
                    .split(' ')
                    .filter(|c| !c.is_empty())
                    .map(str::to_string),
            );
        }
    }
}

/// Fills `buf` completely, appending what was read to `raw`. `Ok(false)` at EOF before the end.
fn read_exact_or_eof<R: Read>(r: &mut R, buf: &mut [u8], raw: &mut Vec<u8>) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => {
                raw.extend_from_slice(&buf[..filled]);
                return Ok(false);
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    raw.extend_from_slice(buf);
    Ok(true)
}

/// The extra `ls-refs` lines for the repository an upload-pack request is for, if any.
fn extra_ls_refs_for(req: &Request, shared: &Shared) -> Option<Vec<Vec<u8>>> {
    if !is_upload_pack_post(req) || req.header("content-encoding").is_some() {
        return None;
    }
    lock(&shared.extra_ls_refs)
        .iter()
        .find(|(repo, _)| req.target_path == format!("/{repo}/git-upload-pack"))
        .map(|(_, lines)| lines.clone())
}

/// The padding for a receive-pack answer (see [`GitServer::pad_receive_pack_answers`]), ready to
/// insert before its closing flush, if there is any for this request.
fn receive_pack_padding_for(req: &Request, shared: &Shared) -> Option<Vec<u8>> {
    let all = lock(&shared.receive_pack_padding);
    let advertisement = req.method == "GET" && req.query.contains("service=git-receive-pack");
    all.iter().find_map(|(repo, padding)| {
        if advertisement && req.target_path == format!("/{repo}/info/refs") {
            let lines = &padding.advertised_refs;
            (!lines.is_empty()).then(|| lines.iter().flat_map(|l| pkt_line(&ref_line(l))).collect())
        } else if is_receive_pack_post(req)
            && req.target_path == format!("/{repo}/git-receive-pack")
        {
            let extra = &padding.push_answer;
            (!extra.is_empty()).then(|| side_band(1, extra))
        } else {
            None
        }
    })
}

/// Reads the first pkt-line of a request body into `raw`. False at a flush-pkt, a malformed length or
/// the end of the body.
fn read_first_pkt_line<R: Read>(body: &mut R, raw: &mut Vec<u8>) -> io::Result<bool> {
    let mut len_hex = [0u8; 4];
    if !read_exact_or_eof(body, &mut len_hex, raw)? {
        return Ok(false);
    }
    let Some(len) = std::str::from_utf8(&len_hex)
        .ok()
        .and_then(|s| usize::from_str_radix(s, 16).ok())
        .filter(|len| *len > 4)
    else {
        return Ok(false);
    };
    let mut payload = vec![0u8; len - 4];
    read_exact_or_eof(body, &mut payload, raw)
}

/// A ref line ending in exactly one newline, as upload-pack writes them.
fn ref_line(line: &[u8]) -> Vec<u8> {
    let mut line = line.strip_suffix(b"\n").unwrap_or(line).to_vec();
    line.push(b'\n');
    line
}

fn pkt_line(payload: &[u8]) -> Vec<u8> {
    let mut v = format!("{:04x}", payload.len() + 4).into_bytes();
    v.extend_from_slice(payload);
    v
}

/// Wraps `data` into side-band packets of `band`, each at most 65520 bytes long.
fn side_band(band: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in data.chunks(65520 - 5) {
        let mut payload = Vec::with_capacity(piece.len() + 1);
        payload.push(band);
        payload.extend_from_slice(piece);
        out.extend(pkt_line(&payload));
    }
    out
}

/// The response body refusing a push over the ref-update limit (see [`RefLimitRefusal`]).
fn ref_limit_reply(cmds: &Commands, max: usize, how: RefLimitRefusal) -> Vec<u8> {
    let has = |c: &str| cmds.capabilities.iter().any(|x| x == c);
    let sideband = has("side-band-64k") || has("side-band");
    let report = has("report-status") || has("report-status-v2");
    match how {
        RefLimitRefusal::ReportStatus if report => {
            let mut status = pkt_line(b"unpack ok\n");
            for name in &cmds.commands {
                status.extend(pkt_line(
                    format!("ng {name} maximum number of ref updates per push exceeded\n")
                        .as_bytes(),
                ));
            }
            status.extend_from_slice(b"0000");
            if sideband {
                let mut out = side_band(1, &status);
                out.extend_from_slice(b"0000");
                out
            } else {
                status
            }
        }
        _ => {
            let msg = format!(
                "error: maximum number of references per push ({max}) exceeded: this push updates {} references\n",
                cmds.commands.len()
            );
            if sideband {
                let mut out = side_band(3, msg.as_bytes());
                out.extend_from_slice(b"0000");
                out
            } else {
                pkt_line(format!("ERR {}", msg.trim_end()).as_bytes())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Targets that refuse refs

/// The file the refusing `update` hook reads its seed and rate from (`SEED ONE_IN`).
const REFUSAL_SETTINGS: &str = "test-refuse-refs";

/// git's `update` hook (run by receive-pack once per ref, with the ref name, the old and the new id):
/// while the settings file exists, it refuses a ref when the CRC (`cksum`) of `SEED REFNAME` is a
/// multiple of ONE_IN, so the same seed refuses the same refs. A UTC time stamp in the name
/// (`20261121T100000Z`, as backup refs carry) counts as `STAMP`, so a replay at another time
/// refuses the same backups. receive-pack then reports that ref
/// `ng … hook declined` and leaves it alone; the other refs of the push go on (unless the push is
/// atomic).
const REFUSING_UPDATE_HOOK: &str = r#"#!/bin/sh
settings="${GIT_DIR:-.}/test-refuse-refs"
[ -f "$settings" ] || exit 0
read -r seed one_in < "$settings" || exit 0
name=$(printf '%s' "$1" | sed 's/[0-9]\{8\}T[0-9]\{6\}Z/STAMP/g')
sum=$(printf '%s %s' "$seed" "$name" | cksum | cut -d ' ' -f 1)
if [ $((sum % one_in)) -eq 0 ]; then
    echo "test update hook (seed $seed): refusing $1" >&2
    exit 1
fi
exit 0
"#;

/// Makes the bare repository `repo` refuse about one ref update in `one_in` (at least 1), chosen
/// deterministically from `seed` and the ref name, with git's own mechanism: an `update` hook (see
/// [`REFUSING_UPDATE_HOOK`]). Calling it again changes the seed; [`stop_refusing_refs`] ends it.
pub fn refuse_refs_at_random(repo: &Path, seed: u64, one_in: u32) {
    use std::os::unix::fs::PermissionsExt;
    let hooks = repo.join("hooks");
    std::fs::create_dir_all(&hooks).unwrap_or_else(|e| panic!("create {}: {e}", hooks.display()));
    let hook = hooks.join("update");
    std::fs::write(&hook, REFUSING_UPDATE_HOOK)
        .unwrap_or_else(|e| panic!("write {}: {e}", hook.display()));
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("make {} executable: {e}", hook.display()));
    let settings = repo.join(REFUSAL_SETTINGS);
    std::fs::write(&settings, format!("{seed} {}\n", one_in.max(1)))
        .unwrap_or_else(|e| panic!("write {}: {e}", settings.display()));
}

/// Ends [`refuse_refs_at_random`] for `repo`: every ref update is accepted again.
pub fn stop_refusing_refs(repo: &Path) {
    let settings = repo.join(REFUSAL_SETTINGS);
    match std::fs::remove_file(&settings) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => panic!("remove {}: {e}", settings.display()),
    }
}

// ---------------------------------------------------------------------------------------------
// Small codecs

fn base64_value(c: u8) -> Option<u32> {
    match c {
        b'A'..=b'Z' => Some((c - b'A') as u32),
        b'a'..=b'z' => Some((c - b'a') as u32 + 26),
        b'0'..=b'9' => Some((c - b'0') as u32 + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

/// Standard base64 (padding optional). `None` on anything else.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let data: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let data = {
        let mut end = data.len();
        while end > 0 && data[end - 1] == b'=' {
            end -= 1;
        }
        &data[..end]
    };
    if data.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    for group in data.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in group.iter().enumerate() {
            acc |= base64_value(*c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..group.len()]);
    }
    Some(out)
}

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for group in data.chunks(3) {
        let mut acc = 0u32;
        for (i, b) in group.iter().enumerate() {
            acc |= (*b as u32) << (16 - 8 * i);
        }
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[((acc >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but unreserved characters (for user info in URLs).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
