//! The charge every record carries: what the kernel's own counters said
//! right after the call, at each user namespace level. Provoked inside user
//! namespaces with their own caps (never the host's sysctls), each call
//! checked against the count the kernel must have: the workload's own calls
//! are the only ones charged to a fresh namespace.
use rstest::rstest;
use serde_json::Value;
use tests::{require_bpf, unique_comm, Call, Script, Tracer, EMFILE, ENOSPC};

/// A scratch directory whose subdirectories `dir(NAME)` makes on demand.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Scratch {
        Scratch(tempfile::tempdir().unwrap())
    }

    fn dir(&self, name: &str) -> String {
        let p = self.0.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p.to_str().unwrap().to_owned()
    }
}

/// The host's user namespace, as records name it.
fn host_user_ns() -> u64 {
    let link = std::fs::read_link("/proc/self/ns/user").unwrap();
    let link = link.to_str().unwrap();
    link.trim_start_matches("user:[")
        .trim_end_matches(']')
        .parse()
        .unwrap()
}

fn host_cap(name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/sys/fs/inotify/{name}"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The records of `calls`, in their order, each with the call it is.
fn records_of<'a>(lines: &'a [Value], calls: &'a [Call]) -> Vec<(&'a Call, &'a Value)> {
    let pid = calls[0].pid;
    let records: Vec<&Value> = lines
        .iter()
        .filter(|l| l["pid"].as_u64() == Some(pid) && l["type"] != "diagnosis")
        .collect();
    assert_eq!(records.len(), calls.len(), "{records:#?}");
    calls.iter().zip(records).collect()
}

/// A charge level's (watches, instances, max_watches, max_instances).
fn counts(level: &Value) -> (u64, u64, u64, u64) {
    let n = |key: &str| {
        level[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key}: {level}"))
    };
    (
        n("watches"),
        n("instances"),
        n("max_watches"),
        n("max_instances"),
    )
}

fn levels(record: &Value) -> &Vec<Value> {
    record["charge"]
        .as_array()
        .unwrap_or_else(|| panic!("no charge: {record}"))
}

/// One watch after another in a namespace whose cap is 4: the innermost
/// level counts 1, 2, 3, 4, the fifth call fails with 4 of 4, an rm_watch
/// gives one back; the level above is the host's, charged the same watches,
/// with the host's caps. In every attach mode the kernel allows.
#[rstest]
#[case::exit_only("exit")]
#[case::enter_exit("enter-exit")]
#[case::fexit("fexit")]
fn each_call_carries_the_count_the_kernel_enforces(#[case] attach: &str) {
    require_bpf!();
    if attach == "fexit" && tests::fexit_refused() {
        return;
    }
    let scratch = Scratch::new();
    let path = |name: &str| scratch.dir(name);
    let comm = unique_comm("charge");
    let tracer = Tracer::start(&["--json", "--comm", &comm, "--attach", attach]);
    let script = Script::new()
        .then("limit-watches", "4")
        .init(3)
        .add(&path("a"), 1)
        .add(&path("b"), 2)
        .add(&path("a"), 1) // a re-add: no new watch
        .add(&path("c"), 3)
        .add(&path("d"), 4)
        .add(&path("e"), ENOSPC)
        .rm(2, 0)
        // The failed call used up descriptor 5 (the kernel numbers a watch
        // before it charges it).
        .add(&path("e"), 6);
    let calls = script.run_all(&["unshare", "-U", "-r"], &comm);
    let finished = tracer.stop();
    finished.assert_clean_exit();

    let lines = finished.json_lines();
    let records = records_of(&lines, &calls);
    let inner_ns = records[0].1["user_ns"].as_u64().unwrap();
    assert_ne!(inner_ns, host_user_ns());
    let expected_watches = [0, 1, 2, 2, 3, 4, 4, 3, 4];
    for ((call, record), watches) in records.iter().zip(expected_watches) {
        let levels = levels(record);
        assert_eq!(levels.len(), 2, "{record}");
        let (inner, host) = (&levels[0], &levels[1]);
        assert_eq!(inner["user_ns"].as_u64(), Some(inner_ns), "{record}");
        // Root in the namespace is the test's uid (root) on the host.
        assert_eq!(
            (inner["uid"].as_u64(), host["uid"].as_u64()),
            (Some(0), Some(0))
        );
        assert_eq!(
            counts(inner),
            (watches, 1, 4, i32::MAX as u64),
            "{} returning {}: {record}",
            call.op,
            call.ret
        );
        assert_eq!(host["user_ns"].as_u64(), Some(host_user_ns()));
        let (host_watches, host_instances, max_watches, max_instances) = counts(host);
        // The host level is charged the same watches, and other root
        // processes' too.
        assert!(host_watches >= watches && host_instances >= 1, "{record}");
        assert_eq!(
            (max_watches, max_instances),
            (host_cap("max_user_watches"), host_cap("max_user_instances"))
        );
    }
    let failed = records[6].1;
    assert_eq!(failed["errno"], "ENOSPC");
    assert_eq!(counts(&levels(failed)[0]).0, 4, "{failed}");
}

