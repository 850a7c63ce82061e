//! Pods, containers and units, against real cgroups made by the test: in
//! kubelet's systemd and cgroupfs layouts, with containerd, CRI-O and docker
//! leaves, and kubelet's log directories under a temporary `--host-root`.
//! Workloads are moved into the cgroups (`cgroup.procs`) before they make
//! their calls; every event, summary row, `usage` row and diagnosis must name
//! exactly their pod and container.
use serde_json::{json, Value};
use tests::{
    node::{strs, Container, Layout, Node, LAYOUTS},
    require_bpf, tracer_binary, unique_comm, until_lines, Script, Tracer, Workload, EMFILE, ENOSPC,
};

/// What an event or row must say of a container.
fn assert_names(line: &Value, c: &Container, node: &Node, context: &str) {
    assert_eq!(
        (
            &line["namespace"],
            &line["pod"],
            &line["pod_uid"],
            &line["container"],
            &line["container_id"],
            &line["cgroup"]
        ),
        (
            &json!(c.namespace),
            &json!(c.pod),
            &json!(c.pod_uid),
            &json!(c.name),
            &json!(c.id),
            &json!(node.reported(&c.cgroup))
        ),
        "{context}: {line:#}"
    );
}

/// Every layout and runtime: each event and summary row names its pod and
/// container exactly; the recording carries the names, so `report` shows
/// the same without the node's files; a process in a unit is named by it.
#[test]
fn every_layout_names_pod_and_container_live_and_in_report() {
    require_bpf!();
    let mut node = Node::new();
    let watched = &node.scratch();
    let containers: Vec<Container> = LAYOUTS
        .iter()
        .map(|layout| node.container(*layout, "app", true))
        .collect();
    let unit = "system.slice/it-agent.service";
    node.cgroup(unit);
    let comm = unique_comm("pods");
    // Outside the node's files, which go before the report.
    let kept = tempfile::tempdir().unwrap();
    let record = kept.path().join("pods.rec");
    let record = record.to_str().unwrap();
    let tracer = Tracer::start(&[
        "--json",
        "--comm",
        &comm,
        "--host-root",
        node.host_root(),
        "--record",
        record,
    ]);
    let script = Script::new().init(3).add(watched, 1);
    let mut pids = Vec::new();
    for c in &containers {
        // One call and gone: attributed all the same.
        let calls = script.run(&strs(&node.inside(&c.cgroup)), &comm);
        pids.push(calls[0].pid);
    }
    let unit_pid = script.run(&strs(&node.inside(unit)), &comm)[0].pid;
    let finished = tracer.stop();
    finished.assert_clean_exit();

    let lines = finished.json_lines();
    for (c, pid) in containers.iter().zip(&pids) {
        let events: Vec<&Value> = lines.iter().filter(|l| l["pid"] == *pid).collect();
        assert_eq!(events.len(), 2, "init and add_watch of {pid}");
        for event in events {
            assert_names(event, c, &node, "event");
        }
    }
    let unit_event = lines.iter().find(|l| l["pid"] == unit_pid).unwrap();
    assert_eq!(unit_event["unit"], "it-agent.service", "{unit_event:#}");
    assert!(unit_event.get("pod").is_none(), "{unit_event:#}");

    let summary = lines.last().unwrap();
    for (c, pid) in containers.iter().zip(&pids) {
        let row = summary["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pid"] == *pid)
            .unwrap();
        assert_names(row, c, &node, "summary row");
        let pod = summary["pods"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pod_uid"] == json!(c.pod_uid))
            .unwrap_or_else(|| panic!("a pods row for {}: {summary:#}", c.pod));
        assert_eq!(
            (
                &pod["namespace"],
                &pod["pod"],
                &pod["processes"],
                &pod["new_watches"]
            ),
            (&json!(c.namespace), &json!(c.pod), &json!(1), &json!(1))
        );
    }

    // The recording carries the attribution: the report names the same
    // pods though the node's files are gone.
    drop(node);
    let report = std::process::Command::new(tracer_binary())
        .args(["report", "--events", "--json", record])
        .output()
        .unwrap();
    assert!(report.status.success(), "{report:?}");
    let reported: Vec<Value> = String::from_utf8(report.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let live_events: Vec<&Value> = lines.iter().filter(|l| l["type"] != "summary").collect();
    let report_events: Vec<&Value> = reported.iter().filter(|l| l["type"] != "summary").collect();
    assert_eq!(live_events, report_events, "report shows what live showed");
    let text = std::process::Command::new(tracer_binary())
        .args(["report", record])
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("Pods, by new watches:"), "{text}");
    assert!(
        text.contains(&format!("in shop/{}/app", containers[0].pod)),
        "{text}"
    );
}

