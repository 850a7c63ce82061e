//! Helpers for the end-to-end tests: start the real tracer, make calls with
//! the workload program, stop the tracer, and read what it reported.
//!
//! Tests share the kernel (attached programs slow every syscall, and a
//! user-namespace limit is per namespace), so they run one at a time:
//! `cargo xtask test` passes `--test-threads=1`.
pub mod node;
pub mod podman;
pub mod scrape;
pub mod wait;
pub mod watchers;

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::PathBuf,
    process::{Child, ChildStdin, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread::JoinHandle,
    time::Duration,
};

use base64::{engine::general_purpose::STANDARD, Engine};
use serde_json::Value;

/// How long the tracer may take to load and attach (a debug build on a busy
/// 2-core machine takes well under a second; this is only a safety net).
const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether this machine can load BPF programs for the test named `test`.
/// Under CI (`CI=true`) a test that cannot is a failure, never a skip;
/// elsewhere it prints why it skips.
pub fn bpf_available(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let why = if unsafe { libc::geteuid() } != 0 {
        "not running as root (BPF programs need CAP_BPF and CAP_PERFMON)"
    } else {
        return true;
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: CI=true, but BPF cannot be loaded here: {why}");
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
fn wrapped(wrapper: &[&str], program: &std::path::Path) -> Command {
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

/// One call as the workload itself saw it.
#[derive(Debug, Clone)]
pub struct Call {
    /// `add_watch`, `init` or `rm_watch`.
    pub op: String,
    pub pid: u64,
    pub tid: u64,
    /// The effective uid.
    pub uid: u64,
    pub ruid: u64,
    pub fd: i64,
    pub mask: u64,
    pub path: Vec<u8>,
    pub ret: i64,
}

impl Call {
    fn from_json(line: &Value) -> Call {
        Call {
            op: line["op"].as_str().unwrap().to_owned(),
            pid: line["pid"].as_u64().unwrap(),
            tid: line["tid"].as_u64().unwrap(),
            uid: line["uid"].as_u64().unwrap(),
            ruid: line["ruid"].as_u64().unwrap(),
            fd: line["fd"].as_i64().unwrap(),
            mask: line["mask"].as_u64().unwrap(),
            path: STANDARD
                .decode(line["path_base64"].as_str().unwrap())
                .unwrap(),
            ret: line["ret"].as_i64().unwrap(),
        }
    }
}

/// A workload started with `--wait`: it knows its pid and makes its calls
/// only when released.
pub struct Workload {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<std::process::ChildStdout>>,
    pub pid: u64,
}

impl Workload {
    /// Starts the workload (optionally behind a wrapper such as
    /// `unshare -U -r`) with `--comm comm --wait` and the given steps.
    pub fn start(wrapper: &[&str], comm: impl AsRef<std::ffi::OsStr>, steps: &[&str]) -> Workload {
        let mut command = wrapped(wrapper, &workload_binary());
        let mut child = command
            .arg("--comm")
            .arg(comm)
            .arg("--wait")
            .args(steps)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the workload");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut ready = String::new();
        stdout
            .read_line(&mut ready)
            .expect("reading the workload's ready line");
        let ready: Value = serde_json::from_str(&ready)
            .unwrap_or_else(|e| panic!("workload did not start ({e}): {ready:?}"));
        let pid = ready["ready"].as_u64().unwrap();
        let stdin = child.stdin.take();
        Workload {
            child: Some(child),
            stdin,
            stdout: Some(stdout),
            pid,
        }
    }

    /// Lets the workload make its calls and returns all of them (init and
    /// rm_watch too) once it has exited.
    pub fn release_all(mut self) -> Vec<Call> {
        self.go();
        let calls: Vec<Call> = self
            .stdout
            .take()
            .unwrap()
            .lines()
            .map(|line| Call::from_json(&serde_json::from_str(&line.unwrap()).unwrap()))
            .collect();
        let status = self
            .child
            .take()
            .unwrap()
            .wait()
            .expect("waiting for the workload");
        assert!(status.success(), "the workload failed: {status}");
        calls
    }

    /// Lets the workload go and returns its first `n` calls while it keeps
    /// running (a `sleep` step holds its instances); it is killed when
    /// dropped.
    pub fn release_and_read(&mut self, n: usize) -> Vec<Call> {
        self.go();
        let stdout = self.stdout.as_mut().unwrap();
        (0..n)
            .map(|_| {
                let mut line = String::new();
                stdout.read_line(&mut line).expect("reading a call");
                Call::from_json(
                    &serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}")),
                )
            })
            .collect()
    }

    fn go(&mut self) {
        let mut stdin = self.stdin.take().expect("released once");
        stdin.write_all(b"go\n").unwrap();
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What a step's call must return: errors as `-errno`, written out
/// independently of the tool.
pub const ENOENT: i64 = -2;
pub const EACCES: i64 = -13;
pub const EMFILE: i64 = -24;
pub const ENOSPC: i64 = -28;
pub const ENAMETOOLONG: i64 = -36;

/// Workload steps, each written beside what the call it makes must return,
/// so a test reads as the calls it makes and their answers.
#[derive(Debug, Default, Clone)]
pub struct Script {
    args: Vec<String>,
    /// One per call-making step, in order: the step and its return value
    /// (`None`: any, such as a forked child's pid).
    expected: Vec<(String, Option<i64>)>,
}

impl Script {
    pub fn new() -> Script {
        Script::default()
    }

    /// `inotify_init1(0)`, returning `ret` (the new fd, or an error).
    pub fn init(self, ret: i64) -> Script {
        self.call(&["init"], Some(ret))
    }

    /// `inotify_add_watch` of PATH on the latest instance.
    pub fn add(self, path: &str, ret: i64) -> Script {
        self.call(&["add", path], Some(ret))
    }

    /// The same with a path given as hex bytes (non-UTF-8).
    pub fn add_hex(self, hex: &str, ret: i64) -> Script {
        self.call(&["add-hex", hex], Some(ret))
    }

    /// The same from a second thread.
    pub fn thread_add(self, path: &str, ret: i64) -> Script {
        self.call(&["thread-add", path], Some(ret))
    }

    /// `inotify_rm_watch` of WD on the latest instance.
    pub fn rm(self, wd: u32, ret: i64) -> Script {
        self.call(&["rm", &wd.to_string()], Some(ret))
    }

    /// Forks a child that holds the instances for SECONDS.
    pub fn fork_hold(self, seconds: &str) -> Script {
        self.call(&["fork-hold", seconds], None)
    }

    /// Become `uid` before the calls that follow (the workload's `as-user`).
    pub fn as_user(self, uid: &str) -> Script {
        self.then("as-user", uid)
    }

    /// A step that makes no inotify call: `chdir DIR`, `limit-watches N`,
    /// `limit-instances N`, `sleep SECONDS`.
    pub fn then(mut self, step: &str, value: &str) -> Script {
        self.args.extend([step.to_owned(), value.to_owned()]);
        self
    }

    fn call(mut self, step: &[&str], ret: Option<i64>) -> Script {
        self.args.extend(step.iter().map(|s| (*s).to_owned()));
        self.expected.push((step.join(" "), ret));
        self
    }

    /// The workload's arguments.
    pub fn args(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }

    /// Runs the script as `comm` (behind `wrapper`, e.g. `unshare -U -r`)
    /// and returns every call, each checked against its step.
    pub fn run_all(&self, wrapper: &[&str], comm: &str) -> Vec<Call> {
        let calls = Workload::start(wrapper, comm, &self.args()).release_all();
        self.check(&calls);
        calls
    }

    /// The same, returning the add_watch calls only.
    pub fn run(&self, wrapper: &[&str], comm: &str) -> Vec<Call> {
        add_watches(self.run_all(wrapper, comm))
    }

    /// Asserts that the kernel gave each step's call what the test meant
    /// (`calls`: every call the workload made, in order).
    pub fn check(&self, calls: &[Call]) {
        assert_eq!(
            calls.len(),
            self.expected.len(),
            "the workload made {} calls for {} call steps: {calls:#?}",
            calls.len(),
            self.expected.len()
        );
        for ((step, ret), call) in self.expected.iter().zip(calls) {
            if let Some(ret) = ret {
                assert_eq!(
                    call.ret, *ret,
                    "step `{step}` returned {}: {call:?}",
                    call.ret
                );
            }
        }
    }
}

/// The add_watch calls among `calls`.
pub fn add_watches(calls: Vec<Call>) -> Vec<Call> {
    calls.into_iter().filter(|c| c.op == "add_watch").collect()
}

/// A comm no other process on the machine has: 15 bytes at most.
/// This process's cgroup v2 path (`/` at the root), which the workloads it
/// starts inherit.
pub fn own_cgroup() -> String {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    cgroups
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or("/")
        .to_owned()
}

/// `inotify-trace report ARGS...`, run to its end.
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

pub fn report<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Output {
    Command::new(tracer_binary())
        .arg("report")
        .args(args)
        .output()
        .unwrap()
}

/// A shell loop that waits until `file` has `n` lines (the workload prints
/// one per call it made). The file must exist before the loop starts: a
/// missing one makes `[` fail, which ends the loop at once instead of waiting.
pub fn until_lines(file: &str, n: usize) -> String {
    format!("while [ \"$(wc -l < {file})\" -lt {n} ]; do sleep 0.01; done")
}

pub fn unique_comm(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let comm = format!("it{}{}-{tag}", std::process::id() % 100_000, n);
    comm.chars().take(15).collect()
}

/// The errno names the tests expect, written out independently of the tool.
pub fn errno_name(ret: i64) -> Option<&'static str> {
    match ret {
        r if r >= 0 => None,
        ENOENT => Some("ENOENT"),
        EACCES => Some("EACCES"),
        -20 => Some("ENOTDIR"),
        -22 => Some("EINVAL"),
        EMFILE => Some("EMFILE"),
        ENOSPC => Some("ENOSPC"),
        ENAMETOOLONG => Some("ENAMETOOLONG"),
        other => panic!("the tests expect no errno {other}"),
    }
}

/// The event among `events` whose path is exactly `path`.
pub fn event_for<'a>(events: &'a [Value], path: &[u8]) -> &'a Value {
    events
        .iter()
        .find(|e| reported_path(e) == path)
        .unwrap_or_else(|| {
            panic!(
                "no event for {:?} in {events:#?}",
                String::from_utf8_lossy(path)
            )
        })
}

/// Asserts that `events` are exactly the `calls`, field by field, in order.
pub fn assert_events_match(events: &[Value], calls: &[Call], comm: &str) {
    assert_eq!(
        events.len(),
        calls.len(),
        "reported {} events for {} calls:\nevents: {events:#?}\ncalls: {calls:#?}",
        events.len(),
        calls.len()
    );
    for (event, call) in events.iter().zip(calls) {
        let context = format!("event {event}\ncall {call:?}");
        assert_eq!(event["type"], "add_watch", "{context}");
        assert_eq!(event["pid"].as_u64(), Some(call.pid), "{context}");
        assert_eq!(event["tid"].as_u64(), Some(call.tid), "{context}");
        assert_eq!(event["comm"], comm, "{context}");
        // The workload's own view of its uid; in the user namespaces of
        // the ENOSPC tests (`unshare -U -r`) that is root, mapped to the
        // tests' runner, root too.
        assert_eq!(event["uid"].as_u64(), Some(call.uid), "{context}");
        assert_eq!(event["ruid"].as_u64(), Some(call.ruid), "{context}");
        assert_eq!(event["fd"].as_i64(), Some(call.fd), "{context}");
        assert_eq!(event["mask"].as_u64(), Some(call.mask), "{context}");
        assert_eq!(event["ret"].as_i64(), Some(call.ret), "{context}");
        assert_eq!(event["errno"].as_str(), errno_name(call.ret), "{context}");
        assert_eq!(reported_path(event), call.path, "{context}");
        assert!(event.get("path_truncated").is_none(), "{context}");
        let time = event["time"].as_str().unwrap();
        assert!(
            time.ends_with('Z') && time.len() == 30,
            "time {time:?} is not RFC 3339 UTC with ns"
        );
    }
}

/// The exact path bytes of an event: `path_base64` when present, else `path`.
pub fn reported_path(event: &Value) -> Vec<u8> {
    match event.get("path_base64") {
        Some(b64) => STANDARD.decode(b64.as_str().unwrap()).unwrap(),
        None => event["path"].as_str().unwrap().as_bytes().to_vec(),
    }
}

/// The watches `pid` holds, as the kernel lists them in /proc/PID/fdinfo
/// (the tests' ground truth): (wd, inode), one per line of every instance.
pub fn fdinfo_watches(pid: u32) -> Vec<(i64, u64)> {
    let mut watches = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap()
        .flatten()
    {
        let info = std::fs::read_to_string(fd.path()).unwrap_or_default();
        for line in info.lines().filter(|l| l.starts_with("inotify wd:")) {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|f| f.strip_prefix(name))
                    .unwrap_or_else(|| panic!("no {name} in {line:?}"))
            };
            // Both in hex, as the kernel prints them.
            let wd = i64::from_str_radix(field("wd:"), 16).unwrap();
            let ino = u64::from_str_radix(field("ino:"), 16).unwrap();
            watches.push((wd, ino));
        }
    }
    watches
}

/// `program` as found in PATH, behind a symlink named `comm` in `dir`.
pub fn renamed(program: &str, dir: &std::path::Path, comm: &str) -> PathBuf {
    let real = ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .map(|d| std::path::Path::new(d).join(program))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{program} is not installed (cargo xtask test installs it)"));
    let link = dir.join(comm);
    std::os::unix::fs::symlink(real, &link).unwrap();
    link
}
