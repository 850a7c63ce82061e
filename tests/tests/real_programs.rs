//! Real watchers from Debian (fswatch, entr, python3-watchdog, watchman;
//! `cargo xtask test` installs them) traced as they set up: every watch the
//! kernel says each one holds (/proc/PID/fdinfo: its wd and inode) is an
//! event with that wd and a path to that inode, from one of the program's
//! own threads, and the summary's held-now count is fdinfo's.
use std::{
    collections::BTreeSet,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use rstest::rstest;
use serde_json::Value;
use tests::{fdinfo_watches, renamed, reported_path, require_bpf, unique_comm, Tracer};

/// The tree every program watches: twelve directories (so that wds pass
/// 9: fdinfo prints them in hex), two files.
const DIRS: [&str; 12] = [
    "", "a", "a/b", "c", "c/d", "c/e", "f", "g", "h", "i", "j", "k",
];
const FILES: [&str; 2] = ["f1", "a/f2"];

/// A watcher, started under the name `comm` (a symlink to the program, so
/// its comm is `comm` and the tracer's kernel filter takes nothing else).
#[derive(Clone, Copy, Debug)]
enum Watcher {
    Fswatch,
    Entr,
    Watchdog,
    Watchman,
}

struct Running {
    child: Child,
    /// Where the program keeps its state (watchman's socket).
    _state: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Watcher {
    /// How many watches the program takes on the tree: fswatch, watchdog and
    /// watchman watch its directories, entr the files it is given.
    fn expected_watches(self) -> usize {
        match self {
            Watcher::Entr => FILES.len(),
            _ => DIRS.len(),
        }
    }

    fn start(self, tree: &Path, comm: &str) -> Running {
        let state = tempfile::tempdir().unwrap();
        let quiet = |command: &mut Command| {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        };
        let child = match self {
            Watcher::Fswatch => {
                let mut command = Command::new(renamed("fswatch", state.path(), comm));
                command.args(["-r", "-m", "inotify_monitor"]).arg(tree);
                quiet(&mut command);
                command.spawn().unwrap()
            }
            Watcher::Entr => {
                let mut command = Command::new(renamed("entr", state.path(), comm));
                command.args(["-n", "-p", "true"]).stdin(Stdio::piped());
                quiet(&mut command);
                let mut child = command.spawn().unwrap();
                let list: String = FILES
                    .iter()
                    .map(|f| format!("{}\n", tree.join(f).display()))
                    .collect();
                use std::io::Write as _;
                let mut stdin = child.stdin.take().unwrap();
                stdin.write_all(list.as_bytes()).unwrap();
                drop(stdin);
                child
            }
            Watcher::Watchdog => {
                let python = renamed("python3", state.path(), comm);
                let script = "import sys, time\n\
                    from watchdog.observers.inotify import InotifyObserver\n\
                    from watchdog.events import FileSystemEventHandler\n\
                    o = InotifyObserver()\n\
                    o.schedule(FileSystemEventHandler(), sys.argv[1], recursive=True)\n\
                    o.start()\n\
                    time.sleep(600)\n";
                let mut command = Command::new(python);
                command.args(["-c", script]).arg(tree);
                quiet(&mut command);
                command.spawn().unwrap()
            }
            Watcher::Watchman => {
                let sock = state.path().join("sock");
                let mut command = Command::new(renamed("watchman", state.path(), comm));
                command
                    .arg("--foreground")
                    .arg("--no-save-state")
                    .arg(format!("--sockname={}", sock.display()))
                    .arg(format!(
                        "--statefile={}",
                        state.path().join("state").display()
                    ))
                    .arg(format!("--logfile={}", state.path().join("log").display()))
                    .arg(format!("--pidfile={}", state.path().join("pid").display()));
                quiet(&mut command);
                let child = command.spawn().unwrap();
                // The client (comm `watchman`, not traced) asks the server to
                // watch the tree once its socket is there.
                let started = Instant::now();
                loop {
                    let asked = Command::new("watchman")
                        .arg(format!("--sockname={}", sock.display()))
                        .args(["--no-spawn", "watch"])
                        .arg(tree)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .unwrap();
                    if asked.success() {
                        break;
                    }
                    assert!(
                        started.elapsed() < Duration::from_secs(10),
                        "watchman did not start"
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
                child
            }
        };
        Running {
            child,
            _state: state,
        }
    }
}

/// Waits until `pid` holds `n` watches and has stopped adding (the same
/// set twice, 300 ms apart).
fn settled_watches(pid: u32, n: usize) -> BTreeSet<(i64, u64)> {
    let started = Instant::now();
    let mut last = BTreeSet::new();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let listed = fdinfo_watches(pid);
        let now: BTreeSet<(i64, u64)> = listed.iter().copied().collect();
        if listed.len() == n && now.len() == n && now == last {
            return now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{pid} holds {} watches, not {n} distinct: {listed:?}",
            listed.len()
        );
        last = now;
    }
}

fn tasks_of(pid: u32) -> BTreeSet<u64> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| t.file_name().to_str()?.parse().ok())
        .collect()
}

#[rstest]
#[case::fswatch(Watcher::Fswatch)]
#[case::entr(Watcher::Entr)]
#[case::python3_watchdog(Watcher::Watchdog)]
#[case::watchman(Watcher::Watchman)]
fn a_real_watchers_calls_are_what_fdinfo_says_it_holds(#[case] watcher: Watcher) {
    require_bpf!();
    let root = tempfile::tempdir().unwrap();
    // Resolved, as the programs see it (no symlink in the reported paths).
    let tree = root.path().canonicalize().unwrap().join("tree");
    for dir in DIRS {
        std::fs::create_dir_all(tree.join(dir)).unwrap();
    }
    for file in FILES {
        std::fs::write(tree.join(file), b"").unwrap();
    }
    let comm = unique_comm("real");
    let tracer = Tracer::start(&["--json", "--comm", &comm]);
    let program = watcher.start(&tree, &comm);
    let pid = program.child.id();
    let held = settled_watches(pid, watcher.expected_watches());
    let threads = tasks_of(pid);
    let finished = tracer.stop();
    drop(program);
    finished.assert_clean_exit();

    let lines = finished.json_lines();
    let adds: Vec<&Value> = lines.iter().filter(|l| l["type"] == "add_watch").collect();
    for event in &adds {
        assert_eq!(
            (
                event["pid"].as_u64(),
                event["comm"].as_str(),
                event["uid"].as_u64()
            ),
            (Some(u64::from(pid)), Some(comm.as_str()), Some(0)),
            "{event:#}"
        );
        let tid = event["tid"].as_u64().unwrap();
        assert!(
            threads.contains(&tid),
            "tid {tid} is not one of {threads:?}"
        );
        assert!(event["ret"].as_i64().unwrap() >= 0, "{event:#}");
    }
    // Each wd the kernel lists was returned for a path to the inode it lists.
    let reported: BTreeSet<(i64, u64)> = adds
        .iter()
        .map(|event| {
            let path = PathBuf::from(String::from_utf8(reported_path(event)).unwrap());
            assert!(path.starts_with(&tree), "{event:#}");
            let ino = std::fs::metadata(&path).unwrap().ino();
            (event["ret"].as_i64().unwrap(), ino)
        })
        .collect();
    assert_eq!(reported, held, "(wd, inode) traced vs in fdinfo");

    let summary = lines.last().unwrap();
    let row = summary["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid)
        .unwrap_or_else(|| panic!("no summary row for {pid}: {summary:#}"));
    assert_eq!(
        (row["held_watches"].as_u64(), row["comm"].as_str()),
        (Some(held.len() as u64), Some(comm.as_str())),
        "{row:#}"
    );
}
