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

fn usage() -> ! {
    eprintln!(
        "usage: inotify-load add-loop CALLS DIR [CPU] | getppid CALLS [CPU] | hold PROCESSES DIR"
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
