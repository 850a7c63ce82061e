//! inotify-trace: who adds inotify watches, and which calls fail.
//!
//! A pipeline, one module per stage: `cli`/`settings` (flags), `tracer`
//! (load and attach, the only root part), `ring` (read records), `event`
//! (decode), `summary` (aggregate into the summary), `render` (print),
//! `session` (wires them together). `main.rs` only calls [`run`].
pub mod cli;
pub mod clock;
pub mod command;
pub mod errno;
pub mod escape;
pub mod event;
pub mod filter;
pub mod kernel_btf;
pub mod limits;
pub mod output;
pub mod pipeline;
pub mod preflight;
pub mod recording;
pub mod render;
pub mod report;
pub mod ring;
pub mod session;
pub mod settings;
pub mod status;
pub mod summary;
pub mod tracer;
pub mod usage;

use std::process::ExitCode;

/// Runs the command line; errors come back as one line on stderr.
pub fn run(cli: cli::Cli) -> ExitCode {
    let result = match cli.action {
        Some(cli::Action::Report(args)) => report::run(settings::ReportSettings::from_cli(args)),
        Some(cli::Action::Usage(args)) => usage::command::run(args),
        None => {
            if cli.trace.verbose {
                env_logger::Builder::new()
                    .filter_level(log::LevelFilter::Warn)
                    .filter_module("inotify_trace", log::LevelFilter::Debug)
                    .init();
            }
            session::run(settings::TraceSettings::from_cli(cli.trace))
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("inotify-trace: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
