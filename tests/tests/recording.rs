//! Recording a live session and reporting on it, against the real kernel
//! and the real binary: the report must say exactly what the live session
//! said, survive a killed tracer, and refuse bad files clearly.
use std::{ffi::OsStr, os::unix::ffi::OsStrExt, process::Command, time::Duration};

use tests::{
    assert_events_match, renamed, report, require_bpf, tracer_binary, unique_comm, wait::wait_for,
    Script, Tracer, ENAMETOOLONG, ENOENT,
};

/// A directory with a non-UTF-8 name and a ~3000-byte path in it.
fn tree() -> (tempfile::TempDir, String, String) {
    let root = tempfile::tempdir().unwrap();
    let odd = root.path().join(OsStr::from_bytes(b"odd-\xff\xfe"));
    std::fs::create_dir(&odd).unwrap();
    let long = (0..15)
        .map(|i| format!("{i:02}{}", "z".repeat(197)))
        .collect::<Vec<_>>()
        .join("/");
    let long = root.path().join(long);
    std::fs::create_dir_all(&long).unwrap();
    let odd_hex: String = odd
        .as_os_str()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (root, odd_hex, long.to_str().unwrap().to_owned())
}

#[test]
fn a_report_says_byte_for_byte_what_the_live_session_said() {
    require_bpf!();
    let (root, odd_hex, long) = tree();
    for json in [true, false] {
        let comm = unique_comm("rt");
        let file = root.path().join(format!("session-{json}.rec"));
        let file = file.to_str().unwrap();
        let mut args = vec!["--comm", &comm, "--record", file];
        if json {
            args.push("--json");
        }
        let tracer = Tracer::start(&args);
        let calls = Script::new()
            .init(3)
            .add("/", 1)
            .add_hex(&odd_hex, 2)
            .add(&long, 3)
            .add("/nonexistent", ENOENT)
            .add("/", 1)
            .run(&[], &comm);
        let live = tracer.stop();
        live.assert_clean_exit();
        if json {
            assert_events_match(&live.add_watch_events_of(&[calls[0].pid]), &calls, &comm);
        }

        let mut report_args = vec![file, "--events"];
        if json {
            report_args.push("--json");
        }
        let reported = report(&report_args);
        assert!(reported.status.success(), "{reported:?}");
        assert!(
            reported.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&reported.stderr)
        );
        assert_eq!(
            String::from_utf8(reported.stdout).unwrap(),
            live.stdout,
            "json: {json}"
        );
    }
}

/// Real inotifywait sessions on trees of 200 to 900 directories: past 128
/// distinct paths a process's count is an estimate, and `report` prints it
/// (and every other figure) as the live session did, byte for byte, in
/// text and in JSON.
#[test]
fn real_inotifywait_sessions_past_128_paths_report_as_they_were_live() {
    require_bpf!();
    let root = tempfile::tempdir().unwrap();
    let comm = unique_comm("iw");
    let inotifywait = renamed("inotifywait", root.path(), &comm);
    let trees: Vec<std::path::PathBuf> = [200, 550, 900]
        .iter()
        .map(|&n| {
            let tree = root.path().join(format!("tree{n}"));
            for i in 0..n {
                std::fs::create_dir_all(tree.join(format!("d{}/e{i}", i % 10))).unwrap();
            }
            tree
        })
        .collect();
    for json in [false, true] {
        let file = root.path().join(format!("iw-{json}.rec"));
        let file = file.to_str().unwrap();
        let mut args = vec!["--quiet", "--comm", &comm, "--record", file];
        if json {
            args.push("--json");
        }
        let tracer = Tracer::start(&args);
        for tree in &trees {
            // Without -q, inotifywait says when every watch is set.
            let mut watcher = Command::new(&inotifywait)
                .args(["-r", "-m"])
                .arg(tree)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            let stderr = std::io::BufReader::new(watcher.stderr.take().unwrap());
            let established = std::io::BufRead::lines(stderr)
                .map_while(Result::ok)
                .any(|line| line.contains("Watches established"));
            assert!(established, "inotifywait did not set its watches");
            watcher.kill().unwrap();
            watcher.wait().unwrap();
        }
        let live = tracer.stop();
        live.assert_clean_exit();
        // The estimates are in play: each tree is past the exact count.
        let estimated = match json {
            false => live.stdout.matches('~').count(),
            true => live
                .stdout
                .matches("\"distinct_paths_estimated\":true")
                .count(),
        };
        assert_eq!(estimated, 3, "{}", live.stdout);
        let mut report_args = vec![file];
        if json {
            report_args.push("--json");
        }
        let reported = report(&report_args);
        assert!(reported.status.success(), "{reported:?}");
        assert_eq!(
            String::from_utf8(reported.stdout).unwrap(),
            live.stdout,
            "json: {json}"
        );
    }
}

