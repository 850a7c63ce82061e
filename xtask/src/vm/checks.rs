//! What a guest runs: a subset of the project's own end-to-end tests (the
//! same code that checks this machine), built static for the guest's
//! architecture and run there one at a time with `CI=true`.

/// One end-to-end test run in every guest.
#[derive(Clone, Copy, Debug)]
pub struct Check {
    /// The integration test file (`tests/tests/NAME.rs`).
    pub suite: &'static str,
    /// The test's full name, as libtest's `--exact` takes it.
    pub test: &'static str,
    /// Runs only where the kernel takes `--attach exit` (it has
    /// `bpf_task_pt_regs`, 5.15+).
    pub needs_exit_mode: bool,
    /// Runs in both of the guest's passes: `auto` (fexit where the kernel
    /// allows it) and `tracepoint`; a test that names its attach mode itself
    /// runs once.
    pub both_passes: bool,
}

const fn check(suite: &'static str, test: &'static str) -> Check {
    Check {
        suite,
        test,
        needs_exit_mode: false,
        both_passes: true,
    }
}

/// A test whose attach mode does not follow `INOTIFY_TRACE_ATTACH` (it
/// passes `--attach` itself, or runs the agent): run once.
const fn once(suite: &'static str, test: &'static str) -> Check {
    Check {
        both_passes: false,
        ..check(suite, test)
    }
}

/// The subset: every kind of call reported exactly (both attach modes where
/// the kernel allows them), a command followed into its children, record
/// and report round trip, ENOSPC and EMFILE in a user namespace with their
/// diagnosis, `usage` against fdinfo, pods named on real cgroups made in the
/// guest, the agent answering a scrape and, with fexit, tracing all the
/// time and keeping its counts from the kernel's events (no drift as watchers
/// come and go); the limits DaemonSet's script setting the guest's sysctls
/// (ignored on hosts: it would change theirs); and the charge each record
/// carries, counted call by call, in a nested namespace and for a failed
/// init, in every attach mode.
pub const CHECKS: [Check; 21] = [
    Check {
        needs_exit_mode: true,
        ..once(
            "live",
            "every_kind_of_call_is_reported_exactly::case_1_exit_only",
        )
    },
    once(
        "live",
        "every_kind_of_call_is_reported_exactly::case_2_enter_exit",
    ),
    once(
        "live",
        "every_kind_of_call_is_reported_exactly::case_3_fexit",
    ),
    once("live", "verbose_says_which_attach_mode_was_chosen_and_why"),
    check("live", "enospc_inside_a_user_namespace"),
    check("summary", "summary_counts_a_known_workload_exactly"),
    check(
        "summary",
        "a_command_is_followed_into_its_grandchildren_and_its_status_returned",
    ),
    check(
        "recording",
        "a_report_says_byte_for_byte_what_the_live_session_said",
    ),
    check(
        "usage",
        "usage_reports_known_instances_exactly_and_shared_ones_once",
    ),
    check(
        "usage",
        "a_traced_enospc_gets_a_diagnosis_naming_the_holder",
    ),
    check("usage", "a_traced_emfile_gets_a_diagnosis_of_instances"),
    check(
        "pods",
        "every_layout_names_pod_and_container_live_and_in_report",
    ),
    check(
        "agent",
        "metrics_equal_what_usage_reports_per_uid_and_per_pod",
    ),
    once(
        "agent",
        "where_fexit_works_the_agent_traces_continuously_and_counts_every_failure",
    ),
    once(
        "agent",
        "the_agents_kept_counts_follow_watchers_as_they_come_and_go",
    ),
    once("deploy", "the_limits_daemonset_sets_both_sysctls_on_a_node"),
    Check {
        needs_exit_mode: true,
        ..once(
            "charge",
            "each_call_carries_the_count_the_kernel_enforces::case_1_exit_only",
        )
    },
    once(
        "charge",
        "each_call_carries_the_count_the_kernel_enforces::case_2_enter_exit",
    ),
    once(
        "charge",
        "each_call_carries_the_count_the_kernel_enforces::case_3_fexit",
    ),
    check(
        "charge",
        "a_nested_namespace_fails_on_the_outer_level_and_the_record_says_so",
    ),
    check("charge", "a_failed_init_carries_the_callers_own_full_level"),
];

/// The test files a guest needs executables of.
pub fn suites() -> Vec<&'static str> {
    let mut suites: Vec<&str> = CHECKS.iter().map(|c| c.suite).collect();
    suites.sort_unstable();
    suites.dedup();
    suites
}

/// While working on one check: `INOTIFY_TRACE_VM_CHECKS=NAME,...` keeps
/// only the checks whose test name contains one of the NAMEs (a guest boots
/// in seconds; the whole list takes minutes). Unset, all run (CI).
fn selected() -> impl Iterator<Item = &'static Check> {
    let wanted: Vec<String> = std::env::var("INOTIFY_TRACE_VM_CHECKS")
        .map(|names| names.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    CHECKS
        .iter()
        .filter(move |c| wanted.is_empty() || wanted.iter().any(|w| c.test.contains(w.as_str())))
}

/// The guest's list of checks, one per line: `SUITE TEST NEEDS PASSES`
/// (NEEDS is `exit` or `any`, PASSES `both` or `once`), read by its `/init`.
pub fn list() -> String {
    selected()
        .map(|c| {
            let needs = if c.needs_exit_mode { "exit" } else { "any" };
            let passes = if c.both_passes { "both" } else { "once" };
            format!("{} {} {needs} {passes}\n", c.suite, c.test)
        })
        .collect()
}

/// How many checks a guest runs in its two passes.
pub fn count() -> usize {
    selected().map(|c| 1 + usize::from(c.both_passes)).sum()
}
