//! What ships besides the binary: the Kubernetes manifests, and each
//! kustomize overlay as `kubectl kustomize` renders it, validate against the
//! Kubernetes schemas offline (kubernetes-validate, pinned by the test
//! setup), strictly (an unknown field is an error); the Prometheus
//! Operator's ServiceMonitor and PodMonitor against its CRDs' schemas
//! (@kubernetes-models/prometheus-operator from npm, pinned), and they must
//! select the agent's pods and port.
use std::{path::Path, process::Command};

use serde_json::Value;

/// Validates `files`; returns the report.
fn validate(files: &[&Path]) -> String {
    let out = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict"])
        .args(["--kubernetes-version", "1.31.0"])
        .args(files)
        .output()
        .expect("python3");
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !report.contains("ERROR"),
        "kubernetes-validate (cargo xtask test installs it):\n{report}"
    );
    report
}

/// `kubectl kustomize DIR`, written to a file in `out`.
fn kustomize(dir: &Path, out: &Path) -> (std::path::PathBuf, String) {
    let rendered = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl (with kustomize)");
    assert!(
        rendered.status.success(),
        "kubectl kustomize {dir:?}: {rendered:?}"
    );
    let name = dir.file_name().unwrap().to_str().unwrap();
    let file = out.join(format!("{name}.yaml"));
    std::fs::write(&file, &rendered.stdout).unwrap();
    (file, String::from_utf8(rendered.stdout).unwrap())
}

#[test]
fn the_manifests_validate_against_the_kubernetes_schemas() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes");
    let session = deploy.join("inotify-trace-session.yaml");
    let base = deploy.join("base/inotify-trace.yaml");
    let report = validate(&[&session, &base]);
    // One line per resource: the Job; the namespace, the DaemonSet and its
    // NetworkPolicy.
    assert_eq!(
        report.matches(" passed for resource ").count(),
        4,
        "{report}"
    );
}

/// The base and the TLS overlay as kustomize renders them: valid, and the
/// overlay mounts the web config, passes it and probes over HTTPS.
#[test]
fn the_kustomize_base_and_tls_overlay_render_valid_manifests() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes");
    let out = tempfile::tempdir().unwrap();
    let (base, _) = kustomize(&deploy.join("base"), out.path());
    let (tls, text) = kustomize(&deploy.join("overlays/tls"), out.path());
    let report = validate(&[&base, &tls]);
    assert_eq!(
        report.matches(" passed for resource ").count(),
        6,
        "{report}"
    );
    for wanted in [
        "- --web-config=/etc/inotify-trace/web.yml",
        "mountPath: /etc/inotify-trace",
        "secretName: inotify-trace-web",
        "scheme: HTTPS",
        "kind: NetworkPolicy",
    ] {
        assert!(text.contains(wanted), "{wanted} in:\n{text}");
    }
    // Both probes over HTTPS: the patch replaces the base's, scheme and all.
    let docs = documents(&text);
    let container = &of_kind(&docs, "DaemonSet")["spec"]["template"]["spec"]["containers"][0];
    for (probe, path) in [("livenessProbe", "/livez"), ("readinessProbe", "/healthz")] {
        assert_eq!(container[probe]["httpGet"]["path"], path, "{container:#}");
        assert_eq!(
            container[probe]["httpGet"]["scheme"], "HTTPS",
            "{container:#}"
        );
    }
    // The overlay's steps, in the order a new cluster needs: the namespace
    // before the secret in it, the secret before the pods that mount it.
    let steps = std::fs::read_to_string(deploy.join("overlays/tls/kustomization.yaml")).unwrap();
    let at = |step: &str| {
        steps
            .find(step)
            .unwrap_or_else(|| panic!("no step {step:?}"))
    };
    assert!(
        at("kubectl create namespace inotify-trace")
            < at("create secret generic inotify-trace-web")
    );
    assert!(
        at("create secret generic inotify-trace-web")
            < at("kubectl apply -k deploy/kubernetes/overlays/tls")
    );
}

fn deploy_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// Every document of a rendered multi-document YAML, as JSON.
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {docs:#?}"))
}