/// `-w -` streams the recording to stdout (the summary then goes to
/// stderr) and `report -` reads it from stdin: through a pipe, the report
/// prints the live summary; no file named `-` is made; a terminal as stdout
/// is refused with one line.
#[test]
fn a_recording_piped_from_w_dash_to_report_dash_gives_the_live_summary() {
    require_bpf!();
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let comm = unique_comm("pipe");
    let mut tracer = Command::new(tracer_binary())
        .args(["-q", "-w", "-", "--comm", &comm])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let report = Command::new(tracer_binary())
        .args(["report", "-"])
        .stdin(tracer.stdout.take().unwrap())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(tracer.stderr.take().unwrap());
    let mut live = String::new();
    while !live.contains("attached") {
        assert_ne!(stderr.read_line(&mut live).unwrap(), 0, "{live}");
    }
    Script::new()
        .init(3)
        .add("/", 1)
        .add("/nonexistent", ENOENT)
        .run(&[], &comm);
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(tracer.id() as i32, libc::SIGINT) };
    std::io::Read::read_to_string(&mut stderr, &mut live).unwrap();
    assert!(tracer.wait().unwrap().success(), "{live}");
    let reported = report.wait_with_output().unwrap();
    assert!(reported.status.success(), "{reported:?}");
    assert_eq!(String::from_utf8_lossy(&reported.stderr), "");
    let summary = String::from_utf8(reported.stdout).unwrap();
    assert!(summary.contains(&comm), "{summary}");
    assert!(
        live.contains(&summary),
        "the live summary (stderr):\n{live}\nthe report:\n{summary}"
    );
    assert!(live.contains("recording to stdout"), "{live}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "no file made: {left:?}");

    // A reader that stops early (`| head`): the session ends, exit 0, no
    // error (a closed pipe is an end, as for a closed stdout anywhere).
    let stopped = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{}' -q -w - -d 1s --comm '{comm}' 2>{}/stderr | head -c 20 >/dev/null; echo ${{PIPESTATUS[0]}}",
            tracer_binary().display(),
            dir.path().display()
        ))
        .output()
        .unwrap();
    let stderr = std::fs::read_to_string(dir.path().join("stderr")).unwrap();
    std::fs::remove_file(dir.path().join("stderr")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&stopped.stdout).trim(),
        "0",
        "{stderr}"
    );
    assert!(!stderr.contains("error"), "{stderr}");

    // stdout a terminal (a pty from util-linux's script): refused.
    let on_terminal = Command::new("script")
        .args(["-qec"])
        .arg(format!("{} -w - -d 1s", tracer_binary().display()))
        .arg("/dev/null")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&on_terminal.stdout);
    assert!(!on_terminal.status.success(), "{text}");
    assert!(text.contains("stdout is a terminal"), "{text}");
    assert_eq!(text.trim_end().lines().count(), 1, "{text}");
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[test]
fn a_killed_tracer_leaves_a_recording_that_reports() {
    require_bpf!();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("killed.rec");
    let comm = unique_comm("kill");
    let mut tracer = Tracer::start(&[
        "--quiet",
        "--comm",
        &comm,
        "--record",
        file.to_str().unwrap(),
    ]);
    let calls = (0..200)
        .fold(Script::new().init(3), |script, _| script.add("/", 1))
        .run(&[], &comm);
    // Records reach the file within a poll interval (10 ms): the file is
    // read, as `report` would, until it holds the init and the 200 adds.
    let recorded_events = |file: &std::path::Path| {
        let reported = report(&[file.to_str().unwrap(), "--json"]);
        let summary = reported
            .stdout
            .split(|&b| b == b'\n')
            .rfind(|l| !l.is_empty());
        summary
            .and_then(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
            .and_then(|s| s["events"].as_u64())
    };
    wait_for(
        "the recording holds all 201 calls",
        Duration::from_secs(30),
        || recorded_events(&file) == Some(201),
    );
    tracer.signal(libc::SIGKILL);
    let killed = tracer.wait();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&killed.status),
        Some(libc::SIGKILL)
    );

    let reported = report(&[file.to_str().unwrap(), "--events", "--json"]);
    let stderr = String::from_utf8_lossy(&reported.stderr);
    assert!(reported.status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = reported
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let events: Vec<_> = lines
        .iter()
        .filter(|l| l["type"] == "add_watch")
        .cloned()
        .collect();
    assert_events_match(&events, &calls, &comm);
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["events"], 201, "init + 200 add_watch");
    // No end frame: the end limits are unknown, the duration the events' span.
    assert!(summary["limits"]["end"]["max_user_watches"].is_null());
}

