//! What packagers install beside the binary, made from the command line's
//! own definition so they cannot drift from it: shell completions
//! (clap_complete) and man pages (clap_mangen); and the binary itself, for
//! an init container of an image that has no `cp` (node-problem-detector's
//! plugin, deploy/node-problem-detector/).
use std::{io::Write as _, path::Path, process::ExitCode};

use anyhow::{bail, Context as _};
use clap::CommandFactory as _;

use crate::cli::Cli;

/// The completion script for `shell`, on stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(
        shell,
        &mut visible(&Cli::command()),
        "inotify-trace",
        &mut script,
    );
    if shell == clap_complete::Shell::Bash {
        script = bash_with_hyphen_fixed(&script);
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// One man page per subcommand (`inotify-trace.1`, `inotify-trace-report.1`,
/// ...) in `dir`, made if missing: the pages replace files of those names
/// there, and nothing else is written.
pub fn man_pages(dir: &Path) -> anyhow::Result<ExitCode> {
    directory(dir)?;
    let mut root = visible(&Cli::command()).disable_help_subcommand(true);
    root.build();
    let commands = std::iter::once(root.clone()).chain(root.get_subcommands().cloned());
    for command in commands {
        let page = dir.join(format!(
            "{}.1",
            command.get_display_name().unwrap_or(command.get_name())
        ));
        let mut text = Vec::new();
        man_page(&command, &mut text)
            .and_then(|()| std::fs::write(&page, text))
            .with_context(|| format!("writing {}", page.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A page as clap_mangen writes it, with the sections it has no source
/// for: EXAMPLES, EXIT STATUS and SEE ALSO (`manual_of`).
fn man_page(command: &clap::Command, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(command.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    if command.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(out)?;
    }
    if command.has_subcommands() {
        man.render_subcommands_section(out)?;
    }
    let manual = manual_of(command.get_name());
    let mut roff = roff::Roff::new();
    roff.control("SH", ["EXAMPLES"]);
    for (line, what) in manual.examples {
        roff.control("TP", [] as [&str; 0]);
        roff.text([roff::bold(*line)]);
        roff.text([roff::roman(*what)]);
    }
    roff.control("SH", ["EXIT STATUS"]);
    for (status, what) in manual.exit_statuses {
        roff.control("TP", [] as [&str; 0]);
        roff.text([roff::bold(*status)]);
        roff.text([roff::roman(*what)]);
    }
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roff::roman(SEE_ALSO)]);
    roff.to_writer(out)?;
    match command.get_version() {
        Some(_) => man.render_version_section(out),
        None => Ok(()),
    }
}

/// Where the rest is said: the documents ship beside the man pages.
const SEE_ALSO: &str = "The README and docs/ (json.md, recording.md, pods.md, metrics.md, \
kubernetes.md, timeline.md, culprits.md, internals.md, performance.md): in the source \
tree, and in doc/ beside man/ in a release made by cargo xtask dist.";

/// What a page says that the command line's definition does not.
struct Manual {
    examples: &'static [(&'static str, &'static str)],
    exit_statuses: &'static [(&'static str, &'static str)],
}

/// Every command's errors are one line on stderr; a command line clap
/// refuses exits 2.
const ERROR: (&str, &str) = ("1", "an error, said in one line on stderr with what to do");
const USAGE: (&str, &str) = (
    "2",
    "the command line was refused (an unknown flag, a bad value)",
);

fn manual_of(command: &str) -> Manual {
    match command {
        "report" => Manual {
            examples: &[
                ("inotify-trace report kubelet.rec", "the summary of a recording, as the live session printed it"),
                ("inotify-trace report kubelet.rec --events --failed", "the failed calls themselves"),
                ("inotify-trace report kubelet.rec --html kubelet.html", "the timeline beside the summary, one page"),
            ],
            exit_statuses: &[
                ("0", "the report was printed"),
                ("1", "no event matches the filters (said on stderr, as grep does), or an error: a corrupt or foreign file, one that cannot be read"),
                USAGE,
            ],
        },
        "usage" => Manual {
            examples: &[
                ("inotify-trace usage", "every holder of inotify instances, per process, per uid against its caps, per pod"),
                ("inotify-trace usage --uid 1000 --paths", "what uid 1000's watches point at"),
                ("inotify-trace usage --json", "the same as one JSON object"),
            ],
            exit_statuses: &[
                ("0", "the report was printed"),
                ("1", "no holder matches the filters (the empty report is printed all the same), or an error"),
                USAGE,
            ],
        },
        "agent" => Manual {
            examples: &[
                ("inotify-trace agent --listen :9814", "metrics for a Prometheus elsewhere, a snapshot every 15 s"),
                ("inotify-trace agent --listen :9814 --web-config web.yml", "with TLS and basic auth"),
                ("inotify-trace agent --state-file /run/inotify-trace/state.json", "also for inotify-trace check"),
            ],
            exit_statuses: &[
                ("0", "stopped by SIGTERM, SIGINT or SIGHUP"),
                ("1", "it could not start: privileges missing, the port taken, a bad --web-config or --record-dir"),
                USAGE,
            ],
        },
        "check" => Manual {
            examples: &[
                ("inotify-trace check watches", "the fullest watch budget, from a /proc scan (as root)"),
                ("inotify-trace check instances --agent-state /run/inotify-trace/state.json", "from the agent's state: no privileges, and recent EMFILE failures count"),
                ("inotify-trace check watches --nagios --warn 70 --problem 90", "for Nagios or Icinga, earlier"),
            ],
            exit_statuses: &[
                ("0", "ok, or a warning (node-problem-detector's conditions are true or false; the line says warning)"),
                ("1", "a problem: a budget at --problem or over, or a recent failure"),
                ("2", "unknown: the state unreadable or stale, privileges missing (also a refused command line)"),
                ("0 1 2 3 with --nagios", "ok, warning, critical, unknown"),
            ],
        },
        "completions" => Manual {
            examples: &[(
                "inotify-trace completions bash > /etc/bash_completion.d/inotify-trace",
                "bash completion for everyone",
            )],
            exit_statuses: &[("0", "the script was printed"), USAGE],
        },
        "man-pages" => Manual {
            examples: &[(
                "inotify-trace man-pages /usr/local/share/man/man1",
                "these pages, for man inotify-trace",
            )],
            exit_statuses: &[("0", "the pages were written"), ERROR, USAGE],
        },
        _ => Manual {
            examples: &[
                ("inotify-trace", "trace every inotify call on the machine until Ctrl-C, then the summary"),
                ("inotify-trace -q -- systemctl restart kubelet", "trace kubelet's restart and what it forks; the summary and any diagnosis at the end"),
                ("inotify-trace --comm kubelet --failed", "only kubelet's failing calls, live"),
                ("inotify-trace -q -d 5m -w node.rec", "five minutes recorded, for inotify-trace report node.rec"),
            ],
            exit_statuses: &[
                ("0", "the session ended (Ctrl-C, SIGTERM, --duration, a closed stdout)"),
                ERROR,
                USAGE,
                ("the COMMAND's status", "with -- COMMAND: its exit status, 128+N when signal N killed it, 127 when it could not be started"),
            ],
        },
    }
}

/// The command line as users see it: what is hidden (flags for the
/// benchmark, the init container's subcommand) left out of completions and
/// man pages. clap has no way to remove an argument, so the tree is built
/// again from what is shown.
fn visible(command: &clap::Command) -> clap::Command {
    let mut shown = clap::Command::new(command.get_name().to_owned())
        .args(
            command
                .get_arguments()
                .filter(|a| !a.is_hide_set())
                .cloned(),
        )
        .subcommands(
            command
                .get_subcommands()
                .filter(|s| !s.is_hide_set())
                .map(visible),
        )
        .args_conflicts_with_subcommands(command.is_args_conflicts_with_subcommands_set());
    if let Some(about) = command.get_about() {
        shown = shown.about(about.clone());
    }
    if let Some(long) = command.get_long_about() {
        shown = shown.long_about(long.clone());
    }
    if let Some(version) = command.get_version() {
        shown = shown.version(version.to_owned());
    }
    shown
}

/// This binary copied to `dir/inotify-trace` (mode 0755; a new file renamed
/// over an old one, so a running copy is not overwritten in place).
pub fn install_binary(dir: &Path) -> anyhow::Result<ExitCode> {
    directory(dir)?;
    let target = dir.join("inotify-trace");
    let copy = || -> std::io::Result<()> {
        let mut from = std::fs::File::open("/proc/self/exe")?;
        let mut new = tempfile::NamedTempFile::new_in(dir)?;
        std::io::copy(&mut from, &mut new)?;
        new.as_file()
            .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        new.as_file().sync_all()?;
        new.persist(&target).map_err(|err| err.error)?;
        Ok(())
    };
    copy().with_context(|| format!("copying the binary to {}", target.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// `dir`, made (with its parents) if missing; anything else there is an
/// error.
fn directory(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!("{}: not a directory", dir.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("making {}", dir.display()))
}

/// clap_complete's bash script spells a hyphenated program's subcommand
/// states two ways (clap-rs/clap#6421): the loop that finds the subcommand
/// arrives at `inotify__trace__subcmd__usage`, the arms that complete its
/// flags are labelled `inotify__subcmd__trace__subcmd__usage`, so no
/// subcommand's flags would complete. The arms are spelt as the loop does.
fn bash_with_hyphen_fixed(script: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(script)
        .replace("inotify__subcmd__trace", "inotify__trace")
        .into_bytes()
}
