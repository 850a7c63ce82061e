//! The benchmark's load generator (`cargo xtask bench`):
//!
//!   inotify-load add-loop CALLS DIR [CPU]   inotify_add_watch(fd, DIR) CALLS times
//!   inotify-load fail-loop CALLS DIR [CPU]  the same, each call expected to fail (run it in
//!                                           a user namespace whose watch cap is 0: a storm
//!                                           of ENOSPC)
//!   inotify-load getppid CALLS [CPU]        getppid() CALLS times
//!   inotify-load many-pids PROCESSES DIR    fork PROCESSES children one after another,
//!                                           each making an instance and one watch on DIR,
//!                                           then exiting: that many distinct pids
//!   inotify-load distinct-paths CALLS       inotify_add_watch on CALLS different paths
//!                                           that do not exist (each fails with ENOENT)
//!   inotify-load synth-recording FILE PIDS  write a recording (replacing FILE) of PIDS
//!                                           processes, each an init and an add_watch on a
//!                                           path of its own: more distinct pids than a
//!                                           machine's pid_max lets a live session see
//!   inotify-load hold PROCESSES DIR         fork PROCESSES children, each holding an
//!                                           instance with a watch on DIR, until stdin closes;
//!                                           as root, a hundred per uid from 60000 on, since
//!                                           one uid may hold only max_user_instances (128)
//!   inotify-load hold-watches INSTANCES DIRS ROOT
//!                                           make DIRS directories under ROOT, then INSTANCES
//!                                           instances each watching all of them (a node's
//!                                           watches with few inodes); print `ready WATCHES`
//!                                           and hold them until stdin closes
//!   inotify-load churn SECONDS ROOT         for SECONDS, watchers coming and going under
//!                                           ROOT: children that make an instance or two on a
//!                                           tree of their own, then have directories deleted
//!                                           under them, close an instance, exit or are killed
//!
//! The loops print `{"calls":N,"ns_per_call":X}`: the wall time of the whole
//! loop divided by the calls, after pinning to CPU when given (the tracer
//! runs on the other core).
use std::{ffi::CString, io::Read, time::Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize| -> u64 {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| usage())
    };
    match args.first().map(String::as_str) {
        Some(mode @ ("add-loop" | "fail-loop")) => {
            let calls = number(1);
            let failing = mode == "fail-loop";
            let dir = CString::new(args.get(2).cloned().unwrap_or_else(|| usage())).unwrap();
            pin(args.get(3));
            // SAFETY: plain syscalls on our own fd and string.
            let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
            assert!(fd >= 0, "inotify_init1 failed");
            let started = Instant::now();
            for _ in 0..calls {
                // Re-adding one directory: the same watch each time, as
                // kubelet and inotifywait do a lot; nothing accumulates.
                let wd = unsafe { libc::inotify_add_watch(fd, dir.as_ptr(), libc::IN_ALL_EVENTS) };
                assert_eq!(wd < 0, failing, "inotify_add_watch returned {wd}");
            }
            report(calls, started);
        }
        Some("getppid") => {
            let calls = number(1);
            pin(args.get(2));
            let started = Instant::now();
            for _ in 0..calls {
                // SAFETY: no arguments, no memory.
                std::hint::black_box(unsafe { libc::getppid() });
            }
            report(calls, started);
        }
        Some("many-pids") => {
            let dir = CString::new(args.get(2).cloned().unwrap_or_else(|| usage())).unwrap();
            let started = Instant::now();
            let processes = number(1);
            for _ in 0..processes {
                // SAFETY: single-threaded; the child makes two syscalls and
                // leaves with _exit.
                match unsafe { libc::fork() } {
                    0 => unsafe {
                        let fd = libc::inotify_init1(libc::IN_CLOEXEC);
                        libc::inotify_add_watch(fd, dir.as_ptr(), libc::IN_ALL_EVENTS);
                        libc::_exit(0);
                    },
                    child if child > 0 => unsafe {
                        libc::waitpid(child, std::ptr::null_mut(), 0);
                    },
                    _ => panic!("fork failed"),
                }
            }
            report(processes, started);
        }
        Some("distinct-paths") => {
            let calls = number(1);
            // SAFETY: plain syscalls on our own fd and strings.
            let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
            assert!(fd >= 0, "inotify_init1 failed");
            let started = Instant::now();
            for i in 0..calls {
                let path = CString::new(format!("/nonexistent-inotify-bench/{i}")).unwrap();
                let wd = unsafe { libc::inotify_add_watch(fd, path.as_ptr(), libc::IN_ALL_EVENTS) };
                assert!(wd < 0, "{path:?} exists");
            }
            report(calls, started);
        }
        Some("synth-recording") => {
            let file = args.get(1).cloned().unwrap_or_else(|| usage());
            synth_recording(std::path::Path::new(&file), number(2));
        }
        Some("hold") => hold(number(1), args.get(2).cloned().unwrap_or_else(|| usage())),
        Some("hold-watches") => {
            let root = args.get(3).cloned().unwrap_or_else(|| usage());
            hold_watches(number(1), number(2), std::path::Path::new(&root));
        }
        Some("churn") => {
            let root = args.get(2).cloned().unwrap_or_else(|| usage());
            churn(number(1), std::path::Path::new(&root));
        }
        _ => usage(),
    }
}

