//! Command-line flags, as parsed; `settings` turns them into validated
//! settings. [`parse`] adds the hints clap cannot give.
use std::{ffi::OsString, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::{file_arg::FileArg, tracer::AttachMode};

/// Trace inotify calls live: who adds watches, on which paths, and which calls
/// fail (ENOSPC when fs.inotify.max_user_watches is used up, EMFILE when
/// fs.inotify.max_user_instances is). A summary follows at the end.
#[derive(Debug, Parser)]
#[command(
    name = "inotify-trace",
    version,
    about,
    max_term_width = 100,
    args_conflicts_with_subcommands = true,
    mut_arg("pids", |a| a.help("Only this process's calls (repeatable; any of them passes); a pid that is not running is refused (to trace a program from its start, run it after --)")),
    mut_arg("uids", |a| a.help("Only the calls charged to this uid, a number or a user name (repeatable); applied after the kernel, so other uids' calls still cross the ring buffer")),
    mut_arg("cgroups", |a| a.help("Only calls made in this cgroup or below it: a path from the cgroup2 mount's root (`/kubepods.slice`) or under the mount (repeatable); filtered in the kernel, on the cgroup and the descendants it has at the start")),
)]
pub struct Cli {
    #[command(subcommand)]
    pub action: Option<Action>,

    #[command(flatten)]
    pub trace: TraceArgs,
}

/// Parses the command line; an error says what clap says, plus a hint where
/// the mistake is a common one: a command to trace without `--` before it,
/// or a misspelt subcommand; and, in clap's stead, a negative number given
/// to a flag, or a misspelt flag (clap would tip to pass them after `--`,
/// which here means a program to run).
pub fn parse() -> Cli {
    use clap::{error::ErrorKind, CommandFactory as _};
    let args: Vec<OsString> = std::env::args_os().collect();
    let err = match Cli::try_parse_from(&args) {
        Ok(cli) => return cli,
        Err(err) => err,
    };
    if let Some(refused) = unknown_argument_error(&err, &args) {
        let _ = refused.print();
        std::process::exit(refused.exit_code());
    }
    let hint = match err.kind() {
        ErrorKind::UnknownArgument => args
            .get(1)
            .and_then(|first| first.to_str())
            .filter(|first| !first.starts_with('-'))
            .and_then(|first| hint_for(first, &Cli::command())),
        _ => None,
    };
    let code = err.exit_code();
    let _ = err.print();
    if let Some(hint) = hint {
        eprintln!("\n  tip: {hint}");
    }
    std::process::exit(code)
}

/// clap's "unexpected argument" error said better, for the two cases its tip
/// gets wrong: a negative number (`--top -1`: it is the value, not a flag)
/// and a misspelt flag (`--pdi`: the flag meant); else None.
fn unknown_argument_error(err: &clap::Error, args: &[OsString]) -> Option<clap::Error> {
    use clap::{
        error::{ContextKind, ContextValue, ErrorKind},
        CommandFactory as _,
    };
    if err.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(bad)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    let root = Cli::command();
    // The subcommand whose flags apply, if one was named first.
    let command = args
        .get(1)
        .and_then(|a| a.to_str())
        .and_then(|name| root.find_subcommand(name).cloned())
        .unwrap_or_else(|| root.clone());
    // clap names `-5` for `-5s` and `--ring-size` for `--ring-size=3`.
    let at = args
        .iter()
        .position(|a| a.to_str().is_some_and(|a| a.starts_with(bad.as_str())))?;
    let help = match command.get_name() {
        "inotify-trace" => "inotify-trace --help".to_owned(),
        sub => format!("inotify-trace {sub} --help"),
    };
    let why = if bad.starts_with('-') && bad[1..].starts_with(|c: char| c.is_ascii_digit()) {
        let flag = args.get(at.checked_sub(1)?)?.to_str()?;
        let given = args[at].to_string_lossy();
        format!("{flag} takes no negative value (given {given}): give 0 or more")
    } else if bad.starts_with("--") {
        let given = bad.trim_start_matches('-');
        let closest = command
            .get_arguments()
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long())
            .map(|long| (strsim::damerau_levenshtein(given, long), long))
            .filter(|(distance, _)| *distance <= 2)
            .min();
        match closest {
            Some((_, long)) => format!("unexpected argument '{bad}': did you mean '--{long}'?"),
            None => format!("unexpected argument '{bad}': no such flag ({help} lists them)"),
        }
    } else {
        return None;
    };
    let bin_name = match command.get_name() {
        "inotify-trace" => "inotify-trace".to_owned(),
        sub => format!("inotify-trace {sub}"),
    };
    let mut command = command.bin_name(bin_name);
    command.build();
    let message = format!(
        "{why}\n\n{}\n\nFor more information, try '--help'.\n",
        command.render_usage()
    );
    Some(clap::Error::raw(ErrorKind::UnknownArgument, message).with_cmd(&command))
}

