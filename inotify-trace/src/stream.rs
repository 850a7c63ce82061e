//! The one stream every session is: what a source produces ([`Item`]: the
//! ring buffer live, a recording read back), for the pipeline to hand on
//! to its outputs (the `output` module).
use serde::{Deserialize, Serialize};

use crate::{
    diagnosis::Diagnosis,
    event::{DecodeError, Event},
    held::{HeldAtStart, HeldNow},
    limits::Limits,
    pods::CgroupAttribution,
};

/// One thing a source produces.
#[derive(Debug)]
pub enum Item<'a> {
    /// A traced call.
    Event(Event<'a>),
    /// A record the kernel sent that does not decode (live only: a
    /// recording that holds one is refused as corrupt).
    Undecodable(DecodeError),
    /// This many events were lost in the kernel at this point.
    Lost(u64),
    /// A usage snapshot taken when a call failed for a limit (read back
    /// from a recording; live, the pipeline takes them).
    Diagnosis(Box<Diagnosis>),
    /// How the session resolved a cgroup id (read back from a recording;
    /// live, the pipeline resolves them).
    Attribution(Box<CgroupAttribution>),
    /// What held inotify instances when the session attached (live: one
    /// /proc scan right after the programs were attached; read back from a
    /// recording): the budget it started in.
    Start(Box<Start>),
    /// The session ended normally.
    End(End),
}

/// What held inotify instances when a session attached; a recording's frame
/// right after its metadata (absent from recordings made before it was
/// taken).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Start {
    /// Every process holding an instance, by watches.
    pub holders: Vec<HeldAtStart>,
}

/// How a session ended; the last frame of a recording whose session ended
/// normally.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct End {
    /// RFC 3339, UTC.
    pub end_time: String,
    /// As the live summary said it.
    pub duration_s: f64,
    pub limits: Limits,
    pub events: u64,
    pub lost: u64,
    /// What the session's processes hold when it ends: those still holding
    /// an instance (a process absent here has exited or closed them all).
    /// Absent from recordings made before it was kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_now: Vec<HeldNow>,
}

/// Counts kept while streaming.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Events that passed the selection.
    pub events: u64,
    /// Of those, the calls that failed.
    pub failed: u64,
    /// Events lost in the kernel (ring buffer full).
    pub lost: u64,
    /// Records that did not decode.
    pub undecodable: u64,
}
