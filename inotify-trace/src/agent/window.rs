//! The agent's tracing. Where the kernel allows fexit, all the time
//! (`trace_continuously`): no other syscall pays for it. Elsewhere in trace
//! windows, as syscall tracepoints tax every syscall of the node while
//! attached: while a uid uses more than `--trace-above` of a cap (or
//! always, with `--always-trace`), the agent attaches the tracer for
//! `--trace-window`, counts every call and failure into its metrics as they
//! come, and records the window to `--record-dir` (oldest recordings removed
//! past `--max-record-bytes`). Between windows nothing is attached.
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use tokio::sync::watch;

use super::counters::{Counters, CountingOutput};
use crate::{
    file_arg::FileArg,
    limits::NO_CAP,
    notices::say,
    pipeline::Pipeline,
    recording::writer::RecordingFile,
    selection::Selection,
    session::{self, LiveSession},
    settings::{AgentTraceSettings, WindowSettings},
    tracer::AttachMode,
    usage::Usage,
};

/// The highest share of a cap any uid uses in any scope (0 when no cap is
/// known).
pub fn highest_share(usage: &Usage) -> f64 {
    let share = |used: u64, cap: Option<u64>| match cap {
        Some(cap) if cap > 0 && cap != NO_CAP => used as f64 / cap as f64,
        _ => 0.0,
    };
    usage
        .users
        .iter()
        .map(|u| share(u.watches, u.max_watches).max(share(u.instances, u.max_instances)))
        .fold(0.0, f64::max)
}

/// Whether this snapshot calls for a window.
pub fn wanted(settings: &WindowSettings, usage: &Usage) -> bool {
    settings.always || highest_share(usage) >= settings.trace_above
}

/// Where the kernel allows fexit, tracing costs the node's other syscalls
/// nothing, so the agent traces all the time: a live session that only
/// counts into `counters` (no recording, no summary kept, so its memory does
/// not grow with time), until `stopping`. An error at once is why fexit is
/// not possible here (the agent then traces in windows).
pub async fn trace_continuously(
    settings: &AgentTraceSettings,
    counters: &Counters,
    attached: impl Fn(Option<AttachMode>),
    stopping: &mut watch::Receiver<bool>,
) -> Result<()> {
    let session = Session {
        attach: AttachMode::Fexit,
        record: None,
        keep_summary: false,
    };
    let (ran, ended) = session
        .run(
            settings,
            counters,
            attached,
            super::endpoint::stopped(stopping),
        )
        .await?;
    ran?;
    ended
        .told
        .context("writing the continuous session's end to stdout")
}

/// One window: a live session whose pipeline also counts into
/// `counters`, until `length` has passed or `stopping` turns true (the
/// agent is stopping); its recording is ended properly either way.
/// `attached` is told the mode when the programs are attached, and `None`
/// when they are detached.
pub async fn trace(
    settings: &AgentTraceSettings,
    window: &WindowSettings,
    counters: &Counters,
    attached: impl Fn(Option<AttachMode>),
    stopping: &mut watch::Receiver<bool>,
) -> Result<()> {
    let record = match &window.record_dir {
        Some(dir) => Some(recording_in(dir)?),
        None => None,
    };
    let recorded_to = record
        .as_ref()
        .and_then(|r| r.path.path().map(Path::to_owned));
    let session = Session {
        attach: AttachMode::Tracepoint,
        record,
        keep_summary: true,
    };
    let stop = async {
        tokio::select! {
            () = tokio::time::sleep(window.length) => {}
            () = super::endpoint::stopped(stopping) => {}
        }
    };
    // A recording that failed has stopped writing; the window went on
    // counting (`run` returns early only for that).
    let (ran, ended) = session.run(settings, counters, attached, stop).await?;
    if let Some(err) = &ended.failure {
        say(format_args!(
            "warning: the window's recording stopped early: {err}"
        ));
    }
    if let Some(dir) = &window.record_dir {
        rotate(dir, window.max_record_bytes)?;
    }
    // Said where `kubectl logs` shows it: the file to report on (the image
    // has no shell to list the directory with).
    if let Some(path) = recorded_to.filter(|p| ended.failure.is_none() && p.is_file()) {
        say(format_args!(
            "recorded the window to {} (inotify-trace report FILE)",
            path.display()
        ));
    }
    ran?;
    // The recorder keeps its own failure (above): an error here is the
    // summary line's.
    ended.told.context("writing the window's summary to stdout")
}