/// A hint for a first word that is no subcommand: one it is close to, or,
/// when it names a program, how to trace it.
fn hint_for(first: &str, command: &clap::Command) -> Option<String> {
    // A subcommand itself is spelt right: the mistake is elsewhere.
    if command.find_subcommand(first).is_some() {
        return None;
    }
    let closest = command
        .get_subcommands()
        .map(|s| s.get_name())
        .filter(|name| *name != "help")
        .map(|name| (strsim::levenshtein(first, name), name))
        .min()
        .filter(|(distance, _)| *distance <= 2);
    if let Some((_, name)) = closest {
        return Some(format!("did you mean `inotify-trace {name}`?"));
    }
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(first).is_file()));
    (on_path || first.contains('/')).then(|| {
        format!("to trace a command, put -- before it: inotify-trace [OPTIONS] -- {first} ...")
    })
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Report on a recording made with --record: the summary, or with --events the
    /// events themselves, as a live session would have printed them.
    #[command(
        mut_arg("pids", |a| a.help("Only this process's calls in the recording (repeatable; any of them passes)")),
        mut_arg("uids", |a| a.help("Only the calls charged to this uid, a number or a user name (repeatable)")),
        mut_arg("cgroups", |a| a.help("Only calls made in this cgroup or below it, as each call's recorded cgroup says: a path from the cgroup2 mount's root (`/kubepods.slice`) (repeatable)")),
    )]
    Report(ReportArgs),
    /// Who holds inotify instances and watches now, per process and per uid, against
    /// the limits (read from /proc; no eBPF needed).
    #[command(
        mut_arg("pids", |a| a.help("Only the instances this process holds (repeatable; any of them passes); the per-uid totals still count every instance")),
        mut_arg("uids", |a| a.help("Only the instances charged to this uid, a number or a user name (repeatable)")),
        mut_arg("cgroups", |a| a.help("Only holders in this cgroup or below it now: a path from the cgroup2 mount's root (`/kubepods.slice`) or under the mount (repeatable)")),
    )]
    Usage(UsageArgs),
    /// Serve the usage per uid and per pod to Prometheus, from a /proc snapshot every
    /// --interval, with calls and failures counted by tracing (all the time where the
    /// kernel allows fexit, else in windows near a cap): /metrics, /healthz (ready:
    /// tracing as asked), /livez (snapshots coming); docs/metrics.md.
    Agent(AgentArgs),
    /// One line and an exit status on how close every uid's watch (or instance)
    /// budget is to its cap, and whether a call failed recently: a check for
    /// node-problem-detector (exit 0 ok, 1 problem, 2 unknown) or Nagios
    /// (--nagios), e.g. `inotify-trace check watches`.
    Check(CheckArgs),
    /// Print the completion script for SHELL to stdout, e.g.
    /// `inotify-trace completions bash > /etc/bash_completion.d/inotify-trace`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages, one per subcommand, into DIR (made if missing),
    /// e.g. `inotify-trace man-pages /usr/local/share/man/man1`.
    ManPages {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Copy this binary to DIR/inotify-trace (for an init container: the
    /// image has no cp; deploy/node-problem-detector/).
    #[command(hide = true)]
    InstallBinary {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// How often to take a snapshot (e.g. 15s, 1m).
    #[arg(long, value_name = "D", default_value = "15s", value_parser = parse_interval)]
    pub interval: Duration,

    /// Where to serve /metrics and /healthz: loopback only unless asked
    /// (`:9814` or 0.0.0.0:9814 for a Prometheus elsewhere; a host name is
    /// looked up).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9814", value_parser = parse_listen)]
    pub listen: std::net::SocketAddr,

    /// TLS and basic auth for the endpoint, in exporter-toolkit's web
    /// config format (node_exporter's --web.config.file; docs/metrics.md).
    #[arg(long, value_name = "FILE")]
    pub web_config: Option<PathBuf>,

    /// Write, after every snapshot, which budgets traced calls ran out of
    /// and when, for `inotify-trace check --agent-state FILE` (JSON; a new
    /// file renamed over the old).
    #[arg(long, value_name = "FILE")]
    pub state_file: Option<PathBuf>,

    #[command(flatten)]
    pub node: NodeRoot,

    /// Trace for a window when a uid uses this share of a cap or more, in
    /// percent (of fs.inotify.max_user_*, or a user namespace's caps).
    #[arg(long, value_name = "PCT", default_value_t = 80.0, value_parser = parse_percent)]
    pub trace_above: f64,

    /// How long a trace window lasts (e.g. 60s).
    #[arg(long, value_name = "D", default_value = "60s", value_parser = parse_interval)]
    pub trace_window: Duration,

    /// Trace for a window after every snapshot, whatever the usage.
    #[arg(long)]
    pub always_trace: bool,

    /// Record each window to a file in DIR (for `inotify-trace report`).
    #[arg(long, value_name = "DIR")]
    pub record_dir: Option<PathBuf>,

    /// Remove the oldest recordings in --record-dir past this total (e.g. 1G).
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_bytes)]
    pub max_record_bytes: u64,

    /// Where the kernel allows fexit, each instance's watches are counted as
    /// the kernel makes and drops them, and a snapshot reads no watch; this
    /// often every instance's fdinfo is read to check those counts (the
    /// drift metric) and set them anew (e.g. 10m).
    #[arg(long, value_name = "D", default_value = "10m", value_parser = parse_interval)]
    pub reconcile_every: Duration,

    /// Keep no counts in the kernel: every snapshot reads every watch's
    /// fdinfo (its cost grows with the node's watches).
    #[arg(long)]
    pub no_kept_counts: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Which budget: watches (ENOSPC) or instances (EMFILE).
    #[arg(value_enum, value_name = "LIMIT")]
    pub limit: CheckedLimit,

    /// A budget at this share of its cap or more is a warning, in percent.
    #[arg(long, value_name = "PCT", default_value_t = 80.0, value_parser = parse_percent)]
    pub warn: f64,

    /// A budget at this share of its cap or more is a problem, in percent.
    #[arg(long, value_name = "PCT", default_value_t = 95.0, value_parser = parse_percent)]
    pub problem: f64,

    /// Read the budgets and the recent failures from the agent's
    /// --state-file instead of scanning /proc (no privileges needed; the
    /// only way to know of failures, which the agent traces).
    #[arg(long, value_name = "FILE")]
    pub agent_state: Option<PathBuf>,

    /// A failure this recent is a problem (e.g. 10m); with --agent-state.
    #[arg(long, value_name = "D", default_value = "10m", value_parser = parse_interval)]
    pub since: Duration,

    /// Nagios's exit statuses: 0 ok, 1 warning, 2 critical, 3 unknown.
    #[arg(long)]
    pub nagios: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum CheckedLimit {
    Watches,
    Instances,
}

/// `HOST:PORT`, `[V6]:PORT`, or the exporters' `:PORT` (every address).
fn parse_listen(text: &str) -> Result<std::net::SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_owned(),
    };
    let addrs = full
        .to_socket_addrs()
        .map_err(|err| format!("{text:?}: give HOST:PORT, [IPV6]:PORT or :PORT ({err})"))?;
    let addrs: Vec<_> = addrs.collect();
    // localhost may name ::1 first; the IPv4 loopback is what people mean.
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{text:?}: names no address"))
}

