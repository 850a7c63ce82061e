//! Turning parsed flags into what each stage needs, in one place, with the
//! notes a user should see about how their flags were understood.
use std::{ffi::OsString, path::PathBuf, time::Duration};

use crate::{
    cli::{
        AgentArgs, CallSelection, CallerSelection, PlaceSelection, ReportArgs, TraceArgs, UsageArgs,
    },
    file_arg::FileArg,
    pipeline::PipelineSettings,
    recording::writer::RecordingFile,
    render::Format,
    selection::{CommName, PodPattern, Selection},
    tracer::{AttachMode, TracerOptions},
};

pub struct TraceSettings {
    /// Applied in the kernel (and again, at no cost, by the pipeline).
    pub selection: Selection,
    pub tracer: TracerOptions,
    pub format: Format,
    pub duration: Option<Duration>,
    pub quiet: bool,
    /// Processes shown in the summary (0: all).
    pub top: usize,
    pub record: Option<RecordingFile>,
    /// The command to start and trace, with its arguments.
    pub command: Option<Vec<OsString>>,
    pub verbose: bool,
    /// Where the node's files are, to name pods and containers.
    pub host_root: PathBuf,
    /// Things to tell the user on stderr before tracing starts.
    pub notes: Vec<String>,
}

impl TraceSettings {
    pub fn from_cli(args: TraceArgs) -> Self {
        let selection = call_selection(args.selection);
        let notes = selection_notes(&selection);
        TraceSettings {
            selection,
            tracer: TracerOptions {
                ring_size: args.ring_size,
                attach: args.attach,
                follow: !args.command.is_empty(),
                kernel_logs: args.verbose,
                attribution: !args.no_attribution,
                charge: !args.no_charge,
            },
            format: Format::from_flag(args.printing.json),
            duration: args.duration,
            quiet: args.quiet,
            top: args.printing.top,
            record: args.record.map(|path| RecordingFile {
                path,
                force: args.force,
            }),
            command: (!args.command.is_empty()).then_some(args.command),
            verbose: args.verbose,
            host_root: args.node.host_root,
            notes,
        }
    }

    /// What the live pipeline is built from.
    pub fn pipeline(&self) -> PipelineSettings<'_> {
        PipelineSettings {
            selection: &self.selection,
            format: self.format,
            events: !self.quiet,
            top: self.top,
            record: self.record.as_ref(),
            live: true,
            host_root: &self.host_root,
            print: true,
        }
    }
}

/// When the agent traces (`agent::window`) and where it records.
pub struct WindowSettings {
    /// A share of a cap (0.8 for `--trace-above 80`).
    pub trace_above: f64,
    pub always: bool,
    pub length: Duration,
    pub record_dir: Option<PathBuf>,
    pub max_record_bytes: u64,
}

/// How the agent's sessions trace, continuous or windowed: every call on
/// the node, counted into the metrics, each window's summary one JSON line.
pub struct AgentTraceSettings {
    /// The ring buffer: 8 MiB holds a storm's second on a busy node (the
    /// live tracer's default too).
    pub ring_size: u32,
    /// The rows of a window's JSON summary.
    pub top: usize,
    pub host_root: PathBuf,
}

impl AgentTraceSettings {
    /// The tracer of a session in `attach` mode.
    pub fn tracer(&self, attach: AttachMode) -> TracerOptions {
        TracerOptions {
            ring_size: self.ring_size,
            attach,
            follow: false,
            kernel_logs: false,
            attribution: true,
            charge: true,
        }
    }

    /// A session's pipeline: JSON, the summary alone on stdout, recorded to
    /// `record`.
    pub fn pipeline<'a>(
        &'a self,
        selection: &'a Selection,
        record: Option<&'a RecordingFile>,
    ) -> PipelineSettings<'a> {
        PipelineSettings {
            selection,
            format: Format::Json,
            events: false,
            top: self.top,
            record,
            live: true,
            host_root: &self.host_root,
            print: true,
        }
    }
}

/// The agent's, from `inotify-trace agent`'s flags.
pub struct AgentSettings {
    pub interval: Duration,
    pub listen: std::net::SocketAddr,
    pub web_config: Option<PathBuf>,
    /// Where to write the agent's state for `inotify-trace check`.
    pub state_file: Option<PathBuf>,
    /// How often the counts kept in the kernel are read against fdinfo;
    /// `None`: none are kept (`--no-kept-counts`).
    pub reconcile_every: Option<Duration>,
    pub window: WindowSettings,
    pub trace: AgentTraceSettings,
}

impl AgentSettings {
    pub fn from_cli(args: AgentArgs) -> Self {
        AgentSettings {
            interval: args.interval,
            listen: args.listen,
            web_config: args.web_config,
            state_file: args.state_file,
            reconcile_every: (!args.no_kept_counts).then_some(args.reconcile_every),
            window: WindowSettings {
                trace_above: args.trace_above / 100.0,
                always: args.always_trace,
                length: args.trace_window,
                record_dir: args.record_dir,
                max_record_bytes: args.max_record_bytes,
            },
            trace: AgentTraceSettings {
                ring_size: 8 << 20,
                top: 10,
                host_root: args.node.host_root,
            },
        }
    }
}

