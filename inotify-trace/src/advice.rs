//! What to do about a uid that is close to (or at) its inotify limits: the
//! value to set, what it may cost, the commands, and when raising the limit
//! is the wrong fix.
use serde::{Deserialize, Serialize};

use crate::{exact_text::ProcessName, limits::Limit};

/// Kernel memory one watch can pin where the running kernel's BTF does not
/// say (`kernel_btf::WatchCost` reads it): the kernel's own
/// `INOTIFY_WATCH_COST` (a mark plus two inodes) on one x86-64 build (this
/// machine's 6.18: 1,312).
pub const TYPICAL_WATCH_COST_BYTES: u64 = 1284;
/// Usage at or above this share of a limit gets a recommendation.
const NEAR_LIMIT: f64 = 0.8;
/// A single process holding more than this share of a uid's watches makes
/// raising the limit the wrong first fix, whatever the count: the one rule
/// `usage`, the diagnosis and the summary follow (README, "Who holds the watches now").
/// Raising it gives that process more room to take, and the next failure is
/// anyone's.
const ONE_HOLDER: f64 = 0.5;

/// What was seen of one uid in one scope (the host, or a user namespace).
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub uid: u32,
    /// None: the host (the `fs.inotify` sysctls); Some: that namespace's caps.
    pub user_ns: Option<u64>,
    pub watches: u64,
    pub instances: u64,
    pub max_watches: Option<u64>,
    pub max_instances: Option<u64>,
    /// What one watch pins (the running kernel's estimate, or the typical).
    pub watch_cost_bytes: u64,
    /// The process holding the most watches: pid, comm, watches.
    pub top_holder: Option<(u32, ProcessName, u64)>,
    /// A process in the user namespace (to enter it with nsenter).
    pub ns_member: Option<u32>,
    /// On a Kubernetes node, the host's limits are best set on every node
    /// at once (deploy/kubernetes/raise-inotify-limits.yaml).
    pub kubernetes_node: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recommendation {
    pub uid: u32,
    pub user_ns: Option<u64>,
    /// `watches` or `instances`: the budget, named as a diagnosis's `limit`.
    #[serde(default)]
    pub resource: Option<Limit>,
    /// The setting to raise: `fs.inotify.max_user_watches`, or
    /// `user.max_inotify_watches` for a user namespace's own cap (and
    /// likewise for instances).
    #[serde(default)]
    pub sysctl: String,
    /// The old name of `sysctl`, with the namespace: `user.max_inotify_watches
    /// (user namespace N)`; kept for one release (docs/json.md).
    pub limit: String,
    pub current: u64,
    pub observed: u64,
    pub recommended: u64,
    /// At most this much kernel memory if every watch were used (watches only).
    pub max_kernel_memory_bytes: Option<u64>,
    pub commands: Vec<String>,
    /// Why raising the limit would not fix the cause, when one process holds
    /// most of the budget.
    pub wrong_fix: Option<String>,
}

pub fn advise(observed: &[Observed]) -> Vec<Recommendation> {
    let mut out = Vec::new();
    for o in observed {
        if let Some(r) = recommend(o, o.watches, o.max_watches, Limit::Watches) {
            out.push(r);
        }
        if let Some(r) = recommend(o, o.instances, o.max_instances, Limit::Instances) {
            out.push(r);
        }
    }
    out
}