#[test]
fn a_full_disk_stops_the_session_with_a_clear_error_and_the_summary() {
    require_bpf!();
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().to_str().unwrap();
    let comm = unique_comm("full");
    // A 64 KiB tmpfs in a private mount namespace: nothing outside sees it,
    // so the file's size and a report on it are taken in there too.
    let file = format!("{mount}/x.rec");
    let script = format!(
        "mount -t tmpfs -o size=64k tmpfs '{mount}' && {{ \"$0\" \"$@\"; s=$?; \
         echo \"size $(stat -c %s '{file}')\" >&2; \
         \"$0\" report '{file}' >/dev/null; echo \"report exit $?\" >&2; exit $s; }}"
    );
    let tracer = Tracer::start_wrapped(
        &["unshare", "-m", "sh", "-c", &script],
        &["--json", "--quiet", "--comm", &comm, "--record", &file],
    );
    // ~3000-byte paths: 64 KiB holds about twenty records.
    let long = format!("/{}", "q".repeat(3000));
    // (A 3000-byte name is longer than NAME_MAX: the calls fail, and are
    // recorded all the same.)
    (0..100)
        .fold(Script::new().init(3), |script, _| {
            script.add(&long, ENAMETOOLONG)
        })
        .run(&[], &comm);
    let finished = tracer.wait();
    assert_eq!(finished.status.code(), Some(1), "{finished:#?}");
    let prefix = format!("inotify-trace: error: writing the recording {file} failed after byte ");
    let error = finished
        .stderr
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no write error: {}", finished.stderr));
    assert!(
        error.contains("No space left on device")
            && error.contains("it holds every whole record before that"),
        "{error}"
    );
    // The byte named is the file's end, and the file is whole up to it: it
    // reports without a warning that it was cut short.
    let offset = error[prefix.len()..].split(':').next().unwrap();
    let lines: Vec<&str> = finished.stderr.lines().collect();
    assert!(
        lines.contains(&format!("size {offset}").as_str()),
        "{}",
        finished.stderr
    );
    assert!(lines.contains(&"report exit 0"), "{}", finished.stderr);
    assert!(
        !finished.stderr.contains("cut short"),
        "{}",
        finished.stderr
    );
    let summary: serde_json::Value =
        serde_json::from_str(finished.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["type"], "summary");
    // The session stops after the drain in which the write failed: every
    // event read until then is counted, at least the ~20 that fitted on the
    // disk, and never more than were made.
    let events = summary["events"].as_u64().unwrap();
    assert!((15..=101).contains(&events), "{events} events counted");
}

