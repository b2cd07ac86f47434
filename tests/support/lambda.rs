//! cargo-lambda's Lambda Runtime API emulator (`cargo lambda watch --only-lambda-apis`) serving the real
//! `repo-mirror` binary as a function, and `cargo lambda invoke` to call it — the path an operator's
//! `aws lambda invoke` takes, on loopback.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The cargo-lambda binary: `$CARGO_LAMBDA`, else `<repo root>/.venv/bin/cargo-lambda`.
pub fn cargo_lambda() -> PathBuf {
    let path = match std::env::var_os("CARGO_LAMBDA") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/cargo-lambda"),
    };
    assert!(path.is_file(), "cargo-lambda not found at {} — install it with `.venv/bin/pip install cargo-lambda` (.ci/test does)", path.display());
    path
}

/// The emulator and the function process it serves.
pub struct LambdaEmulator {
    port: u16,
    watch: Child,
    function: Child,
    dir: tempfile::TempDir,
}

/// What one invocation returned.
#[derive(Debug)]
pub struct Invoked {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Invoked {
    /// The function's return value (the run report).
    pub fn report(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|err| panic!("no report ({err}): {}\n{}", self.stdout, self.stderr))
    }
}

impl LambdaEmulator {
    /// Starts the emulator with a function timeout of `timeout_secs`, then the function with `env`.
    pub fn start(env: &[(String, String)], timeout_secs: u64) -> LambdaEmulator {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let watch_log = std::fs::File::create(dir.path().join("watch.log")).expect("watch log");
        let watch = Command::new(cargo_lambda())
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "-A",
                "127.0.0.1",
                "-P",
                &port.to_string(),
            ])
            .args(["--timeout", &timeout_secs.to_string()])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(watch_log.try_clone().expect("log"))
            .stderr(watch_log)
            .spawn()
            .expect("start cargo lambda watch");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "cargo lambda watch did not listen: {}",
                read(&dir.path().join("watch.log"))
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = std::fs::File::create(dir.path().join("function.stdout")).expect("stdout file");
        let err = std::fs::File::create(dir.path().join("function.stderr")).expect("stderr file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_repo-mirror"));
        command
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        super::clean_environment(&mut command, env);
        command
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024");
        let function = command.spawn().expect("start the function");
        LambdaEmulator {
            port,
            watch,
            function,
            dir,
        }
    }

    /// `cargo lambda invoke --data-file FILE`.
    pub fn invoke_file(&self, file: &Path) -> Invoked {
        self.invoke(&["--data-file", &file.display().to_string()])
    }

    /// `cargo lambda invoke --data-ascii JSON`.
    pub fn invoke_json(&self, json: &str) -> Invoked {
        self.invoke(&["--data-ascii", json])
    }

    fn invoke(&self, data: &[&str]) -> Invoked {
        let output = Command::new(cargo_lambda())
            .args([
                "lambda",
                "invoke",
                "-A",
                "127.0.0.1",
                "-P",
                &self.port.to_string(),
                "_",
            ])
            .args(data)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .output()
            .expect("run cargo lambda invoke");
        Invoked {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Everything the function wrote to stdout (its structured log lines) so far.
    pub fn function_stdout(&self) -> String {
        read(&self.dir.path().join("function.stdout"))
    }

    /// Everything the function wrote to stderr (the human log) so far.
    pub fn function_stderr(&self) -> String {
        read(&self.dir.path().join("function.stderr"))
    }

    /// The structured log lines, parsed.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.function_stdout()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl Drop for LambdaEmulator {
    fn drop(&mut self) {
        for child in [&mut self.function, &mut self.watch] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
