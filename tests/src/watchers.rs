//! Real programs that hold inotify watches, as the tests run them, in one
//! harness: Debian's `tail -f`, python3-watchdog, syncthing, fswatch, entr
//! and watchman, chokidar from npm on Debian's Node.js (all installed by
//! `cargo xtask test`'s setup), and a process whose command line says
//! `.vscode-server`. Each is started on a directory tree, under a comm of
//! the test's choosing where the test filters on it, and waited for until it
//! watches the tree, as /proc/PID/fdinfo shows.
use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::{fdinfo_watches, wait::wait_until, workload_binary};

/// The chokidar the setup installs (npm, globally), pinned.
pub const CHOKIDAR: &str = "chokidar@4.0.3";

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Program {
    TailFollow,
    PythonWatchdog,
    Chokidar,
    Syncthing,
    VscodeServer,
    Fswatch,
    Entr,
    Watchman,
}

impl Program {
    /// The programs the culprit table knows.
    pub const KNOWN: [Program; 5] = [
        Program::TailFollow,
        Program::PythonWatchdog,
        Program::Chokidar,
        Program::Syncthing,
        Program::VscodeServer,
    ];

    /// The id the culprit table gives it.
    pub fn culprit(self) -> &'static str {
        match self {
            Program::TailFollow => "tail-follow",
            Program::PythonWatchdog => "python-watchdog",
            Program::Chokidar => "node-watcher",
            Program::Syncthing => "syncthing",
            Program::VscodeServer => "vscode-server",
            other => panic!("{other:?} is not in the culprit table"),
        }
    }

    /// The table's name for it, as text output says it ("known: NAME: ").
    pub fn known_as(self) -> &'static str {
        match self {
            Program::TailFollow => "tail -f",
            Program::PythonWatchdog => "Python watchdog (watchmedo, Observer)",
            Program::Chokidar => "Node.js file watcher (chokidar, webpack, vite, jest --watch)",
            Program::Syncthing => "Syncthing",
            Program::VscodeServer => "VS Code server / code-server",
            other => panic!("{other:?} is not in the culprit table"),
        }
    }

    /// Its comm, for a filter, when started by [`Running::start`].
    pub fn comm(self) -> &'static str {
        match self {
            Program::TailFollow => "tail",
            Program::PythonWatchdog => "python3",
            Program::Chokidar => "node",
            Program::Syncthing => "syncthing",
            Program::VscodeServer => VSCODE_COMM,
            Program::Fswatch => "fswatch",
            Program::Entr => "entr",
            Program::Watchman => "watchman",
        }
    }

    /// The watches it holds on `tree`: `tail -f` follows one file (the
    /// stand-in for VS Code watches the root), entr the tree's files it is
    /// given, the others every directory.
    pub fn watches(self, tree: &Path) -> usize {
        match self {
            Program::TailFollow | Program::VscodeServer => 1,
            Program::Entr => files(tree).len(),
            _ => directories(tree),
        }
    }

    /// The command that starts it on `tree` under the comm `comm` (a link
    /// to the program by that name, where the program is Debian's), with
    /// its files in `dir`.
    fn command(self, dir: &Path, tree: &Path, comm: &str) -> Vec<OsString> {
        let tree = tree.as_os_str().to_owned();
        let as_comm = |program: &str| crate::renamed(program, dir, comm).into_os_string();
        match self {
            Program::TailFollow => {
                let followed = dir.join("followed.log");
                std::fs::write(&followed, b"").unwrap();
                vec!["tail".into(), "-f".into(), followed.into()]
            }
            Program::PythonWatchdog => {
                let script = "import sys, time\n\
                     from watchdog.observers.inotify import InotifyObserver\n\
                     from watchdog.events import FileSystemEventHandler\n\
                     o = InotifyObserver(); o.schedule(FileSystemEventHandler(), sys.argv[1], recursive=True); o.start()\n\
                     time.sleep(600)\n";
                // Debian's python3, which has python3-watchdog (another
                // on PATH may not).
                vec![as_comm("python3"), "-c".into(), script.into(), tree]
            }
            Program::Fswatch => vec![
                as_comm("fswatch"),
                "-r".into(),
                "-m".into(),
                "inotify_monitor".into(),
                tree,
            ],
            // entr reads the files to watch from its stdin (below).
            Program::Entr => vec![as_comm("entr"), "-n".into(), "-p".into(), "true".into()],
            Program::Watchman => {
                let state = |name: &str| {
                    let mut arg = OsString::from(format!("--{name}="));
                    arg.push(dir.join(name));
                    arg
                };
                vec![
                    as_comm("watchman"),
                    "--foreground".into(),
                    "--no-save-state".into(),
                    state("sockname"),
                    state("statefile"),
                    state("logfile"),
                    state("pidfile"),
                ]
            }
            Program::Chokidar => {
                let script = dir.join("watch.js");
                std::fs::write(
                    &script,
                    "require('chokidar').watch(process.argv[2], { persistent: true });\n",
                )
                .unwrap();
                let mut node_path = OsString::from("NODE_PATH=");
                node_path.push(npm_global_root());
                vec!["env".into(), node_path, "node".into(), script.into(), tree]
            }
            Program::Syncthing => {
                let home = syncthing_home(dir, Path::new(&tree));
                vec![
                    "env".into(),
                    "STNOUPGRADE=1".into(),
                    "syncthing".into(),
                    "serve".into(),
                    "--home".into(),
                    home.into(),
                    "--no-browser".into(),
                    "--no-upgrade".into(),
                ]
            }
            Program::VscodeServer => vec![
                vscode_server_program(dir).into(),
                "--comm".into(),
                VSCODE_COMM.into(),
                "init".into(),
                "add".into(),
                tree,
                "sleep".into(),
                "120".into(),
            ],
        }
    }
}

