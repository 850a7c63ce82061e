//! Known programs named with their own fix (inotify-trace/src/culprits):
//! real ones from Debian (`tail -f` from coreutils, python3-watchdog), a
//! process whose command line says `.vscode-server`, and one the table does
//! not know; each as `usage --json` and its text say, and in the diagnosis
//! of an ENOSPC a known program's holdings caused.
use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use tests::{
    fdinfo_watches, require_bpf, tracer_binary, unique_comm, until_lines, workload_binary, Script,
    Tracer, Workload,
};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `pid` holds `n` watches (fdinfo), 20 s at most.
fn until_watching(pid: u32, n: usize) {
    let started = Instant::now();
    while fdinfo_watches(pid).len() < n {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "pid {pid} never held {n} watches"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A copy of the workload reached through a path inside `.vscode-server`,
/// as VS Code's server node is (`~/.vscode-server/bin/COMMIT/node`).
fn vscode_server_program(dir: &Path) -> std::path::PathBuf {
    let bin = dir.join(".vscode-server/bin/0123abcd");
    std::fs::create_dir_all(&bin).unwrap();
    let node = bin.join("node");
    std::os::unix::fs::symlink(workload_binary(), &node).unwrap();
    node
}

fn usage(args: &[&str]) -> (Value, String) {
    let run = |json: bool| {
        let out = Command::new(tracer_binary())
            .arg("usage")
            .args(json.then_some("--json"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    (serde_json::from_str(run(true).trim()).unwrap(), run(false))
}

fn culprit_of(usage: &Value, pid: u32) -> &Value {
    let p = usage["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid)
        .unwrap_or_else(|| panic!("pid {pid} in usage: {usage:#}"));
    &p["culprit"]
}

#[test]
fn usage_names_known_programs_with_their_fix_and_leaves_others_alone() {
    require_bpf!();
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("a/b")).unwrap();
    let followed = dir.path().join("log");
    std::fs::write(&followed, b"").unwrap();

    let tail = Killed(
        Command::new("tail")
            .arg("-f")
            .arg(&followed)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let script = format!(
        "import time\nfrom watchdog.observers.inotify import InotifyObserver\n\
         from watchdog.events import FileSystemEventHandler\n\
         o = InotifyObserver(); o.schedule(FileSystemEventHandler(), {:?}, recursive=True); o.start()\n\
         time.sleep(60)\n",
        tree.to_str().unwrap()
    );
    // Debian's python3, which has python3-watchdog (another on PATH may not).
    let python = tests::renamed("python3", dir.path(), "python3");
    let watchdog = Killed(Command::new(python).args(["-c", &script]).spawn().unwrap());
    let vscode = Killed(
        Command::new(vscode_server_program(dir.path()))
            .args([
                "--comm",
                &unique_comm("vsc"),
                "init",
                "add",
                tree.to_str().unwrap(),
                "sleep",
                "60",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let unknown_comm = unique_comm("plain");
    let script_plain = Script::new()
        .init(3)
        .add(tree.to_str().unwrap(), 1)
        .then("sleep", "60");
    let mut plain = Workload::start(&[], &unknown_comm, &script_plain.args());
    script_plain.check(&plain.release_and_read(2));
    let pids = [
        tail.0.id(),
        watchdog.0.id(),
        vscode.0.id(),
        plain.pid as u32,
    ];
    until_watching(pids[0], 1);
    until_watching(pids[1], 3);
    until_watching(pids[2], 1);

    let pid_args: Vec<String> = pids
        .iter()
        .flat_map(|p| ["--pid".to_owned(), p.to_string()])
        .collect();
    let pid_args: Vec<&str> = pid_args.iter().map(String::as_str).collect();
    let (json, text) = usage(&pid_args);
    let tail_fix = culprit_of(&json, pids[0]);
    assert_eq!(tail_fix["id"], "tail-follow", "{json:#}");
    assert_eq!(tail_fix["raise_limit"], "none");
    assert!(tail_fix["fix"]
        .as_str()
        .unwrap()
        .starts_with("nothing needed"));
    assert_eq!(
        culprit_of(&json, pids[1])["id"],
        "python-watchdog",
        "{json:#}"
    );
    let vsc = culprit_of(&json, pids[2]);
    assert_eq!(vsc["id"], "vscode-server", "{json:#}");
    assert_eq!(vsc["raise_limit"], "no");
    assert!(vsc["fix"]
        .as_str()
        .unwrap()
        .contains("files.watcherExclude"));
    assert_eq!(
        vsc["link"],
        "https://github.com/microsoft/vscode/issues/59679"
    );
    assert!(culprit_of(&json, pids[3]).is_null(), "{json:#}");

    for (said, pid) in [
        ("known: tail -f (", pids[0]),
        ("known: Python watchdog (", pids[1]),
        ("known: VS Code server / code-server (", pids[2]),
    ] {
        // The line under the process's row.
        let row = text
            .lines()
            .position(|l| l.split_whitespace().next() == Some(&pid.to_string()))
            .unwrap_or_else(|| panic!("pid {pid} in:\n{text}"));
        let next = text.lines().nth(row + 1).unwrap_or_default();
        assert!(next.trim_start().starts_with(said), "{next:?} in:\n{text}");
    }
    assert_eq!(text.matches("known: ").count(), 3, "{text}");
    drop(plain);
}

#[test]
fn a_diagnosis_names_the_known_program_that_holds_the_budget() {
    require_bpf!();
    let dir = tempfile::tempdir().unwrap();
    let dirs: Vec<String> = (0..4)
        .map(|i| {
            let d = dir.path().join(format!("w{i}"));
            std::fs::create_dir(&d).unwrap();
            d.to_str().unwrap().to_owned()
        })
        .collect();
    let node = vscode_server_program(dir.path());
    let (holder, failer) = (unique_comm("vscode"), unique_comm("failer"));
    let w = workload_binary();
    let ready = dir.path().join("ready");
    // In a user namespace capped at 3 watches: the editor's server takes them
    // all, then the failer's add_watch fails with ENOSPC.
    let script = format!(
        ": > {ready}; echo 3 > /proc/sys/user/max_inotify_watches; \
         {node} --comm {holder} init add {} add {} add {} sleep 3 > {ready} & \
         {}; {w} --comm {failer} init add {} sleep 1 >/dev/null; kill $!",
        dirs[0],
        dirs[1],
        dirs[2],
        until_lines(&ready.display().to_string(), 4),
        dirs[3],
        node = node.display(),
        ready = ready.display(),
        w = w.display(),
    );
    let tracer = Tracer::start(&["--json", "--comm", &failer]);
    let out = Command::new("unshare")
        .args(["-U", "-r", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let finished = tracer.stop();
    finished.assert_clean_exit();
    let lines = finished.json_lines();
    let d = lines
        .iter()
        .find(|l| l["type"] == "diagnosis")
        .unwrap_or_else(|| panic!("no diagnosis: {lines:#?}"));
    assert_eq!(d["holders"][0]["comm"], holder, "{d:#}");
    assert_eq!(d["holders"][0]["culprit"]["id"], "vscode-server", "{d:#}");

    // In text, the line under the holder says it.
    let text = Command::new(tracer_binary())
        .args([
            "-q", "--comm", &failer, "--", "unshare", "-U", "-r", "sh", "-c", &script,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&text.stderr);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("known: VS Code server / code-server (")
            || stderr.contains("known: VS Code server / code-server ("),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
}
