//! The tracer as the tests run it: the real binary (or the static one under
//! `INOTIFY_TRACE_BIN`), started and waited for until it has attached,
//! stopped, and what it printed; whether BPF can be loaded here at all; and
//! its other commands (`usage`, `report`) run to their end.
use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread::JoinHandle,
    time::Duration,
};

use serde_json::Value;

use crate::{assert_events_match, Call};

/// How long the tracer may take to load and attach (a debug build on a busy
/// 2-core machine takes well under a second; this is only a safety net).
const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether this machine can load BPF programs for the test named `test`.
/// Under CI (`CI=true`) a test that cannot is a failure, never a skip;
/// elsewhere it prints why it skips.
pub fn bpf_available(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let why = if unsafe { libc::geteuid() } != 0 {
        "BPF cannot be loaded here: not running as root (BPF programs need CAP_BPF and CAP_PERFMON)"
    } else {
        return true;
    };
    unavailable(test, why)
}

/// What a test does when something it needs is missing: under CI
/// (`CI=true`) it fails, saying `why`; elsewhere it prints why it skips.
/// Returns false (the test returns).
pub fn unavailable(test: &str, why: &str) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: CI=true, but {why}");
    }
    eprintln!("SKIPPED {test}: {why}");
    false
}

/// Whether this kernel refuses fexit programs (this machine kind's kernel
/// is locked down: BPF trampolines get EPERM), checked by asking the tracer
/// for fexit: a refusal must be the one-line error, and where
/// `INOTIFY_TRACE_FEXIT=required` (the VM matrix's kernels that allow
/// trampolines) it fails the test instead.
pub fn fexit_refused() -> bool {
    let out = Command::new(tracer_binary())
        .args([
            "--attach",
            "fexit",
            "-q",
            "-d",
            "1ms",
            "--comm",
            "nobody-at-all",
        ])
        .output()
        .expect("starting the tracer");
    if out.status.success() {
        return false;
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("inotify-trace: error: --attach fexit failed (try --attach auto): fexit refused by the kernel (")
            && stderr.lines().count() == 1,
        "fexit failed otherwise than refused: {stderr}"
    );
    assert!(
        std::env::var("INOTIFY_TRACE_FEXIT").as_deref() != Ok("required"),
        "INOTIFY_TRACE_FEXIT=required, but {stderr}"
    );
    eprintln!("fexit is refused here: {}", stderr.trim());
    true
}

/// Skips (or, under CI, fails) the calling test when BPF is unavailable.
#[macro_export]
macro_rules! require_bpf {
    () => {
        if !$crate::bpf_available(module_path!()) {
            return;
        }
    };
}

/// The tracer binary: `INOTIFY_TRACE_BIN` (set by `cargo xtask test`), else
/// the one cargo built next to this test.
pub fn tracer_binary() -> PathBuf {
    match std::env::var_os("INOTIFY_TRACE_BIN") {
        Some(path) => existing(PathBuf::from(path)),
        None => built_binary("inotify-trace"),
    }
}

/// The benchmark's load generator, which cargo builds with these tests.
pub fn load_binary() -> PathBuf {
    built_binary("inotify-load")
}

/// The workload program, which cargo builds with these tests.
pub fn workload_binary() -> PathBuf {
    built_binary("inotify-workload")
}

/// A binary in the target folder of this test executable
/// (target/debug/deps/live-HASH -> target/debug/NAME).
fn built_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    existing(
        exe.parent()
            .and_then(|deps| deps.parent())
            .expect("target dir")
            .join(name),
    )
}

fn existing(path: PathBuf) -> PathBuf {
    assert!(
        path.is_file(),
        "no binary at {}: build it first (cargo xtask test does)",
        path.display()
    );
    path
}

/// `WRAPPER... PROGRAM` (e.g. `unshare -U -r PROGRAM`), or PROGRAM alone;
/// arguments for PROGRAM are added by the caller.
pub(crate) fn wrapped(wrapper: &[&str], program: &std::path::Path) -> Command {
    match wrapper.split_first() {
        Some((first, rest)) => {
            let mut command = Command::new(first);
            command.args(rest).arg(program);
            command
        }
        None => Command::new(program),
    }
}

