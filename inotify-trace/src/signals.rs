//! The signals that end a live session: SIGINT (Ctrl-C), SIGTERM, and
//! SIGHUP (the terminal went away): each ends it cleanly, with every event
//! flushed, the recording's end written and the summary printed.
use anyhow::{Context as _, Result};
use nix::sys::signal::Signal;
use tokio::signal::unix::{signal, SignalKind};

pub struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers: from here on these signals no longer kill the
    /// process, they wake [`Signals::next`].
    pub fn new() -> Result<Self> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("handling SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("handling SIGTERM")?,
            hangup: signal(SignalKind::hangup()).context("handling SIGHUP")?,
        })
    }

    /// The next signal that arrives (cancel-safe).
    pub async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.interrupt.recv() => Signal::SIGINT,
            _ = self.terminate.recv() => Signal::SIGTERM,
            _ = self.hangup.recv() => Signal::SIGHUP,
        }
    }
}
