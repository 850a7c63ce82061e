//! A user namespace's own inotify caps, `/proc/sys/user/max_inotify_*`.
//! Those files show the caps of the namespace of whoever opens them, so a
//! forked child joins the namespace (setns) and reads them there.
use std::os::fd::{AsRawFd, OwnedFd};

use nix::{
    sys::wait::waitpid,
    unistd::{fork, pipe, ForkResult},
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct NamespaceCaps {
    pub max_watches: Option<u64>,
    pub max_instances: Option<u64>,
}

/// The caps of the user namespace `/proc/PID/ns/user` refers to, or `None`
/// when it cannot be joined (it needs CAP_SYS_ADMIN over it).
pub fn caps_of(pid: u32) -> Option<NamespaceCaps> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/user")).ok()?;
    let (read_end, write_end) = pipe().ok()?;
    // SAFETY: the child only makes async-signal-safe calls (setns, open,
    // read, write, _exit) on memory prepared before the fork.
    match unsafe { fork() }.ok()? {
        ForkResult::Child => {
            drop(read_end);
            child(ns.as_raw_fd(), write_end)
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            let mut out = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::fs::File::from(read_end), &mut out);
            let _ = waitpid(child, None);
            let text = String::from_utf8(out).ok()?;
            let mut numbers = text.split_whitespace().map(|n| n.parse().ok());
            Some(NamespaceCaps {
                max_watches: numbers.next().flatten(),
                max_instances: numbers.next().flatten(),
            })
        }
    }
}

fn child(ns: i32, out: OwnedFd) -> ! {
    const WATCHES: &[u8] = b"/proc/sys/user/max_inotify_watches\0";
    const INSTANCES: &[u8] = b"/proc/sys/user/max_inotify_instances\0";
    // SAFETY: raw syscalls on fds we own and on stack buffers.
    unsafe {
        if libc::setns(ns, libc::CLONE_NEWUSER) != 0 {
            libc::_exit(1);
        }
        for path in [WATCHES, INSTANCES] {
            let mut buf = [0u8; 32];
            let fd = libc::open(path.as_ptr().cast(), libc::O_RDONLY);
            let n = if fd >= 0 {
                libc::read(fd, buf.as_mut_ptr().cast(), buf.len())
            } else {
                0
            };
            if n > 0 {
                libc::write(out.as_raw_fd(), buf.as_ptr().cast(), n as usize);
            } else {
                libc::write(out.as_raw_fd(), b"x\n".as_ptr().cast(), 2);
            }
        }
        libc::_exit(0)
    }
}