fn parse_percent(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(pct) if (0.0..=100.0).contains(&pct) => Ok(pct),
        _ => Err(format!("{text:?}: give a percentage from 0 to 100")),
    }
}

/// A size in bytes: `4096`, `64K`, `8M`, `1G` (binary multiples, any case;
/// `KiB`/`MiB`/`GiB` and `KB`... too). The one size parser: the ring's size
/// and the recordings' budget both take it.
fn parse_bytes(text: &str) -> Result<u64, String> {
    let upper = text.trim().to_ascii_uppercase();
    let digits_end = upper
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(upper.len());
    let (number, unit) = upper.split_at(digits_end);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 8M or 1G)"))?;
    let shift = match unit.trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return Err(format!("{text:?}: unknown unit (use K, M or G)")),
    };
    number
        .checked_shl(shift)
        .filter(|b| *b >> shift == number)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A snapshot interval: at least a second (a /proc scan costs), at most a day.
fn parse_interval(text: &str) -> Result<Duration, String> {
    let interval = humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e}"))?;
    if interval < Duration::from_secs(1) || interval > Duration::from_secs(86_400) {
        return Err(format!("{text:?}: give an interval from 1s to 24h"));
    }
    Ok(interval)
}

/// Whose calls to show (live and in `report`), or whose instances (`usage`):
/// one definition, so the flags mean the same everywhere.
#[derive(Debug, Args)]
pub struct CallerSelection {
    /// Only this process (repeatable; any of them passes). What it selects
    /// is each command's own (`mut_arg` where the command is defined).
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,