/// Validates Prometheus Operator objects against the CRDs' schemas (the
/// validators npm's @kubernetes-models/prometheus-operator generates from
/// them); panics with the reasons when one is invalid.
fn validate_monitors(objects: &[&Value]) {
    let root = Command::new("npm").args(["root", "-g"]).output().unwrap();
    let root = String::from_utf8(root.stdout).unwrap().trim().to_owned();
    let module = Path::new(&root)
        .join("@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/index.js");
    assert!(
        module.is_file(),
        "{} missing (cargo xtask test installs it)",
        module.display()
    );
    let script = format!(
        "const v1 = await import({module:?});\n\
         const objects = JSON.parse(process.argv[1]);\n\
         let bad = 0;\n\
         for (const o of objects) {{\n\
           try {{ new v1[o.kind](o).validate(); console.log(`valid ${{o.kind}} ${{o.metadata.name}}`); }}\n\
           catch (e) {{ bad++; console.log(`invalid ${{o.kind}} ${{o.metadata.name}}: ${{e.message}}`); }}\n\
         }}\n\
         process.exit(bad ? 1 : 0);\n",
        module = module.to_str().unwrap()
    );
    let out = Command::new("node")
        .args(["--input-type=module", "-e", &script])
        .arg(serde_json::to_string(objects).unwrap())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(said.matches("valid ").count(), objects.len(), "{said}");
}

/// The Prometheus Operator overlays: the core objects validate strictly,
/// the monitors against their CRDs, and each monitor selects the agent's
/// pods (or its Service) in its namespace, on the port the container names.
#[test]
fn the_service_monitor_and_pod_monitor_overlays_select_the_agent() {
    let out = tempfile::tempdir().unwrap();
    for (overlay, monitor, endpoints) in [
        ("service-monitor", "ServiceMonitor", "endpoints"),
        ("pod-monitor", "PodMonitor", "podMetricsEndpoints"),
    ] {
        let (file, text) = kustomize(&deploy_dir().join("overlays").join(overlay), out.path());
        let docs = documents(&text);
        let core: Vec<&Value> = docs.iter().filter(|d| d["kind"] != monitor).collect();
        let core_file = out.path().join(format!("{overlay}-core.yaml"));
        let core_yaml: Vec<String> = core
            .iter()
            .map(|d| serde_yaml_ng::to_string(d).unwrap())
            .collect();
        std::fs::write(&core_file, core_yaml.join("---\n")).unwrap();
        let report = validate(&[&core_file]);
        assert_eq!(
            report.matches(" passed for resource ").count(),
            core.len(),
            "{overlay} ({}): {report}",
            file.display()
        );
        let m = of_kind(&docs, monitor);
        validate_monitors(&[m]);

        let daemonset = of_kind(&docs, "DaemonSet");
        let pod_labels = &daemonset["spec"]["template"]["metadata"]["labels"];
        let selected = if monitor == "ServiceMonitor" {
            // The monitor selects the Service, the Service the pods.
            let service = of_kind(&docs, "Service");
            assert_eq!(
                m["spec"]["selector"]["matchLabels"],
                service["metadata"]["labels"]
            );
            assert_eq!(service["spec"]["clusterIP"], "None", "{service:#}");
            &service["spec"]["selector"]
        } else {
            &m["spec"]["selector"]["matchLabels"]
        };
        for (key, value) in selected.as_object().unwrap() {
            assert_eq!(
                &pod_labels[key], value,
                "{overlay}: {key} in {pod_labels:#}"
            );
        }
        assert_eq!(
            m["spec"]["namespaceSelector"]["matchNames"][0],
            daemonset["metadata"]["namespace"]
        );
        let port = &m["spec"][endpoints][0]["port"];
        let ports = &daemonset["spec"]["template"]["spec"]["containers"][0]["ports"];
        assert!(
            ports.as_array().unwrap().iter().any(|p| &p["name"] == port),
            "{overlay}: port {port} not in {ports:#}"
        );
        assert_eq!(
            m["spec"][endpoints][0]["relabelings"][0]["targetLabel"],
            "node"
        );
        // The job is the label's value, "inotify-trace", as the alert
        // rules and the dashboard select it.
        let job_label = m["spec"]["jobLabel"].as_str().expect("jobLabel");
        let labelled = match monitor {
            "ServiceMonitor" => &of_kind(&docs, "Service")["metadata"]["labels"],
            _ => pod_labels,
        };
        assert_eq!(labelled[job_label], "inotify-trace", "{overlay}");
    }
}

/// A monitor the CRD's schema refuses is refused here too (so the check
/// above can fail).
#[test]
fn a_monitor_the_crd_refuses_fails_validation() {
    let bad = serde_json::json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": "bad"},
        "spec": {"podMetricsEndpoints": [{"port": 9814, "scheme": "ftp"}]}
    });
    let refused = std::panic::catch_unwind(|| validate_monitors(&[&bad]));
    let why = *refused
        .expect_err("an invalid PodMonitor passed")
        .downcast::<String>()
        .unwrap();
    assert!(
        why.contains("must have required property selector"),
        "{why}"
    );
}

