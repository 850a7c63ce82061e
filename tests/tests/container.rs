//! The image under a real container runtime (podman with runc), run with
//! exactly the DaemonSet's hostPID, securityContext and mounts (flags
//! derived from the manifest): it traces a workload in a pretend pod and
//! names the pod, `usage` inside agrees with `usage` on the host, and
//! without CAP_SYS_ADMIN the runtime's seccomp profile gets one line.
use serde_json::Value;
use tests::{
    assert_events_match,
    node::{strs, Layout, Node},
    podman, require_bpf, unique_comm, Script, Tracer, Workload,
};

macro_rules! require_podman {
    () => {
        require_bpf!();
        if !podman::podman_available(module_path!()) {
            return;
        }
    };
}

/// The DaemonSet's flags, its node paths mapped into `node`'s host root
/// (kubelet's log directories) and a scratch folder (the recordings).
fn flags_for(node: &Node, recordings: &std::path::Path, without_caps: &[&str]) -> Vec<String> {
    podman::daemonset_flags(
        |host_path| match host_path {
            "/var/log/pods" | "/var/log/containers" => {
                // On a node kubelet has made them; here the pretend node's.
                let dir = format!("{}{host_path}", node.host_root());
                std::fs::create_dir_all(&dir).unwrap();
                dir
            }
            // The recordings and the state file: a scratch folder.
            "/var/lib/inotify-trace" | "/run/inotify-trace" => recordings.display().to_string(),
            // tracefs and the cgroup tree are the machine's own.
            other => other.to_owned(),
        },
        without_caps,
    )
}

/// The `--host-root` the manifest gives the agent.
fn manifest_host_root() -> String {
    podman::daemonset_args()
        .iter()
        .find_map(|a| a.strip_prefix("--host-root=").map(str::to_owned))
        .expect("the manifest passes --host-root")
}

/// `usage --json` rows of the processes named `comm`, as (pid, comm,
/// watches, instances, namespace, pod, container).
fn usage_rows(usage: &[u8], comm: &str) -> Vec<Value> {
    let line = String::from_utf8_lossy(usage);
    let report: Value = serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("{e}: {line}"));
    report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["comm"] == comm)
        .map(|p| {
            serde_json::json!([
                p["pid"],
                p["comm"],
                p["watches"],
                p["instances"],
                p["namespace"],
                p["pod"],
                p["container"]
            ])
        })
        .collect()
}

#[test]
fn the_image_with_the_daemonsets_settings_traces_names_the_pod_and_agrees_on_usage() {
    require_podman!();
    podman::build_image();
    let mut node = Node::new();
    let pod = node.container(Layout::SystemdContainerd, "app", true);
    let recordings = tempfile::tempdir().unwrap();
    let flags = flags_for(&node, recordings.path(), &[]);
    let host_root = manifest_host_root();
    let comm = unique_comm("podman");
    let dirs = node.dirs("w", 3);

    let tracer = Tracer::start_command(podman::run(
        &flags,
        &["--json", "--comm", &comm, "--host-root", &host_root],
    ));
    let script = dirs
        .iter()
        .zip(1..)
        .fold(Script::new().init(3), |s, (dir, wd)| s.add(dir, wd))
        .then("sleep", "60");
    let mut holder = Workload::start(&strs(&node.inside(&pod.cgroup)), &comm, &script.args());
    let calls = holder.release_and_read(1 + dirs.len());
    script.check(&calls);
    let finished = tracer.stop();
    finished.assert_clean_exit();

    let pid = calls[0].pid;
    let add_watches: Vec<_> = calls[1..].to_vec();
    assert_events_match(&finished.add_watch_events_of(&[pid]), &add_watches, &comm);
    for event in finished.json_lines().iter().filter(|e| e["pid"] == pid) {
        assert_eq!(
            (&event["namespace"], &event["pod"], &event["container"]),
            (
                &Value::from(pod.namespace),
                &Value::from(pod.pod.as_str()),
                &Value::from(pod.name)
            ),
            "{event:#}"
        );
    }

    // What the agent's container sees of the holder is what the host sees.
    let inside = podman::run(
        &flags,
        &[
            "usage",
            "--json",
            "--comm",
            &comm,
            "--host-root",
            &host_root,
        ],
    )
    .output()
    .unwrap();
    assert!(
        inside.status.success(),
        "usage in the container: {inside:?}"
    );
    let outside = std::process::Command::new(tests::tracer_binary())
        .args([
            "usage",
            "--json",
            "--comm",
            &comm,
            "--host-root",
            node.host_root(),
        ])
        .output()
        .unwrap();
    assert!(outside.status.success(), "usage on the host: {outside:?}");
    let rows = usage_rows(&inside.stdout, &comm);
    assert_eq!(
        rows,
        vec![serde_json::json!([
            pid,
            comm,
            3,
            1,
            pod.namespace,
            pod.pod,
            pod.name
        ])]
    );
    assert_eq!(rows, usage_rows(&outside.stdout, &comm));
    drop(holder);
}

