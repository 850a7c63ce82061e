//! What ships besides the binary: the Kubernetes manifests validate against
//! the Kubernetes schemas offline (kubernetes-validate, pinned by the test
//! setup), strictly (an unknown field is an error).
use std::process::Command;

#[test]
fn the_manifests_validate_against_the_kubernetes_schemas() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes");
    let manifests: Vec<_> = std::fs::read_dir(&deploy)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert_eq!(manifests.len(), 2, "{manifests:?}");
    let out = Command::new("python3")
        .args([
            "-m",
            "kubernetes_validate",
            "--strict",
            "--kubernetes-version",
            "1.31.0",
        ])
        .args(&manifests)
        .output()
        .expect("python3");
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !report.contains("ERROR"),
        "kubernetes-validate (cargo xtask test installs it):\n{report}"
    );
    // One line per resource: the namespace, the DaemonSet, the Job.
    assert_eq!(
        report.matches(" passed for resource ").count(),
        3,
        "{report}"
    );
}