/// A namespace inside a namespace: the outer one's cap (3) is the one that
/// runs out, while the inner one's (INT_MAX, a new namespace's default) has
/// room; the failing record says so, level by level.
#[test]
fn a_nested_namespace_fails_on_the_outer_level_and_the_record_says_so() {
    require_bpf!();
    let scratch = Scratch::new();
    let path = |name: &str| scratch.dir(name);
    let comm = unique_comm("nested");
    let tracer = Tracer::start(&["--json", "--comm", &comm]);
    let outer = [
        "unshare",
        "-U",
        "-r",
        "sh",
        "-c",
        "echo 3 > /proc/sys/user/max_inotify_watches && exec \"$@\"",
        "sh",
        "unshare",
        "-U",
        "-r",
    ];
    let script = Script::new()
        .init(3)
        .add(&path("a"), 1)
        .add(&path("b"), 2)
        .add(&path("c"), 3)
        .add(&path("d"), ENOSPC);
    let calls = script.run_all(&outer, &comm);
    let finished = tracer.stop();
    finished.assert_clean_exit();

    let lines = finished.json_lines();
    let records = records_of(&lines, &calls);
    let failed = records[4].1;
    assert_eq!(failed["errno"], "ENOSPC");
    let levels = levels(failed);
    assert_eq!(levels.len(), 3, "inner, outer, host: {failed}");
    assert_eq!(levels[0]["user_ns"], failed["user_ns"]);
    assert_eq!(levels[2]["user_ns"].as_u64(), Some(host_user_ns()));
    let (inner, outer) = (counts(&levels[0]), counts(&levels[1]));
    // The inner level has room: the kernel undid its charge when the outer
    // level refused.
    assert_eq!((inner.0, inner.2), (3, i32::MAX as u64), "{failed}");
    assert_eq!(
        (outer.0, outer.2),
        (3, 3),
        "the outer level is full: {failed}"
    );
}

/// A failed init made no instance: its record carries the caller's own
/// level (flagged), which is full.
#[test]
fn a_failed_init_carries_the_callers_own_full_level() {
    require_bpf!();
    let comm = unique_comm("emfile");
    let tracer = Tracer::start(&["--json", "--comm", &comm, "-v"]);
    let script = Script::new()
        .then("limit-instances", "1")
        .init(3)
        .init(EMFILE);
    let calls = script.run_all(&["unshare", "-U", "-r"], &comm);
    let finished = tracer.stop();
    finished.assert_clean_exit();

    let lines = finished.json_lines();
    let records = records_of(&lines, &calls);
    let (made, failed) = (records[0].1, records[1].1);
    let (watches, instances, _, max_instances) = counts(&levels(made)[0]);
    assert_eq!((watches, instances, max_instances), (0, 1, 1), "{made}");
    assert_eq!(failed["errno"], "EMFILE");
    // The kernel has struct cred's own level from 5.14 on; before it, the
    // tracer says the charge is missing rather than guess.
    match failed.get("charge") {
        Some(_) => {
            assert_eq!(failed["charge_of_caller"], true, "{failed}");
            let level = &levels(failed)[0];
            assert_eq!(level["user_ns"], failed["user_ns"]);
            assert_eq!((counts(level).1, counts(level).3), (1, 1), "{failed}");
        }
        None => assert!(
            finished.stderr.contains("5.14") || kernel_before(5, 14),
            "no charge on a failed init: {failed}\n{}",
            finished.stderr
        ),
    }
}

/// Whether the running kernel is older than MAJOR.MINOR.
fn kernel_before(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) < (major, minor)
}

/// `--failed` keeps the successful calls out in the kernel, so the session
/// never sees the victim's own watches: the diagnosis still says what the
/// kernel counted at the failure, the same as an unfiltered session's.
#[test]
fn a_failed_only_session_diagnoses_the_same_as_an_unfiltered_one() {
    require_bpf!();
    let scratch = Scratch::new();
    let path = |name: &str| scratch.dir(name);
    let mut at_failure = Vec::new();
    for filter in [None, Some("--failed")] {
        let comm = unique_comm("failedonly");
        let mut args = vec!["--json", "--comm", &comm];
        args.extend(filter);
        let tracer = Tracer::start(&args);
        let script = Script::new()
            .then("limit-watches", "3")
            .init(3)
            .add(&path("a"), 1)
            .add(&path("b"), 2)
            .add(&path("c"), 3)
            .add(&path("d"), ENOSPC);
        script.run_all(&["unshare", "-U", "-r"], &comm);
        let finished = tracer.stop();
        finished.assert_clean_exit();
        let lines = finished.json_lines();
        let d = lines
            .iter()
            .find(|l| l["type"] == "diagnosis")
            .unwrap_or_else(|| panic!("a diagnosis with {filter:?}: {lines:#?}"));
        at_failure.push((d["at_failure"].clone(), d["charge"][0]["watches"].clone()));
    }
    assert_eq!(at_failure[0], at_failure[1]);
    assert_eq!(at_failure[0].0["watches"], 3, "{at_failure:?}");
}
