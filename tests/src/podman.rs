//! The image under a real container runtime: podman (with runc), run with
//! the DaemonSet's own settings. The `podman run` flags are derived from
//! `deploy/kubernetes/base/inotify-trace.yaml`, never typed a second time,
//! so a change to the manifest is what the test runs; a setting the
//! derivation does not know fails the test instead of being left out.
use std::{path::PathBuf, process::Command};

use serde::Deserialize as _;
use serde_json::Value;

/// The image the tests build from the Containerfile.
pub const IMAGE: &str = "localhost/inotify-trace:test";

/// Whether podman is here for the test named `test`; like `bpf_available`,
/// a failure under CI and a printed skip elsewhere.
pub fn podman_available(test: &str) -> bool {
    let found = Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if found {
        return true;
    }
    crate::unavailable(
        test,
        "podman is not installed (cargo xtask test installs it)",
    )
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Builds the image from the Containerfile and the static binary that
/// `cargo xtask dist` left in `dist/` (cargo xtask test builds it first).
pub fn build_image() {
    let root = workspace_root();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => panic!("no static build for {other}"),
    };
    let binary = root.join("dist").join(arch).join("inotify-trace");
    assert!(
        binary.is_file(),
        "no {}: run `cargo xtask dist` (cargo xtask test does)",
        binary.display()
    );
    let out = Command::new("podman")
        .args(["build", "--quiet", "-f", "Containerfile", "-t", IMAGE, "."])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "podman build: {out:?}");
}

/// The agent container of the DaemonSet in the base manifest, and its pod's
/// spec.
fn daemonset() -> (Value, Value) {
    let path = workspace_root().join("deploy/kubernetes/base/inotify-trace.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let spec = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .find(|doc| doc["kind"] == "DaemonSet")
        .expect("a DaemonSet in the base manifest")["spec"]["template"]["spec"]
        .clone();
    let container = spec["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "agent"))
        .expect("the agent container")
        .clone();
    (spec, container)
}

/// What the DaemonSet's agent container is run with, as `podman run`
/// flags: its pod's hostPID, its securityContext, and each hostPath volume
/// at its mountPath, the host side given by `host_path` (a test maps the
/// node's log directories into its pretend node). `without_caps` drops
/// capabilities from the manifest's set (for the seccomp case).
pub fn daemonset_flags(host_path: impl Fn(&str) -> String, without_caps: &[&str]) -> Vec<String> {
    let (spec, container) = daemonset();
    let mut flags = Vec::new();
    let known_spec = [
        "hostPID",
        "tolerations",
        "priorityClassName",
        "automountServiceAccountToken",
        "containers",
        "volumes",
        "securityContext",
    ];
    for key in spec.as_object().unwrap().keys() {
        assert!(
            known_spec.contains(&key.as_str()),
            "the podman flags for pod spec field {key} are not derived: add them here"
        );
    }
    if spec["hostPID"] == true {
        flags.push("--pid=host".to_owned());
    }
    let security = &container["securityContext"];
    for (key, value) in security.as_object().expect("a securityContext") {
        match key.as_str() {
            "privileged" => {
                if value == true {
                    flags.push("--privileged".to_owned());
                }
            }
            "allowPrivilegeEscalation" => {
                if value == false {
                    flags.push("--security-opt=no-new-privileges".to_owned());
                }
            }
            "readOnlyRootFilesystem" => {
                if value == true {
                    flags.push("--read-only".to_owned());
                }
            }
            "runAsUser" => flags.push(format!("--user={value}")),
            "capabilities" => {
                for cap in value["drop"].as_array().into_iter().flatten() {
                    flags.push(format!("--cap-drop={}", cap.as_str().unwrap()));
                }
                for cap in value["add"].as_array().into_iter().flatten() {
                    let cap = cap.as_str().unwrap();
                    if !without_caps.contains(&cap) {
                        flags.push(format!("--cap-add={cap}"));
                    }
                }
            }
            "seccompProfile" => match value["type"].as_str() {
                // podman's default profile is the runtime's default.
                Some("RuntimeDefault") => {}
                Some("Unconfined") => flags.push("--security-opt=seccomp=unconfined".to_owned()),
                other => panic!("seccompProfile type {other:?} has no podman flag here"),
            },
            "appArmorProfile" => match value["type"].as_str() {
                // This machine kind has no AppArmor: nothing to confine.
                Some("Unconfined") | Some("RuntimeDefault") => {}
                other => panic!("appArmorProfile type {other:?} has no podman flag here"),
            },
            other => {
                panic!("the podman flag for securityContext.{other} is not derived: add it here")
            }
        }
    }
    let volumes = spec["volumes"].as_array().expect("volumes");
    for mount in container["volumeMounts"].as_array().expect("volumeMounts") {
        let volume = volumes
            .iter()
            .find(|v| v["name"] == mount["name"])
            .expect("each mount's volume");
        let source = volume["hostPath"]["path"]
            .as_str()
            .expect("hostPath volumes only");
        let read_only = if mount["readOnly"] == true { ":ro" } else { "" };
        flags.push(format!(
            "--volume={}:{}{read_only}",
            host_path(source),
            mount["mountPath"].as_str().unwrap()
        ));
    }
    flags
}

/// The manifest's agent arguments (for the `--host-root` it passes).
pub fn daemonset_args() -> Vec<String> {
    let (_, container) = daemonset();
    container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

/// `podman run` of the image with `flags`, with what this machine kind
/// needs of any container: runc (crun refuses its hybrid cgroup layout),
/// and limits of open files and processes it may set (root here lacks
/// CAP_SYS_RESOURCE, and podman's defaults are above what runc may set).
pub fn run(flags: &[String], args: &[&str]) -> Command {
    let mut command = Command::new("podman");
    command
        .args(["--runtime", "/usr/sbin/runc", "run", "--rm"])
        .args([
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=4096:4096",
        ])
        .args(["--network", "none"])
        .args(flags)
        .arg(IMAGE)
        .args(args);
    command
}
