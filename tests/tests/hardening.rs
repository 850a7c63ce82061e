//! The tracer runs as root on paths and terminals anyone may have set up:
//! what it writes, where its output goes, and what it is told, each turned
//! against it once.
use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::Path,
    process::{Command, Output, Stdio},
    time::Duration,
};

use tests::{require_bpf, tracer_binary, wait::wait_for_exit};

/// The tracer, run to its end with `args` (a hung one fails the test).
fn run(args: &[&str]) -> Output {
    let mut child = Command::new(tracer_binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let what = format!("the tracer's end with {args:?}");
    wait_for_exit(&mut child, what, Duration::from_secs(20));
    child.wait_with_output().unwrap()
}

/// A world-writable, sticky directory like /tmp, owned by root.
fn sticky_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("inotify-trace-sticky")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o1777)).unwrap();
    dir
}

/// What a file is, to check it was left alone: mode, owner, content.
fn state(path: &Path) -> (u32, u32, Vec<u8>) {
    let meta = std::fs::metadata(path).unwrap();
    (
        meta.mode(),
        meta.uid(),
        std::fs::read(path).unwrap_or_default(),
    )
}

/// Runs `--record NAME` with and without `--force`: each must be refused in
/// one line naming what NAME is, before anything is attached.
fn assert_refused(name: &Path, what: &str) {
    let name = name.to_str().unwrap();
    for force in [false, true] {
        let mut args = vec!["--record", name, "-d", "1s"];
        if force {
            args.push("--force");
        }
        let out = run(&args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(
            stderr,
            format!(
                "inotify-trace: error: {name} is {what}: --record writes only a new file or, with --force, replaces a regular one; choose another path\n"
            ),
            "{args:?}"
        );
    }
}

#[test]
fn a_symlink_planted_by_another_user_is_never_followed() {
    require_bpf!();
    let dir = sticky_dir();
    // A root-owned file the planted links point at.
    let victim = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(victim.path(), b"root's data").unwrap();
    std::fs::set_permissions(victim.path(), PermissionsExt::from_mode(0o644)).unwrap();
    let before = state(victim.path());
    let link = dir.path().join("trace.rec");
    let dangling = dir.path().join("dangling.rec");
    let missing_target = dir.path().join("created-through-the-link");
    // Planted by nobody (uid 65534), as an unprivileged user would.
    for (target, name) in [
        (victim.path(), &link),
        (missing_target.as_path(), &dangling),
    ] {
        let status = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "ln",
                "-s",
            ])
            .arg(target)
            .arg(name)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(std::fs::symlink_metadata(name).unwrap().uid(), 65534);
    }

    assert_refused(&link, "a symbolic link");
    assert_refused(&dangling, "a symbolic link");
    assert_eq!(
        state(victim.path()),
        before,
        "the link's target is untouched"
    );
    assert!(!missing_target.exists(), "nothing created through the link");
}

#[test]
fn devices_fifos_and_directories_are_refused_without_blocking() {
    require_bpf!();
    let dir = sticky_dir();
    // A device node like /dev/null (char 1:3), made here, not the real one.
    let device = dir.path().join("null.rec");
    let status = Command::new("mknod")
        .arg(&device)
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::set_permissions(&device, PermissionsExt::from_mode(0o666)).unwrap();
    // A FIFO with no reader: opening it for writing would block forever.
    let fifo = dir.path().join("fifo.rec");
    nix_mkfifo(&fifo);

    assert_refused(&device, "a device");
    assert_eq!(
        std::fs::metadata(&device).unwrap().mode() & 0o777,
        0o666,
        "the device's mode is untouched"
    );
    assert_refused(&fifo, "a FIFO");
    assert_refused(dir.path(), "a directory");
}

