//! Turning parsed flags into what each stage needs, in one place, with the
//! notes a user should see about how their flags were understood.
use std::{ffi::OsString, path::PathBuf, time::Duration};

use inotify_trace_common::comm_key;

use crate::{
    cli::{ProcessSelection, ReportArgs, Selection, TraceArgs},
    filter::EventFilter,
    tracer::TracerOptions,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

impl Format {
    fn from_flag(json: bool) -> Format {
        if json {
            Format::Json
        } else {
            Format::Human
        }
    }
}

pub struct Record {
    pub path: PathBuf,
    pub force: bool,
}

pub struct TraceSettings {
    pub tracer: TracerOptions,
    /// The `--comm` names as given (the tracer holds their kernel form).
    pub comm_names: Vec<String>,
    pub format: Format,
    pub duration: Option<Duration>,
    pub quiet: bool,
    /// Processes shown in the summary (0: all).
    pub top: usize,
    pub record: Option<Record>,
    /// The command to start and trace, with its arguments.
    pub command: Option<Vec<OsString>>,
    pub verbose: bool,
    /// Things to tell the user on stderr before tracing starts.
    pub notes: Vec<String>,
}

impl TraceSettings {
    pub fn from_cli(args: TraceArgs) -> Self {
        let notes = selection_notes(&args.selection, true);
        let Selection {
            processes: ProcessSelection { pids, comms },
            failed,
        } = args.selection;
        TraceSettings {
            tracer: TracerOptions {
                pids,
                comms: comms.iter().map(|c| comm_key(c.as_bytes())).collect(),
                failed_only: failed,
                ring_size: args.ring_size,
                attach: args.attach,
                follow: !args.command.is_empty(),
                kernel_logs: args.verbose,
            },
            comm_names: comms,
            format: Format::from_flag(args.output.json),
            duration: args.duration,
            quiet: args.quiet,
            top: args.output.top,
            record: args.record.map(|path| Record {
                path,
                force: args.force,
            }),
            command: (!args.command.is_empty()).then_some(args.command),
            verbose: args.verbose,
            notes,
        }
    }
}

pub struct ReportSettings {
    pub file: PathBuf,
    pub events: bool,
    pub filter: EventFilter,
    pub format: Format,
    pub top: usize,
    pub notes: Vec<String>,
}

impl ReportSettings {
    pub fn from_cli(args: ReportArgs) -> Self {
        let notes = selection_notes(&args.selection, false);
        let s = &args.selection;
        ReportSettings {
            filter: EventFilter::new(&s.processes.pids, &s.processes.comms, &args.uids, s.failed),
            file: args.file,
            events: args.events,
            format: Format::from_flag(args.output.json),
            top: args.output.top,
            notes,
        }
    }
}

/// How `--comm` and `--pid` were understood. `live`: the pids are checked
/// against the running processes.
fn selection_notes(selection: &Selection, live: bool) -> Vec<String> {
    let mut notes = Vec::new();
    for comm in &selection.processes.comms {
        if comm.len() > 15 {
            let key = comm_key(comm.as_bytes());
            notes.push(format!(
                "--comm {comm:?} matches on its first 15 bytes {:?}: the kernel keeps no more of a process name",
                String::from_utf8_lossy(&key[..15])
            ));
        }
    }
    if live {
        for pid in &selection.processes.pids {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                notes.push(format!("--pid {pid}: no such process is running now"));
            }
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    #[test]
    fn long_comms_are_cut_to_the_kernels_15_bytes_with_a_note() {
        let cli = Cli::parse_from([
            "inotify-trace",
            "-c",
            "kube-controller-manager",
            "-c",
            "kubelet",
        ]);
        let settings = TraceSettings::from_cli(cli.trace);
        assert_eq!(&settings.tracer.comms[0], b"kube-controller\0");
        assert_eq!(&settings.tracer.comms[1], b"kubelet\0\0\0\0\0\0\0\0\0");
        assert_eq!(settings.comm_names, ["kube-controller-manager", "kubelet"]);
        assert_eq!(settings.notes.len(), 1);
        assert!(
            settings.notes[0].contains("\"kube-controller\""),
            "{}",
            settings.notes[0]
        );
    }
}
