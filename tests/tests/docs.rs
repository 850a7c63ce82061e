//! The JSON examples in docs/json.md are real: each event example parses,
//! and has exactly the keys the tracer writes for that kind of event (what
//! depends on the machine, the caller's place and the optional fields, set
//! aside), compared with events the test makes.
use std::collections::BTreeSet;

use serde_json::Value;
use tests::{require_bpf, unique_comm, Script, Tracer, Workload, ENOENT};

/// The examples of docs/json.md: indented blocks that start with `{`, one
/// JSON object each (continued on lines indented one more).
fn examples() -> Vec<Value> {
    let docs = include_str!("../../docs/json.md");
    let mut found = Vec::new();
    let mut lines = docs.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(start) = line.strip_prefix("    {") else {
            continue;
        };
        let mut text = format!("{{{start}");
        while let Some(more) = lines.peek().and_then(|l| l.strip_prefix("     ")) {
            text.push_str(more);
            lines.next();
        }
        let value: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("docs/json.md example does not parse ({e}): {text}"));
        found.push(value);
    }
    found
}

/// Keys that are there or not by the caller's place (pod, unit, a cgroup
/// resolved or gone) or by what the call passed (non-UTF-8, too long): the
/// rest must be the same.
const DEPENDS: [&str; 14] = [
    "cgroup",
    "cgroup_gone",
    "process_gone",
    "namespace",
    "pod",
    "pod_uid",
    "container",
    "container_id",
    "unit",
    "comm_base64",
    "path_base64",
    "path_truncated",
    "path_unreadable",
    "args_missing",
];

fn keys(event: &Value) -> BTreeSet<String> {
    event
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| !DEPENDS.contains(&k.as_str()))
        .cloned()
        .collect()
}

#[test]
fn every_event_example_has_the_keys_the_tracer_writes() {
    require_bpf!();
    let examples = examples();
    let kinds: Vec<&str> = examples
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["add_watch", "lost", "init", "rm_watch"]);
    assert_eq!(
        keys(&examples[1]),
        BTreeSet::from(["type".into(), "count".into()])
    );

    let dir = tempfile::tempdir().unwrap();
    let comm = unique_comm("docs");
    let tracer = Tracer::start(&["--json", "--comm", &comm]);
    let script = Script::new()
        .init(3)
        .add(dir.path().to_str().unwrap(), 1)
        .add("/nonexistent/docs", ENOENT)
        .rm(1, 0);
    script.check(&Workload::start(&[], &comm, &script.args()).release_all());
    let finished = tracer.stop();
    finished.assert_clean_exit();
    let events = finished.json_lines();
    for example in examples.iter().filter(|e| e["type"] != "lost") {
        let kind = &example["type"];
        let real = events
            .iter()
            .find(|e| &e["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} event in {events:#?}"));
        assert_eq!(
            keys(example),
            keys(real),
            "docs/json.md's {kind} example against the tracer's:\n{example}\n{real}"
        );
    }
    // The failed add_watch has the same keys as the example's (a failure).
    let failed = events
        .iter()
        .find(|e| e["type"] == "add_watch" && e["errno"] == "ENOENT")
        .unwrap();
    assert_eq!(keys(&examples[0]), keys(failed));
}
