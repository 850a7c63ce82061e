//! The agent's Prometheus metrics (docs/metrics.md): built afresh from each
//! usage snapshot, so no series outlives what it describes (a deleted pod's
//! series is gone at the next snapshot) and memory does not grow with the
//! pids, paths or pods ever seen. Labels are low-cardinality: uids, user
//! namespaces, pods; never pids, paths or tids.
use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use super::{counters::Counts, Tracing};
use crate::usage::Usage;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UserLabels {
    uid: String,
    /// `host`, or the user namespace's inode number.
    userns: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PodLabels {
    namespace: String,
    pod: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    syscall: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TracingLabels {
    /// `continuous` (fexit) or `windows` (tracepoints).
    scope: String,
    /// The attach mode of the programs attached now (`--attach`'s names), or
    /// `none`.
    mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    syscall: String,
    errno: String,
    namespace: String,
    pod: String,
    container: String,
    uid: String,
    userns: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    /// How the agent traces: `fexit` (continuously), `tracepoint` (in
    /// windows), or `starting` before it knows.
    attach_mode: String,
    /// The running kernel's release.
    kernel: String,
}

/// A scope as the `userns` label says it: `host` (the initial namespace's
/// budget), or the user namespace's inode number. The one spelling for the
/// gauges, the failure counters and the state file, so they join.
pub fn userns_label(user_ns: Option<u64>) -> String {
    user_ns.map_or_else(|| "host".to_owned(), |ns| ns.to_string())
}

/// How the last snapshot went.
pub struct SnapshotStats {
    /// Snapshots taken since the agent started, this one included.
    pub taken: u64,
    pub duration_s: f64,
    /// Seconds since the epoch, when it was taken.
    pub taken_at_s: f64,
    /// Where the kernel keeps each instance's watches (fexit): how the
    /// counts last compared with fdinfo. `None`: the snapshot read fdinfo.
    pub kept: Option<KeptStats>,
}

/// The kept counts' checks against fdinfo (`usage::kept`).
#[derive(Clone, Copy, Debug, Default)]
pub struct KeptStats {
    /// The last reconciliation's drift, in watches (0 when no event was
    /// missed).
    pub drift: u64,
    /// Reconciliations since the agent started (the first, at start, sets
    /// the counts and has no drift to say).
    pub reconciliations: u64,
    /// When the last one was made (Unix time).
    pub reconciled_at_s: f64,
}

/// The exposition of one snapshot and of what trace windows counted, as
/// `/metrics` serves it (OpenMetrics text).
pub fn exposition(
    usage: &Usage,
    stats: &SnapshotStats,
    counts: &Counts,
    tracing: &Tracing,
) -> String {
    let mut registry = Registry::default();
    let build = Family::<BuildLabels, Gauge>::default();
    registry.register(
        "inotify_trace_build_info",
        "Always 1: the agent's version, how it traces (fexit continuously, tracepoint in windows), the kernel's release",
        build.clone(),
    );
    build
        .get_or_create(&BuildLabels {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            attach_mode: tracing.attach_mode().to_owned(),
            kernel: tracing.kernel.clone(),
        })
        .set(1);
    let user = |name: &str, help: &str, registry: &mut Registry| {
        let family = Family::<UserLabels, Gauge>::default();
        registry.register(name, help, family.clone());
        family
    };
    let user_watches = user(
        "inotify_trace_user_watches",
        "Watches charged to the uid in the scope (host or user namespace), from /proc",
        &mut registry,
    );
    let user_instances = user(
        "inotify_trace_user_instances",
        "Instances charged to the uid in the scope",
        &mut registry,
    );
    let user_max_watches = user(
        "inotify_trace_user_max_watches",
        "The scope's cap on a uid's watches (fs.inotify.max_user_watches, or user.max_inotify_watches)",
        &mut registry,
    );
    let user_max_instances = user(
        "inotify_trace_user_max_instances",
        "The scope's cap on a uid's instances",
        &mut registry,
    );
    for u in &usage.users {
        let labels = UserLabels {
            uid: u.uid.to_string(),
            userns: userns_label(u.user_ns),
        };
        user_watches.get_or_create(&labels).set(gauge(u.watches));
        user_instances
            .get_or_create(&labels)
            .set(gauge(u.instances));
        if let Some(max) = u.max_watches {
            user_max_watches.get_or_create(&labels).set(gauge(max));
        }
        if let Some(max) = u.max_instances {
            user_max_instances.get_or_create(&labels).set(gauge(max));
        }
    }

    let pod_watches = Family::<PodLabels, Gauge>::default();
    registry.register(
        "inotify_trace_pod_watches",
        "Watches of the pod's instances (each instance counts for its first holder's pod)",
        pod_watches.clone(),
    );
    let pod_instances = Family::<PodLabels, Gauge>::default();
    registry.register(
        "inotify_trace_pod_instances",
        "Instances whose first holder is in the pod",
        pod_instances.clone(),
    );
    for pod in &usage.pods {
        let (namespace, name) = pod.pod.metric_labels();
        let labels = PodLabels {
            namespace,
            pod: name,
        };
        pod_watches.get_or_create(&labels).set(gauge(pod.watches));
        pod_instances
            .get_or_create(&labels)
            .set(gauge(pod.instances));
    }

    // Counted by trace windows as they go; kept for the agent's life.
    let calls = Family::<CallLabels, Counter>::default();
    for ((syscall, result), n) in &counts.calls {
        let labels = CallLabels {
            syscall: (*syscall).to_owned(),
            result: (*result).to_owned(),
        };
        calls.get_or_create(&labels).inc_by(*n);
    }
    registry.register(
        "inotify_trace_calls",
        "Traced inotify calls by syscall and result (ok, or the errno's name)",
        calls,
    );
    let failures = Family::<FailureLabels, Counter>::default();
    for (key, (n, _)) in &counts.failures {
        let labels = FailureLabels {
            syscall: key.syscall.to_owned(),
            errno: key.errno.to_owned(),
            namespace: key.namespace.clone(),
            pod: key.pod.clone(),
            container: key.container.clone(),
            uid: key.uid.to_string(),
            userns: key.userns.clone(),
        };
        failures.get_or_create(&labels).inc_by(*n);
    }
    registry.register(
        "inotify_trace_failures",
        "Traced calls that failed, by errno, the caller's pod, and the budget charged (uid and userns, as inotify_trace_user_watches labels them)",
        failures,
    );
    let lost = Counter::<u64>::default();
    lost.inc_by(counts.lost);
    registry.register(
        "inotify_trace_lost_events",
        "Events the kernel could not deliver while tracing (ring buffer full)",
        lost,
    );
    let attached = Gauge::<i64>::default();
    attached.set(i64::from(tracing.attached.is_some()));
    registry.register(
        "inotify_trace_tracing",
        "1 while the eBPF tracer is attached (all the time with fexit, else in a trace window), else 0",
        attached,
    );
    let info = Family::<TracingLabels, Gauge>::default();
    registry.register(
        "inotify_trace_tracing_info",
        "How the agent traces: scope continuous (fexit) or windows (tracepoints); mode the attach mode of the programs attached now, or none",
        info.clone(),
    );
    let mode = tracing.attached.map_or("none".to_owned(), |m| {
        clap::ValueEnum::to_possible_value(&m)
            .map_or_else(|| m.to_string(), |v| v.get_name().to_owned())
    });
    let scope = if tracing.continuous {
        "continuous"
    } else {
        "windows"
    };
    info.get_or_create(&TracingLabels {
        scope: scope.to_owned(),
        mode,
    })
    .set(1);
    single(
        &mut registry,
        "inotify_trace_snapshot_duration_seconds",
        "How long the last /proc snapshot took",
        stats.duration_s,
    );
    let taken = Counter::<u64>::default();
    taken.inc_by(stats.taken);
    registry.register(
        "inotify_trace_snapshots",
        "Snapshots taken since the agent started",
        taken,
    );
    single(
        &mut registry,
        "inotify_trace_last_snapshot_timestamp_seconds",
        "When the last snapshot was taken (Unix time)",
        stats.taken_at_s,
    );
    let from_kept = Gauge::<i64>::default();
    from_kept.set(i64::from(stats.kept.is_some()));
    registry.register(
        "inotify_trace_snapshot_kept_counts",
        "1 when the last snapshot took each instance's watches from the counts the kernel's events keep (fexit: no watch read), 0 when it read every watch's fdinfo",
        from_kept,
    );
    if let Some(kept) = stats.kept {
        let drift = Gauge::<i64>::default();
        drift.set(gauge(kept.drift));
        registry.register(
            "inotify_trace_kept_drift_watches",
            "By how many watches the kept counts differed from fdinfo at the last reconciliation (summed over instances; must be 0)",
            drift,
        );
        let reconciliations = Counter::<u64>::default();
        reconciliations.inc_by(kept.reconciliations);
        registry.register(
            "inotify_trace_kept_reconciliations",
            "Times the kept counts were read against every instance's fdinfo (--reconcile-every)",
            reconciliations,
        );
        single(
            &mut registry,
            "inotify_trace_last_reconciliation_timestamp_seconds",
            "When the kept counts were last read against fdinfo (Unix time)",
            kept.reconciled_at_s,
        );
    }
    if let Some(cost) = usage.watch_cost {
        let bytes = Gauge::<i64>::default();
        bytes.set(gauge(cost.bytes));
        registry.register(
            "inotify_trace_watch_cost_bytes",
            "Kernel memory one watch pins by the kernel's own estimate (INOTIFY_WATCH_COST: a mark and two inodes, sizes from this kernel's BTF); times a watch gauge, what those watches pin",
            bytes,
        );
    }
    process_metrics(&mut registry);
    let unreadable = Gauge::<i64>::default();
    unreadable.set(gauge(usage.unreadable_processes));
    registry.register(
        "inotify_trace_unreadable_processes",
        "Processes whose fds the last snapshot could not read (its counts are then lower bounds)",
        unreadable,
    );
    let mut text = String::new();
    encode(&mut text, &registry).expect("writing to a String cannot fail");
    text
}

/// The same exposition in Prometheus's older text format (0.0.4), for a
/// scraper that does not ask for OpenMetrics (curl, `promtool check
/// metrics`): a counter's HELP and TYPE name its `_total` samples, and
/// there is no `# EOF`.
pub fn prometheus_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines().filter(|l| *l != "# EOF") {
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{tag}{name}_total {tail}"))
        });
        text.push_str(renamed.as_deref().unwrap_or(line));
        text.push('\n');
    }
    text
}

