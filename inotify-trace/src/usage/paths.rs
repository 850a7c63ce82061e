//! What a watch points at, from the file handle in its fdinfo line:
//! `open_by_handle_at(2)` on a mount of the watch's device finds the object
//! without walking the filesystem (it needs CAP_DAC_READ_SEARCH).
use std::{cell::RefCell, collections::HashMap, ffi::CString, os::fd::AsRawFd, path::PathBuf};

use super::fdinfo::{FileHandle, Watch};

/// Mount points by device (`major:minor`), from /proc/self/mountinfo; each
/// opened at its first watch (a node has hundreds of mounts, and a
/// diagnosis during a storm of failures must not open them all).
pub struct Resolver {
    points: HashMap<(u32, u32), PathBuf>,
    opened: RefCell<HashMap<(u32, u32), Option<std::fs::File>>>,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::new()
    }
}

impl Resolver {
    pub fn new() -> Resolver {
        let mut points = HashMap::new();
        let infos = procfs::process::Process::myself().and_then(|me| me.mountinfo());
        for mount in infos.into_iter().flatten() {
            let Some((major, minor)) = mount.majmin.split_once(':') else {
                continue;
            };
            let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
                continue;
            };
            points.entry((major, minor)).or_insert(mount.mount_point);
        }
        Resolver {
            points,
            opened: RefCell::default(),
        }
    }

    /// The path of a watched object, if the kernel can tell it.
    pub fn path(&self, watch: &Watch) -> Option<PathBuf> {
        let handle = watch.handle.as_ref()?;
        let device = watch.device();
        let mut opened = self.opened.borrow_mut();
        let mount = opened.entry(device).or_insert_with(|| {
            // A real open, not O_PATH: open_by_handle_at refuses O_PATH
            // fds as its mount fd (EBADF).
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
                .open(self.points.get(&device)?)
                .ok()
        });
        open_by_handle(mount.as_ref()?.as_raw_fd(), handle)
    }
}

use std::os::unix::fs::OpenOptionsExt;

fn open_by_handle(mount_fd: i32, handle: &FileHandle) -> Option<PathBuf> {
    // struct file_handle { u32 handle_bytes; i32 handle_type; u8 f_handle[]; }
    let mut raw = Vec::with_capacity(8 + handle.bytes.len());
    raw.extend_from_slice(&(handle.bytes.len() as u32).to_ne_bytes());
    raw.extend_from_slice(&handle.handle_type.to_ne_bytes());
    raw.extend_from_slice(&handle.bytes);
    // SAFETY: `raw` is a complete struct file_handle that outlives the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            mount_fd,
            raw.as_ptr(),
            libc::O_PATH | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    let fd = fd as i32;
    let link = CString::new(format!("/proc/self/fd/{fd}")).ok();
    let path = link.and_then(|link| std::fs::read_link(link.to_str().ok()?).ok());
    // SAFETY: closing the fd opened just above.
    unsafe { libc::close(fd) };
    path
}