/// The comm of the VS Code server stand-in: the table must match it by its
/// command line, not by its name.
const VSCODE_COMM: &str = "vsc-server-node";

/// The directories of a small test tree, relative to its root ("" is the
/// root).
const TREE_DIRS: [&str; 3] = ["", "a", "a/b"];

/// Makes a tree of [`TREE_DIRS`] at `dir/tree`.
pub fn tree(dir: &Path) -> PathBuf {
    tree_of(dir, &TREE_DIRS, &[])
}

/// Makes a tree of these directories and (empty) files at `dir/tree`.
pub fn tree_of(dir: &Path, dirs: &[&str], files: &[&str]) -> PathBuf {
    let tree = dir.join("tree");
    for d in dirs {
        std::fs::create_dir_all(tree.join(d)).unwrap();
    }
    for f in files {
        std::fs::write(tree.join(f), b"").unwrap();
    }
    tree
}

/// The directories of `tree`, itself included.
fn directories(tree: &Path) -> usize {
    1 + std::fs::read_dir(tree)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| directories(&e.path()))
        .sum::<usize>()
}

/// The files of `tree`, at any depth.
fn files(tree: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(tree)
        .unwrap()
        .flatten()
        .flat_map(|e| match e.file_type().is_ok_and(|t| t.is_dir()) {
            true => files(&e.path()),
            false => vec![e.path()],
        })
        .collect()
}

/// A running program; killed with its children when dropped.
pub struct Running {
    pub program: Program,
    child: Child,
    /// The process that holds its watches (syncthing's monitor forks the
    /// process that does the work).
    pub holder: u32,
}

impl Running {
    /// Starts `program` on `tree` behind `wrapper` (e.g. `unshare -U -r`)
    /// and waits until one process of it holds the watches it should.
    pub fn start(program: Program, dir: &Path, tree: &Path, wrapper: &[&str]) -> Running {
        Running::start_as(program, dir, tree, wrapper, program.comm())
    }

    /// [`Running::start`] under the comm `comm`: the programs started from a
    /// Debian binary (python3-watchdog, fswatch, entr, watchman) run as a
    /// link of that name; tail, chokidar, syncthing and the VS Code
    /// stand-in keep their own [`Program::comm`].
    pub fn start_as(
        program: Program,
        dir: &Path,
        tree: &Path,
        wrapper: &[&str],
        comm: &str,
    ) -> Running {
        // Counted on the tree as given: syncthing's command adds a marker
        // directory it does not watch.
        let watches = program.watches(tree);
        let argv: Vec<OsString> = wrapper
            .iter()
            .map(OsString::from)
            .chain(program.command(dir, tree, comm))
            .collect();
        let mut command = Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = command.spawn().unwrap();
        // entr is told its files on stdin; the others get an empty one.
        let mut stdin = child.stdin.take().unwrap();
        if program == Program::Entr {
            use std::io::Write as _;
            for file in files(tree) {
                writeln!(stdin, "{}", file.display()).unwrap();
            }
        }
        drop(stdin);
        if program == Program::Watchman {
            ask_watchman_to_watch(dir, tree);
        }
        let root = child.id();
        let mut running = Running {
            program,
            child,
            holder: root,
        };
        let what = format!("{program:?} ({argv:?}) holds {watches} watches on {tree:?}");
        running.holder = wait_until(what, Duration::from_secs(60), || {
            if let Ok(Some(status)) = running.child.try_wait() {
                panic!("{program:?} ({argv:?}) exited before it watched {tree:?}: {status}");
            }
            std::iter::once(root)
                .chain(descendants(root))
                .find(|&pid| fdinfo_watches(pid).len() >= watches)
        });
        running
    }

