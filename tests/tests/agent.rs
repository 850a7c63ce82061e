//! `inotify-trace agent` against this machine: holders made by the test, one
//! of them in a pod made of real cgroups; what `/metrics` serves must equal
//! what `usage --json` reports for them.
use std::{
    io::Write,
    process::{Command, Stdio},
    time::Duration,
};

use rstest::rstest;
use serde_json::Value;
use tests::{
    node::{strs, Layout, Node},
    require_bpf,
    scrape::{get, prometheus_scraping, query, sample, sample_with, scrape_until, Agent},
    tracer_binary, unique_comm,
    wait::{wait_for, wait_until},
    Script, Workload,
};

/// A uid no one else on the machine uses.
const UID: &str = "4243";

/// A workload in the pod's cgroup running as `uid`, holding one instance
/// with a watch on each of `dirs` (checked made) until dropped.
fn holder_in_pod(node: &Node, cgroup: &str, uid: &str, dirs: &[String], comm: &str) -> Workload {
    // The workload, as another uid, must reach the node's directories.
    std::fs::set_permissions(
        node.host_root.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let wrapper = node.inside(cgroup);
    let script = dirs
        .iter()
        .zip(1..)
        .fold(Script::new().as_user(uid).init(3), |script, (dir, wd)| {
            script.add(dir, wd)
        })
        .then("sleep", "60");
    let mut holder = Workload::start(&strs(&wrapper), comm, &script.args());
    script.check(&holder.release_and_read(1 + dirs.len()));
    holder
}

#[test]
fn metrics_equal_what_usage_reports_per_uid_and_per_pod() {
    // The agent needs no eBPF, but the machine-wide /proc read wants root.
    require_bpf!();
    let mut node = Node::new();
    let c = node.container(Layout::SystemdContainerd, "app", true);
    let dirs = node.dirs("d", 3);
    let holder = holder_in_pod(&node, &c.cgroup, UID, &dirs, &unique_comm("agent"));

    let (agent, port) =
        Agent::start_with_stderr(&["--host-root", node.host_root.path().to_str().unwrap()]);
    let listen = format!("127.0.0.1:{port}");
    let user_series = format!("inotify_trace_user_watches{{uid=\"{UID}\",userns=\"host\"}}");
    let pod_series = format!(
        "inotify_trace_pod_watches{{namespace=\"shop\",pod=\"{}\"}}",
        c.pod
    );
    let metrics = scrape_until(port, &format!("metrics for uid {UID}"), |body| {
        sample(body, &user_series).is_some()
    });
    assert_eq!(get(port, "/healthz").map(|(status, _)| status), Some(200));

    let usage = tests::usage_json(&[
        "--uid",
        UID,
        "--host-root",
        node.host_root.path().to_str().unwrap(),
    ]);
    let user = &usage["users"][0];
    assert_eq!(user["watches"], 3, "{usage:#}");
    assert_eq!(
        sample(&metrics, &user_series),
        user["watches"].as_f64(),
        "{metrics}"
    );
    let instances = format!("inotify_trace_user_instances{{uid=\"{UID}\",userns=\"host\"}}");
    assert_eq!(sample(&metrics, &instances), user["instances"].as_f64());
    let max = format!("inotify_trace_user_max_watches{{uid=\"{UID}\",userns=\"host\"}}");
    assert_eq!(sample(&metrics, &max), user["max_watches"].as_f64());
    let pod = usage["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pod"] == c.pod.as_str())
        .unwrap_or_else(|| panic!("the pod in usage: {usage:#}"));
    assert_eq!(
        sample(&metrics, &pod_series),
        pod["watches"].as_f64(),
        "{metrics}"
    );
    // Attached all the time where fexit works, else only in windows (and
    // nothing here calls for one).
    let continuous = !tests::fexit_refused();
    assert_eq!(
        sample(&metrics, "inotify_trace_tracing"),
        Some(f64::from(u8::from(continuous)))
    );
    // Without an Accept header: the older text format.
    assert!(!metrics.contains("# EOF"), "{metrics}");
    for line in metrics.lines() {
        assert!(!line.contains("pid="), "no pid labels: {line}");
    }

    // The holder gone, its series go with the next snapshot.
    drop(holder);
    scrape_until(port, "the holder's series gone", |body| {
        sample(body, &user_series).is_none() && sample(body, &pod_series).is_none()
    });

    // A second agent on the same port: a one-line error, exit 1.
    let taken = Command::new(tracer_binary())
        .args(["agent", "--listen", &listen])
        .output()
        .unwrap();
    let stderr = String::from_utf8(taken.stderr).unwrap();
    assert_eq!(taken.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is the port taken?"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // A --record-dir that is a file (here a symlink to one): refused at
    // start, before a port is taken, not warned about at every window.
    let not_a_dir = node.host_root.path().join("not-a-dir");
    std::os::unix::fs::symlink("/etc/passwd", &not_a_dir).unwrap();
    let refused = Command::new(tracer_binary())
        .args(["agent", "--always-trace", "--listen", "127.0.0.1:0"])
        .arg("--record-dir")
        .arg(&not_a_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8(refused.stderr).unwrap();
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "inotify-trace: error: --record-dir {} is not a directory: give a directory (it is made if missing)",
            not_a_dir.display()
        )
    );

    // SIGTERM ends it cleanly.
    let mut agent = agent;
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(agent.0.id() as i32, libc::SIGTERM) };
    let status = agent.0.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// Where the agent's recordings go.
