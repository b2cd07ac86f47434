//! A real moto server (`moto_server`, the Python AWS emulator) for tests, started on loopback and
//! stopped when dropped.
//!
//! The binary is `<repo root>/.venv/bin/moto_server` (the repo root being `CARGO_MANIFEST_DIR`),
//! or whatever the `MOTO_SERVER` environment variable names. A missing binary is a test failure
//! with a message saying how to install it, never a skipped test.
//!
//! moto keeps all state in memory, per account and region; [`Moto::reset`] clears it. [`aws_env`]
//! gives the environment a product process needs to talk to a moto server with fake
//! credentials ([`ACCESS_KEY_ID`], [`SECRET_ACCESS_KEY`], [`REGION`]).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Fake access key id the tests' AWS clients use (AWS's documentation example).
pub const ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
/// Fake secret access key matching [`ACCESS_KEY_ID`]. Treat it as a secret in leak checks.
pub const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// The region the tests' AWS clients use.
pub const REGION: &str = "eu-west-2";
/// moto's default account id (used in ARNs it returns).
pub const ACCOUNT_ID: &str = "123456789012";

/// How long [`Moto::start`] waits for the server to answer before giving up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `moto_server`. Dropping it kills the process and waits for it.
pub struct Moto {
    child: Child,
    addr: SocketAddr,
    /// CloudWatch as the current SDK speaks it, in front of the server (see [`super::cloudwatch_cbor`]).
    front: Option<super::cloudwatch_cbor::CloudWatchCbor>,
    /// Holds the server's log file (`moto.log`).
    dir: tempfile::TempDir,
}

/// The `moto_server` binary: `$MOTO_SERVER`, else `<repo root>/.venv/bin/moto_server`. Panics
/// with instructions if it does not exist.
pub fn moto_server_binary() -> PathBuf {
    let path = match std::env::var_os("MOTO_SERVER") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server"),
    };
    if !path.is_file() {
        panic!(
            "moto_server not found at {} — these tests need it. Install it with \
             `python3 -m venv .venv && .venv/bin/pip install 'moto[server]'` in the repository \
             root, or set MOTO_SERVER to the binary's path",
            path.display()
        );
    }
    path
}

impl Moto {
    /// Starts `moto_server -H 127.0.0.1 -p PORT` on a free port and returns once it answers
    /// HTTP. Panics (with the server's log) if it exits or does not answer in time.
    pub fn start() -> Moto {
        let binary = moto_server_binary();
        // The port is found by binding port 0 and letting go of it, so another process may
        // take it before moto binds it: moto then exits, and we try again on another port.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = free_port();
            let dir = tempfile::tempdir().expect("temp dir for the moto log");
            let log_path = dir.path().join("moto.log");
            let log = std::fs::File::create(&log_path).expect("create the moto log file");
            let log_err = log.try_clone().expect("clone the moto log file handle");
            let child = Command::new(&binary)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::from(log))
                .stderr(Stdio::from(log_err))
                // Keep the user's AWS setup out of the server.
                .env_remove("AWS_ENDPOINT_URL")
                .env_remove("AWS_PROFILE")
                .env("PYTHONUNBUFFERED", "1")
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut moto = Moto {
                child,
                addr,
                front: None,
                dir,
            };
            match moto.wait_until_ready() {
                Ok(()) => {
                    moto.front = Some(super::cloudwatch_cbor::CloudWatchCbor::start(addr));
                    return moto;
                }
                Err(exited) => {
                    let log = moto.log();
                    let address_taken = log.contains("Address already in use");
                    if exited && address_taken && attempts < 5 {
                        continue;
                    }
                    let why = if exited {
                        "exited"
                    } else {
                        "did not answer within the time limit"
                    };
                    panic!(
                        "moto_server ({}) {why} on port {port}; its log:\n{log}",
                        binary.display()
                    );
                }
            }
        }
    }

    /// Polls until an HTTP answer comes back. `Err(true)` if the process exited, `Err(false)`
    /// on timeout.
    fn wait_until_ready(&mut self) -> Result<(), bool> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Err(true);
            }
            if http_answers(self.addr) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(false);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Where AWS clients reach the server: `http://127.0.0.1:PORT` of the front that lets the current
    /// SDK's CloudWatch client talk to it and relays everything else unchanged.
    pub fn endpoint(&self) -> String {
        match &self.front {
            Some(front) => front.endpoint(),
            None => format!("http://{}", self.addr),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything the server wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read(self.dir.path().join("moto.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Forgets every resource of every service (`POST /moto-api/reset`).
    pub fn reset(&self) {
        let (status, body) = http_request(self.addr, "POST", "/moto-api/reset", &[], b"")
            .unwrap_or_else(|e| panic!("POST /moto-api/reset to moto failed: {e}\n{}", self.log()));
        assert_eq!(
            status,
            200,
            "moto reset answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment a product process needs to use a moto server at `endpoint` with the fake
/// credentials: endpoint, keys, region, a single attempt per call, no instance metadata and no
/// shared config/credentials files.
pub fn aws_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID),
        ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
        ("AWS_REGION", REGION),
        ("AWS_DEFAULT_REGION", REGION),
        ("AWS_MAX_ATTEMPTS", "1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", "/dev/null"),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port on 127.0.0.1")
}

/// True if something at `addr` answers an HTTP request with a status line.
fn http_answers(addr: SocketAddr) -> bool {
    http_request(addr, "GET", "/moto-api/", &[], b"").is_ok()
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`); returns status and body.
/// Std only; enough for moto's control API.
pub(crate) fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "no HTTP response head")
        })?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "bad HTTP status line")
        })?;
    Ok((status, raw[end + 4..].to_vec()))
}