#[test]
fn without_cap_sys_admin_the_runtimes_seccomp_profile_gets_one_line() {
    require_podman!();
    podman::build_image();
    let node = Node::new();
    let recordings = tempfile::tempdir().unwrap();
    let flags = flags_for(&node, recordings.path(), &["SYS_ADMIN"]);
    let out = podman::run(&flags, &["-d", "1s", "--comm", "nobody-at-all"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stderr.trim(),
        "inotify-trace: error: the container's seccomp profile forbids bpf(2): \
         add CAP_SYS_ADMIN or run with seccompProfile Unconfined",
    );
}

/// How the README gets a window's recording out of the agent's pod, whose
/// image has no shell, ls or tar (`kubectl cp` needs tar): the agent's log
/// names each recording, `report DIR` names the newest, and `report FILE
/// --html -` prints the page to a file on the operator's side. Here with
/// `podman exec` in the DaemonSet's container, as `kubectl exec` would.
#[test]
fn a_windows_recording_comes_out_of_the_container_as_a_page() {
    require_podman!();
    podman::build_image();
    let node = Node::new();
    let recordings = tempfile::tempdir().unwrap();
    let flags = flags_for(&node, recordings.path(), &[]);
    let name = unique_comm("npd-agent");
    let mut detached = vec!["--detach".to_owned(), format!("--name={name}")];
    detached.extend(flags);
    let started = podman::run(
        &detached,
        &[
            "agent",
            "--interval=1s",
            "--always-trace",
            "--trace-window=1s",
            "--record-dir=/var/lib/inotify-trace",
            &format!("--host-root={}", manifest_host_root()),
        ],
    )
    .output()
    .unwrap();
    assert!(started.status.success(), "{started:?}");
    struct Removed(String);
    impl Drop for Removed {
        fn drop(&mut self) {
            let _ = std::process::Command::new("podman")
                .args(["rm", "--force", "--time=0", &self.0])
                .output();
        }
    }
    let _removed = Removed(name.clone());
    let exec = |args: &[&str]| {
        std::process::Command::new("podman")
            .args([
                "--runtime",
                "/usr/sbin/runc",
                "exec",
                &name,
                "/inotify-trace",
            ])
            .args(args)
            .output()
            .unwrap()
    };
    // A window recorded and said so in the log.
    let logged = tests::wait::wait_until(
        "a window recorded",
        std::time::Duration::from_secs(60),
        || {
            let logs = std::process::Command::new("podman")
                .args(["logs", &name])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&logs.stderr).into_owned();
            stderr
                .lines()
                .find_map(|l| l.strip_prefix("inotify-trace: recorded the window to "))
                .and_then(|rest| rest.split(' ').next())
                .map(str::to_owned)
        },
    );
    assert!(
        logged.starts_with("/var/lib/inotify-trace/inotify-trace-"),
        "{logged}"
    );
    // `report DIR` names the newest recordings.
    let listed = exec(&["report", "/var/lib/inotify-trace"]);
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert_eq!(listed.status.code(), Some(1), "{listed:?}");
    assert!(
        stderr.contains("recordings: /var/lib/inotify-trace/inotify-trace-"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // The page, on stdout.
    let page = exec(&["report", &logged, "--html", "-"]);
    assert!(page.status.success(), "{page:?}");
    let html = String::from_utf8(page.stdout).unwrap();
    assert!(
        html.starts_with("<!DOCTYPE html>"),
        "{}",
        &html[..html.len().min(200)]
    );
    assert!(html.contains("<svg"), "the timeline is in the page");
    assert!(
        html.contains("inotify-trace summary"),
        "the summary is in the page"
    );
}
