//! Real watchers from Debian (fswatch, entr, python3-watchdog, watchman;
//! `cargo xtask test` installs them) traced as they set up: every watch the
//! kernel says each one holds (/proc/PID/fdinfo: its wd and inode) is an
//! event with that wd and a path to that inode, from one of the program's
//! own threads, and the summary's held-now count is fdinfo's.
use std::{
    collections::BTreeSet,
    os::unix::fs::MetadataExt,
    path::PathBuf,
    time::{Duration, Instant},
};

use rstest::rstest;
use serde_json::Value;
use tests::{
    fdinfo_watches, reported_path, require_bpf, unique_comm,
    wait::wait_until,
    watchers::{tree_of, Program, Running},
    Tracer,
};

/// The tree every program watches: twelve directories (so that wds pass
/// 9: fdinfo prints them in hex), two files.
const DIRS: [&str; 12] = [
    "", "a", "a/b", "c", "c/d", "c/e", "f", "g", "h", "i", "j", "k",
];
const FILES: [&str; 2] = ["f1", "a/f2"];

/// Waits until `pid` holds `n` watches and has stopped adding (the same
/// set twice, 300 ms apart).
fn settled_watches(pid: u32, n: usize) -> BTreeSet<(i64, u64)> {
    let mut last = (BTreeSet::new(), Instant::now());
    let what = format!("{pid} holding {n} distinct watches, the same for 300 ms");
    wait_until(what, Duration::from_secs(15), || {
        let listed = fdinfo_watches(pid);
        let now: BTreeSet<(i64, u64)> = listed.iter().copied().collect();
        if listed.len() != n || now.len() != n || now != last.0 {
            last = (now, Instant::now());
            return None;
        }
        (last.1.elapsed() >= Duration::from_millis(300)).then_some(now)
    })
}

fn tasks_of(pid: u32) -> BTreeSet<u64> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .filter_map(|t| t.file_name().to_str()?.parse().ok())
        .collect()
}

#[rstest]
#[case::fswatch(Program::Fswatch)]
#[case::entr(Program::Entr)]
#[case::python3_watchdog(Program::PythonWatchdog)]
#[case::watchman(Program::Watchman)]
fn a_real_watchers_calls_are_what_fdinfo_says_it_holds(#[case] watcher: Program) {
    require_bpf!();
    let root = tempfile::tempdir().unwrap();
    // Resolved, as the programs see it (no symlink in the reported paths).
    let tree = tree_of(&root.path().canonicalize().unwrap(), &DIRS, &FILES);
    let state = tempfile::tempdir().unwrap();
    let comm = unique_comm("real");
    let tracer = Tracer::start(&["--json", "--comm", &comm]);
    let program = Running::start_as(watcher, state.path(), &tree, &[], &comm);
    let pid = program.holder;
    let held = settled_watches(pid, watcher.watches(&tree));
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
