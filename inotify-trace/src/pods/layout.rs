//! What a cgroup v2 path says about the process in it: the Kubernetes pod
//! and container (kubelet's systemd and cgroupfs drivers; containerd, CRI-O
//! and docker leaves), or outside Kubernetes a systemd unit or a plain
//! container. Pure text rules, no I/O: the layouts are documented in
//! docs/pods.md.

/// What the path names; every field optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// The pod's uid, with dashes (`kubepods…pod<uid>…`).
    pub pod_uid: Option<String>,
    /// The container's id (the runtime's, 64 hex digits as a rule).
    pub container_id: Option<String>,
    /// The systemd unit (`NAME.service`, `NAME.scope`) outside a pod.
    pub unit: Option<String>,
}

/// Reads a cgroup path (relative to the cgroup2 mount, with or without a
/// leading `/`).
pub fn placement(path: &str) -> Placement {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let mut placement = Placement::default();
    let in_kubepods = parts
        .iter()
        .any(|p| *p == "kubepods" || p.starts_with("kubepods.slice") || p.starts_with("kubepods-"));
    if in_kubepods {
        for (i, part) in parts.iter().enumerate() {
            if let Some(uid) = pod_uid(part) {
                placement.pod_uid = Some(uid);
                placement.container_id = parts.get(i + 1).and_then(|leaf| container_id(leaf));
            }
            // containerd without systemd: `…pod<uid>.slice:cri-containerd:<id>`.
            if let Some((slice, id)) = part.split_once(":cri-containerd:") {
                placement.pod_uid = pod_uid(slice).or(placement.pod_uid.take());
                placement.container_id = hex_id(id).map(str::to_owned);
            }
        }
        return placement;
    }
    // Outside Kubernetes: the innermost unit, and a container id when the
    // leaf is one (docker's, or a bare id).
    placement.unit = parts
        .iter()
        .rev()
        .find(|p| p.ends_with(".service") || p.ends_with(".scope"))
        .filter(|p| container_id(p).is_none())
        .map(|p| (*p).to_owned());
    placement.container_id = parts.last().and_then(|leaf| container_id(leaf));
    if placement.container_id.is_some() {
        placement.unit = None;
    }
    placement
}

/// `pod<uid>` (cgroupfs) or `kubepods[-<qos>]-pod<uid with _>.slice`
/// (systemd): the uid with dashes.
fn pod_uid(part: &str) -> Option<String> {
    let part = part.strip_suffix(".slice").unwrap_or(part);
    let uid = match part.rfind("-pod") {
        Some(at) if part.starts_with("kubepods") => &part[at + 4..],
        _ => part.strip_prefix("pod")?,
    };
    let uid = uid.replace('_', "-");
    is_uid(&uid).then_some(uid)
}

/// A Kubernetes uid: hex digits and dashes (36 characters as a rule; any
/// non-empty such string is taken).
fn is_uid(uid: &str) -> bool {
    !uid.is_empty() && uid.len() <= 64 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// A container leaf: `cri-containerd-<id>.scope`, `crio-<id>.scope`,
/// `crio-<id>`, `docker-<id>.scope`, `cri-containerd:<id>` or a bare id.
/// CRI-O's `crio-conmon-<id>` is its monitor, not the container.
fn container_id(leaf: &str) -> Option<String> {
    let leaf = leaf.strip_suffix(".scope").unwrap_or(leaf);
    let id = [
        "cri-containerd-",
        "crio-",
        "docker-",
        "cri-containerd:",
        "libpod-",
    ]
    .iter()
    .find_map(|prefix| leaf.strip_prefix(prefix))
    .unwrap_or(leaf);
    hex_id(id).map(str::to_owned)
}

/// A runtime's container id: at least 12 hex digits, nothing else.
fn hex_id(id: &str) -> Option<&str> {
    (id.len() >= 12 && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "1b2c3d4e-0000-4a5b-8c9d-0123456789ab";
    const ID: &str = "4f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff";

    fn pod(uid: &str, id: Option<&str>) -> Placement {
        Placement {
            pod_uid: Some(uid.to_owned()),
            container_id: id.map(str::to_owned),
            unit: None,
        }
    }

    #[test]
    fn systemd_driver_with_each_runtime_and_qos() {
        let underscored = UID.replace('-', "_");
        for (qos, leaf) in [
            (
                "kubepods-burstable.slice/kubepods-burstable-",
                format!("cri-containerd-{ID}.scope"),
            ),
            (
                "kubepods-besteffort.slice/kubepods-besteffort-",
                format!("crio-{ID}.scope"),
            ),
            ("", format!("docker-{ID}.scope")),
        ] {
            let qos = if qos.is_empty() {
                "kubepods-".to_owned()
            } else {
                qos.to_owned()
            };
            let path = format!("/kubepods.slice/{qos}pod{underscored}.slice/{leaf}");
            assert_eq!(placement(&path), pod(UID, Some(ID)), "{path}");
        }
        // The pod's own cgroup (its pause process, or a process between).
        let path = format!("kubepods.slice/kubepods-pod{underscored}.slice");
        assert_eq!(placement(&path), pod(UID, None));
        // CRI-O's monitor is not the container.
        let path = format!("kubepods.slice/kubepods-pod{underscored}.slice/crio-conmon-{ID}.scope");
        assert_eq!(placement(&path), pod(UID, None));
    }

    #[test]
    fn cgroupfs_driver_with_each_runtime() {
        for leaf in [
            ID.to_owned(),
            format!("crio-{ID}"),
            format!("cri-containerd-{ID}"),
        ] {
            for qos in ["burstable/", "besteffort/", ""] {
                let path = format!("/kubepods/{qos}pod{UID}/{leaf}");
                assert_eq!(placement(&path), pod(UID, Some(ID)), "{path}");
            }
        }
        let path = format!(
            "/kubepods.slice/kubepods-burstable-pod{}.slice:cri-containerd:{ID}",
            UID.replace('-', "_")
        );
        assert_eq!(placement(&path), pod(UID, Some(ID)), "{path}");
    }

    #[test]
    fn outside_kubernetes_a_unit_or_a_container() {
        assert_eq!(
            placement("/system.slice/kubelet.service"),
            Placement {
                unit: Some("kubelet.service".into()),
                ..Placement::default()
            }
        );
        assert_eq!(
            placement("/user.slice/user-0.slice/session-3.scope"),
            Placement {
                unit: Some("session-3.scope".into()),
                ..Placement::default()
            }
        );
        let docker = Placement {
            container_id: Some(ID.into()),
            ..Placement::default()
        };
        assert_eq!(
            placement(&format!("/system.slice/docker-{ID}.scope")),
            docker
        );
        assert_eq!(placement(&format!("/docker/{ID}")), docker);
        assert_eq!(placement("/"), Placement::default());
        assert_eq!(
            placement("/kubepods/burstable/podnot-hex!/x"),
            Placement::default()
        );
    }
}