/// A running tracer.
pub struct Tracer {
    child: Child,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<String>>,
}

/// A tracer that has exited.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Tracer {
    /// Starts the tracer with `args` and returns once it says it is attached.
    pub fn start(args: &[&str]) -> Tracer {
        Tracer::start_wrapped(&[], args)
    }

    /// The same, run as `WRAPPER... TRACER ARGS...` (the wrapper must exec
    /// the tracer, so that signals reach it).
    pub fn start_wrapped(wrapper: &[&str], args: &[&str]) -> Tracer {
        let mut command = wrapped(wrapper, &tracer_binary());
        command.args(args);
        Tracer::start_command(command)
    }

    /// The same for a command that runs the tracer some other way (e.g.
    /// `podman run IMAGE ARGS...`, which passes signals on to it).
    pub fn start_command(mut command: Command) -> Tracer {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the tracer");
        let mut stdout = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            stdout
                .read_to_end(&mut bytes)
                .expect("reading the tracer's stdout");
            bytes
        });
        let (attached_tx, attached_rx) = mpsc::channel();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            for line in stderr.lines() {
                let line = line.expect("reading the tracer's stderr");
                if line.starts_with("inotify-trace: attached") {
                    let _ = attached_tx.send(());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let mut tracer = Tracer {
            child,
            stdout: Some(stdout),
            stderr: Some(stderr),
        };
        if attached_rx.recv_timeout(ATTACH_TIMEOUT).is_err() {
            let _ = tracer.child.kill();
            let finished = tracer.wait();
            panic!("the tracer did not attach: {finished:#?}");
        }
        tracer
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the tracer as a user would (SIGINT) and collects its output.
    pub fn stop(mut self) -> Finished {
        self.signal(libc::SIGINT);
        self.wait()
    }

    pub fn signal(&mut self, signal: i32) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, signal) };
    }

    /// Waits for the tracer to exit by itself.
    pub fn wait(mut self) -> Finished {
        let status = self.child.wait().expect("waiting for the tracer");
        let stdout = self.stdout.take().unwrap().join().unwrap();
        let stderr = self.stderr.take().unwrap().join().unwrap();
        Finished {
            status,
            stdout: String::from_utf8(stdout).expect("stdout is UTF-8"),
            stderr,
        }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        // A test that panicked must not leave a tracer attached.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Finished {
    /// Every JSON line on stdout.
    pub fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
            })
            .collect()
    }

    /// The `add_watch` events of the given processes, in order.
    pub fn add_watch_events_of(&self, pids: &[u64]) -> Vec<Value> {
        self.json_lines()
            .into_iter()
            .filter(|e| e["type"] == "add_watch" && pids.contains(&e["pid"].as_u64().unwrap()))
            .collect()
    }

    /// Asserts a clean exit and that the add_watch events of the calls'
    /// process are exactly `calls` (see [`assert_events_match`]).
    pub fn assert_reported(&self, calls: &[Call], comm: &str) {
        self.assert_clean_exit();
        let pid = calls.first().expect("calls were made").pid;
        assert_events_match(&self.add_watch_events_of(&[pid]), calls, comm);
    }

    pub fn assert_clean_exit(&self) {
        assert!(self.status.success(), "the tracer failed: {self:#?}");
        assert!(
            !self.stderr.contains("error"),
            "errors on stderr: {}",
            self.stderr
        );
    }
}

/// `inotify-trace usage --json ARGS`, which must succeed: its report.
pub fn usage_json(args: &[&str]) -> Value {
    serde_json::from_str(usage_run(&[&["--json"], args].concat()).trim()).unwrap()
}

/// `inotify-trace usage ARGS` in text, which must succeed.
pub fn usage_text(args: &[&str]) -> String {
    usage_run(args)
}

fn usage_run(args: &[&str]) -> String {
    let out = Command::new(tracer_binary())
        .arg("usage")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "usage {args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("usage prints UTF-8")
}

/// `inotify-trace report ARGS...`, run to its end.
pub fn report<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Output {
    Command::new(tracer_binary())
        .arg("report")
        .args(args)
        .output()
        .unwrap()
}