/// A gauge of seconds without labels, set to `value`.
fn single(registry: &mut Registry, name: &str, help: &str, value: f64) {
    let gauge = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    gauge.set(value);
    registry.register(name, help, gauge);
}

/// The agent's own CPU and memory, under the names every exporter's
/// process collector uses: what the agent costs the node, from the node's
/// own Prometheus. CPU from getrusage (every thread's, those gone too, to
/// the microsecond), memory from /proc/self/statm (procfs).
fn process_metrics(registry: &mut Registry) {
    use nix::sys::resource::{getrusage, UsageWho};
    if let Ok(usage) = getrusage(UsageWho::RUSAGE_SELF) {
        let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        let cpu = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        cpu.inc_by(seconds(usage.user_time()) + seconds(usage.system_time()));
        registry.register(
            "process_cpu_seconds",
            "Total user and system CPU time the agent spent, in seconds",
            cpu,
        );
    }
    let resident = procfs::process::Process::myself().and_then(|me| me.statm());
    if let Ok(statm) = resident {
        let bytes = Gauge::<i64>::default();
        bytes.set(gauge(statm.resident * procfs::page_size()));
        registry.register(
            "process_resident_memory_bytes",
            "The agent's resident memory size, in bytes",
            bytes,
        );
    }
}

/// A count as a gauge's i64 (saturating: counts never get near it).
fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        limits::Limits,
        usage::{PodUsage, UserUsage},
    };

    fn user(uid: u32, user_ns: Option<u64>, watches: u64, max: Option<u64>) -> UserUsage {
        UserUsage {
            uid,
            user_ns,
            instances: 2,
            watches,
            max_instances: Some(128),
            max_watches: max,
            watches_pct: None,
            instances_pct: None,
            top_holder: None,
        }
    }

    /// A snapshot of these users and one pod holding `watches` (1 instance).
    fn usage(users: Vec<UserUsage>, namespace: &str, pod: &str, watches: u64) -> Usage {
        Usage {
            kind: "usage",
            limits: Limits::default(),
            watch_cost: None,
            watch_cost_unknown: None,
            instances: Vec::new(),
            processes: Vec::new(),
            users,
            pods: vec![PodUsage {
                pod: crate::pods::PodId {
                    namespace: Some(namespace.into()),
                    name: Some(pod.into()),
                    uid: "0a1b".into(),
                },
                instances: 1,
                watches,
                top_holder: None,
            }],
            recommendations: Vec::new(),
            partial: false,
            unreadable_processes: 0,
            unreadable_pids: Vec::new(),
            unreadable_comms: Vec::new(),
            unreadable_why: None,
        }
    }

    /// The documented names, labels and values, one series per uid and
    /// scope and per pod; a cap that could not be read has no series.
    #[test]
    fn the_exposition_says_each_uid_scope_and_pod() {
        let users = vec![
            user(0, None, 8190, Some(8192)),
            user(0, Some(4026532177), 60, None),
        ];
        let usage = Usage {
            watch_cost: Some(crate::kernel_btf::WatchCost {
                bytes: 1312,
                mark_bytes: 80,
                inode_bytes: 616,
            }),
            unreadable_processes: 1,
            unreadable_pids: vec![1],
            ..usage(users, "shop", "cart-7", 55)
        };
        let mut counts = Counts::default();
        counts.calls.insert(("inotify_add_watch", "ENOSPC"), 3);
        counts.failures.insert(
            super::super::counters::FailureKey {
                syscall: "inotify_add_watch",
                errno: "ENOSPC",
                namespace: "shop".into(),
                pod: "cart-7".into(),
                container: "app".into(),
                uid: 0,
                userns: "4026532177".into(),
            },
            (3, std::time::Instant::now()),
        );
        counts.lost = 2;
        let text = exposition(
            &usage,
            &SnapshotStats {
                taken: 7,
                duration_s: 0.25,
                taken_at_s: 1_795_000_000.5,
                kept: Some(KeptStats {
                    drift: 0,
                    reconciliations: 2,
                    reconciled_at_s: 1_795_000_000.0,
                }),
            },
            &counts,
            &Tracing {
                attached: Some(crate::tracer::AttachMode::Fexit),
                continuous: true,
                windows_because: None,
                failing: None,
                kernel: "6.1.0-28-amd64".into(),
            },
        );
        for line in [
            r#"inotify_trace_user_watches{uid="0",userns="host"} 8190"#,
            r#"inotify_trace_user_watches{uid="0",userns="4026532177"} 60"#,
            r#"inotify_trace_user_instances{uid="0",userns="host"} 2"#,
            r#"inotify_trace_user_max_watches{uid="0",userns="host"} 8192"#,
            r#"inotify_trace_user_max_instances{uid="0",userns="4026532177"} 128"#,
            r#"inotify_trace_pod_watches{namespace="shop",pod="cart-7"} 55"#,
            r#"inotify_trace_pod_instances{namespace="shop",pod="cart-7"} 1"#,
            "inotify_trace_lost_events_total 2",
            "inotify_trace_tracing 1",
            r#"inotify_trace_tracing_info{scope="continuous",mode="fexit"} 1"#,
            r#"inotify_trace_calls_total{syscall="inotify_add_watch",result="ENOSPC"} 3"#,
            r#"inotify_trace_failures_total{syscall="inotify_add_watch",errno="ENOSPC",namespace="shop",pod="cart-7",container="app",uid="0",userns="4026532177"} 3"#,
            r#"inotify_trace_build_info{version="0.1.0",attach_mode="fexit",kernel="6.1.0-28-amd64"} 1"#,
            "inotify_trace_snapshot_duration_seconds 0.25",
            "inotify_trace_last_snapshot_timestamp_seconds 1795000000.5",
            "inotify_trace_unreadable_processes 1",
            "inotify_trace_watch_cost_bytes 1312",
            "inotify_trace_snapshot_kept_counts 1",
            "inotify_trace_snapshots_total 7",
            "inotify_trace_kept_drift_watches 0",
            "inotify_trace_kept_reconciliations_total 2",
            "inotify_trace_last_reconciliation_timestamp_seconds 1795000000.0",
            "# TYPE inotify_trace_user_watches gauge",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in:\n{text}");
        }
        assert!(!text.contains(r#"inotify_trace_user_max_watches{uid="0",userns="4026532177"}"#));
        // This test's own process, as the agent's would be.
        let cpu = text
            .lines()
            .find_map(|l| l.strip_prefix("process_cpu_seconds_total "))
            .and_then(|v| v.parse::<f64>().ok());
        assert!(cpu.is_some_and(|s| s > 0.0), "{text}");
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
        let old = prometheus_text(&text);
        assert!(old.contains("# TYPE inotify_trace_lost_events_total counter\n"));
        assert!(old.contains("# HELP inotify_trace_calls_total Traced"));
        assert!(old.contains("# TYPE inotify_trace_user_watches gauge\n"));
        assert!(!old.contains("# EOF"));
    }

    /// Names come from directory names on the node: a quote, a backslash or
    /// a newline in one is escaped, never a break in the exposition.
    #[test]
    fn hostile_names_are_escaped_in_label_values() {
        let usage = usage(Vec::new(), "ns\\", "a\"b\n# EOF", 7);
        let stats = SnapshotStats {
            taken: 1,
            duration_s: 0.0,
            taken_at_s: 0.0,
            kept: None,
        };
        let text = exposition(&usage, &stats, &Counts::default(), &Tracing::default());
        let line = r#"inotify_trace_pod_watches{namespace="ns\\",pod="a\"b\n# EOF"} 7"#;
        assert!(text.lines().any(|l| l == line), "{line:?} not in:\n{text}");
        assert_eq!(text.lines().filter(|l| *l == "# EOF").count(), 1, "{text}");
        let old = prometheus_text(&text);
        assert!(old.lines().any(|l| l == line), "{old}");
        assert!(!old.lines().any(|l| l == "# EOF"), "{old}");
    }
}
