//! The Grafana dashboard (deploy/grafana/inotify-trace.json) against a real
//! Prometheus (Debian's) scraping the agent: every panel's query runs
//! without error, and the per-uid panel gives the share `usage --json`
//! reports for a holder the test makes.
use std::time::Duration;

use serde_json::Value;
use tests::{
    require_bpf,
    scrape::{prometheus_scraping, query_result, Agent},
    unique_comm,
    wait::wait_until,
    Script, Workload,
};

/// A uid no one else on the machine uses.
const UID: &str = "4246";

fn dashboard() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/inotify-trace.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every panel's (title, query) pairs.
fn queries(dashboard: &Value) -> Vec<(String, String)> {
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap().to_owned();
            p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |t| (title.clone(), t["expr"].as_str().unwrap().to_owned()))
        })
        .collect()
}

/// A query as Grafana sends it: the node variable (`All` is `.*`) and the
/// rate interval filled in.
fn as_grafana_sends(expr: &str, node: &str) -> String {
    expr.replace("$node", node)
        .replace("$__rate_interval", "1m")
}

#[test]
fn the_dashboard_has_a_node_variable_and_a_datasource_on_every_panel() {
    let d = dashboard();
    let variables: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(variables, ["datasource", "node"]);
    for p in d["panels"].as_array().unwrap() {
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{p:#}");
    }
    let all: String = queries(&d).into_iter().map(|(_, q)| q).collect();
    for metric in [
        "inotify_trace_user_watches",
        "inotify_trace_user_max_instances",
        "inotify_trace_pod_watches",
        "inotify_trace_pod_instances",
        "inotify_trace_failures_total",
        "inotify_trace_lost_events_total",
        "inotify_trace_tracing_info",
        "inotify_trace_snapshot_duration_seconds",
        "inotify_trace_watch_cost_bytes",
    ] {
        assert!(all.contains(metric), "no panel shows {metric}");
    }
}

#[test]
fn every_panel_query_runs_and_the_per_uid_panel_is_what_usage_says() {
    require_bpf!();
    // A holder as a uid of its own: 2 watches.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let paths: Vec<String> = ["a", "b"]
        .iter()
        .map(|n| {
            let p = dir.path().join(n);
            std::fs::create_dir(&p).unwrap();
            p.to_str().unwrap().to_owned()
        })
        .collect();
    let script = Script::new()
        .as_user(UID)
        .init(3)
        .add(&paths[0], 1)
        .add(&paths[1], 2)
        .then("sleep", "60");
    let mut holder = Workload::start(&[], unique_comm("dash"), &script.args());
    script.check(&holder.release_and_read(3));

    let (_agent, agent_port) = Agent::start(&["--trace-above", "100"]);
    // The `node` label the Kubernetes overlays' relabelling gives.
    let (_prometheus, prometheus_port, _data) =
        prometheus_scraping(agent_port, &[("node", "dash-node")]);

    let d = dashboard();
    let per_uid = as_grafana_sends(&queries(&d)[0].1, "dash-node");
    let ours = wait_until(
        format!("Prometheus has {per_uid} for uid {UID}"),
        Duration::from_secs(30),
        || {
            let result = query_result(prometheus_port, &per_uid).unwrap_or_default();
            result
                .iter()
                .find(|(labels, _)| labels["uid"] == UID && labels["userns"] == "host")
                .map(|(_, value)| *value)
        },
    );
    let usage = tests::usage_json(&["--uid", UID]);
    let user = usage["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["uid"] == 4246 && u["user_ns"].is_null())
        .unwrap_or_else(|| panic!("uid {UID} in usage: {usage:#}"));
    assert_eq!(user["watches"], 2, "{usage:#}");
    let share = 100.0 * 2.0 / user["max_watches"].as_f64().unwrap();
    assert!((ours - share).abs() < 1e-9, "panel {ours}, usage {share}");

    // The kernel memory panel: the uid's 2 watches times what one pins by
    // the kernel's estimate, this kernel's sizes as bpftool reads them.
    let (_, memory) = queries(&d)
        .into_iter()
        .find(|(title, q)| {
            title.starts_with("Kernel memory") && q.starts_with("inotify_trace_user_watches")
        })
        .expect("the kernel memory panel's per-uid query");
    let pinned = query_result(prometheus_port, &as_grafana_sends(&memory, "dash-node"))
        .unwrap()
        .into_iter()
        .find(|(labels, _)| labels["uid"] == UID && labels["userns"] == "host")
        .map(|(_, value)| value);
    assert_eq!(pinned, Some((2 * tests::btf::watch_cost()) as f64));

    // A query that does not parse is an error here (so the loop below can
    // fail).
    assert!(query_result(prometheus_port, "deriv(inotify_trace_user_watches[").is_err());
    for node in ["dash-node", ".*"] {
        for (title, expr) in queries(&d) {
            let sent = as_grafana_sends(&expr, node);
            if let Err(why) = query_result(prometheus_port, &sent) {
                panic!("{title}: {sent}: {why}");
            }
        }
    }
    drop(holder);
}
