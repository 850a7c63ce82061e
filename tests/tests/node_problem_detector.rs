//! deploy/node-problem-detector: the custom plugin monitor's config, read
//! as node-problem-detector reads it (its documented format, field by
//! field: an unknown field is an error here), checked as it checks it
//! (`Validate`: the custom plugin, timeouts within the global one, a
//! default condition for every permanent rule) and then run: each rule's
//! command, with the binary and the state file where the DaemonSet patch
//! puts them, against the state a real agent wrote, must give one line
//! within `max_output_length` and a status node-problem-detector knows.
use std::{collections::HashMap, path::Path, process::Command, time::Duration};

use serde::Deserialize;
use tests::{require_bpf, scrape::Agent, tracer_binary, wait::wait_until};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginGlobalConfig {
    invoke_interval: Option<String>,
    timeout: Option<String>,
    max_output_length: Option<usize>,
    concurrency: Option<u32>,
    enable_message_change_based_condition_update: Option<bool>,
    skip_initial_status: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Condition {
    #[serde(rename = "type")]
    kind: String,
    reason: String,
    message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    #[serde(rename = "type")]
    kind: String,
    condition: Option<String>,
    reason: String,
    path: String,
    args: Vec<String>,
    timeout: Option<String>,
    invoke_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomPluginConfig {
    plugin: String,
    #[serde(rename = "pluginConfig")]
    plugin_config: PluginGlobalConfig,
    source: String,
    conditions: Vec<Condition>,
    rules: Vec<Rule>,
    #[serde(rename = "metricsReporting")]
    metrics_reporting: Option<bool>,
}

/// A Go duration as node-problem-detector parses it (`time.ParseDuration`,
/// the forms a config uses: a number and one unit).
fn go_duration(text: &str) -> Duration {
    let at = text.find(|c: char| !c.is_ascii_digit()).expect("a unit");
    let (n, unit) = text.split_at(at);
    let n: u64 = n
        .parse()
        .unwrap_or_else(|_| panic!("{text:?}: not a Go duration"));
    match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(60 * n),
        "h" => Duration::from_secs(3600 * n),
        _ => panic!("{text:?}: not a Go duration"),
    }
}

fn npd_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/node-problem-detector")
}

fn config() -> CustomPluginConfig {
    let text = std::fs::read_to_string(npd_dir().join("inotify-trace-monitor.json")).unwrap();
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not node-problem-detector's format: {e}"))
}

