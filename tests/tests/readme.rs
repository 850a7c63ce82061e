//! The README's examples are real output (and those moved to docs/, where
//! they went): each example kept here is run as the page shows it, and what
//! the tool prints must be the page's text,
//! but for what differs from run to run or machine to machine (pids, times,
//! durations, user namespace inodes, the host's sysctl values), which both
//! sides have masked. Every count, word and column is compared.
use std::process::Command;

use regex::Regex;
use tests::{require_bpf, tracer_binary, workload_binary};

/// The pages whose examples are checked.
const PAGES: [(&str, &str); 2] = [
    ("README.md", include_str!("../../README.md")),
    ("docs/pods.md", include_str!("../../docs/pods.md")),
];

/// The indented block that follows `# COMMAND` in the README (or the page
/// of docs/ it moved to), without the command line itself, up to the next
/// `# COMMAND` or the text after it.
fn readme_block(command: &str) -> String {
    let marker = format!("    # {command}\n");
    let (page, start) = PAGES
        .iter()
        .find_map(|(_, text)| Some((*text, text.find(&marker)?)))
        .unwrap_or_else(|| panic!("the README or docs/pods.md shows `{command}`"));
    page[start..]
        .lines()
        .skip(1)
        // Up to the next command, or the text after the block.
        .take_while(|l| (l.starts_with("    ") || l.is_empty()) && !l.starts_with("    # "))
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
        (r"\d+\.\d+-\d+\.\d+ ms\b", "DURATION"),
        (r"\d+\.\d+ ?(ms|s)\b", "DURATION"),
        (r"(max_user_(watches|instances)) = \d+", "$1 = LIMIT"),
        // A table row's leading pid, right-aligned: its width varies too.
        (
            r"(?m)^((?:inotify-trace:)?)\s+\d+ (watchmedo|kubelet|holder|inotifywait|inotify-workloa)",
            "$1 PID $2",
        ),
        (r"\b\d+ (holder|inotifywait) \(", "PID $1 ("),
        // The agent's port (the test's is a free one).
        (r":\d+/metrics", ":PORT/metrics"),
        // A live line's pid and tid.
        (r"(?m)^TIME\s+\d+\s+\d+\s", "TIME PID TID "),
        // A Users row's caps and shares (the host's caps are the
        // machine's), spacing collapsed: their width varies.
        (
            r"host\s+(\d+)\s+\d+\s+\S+\s+(\d+)\s+\d+\s+\S+\s+",
            "host $1 MAX USED% $2 MAX USED% ",
        ),
        // A process this machine's /proc does not let root read (pid 1 in
        // some sandboxes): not the example's.
        (r"(?m)^PARTIAL: .*\n", ""),
        // What the watches pin: the kernel's struct sizes are the running
        // kernel's (the column's width with them).
        (r"\s+\d+(?:\.\d)? (?:B|KiB|MiB|GiB)\b", " KMEM"),
        (
            r"\d+ bytes each: a mark of \d+ and two inodes of \d+",
            "N bytes each: a mark of M and two inodes of I",
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

/// What `command` prints, run by sh from the workspace root with the
/// workload on PATH and INOTIFY_TRACE naming the tracer, stderr and stdout
/// in one stream as a terminal shows them.
fn printed(command: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin_dir = workload_binary().parent().unwrap().to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{command} 2>&1"))
        .current_dir(&root)
        .env("PATH", path)
        .env("INOTIFY_TRACE", tracer_binary())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The README's block under `# readme_command` is what was printed, masked
/// (a line `...` in the README stands for any lines up to the next one it
/// shows).
fn assert_same(readme_command: &str, printed: &str) {
    let (want, got) = (masked(&readme_block(readme_command)), masked(printed));
    let got = elided_like(&want, &got);
    if want != got {
        let diff: Vec<String> = want
            .lines()
            .zip(got.lines())
            .filter(|(w, g)| w != g)
            .map(|(w, g)| format!("README: {w}\n   now: {g}"))
            .collect();
        panic!(
            "the README's example `{readme_command}` is out of date ({} lines, now {}):\n{}\nnow:\n{printed}",
            want.lines().count(),
            got.lines().count(),
            diff.join("\n")
        );
    }
}

/// `got` with the runs of lines the README elides (`...`) replaced by
/// `...`: each runs up to the next line the README shows.
fn elided_like(want: &str, got: &str) -> String {
    let want: Vec<&str> = want.lines().collect();
    let mut got = got.lines().peekable();
    let mut out = Vec::new();
    for (i, line) in want.iter().enumerate() {
        if *line == "..." {
            let next = want.get(i + 1).copied();
            while got.peek().is_some_and(|g| Some(*g) != next) {
                got.next();
            }
            out.push("...");
        } else if let Some(g) = got.next() {
            out.push(g);
        }
    }
    out.extend(got);
    out.join("\n")
}

#[test]
fn the_readmes_first_example_is_what_the_tool_prints() {
    require_bpf!();
    let command = "inotify-trace -q -- sh tests/fixtures/readme-scenario.sh";
    let out = printed(&format!(
        "'{}' -q -- sh tests/fixtures/readme-scenario.sh",
        tracer_binary().display()
    ));
    assert_same(command, &out);
}

/// `usage --paths` on a holder of three directories
/// (tests/fixtures/readme-usage.sh makes it and runs the command).
#[test]
fn the_readmes_usage_example_is_what_the_tool_prints() {
    require_bpf!();
    let out = printed("sh tests/fixtures/readme-usage.sh");
    assert_same("inotify-trace usage --paths --comm holder", &out);
}

/// The pods examples: a live session and `usage`, on two inotifywaits in a
/// pretend node's cgroups (tests/fixtures/readme-pods.sh).
#[test]
fn the_readmes_pods_examples_are_what_the_tool_prints() {
    require_bpf!();
    let live = printed("sh tests/fixtures/readme-pods.sh live");
    assert_same(
        "inotify-trace --host-root /tmp/demo-node/host --comm inotifywait --top 5",
        &live,
    );
    let usage = printed("sh tests/fixtures/readme-pods.sh usage");
    assert_same(
        "inotify-trace usage --host-root /tmp/demo-node/host --comm inotifywait",
        &usage,
    );
}

/// The first live lines (tests/fixtures/readme-live.sh: the workload's
/// calls, one in a user namespace running out of its budget).
#[test]
fn the_readmes_live_lines_are_what_the_tool_prints() {
    require_bpf!();
    let out = printed("sh tests/fixtures/readme-live.sh");
    assert_same("inotify-trace --comm inotify-workload", &out);
}

/// The agent's first line, on a free port (the README's 9814 may be taken
/// on a machine that runs tests).
#[test]
fn the_readmes_agent_line_is_what_the_agent_says() {
    require_bpf!();
    use std::io::BufRead as _;
    let port = tests::scrape::free_port();
    let mut agent = Command::new(tracer_binary())
        .args([
            "agent",
            "--listen",
            &format!("0.0.0.0:{port}"),
            "--interval",
            "15s",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(agent.stderr.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _ = agent.kill();
    let _ = agent.wait();
    assert_same(
        "inotify-trace agent --listen 0.0.0.0:9814 --interval 15s",
        &first,
    );
}

/// The README is an operator's page: the quick start on its first screen
/// (within 40 lines), and every relative link of it and of docs/ (a file,
/// and a `#section` of a Markdown file) leads somewhere.
#[test]
fn the_quick_start_is_on_the_first_screen_and_every_link_leads_somewhere() {
    let readme = PAGES[0].1;
    let at = readme
        .lines()
        .position(|l| l == "## Quick start")
        .expect("a Quick start section");
    assert!(at < 40, "the quick start starts at line {}", at + 1);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut pages: Vec<std::path::PathBuf> = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages.push(root.join("deploy/node-problem-detector/README.md"));
    let link = Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for target in link.captures_iter(&text).map(|c| c[1].to_owned()) {
            if target.starts_with("http") {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let file = match file {
                "" => page.clone(),
                file => page.parent().unwrap().join(file),
            };
            assert!(file.exists(), "{}: {target} leads nowhere", page.display());
            if !anchor.is_empty() {
                let headings: Vec<String> = std::fs::read_to_string(&file)
                    .unwrap()
                    .lines()
                    .filter_map(|l| l.strip_prefix('#'))
                    .map(|h| {
                        h.trim_start_matches('#')
                            .trim()
                            .to_lowercase()
                            .chars()
                            .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
                            .collect::<String>()
                            .replace(' ', "-")
                    })
                    .collect();
                assert!(
                    headings.iter().any(|h| h == anchor),
                    "{}: {target}: no such section in {} ({headings:?})",
                    page.display(),
                    file.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 20, "{checked} links checked");
}
