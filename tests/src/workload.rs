//! The calls the tests make: `inotify-workload`, a child process with a comm
//! of the test's choosing, told step by step what to call (a [`Script`]),
//! and what it saw each call return ([`Call`]).
use std::{
    io::{BufRead, BufReader, Write},
    path::PathBuf,
    process::{Child, ChildStdin, Stdio},
};

use base64::{engine::general_purpose::STANDARD, Engine};
use serde_json::Value;

use crate::{workload_binary, wrapped};

/// One call as the workload itself saw it.
#[derive(Debug, Clone)]
pub struct Call {
    /// `add_watch`, `init`, `rm_watch` or `close`.
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
        self.read(n)
    }

    fn read(&mut self, n: usize) -> Vec<Call> {
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

    /// Lets a released workload past its next `pause` step and returns
    /// the next `n` calls.
    pub fn step(&mut self, n: usize) -> Vec<Call> {
        self.go();
        self.read(n)
    }

    fn go(&mut self) {
        let stdin = self.stdin.as_mut().expect("the workload's stdin");
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
    }
}

impl Workload {
    /// Kills it (SIGKILL) and waits until it is gone, its fds closed.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.kill();
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

    /// Closes the latest instance (`ret` 0).
    pub fn close(self) -> Script {
        self.call(&["close"], Some(0))
    }

    /// Waits for the test's [`Workload::step`].
    pub fn pause(self) -> Script {
        self.then_alone("pause")
    }

    fn then_alone(mut self, step: &str) -> Script {
        self.args.push(step.to_owned());
        self
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

    /// How many calls its steps make.
    pub fn calls(&self) -> usize {
        self.expected.len()
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

/// A shell loop that waits until `file` has `n` lines (the workload prints
/// one per call it made). The file must exist before the loop starts: a
/// missing one makes `[` fail, which ends the loop at once instead of waiting.
pub fn until_lines(file: &str, n: usize) -> String {
    format!("while [ \"$(wc -l < {file})\" -lt {n} ]; do sleep 0.01; done")
}

/// A comm no other process on the machine has: 15 bytes at most.
pub fn unique_comm(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let comm = format!("it{}{}-{tag}", std::process::id() % 100_000, n);
    comm.chars().take(15).collect()
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
