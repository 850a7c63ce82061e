//! `inotify-trace check`: the line and exit status node-problem-detector's
//! custom plugins (and Nagios) expect, for budgets made in user namespaces
//! of their own (the host's sysctls untouched): near the cap, at it, under
//! it; without privileges; and from the agent's state file, which knows of
//! failures.
use std::process::Command;

use tests::{
    require_bpf,
    scrape::{get, sample_with, scrape_until, Agent},
    tracer_binary, unique_comm,
    wait::wait_until,
    Script, Workload,
};

/// A holder in a user namespace of its own whose `limit` cap is `cap`,
/// holding `watches` watches on one instance (or `watches` instances, for
/// `limit-instances`), until dropped; and its namespace's inode.
fn holder(limit: &str, cap: u32, n: usize) -> (Workload, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut script = Script::new().then(limit, &cap.to_string());
    let calls = match limit {
        "limit-instances" => {
            script = (0..n).fold(script, |s, i| s.init(3 + i as i64));
            n
        }
        _ => {
            script = script.init(3);
            for wd in 1..=n {
                let path = dir.path().join(format!("d{wd}"));
                std::fs::create_dir(&path).unwrap();
                script = script.add(path.to_str().unwrap(), wd as i64);
            }
            1 + n
        }
    };
    let script = script.then("sleep", "60");
    let mut holder = Workload::start(
        &["unshare", "-U", "-r"],
        unique_comm("check"),
        &script.args(),
    );
    let made = holder.release_and_read(calls);
    assert!(made.iter().all(|c| c.ret >= 0), "{made:?}");
    let ns = std::fs::read_link(format!("/proc/{}/ns/user", holder.pid)).unwrap();
    let ns = ns
        .to_str()
        .unwrap()
        .trim_start_matches("user:[")
        .trim_end_matches(']')
        .to_owned();
    (holder, dir, ns)
}