/// A cgroup removed before the tracer resolved it shows its id and a flag,
/// not an error; a pod with no log directory shows its uid.
#[test]
fn a_removed_cgroup_and_an_unlogged_pod_are_reported_as_such() {
    require_bpf!();
    let mut node = Node::new();
    let watched = &node.scratch();
    let unlogged = node.container(Layout::CgroupfsContainerd, "app", false);
    let doomed = node.cgroup("system.slice/it-doomed.service");
    let comm = unique_comm("gone");
    let mut tracer = Tracer::start(&["--json", "--comm", &comm, "--host-root", node.host_root()]);
    let script = Script::new().init(3).add(watched, 1);
    let unlogged_pid = script.run(&strs(&node.inside(&unlogged.cgroup)), &comm)[0].pid;
    // The tracer is stopped while a process calls and its cgroup goes: the
    // events wait in the ring buffer, to be resolved after the removal.
    tracer.signal(libc::SIGSTOP);
    let doomed_pid =
        script.run(&strs(&node.inside("system.slice/it-doomed.service")), &comm)[0].pid;
    std::fs::remove_dir(&doomed).unwrap();
    tracer.signal(libc::SIGCONT);
    // Stopping drains what the ring buffer holds: the events of the calls
    // made while the tracer was stopped are all read, and resolved now.
    let finished = tracer.stop();
    finished.assert_clean_exit();

    let lines = finished.json_lines();
    let event = lines.iter().find(|l| l["pid"] == doomed_pid).unwrap();
    assert_eq!(event["cgroup_gone"], true, "{event:#}");
    assert!(event["cgroup_id"].as_u64().unwrap() > 0, "{event:#}");
    assert!(event.get("cgroup").is_none(), "{event:#}");
    let event = lines.iter().find(|l| l["pid"] == unlogged_pid).unwrap();
    assert_eq!(
        (&event["pod_uid"], &event["container_id"]),
        (&json!(unlogged.pod_uid), &json!(unlogged.id)),
        "{event:#}"
    );
    assert!(
        event.get("pod").is_none() && event.get("container").is_none(),
        "{event:#}"
    );
}

