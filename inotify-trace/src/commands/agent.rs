//! `inotify-trace agent`: metrics for Prometheus from periodic /proc
//! snapshots (see `agent`).
use std::process::ExitCode;

use anyhow::{Context as _, Result};

use crate::{agent, settings::AgentSettings};

pub fn agent(settings: AgentSettings) -> Result<ExitCode> {
    // Two workers serve connections; snapshots and trace windows run on
    // this thread (a window's pipeline is not Send), so a busy window does
    // not hold up a scrape.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(agent::run(settings))?;
    Ok(ExitCode::SUCCESS)
}
