//! `report FILE --svg OUT` and `--html OUT`: the recording as a picture.
//! An output of the report's pipeline like the text printer: it keeps the
//! budget changes the aggregator reports (40 bytes each, at most
//! [`MAX_CHANGES`]), and at the summary draws them (`chart` works out
//! what to show, `svg` draws it, `html` puts it beside the text summary).
mod chart;
mod html;
mod svg;

use std::io::{self, Write};

use crate::{
    output::Output,
    summary::{aggregate::Change, Summary},
};

/// Changes kept at most (~100 MiB, 40 bytes each): past it, the picture is
/// of the session's first part, and says so.
pub const MAX_CHANGES: usize = 5 << 19;

/// Where a picture goes: stdout, or a file made when the picture is ready
/// (its path checked before the recording is read: see
/// `recording::file::check_for`), so a failed report leaves no file.
pub enum Destination {
    Stdout,
    File {
        /// The flag that named it, for errors.
        flag: &'static str,
        path: std::path::PathBuf,
        force: bool,
    },
}

pub struct Timeline {
    svg: Option<Destination>,
    html: Option<Destination>,
    /// The title: the recording, its host and start (escaped).
    title: String,
    start_ns: u64,
    boot_epoch_ns: i128,
    changes: Vec<Change>,
    changes_left_out: u64,
}

impl Timeline {
    pub fn new(
        svg: Option<Destination>,
        html: Option<Destination>,
        title: String,
        metadata: &crate::recording::metadata::Metadata,
    ) -> Timeline {
        Timeline {
            svg,
            html,
            title,
            start_ns: metadata.start_boot_ns,
            boot_epoch_ns: i128::from(metadata.boot_epoch_ns),
            changes: Vec::new(),
            changes_left_out: 0,
        }
    }
}

impl Output for Timeline {
    fn change(&mut self, change: &Change) -> io::Result<()> {
        match self.changes.len() < MAX_CHANGES {
            true => self.changes.push(*change),
            false => self.changes_left_out += 1,
        }
        Ok(())
    }

    fn summary(&mut self, summary: &Summary) -> io::Result<()> {
        let facts = chart::Facts::of(summary, self.start_ns, self.boot_epoch_ns);
        let chart = chart::chart(&self.changes, &facts, self.start_ns);
        let mut title = self.title.clone();
        if self.changes_left_out > 0 {
            title.push_str(&format!(
                " (the first {MAX_CHANGES} changes of the budget only; {} more not drawn)",
                self.changes_left_out
            ));
        }
        let picture = svg::svg(&chart, &title);
        if let Some(d) = &self.svg {
            write_to(d, picture.as_bytes())?;
        }
        if let Some(d) = &self.html {
            let page = html::page(&title, &picture, summary)?;
            write_to(d, page.as_bytes())?;
        }
        Ok(())
    }
}

fn write_to(d: &Destination, bytes: &[u8]) -> io::Result<()> {
    let (mut out, name): (Box<dyn Write>, String) = match d {
        Destination::Stdout => (Box::new(io::stdout().lock()), "stdout".to_owned()),
        Destination::File { flag, path, force } => {
            let file = crate::recording::file::create_for(flag, path, *force)
                .map_err(|err| io::Error::other(format!("{err:#}")))?;
            (
                Box::new(io::BufWriter::new(file)),
                path.display().to_string(),
            )
        }
    };
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|err| io::Error::new(err.kind(), format!("writing {name}: {err}")))
}

#[cfg(test)]
mod tests;