/// A disk full before the first byte: one line, exit 1, the command not
/// started, and no empty file left behind.
#[test]
fn a_disk_full_at_start_is_one_line_and_leaves_no_file() {
    // Root, for the mount (the tracer refuses the file before loading BPF).
    require_bpf!();
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().to_str().unwrap();
    let file = format!("{mount}/x.rec");
    let marker = format!("{mount}/the command ran");
    // A full 16 KiB tmpfs in a private mount namespace.
    let script = format!(
        "mount -t tmpfs -o size=16k tmpfs '{mount}' && \
         {{ cat /dev/zero > '{mount}/fill' 2>/dev/null; \"$0\" \"$@\"; s=$?; \
         ls '{mount}' >&2; exit $s; }}"
    );
    let out = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c", &script])
        .arg(tests::tracer_binary())
        .args(["--record", &file, "--", "touch", &marker])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!("inotify-trace: error: could not start the recording {file}: No space left on device (os error 28); nothing was recorded and the file is removed: free some space, or record elsewhere").as_str(),
            "fill",
        ],
        "one line, then what the disk holds: the filler only"
    );
}

#[test]
fn bad_recordings_get_one_line_errors_and_cut_ones_a_warning() {
    require_bpf!();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("good.rec");
    let comm = unique_comm("bad");
    let tracer = Tracer::start(&[
        "--quiet",
        "--comm",
        &comm,
        "--record",
        file.to_str().unwrap(),
    ]);
    Script::new()
        .init(3)
        .add("/", 1)
        .add("/tmp", 2)
        .run(&[], &comm);
    tracer.stop().assert_clean_exit();
    let good = std::fs::read(&file).unwrap();

    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_owned()
    };
    // A flipped byte inside the last event.
    let mut flipped = good.clone();
    let at = good.len() - 200;
    flipped[at] ^= 0x40;
    let out = report(&[&write("flipped.rec", &flipped)]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("inotify-trace: error: ")
            && stderr.contains("flipped.rec: corrupt at byte "),
        "{stderr}"
    );
    assert!(stderr.contains("checksum mismatch"), "{stderr}");

    let foreign = write("foreign.rec", b"#!/bin/sh\necho this is not a recording\n");
    let out = report(&[&foreign]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!("inotify-trace: error: {foreign}: not an inotify-trace recording (no INOTRACE header at byte 0)\n")
    );

    let cut = write("cut.rec", &good[..good.len() - 5]);
    let out = report(&[&cut, "--json"]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "inotify-trace: warning: {cut} is cut short at byte "
        )),
        "{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary["events"], 3,
        "the end frame was cut; every event is whole"
    );

    let out = report(&[dir.path().join("missing.rec").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("missing.rec: No such file or directory"));

    // An empty file, a header cut short, a directory: each said as it is.
    let (empty, header) = (write("empty.rec", b""), write("header.rec", &good[..10]));
    let folder = dir.path().to_str().unwrap().to_owned();
    for (path, says) in [
        (
            empty.as_str(),
            format!("{empty}: an empty file, not a recording"),
        ),
        (
            header.as_str(),
            format!("{header}: cut short in its header (10 of 16 bytes)"),
        ),
        (
            folder.as_str(),
            format!("{folder} is a directory: give a recording file"),
        ),
    ] {
        let out = report(&[path]);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("inotify-trace: error: {says}")),
            "{stderr}"
        );
    }
}