/// The one recipe of the agent's sessions, continuous or windowed: every
/// call on the node, a pipeline that counts into the metrics (and records,
/// and keeps a summary, if asked), attached in `attach` mode until a stop.
struct Session {
    attach: AttachMode,
    record: Option<RecordingFile>,
    keep_summary: bool,
}

impl Session {
    /// Attaches, tells `attached` the mode, runs until `stop`, detaches and
    /// tells `attached` None; returns how the run went and how it ended.
    /// An error is one of attaching.
    async fn run(
        self,
        settings: &AgentTraceSettings,
        counters: &Counters,
        attached: impl Fn(Option<AttachMode>),
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<(Result<Option<()>>, session::Ended)> {
        let selection = Selection::default();
        let metadata = session::metadata(&selection, None)?;
        let pipeline_settings = |record| settings.pipeline(&selection, record);
        // A recording that cannot be written (a full disk) costs the
        // recording, not the session: the metrics count the calls all the
        // same.
        let mut pipeline = match Pipeline::new(&pipeline_settings(self.record.as_ref()), &metadata)
        {
            Ok(pipeline) => pipeline,
            Err(err) if self.record.is_some() => {
                say(format_args!(
                    "warning: not recording this window, counting it only: {err:#}"
                ));
                Pipeline::new(&pipeline_settings(None), &metadata)?
            }
            Err(err) => return Err(err),
        };
        if !self.keep_summary {
            pipeline.without_summary();
        }
        pipeline.add_output(Box::new(CountingOutput::new(counters.clone())));
        let mut session = LiveSession::attach(pipeline, &settings.tracer(self.attach), &selection)?;
        attached(Some(session.tracer().mode));
        let ran = session.run(stop).await;
        let ended = session.end();
        attached(None);
        Ok((ran, ended))
    }
}

/// Makes the record directory, private, if missing. The agent calls it at
/// start, so a bad `--record-dir` is an error then, not a warning each window.
pub fn make_record_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if std::fs::metadata(dir).is_ok_and(|meta| !meta.is_dir()) {
        anyhow::bail!(
            "--record-dir {} is not a directory: give a directory (it is made if missing)",
            dir.display()
        );
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("making the record directory {}", dir.display()))
}

/// A new recording's name in `dir` (made again if it went).
fn recording_in(dir: &Path) -> Result<RecordingFile> {
    make_record_dir(dir)?;
    let name = chrono::Utc::now().format("inotify-trace-%Y%m%dT%H%M%S%.3fZ.rec");
    Ok(RecordingFile {
        path: FileArg::Path(dir.join(name.to_string())),
        force: false,
    })
}

/// Removes the oldest of the agent's recordings in `dir` while they take
/// more than `max_bytes` together, always keeping the newest.
pub fn rotate(dir: &Path, max_bytes: u64) -> Result<()> {
    let mut recordings: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)
        .with_context(|| format!("listing the record directory {}", dir.display()))?
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("inotify-trace-") && name.ends_with(".rec")
        })
        .filter_map(|e| {
            let meta = e.metadata().ok().filter(|m| m.is_file())?;
            Some((e.path(), meta.len()))
        })
        .collect();
    // The names sort by time.
    recordings.sort();
    let mut total: u64 = recordings.iter().map(|(_, len)| len).sum();
    for (path, len) in &recordings[..recordings.len().saturating_sub(1)] {
        if total <= max_bytes {
            break;
        }
        std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
        total -= len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_removes_the_oldest_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        for (name, len) in [
            ("inotify-trace-20261128T100000.000Z.rec", 400),
            ("inotify-trace-20261128T110000.000Z.rec", 400),
            ("inotify-trace-20261128T120000.000Z.rec", 400),
            ("unrelated.rec", 5000),
        ] {
            std::fs::write(dir.path().join(name), vec![0u8; len]).unwrap();
        }
        rotate(dir.path(), 900).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "inotify-trace-20261128T110000.000Z.rec",
                "inotify-trace-20261128T120000.000Z.rec",
                "unrelated.rec"
            ]
        );
        rotate(dir.path(), 0).unwrap();
        assert!(dir
            .path()
            .join("inotify-trace-20261128T120000.000Z.rec")
            .exists());
    }
}
