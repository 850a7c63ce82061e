//! Command-line flags, as parsed; `settings` turns them into validated
//! settings.
use std::time::Duration;

use clap::Parser;

use crate::tracer::AttachMode;

/// Trace inotify calls live: who adds watches, on which paths, and which calls
/// fail (ENOSPC when fs.inotify.max_user_watches is used up, EMFILE when
/// fs.inotify.max_user_instances is). A summary follows at the end.
#[derive(Debug, Parser)]
#[command(name = "inotify-trace", version, about, max_term_width = 100)]
pub struct Cli {
    /// Trace only this process (repeatable; a call passes if its pid is any of them).
    #[arg(short = 'p', long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,

    /// Trace only processes with this name (repeatable). The kernel keeps 15 bytes of a
    /// name, so a longer NAME matches on its first 15 bytes.
    #[arg(short = 'c', long = "comm", value_name = "NAME")]
    pub comms: Vec<String>,

    /// Show only calls that failed.
    #[arg(long)]
    pub failed: bool,

    /// Print JSON Lines (one object per event, see docs/json.md) instead of text.
    #[arg(long)]
    pub json: bool,

    /// Stop after this long (e.g. 30s, 5m); SIGINT and SIGTERM also stop cleanly.
    #[arg(short = 'd', long, value_name = "D", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// Size of the kernel's ring buffer, a power of two (e.g. 4M, 64M). It must hold a
    /// burst's worth of events between two reads (~100-200 bytes each).
    #[arg(long, value_name = "SIZE", default_value = "8M", value_parser = parse_size)]
    pub ring_size: u32,

    /// How to hook the syscalls: `exit` alone is cheapest (kernel 5.15+, x86_64),
    /// `enter-exit` works on older kernels; `auto` picks the first that loads.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    pub attach: AttachMode,

    /// No per-event lines: only the summary at the end (and, on a terminal, a live
    /// status line on stderr).
    #[arg(short = 'q', long)]
    pub quiet: bool,

    /// Show only the N processes with the most new watches in the summary (0: all).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub top: usize,

    /// Say more about what the tracer does (attach mode, kernel-side notes).
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// Start COMMAND and trace it and every process it forks; the session ends when
    /// COMMAND exits, with its exit status.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
}

/// Parses `4096`, `64K`, `8M`, `1G` (binary multiples; `KiB`/`MiB`/`GiB` too).
fn parse_size(text: &str) -> Result<u32, String> {
    let upper = text.trim().to_ascii_uppercase();
    let digits_end = upper
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(upper.len());
    let (number, unit) = upper.split_at(digits_end);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 8M)"))?;
    let shift = match unit.trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return Err(format!("{text:?}: unknown unit (use K, M or G)")),
    };
    let bytes = number
        .checked_shl(shift)
        .filter(|b| *b >> shift == number)
        .ok_or_else(|| format!("{text:?} is too large"))?;
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

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
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
    }
}
