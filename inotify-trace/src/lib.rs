//! inotify-trace: who adds inotify watches, who holds them, and which calls
//! fail.
//!
//! This is the one module map (docs/development.md links here; a unit test below
//! checks that it names every module and names none that does not exist).
//! The flow, one module per stage (imports run one way, down this list):
//!
//! ```text
//! cli -> settings --------------------------------------+
//!                                                       v
//! session (live: tracer -> ring)  --Item-->   pipeline: selection -> pods::Attributor
//! recording::reader (report)      --Item-->     -> ledger -> summary::aggregate,
//!                                                  diagnosis (live)
//!                                               -> output::Output: render (human, json),
//!                                                  recording::writer, notices (stderr),
//!                                                  agent::counters (the agent's windows),
//!                                                  timeline (report --svg/--html)
//! ```
//!
//! - Entry points (`commands`): `trace` (a live session, `session`),
//!   `report` (a recording), `usage` (a /proc snapshot, `usage::snapshot`),
//!   `agent` (snapshots and trace windows served to Prometheus), `check`
//!   (a monitoring plugin's verdict, pure in the top-level `check`, from
//!   the agent's `state` file or a snapshot), `manuals` (completions and
//!   man pages); `main.rs` only calls [`run`].
//! - A source produces `stream::Item`s (event, undecodable record, lost
//!   count, diagnosis, end). `session::LiveSession` (one runner for
//!   `commands::trace` and the agent's windows) attaches, pushes what the
//!   ring buffer holds until its caller says stop, detaches and makes the
//!   end item; `commands::report` pushes what a recording holds; nothing
//!   else differs.
//! - `pipeline::Pipeline`, built from settings, selects, decides what each
//!   call did (`ledger`: a new watch or a re-add, the uid charged, kept with
//!   or without a summary), counts, diagnoses ENOSPC/EMFILE live
//!   (`diagnosis`, which asks the ledger what a gone failer had taken),
//!   aggregates the summary, and
//!   hands every item to its outputs in order, with what each event did to a
//!   uid's budget (`summary::aggregate::Change`) for the outputs that draw it
//!   (`timeline`: `chart` works out what to show, `svg` and `html` draw it).
//!   A new output is one type implementing `output::Output`.
//! - The stream's vocabulary: `event` (records decoded; `Kind` from the
//!   common crate), `errno`, `limits` (`Limit`), `selection`, `stream`
//!   (`Item`, `End`, `Counts`), `output` (`Output`), `clock`.
//! - The kernel side: `tracer` (the attach-mode ladder; `object` loads and
//!   fills the maps, `attach` attaches and types refusals: the only root
//!   part; `kept`: the agent's per-instance watch counts kept by the
//!   kernel's events, which `usage`'s `kept` turns into a snapshot), `ring`,
//!   `preflight` and `kernel_btf` (what the tracer needs from the kernel),
//!   `signals`, `traced_command` (`-- COMMAND`).
//! - `held`: what processes hold (`Held`, `HeldNow`, `Place`), the words the
//!   stream, the summary, `usage` and the diagnosis share; `usage`: the
//!   /proc snapshot (`model`, `snapshot`, `holdings`) and the `usage`
//!   command's text (`render`); `diagnosis`: the snapshot of a failure's
//!   budget (the `Diagnoser`, its model, its `text`), which reads `usage`'s
//!   snapshot; `advice`: whether raising a cap is the fix, and to what (one
//!   rule for `usage` and the diagnosis); `culprits`: the known programs
//!   (`table.yaml`, the one definition, and their recognition); `summary`
//!   (`aggregate`, `process`, `growth`: a leak within a session, `human`);
//!   `pods`: where a caller runs (cgroup id or /proc/PID/cgroup -> `PodId`,
//!   container, unit, from the node's files); `agent` (`snapshots`, windows,
//!   `endpoint`, `web_config`, `metrics`, `counters`, `state`: what it
//!   writes for `check`).
//! - Text: `escape`, `exact_text`, `words` (counts in words, columns, and
//!   the phrases every text view shares), `status`, `stdout`; files named
//!   on the command line, `-` for the standard stream: `file_arg`; a small
//!   file to read (a web config, the agent's state): `small_file`.
mod advice;
mod agent;
mod check;
pub mod cli;
pub mod clock;
mod commands;
pub mod culprits;
mod diagnosis;
mod errno;
mod escape;
pub mod event;
pub mod exact_text;
pub mod file_arg;
mod held;
mod kernel_btf;
mod ledger;
mod limits;
mod notices;
mod output;
mod pipeline;
pub mod pods;
mod preflight;
pub mod recording;
mod render;
mod ring;
mod selection;
mod session;
mod settings;
mod signals;
mod small_file;
mod status;
mod stdout;
pub mod stream;
mod summary;
mod timeline;
mod traced_command;
mod tracer;
pub mod usage;
mod words;

