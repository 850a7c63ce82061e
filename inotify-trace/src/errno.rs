//! The errno a failed call returned, with its symbolic name (`ENOSPC` for
//! 28) from nix's table, so the names match the platform's.
use std::{fmt, sync::OnceLock};

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// The kernel's errno values end at 133 (EHWPOISON).
const LAST_ERRNO: u16 = 133;

/// An errno value inside the kernel's range, or [`Errno::UNKNOWN`] for any
/// value beyond it (a record's `ret` keeps the exact number). Serialized as
/// its name; ordered by name, as reports list them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno(u16);

impl Errno {
    /// No space left on device: `inotify_add_watch` when the watch budget is
    /// used up.
    pub const ENOSPC: Errno = Errno(libc::ENOSPC as u16);
    /// Too many open files: `inotify_init`/`init1` when the instance budget
    /// (or the process's fd limit) is used up.
    pub const EMFILE: Errno = Errno(libc::EMFILE as u16);
    /// Any value the kernel does not define.
    pub const UNKNOWN: Errno = Errno(u16::MAX);

    /// The errno of a syscall's return value, `None` for a success.
    pub fn from_ret(ret: i64) -> Option<Errno> {
        if ret >= 0 {
            return None;
        }
        Some(
            u16::try_from(ret.unsigned_abs())
                .ok()
                .filter(|n| *n <= LAST_ERRNO)
                .map_or(Errno::UNKNOWN, Errno),
        )
    }

    /// The symbolic name: `E<n>` for a value inside the kernel's range that
    /// nix does not name, `EUNKNOWN` beyond it.
    pub fn name(self) -> &'static str {
        names()
            .get(usize::from(self.0))
            .copied()
            .unwrap_or("EUNKNOWN")
    }

    /// The two errors this tool exists for come first in every list.
    pub fn rank(self) -> u8 {
        match self {
            Errno::ENOSPC => 0,
            Errno::EMFILE => 1,
            _ => 2,
        }
    }

    fn from_name(name: &str) -> Option<Errno> {
        if name == Errno::UNKNOWN.name() {
            return Some(Errno::UNKNOWN);
        }
        let index = names().iter().position(|n| *n == name)?;
        u16::try_from(index).ok().map(Errno)
    }
}

/// Built once so that naming an errno on the hot path allocates nothing.
fn names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| {
        (0..=i32::from(LAST_ERRNO))
            .map(|n| match nix::errno::Errno::from_raw(n) {
                nix::errno::Errno::UnknownErrno => &*format!("E{n}").leak(),
                known => &*format!("{known:?}").leak(),
            })
            .collect()
    })
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Ord for Errno {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name().cmp(other.name())
    }
}

impl PartialOrd for Errno {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for Errno {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Errno {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Errno::from_name(&name)
            .ok_or_else(|| de::Error::custom(format_args!("unknown errno name {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(ret: i64) -> Option<&'static str> {
        Errno::from_ret(ret).map(Errno::name)
    }

    #[test]
    fn names_the_errors_this_tool_is_about() {
        assert_eq!(name(-28), Some("ENOSPC"));
        assert_eq!(name(-24), Some("EMFILE"));
        assert_eq!(name(-2), Some("ENOENT"));
        assert_eq!(name(-13), Some("EACCES"));
        assert_eq!(name(-36), Some("ENAMETOOLONG"));
        assert_eq!(name(-14), Some("EFAULT"));
        assert_eq!(Errno::from_ret(-28), Some(Errno::ENOSPC));
        assert_eq!(Errno::from_ret(-24), Some(Errno::EMFILE));
    }

    #[test]
    fn success_has_no_name_and_strange_values_do_not_panic() {
        assert_eq!(name(0), None);
        assert_eq!(name(7), None);
        assert_eq!(name(-9999), Some("EUNKNOWN"));
        assert_eq!(name(i64::MIN), Some("EUNKNOWN"));
        assert_eq!(name(-41), Some("E41"), "inside the range, unnamed by nix");
    }

    #[test]
    fn serialized_as_its_name_and_read_back() {
        for ret in [-28, -24, -2, -41, -9999] {
            let errno = Errno::from_ret(ret).unwrap();
            let json = serde_json::to_string(&errno).unwrap();
            assert_eq!(json, format!("\"{}\"", errno.name()));
            assert_eq!(serde_json::from_str::<Errno>(&json).unwrap(), errno);
        }
        assert!(serde_json::from_str::<Errno>("\"ENOTANERRNO\"").is_err());
    }

    #[test]
    fn enospc_then_emfile_then_the_rest() {
        let mut errnos = [-2, -24, -13, -28].map(|r| Errno::from_ret(r).unwrap());
        errnos.sort_by_key(|e| (e.rank(), *e));
        assert_eq!(
            errnos.map(Errno::name),
            ["ENOSPC", "EMFILE", "EACCES", "ENOENT"]
        );
    }
}