fn recommend(
    o: &Observed,
    used: u64,
    limit: Option<u64>,
    resource: Limit,
) -> Option<Recommendation> {
    let limit = limit?;
    if limit == 0 || (used as f64) < NEAR_LIMIT * limit as f64 {
        return None;
    }
    let (host_name, ns_file) = (resource.sysctl(), resource.namespace_file());
    // Half as much again as what is used, and above the current limit,
    // rounded up to a power of two: room for growth that scales with the
    // usage, without a limit so large it stops catching leaks.
    let recommended = (used.saturating_mul(3) / 2)
        .max(limit.saturating_add(1))
        .checked_next_power_of_two()
        .unwrap_or(u64::MAX);
    let (name, commands) = match o.user_ns {
        None => {
            let mut commands = vec![
                format!("sysctl -w {host_name}={recommended}"),
                format!("echo '{host_name} = {recommended}' > /etc/sysctl.d/90-inotify.conf"),
            ];
            if o.kubernetes_node {
                // The manifest's one place for the value: its ConfigMap key,
                // the sysctl's last word.
                let key = host_name.trim_start_matches("fs.inotify.");
                commands.push(format!(
                    "sed 's/^  {key}: .*/  {key}: \"{recommended}\"/' deploy/kubernetes/raise-inotify-limits.yaml | kubectl apply -f -   # every node of the cluster"
                ));
            }
            (host_name.to_owned(), commands)
        }
        // Written from inside the namespace, by its owner: root on the host
        // gets there with nsenter through any process in it.
        Some(ns) => (
            format!("user.{ns_file} (user namespace {ns})"),
            vec![match o.ns_member {
                Some(pid) => format!(
                    "nsenter --user --target {pid} -- sh -c 'echo {recommended} > /proc/sys/user/{ns_file}'   # user namespace {ns}"
                ),
                // No process of the namespace is left to name: say how to
                // find one.
                None => format!(
                    "nsenter --user --target PID -- sh -c 'echo {recommended} > /proc/sys/user/{ns_file}'   # PID: any process of user namespace {ns} (lsns -t user | grep {ns})"
                ),
            }],
        ),
    };
    let wrong_fix = match (resource, &o.top_holder) {
        (Limit::Watches, Some((pid, comm, held)))
            if used > 0 && (*held as f64) > ONE_HOLDER * used as f64 =>
        {
            Some(format!(
                "pid {pid} ({comm}) holds {} of uid {}'s watches: raising the limit only postpones the next failure; find out why it watches so much (a leak, or a recursive watch of a large tree?)",
                crate::words::whole_percent(100.0 * *held as f64 / used as f64),
                o.uid
            ))
        }
        _ => None,
    };
    Some(Recommendation {
        uid: o.uid,
        user_ns: o.user_ns,
        resource: Some(resource),
        sysctl: match o.user_ns {
            None => host_name.to_owned(),
            Some(_) => format!("user.{ns_file}"),
        },
        limit: name,
        current: limit,
        observed: used,
        recommended,
        max_kernel_memory_bytes: (resource == Limit::Watches)
            .then_some(recommended.saturating_mul(o.watch_cost_bytes)),
        commands,
        wrong_fix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(watches: u64, max_watches: u64, top: u64) -> Observed {
        Observed {
            uid: 0,
            user_ns: None,
            watches,
            instances: 3,
            max_watches: Some(max_watches),
            max_instances: Some(128),
            top_holder: Some((42, ProcessName::from_bytes(b"kubelet"), top)),
            ns_member: Some(42),
            kubernetes_node: false,
            watch_cost_bytes: TYPICAL_WATCH_COST_BYTES,
        }
    }

    /// On a Kubernetes node, a third command sets the value on every node
    /// through the limits DaemonSet: its sed, run on the real manifest,
    /// changes that value in the ConfigMap and nothing else.
    #[test]
    fn on_a_kubernetes_node_the_limits_daemonset_is_offered() {
        let o = Observed {
            kubernetes_node: true,
            ..observed(8000, 8192, 3000)
        };
        let r = &advise(&[o])[0];
        assert_eq!(r.commands.len(), 3, "{:?}", r.commands);
        let apply = &r.commands[2];
        let (sed, rest) = apply.split_once(" | ").unwrap();
        assert!(rest.starts_with("kubectl apply -f -"), "{apply}");
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let out = std::process::Command::new("sh")
            .args(["-c", sed])
            .current_dir(root)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let edited = String::from_utf8(out.stdout).unwrap();
        let original = std::fs::read_to_string(format!(
            "{root}/deploy/kubernetes/raise-inotify-limits.yaml"
        ))
        .unwrap();
        let changed: Vec<(&str, &str)> = original
            .lines()
            .zip(edited.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(
            changed.iter().map(|(_, b)| *b).collect::<Vec<_>>(),
            ["  max_user_watches: \"16384\""],
            "{changed:?}"
        );
    }

    #[test]
    fn no_advice_below_eighty_percent() {
        assert!(advise(&[observed(6000, 8192, 100)]).is_empty());
    }

    #[test]
    fn near_the_limit_half_again_rounded_with_commands_and_cost() {
        let r = &advise(&[observed(8000, 8192, 3000)])[0];
        assert_eq!((r.current, r.observed, r.recommended), (8192, 8000, 16384));
        assert_eq!(
            r.max_kernel_memory_bytes,
            Some(16384 * TYPICAL_WATCH_COST_BYTES)
        );
        assert_eq!(
            r.commands,
            [
                "sysctl -w fs.inotify.max_user_watches=16384",
                "echo 'fs.inotify.max_user_watches = 16384' > /etc/sysctl.d/90-inotify.conf"
            ]
        );
        assert_eq!(r.wrong_fix, None);
    }

    #[test]
    fn one_process_holding_most_of_the_budget_is_the_real_problem() {
        let r = &advise(&[observed(8192, 8192, 7000)])[0];
        let why = r.wrong_fix.as_deref().unwrap();
        assert!(
            why.starts_with("pid 42 (kubelet) holds 85% of uid 0's watches"),
            "{why}"
        );
    }

    #[test]
    fn instances_and_namespaces() {
        let mut o = observed(1, 8192, 1);
        (o.instances, o.max_instances, o.user_ns) = (3, Some(3), Some(4026532000));
        let r = advise(&[o]);
        assert_eq!(r.len(), 1);
        assert_eq!(
            r[0].limit,
            "user.max_inotify_instances (user namespace 4026532000)"
        );
        // 3 of 3: half again (4), above the cap, as a power of two.
        assert_eq!((r[0].recommended, r[0].max_kernel_memory_bytes), (4, None));
        assert_eq!(
            r[0].commands[0],
            "nsenter --user --target 42 -- sh -c 'echo 4 > /proc/sys/user/max_inotify_instances'   # user namespace 4026532000"
        );
    }

    /// The advice scales with what was used: a cap of 50 full is raised to
    /// 128, not to a host-sized 8192; a holder of most of it is questioned
    /// whatever the count (one rule), one of less than half is not.
    #[test]
    fn a_small_cap_gets_a_small_raise_and_the_one_rule() {
        let r = &advise(&[observed(50, 50, 40)])[0];
        assert_eq!((r.current, r.observed, r.recommended), (50, 50, 128));
        assert!(r
            .wrong_fix
            .as_deref()
            .is_some_and(|w| w.contains("holds 80%")));
        let r = &advise(&[observed(50, 50, 25)])[0];
        assert_eq!(r.wrong_fix, None);
        let r = &advise(&[observed(190_000, 192_530, 1000)])[0];
        assert_eq!(r.recommended, 524_288);
    }
}
