//! Runs one product once and measures it: wall time, CPU time, and peak RSS of the whole process
//! tree.
//!
//! The product is reaped with `wait4`, whose resource usage covers the process and every
//! descendant it waited for (`ru_maxrss` is the largest of them). So a baseline script's figure
//! is the largest of bash, curl, jq and each git process it ran; the git servers (threads and
//! children of the benchmark, not of the product) are not counted.
//!
//! One catch: Linux credits a process with the peak RSS of the memory it had before `exec` — for
//! a child spawned with `vfork`/`fork`, the spawning process's own memory. Spawned straight from
//! the benchmark (tens of MB, growing with the servers' request logs), every product would seem
//! at least that big. So the benchmark re-executes itself as a small wrapper
//! (`--measure-child`), which spawns the product, samples its memory and reaps it: the
//! wrapper's few MB are the floor of the figure, not the benchmark's size.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The argument that makes the benchmark binary act as the wrapper.
pub const CHILD_FLAG: &str = "--measure-child";

pub struct Measured {
    pub wall: Duration,
    /// Peak resident set size of the product's process tree, KiB.
    pub max_rss_kib: u64,
    /// User + system CPU time of the process tree.
    pub cpu: Duration,
    /// CPU time everything else used meanwhile: the benchmark process itself (where the git
    /// servers relay bytes) and the children it reaped (the servers' `git http-backend`, the GitHub
    /// fake's `git`), i.e. the servers' share of the machine.
    pub others_cpu: Duration,
    /// Peaks of the product process's anonymous and file-backed resident memory, KiB, sampled from
    /// /proc every 10 ms (file-backed pages are mapped files such as the binary or a pack being
    /// indexed: page cache the kernel can drop, which `max_rss_kib` counts too).
    pub anon_peak_kib: u64,
    pub file_peak_kib: u64,
    /// Exit status (or 128 + signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `command` (through the wrapper) with stdout and stderr going to `log_stem.out` /
/// `log_stem.err` and returns what it did. `settle` runs after it ended and before the others'
/// CPU time is read (to let the servers finish their last requests).
pub fn run(command: Command, log_stem: &Path, settle: impl FnOnce()) -> Measured {
    let out_path = log_stem.with_extension("out");
    let err_path = log_stem.with_extension("err");
    let result_path = log_stem.with_extension("rusage");
    let out =
        File::create(&out_path).unwrap_or_else(|e| panic!("create {}: {e}", out_path.display()));
    let err =
        File::create(&err_path).unwrap_or_else(|e| panic!("create {}: {e}", err_path.display()));

    let me = std::env::current_exe().expect("the benchmark's own path");
    let mut wrapper = Command::new(me);
    wrapper
        .arg(CHILD_FLAG)
        .arg(&result_path)
        .arg(command.get_program())
        .args(command.get_args());
    if let Some(dir) = command.get_current_dir() {
        wrapper.current_dir(dir);
    }
    // The product's environment is exactly the one given (the wrapper passes its own on).
    wrapper.env_clear();
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            wrapper.env(key, value);
        }
    }
    wrapper.stdin(Stdio::null()).stdout(out).stderr(err);

    let others_before = cpu_of(libc::RUSAGE_SELF) + cpu_of(libc::RUSAGE_CHILDREN);
    let status = wrapper
        .status()
        .unwrap_or_else(|e| panic!("run the measuring wrapper: {e}"));
    settle();
    let others_after = cpu_of(libc::RUSAGE_SELF) + cpu_of(libc::RUSAGE_CHILDREN);
    let result = std::fs::read_to_string(&result_path).unwrap_or_default();
    let fields: Vec<u64> = result
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    if fields.len() != 7 {
        panic!(
            "the measuring wrapper failed ({status}): {result:?}\n{}",
            std::fs::read_to_string(&err_path).unwrap_or_default()
        );
    }
    let cpu = Duration::from_micros(fields[2]);
    Measured {
        wall: Duration::from_micros(fields[0]),
        max_rss_kib: fields[1],
        cpu,
        // The wrapper and the product are in RUSAGE_CHILDREN now: take them out again.
        others_cpu: others_after.saturating_sub(others_before + cpu),
        anon_peak_kib: fields[3],
        file_peak_kib: fields[4],
        code: fields[5] as i32,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// The wrapper: `--measure-child RESULT PROGRAM ARGS…`. Runs PROGRAM with this process's
/// environment, stdio and directory, samples its memory, reaps it with `wait4` and writes
/// `wall_us max_rss_kib cpu_us anon_peak_kib file_peak_kib exit_code 0` to RESULT. Exits with
/// PROGRAM's status.
pub fn child_main(args: &[String]) -> ! {
    let [result_path, program, rest @ ..] = args else {
        eprintln!("usage: {CHILD_FLAG} RESULT PROGRAM [ARGS…]");
        std::process::exit(2);
    };
    let started = Instant::now();
    let child = match Command::new(program).args(rest).spawn() {
        Ok(child) => child,
        Err(err) => {
            eprintln!("cannot run {program}: {err}");
            std::process::exit(127);
        }
    };
    let pid = child.id() as libc::pid_t;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut anon, mut file) = (0u64, 0u64);
            let path = format!("/proc/{pid}/status");
            while !stop.load(Ordering::Relaxed) {
                if let Ok(status) = std::fs::read_to_string(&path) {
                    anon = anon.max(status_kib(&status, "RssAnon:"));
                    file = file
                        .max(status_kib(&status, "RssFile:") + status_kib(&status, "RssShmem:"));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (anon, file)
        })
    };
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain old data; zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = loop {
        // SAFETY: FFI call with valid pointers to locals.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break r;
    };
    let wall = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (anon, file) = sampler.join().unwrap_or((0, 0));
    // Reaped already: std's handle must not wait for it again.
    std::mem::forget(child);
    if reaped != pid {
        eprintln!("wait4({pid}) failed: {}", std::io::Error::last_os_error());
        std::process::exit(125);
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        125
    };
    let cpu = timeval(usage.ru_utime) + timeval(usage.ru_stime);
    let line = format!(
        "{} {} {} {anon} {file} {code} 0\n",
        wall.as_micros(),
        usage.ru_maxrss.max(0),
        cpu.as_micros()
    );
    if let Err(err) = std::fs::write(result_path, line) {
        eprintln!("cannot write {result_path}: {err}");
        std::process::exit(125);
    }
    std::process::exit(code);
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
}

/// User + system CPU time of `who` (`RUSAGE_SELF` or `RUSAGE_CHILDREN`).
fn cpu_of(who: libc::c_int) -> Duration {
    // SAFETY: `rusage` is plain old data; zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: FFI call with a valid pointer to a local.
    if unsafe { libc::getrusage(who, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

/// A `kB` figure of /proc/PID/status.
fn status_kib(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
