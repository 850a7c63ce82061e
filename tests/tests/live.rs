//! Live tracing against the real kernel: each test starts the real tracer,
//! makes its own inotify calls from a workload process with a known comm, and
//! asserts exactly what was reported.
use std::{ffi::OsStr, os::unix::ffi::OsStrExt, process::Command, time::Duration};

use tests::{
    assert_events_match, reported_path, require_bpf, run_workload, tracer_binary, unique_comm,
    Tracer, Workload,
};

/// A directory tree for one test: `dir`, `dir/sub`, `dir2`, a non-UTF-8
/// name and a ~3000-byte path.
struct Tree {
    root: tempfile::TempDir,
}

const NON_UTF8_NAME: &[u8] = b"bad-\xff\xfe-name";

impl Tree {
    fn new() -> Tree {
        let root = tempfile::Builder::new()
            .prefix("inotify-trace-e2e")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(root.path().join("dir/sub")).unwrap();
        std::fs::create_dir(root.path().join("dir2")).unwrap();
        std::fs::create_dir(root.path().join(OsStr::from_bytes(NON_UTF8_NAME))).unwrap();
        std::fs::create_dir_all(root.path().join(Self::long_relative())).unwrap();
        Tree { root }
    }

    /// 15 components of 199 bytes: ~3000 bytes, under PATH_MAX.
    fn long_relative() -> String {
        (0..15)
            .map(|i| format!("{i:02}{}", "x".repeat(197)))
            .collect::<Vec<_>>()
            .join("/")
    }

    fn path(&self, relative: &str) -> String {
        self.root.path().join(relative).to_str().unwrap().to_owned()
    }

