//! The session summary against the real kernel: workloads of known shape
//! must give exactly their numbers, and `-- COMMAND` must follow a command's
//! descendants and return its exit status.
use std::time::Duration;

use serde_json::Value;
use tests::{
    fdinfo_watches, require_bpf, unique_comm,
    wait::{wait_for, wait_until},
    workload_binary, Script, Tracer, Workload, EMFILE, ENOSPC,
};

/// The summary: the last JSON line, and the only one with `--quiet`.
fn summary_of(stdout: &str) -> Value {
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "--quiet --json prints only the summary: {stdout}"
    );
    assert_eq!(lines[0]["type"], "summary");
    lines[0].clone()
}

fn process(summary: &Value, pid: u64) -> &Value {
    summary["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid)
        .unwrap_or_else(|| panic!("no process {pid} in {summary:#}"))
}

/// Checks the documented per-process keys against the expected numbers.
fn assert_counts(p: &Value, comm: &str, expected: [(&str, u64); 7]) {
    assert_eq!(p["comm"], comm, "{p:#}");
    assert_eq!(
        p["uid"].as_u64(),
        Some(u64::from(unsafe { libc::getuid() })),
        "{p:#}"
    );
    for (key, value) in expected {
        assert_eq!(p[key].as_u64(), Some(value), "{key} of {p:#}");
    }
}

#[test]
fn summary_counts_a_known_workload_exactly() {
    require_bpf!();
    let dir = tempfile::tempdir().unwrap();
    let dirs: Vec<String> = (0..6)
        .map(|i| {
            let path = dir.path().join(format!("d{i}"));
            std::fs::create_dir(&path).unwrap();
            path.to_str().unwrap().to_owned()
        })
        .collect();
    let (adder, nospc, mfile) = (
        unique_comm("adder"),
        unique_comm("nospc"),
        unique_comm("mfile"),
    );

    // adder: 4 new watches, 3 re-adds, one removal.
    let adder_script = Script::new()
        .init(3)
        .add(&dirs[0], 1)
        .add(&dirs[1], 2)
        .add(&dirs[2], 3)
        .add(&dirs[3], 4)
        .add(&dirs[0], 1) // re-adds: the same wds again
        .add(&dirs[1], 2)
        .add(&dirs[0], 1)
        .rm(2, 0);
    // nospc: a budget of 2 watches, then ENOSPC 3 times.
    let nospc_script = Script::new()
        .then("limit-watches", "2")
        .init(3)
        .add(&dirs[0], 1)
        .add(&dirs[1], 2)
        .add(&dirs[2], ENOSPC)
        .add(&dirs[3], ENOSPC)
        .add(&dirs[4], ENOSPC);
    // mfile: a budget of 2 instances, then EMFILE twice.
    let mfile_script = Script::new()
        .then("limit-instances", "2")
        .init(3)
        .init(4)
        .init(EMFILE)
        .init(EMFILE);

    let tracer = Tracer::start(&[
        "--json", "--quiet", "--comm", &adder, "--comm", &nospc, "--comm", &mfile,
    ]);
    let in_userns = ["unshare", "-U", "-r"];
    let adder_calls = adder_script.run_all(&[], &adder);
    let nospc_calls = nospc_script.run_all(&in_userns, &nospc);
    let mfile_calls = mfile_script.run_all(&in_userns, &mfile);
    let finished = tracer.stop();
    finished.assert_clean_exit();

    let summary = summary_of(&finished.stdout);
    let total_calls = adder_calls.len() + nospc_calls.len() + mfile_calls.len();
    assert_eq!(summary["events"].as_u64(), Some(total_calls as u64));
    assert_eq!(summary["lost"], 0);
    assert!(summary["duration_s"].as_f64().unwrap() > 0.0);
    assert_eq!(summary["processes"].as_array().unwrap().len(), 3);

    let keys = [
        "calls",
        "new_watches",
        "re_adds",
        "removed",
        "failed",
        "instances",
        "instance_failures",
    ];
    let counts =
        |values: [u64; 7]| -> [(&str, u64); 7] { std::array::from_fn(|i| (keys[i], values[i])) };
    let p = process(&summary, adder_calls[0].pid);
    assert_counts(p, &adder, counts([7, 4, 3, 1, 0, 1, 0]));
    assert_eq!(p["distinct_paths"], 4);
    assert_eq!(p["errors"], serde_json::json!({}));
    let p = process(&summary, nospc_calls[0].pid);
    assert_counts(p, &nospc, counts([5, 2, 0, 0, 3, 1, 0]));
    assert_eq!(p["errors"], serde_json::json!({"ENOSPC": 3}));
    let p = process(&summary, mfile_calls[0].pid);
    assert_counts(p, &mfile, counts([0, 0, 0, 0, 0, 2, 2]));

    // Failures: ENOSPC first, then EMFILE, each naming its process.
    let failures = summary["failures"].as_array().unwrap();
    let [enospc, emfile] = &failures[..] else {
        panic!("two failure groups expected: {failures:#?}")
    };
    assert_eq!(
        (&enospc["call"], &enospc["errno"], &enospc["count"]),
        (&"add_watch".into(), &"ENOSPC".into(), &3.into())
    );
    let culprit = &enospc["processes"][0];
    assert_eq!(
        (culprit["pid"].as_u64(), culprit["count"].as_u64()),
        (Some(nospc_calls[0].pid), Some(3))
    );
    assert_eq!(
        culprit["examples"],
        serde_json::json!([dirs[2], dirs[3], dirs[4]])
    );
    assert!(culprit["first"].as_str().unwrap() < culprit["last"].as_str().unwrap());
    assert_eq!(
        (&emfile["call"], &emfile["errno"], &emfile["count"]),
        (&"init".into(), &"EMFILE".into(), &2.into())
    );
    assert_eq!(
        emfile["processes"][0]["pid"].as_u64(),
        Some(mfile_calls[0].pid)
    );

    // Per uid: everything ran as this test's uid.
    let users = summary["users"].as_array().unwrap();
    let [user] = &users[..] else {
        panic!("one uid expected: {users:#?}")
    };
    assert_eq!(user["watches_added"], 6);
    assert_eq!(user["watches_removed"], 1);
    assert_eq!(user["instances_created"], 4);
    assert_eq!(user["instance_failures"], 2);
    let limits = &summary["limits"];
    for when in ["start", "end"] {
        assert!(
            limits[when]["max_user_watches"].as_u64().unwrap() >= 8192,
            "{limits}"
        );
        assert!(
            limits[when]["max_user_instances"].as_u64().unwrap() >= 1,
            "{limits}"
        );
    }
}

#[test]
fn a_command_is_followed_into_its_grandchildren_and_its_status_returned() {
    require_bpf!();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (child, grandchild) = (unique_comm("child"), unique_comm("grand"));
    let workload = workload_binary();
    let w = workload.to_str().unwrap();
    // sh forks a second sh (`; true` keeps it from exec'ing), which forks the
    // grandchild workload; then sh runs a child workload and exits 7. The
    // command shares the tracer's stdout, so its own output goes elsewhere.
    let script = format!(
        "sh -c '{w} --comm {grandchild} init add {d} add {d}/missing >/dev/null; true'; {w} --comm {child} init add {d} >/dev/null; exit 7"
    );
    // A process with the same comm outside the command must not show up: it
    // makes its calls while the command sleeps, inside the session.
    let outsider_script = Script::new().init(3).add(d, 1);
    let outsider = Workload::start(&[], &child, &outsider_script.args());
    let outsider_pid = outsider.pid;
    // The command waits for the outsider's calls to be done.
    let dir = tempfile::tempdir().unwrap();
    let outsider_done = dir.path().join("outsider-done");
    let script = format!(
        "while [ ! -e {} ]; do sleep 0.01; done; {script}",
        outsider_done.display()
    );
    let tracer = Tracer::start(&["--json", "--quiet", "--", "sh", "-c", &script]);
    outsider_script.check(&outsider.release_all());
    std::fs::write(&outsider_done, b"").unwrap();
    let finished = tracer.wait();
    assert_eq!(
        finished.status.code(),
        Some(7),
        "the command's exit status: {finished:#?}"
    );

    let summary = summary_of(&finished.stdout);
    let processes = summary["processes"].as_array().unwrap();
    let by_comm = |comm: &str| {
        processes
            .iter()
            .find(|p| p["comm"] == comm)
            .unwrap_or_else(|| panic!("no {comm} in {summary:#}"))
    };
    let g = by_comm(&grandchild);
    assert_eq!(
        (
            g["calls"].as_u64(),
            g["new_watches"].as_u64(),
            g["failed"].as_u64(),
            g["instances"].as_u64()
        ),
        (Some(2), Some(1), Some(1), Some(1))
    );
    assert_eq!(g["errors"], serde_json::json!({"ENOENT": 1}));
    let c = by_comm(&child);
    assert_eq!(
        (
            c["calls"].as_u64(),
            c["new_watches"].as_u64(),
            c["instances"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert!(
        processes
            .iter()
            .all(|p| p["pid"].as_u64() != Some(outsider_pid)),
        "{summary:#}"
    );
    // Only the command's own processes appear (sh makes no inotify calls).
    assert_eq!(processes.len(), 2, "{summary:#}");
}

/// A storm of ENOSPC: one process failing as fast as it can, in a user
/// namespace whose watch cap is 0. Every failure reaches the summary, none
/// is lost, and it is diagnosed at most once per 5 seconds. The ring holds
/// the whole storm (500,000 records of ~110 bytes), so what is checked is
/// that nothing is dropped or miscounted, not how fast the reader keeps up
/// on a shared machine (CI once lost 6% with the default 8 MiB while the
/// machine was busy elsewhere): that is the benchmark's to measure.
#[test]
fn a_storm_of_failures_loses_nothing() {
    require_bpf!();
    const CALLS: u64 = 500_000;
    let dir = tempfile::tempdir().unwrap();
    let load = tests::load_binary();
    let tracer = Tracer::start(&[
        "--json",
        "--quiet",
        "--comm",
        "inotify-load",
        "--ring-size",
        "128M",
    ]);
    let script = format!(
        "echo 0 > /proc/sys/user/max_inotify_watches && exec '{}' fail-loop {CALLS} '{}'",
        load.display(),
        dir.path().display()
    );
    let out = std::process::Command::new("unshare")
        .args(["-U", "-r", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let finished = tracer.stop();
    finished.assert_clean_exit();

    let summary = summary_of(&finished.stdout);
    assert_eq!(summary["lost"], 0, "{summary:#}");
    assert_eq!(
        summary["events"].as_u64(),
        Some(CALLS + 1),
        "init + the calls"
    );
    let storm = &summary["failures"][0];
    assert_eq!(
        (&storm["errno"], storm["count"].as_u64()),
        (&"ENOSPC".into(), Some(CALLS))
    );
    let diagnoses = summary["diagnoses"].as_array().unwrap().len();
    assert!((1..=2).contains(&diagnoses), "{diagnoses} diagnoses");
}

/// A real program (inotifywait -r -m, from inotify-tools) watches a tree,
/// part of which is then deleted: the kernel drops those watches without
/// an inotify_rm_watch, so NEW - REMOVED overstates what it holds. HELD is
/// what /proc/PID/fdinfo says when the session ends, with where the
/// watches are and the command line.
#[test]
fn held_now_is_what_fdinfo_says_after_watched_directories_were_deleted() {
    require_bpf!();
    let root = tempfile::tempdir().unwrap();
    for dir in ["a/1", "a/2", "b/1", "b/2", "c/1", "c/2"] {
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    let tracer = Tracer::start(&["--json", "--quiet", "--comm", "inotifywait"]);
    let mut inotifywait = std::process::Command::new("inotifywait")
        .args(["-q", "-r", "-m"])
        .arg(root.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("inotifywait (inotify-tools; cargo xtask test installs it)");
    let pid = inotifywait.id();
    // The root, a, b, c and their six subdirectories.
    wait_for("inotifywait sets up", Duration::from_secs(10), || {
        fdinfo_watches(pid).len() >= 10
    });
    std::fs::remove_dir_all(root.path().join("c")).unwrap();
    // The kernel drops a deleted directory's watch (IN_IGNORED) as it goes:
    // wait for fdinfo to settle rather than a fixed time.
    let held = wait_until(
        "inotifywait's watches settle",
        Duration::from_secs(10),
        || Some(fdinfo_watches(pid).len()).filter(|n| *n <= 7),
    ) as u64;
    assert_eq!(held, 7, "three watches went with c, c/1 and c/2");
    let finished = tracer.stop();
    let _ = inotifywait.kill();
    let _ = inotifywait.wait();
    finished.assert_clean_exit();

    let summary = summary_of(&finished.stdout);
    let p = process(&summary, u64::from(pid));
    assert_eq!(
        (
            p["new_watches"].as_u64(),
            p["removed"].as_u64(),
            p["held_instances"].as_u64(),
            p["held_watches"].as_u64()
        ),
        (Some(10), Some(0), Some(1), Some(held)),
        "{p:#}"
    );
    // Where they are (the tree's root: the file handles resolve to it and
    // below), and what the process is.
    let root = root.path().canonicalize().unwrap();
    assert_eq!(
        p["held_where"],
        serde_json::json!([{"path": root.to_str().unwrap(), "watches": held}]),
        "{p:#}"
    );
    assert_eq!(
        p["cmdline"],
        serde_json::json!(["inotifywait", "-q", "-r", "-m", root.to_str().unwrap()]),
        "{p:#}"
    );
}

/// Seconds since midnight of an RFC 3339 UTC time with nanoseconds, as the
/// tracer writes them.
fn seconds_of_day(time: &str) -> f64 {
    let clock = time.split_once('T').unwrap().1.trim_end_matches('Z');
    let mut parts = clock.split(':');
    let (h, m, s) = (parts.next(), parts.next(), parts.next());
    let n = |p: Option<&str>| p.unwrap().parse::<f64>().unwrap();
    n(h) * 3600.0 + n(m) * 60.0 + n(s)
}

#[test]
fn watches_that_keep_growing_are_marked_a_leak_and_a_burst_is_not() {
    require_bpf!();
    let root = tempfile::tempdir().unwrap();
    let file = |i: usize| {
        let f = root.path().join(format!("f{i}"));
        std::fs::write(&f, b"").unwrap();
        f.to_str().unwrap().to_owned()
    };
    let (leaky, bursty) = (unique_comm("leaky"), unique_comm("bursty"));
    let recording = root.path().join("rec");
    let tracer = Tracer::start(&[
        "--json",
        "--comm",
        &leaky,
        "--comm",
        &bursty,
        "-w",
        recording.to_str().unwrap(),
    ]);
    // A burst at the start (a recursive watcher's set-up), then it holds.
    let mut burst = Script::new().init(3);
    for i in 0..30 {
        burst = burst.add(&file(i), i as i64 + 1);
    }
    let burst = burst.then("sleep", "60");
    let mut bursting = Workload::start(&[], &bursty, &burst.args());
    burst.check(&bursting.release_and_read(31));
    // A new file every 50 ms, none removed: 40 of them before the session
    // ends, more after.
    let mut steady = Script::new().init(3);
    for i in 0..80 {
        steady = steady
            .add(&file(100 + i), i as i64 + 1)
            .then("sleep", "0.05");
    }
    let mut growing = Workload::start(&[], &leaky, &steady.args());
    let calls = growing.release_and_read(41);
    let finished = tracer.stop();
    let burst_pid = bursting.pid;
    drop((growing, bursting));
    finished.assert_clean_exit();

    let lines = finished.json_lines();
    let summary = lines.iter().find(|l| l["type"] == "summary").unwrap();
    let leaky_row = process(summary, calls[0].pid);
    let new = leaky_row["new_watches"].as_u64().unwrap();
    assert!(new >= 40, "{leaky_row:#}");
    // Its pace, from the first new watch to the last the session saw.
    let times: Vec<f64> = lines
        .iter()
        .filter(|l| l["type"] == "add_watch" && l["pid"] == calls[0].pid)
        .map(|l| seconds_of_day(l["time"].as_str().unwrap()))
        .collect();
    let over_s = times.last().unwrap() - times[0];
    let leak = &leaky_row["leak"];
    assert!(
        (leak["over_s"].as_f64().unwrap() - over_s).abs() < 1e-6,
        "{leak:#} vs {over_s}"
    );
    let pace = (new - 1) as f64 / over_s * 60.0;
    assert!(
        (leak["new_per_minute"].as_f64().unwrap() - pace).abs() < 1e-3,
        "{leak:#} vs {pace}"
    );
    let burst_row = process(summary, burst_pid);
    assert_eq!(burst_row["new_watches"], 30, "{burst_row:#}");
    assert!(burst_row.get("leak").is_none(), "{burst_row:#}");

    // The report's text says it under the leaking row only.
    let report = tests::report(&[&recording]);
    assert!(report.status.success(), "{report:?}");
    let text = String::from_utf8(report.stdout).unwrap();
    assert_eq!(text.matches(" grows without bound: +").count(), 1, "{text}");
    let row = text
        .lines()
        .position(|l| l.split_whitespace().next() == Some(&calls[0].pid.to_string()))
        .unwrap();
    assert!(
        text.lines()
            .skip(row + 1)
            .take(3)
            .any(|l| l.trim_start().starts_with(&format!(
                "grows without bound: +{:.1} new watches a minute",
                pace
            ))),
        "{text}"
    );
}

/// A hog that started before the session, in the budget the victim's calls
/// are charged to: it tops the Processes table with what it held at the
/// start (no call of its own in the session), above the victim that made
/// every call; live and in `report`, the same.
#[test]
fn a_holder_from_before_the_session_tops_the_table_live_and_in_report() {
    require_bpf!();
    let (hog, victim) = (unique_comm("hog"), unique_comm("victim"));
    let dir = tempfile::tempdir().unwrap();
    let watched: Vec<String> = (0..8)
        .map(|i| {
            let d = dir.path().join(format!("d{i}"));
            std::fs::create_dir(&d).unwrap();
            d.to_str().unwrap().to_owned()
        })
        .collect();
    let (go, stop) = (dir.path().join("go"), dir.path().join("stop"));
    let w = workload_binary();
    let w = w.to_str().unwrap();
    let adds = |paths: &[String]| {
        paths
            .iter()
            .map(|p| format!("add {p}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    // In a namespace of its own (a budget no other test touches): the hog
    // takes 5 of 7, says so, and holds them; once the tracer is attached
    // (`go`), the victim takes the 2 left and fails at its third.
    let script = format!(
        "echo 7 > /proc/sys/user/max_inotify_watches; T=$(mktemp); \
         {w} --comm {hog} init {} sleep 60 >$T & echo $!; \
         until [ \"$(wc -l < $T)\" -ge 6 ]; do sleep 0.01; done; echo ready; \
         for i in $(seq 3000); do [ -e {go} ] && break; sleep 0.02; done; \
         {w} --comm {victim} init {} >/dev/null; echo done; \
         for i in $(seq 3000); do [ -e {stop} ] && break; sleep 0.02; done; kill $!",
        adds(&watched[..5]),
        adds(&watched[5..]),
        go = go.display(),
        stop = stop.display(),
    );
    let mut namespace = tests::spawned::Spawned::in_user_namespace(&script);
    let hog_pid: u64 = namespace.line().trim().parse().unwrap();
    assert_eq!(namespace.line(), "ready");
    let record = dir.path().join("s.rec");
    let tracer = Tracer::start(&[
        "--json",
        "-q",
        "--comm",
        &victim,
        "--record",
        record.to_str().unwrap(),
    ]);
    std::fs::write(&go, b"").unwrap();
    assert_eq!(namespace.line(), "done");
    let finished = tracer.stop();
    std::fs::write(&stop, b"").unwrap();
    assert!(namespace.succeeded());
    finished.assert_clean_exit();

    let live = summary_of(&finished.stdout);
    let top = &live["processes"][0];
    assert_eq!(top["pid"].as_u64(), Some(hog_pid), "{live:#}");
    assert_eq!(
        (
            &top["calls"],
            &top["held_at_start"]["watches"],
            &top["held_watches"]
        ),
        (&Value::from(0), &Value::from(5), &Value::from(5)),
        "{live:#}"
    );
    let second = &live["processes"][1];
    assert_eq!(
        (&second["comm"], &second["new_watches"], &second["failed"]),
        (
            &Value::from(victim.as_str()),
            &Value::from(2),
            &Value::from(1)
        ),
        "{live:#}"
    );
    // The recording says the same.
    let report = std::process::Command::new(tests::tracer_binary())
        .args(["report", "--json"])
        .arg(&record)
        .output()
        .unwrap();
    let replayed = summary_of(&String::from_utf8(report.stdout).unwrap());
    assert_eq!(replayed["processes"], live["processes"]);
}