#[test]
fn force_replaces_a_regular_file_with_a_new_private_one() {
    require_bpf!();
    let dir = sticky_dir();
    let path = dir.path().join("old.rec");
    std::fs::write(&path, b"someone else's file").unwrap();
    std::fs::set_permissions(&path, PermissionsExt::from_mode(0o666)).unwrap();
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    // A hard link keeps the old inode reachable: it must not be written.
    let other_name = dir.path().join("other-name");
    std::fs::hard_link(&path, &other_name).unwrap();
    let old_inode = std::fs::metadata(&path).unwrap().ino();

    let out = run(&[
        "--record",
        path.to_str().unwrap(),
        "--force",
        "-q",
        "-d",
        "1s",
        "--comm",
        "nobody-at-all",
    ]);
    assert!(out.status.success(), "{out:?}");
    let meta = std::fs::metadata(&path).unwrap();
    assert_ne!(meta.ino(), old_inode, "replaced by a new file");
    assert_eq!((meta.mode() & 0o777, meta.uid()), (0o600, 0));
    assert_eq!(
        state(&other_name),
        (0o100666, 65534, b"someone else's file".to_vec()),
        "the old file is left as it was"
    );
    let report = Command::new(tracer_binary())
        .args(["report", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(report.status.success(), "{report:?}");
}

fn nix_mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn a_full_or_closed_stderr_changes_nothing_and_the_commands_status_comes_back() {
    require_bpf!();
    // stderr on /dev/full: every write to it fails with ENOSPC.
    let full = std::fs::File::options()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Command::new(tracer_binary())
        .args(["-q", "--json", "--", "sh", "-c", "exit 3"])
        .stdin(Stdio::null())
        .stderr(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["type"], "summary");

    // stderr a pipe whose reader is gone: every write fails with EPIPE.
    let mut child = Command::new(tracer_binary())
        .args(["-q", "--json", "--", "sh", "-c", "sleep 1; exit 5"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["type"], "summary");
}

#[test]
fn overflowing_durations_empty_names_and_missing_host_roots_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("the command ran");
    let touch = ["--", "touch", marker.to_str().unwrap()];
    for (args, message) in [
        (
            &["--duration", "18446744073709551615s"][..],
            "error: invalid value '18446744073709551615s' for '--duration <D>': \"18446744073709551615s\" is too long: at most 100 years",
        ),
        (
            &["--comm", ""][..],
            "error: invalid value '' for '--comm <NAME>': a process name cannot be empty",
        ),
        (
            &["--host-root", "/no/such/host"][..],
            "error: invalid value '/no/such/host' for '--host-root <DIR>': \"/no/such/host\": No such file or directory (os error 2)",
        ),
        (
            &["--host-root", "/etc/passwd"][..],
            "error: invalid value '/etc/passwd' for '--host-root <DIR>': \"/etc/passwd\" is not a directory",
        ),
        (
            &["-d", "0s"][..],
            "error: invalid value '0s' for '--duration <D>': \"0s\" would end the session before it starts: give more than 0s",
        ),
        (
            &["--uid", "no-such-user-here"][..],
            "error: invalid value 'no-such-user-here' for '--uid <UID>': \"no-such-user-here\" is neither a uid nor a user of this machine (give the number)",
        ),
    ] {
        let out = run(&[args, &touch[..]].concat());
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().next(), Some(message), "{stderr}");
        assert!(!marker.exists(), "the command must not start: {args:?}");
    }
}

#[test]
fn sighup_ends_the_session_like_sigterm() {
    require_bpf!();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hup.rec");
    let file = file.to_str().unwrap();
    let comm = tests::unique_comm("hup");
    let mut tracer = tests::Tracer::start(&["--json", "--comm", &comm, "--record", file]);
    let calls = a_success_and_a_failure().run(&[], &comm);
    tracer.signal(libc::SIGHUP);
    let finished = tracer.wait();
    finished.assert_reported(&calls, &comm);
    let closing = finished.stderr.lines().last().unwrap();
    assert!(
        closing.starts_with("inotify-trace: 3 events, 0 lost in "),
        "{closing}"
    );
    // The recording has its end: the end limits are known, the summary
    // the live one.
    let report = Command::new(tracer_binary())
        .args(["report", file, "--json"])
        .output()
        .unwrap();
    assert!(report.status.success(), "{report:?}");
    let summary: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert!(
        summary["limits"]["end"]["max_user_watches"].is_u64(),
        "{summary}"
    );
    assert_eq!(summary, finished.json_lines().pop().unwrap());
}

/// `setpriv` as uid 4244 with `caps` (e.g. `+bpf,+perfmon`) inherited and
/// ambient, so they survive the exec of the tracer.
fn as_user_with(caps: &str) -> Vec<String> {
    let mut wrapper = vec![
        "setpriv".to_owned(),
        "--reuid=4244".to_owned(),
        "--regid=4244".to_owned(),
        "--clear-groups".to_owned(),
    ];
    if !caps.is_empty() {
        wrapper.push(format!("--inh-caps={caps}"));
        wrapper.push(format!("--ambient-caps={caps}"));
    }
    wrapper
}

/// The capability set the README documents for tracing.
const TRACING_CAPS: &str = "+bpf,+perfmon,+dac_read_search";

#[test]
fn a_user_with_the_documented_capabilities_traces_exactly() {
    require_bpf!();
    let comm = tests::unique_comm("caps");
    let wrapper = as_user_with(TRACING_CAPS);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let tracer = tests::Tracer::start_wrapped(&wrapper, &["--json", "--comm", &comm]);
    let calls = a_success_and_a_failure().run(&[], &comm);
    tracer.stop().assert_reported(&calls, &comm);
}

#[test]
fn each_missing_capability_is_named() {
    require_bpf!();
    for (caps, missing) in [
        ("+bpf,+perfmon", "CAP_DAC_READ_SEARCH"),
        ("+bpf,+dac_read_search", "CAP_PERFMON"),
        ("+dac_read_search", "CAP_BPF and CAP_PERFMON"),
    ] {
        let wrapper = as_user_with(caps);
        let out = Command::new(&wrapper[0])
            .args(&wrapper[1..])
            .arg(tracer_binary())
            .args(["-d", "1s"])
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{caps}: {stderr}");
        assert_eq!(
            stderr,
            format!("inotify-trace: error: inotify-trace needs root: {missing} missing (run it with sudo, or grant CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH: see the README's Privileges)\n"),
            "{caps}"
        );
    }
}

#[test]
fn usage_says_when_it_could_not_read_every_process() {
    require_bpf!();
    let comm = tests::unique_comm("held");
    let dir = tempfile::tempdir().unwrap();
    let script = tests::Script::new()
        .init(3)
        .add(dir.path().to_str().unwrap(), 1)
        .then("sleep", "30");
    // Held by root: another user's process for uid 4244.
    let mut holder = tests::Workload::start(&[], &comm, &script.args());
    script.check(&holder.release_and_read(2));
    let usage = |caps: &str, found: bool| -> serde_json::Value {
        let wrapper = as_user_with(caps);
        let out = Command::new(&wrapper[0])
            .args(&wrapper[1..])
            .arg(tracer_binary())
            .args(["usage", "--json", "--comm", &comm])
            .output()
            .unwrap();
        // Nothing found is exit 1, said on stderr.
        assert_eq!(out.status.success(), found, "{caps}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.contains("no process holding an inotify instance matches the filters ("),
            !found,
            "{stderr}"
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };

    let blind = usage("", false);
    assert_eq!(blind["partial"], true, "{blind:#}");
    assert!(blind["unreadable_processes"].as_u64().unwrap() >= 1);
    assert_eq!(blind["processes"], serde_json::json!([]), "{blind:#}");

    let seeing = usage("+sys_ptrace,+dac_read_search", true);
    let pids: Vec<u64> = seeing["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pids, [holder.pid], "{seeing:#}");
    assert_eq!(seeing["processes"][0]["watches"], 1);
    let unreadable: Vec<u64> = seeing["unreadable_pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    assert!(!unreadable.contains(&holder.pid), "{seeing:#}");
}

/// The smallest workload that shows both outcomes.
fn a_success_and_a_failure() -> tests::Script {
    tests::Script::new()
        .init(3)
        .add("/", 1)
        .add("/nonexistent", tests::ENOENT)
}

/// The mistakes a new user makes on the command line get a hint: a
/// misspelt subcommand, a command to trace without `--`; a live `--pid`
/// that is not running is refused (strace and perf refuse it too), and so
/// is a `usage --cgroup` that does not exist; `usage` filters that match
/// no holder say so and exit 1.
#[test]
fn common_mistakes_get_a_hint_and_filters_that_match_nothing_say_so() {
    for (args, tip) in [
        (&["repot"][..], "tip: did you mean `inotify-trace report`?"),
        (
            &["usag", "--json"][..],
            "tip: did you mean `inotify-trace usage`?",
        ),
        (
            &["inotifywait", "-m", "/tmp"][..],
            "tip: to trace a command, put -- before it: inotify-trace [OPTIONS] -- inotifywait ...",
        ),
    ] {
        let out = run(args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().last().map(str::trim), Some(tip), "{stderr}");
    }
    // Said in clap's stead, whose tip would be to pass them after `--`,
    // which here runs a program: a negative number, a misspelt flag (of the
    // subcommand named), a flag the subcommand does not have; a subcommand
    // spelt right is not "meant" as itself.
    for (args, first) in [
        (&["-d", "-5s"][..], "error: -d takes no negative value (given -5s): give 0 or more"),
        (&["--top", "-1"][..], "error: --top takes no negative value (given -1): give 0 or more"),
        (&["--pdi", "1"][..], "error: unexpected argument '--pdi': did you mean '--pid'?"),
        (&["usage", "--pdi", "1"][..], "error: unexpected argument '--pdi': did you mean '--pid'?"),
        (
            &["report", "x.rec", "--ring-size=8M"][..],
            "error: unexpected argument '--ring-size': no such flag (inotify-trace report --help lists them)",
        ),
    ] {
        let out = run(args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().next(), Some(first), "{args:?}: {stderr}");
        assert!(!stderr.contains("tip:"), "{args:?}: {stderr}");
        assert!(stderr.contains("Usage: inotify-trace"), "{args:?}: {stderr}");
    }
    for (args, says) in [
        (
            &["--pid", "999999999"][..],
            "inotify-trace: error: --pid 999999999: no such process is running (to trace a program from its start, run it after --)",
        ),
        (
            &["usage", "--cgroup", "/no-such-cgroup-here"][..],
            "inotify-trace: error: --cgroup /no-such-cgroup-here: no such cgroup (",
        ),
        (
            &["usage", "--pid", "999999999"][..],
            "inotify-trace: no process holding an inotify instance matches the filters",
        ),
        (
            &["usage", "--pod", "no-such-pod", "--json"][..],
            "inotify-trace: no process holding an inotify instance matches the filters",
        ),
    ] {
        let out = run(args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with(says), "{args:?}: {stderr}");
    }
    // The empty report is printed all the same, for scripts.
    let out = run(&["usage", "--pod", "no-such-pod", "--json"]);
    let usage: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(usage["processes"], serde_json::json!([]));
}

/// `--uid` means the same live as in `report` and `usage`, by number or by
/// user name; `agent --listen` takes `:PORT` (every address, as exporters
/// do) and `localhost:PORT`.
#[test]
fn uid_by_name_live_and_listen_addresses_as_exporters_take_them() {
    require_bpf!();
    let out = run(&[
        "--uid", "root", "--uid", "nobody", "-q", "-d", "1s", "--json",
    ]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        summary["processes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["uid"] == 0 || p["uid"] == 65534),
        "{summary:#}"
    );
    for (listen, serving) in [
        (":0", "http://0.0.0.0:"),
        ("localhost:0", "http://127.0.0.1:"),
    ] {
        let mut agent = Command::new(tracer_binary())
            .args(["agent", "--listen", listen])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(agent.stderr.take().unwrap()),
            &mut first,
        )
        .unwrap();
        let _ = agent.kill();
        let _ = agent.wait();
        assert!(
            first.contains(&format!("serving metrics on {serving}")),
            "{first}"
        );
    }
}