    fn non_utf8_hex(&self) -> String {
        let mut bytes = self.root.path().as_os_str().as_bytes().to_vec();
        bytes.push(b'/');
        bytes.extend_from_slice(NON_UTF8_NAME);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Success, re-add, ENOENT, relative path, non-UTF-8 name, ~3000-byte path
/// and a second thread, traced with the given extra flags.
fn every_kind_of_call_is_reported_exactly(extra: &[&str]) {
    let tree = Tree::new();
    let comm = unique_comm("kinds");
    let long = tree.path(&Tree::long_relative());
    assert!(
        (2900..4000).contains(&long.len()),
        "long path is {} bytes",
        long.len()
    );
    let mut args = vec!["--json", "--comm", &comm];
    args.extend_from_slice(extra);
    let tracer = Tracer::start(&args);
    let (dir, missing, dir2, root) = (
        tree.path("dir"),
        tree.path("missing"),
        tree.path("dir2"),
        tree.path(""),
    );
    let hex = tree.non_utf8_hex();
    let calls = run_workload(
        &[],
        &comm,
        &[
            "init",
            "add",
            &dir,
            "add",
            &dir,
            "add",
            &missing,
            "chdir",
            &root,
            "add",
            "dir/sub",
            "add-hex",
            &hex,
            "add",
            &long,
            "thread-add",
            &dir2,
        ],
    );
    let finished = tracer.stop();
    finished.assert_clean_exit();

    // The calls did what the test meant them to.
    let rets: Vec<i64> = calls.iter().map(|c| c.ret).collect();
    assert_eq!(rets, [1, 1, -2, 2, 3, 4, 5], "{calls:#?}");
    assert_eq!(calls[3].path, b"dir/sub");
    assert!(calls[5].path.len() > 2900);
    assert_ne!(calls[6].tid, calls[6].pid);

    let events = finished.add_watch_events_of(&[calls[0].pid]);
    assert_events_match(&events, &calls, &comm);
    // The non-UTF-8 path comes with its exact bytes and a lossy rendering.
    assert!(events[4]["path"]
        .as_str()
        .unwrap()
        .ends_with("bad-\u{fffd}\u{fffd}-name"));
    assert!(events[4]["path_base64"].is_string());
    assert!(events[3].get("path_base64").is_none());
}

#[test]
fn every_kind_of_call_is_reported_exactly_exit_only() {
    require_bpf!();
    every_kind_of_call_is_reported_exactly(&["--attach", "exit"]);
}

#[test]
fn every_kind_of_call_is_reported_exactly_enter_exit() {
    require_bpf!();
    every_kind_of_call_is_reported_exactly(&["--attach", "enter-exit"]);
}

#[test]
fn enospc_inside_a_user_namespace() {
    require_bpf!();
    let tree = Tree::new();
    let comm = unique_comm("nospc");
    for name in ["a", "b", "c", "d", "e"] {
        std::fs::create_dir(tree.path(name)).unwrap();
    }
    let tracer = Tracer::start(&["--json", "--comm", &comm]);
    let paths: Vec<String> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|n| tree.path(n))
        .collect();
    let mut steps = vec!["limit-watches", "3", "init"];
    for path in &paths {
        steps.extend(["add", path.as_str()]);
    }
    // The namespace's own cap, never the host's sysctl (README, Tests).
    let calls = run_workload(&["unshare", "-U", "-r"], &comm, &steps);
    let finished = tracer.stop();
    finished.assert_clean_exit();

    let rets: Vec<i64> = calls.iter().map(|c| c.ret).collect();
    assert_eq!(rets, [1, 2, 3, -28, -28], "{calls:#?}");
    let events = finished.add_watch_events_of(&[calls[0].pid]);
    assert_events_match(&events, &calls, &comm);
    assert_eq!(events[3]["errno"], "ENOSPC");
}

#[test]
fn comm_filter_excludes_other_processes() {
    require_bpf!();
    let tree = Tree::new();
    let (wanted_comm, other_comm) = (unique_comm("want"), unique_comm("other"));
    let dir = tree.path("dir");
    let wanted = Workload::start(
        &[],
        &wanted_comm,
        &["init", "add", &dir, "add", "/nonexistent"],
    );
    let other = Workload::start(
        &[],
        &other_comm,
        &["init", "add", &dir, "add", "/nonexistent"],
    );
    let (wanted_pid, other_pid) = (wanted.pid, other.pid);
    let tracer = Tracer::start(&["--json", "--comm", &wanted_comm]);
    let other_calls = other.release();
    let wanted_calls = wanted.release();
    let finished = tracer.stop();
    finished.assert_clean_exit();

    assert_eq!(other_calls.len(), 2);
    assert!(
        finished.add_watch_events_of(&[other_pid]).is_empty(),
        "{}",
        finished.stdout
    );
    assert_events_match(
        &finished.add_watch_events_of(&[wanted_pid]),
        &wanted_calls,
        &wanted_comm,
    );
}

#[test]
fn pid_filter_excludes_other_processes() {
    require_bpf!();
    let tree = Tree::new();
    let comm = unique_comm("pid");
    let dir = tree.path("dir");
    // Same comm on purpose: only the pid tells them apart.
    let wanted = Workload::start(&[], &comm, &["init", "add", &dir, "add", "/nonexistent"]);
    let other = Workload::start(&[], &comm, &["init", "add", &dir]);
    let (wanted_pid, other_pid) = (wanted.pid, other.pid);
    let pid = wanted_pid.to_string();
    let tracer = Tracer::start(&["--json", "--pid", &pid]);
    let other_calls = other.release();
    let wanted_calls = wanted.release();
    let finished = tracer.stop();
    finished.assert_clean_exit();

    assert_eq!(other_calls.len(), 1);
    let events: Vec<_> = finished
        .json_lines()
        .into_iter()
        .filter(|e| e["type"] != "summary")
        .collect();
    assert!(
        events.iter().all(|e| e["pid"].as_u64() == Some(wanted_pid)),
        "events of other pids: {}",
        finished.stdout
    );
    assert!(finished.add_watch_events_of(&[other_pid]).is_empty());
    assert_events_match(
        &finished.add_watch_events_of(&[wanted_pid]),
        &wanted_calls,
        &comm,
    );
}

#[test]
fn failed_filter_shows_only_failures() {
    require_bpf!();
    let tree = Tree::new();
    let comm = unique_comm("failed");
    let (dir, missing) = (tree.path("dir"), tree.path("missing"));
    let tracer = Tracer::start(&["--json", "--failed", "--comm", &comm]);
    let calls = run_workload(
        &[],
        &comm,
        &[
            "init", "add", &dir, "add", &missing, "add", &dir, "add", &missing,
        ],
    );
    let finished = tracer.stop();
    finished.assert_clean_exit();

    let failures: Vec<_> = calls.iter().filter(|c| c.ret < 0).cloned().collect();
    assert_eq!(failures.len(), 2);
    assert_events_match(
        &finished.add_watch_events_of(&[calls[0].pid]),
        &failures,
        &comm,
    );
}

#[test]
fn paths_longer_than_4096_bytes_are_cut_and_flagged() {
    require_bpf!();
    let comm = unique_comm("long");
    let path = format!("/{}", "y".repeat(4999));
    let tracer = Tracer::start(&["--json", "--comm", &comm]);
    let calls = run_workload(&[], &comm, &["init", "add", &path]);
    let finished = tracer.stop();
    finished.assert_clean_exit();

    assert_eq!(
        calls[0].ret, -36,
        "the kernel refuses paths of PATH_MAX or more"
    );
    let events = finished.add_watch_events_of(&[calls[0].pid]);
    assert_eq!(events.len(), 1, "{}", finished.stdout);
    assert_eq!(events[0]["errno"], "ENAMETOOLONG");
    assert_eq!(events[0]["path_truncated"], true);
    assert_eq!(reported_path(&events[0]), path.as_bytes()[..4096]);
}

#[test]
fn human_output_is_one_escaped_line_per_event() {
    require_bpf!();
    let comm = unique_comm("human");
    let hostile = "/tmp/\x1b[2Jgone\nfake-line";
    let tracer = Tracer::start(&["--comm", &comm]);
    let calls = run_workload(&[], &comm, &["init", "add", "/", "add", hostile]);
    let finished = tracer.stop();
    finished.assert_clean_exit();

    let lines: Vec<&str> = finished.stdout.lines().collect();
    assert!(
        lines[0].starts_with("TIME") && lines[0].ends_with("PATH"),
        "{}",
        lines[0]
    );
    let fields = |line: &str| {
        line.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let uid = unsafe { libc::getuid() }.to_string();
    let pid = calls[0].pid.to_string();
    assert_eq!(
        fields(lines[1])[1..],
        [&pid, &pid, &uid, &comm, "fd=3", "inotify_init1(0)"]
    );
    assert_eq!(
        fields(lines[2])[1..],
        [&pid, &pid, &uid, &comm, "wd=1", "/"]
    );
    assert_eq!(
        fields(lines[3])[1..],
        [
            &pid,
            &pid,
            &uid,
            &comm,
            "ENOENT",
            "/tmp/\\u{1b}[2Jgone\\nfake-line"
        ]
    );
    // Then the summary, after a blank line.
    assert_eq!(lines[4], "", "{}", finished.stdout);
    assert!(
        lines[5].starts_with("== inotify-trace summary: "),
        "{}",
        lines[5]
    );
    assert!(!finished.stdout.contains('\x1b'));
}

#[test]
fn a_closed_stdout_ends_the_session_quietly() {
    require_bpf!();
    let comm = unique_comm("pipe");
    // `head -n 2` takes the header and one event, then closes the pipe.
    let script = format!(
        "set -o pipefail; '{}' --comm '{comm}' --duration 60s | head -n 2 >/dev/null",
        tracer_binary().display()
    );
    let mut shell = Command::new("bash")
        .args(["-c", &script])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // No "attached" line to wait on through the shell: wait for the programs.
    std::thread::sleep(Duration::from_secs(2));
    run_workload(&[], &comm, &["init", "add", "/", "add", "/"]);
    std::thread::sleep(Duration::from_millis(500));
    // head has exited; the next events hit the closed pipe.
    run_workload(&[], &comm, &["init", "add", "/", "add", "/"]);
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = shell.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the tracer did not stop on a closed pipe"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(shell.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "exit status {status}: {stderr}");
    assert!(
        !stderr.contains("error") && !stderr.contains("panic"),
        "{stderr}"
    );
}

#[test]
fn duration_ends_the_session_with_a_closing_line() {
    require_bpf!();
    let comm = unique_comm("dur");
    let tracer = Tracer::start(&["--comm", &comm, "--duration", "1s"]);
    run_workload(&[], &comm, &["init", "add", "/"]);
    let finished = tracer.wait();
    finished.assert_clean_exit();
    let closing = finished.stderr.lines().last().unwrap();
    // inotify_init1 and inotify_add_watch.
    assert!(
        closing.starts_with("inotify-trace: 2 events, 0 lost in 1."),
        "{closing}"
    );
}

#[test]
fn sigterm_stops_cleanly_with_every_event_flushed() {
    require_bpf!();
    let comm = unique_comm("term");
    let mut tracer = Tracer::start(&["--json", "--comm", &comm]);
    let mut steps = vec!["init"];
    steps.extend(std::iter::repeat_n(["add", "/"], 500).flatten());
    let calls = run_workload(&[], &comm, &steps);
    tracer.signal(libc::SIGTERM);
    let finished = tracer.wait();
    finished.assert_clean_exit();
    assert_events_match(
        &finished.add_watch_events_of(&[calls[0].pid]),
        &calls,
        &comm,
    );
}

/// A caller that is not root, in the given attach mode: its own uid,
/// pid, tid (a second thread too), comm, paths and results, including a
/// permission failure.
fn a_non_root_caller_is_reported_with_its_own_uid(attach: &str) {
    const UID: u64 = 4243;
    let tree = Tree::new();
    // Readable by everyone, but the root-only directory inside is not.
    let root = tree.path("");
    std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let private = tree.path("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(
        &private,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let inside = tree.path("private/dir");
    std::fs::create_dir(&inside).unwrap();

    let comm = unique_comm("uid");
    let tracer = Tracer::start(&["--json", "--comm", &comm, "--attach", attach]);
    let uid = format!("--reuid={UID}");
    // A different gid, so that reading the gid for the uid would show.
    let gid = format!("--regid={}", UID + 1);
    let calls = run_workload(
        &["setpriv", &uid, &gid, "--clear-groups"],
        &comm,
        &["init", "add", &root, "add", &inside, "thread-add", &root],
    );
    let finished = tracer.stop();
    finished.assert_clean_exit();

    let rets: Vec<i64> = calls.iter().map(|c| c.ret).collect();
    assert_eq!(rets, [1, -13, 1], "{calls:#?}");
    assert!(calls.iter().all(|c| c.uid == UID), "{calls:#?}");
    assert_ne!(calls[2].tid, calls[2].pid);
    let events = finished.add_watch_events_of(&[calls[0].pid]);
    assert_events_match(&events, &calls, &comm);
}

#[test]
fn a_non_root_caller_is_reported_with_its_own_uid_exit_only() {
    require_bpf!();
    a_non_root_caller_is_reported_with_its_own_uid("exit");
}

#[test]
fn a_non_root_caller_is_reported_with_its_own_uid_enter_exit() {
    require_bpf!();
    a_non_root_caller_is_reported_with_its_own_uid("enter-exit");
}

#[test]
fn without_privileges_one_line_names_what_is_missing() {
    // Needs root only to drop to an unprivileged user.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: run as root to test dropping privileges");
        return;
    }
    let output = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(tracer_binary())
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        "inotify-trace: error: inotify-trace needs root: CAP_BPF and CAP_PERFMON missing (run it with sudo, or grant CAP_BPF and CAP_PERFMON)\n"
    );
}

#[test]
fn an_unknown_flag_is_a_short_error_with_a_hint() {
    let output = Command::new(tracer_binary())
        .arg("--bogus")
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: unexpected argument '--bogus' found"),
        "{stderr}"
    );
    assert!(stderr.contains("--help"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn verbose_says_which_attach_mode_was_chosen_and_why() {
    require_bpf!();
    for (args, expected) in [
        (
            &["-v", "-d", "1s", "--comm", "nobody-at-all"][..],
            "attach mode exit tracepoint alone (the kernel has bpf_task_pt_regs), \
             caller read from task_struct (offsets from the kernel's BTF)",
        ),
        (
            &[
                "-v",
                "-d",
                "1s",
                "--comm",
                "nobody-at-all",
                "--attach",
                "enter-exit",
            ][..],
            "attach mode enter+exit tracepoints (as asked), caller read with helper calls \
             (enter+exit mode)",
        ),
    ] {
        let finished = Tracer::start(args).wait();
        finished.assert_clean_exit();
        assert!(finished.stderr.contains(expected), "{}", finished.stderr);
    }
}
