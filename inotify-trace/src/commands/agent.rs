//! `inotify-trace agent`: metrics for Prometheus from periodic /proc
//! snapshots (see `agent`).
use std::process::ExitCode;

use anyhow::{Context as _, Result};

use crate::agent::{self, AgentSettings};

pub fn agent(settings: AgentSettings) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(agent::run(settings))?;
    Ok(ExitCode::SUCCESS)
}
