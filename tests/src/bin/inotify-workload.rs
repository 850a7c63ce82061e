//! A load generator for the end-to-end tests: makes the inotify calls its
//! arguments name, under a comm of the test's choosing, and prints one JSON
//! line per call with what the call itself saw (pid, tid, arguments, return
//! value), so a test can compare the tracer's report with the truth.
//!
//! Usage: inotify-workload --comm NAME [--wait] STEP...
//! Steps:
//!   init                 inotify_init1(0); later calls use the new fd (a
//!                        failed init is reported and leaves the fd as it was)
//!   add PATH             inotify_add_watch(fd, PATH, IN_ALL_EVENTS)
//!   add-hex HEX          the same with a path given as hex bytes (non-UTF-8)
//!   thread-add PATH      the same from a second thread (tid != pid)
//!   rm WD                inotify_rm_watch(fd, WD)
//!   chdir DIR            change directory (for relative paths)
//!   limit-watches N      set this user namespace's max_inotify_watches
//!   limit-instances N    set this user namespace's max_inotify_instances
//!   sleep SECONDS        wait (holding every instance made so far)
//!   as-user UID          become UID (real, effective and saved uid and
//!                        gid; no supplementary groups), as util-linux's
//!                        `setpriv --reuid --regid --clear-groups` would, for
//!                        guests whose busybox setpriv cannot
//!   fork-hold SECONDS    fork a child that holds the inherited fds for
//!                        SECONDS (or until the workload dies), then exits
//!                        (reported as op "fork", ret = its pid)
//! With --wait, prints {"ready":PID} and waits for a line on stdin first.
use std::{
    ffi::{CString, OsStr},
    io::{BufRead, Write},
    os::unix::ffi::OsStrExt,
};

use base64::{engine::general_purpose::STANDARD, Engine};
use serde::Serialize;

const IN_ALL_EVENTS: u32 = 0x0000_0fff;

#[derive(Serialize)]
struct Call {
    op: &'static str,
    pid: u32,
    tid: u32,
    /// The effective uid as this process sees it (inside a user namespace,
    /// the namespace's view): what the tracer reports as `uid`.
    uid: u32,
    /// The real uid, likewise (`ruid`).
    ruid: u32,
    fd: i32,
    mask: u32,
    path_base64: String,
    ret: i64,
}

fn main() {
    let mut args = std::env::args_os().skip(1);
    let mut fd = -1;
    let mut out = std::io::stdout().lock();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| fail(&format!("{arg:?} needs a value")))
        };
        match arg.to_str().unwrap_or_default() {
            "--comm" => set_comm(&value()),
            "--wait" => {
                writeln!(out, "{{\"ready\":{}}}", std::process::id()).unwrap();
                out.flush().unwrap();
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line).unwrap();
            }
            // Waits for another line on stdin, saying nothing (a test's
            // next step: `Workload::step`).
            "pause" => {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line).unwrap();
            }
            // Closes the instance the next calls would use.
            "close" => {
                // SAFETY: plain syscall on our own fd.
                let ret = unsafe { libc::close(fd) };
                let ret = if ret < 0 { -errno() } else { ret };
                report(&mut out, call("close", fd, 0, b"", ret));
                fd = -1;
            }
            "init" => {
                // SAFETY: plain syscall.
                let ret = unsafe { libc::inotify_init1(0) };
                let ret = if ret < 0 { -errno() } else { ret };
                if ret >= 0 {
                    fd = ret;
                }
                report(&mut out, call("init", -1, 0, b"", ret));
            }
            "rm" => {
                let wd: i32 = value()
                    .to_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| fail("rm needs a number"));
                // SAFETY: plain syscall.
                let ret = unsafe { libc::inotify_rm_watch(fd, wd) };
                let ret = if ret < 0 { -errno() } else { ret };
                report(&mut out, call("rm_watch", fd, wd as u32, b"", ret));
            }
            "add" => report(&mut out, add_watch(fd, value().as_bytes())),
            "add-hex" => {
                let hex = value();
                report(&mut out, add_watch(fd, &decode_hex(hex.to_str().unwrap())));
            }
            "thread-add" => {
                let path = value().as_bytes().to_vec();
                let call = std::thread::spawn(move || add_watch(fd, &path))
                    .join()
                    .unwrap();
                report(&mut out, call);
            }
            "chdir" => std::env::set_current_dir(value()).unwrap_or_else(|e| fail(&e.to_string())),
            "limit-watches" => limit("max_inotify_watches", &value()),
            "limit-instances" => limit("max_inotify_instances", &value()),
            "fork-hold" => {
                let seconds: f64 = value()
                    .to_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| fail("fork-hold needs seconds"));
                // SAFETY: this program is single-threaded here (thread-add
                // joins its thread); the child only sleeps and exits.
                let parent = std::process::id() as libc::pid_t;
                let child = unsafe { libc::fork() };
                if child == 0 {
                    // It goes with its parent (a test kills the workload when
                    // done), so no holder outlives the test that made it.
                    // SAFETY: plain prctl; then the parent may already be gone.
                    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
                    if unsafe { libc::getppid() } != parent {
                        unsafe { libc::_exit(0) };
                    }
                    std::thread::sleep(std::time::Duration::from_secs_f64(seconds));
                    unsafe { libc::_exit(0) };
                }
                report(&mut out, call("fork", fd, 0, b"", child));
            }
            "as-user" => become_user(&value()),
            "sleep" => {
                let seconds: f64 = value()
                    .to_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| fail("sleep needs seconds"));
                std::thread::sleep(std::time::Duration::from_secs_f64(seconds));
            }
            other => fail(&format!("unknown step {other:?}")),
        }
    }
}

