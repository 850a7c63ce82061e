//! `inotify-trace -- COMMAND`: the command the session traces and outlives
//! by nothing. It is started only once the programs are attached and the
//! tracer follows its own children, so its first call is already traced.
use std::{ffi::OsString, process::ExitStatus};

use anyhow::{Context as _, Result};
use nix::{sys::signal::Signal, unistd::Pid};

pub struct TracedCommand {
    child: tokio::process::Child,
    /// A stop signal was passed on already; the next one stops the tracer.
    pub signal_forwarded: bool,
}

impl TracedCommand {
    /// `stdout_to_stderr`: stdout carries the recording (`-w -`), so the
    /// command's own output goes to stderr instead.
    pub fn spawn(argv: &[OsString], stdout_to_stderr: bool) -> Result<TracedCommand> {
        let (program, args) = argv.split_first().context("no command given after --")?;
        let mut command = tokio::process::Command::new(program);
        command.args(args);
        if stdout_to_stderr {
            use std::os::fd::AsFd as _;
            let stderr = std::io::stderr()
                .as_fd()
                .try_clone_to_owned()
                .context("giving the command stderr as its stdout")?;
            command.stdout(std::process::Stdio::from(stderr));
        }
        let child = command
            .spawn()
            .with_context(|| format!("could not start {}", program.to_string_lossy()))?;
        Ok(TracedCommand {
            child,
            signal_forwarded: false,
        })
    }

    /// Waits for the command to exit (cancel-safe).
    pub async fn wait(&mut self) -> Result<ExitStatus> {
        self.child.wait().await.context("waiting for the command")
    }

    /// Passes a stop signal on to the command (which, from a terminal, got
    /// it too), so the session ends when the command does.
    pub fn forward(&mut self, signal: Signal) {
        if let Some(pid) = self.child.id() {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), signal);
        }
        self.signal_forwarded = true;
    }
}

/// The exit status a shell would give for the command's end.
pub fn exit_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code.clamp(0, 255) as u8,
        (None, Some(signal)) => (128 + signal).clamp(0, 255) as u8,
        (None, None) => 1,
    }
}