/// The NetworkPolicy overlay admits the namespace it names, and only it.
#[test]
fn the_network_policy_overlay_admits_its_namespace() {
    let out = tempfile::tempdir().unwrap();
    let (file, text) = kustomize(&deploy_dir().join("overlays/network-policy"), out.path());
    validate(&[&file]);
    let docs = documents(&text);
    let policy = of_kind(&docs, "NetworkPolicy");
    let from = &policy["spec"]["ingress"][0]["from"];
    assert_eq!(from.as_array().unwrap().len(), 1, "{policy:#}");
    assert_eq!(
        from[0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], "prometheus",
        "{policy:#}"
    );
}

/// The limits DaemonSet: valid; both values set in the one ConfigMap and
/// read from it; its init container privileged (the sysctls are the node's),
/// the pod that stays unprivileged.
#[test]
fn the_raise_limits_daemonset_reads_both_values_from_one_place() {
    let file = deploy_dir().join("raise-inotify-limits.yaml");
    let report = validate(&[&file]);
    assert_eq!(
        report.matches(" passed for resource ").count(),
        3,
        "{report}"
    );
    let docs = documents(&std::fs::read_to_string(&file).unwrap());
    let config = &of_kind(&docs, "ConfigMap")["data"];
    for key in ["max_user_watches", "max_user_instances"] {
        let value = config[key].as_str().unwrap();
        assert!(value.parse::<u64>().is_ok_and(|v| v > 0), "{key}: {value}");
    }
    let pod = &of_kind(&docs, "DaemonSet")["spec"]["template"]["spec"];
    let init = &pod["initContainers"][0];
    assert_eq!(init["securityContext"]["privileged"], true);
    let script = init["command"][2].as_str().unwrap();
    for (sysctl, var, key) in [
        (
            "fs.inotify.max_user_watches",
            "MAX_USER_WATCHES",
            "max_user_watches",
        ),
        (
            "fs.inotify.max_user_instances",
            "MAX_USER_INSTANCES",
            "max_user_instances",
        ),
    ] {
        assert!(
            script.contains(&format!("sysctl -w {sysctl}=\"${var}\"")),
            "{script}"
        );
        let env = init["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == var)
            .unwrap_or_else(|| panic!("{var} in {init:#}"));
        assert_eq!(env["valueFrom"]["configMapKeyRef"]["key"], key);
    }
    let stays = &pod["containers"][0]["securityContext"];
    assert_eq!(stays["allowPrivilegeEscalation"], false, "{stays:#}");
    assert_eq!(stays["capabilities"]["drop"][0], "ALL", "{stays:#}");
}

/// The limits DaemonSet's init container, run as the kubelet would run it
/// (its command, its env from the ConfigMap), sets both sysctls. It changes
/// the machine's own limits, so it is ignored on hosts and runs in the VM
/// guests (`cargo xtask vm` passes --include-ignored and sets
/// INOTIFY_TRACE_GUEST); elsewhere it refuses to run at all.
#[test]
#[ignore = "sets the machine's fs.inotify sysctls: cargo xtask vm runs it in the guests"]
fn the_limits_daemonset_sets_both_sysctls_on_a_node() {
    assert!(
        std::env::var_os("INOTIFY_TRACE_GUEST").is_some(),
        "this test sets fs.inotify.*: it runs only in a VM guest of cargo xtask vm"
    );
    let docs = documents(include_str!(
        "../../deploy/kubernetes/raise-inotify-limits.yaml"
    ));
    let config = &of_kind(&docs, "ConfigMap")["data"];
    let init = &of_kind(&docs, "DaemonSet")["spec"]["template"]["spec"]["initContainers"][0];
    let command: Vec<&str> = init["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let env: Vec<(&str, &str)> = init["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let key = e["valueFrom"]["configMapKeyRef"]["key"].as_str().unwrap();
            (e["name"].as_str().unwrap(), config[key].as_str().unwrap())
        })
        .collect();
    let out = Command::new(command[0])
        .args(&command[1..])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{command:?}: {out:?}");
    for (file, key) in [
        ("max_user_watches", "max_user_watches"),
        ("max_user_instances", "max_user_instances"),
    ] {
        let now = std::fs::read_to_string(format!("/proc/sys/fs/inotify/{file}")).unwrap();
        assert_eq!(now.trim(), config[key].as_str().unwrap(), "{file}");
    }
}