fn add_watch(fd: i32, path: &[u8]) -> Call {
    let c_path = CString::new(path).unwrap_or_else(|_| fail("path with a NUL"));
    // SAFETY: plain syscall on our own fd and string.
    let ret = unsafe { libc::inotify_add_watch(fd, c_path.as_ptr(), IN_ALL_EVENTS) };
    let ret = if ret < 0 { -errno() } else { ret };
    call("add_watch", fd, IN_ALL_EVENTS, path, ret)
}

/// A call as the calling thread saw it (for add_watch, `arg` is the mask).
fn call(op: &'static str, fd: i32, arg: u32, path: &[u8], ret: i32) -> Call {
    Call {
        op,
        pid: std::process::id(),
        // SAFETY: gettid has no preconditions.
        tid: unsafe { libc::gettid() } as u32,
        // SAFETY: geteuid and getuid have no preconditions.
        uid: unsafe { libc::geteuid() },
        // SAFETY: as above.
        ruid: unsafe { libc::getuid() },
        fd,
        mask: arg,
        path_base64: STANDARD.encode(path),
        ret: ret.into(),
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Lowers one of this user namespace's own inotify caps (never the host's).
fn limit(name: &str, value: &OsStr) {
    std::fs::write(format!("/proc/sys/user/{name}"), value.as_bytes())
        .unwrap_or_else(|e| fail(&format!("{name}: {e} (run inside unshare -U -r)")));
}

fn report(out: &mut impl Write, call: Call) {
    serde_json::to_writer(&mut *out, &call).unwrap();
    out.write_all(b"\n").unwrap();
}

fn set_comm(name: &OsStr) {
    let name = CString::new(name.as_bytes()).unwrap();
    // SAFETY: PR_SET_NAME copies at most 16 bytes from a valid C string.
    if unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) } != 0 {
        fail("prctl(PR_SET_NAME) failed");
    }
}

fn decode_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or_else(|_| fail("bad hex")))
        .collect()
}

fn become_user(uid: &OsStr) {
    let id: u32 = uid
        .to_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fail("as-user needs a numeric uid"));
    // SAFETY: plain syscalls; groups first, while still privileged.
    let failed = unsafe {
        libc::setgroups(0, std::ptr::null()) != 0
            || libc::setresgid(id, id, id) != 0
            || libc::setresuid(id, id, id) != 0
    };
    if failed {
        fail(&format!("becoming uid {id} failed (errno {})", errno()));
    }
}

fn fail(why: &str) -> ! {
    eprintln!("inotify-workload: {why}");
    std::process::exit(2)
}
