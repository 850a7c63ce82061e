//! What packagers install beside the binary, made from the command line's
//! own definition so they cannot drift from it: shell completions
//! (clap_complete) and man pages (clap_mangen).
use std::{io::Write as _, path::Path, process::ExitCode};

use anyhow::{bail, Context as _};
use clap::CommandFactory as _;

use crate::cli::Cli;

/// The completion script for `shell`, on stdout.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "inotify-trace", &mut script);
    if shell == clap_complete::Shell::Bash {
        script = bash_with_hyphen_fixed(&script);
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// One man page per subcommand (`inotify-trace.1`, `inotify-trace-report.1`,
/// ...) in `dir`, which must be an existing directory: the pages replace
/// files of those names there, and nothing else is written.
pub fn man_pages(dir: &Path) -> anyhow::Result<ExitCode> {
    if !dir.is_dir() {
        bail!(
            "{}: not a directory (make it first: mkdir -p {})",
            dir.display(),
            dir.display()
        );
    }
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))?;
    Ok(ExitCode::SUCCESS)
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