    /// Only processes with this name (repeatable). The kernel keeps 15 bytes of a
    /// name, so a longer NAME matches on its first 15 bytes.
    #[arg(short = 'c', long = "comm", value_name = "NAME", value_parser = non_empty("a process name"))]
    pub comms: Vec<String>,

    /// Only this uid, a number or a user name (repeatable).
    #[arg(long = "uid", value_name = "UID", value_parser = parse_uid)]
    pub uids: Vec<u32>,
}

/// A uid: a number, or a user name of this machine's user database.
fn parse_uid(text: &str) -> Result<u32, String> {
    if let Ok(uid) = text.parse::<u32>() {
        return Ok(uid);
    }
    match nix::unistd::User::from_name(text) {
        Ok(Some(user)) => Ok(user.uid.as_raw()),
        Ok(None) => Err(format!(
            "{text:?} is neither a uid nor a user of this machine (give the number)"
        )),
        Err(err) => Err(format!("looking up user {text:?}: {err}")),
    }
}

/// Which pods, namespaces and containers to show: applied after each
/// caller's cgroup is resolved (pods start during a session), live, in
/// `report` and in `usage`.
#[derive(Debug, Args)]
pub struct PlaceSelection {
    /// Only processes in this pod: NAME in any namespace, or NAMESPACE/NAME
    /// (repeatable).
    #[arg(long = "pod", value_name = "[NS/]NAME", value_parser = non_empty("a name"))]
    pub pods: Vec<String>,

    /// Only processes in pods of this namespace (repeatable).
    #[arg(long = "namespace", value_name = "NS", value_parser = non_empty("a name"))]
    pub namespaces: Vec<String>,

    /// Only processes in a container of this name (repeatable).
    #[arg(long = "container", value_name = "NAME", value_parser = non_empty("a name"))]
    pub containers: Vec<String>,