#[derive(Debug, Clone, Copy, PartialEq)]
enum RecordDir {
    Roomy,
    /// A tmpfs with no block free: recording fails, counting does not.
    Full,
}

/// A full tmpfs mounted on `dir`, unmounted when dropped.
struct FullDisk(std::path::PathBuf);

impl FullDisk {
    fn mount(dir: &std::path::Path) -> FullDisk {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16k,mode=0700", "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(mounted.success());
        let full = FullDisk(dir.to_owned());
        let mut fill = std::fs::File::create(dir.join("fill")).unwrap();
        while fill.write_all(&[0; 4096]).is_ok() {}
        full
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Where the kernel allows fexit, the agent traces all the time: an ENOSPC
/// provoked in a user namespace, far from any cap the windows watch (there
/// are none: `--trace-above 100`), is counted at once; `/healthz` and the
/// info series say how it traces. Where the kernel refuses fexit (this
/// machine kind), the agent says why, once, and traces in windows only.
#[test]
fn where_fexit_works_the_agent_traces_continuously_and_counts_every_failure() {
    require_bpf!();
    let refused = tests::fexit_refused();
    let (mut agent, port) = Agent::start_with_stderr(&["--trace-above", "100"]);
    let healthz = |want: &str| {
        wait_until(
            format!("/healthz says {want:?}"),
            Duration::from_secs(30),
            || match get(port, "/healthz") {
                Some((200, body)) if body.starts_with(want) => Some(body),
                _ => None,
            },
        )
    };
    if refused {
        let said = healthz("ok: tracing in windows only, as fexit refused by the kernel (");
        let metrics = scrape_until(port, "the info series", |m| {
            sample(
                m,
                r#"inotify_trace_tracing_info{scope="windows",mode="none"}"#,
            ) == Some(1.0)
        });
        assert_eq!(
            sample(&metrics, "inotify_trace_tracing"),
            Some(0.0),
            "{said}"
        );
        drop(agent);
        return;
    }
    healthz("ok: tracing continuously with fexit");
    scrape_until(port, "the info series", |m| {
        sample(
            m,
            r#"inotify_trace_tracing_info{scope="continuous",mode="fexit"}"#,
        ) == Some(1.0)
            && sample(m, "inotify_trace_tracing") == Some(1.0)
    });
    let dirs = tempfile::tempdir().unwrap();
    let (a, b) = (dirs.path().join("a"), dirs.path().join("b"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    let comm = unique_comm("cont");
    let calls = Script::new()
        .then("limit-watches", "1")
        .init(3)
        .add(a.to_str().unwrap(), 1)
        .add(b.to_str().unwrap(), tests::ENOSPC)
        .run(&["unshare", "-U", "-r"], &comm);
    assert_eq!(calls.last().unwrap().ret, tests::ENOSPC);
    let enospc = ["syscall=\"inotify_add_watch\"", "errno=\"ENOSPC\""];
    let metrics = scrape_until(port, "the ENOSPC counted", |m| {
        sample_with(m, "inotify_trace_failures_total", &enospc).is_some()
    });
    assert!(
        sample_with(&metrics, "inotify_trace_failures_total", &enospc) >= Some(1.0),
        "{metrics}"
    );
    let _ = agent.0.kill();
    let mut stderr = String::new();
    std::io::Read::read_to_string(agent.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains("tracing in windows"), "{stderr}");
}

/// Where fexit works, the agent keeps each instance's watches as the kernel
/// makes and drops them (no fdinfo read per snapshot): three watchers as
/// one uid on trees, then a tree's directories deleted under one (the kernel
/// drops their watches itself), a watch removed, an instance closed, a
/// process killed; after
/// each, the agent's gauges equal `usage`'s counts from fdinfo, a
/// reconciliation after it found no drift, and none ever did. Where fexit
/// is refused, the agent says why and the same steps hold with fdinfo.
#[test]
fn the_agents_kept_counts_follow_watchers_as_they_come_and_go() {
    require_bpf!();
    const KEPT_UID: &str = "4246";
    let refused = tests::fexit_refused();
    let (mut agent, port) =
        Agent::start_with_stderr(&["--trace-above", "100", "--reconcile-every", "2s"]);
    let metrics = scrape_until(port, "the first snapshot", |m| {
        sample(m, "inotify_trace_snapshot_kept_counts").is_some()
    });
    if sample(&metrics, "inotify_trace_snapshot_kept_counts") != Some(f64::from(u8::from(!refused)))
    {
        let _ = agent.0.kill();
        let mut stderr = String::new();
        std::io::Read::read_to_string(agent.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        panic!("fexit refused: {refused}, but the agent said:\n{stderr}");
    }
    let trees = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        trees.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let tree = |name: &str, dirs: usize| -> Vec<String> {
        (0..dirs)
            .map(|i| {
                let dir = trees.path().join(name).join(i.to_string());
                std::fs::create_dir_all(&dir).unwrap();
                dir.to_str().unwrap().to_owned()
            })
            .collect()
    };
    let (a, b, c, d) = (tree("a", 40), tree("b", 20), tree("c", 10), tree("d", 30));
    // A new instance (its fd), a watch on each of `dirs`.
    let watching = |script: Script, fd: i64, dirs: &[String]| {
        dirs.iter()
            .zip(1..)
            .fold(script.init(fd), |script, (dir, wd)| script.add(dir, wd))
    };
    let comm = unique_comm("kept");
    // Started, its watches made (and checked), then it holds them.
    let start = |watches: Script, then: fn(Script) -> Script| {
        let mut watcher = Workload::start(&[], &comm, &then(watches.clone()).args());
        let made = watcher.release_and_read(watches.calls());
        watches.check(&made);
        watcher
    };
    let hold = |script: Script| script.then("sleep", "600");
    // A re-add of a watched directory makes no watch (the same wd).
    let one = watching(Script::new().as_user(KEPT_UID), 3, &a).add(&a[0], 1);
    let _one = start(one, hold);
    let two = watching(watching(Script::new().as_user(KEPT_UID), 3, &b), 4, &c);
    let mut two = start(two, |s| {
        s.pause().rm(1, 0).pause().close().then("sleep", "600")
    });
    let mut three = start(watching(Script::new().as_user(KEPT_UID), 3, &d), hold);

    let agree = |step: &str, watches: u64, instances: u64| {
        let usage = tests::usage_json(&["--uid", KEPT_UID]);
        let user = &usage["users"][0];
        assert_eq!(
            (user["watches"].as_u64(), user["instances"].as_u64()),
            (Some(watches), Some(instances)),
            "{step}: fdinfo says otherwise: {usage:#}"
        );
        let after = now_s();
        let series = |name| format!("{name}{{uid=\"{KEPT_UID}\",userns=\"host\"}}");
        let metrics = scrape_until(port, step, |m| {
            let counted = sample(m, &series("inotify_trace_user_watches")) == Some(watches as f64)
                && sample(m, &series("inotify_trace_user_instances")) == Some(instances as f64);
            let reconciled = refused
                || sample(m, "inotify_trace_last_reconciliation_timestamp_seconds")
                    .is_some_and(|at| at > after);
            counted && reconciled
        });
        let kept = sample(&metrics, "inotify_trace_snapshot_kept_counts");
        assert_eq!(kept, Some(if refused { 0.0 } else { 1.0 }), "{step}");
        if !refused {
            assert_eq!(
                sample(&metrics, "inotify_trace_kept_drift_watches"),
                Some(0.0),
                "{step}: {metrics}"
            );
        }
    };
    let all = (a.len() + b.len() + c.len() + d.len()) as u64;
    agree("the watchers started", all, 4);
    // The kernel drops a deleted directory's watch (IN_IGNORED).
    for dir in &a[20..] {
        std::fs::remove_dir(dir).unwrap();
    }
    agree("half of a tree deleted", all - 20, 4);
    let removed = two.step(1);
    assert_eq!((removed[0].op.as_str(), removed[0].ret), ("rm_watch", 0));
    agree("a watch removed", all - 21, 4);
    let closed = two.step(1);
    assert_eq!((closed[0].op.as_str(), closed[0].ret), ("close", 0));
    agree("an instance closed", all - 20 - c.len() as u64, 3);
    three.kill();
    agree("a watcher killed", (a.len() - 20 + b.len()) as u64, 2);

    let _ = agent.0.kill();
    let _ = agent.0.wait();
    let mut stderr = String::new();
    std::io::Read::read_to_string(agent.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    match refused {
        false => assert!(
            stderr.contains("keeping each instance's watches with fexit: a snapshot reads no watch; checked against fdinfo every 2s")
                && !stderr.contains("kept counts were"),
            "{stderr}"
        ),
        true => assert!(
            stderr.contains("keeping no counts in the kernel (fexit refused by the kernel ("),
            "{stderr}"
        ),
    }
}

/// A uid in a user namespace at its cap starts a trace window; an ENOSPC
/// provoked during it counts into the failure counter at once, named by
/// errno and pod; the window is recorded, and `report` on the recording
/// shows the failure. With the record directory's disk full, the failure
/// is counted all the same and no empty recording is left behind.
#[rstest]
#[case::recorded(RecordDir::Roomy)]
#[case::disk_full(RecordDir::Full)]
fn a_window_traces_when_a_cap_is_near_and_counts_the_failure(#[case] record_dir: RecordDir) {
    require_bpf!();
    let mut node = Node::new();
    let c = node.container(Layout::CgroupfsContainerd, "victim", true);
    let dirs = node.dirs("w", 2);
    let records = tempfile::tempdir().unwrap();
    let _full = (record_dir == RecordDir::Full).then(|| FullDisk::mount(records.path()));
    let (_agent, port) = Agent::start(&[
        "--trace-above",
        "90",
        "--trace-window",
        "4s",
        "--record-dir",
        records.path().to_str().unwrap(),
        "--host-root",
        node.host_root.path().to_str().unwrap(),
    ]);
    // In one user namespace with a cap of 1 watch: the holder takes it (100%
    // of the namespace's cap), which starts a window; once it is attached,
    // the failer in the pod calls and fails.
    let (holder, failer) = (unique_comm("whold"), unique_comm("wfail"));
    let procs = node.root.join(&c.cgroup).join("cgroup.procs");
    enospc_during_a_window(
        port,
        (&holder, &dirs[0]),
        (&failer, &dirs[1]),
        Some(&procs),
        records.path(),
    );
    let enospc = [
        "syscall=\"inotify_add_watch\"",
        "errno=\"ENOSPC\"",
        "namespace=\"shop\"",
    ];
    let metrics = scrape_until(port, "the ENOSPC counted", |m| {
        sample_with(m, "inotify_trace_failures_total", &enospc).is_some()
    });
    let pod = format!("pod=\"{}\"", c.pod);
    let container = "container=\"victim\"";
    let labels = [enospc[0], enospc[1], enospc[2], pod.as_str(), container];
    assert_eq!(
        sample_with(&metrics, "inotify_trace_failures_total", &labels),
        Some(1.0),
        "{metrics}"
    );
    let calls = ["syscall=\"inotify_add_watch\"", "result=\"ENOSPC\""];
    assert!(sample_with(&metrics, "inotify_trace_calls_total", &calls) >= Some(1.0));

    // The window ends; its recording reports the failure.
    scrape_until(port, "the window ended", |m| {
        sample(m, "inotify_trace_tracing") == Some(0.0)
    });
    let recordings: Vec<_> = std::fs::read_dir(records.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "rec"))
        .collect();
    if record_dir == RecordDir::Full {
        assert_eq!(
            recordings,
            Vec::<std::path::PathBuf>::new(),
            "no empty files"
        );
        return;
    }
    let recording = recordings.first().expect("the window's recording");
    let report = Command::new(tracer_binary())
        .args(["report", "--events", "--json", "--comm", &failer])
        .arg(recording)
        .output()
        .unwrap();
    assert!(report.status.success(), "{report:?}");
    let lines = String::from_utf8(report.stdout).unwrap();
    assert!(
        lines
            .lines()
            .any(|l| l.contains("\"errno\":\"ENOSPC\"")
                && l.contains(&format!("\"pod\":\"{}\"", c.pod))),
        "{lines}"
    );
}

/// The project's alert rules pass promtool's checks and its unit tests
/// (each alert fires on synthetic series), and the agent's exposition
/// passes `promtool check metrics`.
#[test]
fn the_rules_and_the_exposition_pass_promtool() {
    require_bpf!();
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus");
    for args in [
        &["check", "rules", "inotify-trace.rules.yml"][..],
        &["test", "rules", "inotify-trace.rules.test.yml"][..],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&deploy)
            .output()
            .expect("promtool (Debian's prometheus; cargo xtask test installs it)");
        assert!(out.status.success(), "promtool {args:?}: {out:?}");
    }
    let (_agent, port) = Agent::start(&[]);
    let metrics = scrape_until(port, "a snapshot", |m| m.contains("inotify_trace_snapshot"));
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {out:?}\n{metrics}"
    );
}

/// A real Prometheus server (Debian's) scrapes the agent: the per-uid and
/// per-pod gauges it stores equal what `usage --json` reports for a holder
/// made by the test, and the failure counter rises after an ENOSPC in a
/// user namespace during a window.
#[test]
fn a_real_prometheus_scrapes_the_agent() {
    require_bpf!();
    let mut node = Node::new();
    let c = node.container(Layout::SystemdCrioGuaranteed, "app", true);
    let dirs = node.dirs("p", 4);
    // A holder in the pod: 2 watches, as a uid of its own.
    let holder = holder_in_pod(&node, &c.cgroup, "4244", &dirs[..2], &unique_comm("prom"));

    let (_agent, agent_port) = Agent::start(&[
        "--trace-above",
        "90",
        "--trace-window",
        "5s",
        "--host-root",
        node.host_root.path().to_str().unwrap(),
    ]);
    let (_prometheus, prometheus_port, data) = prometheus_scraping(agent_port, &[]);

    let usage = tests::usage_json(&[
        "--pid",
        &holder.pid.to_string(),
        "--host-root",
        node.host_root.path().to_str().unwrap(),
    ]);
    let pod = usage["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pod"] == c.pod.as_str())
        .unwrap_or_else(|| panic!("the pod in usage: {usage:#}"));
    let pod_query = format!(
        "inotify_trace_pod_watches{{namespace=\"shop\",pod=\"{}\"}}",
        c.pod
    );
    let user_query = "inotify_trace_user_watches{uid=\"4244\",userns=\"host\"}";
    let stored = wait_until(
        format!("Prometheus stores {pod_query}"),
        Duration::from_secs(30),
        || query(prometheus_port, &pod_query),
    );
    assert_eq!(Some(stored), pod["watches"].as_f64(), "{usage:#}");
    let user = usage["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["uid"] == 4244 && u["user_ns"].is_null())
        .unwrap_or_else(|| panic!("uid 4244 in usage: {usage:#}"));
    assert_eq!(query(prometheus_port, user_query), user["watches"].as_f64());
    assert_eq!(user["watches"], 2);

    // An ENOSPC in a user namespace at its cap, during the window that
    // state starts: the counter Prometheus stores rises.
    let (hold, fail) = (unique_comm("phold"), unique_comm("pfail"));
    enospc_during_a_window(
        agent_port,
        (&hold, &dirs[2]),
        (&fail, &dirs[3]),
        None,
        data.path(),
    );
    let failures =
        "sum(inotify_trace_failures_total{errno=\"ENOSPC\",syscall=\"inotify_add_watch\"})";
    wait_for(
        "Prometheus sees the ENOSPC",
        Duration::from_secs(30),
        || query(prometheus_port, failures).is_some_and(|n| n >= 1.0),
    );
    drop(holder);
}

/// Seconds since the epoch, as the agent stamps its snapshots.
fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Scrapes until a snapshot taken after `after_s` (epoch seconds) is
/// served, and returns that exposition.
fn snapshot_after(port: u16, after_s: f64, what: &str) -> String {
    scrape_until(port, what, |m| {
        sample(m, "inotify_trace_last_snapshot_timestamp_seconds").is_some_and(|at| at > after_s)
    })
}

/// With `--always-trace` the window never ends, yet snapshots go on: the
/// first snapshot taken after a holder started shows it in the per-uid and
/// per-pod gauges, and the first one after it exited no longer does, all
/// while the window counts its calls. SIGTERM then ends the window's
/// recording as a live session ends: it reports with no warning.
#[test]
fn gauges_follow_a_holder_while_a_window_traces_and_sigterm_ends_its_recording() {
    require_bpf!();
    let mut node = Node::new();
    let c = node.container(Layout::SystemdContainerd, "app", true);
    let dirs = node.dirs("g", 3);
    let records = tempfile::tempdir().unwrap();
    let (mut agent, port) = Agent::start_with_stderr(&[
        "--always-trace",
        "--record-dir",
        records.path().to_str().unwrap(),
        "--host-root",
        node.host_root.path().to_str().unwrap(),
    ]);
    scrape_until(port, "the window attached", |m| {
        sample(m, "inotify_trace_tracing") == Some(1.0)
    });

    // A holder in the pod, as a uid of its own, started during the window.
    let comm = unique_comm("gwin");
    let holder = holder_in_pod(&node, &c.cgroup, "4245", &dirs, &comm);
    let held_at = now_s();
    let user_series = "inotify_trace_user_watches{uid=\"4245\",userns=\"host\"}";
    let pod_series = format!(
        "inotify_trace_pod_watches{{namespace=\"shop\",pod=\"{}\"}}",
        c.pod
    );
    let metrics = snapshot_after(port, held_at, "a snapshot after the holder started");
    assert_eq!(sample(&metrics, user_series), Some(3.0), "{metrics}");
    assert_eq!(sample(&metrics, &pod_series), Some(3.0), "{metrics}");
    assert_eq!(
        sample(&metrics, "inotify_trace_tracing"),
        Some(1.0),
        "still in the window"
    );
    // The window counted the holder's calls as they came.
    let added = ["syscall=\"inotify_add_watch\"", "result=\"ok\""];
    assert!(
        sample_with(&metrics, "inotify_trace_calls_total", &added) >= Some(3.0),
        "{metrics}"
    );

    drop(holder);
    let gone_at = now_s();
    let metrics = snapshot_after(port, gone_at, "a snapshot after the holder exited");
    assert_eq!(sample(&metrics, user_series), None, "{metrics}");
    assert_eq!(sample(&metrics, &pod_series), None, "{metrics}");
    assert_eq!(sample(&metrics, "inotify_trace_tracing"), Some(1.0));

    // SIGTERM in the middle of the window.
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(agent.0.id() as i32, libc::SIGTERM) };
    let status = agent.0.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut agent.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{status}: {stderr}");
    let recordings: Vec<_> = std::fs::read_dir(records.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(recordings.len(), 1, "one window: {recordings:?}");
    let report = Command::new(tracer_binary())
        .args(["report", "--events", "--json", "--comm", &comm])
        .arg(&recordings[0])
        .output()
        .unwrap();
    let report_stderr = String::from_utf8_lossy(&report.stderr);
    assert!(report.status.success(), "{report_stderr}");
    assert_eq!(report_stderr, "", "no warning (cut short or other)");
    let lines: Vec<Value> = String::from_utf8(report.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let adds = lines.iter().filter(|l| l["type"] == "add_watch").count();
    assert_eq!(adds, 3, "{lines:#?}");
    assert!(
        lines.iter().any(|l| l["type"] == "summary"),
        "the summary is recorded"
    );
}

/// In a user namespace whose watch cap is 1, the holder (comm, directory)
/// takes the one watch, which starts a window of the agent at `port`; once
/// that window is attached, the failer (comm, directory) calls and gets
/// ENOSPC, from the cgroup whose `cgroup.procs` is given, if any. `scratch`
/// holds the flag that says "attached" to the namespace's shell.
fn enospc_during_a_window(
    port: u16,
    (holder, held): (&str, &str),
    (failer, failing): (&str, &str),
    cgroup_procs: Option<&std::path::Path>,
    scratch: &std::path::Path,
) {
    let w = tests::workload_binary();
    let w = w.to_str().unwrap();
    let flag = scratch.join("attached");
    let enter_cgroup = cgroup_procs.map_or_else(String::new, |procs| {
        format!("echo $$ > {}; ", procs.display())
    });
    let script = format!(
        "echo 1 > /proc/sys/user/max_inotify_watches; \
         {w} --comm {holder} init add {held} sleep 20 >/dev/null & H=$!; \
         while [ ! -e {} ]; do sleep 0.05; done; \
         sh -c '{enter_cgroup}exec {w} --comm {failer} init add {failing}' >/dev/null; \
         kill $H; wait",
        flag.display(),
    );
    let mut unshare = Command::new("unshare")
        .args(["-U", "-r", "sh", "-c", &script])
        .spawn()
        .unwrap();
    scrape_until(port, "a window attached", |m| {
        sample(m, "inotify_trace_tracing") == Some(1.0)
    });
    std::fs::write(&flag, b"").unwrap();
    assert!(unshare.wait().unwrap().success());
}

/// An agent that cannot do what it is for says so and exits, with the
/// tracer's own line, rather than serving a healthy endpoint that sees
/// nothing.
#[test]
fn an_unprivileged_agent_exits_with_the_tracers_line() {
    require_bpf!();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(tracer_binary())
        .args(["agent", "--always-trace", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "inotify-trace: error: inotify-trace needs root: CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH missing (run it with sudo, or grant CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH: see the README's Privileges)"
    );
}

/// A trace window that fails (here its record directory was replaced by a
/// file) makes `/healthz` 503 with the reason, until a window attaches
/// again (the file gone: the agent makes the directory again). Where fexit works the agent traces continuously
/// and has no windows to fail.
#[test]
fn an_agent_whose_windows_fail_answers_503_with_the_reason() {
    require_bpf!();
    if !tests::fexit_refused() {
        eprintln!("skip: fexit works here, so the agent traces continuously, without windows");
        return;
    }
    let parent = tempfile::tempdir().unwrap();
    let records = parent.path().join("records");
    std::fs::create_dir(&records).unwrap();
    let (_agent, port) = Agent::start(&[
        "--always-trace",
        "--trace-window",
        "1s",
        "--record-dir",
        records.to_str().unwrap(),
    ]);
    let healthz = |status: u16, want: &str| {
        wait_until(
            format!("/healthz {status} {want:?}"),
            Duration::from_secs(30),
            || get(port, "/healthz").filter(|(s, body)| *s == status && body.starts_with(want)),
        )
    };
    healthz(200, "ok: tracing in a window");
    std::fs::remove_dir_all(&records).unwrap();
    std::fs::write(&records, "not a directory").unwrap();
    // (A window running as the file came fails at its end, listing the
    // directory; the next one, at its start, on the file.)
    let (_, body) = healthz(
        503,
        "not tracing: the last trace window failed: --record-dir",
    );
    assert_eq!(
        body.trim_end(),
        format!(
            "not tracing: the last trace window failed: --record-dir {} is not a directory: give a directory (it is made if missing)",
            records.display()
        )
    );
    std::fs::remove_file(&records).unwrap();
    healthz(200, "ok: ");
}

/// What a watch pins, by the kernel's estimate with this kernel's sizes
/// (read by bpftool, apart from the tool's own BTF parser), exported once;
/// and the agent's own build and page. (Not in the guests: no bpftool
/// there.)
#[test]
fn the_agent_exports_what_a_watch_costs_and_its_build() {
    require_bpf!();
    let (_agent, port) = Agent::start(&["--trace-above", "100"]);
    let metrics = scrape_until(port, "the watch cost", |m| {
        sample(m, "inotify_trace_watch_cost_bytes").is_some()
    });
    assert_eq!(
        sample(&metrics, "inotify_trace_watch_cost_bytes"),
        Some(tests::btf::watch_cost() as f64),
        "{metrics}"
    );
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(
        sample_with(
            &metrics,
            "inotify_trace_build_info",
            &[
                &format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
                &format!("kernel=\"{}\"", release.trim()),
            ]
        ),
        Some(1.0),
        "{metrics}"
    );
    let (status, page) = get(port, "/").unwrap();
    assert_eq!(status, 200);
    for link in ["href=\"metrics\"", "href=\"healthz\"", "href=\"livez\""] {
        assert!(page.contains(link), "{page}");
    }
    assert_eq!(get(port, "/livez"), Some((200, "ok\n".to_owned())));
}