#[test]
fn the_monitor_config_is_what_node_problem_detector_accepts() {
    let config = config();
    // Validate(), as node-problem-detector does it.
    assert_eq!(config.plugin, "custom");
    assert_eq!(config.source, "inotify-trace");
    assert_eq!(config.metrics_reporting, Some(true));
    let global = &config.plugin_config;
    let timeout = go_duration(global.timeout.as_deref().unwrap_or("5s"));
    assert!(go_duration(global.invoke_interval.as_deref().unwrap()) >= timeout);
    assert!(global.concurrency.unwrap_or(3) >= 1);
    assert!(global
        .enable_message_change_based_condition_update
        .is_some());
    assert!(global.skip_initial_status.is_none());
    let defaults: HashMap<&str, &Condition> = config
        .conditions
        .iter()
        .map(|c| (c.kind.as_str(), c))
        .collect();
    // The two conditions, with the reasons the README names.
    let mut conditions: Vec<(&str, &str, &str)> = Vec::new();
    for rule in &config.rules {
        assert!(
            ["temporary", "permanent"].contains(&rule.kind.as_str()),
            "{rule:?}"
        );
        assert!(rule.invoke_interval.is_none());
        if let Some(t) = &rule.timeout {
            assert!(
                go_duration(t) <= timeout,
                "a rule's timeout is within the global one: {rule:?}"
            );
        }
        let condition = rule
            .condition
            .as_deref()
            .expect("permanent rules set a condition");
        let default = defaults
            .get(condition)
            .unwrap_or_else(|| panic!("{condition} has no default condition"));
        conditions.push((condition, default.reason.as_str(), rule.reason.as_str()));
        assert!(!default.message.is_empty());
    }
    assert_eq!(
        conditions,
        [
            (
                "InotifyWatchesPressure",
                "InotifyWatchesOk",
                "InotifyWatchesExhausted"
            ),
            (
                "InotifyInstancesPressure",
                "InotifyInstancesOk",
                "InotifyInstancesExhausted"
            ),
        ]
    );

    // The patch puts the binary, the state and the config where the rules
    // and the README say.
    let patch: serde_json::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(npd_dir().join("daemonset-patch.yaml")).unwrap(),
    )
    .unwrap();
    let pod = &patch["spec"]["template"]["spec"];
    let init = &pod["initContainers"][0];
    let bin_dir = init["args"][1].as_str().unwrap();
    assert_eq!(init["args"][0], "install-binary");
    let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
    let mounted = |path: &str| {
        mounts
            .iter()
            .find(|m| m["mountPath"] == path)
            .unwrap_or_else(|| panic!("{path} not mounted: {mounts:?}"))
    };
    assert_eq!(mounted(bin_dir)["name"], init["volumeMounts"][0]["name"]);
    let state_dir = mounted("/run/inotify-trace");
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == state_dir["name"])
        .unwrap();
    // The agent's DaemonSet writes its state in that host directory.
    let base = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes/base/inotify-trace.yaml"),
    )
    .unwrap();
    assert!(base.contains("--state-file=/run/inotify-trace/state.json"));
    assert_eq!(volume["hostPath"]["path"], "/run/inotify-trace");
    // The config comes as the ConfigMap the patch mounts.
    let rendered = Command::new("kubectl")
        .arg("kustomize")
        .arg(npd_dir())
        .output()
        .expect("kubectl (with kustomize)");
    assert!(rendered.status.success(), "{rendered:?}");
    let config_map: serde_json::Value = serde_yaml_ng::from_slice(&rendered.stdout).unwrap();
    let config_volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v.get("configMap").is_some())
        .unwrap();
    assert_eq!(config_map["kind"], "ConfigMap");
    assert_eq!(
        config_map["metadata"]["name"],
        config_volume["configMap"]["name"]
    );
    assert_eq!(
        config_map["metadata"]["namespace"],
        patch["metadata"]["namespace"]
    );
    assert_eq!(
        config_map["data"]["inotify-trace-monitor.json"].as_str(),
        Some(
            std::fs::read_to_string(npd_dir().join("inotify-trace-monitor.json"))
                .unwrap()
                .as_str()
        )
    );
    mounted("/config/inotify-trace");
    for rule in &config.rules {
        assert_eq!(rule.path, format!("{bin_dir}/inotify-trace"));
        let state = rule
            .args
            .iter()
            .skip_while(|a| *a != "--agent-state")
            .nth(1)
            .unwrap();
        assert_eq!(state, "/run/inotify-trace/state.json");
    }
}

/// Each rule as node-problem-detector would run it, against the state a
/// real agent wrote: one line that fits, a status it knows.
#[test]
fn each_rule_runs_and_answers_within_the_output_length() {
    require_bpf!();
    let config = config();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let _agent = Agent::start(&["--state-file", state.to_str().unwrap()]);
    wait_until("the agent's state", Duration::from_secs(15), || {
        state.is_file().then_some(())
    });
    let max = config.plugin_config.max_output_length.unwrap();
    for rule in &config.rules {
        let args: Vec<&str> = rule
            .args
            .iter()
            .map(|a| match a.as_str() {
                "/run/inotify-trace/state.json" => state.to_str().unwrap(),
                other => other,
            })
            .collect();
        // As an unprivileged plugin would (the detector may run as root;
        // the check needs nothing of it).
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(tracer_binary())
            .args(&args)
            .output()
            .unwrap();
        let line = String::from_utf8(out.stdout.clone()).unwrap();
        let code = out.status.code().unwrap();
        assert!((0..=1).contains(&code), "{rule:?}: {out:?}");
        assert_eq!(line.lines().count(), 1, "{out:?}");
        assert!(
            line.trim_end().len() <= max,
            "{} > {max}: {line}",
            line.len()
        );
        assert!(
            line.contains(&format!("inotify {}:", rule.args[1])),
            "{line}"
        );
        assert!(
            line.contains("in the last 10m"),
            "the agent's failures were read: {line}"
        );
    }
}