    /// Only processes in this cgroup or below it: a path from the cgroup2
    /// mount's root (`/kubepods.slice`) or under the mount (repeatable).
    #[arg(long = "cgroup", value_name = "PATH", value_parser = non_empty("a name"))]
    pub cgroups: Vec<String>,
}

/// Which calls to show: in the kernel while tracing, while reading in `report`.
#[derive(Debug, Args)]
pub struct CallSelection {
    #[command(flatten)]
    pub callers: CallerSelection,

    #[command(flatten)]
    pub places: PlaceSelection,

    /// Only calls that failed.
    #[arg(long)]
    pub failed: bool,
}

/// How to print a stream of calls and its summary.
#[derive(Debug, Args)]
pub struct Printing {
    /// Print JSON Lines instead of text (docs/json.md): a line per event, lost
    /// count and diagnosis, and one for the summary.
    #[arg(long)]
    pub json: bool,

    /// List only the first N processes of the summary, by watches held, then new watches (0: all).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub top: usize,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    #[command(flatten)]
    pub selection: CallSelection,

    #[command(flatten)]
    pub printing: Printing,

    /// Stop after this long (e.g. 30s, 5m); SIGINT and SIGTERM also stop cleanly.
    #[arg(short = 'd', long, value_name = "D", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// No per-event lines: only the summary at the end (and, on a terminal, a live
    /// status line on stderr).
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Also write every event to FILE (mode 0600), for `inotify-trace report FILE`.
    /// (`-` writes it to stdout, for a pipe: the events and the summary
    /// then go to stderr.)
    #[arg(short = 'w', long = "record", value_name = "FILE", value_parser = file_arg())]
    pub record: Option<FileArg>,

    /// Replace the --record FILE if it exists and is a regular file (a new file is
    /// renamed over it; a link, FIFO or device is always refused).
    #[arg(long, requires = "record")]
    pub force: bool,

    /// Size of the kernel's ring buffer, a power of two (e.g. 4M, 64M). It must hold a
    /// burst's worth of events between two reads (~100-200 bytes each).
    #[arg(long, value_name = "SIZE", default_value = "8M", value_parser = parse_size)]
    pub ring_size: u32,

    /// How to hook the syscalls: `fexit` costs no other syscall anything (BPF
    /// trampolines; not where the kernel forbids them), `exit` alone is the cheapest
    /// tracepoint mode (kernel 5.15+), `enter-exit` works on older kernels; `auto`
    /// picks the first of these that loads, `tracepoint` the first tracepoint mode
    /// (`-v` says which and why).
    #[arg(
        long,
        value_name = "MODE",
        default_value = "auto",
        env = "INOTIFY_TRACE_ATTACH"
    )]
    pub attach: AttachMode,

    /// Say more about what the tracer does (attach mode, kernel-side notes).
    #[arg(short = 'v', long)]
    pub verbose: bool,

    #[command(flatten)]
    pub node: NodeRoot,

    /// For the benchmark only: records without the caller's euid, user
    /// namespace and cgroup id, to measure what reading them costs.
    #[arg(long, hide = true)]
    pub no_attribution: bool,

    /// For the benchmark only: records without the inotify charge, to
    /// measure what reading it costs.
    #[arg(long, hide = true)]
    pub no_charge: bool,

    /// Start COMMAND and trace it and every process it forks; the session ends when
    /// COMMAND exits, with its exit status.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A recording made with `inotify-trace --record FILE` (`-`: read it
    /// from stdin).
    #[arg(value_parser = file_arg())]
    pub file: FileArg,

    /// Print the events themselves (then the summary), not only the summary.
    #[arg(long)]
    pub events: bool,

    /// Also draw the recording as a timeline into FILE, an SVG picture: the
    /// watches each charged uid held over time against its cap, the top
    /// holders, every failed call and diagnosis (`-`: to stdout, instead of
    /// the text report).
    #[arg(long, value_name = "FILE", value_parser = file_arg())]
    pub svg: Option<FileArg>,

    /// Also write FILE, one HTML page with the timeline and the summary
    /// beside it (`-`: to stdout, instead of the text report).
    #[arg(long, value_name = "FILE", value_parser = file_arg())]
    pub html: Option<FileArg>,

    /// Let --svg and --html replace an existing regular FILE.
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub selection: CallSelection,

    #[command(flatten)]
    pub printing: Printing,
}

