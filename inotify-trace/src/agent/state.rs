//! The agent's state for other programs on the node: with `--state-file
//! FILE` the agent writes, after every snapshot, which budgets (uid, user
//! namespace) traced calls ran out of and when last, so `inotify-trace
//! check` (node-problem-detector's plugin, which cannot trace) can say "a
//! call failed with ENOSPC in the last 10 minutes". JSON, a few hundred
//! bytes per budget that failed; replaced whole each time (a new file
//! renamed over it, so a reader never sees half of one).
use std::{
    io::Write as _,
    path::Path,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// What the file's `type` says, so a file of another kind is refused.
const KIND: &str = "inotify_trace_agent_state";
/// The version of this layout; a reader refuses a newer one.
pub const VERSION: u32 = 1;
/// A state file is small: a larger one is not ours.
const MAX_BYTES: u64 = 4 << 20;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentState {
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
    /// When it was written (Unix time, seconds).
    pub written_at: f64,
    /// The agent's snapshot interval: a file much older than this is stale.
    pub interval_s: f64,
    /// Whether the agent traces now (else no failure can be known).
    pub tracing: bool,
    /// Every (uid, scope) budget of the last snapshot, with its caps.
    pub budgets: Vec<Budget>,
    pub failures: Vec<RecentFailure>,
}

/// One uid's budget in one scope, as the last snapshot counted it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    pub uid: u32,
    /// `host`, or the user namespace's inode number.
    pub userns: String,
    pub watches: u64,
    pub instances: u64,
    /// None where the cap could not be read.
    pub max_watches: Option<u64>,
    pub max_instances: Option<u64>,
}

impl Budget {
    /// The budgets of a usage snapshot.
    pub fn all_of(usage: &crate::usage::Usage) -> Vec<Budget> {
        usage
            .users
            .iter()
            .map(|u| Budget {
                uid: u.uid,
                userns: super::metrics::userns_label(u.user_ns),
                watches: u.watches,
                instances: u.instances,
                max_watches: u.max_watches,
                max_instances: u.max_instances,
            })
            .collect()
    }
}

/// The failures of one call, errno and budget since the agent started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecentFailure {
    pub syscall: String,
    pub errno: String,
    pub uid: u32,
    /// `host`, or the user namespace's inode number.
    pub userns: String,
    pub count: u64,
    /// The last one (Unix time, seconds).
    pub last_at: f64,
}

#[cfg(test)]
impl RecentFailure {
    /// `count` ENOSPC from add_watch charged to uid 0 on the host, the last
    /// at `last_at` (a fixture for the tests here and of `check`).
    pub fn enospc(count: u64, last_at: f64) -> RecentFailure {
        RecentFailure {
            syscall: "inotify_add_watch".into(),
            errno: "ENOSPC".into(),
            uid: 0,
            userns: "host".into(),
            count,
            last_at,
        }
    }
}

impl AgentState {
    pub fn new(
        interval: Duration,
        tracing: bool,
        budgets: Vec<Budget>,
        failures: Vec<RecentFailure>,
    ) -> AgentState {
        AgentState {
            kind: KIND.to_owned(),
            version: VERSION,
            written_at: unix_seconds(SystemTime::now()),
            interval_s: interval.as_secs_f64(),
            tracing,
            budgets,
            failures,
        }
    }

    /// Older than three intervals: the agent stopped writing it.
    pub fn stale(&self, now: f64) -> bool {
        now - self.written_at > 3.0 * self.interval_s.max(1.0)
    }
}

/// Seconds since the epoch.
pub fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Replaces `path` with `state`: a new file (a random name in the same
/// directory, created O_EXCL) renamed over it, so a symlink planted at
/// `path` is replaced, never followed. Mode 0644: it holds uids, namespace
/// inodes and counts (what /proc shows every user), and a check run by an
/// unprivileged monitoring user must be able to read it.
pub fn write(path: &Path, state: &AgentState) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut new = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer(&mut new, state)?;
    new.write_all(b"\n")?;
    new.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    new.as_file().sync_data()?;
    new.persist(path).map_err(|err| err.error)?;
    Ok(())
}

/// The state in `path`, or a one-line reason it cannot be used.
pub fn read(path: &Path) -> Result<AgentState> {
    let text = crate::small_file::read_text(path, MAX_BYTES)?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|err| anyhow::anyhow!("not JSON ({err})"))?;
    if value.get("type").and_then(|t| t.as_str()) != Some(KIND) {
        bail!("not the agent's state (no \"type\":\"{KIND}\")");
    }
    let version = value.get("version").and_then(|v| v.as_u64());
    if version != Some(u64::from(VERSION)) {
        bail!(
            "state version {} is not {VERSION}: use the agent's own inotify-trace",
            version.map_or_else(|| "missing".to_owned(), |v| v.to_string())
        );
    }
    serde_json::from_value(value).map_err(|err| anyhow::anyhow!("a field is wrong ({err})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_state_reads_back_and_hostile_files_are_one_line_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let failure = RecentFailure::enospc(3, 1_795_000_000.5);
        let budget = Budget {
            uid: 0,
            userns: "host".into(),
            watches: 10,
            instances: 1,
            max_watches: Some(100),
            max_instances: None,
        };
        let state = AgentState::new(Duration::from_secs(15), true, vec![budget], vec![failure]);
        write(&path, &state).unwrap();
        assert_eq!(read(&path).unwrap(), state);
        assert!(!state.stale(state.written_at + 44.0));
        assert!(state.stale(state.written_at + 46.0));
        // A symlink where the file goes is replaced, not followed.
        let target = dir.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        write(&path, &state).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert!(!path.symlink_metadata().unwrap().is_symlink());

        for (text, says) in [
            ("", "not JSON"),
            ("\u{0}\u{1}", "not JSON"),
            ("{\"type\":\"summary\"}", "not the agent's state"),
            (
                "{\"type\":\"inotify_trace_agent_state\",\"version\":9}",
                "state version 9 is not 1",
            ),
            (
                "{\"type\":\"inotify_trace_agent_state\",\"version\":1,\"written_at\":\"x\"}",
                "a field is wrong",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let err = format!("{:#}", read(&path).unwrap_err());
            assert!(err.contains(says), "{text:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
        assert!(format!("{:#}", read(dir.path()).unwrap_err()).contains("not a regular file"));
    }
}
