//! From a cgroup v2 id (what each record carries) to the cgroup's path: the
//! id is the inode number of the cgroup's directory in the cgroup2 mount,
//! and kernfs takes it as a file handle, so `open_by_handle_at(2)` finds
//! the directory without walking the tree (CAP_DAC_READ_SEARCH, which the
//! tracer has). A cgroup removed since gives ESTALE: it is reported as
//! gone, by its id.
use std::{
    ffi::OsString,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::{ffi::OsStringExt, fs::OpenOptionsExt},
    },
    path::{Path, PathBuf},
};

/// The directory of a `--cgroup` path (from the cgroup2 mount's root) on
/// this machine; an error naming the flag when there is no such cgroup.
pub fn selected_dir(path: &str) -> anyhow::Result<PathBuf> {
    use anyhow::Context as _;
    let fs = CgroupFs::find(Path::new("/"))
        .context("--cgroup needs cgroup v2, and no cgroup2 mount was found")?;
    let dir = fs.mount_point().join(path.trim_start_matches('/'));
    if !dir.is_dir() {
        anyhow::bail!(
            "--cgroup {path}: no such cgroup ({} does not exist)",
            dir.display()
        );
    }
    Ok(dir)
}

/// `FILEID_KERNFS`: the handle type of a kernfs node (include/linux/exportfs.h).
const FILEID_KERNFS: i32 = 0xfe;

/// The cgroup2 mount, opened once.
pub struct CgroupFs {
    mount_point: PathBuf,
    dir: std::fs::File,
}

/// Why an id has no path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// The cgroup was removed before it could be looked up.
    Gone,
    /// It could not be looked up (no permission, or not a cgroup2 id).
    Unknown,
}

impl CgroupFs {
    /// The cgroup2 mount this process sees; with a `host_root` other than
    /// `/`, one under it first (a tracer in a container with the host's
    /// filesystem mounted there). `None` on a host with cgroup v1 only.
    pub fn find(host_root: &Path) -> Option<CgroupFs> {
        let mounts = procfs::process::Process::myself()
            .and_then(|me| me.mountinfo())
            .ok()?;
        let cgroup2: Vec<PathBuf> = mounts
            .into_iter()
            .filter(|m| m.fs_type == "cgroup2")
            .map(|m| m.mount_point)
            .collect();
        let mount_point = cgroup2
            .iter()
            .find(|m| host_root != Path::new("/") && m.starts_with(host_root))
            .or(cgroup2.first())?
            .clone();
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&mount_point)
            .ok()?;
        Some(CgroupFs { mount_point, dir })
    }

    pub fn mount_point(&self) -> &Path {
        &self.mount_point
    }

    /// The cgroup's path under the mount, `/`-rooted (`/kubepods/...`).
    pub fn path_of(&self, id: u64) -> Result<Vec<u8>, Unresolved> {
        // struct file_handle { u32 handle_bytes; i32 handle_type; u64 id; }
        let mut handle = [0u8; 16];
        handle[..4].copy_from_slice(&8u32.to_ne_bytes());
        handle[4..8].copy_from_slice(&FILEID_KERNFS.to_ne_bytes());
        handle[8..].copy_from_slice(&id.to_ne_bytes());
        // SAFETY: `handle` is a complete struct file_handle that outlives
        // the call; the result is a new fd we own.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_open_by_handle_at,
                self.dir.as_raw_fd(),
                handle.as_ptr(),
                libc::O_PATH | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::ESTALE) | Some(libc::ENOENT) => Unresolved::Gone,
                _ => Unresolved::Unknown,
            });
        }
        // SAFETY: a valid fd, just opened.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let full = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .map_err(|_| Unresolved::Unknown)?;
        let relative = full
            .strip_prefix(&self.mount_point)
            .map_err(|_| Unresolved::Unknown)?;
        let mut path = b"/".to_vec();
        path.extend(OsString::from(relative).into_vec());
        Ok(path)
    }
}

/// The ids of the `--cgroup`s and of every cgroup below them now: the
/// inode numbers of their directories in the cgroup2 mount.
pub fn ids_below(paths: &[String]) -> anyhow::Result<Vec<u64>> {
    use std::os::unix::fs::MetadataExt;
    let mut ids = Vec::new();
    for path in paths {
        let mut pending = vec![selected_dir(path)?];
        while let Some(dir) = pending.pop() {
            // A cgroup removed while walking is simply not there.
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            ids.push(meta.ino());
            for entry in std::fs::read_dir(&dir)?.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    pending.push(entry.path());
                }
            }
        }
    }
    Ok(ids)
}