/// `inotify-trace check ARGS` as `wrapper` runs it: its exit status and its
/// one line.
fn check(wrapper: &[&str], args: &[&str]) -> (i32, String) {
    let mut command = match wrapper {
        [] => Command::new(tracer_binary()),
        [first, rest @ ..] => {
            let mut c = Command::new(first);
            c.args(rest).arg(tracer_binary());
            c
        }
    };
    let out = command.arg("check").args(args).output().unwrap();
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one line: {out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    (out.status.code().unwrap(), stdout.trim_end().to_owned())
}

#[test]
fn a_budget_near_its_cap_is_a_warning_and_one_at_it_a_problem() {
    require_bpf!();
    let (near, _dirs, near_ns) = holder("limit-watches", 10, 9);
    let (code, line) = check(&[], &["watches"]);
    let want = format!(
        "warning: inotify watches: uid 0 (user namespace {near_ns}) holds 9 of 10 watches (90%), the fullest of "
    );
    assert!(line.starts_with(&want), "{line}");
    assert_eq!(
        code, 0,
        "a warning is not a problem for node-problem-detector: {line}"
    );
    assert_eq!(check(&[], &["watches", "--nagios"]).0, 1);
    // Under the thresholds asked for: ok, the same budget named.
    let (code, line) = check(&[], &["watches", "--warn", "95", "--problem", "99"]);
    assert_eq!(code, 0, "{line}");
    assert!(line.starts_with(&want.replace("warning:", "ok:")), "{line}");

    let (_full, _dirs, full_ns) = holder("limit-watches", 10, 10);
    let (code, line) = check(&[], &["watches"]);
    assert_eq!(code, 1, "{line}");
    assert!(
        line.starts_with(&format!(
            "problem: inotify watches: uid 0 (user namespace {full_ns}) holds 10 of 10 watches (100%), the fullest of "
        )),
        "{line}"
    );
    assert_eq!(check(&[], &["watches", "--nagios"]).0, 2);
    drop(near);
}

#[test]
fn instances_are_checked_on_their_own() {
    require_bpf!();
    let (_holder, _dirs, ns) = holder("limit-instances", 2, 2);
    let (code, line) = check(&[], &["instances"]);
    assert_eq!(code, 1, "{line}");
    assert!(
        line.starts_with(&format!(
            "problem: inotify instances: uid 0 (user namespace {ns}) holds 2 of 2 instances (100%)"
        )),
        "{line}"
    );
}

#[test]
fn without_privileges_the_answer_is_unknown_and_says_why() {
    require_bpf!();
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    let (code, line) = check(&nobody, &["watches"]);
    assert_eq!(code, 2, "{line}");
    assert!(line.starts_with("unknown: inotify watches: "), "{line}");
    assert!(
        line.ends_with("CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH missing: only this user's processes were read (run it as root, or give --agent-state)"),
        "{line}"
    );
    assert_eq!(check(&nobody, &["watches", "--nagios"]).0, 3);
    // A state file that is not one: unknown too, one line naming it.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("state.json");
    std::fs::write(&bad, "{\"type\":\"summary\"}").unwrap();
    let (code, line) = check(&[], &["watches", "--agent-state", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{line}");
    assert_eq!(
        line,
        format!(
            "unknown: inotify watches: --agent-state {}: not the agent's state (no \"type\":\"inotify_trace_agent_state\")",
            bad.display()
        )
    );
    // A hostile path stays on the one line, escaped.
    let (code, line) = check(&[], &["watches", "--agent-state", "/no/such\nfile"]);
    assert_eq!(code, 2, "{line}");
    assert!(
        line.contains("--agent-state /no/such\\nfile: opening it"),
        "{line}"
    );
}

/// The agent writes its state; a failure it traced makes the check a
/// problem (from any user: the file is readable), naming the budget the
/// kernel charged, which the failure counter labels alike.
#[test]
fn a_failure_the_agent_traced_makes_the_check_a_problem() {
    require_bpf!();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let (_agent, port) = Agent::start(&[
        "--always-trace",
        "--trace-window",
        "60s",
        "--state-file",
        state.to_str().unwrap(),
    ]);
    wait_until(
        "the agent tracing",
        std::time::Duration::from_secs(30),
        || {
            get(port, "/metrics")
                .filter(|(_, m)| tests::scrape::sample(m, "inotify_trace_tracing") == Some(1.0))
        },
    );
    let (code, line) = check(&[], &["watches", "--agent-state", state.to_str().unwrap()]);
    assert!(line.contains("; no ENOSPC in the last 10m"), "{line}");
    assert!(code <= 1, "{line}");

    let targets = tempfile::tempdir().unwrap();
    let (a, b) = (targets.path().join("a"), targets.path().join("b"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    let calls = Script::new()
        .then("limit-watches", "1")
        .init(3)
        .add(a.to_str().unwrap(), 1)
        .add(b.to_str().unwrap(), tests::ENOSPC)
        .run(&["unshare", "-U", "-r"], &unique_comm("chkfail"));
    assert_eq!(calls.last().unwrap().ret, tests::ENOSPC);
    let metrics = scrape_until(port, "the ENOSPC counted", |m| {
        sample_with(m, "inotify_trace_failures_total", &["errno=\"ENOSPC\""]).is_some()
    });
    let series = metrics
        .lines()
        .find(|l| l.starts_with("inotify_trace_failures_total{") && l.contains("ENOSPC"))
        .unwrap();
    let userns = series
        .split("userns=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    assert!(series.contains("uid=\"0\""), "{series}");
    assert!(
        userns.parse::<u64>().is_ok(),
        "the namespace's own cap ran out: {series}"
    );

    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    let (code, line) = wait_until(
        "the failure in the state file",
        std::time::Duration::from_secs(15),
        || {
            let (code, line) = check(
                &nobody,
                &["watches", "--agent-state", state.to_str().unwrap()],
            );
            (code == 1).then_some((code, line))
        },
    );
    assert_eq!(code, 1);
    assert!(
        line.starts_with(&format!(
            "problem: inotify watches: ENOSPC from inotify_add_watch in the last 10m (uid 0, user namespace {userns}); "
        )),
        "{line}"
    );
}
