//! What consumes the stream: the event printers (`render`), the recorder
//! (`recording::writer`), the notices on stderr (`notices`), and the agent's
//! counters (`agent::counters`) and the timeline (`timeline`): each is one
//! type implementing [`Output`], plugged into the pipeline where it is built.
use std::io;

use crate::{
    diagnosis::Diagnosis,
    event::{DecodeError, Event},
    pods::{Attribution, CgroupAttribution},
    stream::{Counts, End},
    summary::Summary,
};

/// Where the stream goes. Each method has a default that ignores what it
/// is given, so an output implements only what it shows. An error ends the
/// session (a closed stdout ends it quietly); an output that can no longer
/// do its job but must not stop the others says so through
/// [`Output::failure`].
pub trait Output {
    /// Before the first item (a column header, say).
    fn start(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// What held inotify instances when the session attached.
    fn start_holdings(&mut self, _start: &crate::stream::Start) -> io::Result<()> {
        Ok(())
    }
    /// An event that passed the selection, with where its caller runs
    /// (pod, container, unit) when known.
    fn event(&mut self, _event: &Event<'_>, _place: Option<&Attribution>) -> io::Result<()> {
        Ok(())
    }
    /// How a cgroup id was resolved, before the first event that uses it
    /// (and again if a name turned up later).
    fn attribution(&mut self, _frame: &CgroupAttribution) -> io::Result<()> {
        Ok(())
    }
    fn undecodable(&mut self, _err: &DecodeError) -> io::Result<()> {
        Ok(())
    }
    /// `count` more events were lost in the kernel (ring buffer full).
    fn lost(&mut self, _count: u64) -> io::Result<()> {
        Ok(())
    }
    /// What an event that passed the selection did to a uid's budget (a
    /// new watch, a removal, a failure), as the summary counts it.
    fn change(&mut self, _change: &crate::summary::aggregate::Change) -> io::Result<()> {
        Ok(())
    }
    /// A usage snapshot taken because a call failed for a limit.
    fn diagnosis(&mut self, _diagnosis: &Diagnosis) -> io::Result<()> {
        Ok(())
    }
    fn end(&mut self, _end: &End) -> io::Result<()> {
        Ok(())
    }
    /// After each batch of items (one drain of the ring buffer): pass on
    /// what is buffered.
    fn flush(&mut self, _counts: &Counts) -> io::Result<()> {
        Ok(())
    }
    /// Once, at the end.
    fn summary(&mut self, _summary: &Summary) -> io::Result<()> {
        Ok(())
    }
    /// Why this output stopped working, if it did: the session then stops
    /// and exits 1, after the summary.
    fn failure(&self) -> Option<&anyhow::Error> {
        None
    }
}