use std::process::ExitCode;

/// Runs the command line; errors come back as one line on stderr. A closed
/// stdout (`inotify-trace | head`) is a normal end, whatever was running.
pub fn run(cli: cli::Cli) -> ExitCode {
    let result = match cli.action {
        Some(cli::Action::Report(args)) => {
            commands::report(settings::ReportSettings::from_cli(args))
        }
        Some(cli::Action::Usage(args)) => commands::usage(settings::UsageSettings::from_cli(args)),
        Some(cli::Action::Agent(args)) => commands::agent(settings::AgentSettings::from_cli(args)),
        Some(cli::Action::Check(args)) => settings::CheckSettings::from_cli(args)
            .map_err(anyhow::Error::msg)
            .and_then(commands::check),
        Some(cli::Action::Completions { shell }) => commands::completions(shell),
        Some(cli::Action::ManPages { dir }) => commands::man_pages(&dir),
        Some(cli::Action::InstallBinary { dir }) => commands::install_binary(&dir),
        None => {
            if cli.trace.verbose {
                // Said as every other line on stderr is: `inotify-trace: ...`.
                env_logger::Builder::new()
                    .filter_level(log::LevelFilter::Warn)
                    .filter_module("inotify_trace", log::LevelFilter::Debug)
                    .format(|out, record| {
                        use std::io::Write as _;
                        let level = record.level().as_str().to_ascii_lowercase();
                        writeln!(out, "inotify-trace: {level}: {}", record.args())
                    })
                    .init();
            }
            commands::trace(settings::TraceSettings::from_cli(cli.trace))
        }
    };
    match result {
        Ok(code) => code,
        Err(err) if stdout::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            notices::say(format_args!("error: {err:#}"));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod module_map_tests {
    use std::path::Path;

    const LIB: &str = include_str!("lib.rs");

    /// The map: the `//!` lines at the top of this file.
    fn map() -> String {
        LIB.lines()
            .take_while(|line| line.starts_with("//!"))
            .map(|line| format!("{}\n", line.trim_start_matches("//!")))
            .collect()
    }

    fn names_as_word(text: &str, name: &str) -> bool {
        text.match_indices(name).any(|(at, _)| {
            let before = text[..at].chars().next_back();
            let after = text[at + name.len()..].chars().next();
            let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            !word(before) && !word(after)
        })
    }

    #[test]
    fn the_map_names_every_top_level_module() {
        let map = map();
        let declared: Vec<&str> = LIB
            .lines()
            .filter_map(|line| {
                let line = line.strip_prefix("pub ").unwrap_or(line);
                line.strip_prefix("mod ")?.strip_suffix(';')
            })
            .collect();
        assert!(declared.len() > 20, "{declared:?}");
        let missing: Vec<&&str> = declared
            .iter()
            .filter(|m| !names_as_word(&map, m))
            .collect();
        assert!(
            missing.is_empty(),
            "the module map in lib.rs does not name {missing:?}"
        );
    }

    /// Every lower-case name in backticks in the map is a module (a file or
    /// a folder somewhere under src/) or a file the map names by its path.
    #[test]
    fn every_module_the_map_names_exists() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut modules = Vec::new();
        let mut pending = vec![src.clone()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if path.is_dir() {
                    pending.push(path);
                    modules.push(name);
                } else {
                    modules.push(name.trim_end_matches(".rs").to_owned());
                    modules.push(name);
                }
            }
        }
        let map = map();
        // `name` in text, but not [`name`], rustdoc's link to an item.
        let pieces: Vec<&str> = map.split('`').collect();
        let named = (1..pieces.len())
            .step_by(2)
            .filter(|&i| !pieces[i - 1].ends_with('['))
            .map(|i| pieces[i]);
        let module_like = |n: &&str| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c == ':' || c == '.')
        };
        for name in named.filter(module_like) {
            for part in name.split("::") {
                assert!(
                    modules.iter().any(|m| m == part),
                    "the module map in lib.rs names `{name}`, but there is no module {part} under src/"
                );
            }
        }
    }

    /// The top-level modules each file names (`crate::X`, `use crate::{X,
    /// ...}`), outside its unit tests: module -> modules it imports.
    fn imports() -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
        let declared: Vec<String> = LIB
            .lines()
            .filter_map(|line| {
                let line = line.strip_prefix("pub ").unwrap_or(line);
                Some(line.strip_prefix("mod ")?.strip_suffix(';')?.to_owned())
            })
            .collect();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut graph = std::collections::BTreeMap::new();
        let mut pending = vec![src.clone()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                    continue;
                }
                let relative = path
                    .strip_prefix(&src)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let top = relative.split('/').next().unwrap().trim_end_matches(".rs");
                if !declared.iter().any(|m| m == top) || relative.ends_with("tests.rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let text = text.split("#[cfg(test)]\nmod tests").next().unwrap();
                let mut named: Vec<&str> = text.split("crate::").skip(1).collect();
                // `use crate::{a::b, c, d::{e, f}};`: the names at depth 0.
                for block in text.split("use crate::{").skip(1) {
                    let mut depth = 0;
                    let mut start = 0;
                    for (at, c) in block.char_indices() {
                        match c {
                            '{' => depth += 1,
                            '}' if depth == 0 => {
                                named.push(&block[start..at]);
                                break;
                            }
                            '}' => depth -= 1,
                            ',' if depth == 0 => {
                                named.push(&block[start..at]);
                                start = at + 1;
                            }
                            _ => {}
                        }
                    }
                }
                let edges = graph
                    .entry(top.to_owned())
                    .or_insert_with(std::collections::BTreeSet::new);
                for name in named {
                    let module: String = name
                        .trim_start()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if module != top && declared.contains(&module) {
                        edges.insert(module);
                    }
                }
            }
        }
        graph
    }

    /// Imports run one way: no two top-level modules import each other,
    /// however indirectly.
    #[test]
    fn the_top_level_modules_import_each_other_without_a_cycle() {
        let graph = imports();
        assert!(graph.len() > 20 && graph.values().map(|e| e.len()).sum::<usize>() > 100);
        // Kahn's algorithm: what cannot be ordered is on a cycle.
        let mut left = graph.clone();
        loop {
            let leaves: Vec<String> = left
                .iter()
                .filter(|(_, edges)| edges.iter().all(|e| !left.contains_key(e)))
                .map(|(m, _)| m.clone())
                .collect();
            if leaves.is_empty() {
                break;
            }
            for leaf in leaves {
                left.remove(&leaf);
            }
        }
        assert!(
            left.is_empty(),
            "these modules import each other in a cycle: {left:?}"
        );
    }

    /// The live stream and its stages speak the stream's words (`held`,
    /// `diagnosis`), not the `usage` command's.
    #[test]
    fn the_stream_and_its_stages_import_nothing_from_usage() {
        let graph = imports();
        for module in [
            "stream",
            "pipeline",
            "summary",
            "timeline",
            "render",
            "notices",
            "output",
            "recording",
        ] {
            assert!(
                !graph[module].contains("usage"),
                "{module} imports from usage: {:?}",
                graph[module]
            );
        }
    }
}
