//! Turning parsed flags into what each stage needs, in one place, with the
//! notes a user should see about how their flags were understood.
use std::time::Duration;

use inotify_trace_common::comm_key;

use crate::{cli::Cli, tracer::TracerOptions};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

pub struct TraceSettings {
    pub tracer: TracerOptions,
    pub format: Format,
    pub duration: Option<Duration>,
    pub quiet: bool,
    /// Processes shown in the summary (0: all).
    pub top: usize,
    /// The command to start and trace, with its arguments.
    pub command: Option<Vec<std::ffi::OsString>>,
    pub verbose: bool,
    /// Things to tell the user on stderr before tracing starts.
    pub notes: Vec<String>,
}

impl TraceSettings {
    pub fn from_cli(cli: Cli) -> Self {
        let mut notes = Vec::new();
        for comm in &cli.comms {
            if comm.len() > 15 {
                let key = comm_key(comm.as_bytes());
                notes.push(format!(
                    "--comm {comm:?} matches on its first 15 bytes {:?}: the kernel keeps no more of a process name",
                    String::from_utf8_lossy(&key[..15])
                ));
            }
        }
        for pid in &cli.pids {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                notes.push(format!("--pid {pid}: no such process is running now"));
            }
        }
        TraceSettings {
            tracer: TracerOptions {
                pids: cli.pids,
                comms: cli.comms.iter().map(|c| comm_key(c.as_bytes())).collect(),
                failed_only: cli.failed,
                ring_size: cli.ring_size,
                attach: cli.attach,
                follow: !cli.command.is_empty(),
                kernel_logs: cli.verbose,
            },
            format: if cli.json {
                Format::Json
            } else {
                Format::Human
            },
            duration: cli.duration,
            quiet: cli.quiet,
            top: cli.top,
            command: (!cli.command.is_empty()).then_some(cli.command),
            verbose: cli.verbose,
            notes,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn long_comms_are_cut_to_the_kernels_15_bytes_with_a_note() {
        let cli = Cli::parse_from([
            "inotify-trace",
            "-c",
            "kube-controller-manager",
            "-c",
            "kubelet",
        ]);
        let settings = TraceSettings::from_cli(cli);
        assert_eq!(&settings.tracer.comms[0], b"kube-controller\0");
        assert_eq!(&settings.tracer.comms[1], b"kubelet\0\0\0\0\0\0\0\0\0");
        assert_eq!(settings.notes.len(), 1);
        assert!(
            settings.notes[0].contains("\"kube-controller\""),
            "{}",
            settings.notes[0]
        );
    }
}