pub struct ReportSettings {
    pub file: FileArg,
    /// The recording drawn as a timeline: an SVG, an HTML page (`-`:
    /// stdout, instead of the text report).
    pub svg: Option<FileArg>,
    pub html: Option<FileArg>,
    /// Let --svg and --html replace existing regular files.
    pub force: bool,
    pub events: bool,
    pub selection: Selection,
    pub format: Format,
    pub top: usize,
    pub notes: Vec<String>,
}

impl ReportSettings {
    pub fn from_cli(args: ReportArgs) -> Self {
        let selection = call_selection(args.selection);
        let notes = selection_notes(&selection);
        ReportSettings {
            selection,
            file: args.file,
            svg: args.svg,
            html: args.html,
            force: args.force,
            events: args.events,
            format: Format::from_flag(args.printing.json),
            top: args.printing.top,
            notes,
        }
    }

    /// Whether a picture takes stdout (`--svg -`, `--html -`): the text
    /// report is then not printed.
    pub fn picture_to_stdout(&self) -> bool {
        [&self.svg, &self.html]
            .into_iter()
            .flatten()
            .any(FileArg::is_std)
    }

    /// What the report's pipeline is built from.
    pub fn pipeline(&self) -> PipelineSettings<'_> {
        PipelineSettings {
            selection: &self.selection,
            format: self.format,
            events: self.events,
            top: self.top,
            record: None,
            live: false,
            host_root: std::path::Path::new("/"),
            print: !self.picture_to_stdout(),
        }
    }
}

pub struct CheckSettings {
    pub limit: crate::limits::Limit,
    /// Fractions of a cap (0-1).
    pub warn: f64,
    pub problem: f64,
    pub agent_state: Option<PathBuf>,
    pub since: Duration,
    pub nagios: bool,
}

impl CheckSettings {
    pub fn from_cli(args: crate::cli::CheckArgs) -> Result<Self, String> {
        if args.warn > args.problem {
            return Err(format!(
                "--warn {} is above --problem {}: a warning comes first",
                args.warn, args.problem
            ));
        }
        Ok(CheckSettings {
            limit: match args.limit {
                crate::cli::CheckedLimit::Watches => crate::limits::Limit::Watches,
                crate::cli::CheckedLimit::Instances => crate::limits::Limit::Instances,
            },
            warn: args.warn / 100.0,
            problem: args.problem / 100.0,
            agent_state: args.agent_state,
            since: args.since,
            nagios: args.nagios,
        })
    }
}

pub struct UsageSettings {
    pub selection: Selection,
    pub host_root: PathBuf,
    pub paths: bool,
    pub format: Format,
    pub top: usize,
    pub notes: Vec<String>,
}

impl UsageSettings {
    pub fn from_cli(args: UsageArgs) -> Self {
        let selection = place_selection(args.places, process_selection(args.callers));
        let notes = selection_notes(&selection);
        UsageSettings {
            selection,
            host_root: args.node.host_root,
            paths: args.paths,
            format: Format::from_flag(args.json),
            top: args.top,
            notes,
        }
    }
}

fn process_selection(callers: CallerSelection) -> Selection {
    Selection {
        pids: callers.pids,
        comms: callers.comms.into_iter().map(CommName::new).collect(),
        uids: callers.uids,
        ..Selection::default()
    }
}

fn call_selection(calls: CallSelection) -> Selection {
    Selection {
        failed_only: calls.failed,
        ..place_selection(calls.places, process_selection(calls.callers))
    }
}

/// A `--cgroup` as the tool names cgroups: from the cgroup2 mount's root,
/// `/`-rooted. A path under the mount (`/sys/fs/cgroup/kubepods.slice`) is
/// taken from the mount this machine has.
fn cgroup_path(given: &str) -> String {
    let mount = crate::pods::cgroupfs::CgroupFs::find(std::path::Path::new("/"))
        .map(|fs| fs.mount_point().to_owned());
    let relative = mount
        .as_deref()
        .and_then(|m| std::path::Path::new(given).strip_prefix(m).ok())
        .map(|rest| rest.to_string_lossy().into_owned())
        .unwrap_or_else(|| given.to_owned());
    let trimmed = relative.trim_matches('/');
    format!("/{trimmed}")
}

/// `selection` narrowed to the pods, namespaces and containers asked for.
fn place_selection(places: PlaceSelection, selection: Selection) -> Selection {
    Selection {
        pods: places.pods.iter().map(|p| PodPattern::parse(p)).collect(),
        namespaces: places.namespaces,
        containers: places.containers,
        cgroups: places.cgroups.iter().map(|c| cgroup_path(c)).collect(),
        ..selection
    }
}

/// How `--comm` was understood.
fn selection_notes(selection: &Selection) -> Vec<String> {
    let mut notes = Vec::new();
    for comm in selection.comms.iter().filter(|c| c.is_cut()) {
        notes.push(format!(
            "--comm {:?} matches on its first 15 bytes {:?}: the kernel keeps no more of a process name",
            comm.name,
            String::from_utf8_lossy(&comm.key[..15])
        ));
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
        let comms = &settings.selection.comms;
        assert_eq!(&comms[0].key, b"kube-controller\0");
        assert_eq!(&comms[1].key, b"kubelet\0\0\0\0\0\0\0\0\0");
        assert_eq!(comms[0].name, "kube-controller-manager");
        assert_eq!(comms[1].name, "kubelet");
        assert_eq!(settings.notes.len(), 1);
        assert!(
            settings.notes[0].contains("\"kube-controller\""),
            "{}",
            settings.notes[0]
        );
    }
}