#[test]
fn an_existing_file_is_kept_unless_forced() {
    require_bpf!();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("taken.rec");
    std::fs::write(&file, b"keep me").unwrap();
    let out = Command::new(tracer_binary())
        .args(["--record", file.to_str().unwrap(), "-d", "1s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("exists already: choose another file, or add --force to overwrite it"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("attached"),
        "refused before attaching: {stderr}"
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");

    let out = Command::new(tracer_binary())
        .args([
            "--record",
            file.to_str().unwrap(),
            "--force",
            "-d",
            "1s",
            "--comm",
            "nobody-at-all",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(report(&[file.to_str().unwrap()]).status.success());
}

/// A recording made by inotify-trace before records carried the effective
/// uid, user namespace and cgroup (format 1.1, 64-byte records; made at
/// commit bdc578d by `inotify-trace -q --comm old-format --record` around
/// `inotify-workload --comm old-format init add /tmp/oldrec/watched add
/// /tmp/oldrec/missing`, pid 4831) still reports: the same events, their
/// uid marked as the real one, the summary.
#[test]
fn a_recording_of_the_previous_format_still_reports() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/format-1.1.rec");
    let out = report(&["--events", "--json", fixture.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<(String, u64, String, i64, bool)> = lines
        .iter()
        .filter(|l| l["type"] != "summary")
        .map(|l| {
            (
                l["type"].as_str().unwrap().to_owned(),
                l["pid"].as_u64().unwrap(),
                l["comm"].as_str().unwrap().to_owned(),
                l["ret"].as_i64().unwrap(),
                l["uid_is_real"] == true && l.get("ruid").is_none() && l.get("cgroup_id").is_none(),
            )
        })
        .collect();
    let event = |kind: &str, ret: i64| (kind.to_owned(), 4831, "old-format".to_owned(), ret, true);
    assert_eq!(
        events,
        [
            event("init", 3),
            event("add_watch", 1),
            event("add_watch", -2)
        ]
    );
    assert_eq!(lines[1]["path"], "/tmp/oldrec/watched");
    assert_eq!(lines[2]["errno"], "ENOENT");
    let summary = lines.last().unwrap();
    assert_eq!(summary["processes"][0]["new_watches"], 1, "{summary:#}");
    assert_eq!(summary["pods"], serde_json::json!([]));
    let text = report(&[fixture.to_str().unwrap()]);
    assert!(text.status.success(), "{text:?}");
    assert!(String::from_utf8(text.stdout)
        .unwrap()
        .contains("old-format"));
}

/// A report filter that matches none of a recording's events says so (and
/// exits 1, as `usage` and grep do), and a report filter on a recording
/// that was itself filtered says what its session let through; output that
/// cannot be written names what it was writing.
#[test]
fn a_filter_that_matches_nothing_says_so_with_the_recordings_own_filters() {
    require_bpf!();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("filtered.rec");
    let file = file.to_str().unwrap();
    let comm = unique_comm("flt");
    let tracer = Tracer::start(&["--comm", &comm, "--record", file, "-q"]);
    let calls = Script::new().init(3).add("/", 1).run(&[], &comm);
    tracer.stop().assert_clean_exit();
    let pid = calls[0].pid.to_string();

    let recorded = format!(
        "(recorded with: {} --comm {comm} --record {file} -q)",
        tracer_binary().display()
    );
    let out = report(&[file, "--pid", "999999"]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            format!("inotify-trace: note: this recording holds only the calls its session's filters let through {recorded}"),
            format!("inotify-trace: no event of the recording's 2 events matches the filters {recorded}"),
        ],
    );
    // Its own process: found, and the note stays.
    let out = report(&[file, "--pid", &pid]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Without a filter, nothing to note.
    let out = report(&[file]);
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");

    // stdout full: the error says it was writing the report there; a live
    // session's says stdout, and `-w -`'s that it is the recording.
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    for (args, says) in [
        (vec!["report", file], "inotify-trace: error: writing the report to stdout: No space left on device"),
        (vec!["-q", "-d", "1s", "--comm", &comm], "inotify-trace: error: writing to stdout: No space left on device"),
        (
            vec!["-q", "-d", "1s", "--comm", &comm, "-w", "-"],
            "inotify-trace: error: could not write the recording to stdout: No space left on device (os error 28); nothing was recorded",
        ),
    ] {
        let out = Command::new(tracer_binary()).args(&args).stdout(full()).output().unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.lines().any(|l| l.starts_with(says)), "{args:?}: {stderr}");
    }
}
