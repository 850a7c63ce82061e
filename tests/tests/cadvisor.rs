//! The seed's own program, diagnosed: Debian bullseye's cAdvisor 0.38.7
//! (the cgroup watcher kubelet embeds) on a cgroup v2 view of a node of our
//! own (a real cgroup with a `kubepods.slice` tree, mounted at
//! /sys/fs/cgroup in a mount namespace), in a user namespace whose watch
//! cap is 1,204, while `inotifywait -m -r` holds 1,200 of them. cAdvisor
//! takes the 4 left, fails at its fifth with ENOSPC, gives its watches back
//! within milliseconds and exits 255: a /proc scan made after the failure
//! never sees them. The diagnosis must: the kernel's count says 1,204 of
//! 1,204, the holder is named with what its fdinfo shows, and cAdvisor's 4
//! are counted as held at the failure. Ten times in a row, on a machine as
//! busy as the test suite makes it.
use std::{path::Path, process::Command};

use serde_json::Value;
use tests::{elsewhere, node::cgroup2_mount, require_bpf, spawned::Spawned, tracer_binary, Tracer};

/// The scenario, run by sh: $1 the cgroup it moves into (the view's root),
/// $2 the tree inotifywait watches, $3 cAdvisor, $4 a port, $5 a file whose
/// creation ends it. Prints the holder's pid and its watches as its fdinfo
/// counts them, then cAdvisor's exit status; the holder stays until $5
/// exists (a minute at most), as a node's hog does.
const SCENARIO: &str = r#"
echo $$ > "$1/cgroup.procs" || exit 10
exec unshare -U -r -m -C --propagation private sh -c '
  echo 1204 > /proc/sys/user/max_inotify_watches || exit 11
  mount -t cgroup2 none /sys/fs/cgroup || exit 12
  err=$(mktemp)
  inotifywait -m -r "$1" >/dev/null 2>"$err" & holder=$!
  until grep -q "Watches established" "$err"; do
    kill -0 $holder 2>/dev/null || exit 13
    sleep 0.02
  done
  echo "holder $holder $(cat /proc/$holder/fdinfo/* | grep -c "^inotify wd:")"
  "$2" -logtostderr -listen_ip 127.0.0.1 -port "$3" >/dev/null 2>&1
  echo "cadvisor $?"
  for i in $(seq 3000); do [ -e "$4" ] && break; sleep 0.02; done
  kill $holder
' sh "$2" "$3" "$4" "$5"
"#;

/// A cgroup of our own with the layout kubelet makes under the systemd
/// driver; removed (deepest first) when dropped.
struct NodeCgroups {
    root: std::path::PathBuf,
    dirs: Vec<std::path::PathBuf>,
}

impl NodeCgroups {
    fn new() -> NodeCgroups {
        let root = cgroup2_mount().join(format!("it-cadvisor-{}", std::process::id()));
        let dirs: Vec<_> = [
            "",
            "kubepods.slice",
            "kubepods.slice/kubepods-burstable.slice",
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f1e.slice",
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f1e.slice/cri-containerd-ab12.scope",
            "kubepods.slice/kubepods-besteffort.slice",
            "system.slice",
            "system.slice/kubelet.service",
        ]
        .iter()
        .map(|d| root.join(d))
        .collect();
        for dir in &dirs {
            std::fs::create_dir_all(dir).unwrap();
        }
        NodeCgroups { root, dirs }
    }
}

impl Drop for NodeCgroups {
    fn drop(&mut self) {
        for dir in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The one diagnosis among JSON lines.
fn diagnosis(lines: &[Value]) -> &Value {
    let found: Vec<&Value> = lines.iter().filter(|l| l["type"] == "diagnosis").collect();
    assert_eq!(found.len(), 1, "{lines:#?}");
    found[0]
}

/// What the test requires of a diagnosis, whichever way it came.
fn check(d: &Value, holder: u64, holder_watches: u64, run: usize) {
    let level = &d["charge"][0];
    assert_eq!(
        (&level["watches"], &level["max_watches"], &d["full_level"]),
        (&Value::from(1204), &Value::from(1204), &Value::from(0)),
        "run {run}: the kernel's count at the failure: {d:#}"
    );
    assert_eq!(d["at_failure"]["watches"], 1204, "run {run}: {d:#}");
    let holders = d["holders"].as_array().unwrap();
    let of = |pid: u64| holders.iter().find(|h| h["pid"].as_u64() == Some(pid));
    let h = of(holder).unwrap_or_else(|| panic!("run {run}: the holder is named: {d:#}"));
    assert_eq!(
        h["watches"], holder_watches,
        "run {run}: as its fdinfo: {d:#}"
    );
    let cadvisor = of(d["pid"].as_u64().unwrap())
        .unwrap_or_else(|| panic!("run {run}: cAdvisor is counted: {d:#}"));
    assert_eq!(
        cadvisor["watches"], 4,
        "run {run}: cAdvisor's 4 watches, held at the failure: {d:#}"
    );
    // The holders account for the whole count.
    assert!(
        d.get("unexplained").is_none_or(|n| n == 0),
        "run {run}: {d:#}"
    );
}

fn report(record: &Path, json: bool) -> String {
    let mut command = Command::new(tracer_binary());
    command.arg("report").arg(record);
    if json {
        command.arg("--json");
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_real_cadvisor_is_diagnosed_from_the_kernels_count_ten_times_in_a_row() {
    require_bpf!();
    let Some(cadvisor) = elsewhere::cadvisor(module_path!()) else {
        return;
    };
    let node = NodeCgroups::new();
    let held = tempfile::tempdir().unwrap();
    // The holder's 1,200: the tree's root and 1,199 directories.
    for i in 0..1199 {
        std::fs::create_dir(held.path().join(format!("d{i}"))).unwrap();
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    for run in 1..=10 {
        let record = held.path().join(format!("run{run}.rec"));
        let tracer = Tracer::start(&[
            "--json",
            "--comm",
            "cadvisor",
            "--record",
            record.to_str().unwrap(),
        ]);
        let stop = held.path().join(format!("run{run}.stop"));
        let mut scenario = Spawned::start(
            Command::new("sh")
                .args(["-c", SCENARIO, "sh"])
                .arg(&node.root)
                .arg(held.path())
                .arg(&cadvisor)
                .arg(&port)
                .arg(&stop),
        );
        let printed = [scenario.line(), scenario.line()];
        let finished = tracer.stop();
        std::fs::write(&stop, b"").unwrap();
        assert!(scenario.succeeded(), "run {run}");
        finished.assert_clean_exit();
        let printed = printed.join(" ");
        let words: Vec<&str> = printed.split_whitespace().collect();
        let ["holder", holder, holder_watches, "cadvisor", status] = words[..] else {
            panic!("run {run}: the scenario said {printed:?}");
        };
        assert_eq!(status, "255", "run {run}: cAdvisor exits at its ENOSPC");
        let (holder, holder_watches): (u64, u64) =
            (holder.parse().unwrap(), holder_watches.parse().unwrap());
        assert_eq!(holder_watches, 1200, "run {run}");

        let live = finished.json_lines();
        check(diagnosis(&live), holder, holder_watches, run);
        let replayed: Vec<Value> = report(&record, true)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let summary = replayed.last().unwrap();
        check(&summary["diagnoses"][0], holder, holder_watches, run);
        let text = report(&record, false);
        assert!(
            text.contains("held 1204 of 1204 watches")
                && text.contains("at the failure (the kernel's count)"),
            "run {run}: {text}"
        );
    }
}