fn report(calls: u64, started: Instant) {
    let ns = started.elapsed().as_nanos() as f64 / calls as f64;
    println!("{{\"calls\":{calls},\"ns_per_call\":{ns:.1}}}");
}

fn pin(cpu: Option<&String>) {
    let Some(cpu) = cpu.and_then(|c| c.parse::<usize>().ok()) else {
        return;
    };
    // SAFETY: a zeroed cpu_set_t is valid; we set one bit and apply it to ourselves.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// N children, each with one instance and one watch, until stdin closes.
fn hold(processes: u64, dir: String) {
    let dir = CString::new(dir).unwrap();
    let mut children = Vec::new();
    for _ in 0..processes {
        // SAFETY: single-threaded; the child makes plain syscalls and pauses.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let uid = 60_000 + children.len() as u32 / 100;
            unsafe {
                // Fails harmlessly when not root: then all share our uid.
                libc::setresgid(uid, uid, uid);
                libc::setresuid(uid, uid, uid);
                let fd = libc::inotify_init1(0);
                libc::inotify_add_watch(fd, dir.as_ptr(), libc::IN_ALL_EVENTS);
                // Dies with the parent.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                libc::pause();
                libc::_exit(0);
            }
        }
        children.push(pid);
    }
    println!("ready");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    for pid in children {
        // SAFETY: our own children.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// `dirs` directories under `root` (made when missing), their paths.
fn tree(root: &std::path::Path, dirs: u64) -> Vec<CString> {
    (0..dirs)
        .map(|i| {
            let dir = root.join(i.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            CString::new(dir.into_os_string().into_encoded_bytes()).unwrap()
        })
        .collect()
}

/// A new instance watching each of `dirs`; its fd.
fn watching(dirs: &[CString]) -> i32 {
    // SAFETY: plain syscalls on our own fd and strings.
    unsafe {
        let fd = libc::inotify_init1(libc::IN_CLOEXEC);
        assert!(fd >= 0, "inotify_init1 failed");
        for dir in dirs {
            let wd = libc::inotify_add_watch(fd, dir.as_ptr(), libc::IN_ALL_EVENTS);
            assert!(wd > 0, "inotify_add_watch failed");
        }
        fd
    }
}

/// `instances` instances of this process, each watching the same `dirs`
/// directories, until stdin closes.
fn hold_watches(instances: u64, dirs: u64, root: &std::path::Path) {
    let dirs = tree(root, dirs);
    let fds: Vec<i32> = (0..instances).map(|_| watching(&dirs)).collect();
    println!("ready {}", fds.len() * dirs.len());
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// Watchers coming and going for `seconds`: each turn a child makes two
/// instances on a tree of its own, directories are deleted under it (the
/// kernel drops those watches), it closes one instance, then it exits or
/// is killed (every third), and its tree goes.
fn churn(seconds: u64, root: &std::path::Path) {
    let started = Instant::now();
    let mut turn = 0u64;
    while started.elapsed().as_secs() < seconds {
        let dir = root.join(format!("churn-{turn}"));
        let dirs = tree(&dir, 20 + turn % 30);
        // The child says "ready" on one pipe, the parent "go" on the other.
        let (ready, go) = (pipe(), pipe());
        // SAFETY: single-threaded; the child makes plain syscalls and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let _kept = watching(&dirs);
            let closed = watching(&dirs[..dirs.len() / 2]);
            say(ready.1);
            hear(go.0);
            // SAFETY: our own fd.
            unsafe { libc::close(closed) };
            say(ready.1);
            hear(go.0);
            // SAFETY: exits at once, closing the other instance.
            unsafe { libc::_exit(0) };
        }
        hear(ready.0);
        for gone in dirs.iter().step_by(3) {
            // SAFETY: a path we made.
            unsafe { libc::rmdir(gone.as_ptr()) };
        }
        say(go.1);
        hear(ready.0);
        match turn % 3 {
            // SAFETY: our own child.
            0 => unsafe {
                libc::kill(pid, libc::SIGKILL);
            },
            _ => say(go.1),
        }
        // SAFETY: our own child and fds.
        unsafe {
            libc::waitpid(pid, std::ptr::null_mut(), 0);
            for fd in [ready.0, ready.1, go.0, go.1] {
                libc::close(fd);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        turn += 1;
    }
    println!("turns {turn}");
}

fn say(fd: i32) {
    // SAFETY: one byte from a valid buffer to a pipe of ours.
    unsafe { libc::write(fd, b"x".as_ptr().cast(), 1) };
}

fn hear(fd: i32) {
    let mut byte = 0u8;
    // SAFETY: one byte into a valid buffer from a pipe of ours.
    unsafe { libc::read(fd, (&raw mut byte).cast(), 1) };
}

fn pipe() -> (i32, i32) {
    let mut fds = [0; 2];
    // SAFETY: a valid array of two ints.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    (fds[0], fds[1])
}

fn usage() -> ! {
    eprintln!(
        "usage: inotify-load add-loop CALLS DIR [CPU] | getppid CALLS [CPU] | hold PROCESSES DIR | hold-watches INSTANCES DIRS ROOT | churn SECONDS ROOT"
    );
    std::process::exit(2)
}

/// A recording of `pids` processes made with the tool's own writer: each
/// an `inotify_init1` returning fd 3 and an add_watch of a path of its own
/// returning wd 1, a microsecond apart.
fn synth_recording(file: &std::path::Path, pids: u64) {
    use inotify_trace::{
        clock::WallClock,
        event::encode,
        recording::{metadata::Metadata, writer::Recorder},
        stream::End,
    };
    use inotify_trace_common::{comm_key, EventHeader, Kind, FLAG_INIT1};

    let clock = WallClock::now().expect("clocks");
    let start = WallClock::boot_now_ns().expect("boot clock");
    let metadata = Metadata::of_this_session(&clock, start, Default::default());
    let mut recorder = Recorder::create(
        &inotify_trace::file_arg::FileArg::Path(file.to_owned()),
        true,
        &metadata,
    )
    .expect("creating the recording");
    let mut record = Vec::new();
    let mut time_ns = start;
    for pid in 1..=pids as u32 {
        let init = EventHeader {
            kind: Kind::Init as u32,
            flags: FLAG_INIT1,
            time_ns,
            pid,
            tid: pid,
            uid: 0,
            fd: -1,
            ret: 3,
            arg: 0,
            path_len: 0,
            comm: comm_key(b"synthetic"),
            euid: 0,
            user_ns: 4026531837,
            cgroup_id: 1,
            charge_levels: 0,
            reserved: 0,
        };
        let path = format!("/srv/pods/{pid}/volume");
        let add = EventHeader {
            kind: Kind::AddWatch as u32,
            flags: 0,
            fd: 3,
            ret: 1,
            arg: 0xfff,
            time_ns: time_ns + 500,
            ..init
        };
        for (header, path) in [(init, &b""[..]), (add, path.as_bytes())] {
            record.clear();
            encode(&header, path, &mut record);
            recorder.event(&record).expect("writing the recording");
        }
        time_ns += 1000;
    }
    recorder
        .end(&End {
            end_time: String::new(),
            duration_s: (time_ns - start) as f64 / 1e9,
            limits: Default::default(),
            events: 2 * pids,
            lost: 0,
            held_now: Vec::new(),
        })
        .expect("writing the recording");
}
