//! Finding every inotify fd on the machine, from a /proc-shaped directory
//! (the real /proc, or a fixture in tests): `PID/fd/*` links that read
//! `anon_inode:inotify`, their `PID/fdinfo/FD`, and the holder's comm, uid
//! and user namespace.
use std::path::Path;

use procfs::process::Process;

use super::fdinfo::{self, Watch};
use crate::exact_text::ProcessName;

/// One inotify fd of one process.
#[derive(Clone, Debug)]
pub struct HeldFd {
    pub pid: u32,
    pub fd: i32,
    pub comm: ProcessName,
    /// The effective uid, as seen from our user namespace.
    pub euid: u32,
    /// The holder's user namespace (the inode of `PID/ns/user`).
    pub user_ns: Option<u64>,
    /// How many watches its fdinfo lists.
    pub count: u64,
    /// Each of them, read with [`Detail::Watches`] (else empty).
    pub watches: Vec<Watch>,
    /// When its fdinfo was read (CLOCK_BOOTTIME ns): a diagnosis
    /// reconciles each holder with the calls traced until then.
    pub read_ns: Option<u64>,
}

/// How much of each watch line a scan reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// The count only (the agent, `check`, `usage` without `--paths`): a
    /// line is counted, not parsed.
    Counts,
    /// Every field (inode, device, file handle): where watches are, and
    /// `--paths`.
    Watches,
}

/// What a scan saw.
#[derive(Debug, Default)]
pub struct Scan {
    pub held: Vec<HeldFd>,
    /// Processes whose fds this process may not read (without root, every
    /// other user's): the snapshot is partial when there are any.
    pub unreadable: Vec<u32>,
}

/// `pid`'s name as text for a table (escaped), or empty when unreadable.
pub fn comm_text(root: &Path, pid: u32) -> String {
    std::fs::read(root.join(pid.to_string()).join("comm"))
        .map(|comm| crate::escape::Escaped(comm.trim_ascii_end()).to_string())
        .unwrap_or_default()
}

/// Below this many processes a thread each, one reads them all. Starting a
/// thread costs tens of microseconds, a scan of a few dozen processes a few
/// milliseconds: on a node, the threads always pay.
const PROCESSES_PER_THREAD: usize = 16;
/// Threads at most: the reads are the kernel's work, which spreads over the
/// cores; past a few, /proc's own locks are what is waited on.
const MAX_THREADS: usize = 8;

/// Every inotify fd under `root`, read as `detail` asks, in pid order.
/// Processes that exit while being read are skipped; those that cannot be
/// read are counted as such. With many processes the reads are spread over
/// the cores (the kernel formats one line per watch, and that is most of a
/// snapshot's time on a node near its cap).
pub fn inotify_fds(root: &Path, detail: Detail) -> Scan {
    let Ok(processes) = procfs::process::all_processes_with_root(root) else {
        return Scan::default();
    };
    let processes: Vec<Process> = processes.flatten().collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_THREADS)
        .min(processes.len().div_ceil(PROCESSES_PER_THREAD))
        .max(1);
    let mut scan = match threads {
        1 => scan_processes(root, processes.iter(), detail),
        _ => std::thread::scope(|scope| {
            // Interleaved, so each thread gets old and new pids alike.
            let shares: Vec<_> = (0..threads)
                .map(|first| {
                    let share = processes.iter().skip(first).step_by(threads);
                    scope.spawn(move || scan_processes(root, share, detail))
                })
                .collect();
            let mut whole = Scan::default();
            for share in shares {
                let part = share.join().expect("a scan thread does not panic");
                whole.held.extend(part.held);
                whole.unreadable.extend(part.unreadable);
            }
            whole
        }),
    };
    scan.held.sort_by_key(|h| (h.pid, h.fd));
    scan.unreadable.sort_unstable();
    scan
}

/// The inotify fds of `processes`, with one buffer for every fdinfo read.
fn scan_processes<'p>(
    root: &Path,
    processes: impl Iterator<Item = &'p Process>,
    detail: Detail,
) -> Scan {
    let mut scan = Scan::default();
    let mut buffer = Vec::with_capacity(64 * 1024);
    for process in processes {
        let pid = process.pid() as u32;
        let dir = root.join(pid.to_string());
        let inotify = match inotify_fds_of(&dir) {
            Ok(fds) => fds,
            // A kernel thread holds no fds: not a gap in the snapshot.
            Err(Denied) if is_kernel_thread(process) => continue,
            Err(Denied) => {
                scan.unreadable.push(pid);
                continue;
            }
        };
        if inotify.is_empty() {
            continue;
        }
        let Some((comm, euid, user_ns)) = holder_facts(&dir) else {
            continue;
        };
        for fd in inotify {
            if read_into(&mut buffer, &dir.join(format!("fdinfo/{fd}"))).is_err() {
                continue;
            }
            let (count, watches) = match detail {
                Detail::Counts => (fdinfo::count(&buffer), Vec::new()),
                Detail::Watches => {
                    let watches = fdinfo::parse(&String::from_utf8_lossy(&buffer));
                    (watches.len() as u64, watches)
                }
            };
            scan.held.push(HeldFd {
                pid,
                fd,
                comm,
                euid,
                user_ns,
                count,
                watches,
                read_ns: crate::clock::WallClock::boot_now_ns().ok(),
            });
        }
    }
    scan
}

