//! What ships besides the binary: the Kubernetes manifests, and each
//! kustomize overlay as `kubectl kustomize` renders it, validate against the
//! Kubernetes schemas offline (kubernetes-validate, pinned by the test
//! setup), strictly (an unknown field is an error).
use std::{path::Path, process::Command};

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
fn the_kustomize_base_and_overlays_render_valid_manifests() {
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
}