    /// The watches its holder holds now.
    pub fn watches(&self) -> usize {
        fdinfo_watches(self.holder).len()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for pid in descendants(self.child.id()) {
            // SAFETY: plain kill(2) of a process this test started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every process below `pid`, from /proc/*/stat's parent pids.
fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let child: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // The parent is the second field after the comm's closing ')'.
            let parent = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
            Some((child, parent.parse().ok()?))
        })
        .collect();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let of = found[i];
        found.extend(parents.iter().filter(|(_, p)| *p == of).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

/// The watchman client (comm `watchman`, not traced) asks the server
/// started with its files in `dir` to watch `tree`, once its socket is there.
fn ask_watchman_to_watch(dir: &Path, tree: &Path) {
    let mut sockname = OsString::from("--sockname=");
    sockname.push(dir.join("sockname"));
    crate::wait::wait_for("watchman's server answers", Duration::from_secs(10), || {
        Command::new("watchman")
            .arg(&sockname)
            .args(["--no-spawn", "watch"])
            .arg(tree)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    });
}

/// `npm root -g`: where the setup installed chokidar.
fn npm_global_root() -> OsString {
    let out = Command::new("npm").args(["root", "-g"]).output().unwrap();
    assert!(out.status.success(), "npm root -g: {out:?}");
    let root = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        Path::new(&root).join("chokidar").is_dir(),
        "{CHOKIDAR} is not installed in {root} (cargo xtask test installs it)"
    );
    root.into()
}

/// A syncthing home in `dir` sharing `folder` with its filesystem watcher
/// on, and everything that would reach for the network off.
fn syncthing_home(dir: &Path, folder: &Path) -> PathBuf {
    let home = dir.join("syncthing");
    let out = Command::new("syncthing")
        .args(["generate", "--no-default-folder", "--home"])
        .arg(&home)
        .output()
        .unwrap();
    assert!(out.status.success(), "syncthing generate: {out:?}");
    let config_file = home.join("config.xml");
    let config = std::fs::read_to_string(&config_file).unwrap();
    let device = config
        .split("<device id=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("syncthing generate wrote a device id");
    // The folder marker syncthing expects in a folder it shares.
    std::fs::create_dir_all(folder.join(".stfolder")).unwrap();
    let shared = format!(
        "<folder id=\"test\" label=\"test\" path=\"{}\" type=\"sendreceive\" \
         rescanIntervalS=\"3600\" fsWatcherEnabled=\"true\" fsWatcherDelayS=\"1\">\
         <device id=\"{device}\"></device></folder>\n    <device id=",
        folder.display()
    );
    let mut config = config.replacen("<device id=", &shared, 1);
    for (from, to) in [
        (
            "<address>127.0.0.1:8384</address>",
            "<address>127.0.0.1:0</address>",
        ),
        (
            "<listenAddress>default</listenAddress>",
            "<listenAddress>tcp://127.0.0.1:0</listenAddress>",
        ),
        (
            "<globalAnnounceEnabled>true",
            "<globalAnnounceEnabled>false",
        ),
        ("<localAnnounceEnabled>true", "<localAnnounceEnabled>false"),
        ("<relaysEnabled>true", "<relaysEnabled>false"),
        ("<natEnabled>true", "<natEnabled>false"),
        ("<startBrowser>true", "<startBrowser>false"),
        ("<urAccepted>0", "<urAccepted>-1"),
        (
            "<crashReportingEnabled>true",
            "<crashReportingEnabled>false",
        ),
    ] {
        assert!(config.contains(from), "syncthing's config has no {from}");
        config = config.replace(from, to);
    }
    std::fs::write(&config_file, config).unwrap();
    home
}

/// A copy of the workload reached through a path inside `.vscode-server`,
/// as VS Code's server node is (`~/.vscode-server/bin/COMMIT/node`).
pub fn vscode_server_program(dir: &Path) -> PathBuf {
    let bin = dir.join(".vscode-server/bin/0123abcd");
    std::fs::create_dir_all(&bin).unwrap();
    let node = bin.join("node");
    if !node.exists() {
        std::os::unix::fs::symlink(workload_binary(), &node).unwrap();
    }
    node
}
