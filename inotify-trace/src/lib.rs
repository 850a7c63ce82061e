//! inotify-trace: who adds inotify watches, who holds them, and which calls
//! fail.
//!
//! The flow, one module per stage (imports run one way, down this list):
//!
//! ```text
//! cli -> settings --------------------------------------+
//!                                                       v
//! session (live: tracer -> ring)  --Item-->   pipeline: selection -> pods::Attributor
//! recording::reader (report)      --Item-->     -> summary::aggregate, usage::diagnosis (live)
//!                                               -> output::Output: render (human, json),
//!                                                  recording::writer, notices (stderr),
//!                                                  agent::counters (the agent's windows)
//! ```
//!
//! - Entry points (`commands`): `trace` (a live session, `session`),
//!   `report` (a recording), `usage` (a /proc snapshot, `usage::snapshot`),
//!   `agent` (snapshots and trace windows served to Prometheus); `main.rs`
//!   only calls [`run`].
//! - The stream's vocabulary: `event` (records decoded; `Kind` from the
//!   common crate), `errno`, `limits` (`Limit`), `selection`, `stream`
//!   (`Item`, `End`, `Counts`), `output` (`Output`), `clock`.
//! - The kernel side: `tracer` (load, attach: the only root part), `ring`,
//!   `preflight` and `kernel_btf` (what the tracer needs from the kernel),
//!   `signals`, `traced_command` (`-- COMMAND`).
//! - `usage`: the /proc snapshot (`model`, `snapshot`, `holdings`), the
//!   diagnosis and its advice; `pods`: where a caller runs (cgroup id or
//!   /proc/PID/cgroup -> `PodId`, container, unit, from the node's files).
//! - Text: `escape`, `exact_text`, `words`, `status`, `stdout`.
mod agent;
pub mod cli;
pub mod clock;
mod commands;
pub mod culprits;
mod errno;
mod escape;
pub mod event;
pub mod exact_text;
mod kernel_btf;
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
        Some(cli::Action::Completions { shell }) => commands::completions(shell),
        Some(cli::Action::ManPages { dir }) => commands::man_pages(&dir),
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