#[derive(Debug, Args)]
pub struct UsageArgs {
    #[command(flatten)]
    pub callers: CallerSelection,

    #[command(flatten)]
    pub places: PlaceSelection,

    #[command(flatten)]
    pub node: NodeRoot,

    /// Show what each watch points at (resolved from its file handle).
    #[arg(long)]
    pub paths: bool,

    /// Print one JSON object instead of text (docs/json.md).
    #[arg(long)]
    pub json: bool,

    /// List only the first N processes and instances, by watches (0: all).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub top: usize,
}

/// A FILE, any bytes, `-` the standard stream.
fn file_arg() -> impl clap::builder::TypedValueParser<Value = FileArg> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PathBufValueParser::new().map(FileArg::from)
}

/// Where the node's files are: one flag for the live tracer, `usage` and the
/// agent.
#[derive(Debug, Args)]
pub struct NodeRoot {
    /// Where the node's filesystem is (its /var/log/pods, /var/log/containers),
    /// when running in a container with the host mounted there. Processes are
    /// still read from this machine's /proc (run with the host's pids).
    #[arg(long, value_name = "DIR", default_value = "/", value_parser = parse_host_root)]
    pub host_root: PathBuf,
}

/// The node's root: a directory that exists (a typo would silently name no
/// pod).
fn parse_host_root(text: &str) -> Result<PathBuf, String> {
    let dir = PathBuf::from(text);
    match std::fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() => Ok(dir),
        Ok(_) => Err(format!("{text:?} is not a directory")),
        Err(err) => Err(format!("{text:?}: {err}")),
    }
}

/// A name to select by: never empty (nothing has an empty name, so it would
/// silently match nothing). `what` names it in the error.
fn non_empty(what: &'static str) -> impl Fn(&str) -> Result<String, String> + Clone {
    move |text| match text {
        "" => Err(format!("{what} cannot be empty")),
        name => Ok(name.to_owned()),
    }
}

/// Parses `30s`, `5m`, `1h 30m`; refuses a duration whose end cannot be
/// represented as a point in time (it would overflow the clock).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e}"))?;
    if duration.is_zero() {
        return Err(format!(
            "{text:?} would end the session before it starts: give more than 0s"
        ));
    }
    std::time::Instant::now()
        .checked_add(duration)
        .filter(|_| duration <= MAX_DURATION)
        .map(|_| duration)
        .ok_or_else(|| format!("{text:?} is too long: at most 100 years"))
}

