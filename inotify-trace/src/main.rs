//! inotify-trace: who adds inotify watches, and which calls fail.
//!
//! A pipeline, one module per stage: `cli`/`settings` (flags), `tracer`
//! (load and attach, the only root part), `ring` (read records), `event`
//! (decode), `report` (aggregate into the summary), `render` (print),
//! `session` (wires them together).
mod cli;
mod clock;
mod command;
mod errno;
mod escape;
mod event;
mod limits;
mod output;
mod preflight;
mod render;
mod report;
mod ring;
mod session;
mod settings;
mod status;
mod tracer;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if cli.verbose {
        env_logger::Builder::new()
            .filter_level(log::LevelFilter::Warn)
            .filter_module("inotify_trace", log::LevelFilter::Debug)
            .init();
    }
    let settings = settings::TraceSettings::from_cli(cli);
    match session::run(settings) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("inotify-trace: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
