//! Known programs named with their own fix (inotify-trace/src/culprits):
//! real ones (Debian's `tail -f`, python3-watchdog and syncthing, chokidar
//! from npm on Node.js), a process whose command line says
//! `.vscode-server`, and one the table does not know; each as `usage --json`
//! and its text say, and in the diagnosis of an ENOSPC that program's
//! holdings caused in a user namespace, live and in the report of its
//! recording.
use std::process::Command;

use serde_json::Value;
use tests::{
    require_bpf, unique_comm,
    watchers::{tree, Program, Running},
    workload_binary, Script, Tracer, Workload,
};

fn usage(args: &[&str]) -> (Value, String) {
    (tests::usage_json(args), tests::usage_text(args))
}

fn culprit_of(usage: &Value, pid: u32) -> &Value {
    let p = usage["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == pid)
        .unwrap_or_else(|| panic!("pid {pid} in usage: {usage:#}"));
    &p["culprit"]
}

/// The lines under `pid`'s row in a table, up to the next row: what is
/// said of that process (where, cmdline, known: ...).
fn lines_under(text: &str, pid: u32) -> Vec<&str> {
    let mut lines = text
        .lines()
        .skip_while(|l| l.split_whitespace().next() != Some(&pid.to_string()));
    assert!(lines.next().is_some(), "pid {pid} in:\n{text}");
    lines
        .take_while(|l| {
            let first = l.split_whitespace().next().unwrap_or("0");
            first.parse::<u32>().is_err() && l.starts_with("    ")
        })
        .collect()
}

/// Whether the lines under `pid`'s first row say "known: NAME: ...", then
/// "fix: ...".
fn says_known(text: &str, pid: u32, program: Program) -> bool {
    let said = format!("known: {}: ", program.known_as());
    lines_under(text, pid).windows(2).any(|two| {
        two[0].trim_start().starts_with(&said) && two[1].trim_start().starts_with("fix: ")
    })
}

/// The part of a report's text from the line that starts with `heading`.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let at = text
        .find(&format!("\n{heading}"))
        .unwrap_or_else(|| panic!("no {heading:?} in:\n{text}"));
    &text[at + 1..]
}

#[test]
fn usage_names_known_programs_with_their_fix_and_leaves_others_alone() {
    require_bpf!();
    let scratch = tempfile::tempdir().unwrap();
    let running: Vec<Running> = Program::KNOWN
        .iter()
        .enumerate()
        .map(|(i, &program)| {
            let dir = scratch.path().join(i.to_string());
            std::fs::create_dir(&dir).unwrap();
            let tree = tree(&dir);
            Running::start(program, &dir, &tree, &[])
        })
        .collect();
    let unknown_comm = unique_comm("plain");
    let script_plain = Script::new()
        .init(3)
        .add(scratch.path().to_str().unwrap(), 1)
        .then("sleep", "60");
    let mut plain = Workload::start(&[], &unknown_comm, &script_plain.args());
    script_plain.check(&plain.release_and_read(2));

    let mut pid_args: Vec<String> = running
        .iter()
        .flat_map(|r| ["--pid".to_owned(), r.holder.to_string()])
        .collect();
    pid_args.extend(["--pid".to_owned(), plain.pid.to_string()]);
    let pid_args: Vec<&str> = pid_args.iter().map(String::as_str).collect();
    let (json, text) = usage(&pid_args);

    for r in &running {
        let culprit = culprit_of(&json, r.holder);
        assert_eq!(culprit["id"], r.program.culprit(), "{json:#}");
        assert!(says_known(&text, r.holder, r.program), "{text}");
    }
    // What each entry says, checked for three kinds of advice.
    let of = |program: Program| {
        let r = running.iter().find(|r| r.program == program).unwrap();
        culprit_of(&json, r.holder)
    };
    let tail = of(Program::TailFollow);
    assert_eq!(tail["raise_limit"], "none");
    assert!(tail["fix"].as_str().unwrap().starts_with("nothing needed"));
    let vsc = of(Program::VscodeServer);
    assert_eq!(vsc["raise_limit"], "no");
    assert!(vsc["fix"]
        .as_str()
        .unwrap()
        .contains("files.watcherExclude"));
    assert_eq!(
        vsc["link"],
        "https://github.com/microsoft/vscode/issues/59679"
    );
    let node = of(Program::Chokidar);
    assert!(node["fix"]
        .as_str()
        .unwrap()
        .contains("CHOKIDAR_USEPOLLING=1"));
    assert_eq!(of(Program::Syncthing)["raise_limit"], "watches");

    assert!(culprit_of(&json, plain.pid as u32).is_null(), "{json:#}");
    assert_eq!(text.matches("known: ").count(), running.len(), "{text}");
    drop(plain);
}

#[test]
fn a_diagnosis_names_the_known_program_that_holds_the_budget() {
    require_bpf!();
    for program in Program::KNOWN {
        diagnosis_names(program);
    }
}

/// In a user namespace, `program` watches a tree; the namespace's cap is
/// then lowered to what it holds, so the failer's one add_watch fails with
/// ENOSPC. The diagnosis, live and in the report of the recording, names
/// the program as the first holder with its fix, and so does the summary's
/// row of the program (traced too, still holding at the end).
fn diagnosis_names(program: Program) {
    let dir = tempfile::tempdir().unwrap();
    let tree = tree(dir.path());
    let failer = unique_comm("failer");
    let recording = dir.path().join("rec");
    let tracer = Tracer::start(&[
        "--json",
        "--comm",
        &failer,
        "--comm",
        program.comm(),
        "-w",
        recording.to_str().unwrap(),
    ]);
    let running = Running::start(program, dir.path(), &tree, &["unshare", "-U", "-r"]);
    let held = running.watches();
    let fail = format!(
        "echo {held} > /proc/sys/user/max_inotify_watches && \
         exec {} --comm {failer} init add {}",
        workload_binary().display(),
        dir.path().display()
    );
    let out = Command::new("nsenter")
        .args(["--user", "--target", &running.holder.to_string()])
        .args(["sh", "-c", &fail])
        .output()
        .unwrap();
    assert!(out.status.success(), "{program:?}: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"ret\":-28"),
        "{program:?}: the failer's add_watch did not fail with ENOSPC: {out:?}"
    );
    let finished = tracer.stop();
    let holder = running.holder;
    drop(running);
    finished.assert_clean_exit();
    let lines = finished.json_lines();
    let d = lines
        .iter()
        .find(|l| l["type"] == "diagnosis")
        .unwrap_or_else(|| panic!("{program:?}: no diagnosis: {lines:#?}"));
    assert_eq!(d["holders"][0]["pid"], holder, "{program:?}: {d:#}");
    assert_eq!(
        d["holders"][0]["culprit"]["id"],
        program.culprit(),
        "{program:?}: {d:#}"
    );
    let summary = lines.iter().find(|l| l["type"] == "summary").unwrap();
    let row = summary["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == holder)
        .unwrap_or_else(|| panic!("{program:?}: {holder} in {summary:#}"));
    assert_eq!(row["held_watches"], held, "{program:?}: {row:#}");
    assert_eq!(
        row["culprit"]["id"],
        program.culprit(),
        "{program:?}: {row:#}"
    );

    // In the report's text, the line under the holder says it.
    let report = tests::report(&[&recording]);
    assert!(report.status.success(), "{report:?}");
    let text = String::from_utf8(report.stdout).unwrap();
    for heading in ["Processes, by watches held", "Diagnoses"] {
        assert!(
            says_known(section(&text, heading), holder, program),
            "{program:?}, {heading}:\n{text}"
        );
    }
}