/// `--pod`, `--namespace`, `--container` and `--cgroup` (a pod's cgroup,
/// and so its container's below it; in the kernel, live) select exactly,
/// live, in `report` and in `usage`.
#[test]
fn pod_filters_select_exactly_live_in_report_and_in_usage() {
    require_bpf!();
    let mut node = Node::new();
    let watched = &node.scratch();
    let a = node.container(Layout::SystemdContainerd, "app", true);
    let b = node.container(Layout::CgroupfsCrio, "sidecar", true);
    let comm = unique_comm("filt");
    let record = node.host_root.path().join("all.rec");
    let record = record.to_str().unwrap();
    let pod_a = format!("{}/{}", a.namespace, a.pod);
    let all = Tracer::start(&[
        "--json",
        "-q",
        "--comm",
        &comm,
        "--host-root",
        node.host_root(),
        "--record",
        record,
    ]);
    let only_a = Tracer::start(&[
        "--json",
        "--comm",
        &comm,
        "--host-root",
        node.host_root(),
        "--pod",
        &pod_a,
    ]);
    let only_b = Tracer::start(&[
        "--json",
        "--comm",
        &comm,
        "--host-root",
        node.host_root(),
        "--container",
        "sidecar",
    ]);
    let pod_a_cgroup = node.reported(a.cgroup.rsplit_once('/').unwrap().0);
    let under_a = Tracer::start(&["--json", "--comm", &comm, "--cgroup", &pod_a_cgroup]);
    // Holders that stay, for usage.
    let holds = Script::new().init(3).add(watched, 1).then("sleep", "30");
    let mut in_a = Workload::start(&strs(&node.inside(&a.cgroup)), &comm, &holds.args());
    in_a.release_and_read(2);
    let mut in_b = Workload::start(&strs(&node.inside(&b.cgroup)), &comm, &holds.args());
    in_b.release_and_read(2);
    let pids_of = |finished: &tests::Finished| -> Vec<u64> {
        let mut pids: Vec<u64> = finished
            .json_lines()
            .iter()
            .filter(|l| l["type"] == "add_watch")
            .map(|l| l["pid"].as_u64().unwrap())
            .collect();
        pids.dedup();
        pids
    };
    let usage = |args: &[&str]| -> Value {
        let out = std::process::Command::new(tracer_binary())
            .args([
                "usage",
                "--json",
                "--comm",
                &comm,
                "--host-root",
                node.host_root(),
            ])
            .args(args)
            .output()
            .unwrap();
        // Filters that match no holder: the empty report, a line, exit 1.
        let found = serde_json::from_slice::<Value>(&out.stdout)
            .is_ok_and(|u| u["processes"].as_array().is_some_and(|p| !p.is_empty()));
        assert_eq!(out.status.success(), found, "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr)
                .contains("no process holding an inotify instance matches the filters"),
            !found,
            "{out:?}"
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let usage_pids = |u: &Value| -> Vec<u64> {
        u["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["pid"].as_u64().unwrap())
            .collect()
    };
    let everyone = usage(&[]);
    assert_eq!(usage_pids(&everyone).len(), 2, "{everyone:#}");
    let row_a = everyone["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == in_a.pid)
        .unwrap();
    assert_names(row_a, &a, &node, "usage row");
    let pod_row = everyone["pods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pod_uid"] == json!(a.pod_uid))
        .unwrap();
    assert_eq!(
        (
            &pod_row["pod"],
            &pod_row["instances"],
            &pod_row["watches"],
            &pod_row["top_holder"]["pid"]
        ),
        (&json!(a.pod), &json!(1), &json!(1), &json!(in_a.pid))
    );
    assert_eq!(usage_pids(&usage(&["--pod", &pod_a])), [in_a.pid]);
    assert_eq!(usage_pids(&usage(&["--cgroup", &pod_a_cgroup])), [in_a.pid]);
    assert_eq!(
        usage_pids(&usage(&["--namespace", "shop", "--container", "sidecar"])),
        [in_b.pid]
    );
    assert_eq!(
        usage_pids(&usage(&["--namespace", "default"])),
        Vec::<u64>::new()
    );
    drop(in_a);
    drop(in_b);

    let (all, only_a, only_b) = (all.stop(), only_a.stop(), only_b.stop());
    let under_a = under_a.stop();
    for finished in [&all, &only_a, &only_b, &under_a] {
        finished.assert_clean_exit();
    }
    assert_eq!(pids_of(&only_a), [pid_in(&all, &a)]);
    assert_eq!(pids_of(&under_a), [pid_in(&all, &a)], "in the kernel");
    assert_eq!(pids_of(&only_b), [pid_in(&all, &b)]);
    let report = |args: &[&str]| -> Vec<u64> {
        let out = std::process::Command::new(tracer_binary())
            .args(["report", "--events", "--json", record])
            .args(args)
            .output()
            .unwrap();
        let mut pids: Vec<u64> = String::from_utf8(out.stdout.clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|l| l["type"] == "add_watch")
            .map(|l| l["pid"].as_u64().unwrap())
            .collect();
        pids.dedup();
        // A filter that matches none of the recording's events says so and
        // exits 1, as grep does.
        let code = if pids.is_empty() { 1 } else { 0 };
        assert_eq!(out.status.code(), Some(code), "{out:?}");
        pids
    };
    assert_eq!(report(&["--pod", &a.pod]), pids_of(&only_a));
    assert_eq!(report(&["--container", "sidecar"]), pids_of(&only_b));
    assert_eq!(report(&["--namespace", "default"]), Vec::<u64>::new());
    assert_eq!(report(&["--cgroup", &pod_a_cgroup]), pids_of(&only_a));
}

/// The pid of the process the tracer that saw everything found in `c`.
fn pid_in(all: &tests::Finished, c: &Container) -> u64 {
    all.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["type"] == "summary")
        .flat_map(|s| s["processes"].as_array().cloned().unwrap_or_default())
        .find(|p| p["pod_uid"] == json!(c.pod_uid))
        .and_then(|p| p["pid"].as_u64())
        .expect("the process in the pod")
}

/// A diagnosis names the failing process's pod and the holder's: ENOSPC
/// and EMFILE, in a user namespace whose caps the holder used up.
#[test]
fn a_diagnosis_names_both_pods() {
    require_bpf!();
    let mut node = Node::new();
    let watched = &node.scratch();
    let holder_c = node.container(Layout::SystemdCrioGuaranteed, "hog", true);
    let failer_c = node.container(Layout::CgroupfsContainerd, "victim", true);
    for (limit, cap, holder_steps, failer_steps, errno) in [
        ("max_inotify_watches", 1, "init add", "init add", ENOSPC),
        ("max_inotify_instances", 1, "init", "init", EMFILE),
    ] {
        let (holder, failer) = (unique_comm("dhold"), unique_comm("dfail"));
        let w = tests::workload_binary();
        let w = w.to_str().unwrap();
        let steps = |steps: &str| -> String {
            steps
                .split(' ')
                .map(|s| {
                    if s == "add" {
                        format!("add {watched}")
                    } else {
                        s.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let procs = |c: &Container| node.root.join(&c.cgroup).join("cgroup.procs");
        // The failer starts once the holder has made its calls (one line
        // each in $T); the holder lives until the script kills it.
        let calls = holder_steps
            .split(' ')
            .filter(|s| matches!(*s, "init" | "add"))
            .count();
        let script = format!(
            "echo {cap} > /proc/sys/user/{limit}; T=$(mktemp); \
             sh -c 'echo $$ > {}; exec {w} --comm {holder} {} sleep 60' >$T & echo $!; {}; \
             sh -c 'echo $$ > {}; exec {w} --comm {failer} {} sleep 1' >/dev/null; kill $!",
            procs(&holder_c).display(),
            steps(holder_steps),
            until_lines("$T", calls),
            procs(&failer_c).display(),
            steps(failer_steps),
        );
        let tracer = Tracer::start(&["--json", "--comm", &failer, "--host-root", node.host_root()]);
        let out = std::process::Command::new("unshare")
            .args(["-U", "-r", "sh", "-c", &script])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let holder_pid: u64 = String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let finished = tracer.stop();
        finished.assert_clean_exit();
        let lines = finished.json_lines();
        let failure = lines
            .iter()
            .find(|l| l["ret"] == errno)
            .unwrap_or_else(|| panic!("the failing call ({limit}): {lines:#?}"));
        assert_names(failure, &failer_c, &node, "failing event");
        let d = lines
            .iter()
            .find(|l| l["type"] == "diagnosis")
            .unwrap_or_else(|| panic!("a diagnosis ({limit}): {lines:#?}"));
        assert_names(
            &d["place"],
            &failer_c,
            &node,
            "the failing process in the diagnosis",
        );
        let first = &d["holders"][0];
        assert_eq!(first["pid"].as_u64(), Some(holder_pid), "{d:#}");
        assert_names(first, &holder_c, &node, "the holder in the diagnosis");
    }
}
