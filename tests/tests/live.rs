//! Live tracing against the real kernel: each test starts the real tracer,
//! makes its own inotify calls from a workload process with a known comm, and
//! asserts exactly what was reported.
use std::{ffi::OsStr, os::unix::ffi::OsStrExt, process::Command, time::Duration};

use rstest::rstest;
use serde_json::json;
use tests::{
    add_watches, assert_events_match, event_for, own_cgroup, reported_path, require_bpf,
    tracer_binary, unique_comm,
    wait::{wait_for, wait_for_exit},
    Script, Tracer, Workload, EACCES, ENAMETOOLONG, ENOENT, ENOSPC,
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

    /// The non-UTF-8 directory's path, as bytes.
    fn non_utf8_path(&self) -> Vec<u8> {
        let mut bytes = self.root.path().as_os_str().as_bytes().to_vec();
        bytes.push(b'/');
        bytes.extend_from_slice(NON_UTF8_NAME);
        bytes
    }

    fn non_utf8_hex(&self) -> String {
        self.non_utf8_path()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Success, re-add, ENOENT, relative path, non-UTF-8 name, ~3000-byte path
/// and a second thread, in each attach mode (fexit where the kernel allows
/// it; where it does not, its refusal is one line).
#[rstest]
#[case::exit_only("exit")]
#[case::enter_exit("enter-exit")]
#[case::fexit("fexit")]
fn every_kind_of_call_is_reported_exactly(#[case] attach: &str) {
    require_bpf!();
    if attach == "fexit" && tests::fexit_refused() {
        return;
    }
    let tree = Tree::new();
    let comm = unique_comm("kinds");
    let long = tree.path(&Tree::long_relative());
    assert!(
        (2900..4000).contains(&long.len()),
        "long path is {} bytes",
        long.len()
    );
    let tracer = Tracer::start(&["--json", "--comm", &comm, "--attach", attach]);
    let (dir, dir2) = (tree.path("dir"), tree.path("dir2"));
    let calls = Script::new()
        .init(3)
        .add(&dir, 1) // a new watch
        .add(&dir, 1) // the same inode again: the same wd, a re-add
        .add(&tree.path("missing"), ENOENT)
        .then("chdir", &tree.path(""))
        .add("dir/sub", 2) // relative to the working directory, reported as passed
        .add_hex(&tree.non_utf8_hex(), 3)
        .add(&long, 4)
        .thread_add(&dir2, 5)
        .run(&[], &comm);
    let finished = tracer.stop();
    finished.assert_clean_exit();

    let thread_call = calls.last().unwrap();
    assert_ne!(thread_call.tid, thread_call.pid, "{thread_call:?}");
    let events = finished.add_watch_events_of(&[calls[0].pid]);
    assert_events_match(&events, &calls, &comm);
    // The non-UTF-8 path comes with its exact bytes and a lossy rendering;
    // a UTF-8 one with its text alone.
    let non_utf8 = event_for(&events, &tree.non_utf8_path());
    assert!(non_utf8["path"]
        .as_str()
        .unwrap()
        .ends_with("bad-\u{fffd}\u{fffd}-name"));
    assert!(non_utf8["path_base64"].is_string());
    assert!(event_for(&events, b"dir/sub").get("path_base64").is_none());
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
    // The namespace's own cap, never the host's sysctl (README, Tests).
    let calls = Script::new()
        .then("limit-watches", "3")
        .init(3)
        .add(&tree.path("a"), 1)
        .add(&tree.path("b"), 2)
        .add(&tree.path("c"), 3)
        .add(&tree.path("d"), ENOSPC) // the fourth watch: over the budget
        .add(&tree.path("e"), ENOSPC)
        .run(&["unshare", "-U", "-r"], &comm);
    let finished = tracer.stop();
    finished.assert_clean_exit();

    let events = finished.add_watch_events_of(&[calls[0].pid]);
    assert_events_match(&events, &calls, &comm);
    assert_eq!(
        event_for(&events, tree.path("d").as_bytes())["errno"],
        "ENOSPC"
    );
}

#[test]
fn comm_filter_excludes_other_processes() {
    require_bpf!();
    let tree = Tree::new();
    let (wanted_comm, other_comm) = (unique_comm("want"), unique_comm("other"));
    let script = Script::new()
        .init(3)
        .add(&tree.path("dir"), 1)
        .add("/nonexistent", ENOENT);
    let wanted = Workload::start(&[], &wanted_comm, &script.args());
    let other = Workload::start(&[], &other_comm, &script.args());
    let (wanted_pid, other_pid) = (wanted.pid, other.pid);
    let tracer = Tracer::start(&["--json", "--comm", &wanted_comm]);
    let other_calls = other.release_all();
    let wanted_calls = wanted.release_all();
    let finished = tracer.stop();
    finished.assert_clean_exit();

    script.check(&other_calls);
    script.check(&wanted_calls);
    let wanted_calls = add_watches(wanted_calls);
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
    let wanted_script = Script::new()
        .init(3)
        .add(&dir, 1)
        .add("/nonexistent", ENOENT);
    let other_script = Script::new().init(3).add(&dir, 1);
    // Same comm on purpose: only the pid tells them apart.
    let wanted = Workload::start(&[], &comm, &wanted_script.args());
    let other = Workload::start(&[], &comm, &other_script.args());
    let (wanted_pid, other_pid) = (wanted.pid, other.pid);
    let pid = wanted_pid.to_string();
    let tracer = Tracer::start(&["--json", "--pid", &pid]);
    let other_calls = other.release_all();
    let wanted_calls = wanted.release_all();
    let finished = tracer.stop();
    finished.assert_clean_exit();

    other_script.check(&other_calls);
    wanted_script.check(&wanted_calls);
    let wanted_calls = add_watches(wanted_calls);
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
    let calls = Script::new()
        .init(3)
        .add(&dir, 1)
        .add(&missing, ENOENT)
        .add(&dir, 1)
        .add(&missing, ENOENT)
        .run(&[], &comm);
    let finished = tracer.stop();
    finished.assert_clean_exit();

    let failures: Vec<_> = calls.iter().filter(|c| c.ret < 0).cloned().collect();
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
    // The kernel refuses paths of PATH_MAX or more.
    let calls = Script::new()
        .init(3)
        .add(&path, ENAMETOOLONG)
        .run(&[], &comm);
    let finished = tracer.stop();
    finished.assert_clean_exit();

    let events = finished.add_watch_events_of(&[calls[0].pid]);
    let [event] = &events[..] else {
        panic!("one event expected: {}", finished.stdout)
    };
    assert_eq!(event["errno"], "ENAMETOOLONG");
    assert_eq!(event["path_truncated"], true);
    assert_eq!(reported_path(event), path.as_bytes()[..4096]);
}

#[test]
fn human_output_is_one_escaped_line_per_event() {
    require_bpf!();
    let comm = unique_comm("human");
    let hostile = "/tmp/\x1b[2Jgone\nfake-line";
    let tracer = Tracer::start(&["--comm", &comm]);
    let calls = Script::new()
        .init(3)
        .add("/", 1)
        .add(hostile, ENOENT)
        .run(&[], &comm);
    let finished = tracer.stop();
    finished.assert_clean_exit();

    let uid = unsafe { libc::getuid() }.to_string();
    let pid = calls[0].pid.to_string();
    // The POD/UNIT column for a process in this test's cgroup (the
    // workload inherits it): its innermost unit, else `-` (the tests do not
    // run in a pod).
    let place = own_cgroup()
        .rsplit('/')
        .find(|part| part.ends_with(".service") || part.ends_with(".scope"))
        .unwrap_or("-")
        .to_owned();
    let mut lines = finished.stdout.lines();
    let mut next = || {
        lines
            .next()
            .unwrap_or_else(|| panic!("{}", finished.stdout))
    };
    // Each line as its columns after TIME, beside what it must say.
    let columns = |line: &str| {
        line.split_whitespace()
            .skip(1)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let header = next();
    assert!(
        header.starts_with("TIME") && header.ends_with("PATH"),
        "{header}"
    );
    // FD: the instance a call used (`-` for an init: its new fd is its
    // RESULT).
    assert_eq!(
        columns(next()),
        [
            &pid,
            &pid,
            &uid,
            &comm,
            &place,
            "-",
            "fd=3",
            "inotify_init1(0)"
        ]
    );
    assert_eq!(
        columns(next()),
        [&pid, &pid, &uid, &comm, &place, "3", "wd=1", "/"]
    );
    assert_eq!(
        columns(next()),
        [
            &pid,
            &pid,
            &uid,
            &comm,
            &place,
            "3",
            "ENOENT",
            "/tmp/\\u{1b}[2Jgone\\nfake-line"
        ]
    );
    // Then the summary, after a blank line.
    assert_eq!(next(), "");
    let title = next();
    assert!(title.starts_with("== inotify-trace summary: "), "{title}");
    assert!(!finished.stdout.contains('\x1b'));
}

#[test]
fn a_closed_stdout_ends_the_session_quietly() {
    require_bpf!();
    let comm = unique_comm("pipe");
    // `head -n 2` takes the header and one event, then closes the pipe; the
    // tracer's stderr goes to a file, to wait for "attached" in it.
    let dir = tempfile::tempdir().unwrap();
    let (stderr_file, head_done) = (dir.path().join("stderr"), dir.path().join("head-done"));
    let script = format!(
        "set -o pipefail; '{}' --comm '{comm}' --duration 60s 2>'{}' | {{ head -n 2 >/dev/null; touch '{}'; }}",
        tracer_binary().display(),
        stderr_file.display(),
        head_done.display(),
    );
    let mut shell = Command::new("bash").args(["-c", &script]).spawn().unwrap();
    wait_for("attached", Duration::from_secs(60), || {
        std::fs::read_to_string(&stderr_file).is_ok_and(|s| s.contains("attached"))
    });
    Script::new()
        .init(3)
        .add("/", 1)
        .add("/", 1)
        .run(&[], &comm);
    wait_for("head exited", Duration::from_secs(60), || {
        head_done.exists()
    });
    // head has exited; the next events hit the closed pipe.
    Script::new()
        .init(3)
        .add("/", 1)
        .add("/", 1)
        .run(&[], &comm);
    let status = wait_for_exit(
        &mut shell,
        "the tracer stopping on a closed pipe",
        Duration::from_secs(20),
    );
    let stderr = std::fs::read_to_string(&stderr_file).unwrap();
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
    Script::new().init(3).add("/", 1).run(&[], &comm);
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
    let calls = (0..500)
        .fold(Script::new().init(3), |script, _| script.add("/", 1))
        .run(&[], &comm);
    tracer.signal(libc::SIGTERM);
    let finished = tracer.wait();
    finished.assert_clean_exit();
    assert_events_match(
        &finished.add_watch_events_of(&[calls[0].pid]),
        &calls,
        &comm,
    );
}

/// A caller that is not root, in each attach mode: its own uid, pid, tid
/// (a second thread too), comm, paths and results, including a permission
/// failure.
#[rstest]
#[case::exit_only("exit")]
#[case::enter_exit("enter-exit")]
fn a_non_root_caller_is_reported_with_its_own_uid(#[case] attach: &str) {
    require_bpf!();
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
    let calls = Script::new()
        .init(3)
        .add(&root, 1)
        .add(&inside, EACCES)
        .thread_add(&root, 1)
        .run(&["setpriv", &uid, &gid, "--clear-groups"], &comm);
    let finished = tracer.stop();
    finished.assert_clean_exit();

    assert!(calls.iter().all(|c| c.uid == UID), "{calls:#?}");
    let thread_call = calls.last().unwrap();
    assert_ne!(thread_call.tid, thread_call.pid, "{thread_call:?}");
    let events = finished.add_watch_events_of(&[calls[0].pid]);
    assert_events_match(&events, &calls, &comm);
}

/// A caller whose real and effective uids differ (root acting with a real
/// uid of 4321, as a setuid-root program runs), in each attach mode: `uid`
/// is the effective uid the kernel charges, `ruid` the real one.
#[rstest]
#[case::exit_only("exit")]
#[case::enter_exit("enter-exit")]
fn the_effective_uid_is_reported_as_uid_and_the_real_one_as_ruid(#[case] attach: &str) {
    require_bpf!();
    let tree = Tree::new();
    let dir = tree.path("");
    let comm = unique_comm("euid");
    let tracer = Tracer::start(&["--json", "--comm", &comm, "--attach", attach]);
    let calls = Script::new()
        .init(3)
        .add(&dir, 1)
        .thread_add(&dir, 1)
        .run(&["setpriv", "--ruid=4321"], &comm);
    let finished = tracer.stop();
    finished.assert_clean_exit();

    assert!(
        calls.iter().all(|c| (c.uid, c.ruid) == (0, 4321)),
        "{calls:#?}"
    );
    let events = finished.add_watch_events_of(&[calls[0].pid]);
    assert_events_match(&events, &calls, &comm);
    let init = finished
        .json_lines()
        .into_iter()
        .find(|l| l["type"] == "init" && l["comm"] == comm)
        .expect("the init event");
    assert_eq!((&init["uid"], &init["ruid"]), (&json!(0), &json!(4321)));
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
        "inotify-trace: error: inotify-trace needs root: CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH missing (run it with sudo, or grant CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH: see the README's Privileges)\n"
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
        stderr.starts_with(
            "error: unexpected argument '--bogus': no such flag (inotify-trace --help lists them)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("--help"), "{stderr}");
    assert!(output.stdout.is_empty());
}

#[test]
fn verbose_says_which_attach_mode_was_chosen_and_why() {
    require_bpf!();
    // auto prefers fexit; where the kernel refuses it, -v says so first.
    // (How fexit programs read the caller depends on the kernel: task_struct
    // from 5.11, helpers before.)
    let auto = match tests::fexit_refused() {
        true => {
            "fexit refused by the kernel (EPERM) on __x64_sys_inotify_add_watch: using \
                 the exit tracepoint alone\ninotify-trace: attach mode exit tracepoint alone \
                 (the kernel has bpf_task_pt_regs), caller read from task_struct (offsets from \
                 the kernel's BTF)"
        }
        false => {
            "attach mode fexit (the kernel allows BPF trampolines on the syscall \
                  functions), caller read "
        }
    };
    for (args, expected) in [
        (&["-v", "-d", "1s", "--comm", "nobody-at-all"][..], auto),
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
