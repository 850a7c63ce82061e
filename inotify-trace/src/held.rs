//! What processes hold, in the words the stream, the summary, `usage` and
//! the diagnosis share: counts of instances and watches, a process's
//! holdings at a session's end, and the directories its watches are under.
//! Data only; `usage` reads them from /proc.
use serde::{Deserialize, Serialize};

use crate::exact_text::PathName;

/// Instances and watches held (or taken, as a session traced them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub instances: u64,
    pub watches: u64,
}

impl Held {
    pub fn is_empty(self) -> bool {
        self == Held::default()
    }
}

/// One process's inotify instances and watches at the end of a session,
/// from /proc, as `usage` counts them, and what it is (its facts are absent
/// from recordings of older versions).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldNow {
    pub pid: u32,
    pub instances: u64,
    pub watches: u64,
    #[serde(flatten)]
    pub facts: HolderFacts,
}

/// What a holder is, beyond its counts: where its watches are, its command
/// line, and the known program it is; each left out where not known (in
/// JSON, each key is then absent).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderFacts {
    #[serde(default, rename = "where", skip_serializing_if = "Vec::is_empty")]
    pub places: Vec<Place>,
    /// Each argument as text (invalid UTF-8 replaced).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmdline: Vec<String>,
    /// The known program it is (`culprits/table.yaml`), with the fix its
    /// project recommends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub culprit: Option<crate::culprits::Culprit>,
}

/// One process holding inotify instances when a session attached, as
/// `usage` counts it: who it is, the scope it is charged in (its uid and
/// user namespace) and what it held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldAtStart {
    pub pid: u32,
    #[serde(flatten)]
    pub comm: crate::exact_text::ProcessName,
    /// The effective uid (the uid its instances are charged to).
    pub uid: u32,
    /// The inode of its user namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_ns: Option<u64>,
    pub instances: u64,
    pub watches: u64,
}

/// A directory and how many watched paths are in it or below it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    #[serde(flatten)]
    pub dir: PathName,
    pub watches: u64,
}