/// Longer sessions are mistakes; the clocks could take far more.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The ring buffer's size: a size (`parse_bytes`) that the kernel takes for
/// a ring, a power of two from a page to 1 GiB.
fn parse_size(text: &str) -> Result<u32, String> {
    let bytes = parse_bytes(text)?;
    let page = 4096;
    if !bytes.is_power_of_two() || bytes < page || bytes > 1 << 30 {
        return Err(format!(
            "{text:?}: the ring size must be a power of two from 4K to 1G (e.g. 8M)"
        ));
    }
    Ok(bytes as u32)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// Every `--flag` a help text names is a flag of this command line,
    /// and every `inotify-trace WORD` it names a subcommand: a renamed or
    /// removed flag cannot live on in the help, the man pages or the
    /// completions, which are all made from these texts.
    #[test]
    fn help_texts_name_only_flags_and_subcommands_that_exist() {
        let cli = Cli::command();
        let mut flags = std::collections::BTreeSet::new();
        let mut subcommands = std::collections::BTreeSet::new();
        let mut texts = Vec::new();
        let mut pending = vec![&cli];
        while let Some(command) = pending.pop() {
            texts.extend(command.get_about().map(|t| t.to_string()));
            texts.extend(command.get_long_about().map(|t| t.to_string()));
            for arg in command.get_arguments() {
                flags.extend(arg.get_long().map(str::to_owned));
                texts.extend(arg.get_help().map(|t| t.to_string()));
                texts.extend(arg.get_long_help().map(|t| t.to_string()));
            }
            for sub in command.get_subcommands() {
                subcommands.insert(sub.get_name().to_owned());
                pending.push(sub);
            }
        }
        assert!(flags.len() > 30 && texts.len() > 50, "{flags:?}");
        let word = |c: char| c.is_ascii_alphanumeric() || c == '-';
        for text in &texts {
            for (at, _) in text.match_indices("--") {
                let name: String = text[at + 2..]
                    .chars()
                    .take_while(|c| word(*c) || *c == '.')
                    .collect();
                let starts_a_word = text[..at].chars().next_back().is_none_or(|c| !word(c));
                // Another program's flag (node_exporter's --web.config.file)
                // is said as such.
                let ours = !name.contains('.');
                if starts_a_word && ours && !name.is_empty() {
                    assert!(
                        flags.contains(&name),
                        "a help text names --{name}, which no command has: {text:?}"
                    );
                }
            }
            for (at, _) in text.match_indices("inotify-trace ") {
                let next: String = text[at + 14..].chars().take_while(|c| word(*c)).collect();
                let is_subcommand_like =
                    next.chars().next().is_some_and(|c| c.is_ascii_lowercase());
                if is_subcommand_like {
                    assert!(
                        subcommands.contains(&next),
                        "a help text names `inotify-trace {next}`, which is no subcommand: {text:?}"
                    );
                }
            }
        }
    }

    /// What a help text shows, the parser takes: every `e.g.` value of an
    /// option is a value that option accepts, and every command quoted in
    /// backticks (`inotify-trace ...`, up to a shell redirection) parses
    /// (or, a mention, lacks only what the command requires).
    /// The claims about what happens (a pid not running refused, `-` for
    /// stdout, a FIFO refused, 15-byte names) are end-to-end tests
    /// (hardening.rs, recording.rs, live.rs).
    #[test]
    fn the_examples_in_help_texts_are_accepted_as_shown() {
        let cli = Cli::command();
        let mut pending = vec![(vec!["inotify-trace".to_owned()], &cli)];
        let mut values_tried = 0;
        let mut commands_tried = 0;
        while let Some((path, command)) = pending.pop() {
            let mut texts: Vec<String> = Vec::new();
            texts.extend(command.get_about().map(|t| t.to_string()));
            texts.extend(command.get_long_about().map(|t| t.to_string()));
            for arg in command.get_arguments() {
                let help: String = [arg.get_help(), arg.get_long_help()]
                    .into_iter()
                    .flatten()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(" ");
                texts.push(help.clone());
                let (Some(long), Some(at)) = (arg.get_long(), help.find("e.g. ")) else {
                    continue;
                };
                let examples = help[at + 5..].split([')', ';']).next().unwrap_or("");
                for example in examples.split(", ").flat_map(|e| e.split(" or ")) {
                    let value = example.trim().trim_matches('`');
                    let line: Vec<String> =
                        [path.clone(), vec![format!("--{long}"), value.to_owned()]].concat();
                    // Alone, the option may lack the command's required
                    // arguments; its value must not be what is wrong.
                    let refused = Cli::try_parse_from(&line)
                        .err()
                        .filter(|e| e.kind() != clap::error::ErrorKind::MissingRequiredArgument);
                    assert!(
                        refused.is_none(),
                        "{line:?}, an example in --{long}'s help, is refused: {}",
                        refused.unwrap()
                    );
                    values_tried += 1;
                }
            }
            for text in &texts {
                for quoted in text.split('`').skip(1).step_by(2) {
                    let Some(shown) = quoted.strip_prefix("inotify-trace ") else {
                        continue;
                    };
                    let words: Vec<&str> = std::iter::once("inotify-trace")
                        .chain(
                            shown
                                .split_whitespace()
                                .take_while(|w| !w.starts_with(['>', '|'])),
                        )
                        .collect();
                    // A mention (`inotify-trace report`) may leave out
                    // what the command requires; nothing shown is wrong.
                    let parsed = Cli::try_parse_from(&words)
                        .err()
                        .filter(|e| e.kind() != clap::error::ErrorKind::MissingRequiredArgument);
                    assert!(
                        parsed.is_none(),
                        "`{quoted}`, shown in a help text, does not parse: {}",
                        parsed.unwrap()
                    );
                    commands_tried += 1;
                }
            }
            for sub in command.get_subcommands() {
                let path = [path.clone(), vec![sub.get_name().to_owned()]].concat();
                pending.push((path, sub));
            }
        }
        assert!(
            values_tried >= 8 && commands_tried >= 4,
            "{values_tried} values, {commands_tried} commands: the walk found too few"
        );
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn tracing_is_the_default_and_report_a_subcommand() {
        let cli = Cli::parse_from([
            "inotify-trace",
            "-q",
            "--comm",
            "kubelet",
            "--",
            "sleep",
            "1",
        ]);
        assert!(cli.action.is_none());
        assert_eq!(cli.trace.command, ["sleep", "1"]);
        let cli = Cli::parse_from(["inotify-trace", "report", "x.rec", "--events", "--uid", "0"]);
        let Some(Action::Report(report)) = cli.action else {
            panic!("{cli:?}")
        };
        assert_eq!(
            report.file,
            crate::file_arg::FileArg::Path(PathBuf::from("x.rec"))
        );
        assert!(report.events);
        assert_eq!(report.selection.callers.uids, [0]);
        // One --uid everywhere: live too, by number or by user name.
        let cli = Cli::parse_from(["inotify-trace", "--uid", "root", "--uid", "7"]);
        assert_eq!(cli.trace.selection.callers.uids, [0, 7]);
        let cli = Cli::parse_from(["inotify-trace", "usage", "--uid", "root"]);
        let Some(Action::Usage(usage)) = cli.action else {
            panic!("{cli:?}")
        };
        assert_eq!(usage.callers.uids, [0]);
        let err = Cli::try_parse_from(["inotify-trace", "--uid", "no-such-user-x"]).unwrap_err();
        assert!(
            err.to_string().contains("neither a uid nor a user"),
            "{err}"
        );
        assert!(
            Cli::try_parse_from(["inotify-trace", "--force"]).is_err(),
            "--force needs --record"
        );
    }

    #[test]
    fn durations_and_names_that_cannot_work_are_refused_when_parsed() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("0s").unwrap_err().contains("more than 0s"));
        assert!(parse_duration("18446744073709551615s")
            .unwrap_err()
            .contains("too long"));
        assert!(parse_duration("101y").unwrap_err().contains("too long"));
        assert!(parse_duration("soon").is_err());
        let empty = Cli::try_parse_from(["inotify-trace", "--comm", ""]).unwrap_err();
        assert!(
            empty.to_string().contains("a process name cannot be empty"),
            "{empty}"
        );
        assert!(Cli::try_parse_from(["inotify-trace", "usage", "-c", ""]).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8M"), Ok(8 << 20));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("3M").unwrap_err().contains("power of two"));
        assert!(parse_size("2G").unwrap_err().contains("power of two"));
        assert!(parse_size("8X").unwrap_err().contains("unknown unit"));
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("512m"), Ok(512 << 20));
        assert_eq!(parse_bytes("3M"), Ok(3 << 20));
        assert!(parse_bytes("-1").is_err());
    }
}