/// How many watches `pid`'s fd `fd` lists (its fdinfo's `inotify` lines),
/// or `None` when it cannot be read (gone, or not allowed).
pub fn fdinfo_count(root: &Path, pid: u32, fd: u32) -> Option<u64> {
    let mut buffer = Vec::new();
    read_into(&mut buffer, &root.join(format!("{pid}/fdinfo/{fd}"))).ok()?;
    Some(fdinfo::count(&buffer))
}

/// A holder's comm, effective uid and user namespace, from its directory
/// under the /proc-shaped root (`None` once it is gone).
pub fn holder_facts(dir: &Path) -> Option<(ProcessName, u32, Option<u64>)> {
    let (comm, euid) = identity(dir)?;
    Some((comm, euid, namespace_inode(&dir.join("ns/user"))))
}

/// The whole of `path` into `buffer`, which keeps its room for the next.
fn read_into(buffer: &mut Vec<u8>, path: &Path) -> std::io::Result<()> {
    use std::io::Read as _;
    buffer.clear();
    std::fs::File::open(path)?.read_to_end(buffer)?;
    Ok(())
}

/// A process whose fds this process may not read.
struct Denied;

/// The process's inotify fds: the `fd/N` links that read
/// `anon_inode:inotify`. Listing them takes read access to `fd/` (the
/// owner's, or CAP_DAC_READ_SEARCH), reading each link ptrace access too
/// (the owner's, or CAP_SYS_PTRACE): procfs skips links it cannot read, so
/// this reads them itself to tell "none" from "not allowed".
fn inotify_fds_of(dir: &Path) -> Result<Vec<i32>, Denied> {
    let denied = |err: &std::io::Error| err.kind() == std::io::ErrorKind::PermissionDenied;
    let entries = match std::fs::read_dir(dir.join("fd")) {
        Ok(entries) => entries,
        Err(err) if denied(&err) => return Err(Denied),
        // Gone meanwhile, or a kernel thread: nothing held.
        Err(_) => return Ok(Vec::new()),
    };
    let mut fds = Vec::new();
    for entry in entries.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        match std::fs::read_link(entry.path()) {
            Ok(target) if target.as_os_str() == "anon_inode:inotify" => fds.push(fd),
            Err(err) if denied(&err) => return Err(Denied),
            _ => {}
        }
    }
    Ok(fds)
}

fn is_kernel_thread(process: &Process) -> bool {
    const PF_KTHREAD: u32 = 0x0020_0000;
    process
        .stat()
        .is_ok_and(|stat| stat.flags & PF_KTHREAD != 0)
}

/// The process's comm and effective uid, read as bytes: procfs parses
/// `status` as UTF-8 and fails on a name that is not, which would hide a
/// process that renamed itself so.
fn identity(dir: &Path) -> Option<(ProcessName, u32)> {
    let comm = std::fs::read(dir.join("comm")).ok()?;
    let comm = comm.strip_suffix(b"\n").unwrap_or(&comm);
    let status = std::fs::read(dir.join("status")).ok()?;
    // `Uid:\treal\teffective\tsaved\tfs`
    let uids = status
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"Uid:"))?;
    let euid = std::str::from_utf8(uids).ok()?.split_whitespace().nth(1)?;
    Some((ProcessName::from_bytes(comm), euid.parse().ok()?))
}

/// `user:[4026531837]` -> 4026531837.
pub fn namespace_inode(link: &Path) -> Option<u64> {
    let target = std::fs::read_link(link).ok()?;
    let text = target.to_str()?;
    text.split_once(":[")?.1.strip_suffix(']')?.parse().ok()
}

/// When the process started, in CLOCK_BOOTTIME nanoseconds (the clock of
/// the kernel's records), from `PID/stat`: to the kernel's clock tick.
pub fn start_boot_ns(root: &Path, pid: u32) -> Option<u64> {
    let stat = Process::new_with_root(root.join(pid.to_string()))
        .ok()?
        .stat()
        .ok()?;
    let ticks = procfs::ticks_per_second().max(1);
    Some(stat.starttime.saturating_mul(1_000_000_000 / ticks))
}

/// The process's command line, an argument per string (invalid UTF-8
/// replaced); empty when it cannot be read (or is empty: a kernel thread,
/// a zombie).
pub fn cmdline(root: &Path, pid: u32) -> Vec<String> {
    let Ok(raw) = std::fs::read(root.join(format!("{pid}/cmdline"))) else {
        return Vec::new();
    };
    raw.strip_suffix(b"\0")
        .unwrap_or(&raw)
        .split(|&b| b == 0)
        .filter(|_| !raw.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}
