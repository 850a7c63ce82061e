//! The README's examples are real output: each example kept here is run as
//! the README shows it, and what the tool prints must be the README's text,
//! but for what differs from run to run or machine to machine (pids, times,
//! durations, user namespace inodes, the host's sysctl values), which both
//! sides have masked. Every count, word and column is compared.
use std::process::Command;

use regex::Regex;
use tests::{require_bpf, tracer_binary, workload_binary};

/// The indented block that follows `# COMMAND` in the README, without the
/// command line itself.
fn readme_block(command: &str) -> String {
    let readme = include_str!("../../README.md");
    let start = readme
        .find(&format!("    # {command}\n"))
        .unwrap_or_else(|| panic!("the README shows `{command}`"));
    readme[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("    ") || l.is_empty())
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_owned()
}

/// The text with what varies between runs masked.
fn masked(text: &str) -> String {
    let rules = [
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", "TIME"),
        (r"\d\d:\d\d:\d\d\.\d{6}", "TIME"),
        (r"\bpid \d+", "pid PID"),
        (r"--target \d+", "--target PID"),
        (r"user namespace \d+", "user namespace NS"),
        (r"\d+\.\d+ ?(ms|s)\b", "DURATION"),
        (r"(max_user_(watches|instances)) = \d+", "$1 = LIMIT"),
        // A table row's leading pid, right-aligned: its width varies too.
        (
            r"(?m)^((?:inotify-trace:)?)\s+\d+ (watchmedo|kubelet)",
            "$1 PID $2",
        ),
    ];
    let mut text = text.trim_end().to_owned();
    for (pattern, with) in rules {
        text = Regex::new(pattern)
            .unwrap()
            .replace_all(&text, with)
            .into_owned();
    }
    text
}

#[test]
fn the_readmes_first_example_is_what_the_tool_prints() {
    require_bpf!();
    let command = "inotify-trace -q -- sh tests/fixtures/readme-scenario.sh";
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin_dir = workload_binary().parent().unwrap().to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // As a terminal shows it: stderr and stdout in one stream.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' -q -- sh tests/fixtures/readme-scenario.sh 2>&1",
            tracer_binary().display()
        ))
        .current_dir(&root)
        .env("PATH", path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8(out.stdout).unwrap();
    let (want, got) = (masked(&readme_block(command)), masked(&printed));
    if want != got {
        let diff: Vec<String> = want
            .lines()
            .zip(got.lines())
            .filter(|(w, g)| w != g)
            .map(|(w, g)| format!("README: {w}\n   now: {g}"))
            .collect();
        panic!(
            "the README's example is out of date ({} lines, now {}):\n{}",
            want.lines().count(),
            got.lines().count(),
            diff.join("\n")
        );
    }
}
