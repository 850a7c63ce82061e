//! Symbolic names of errno values (`ENOSPC` for 28), from nix's table so the
//! names match the platform's.
use std::sync::OnceLock;

use nix::errno::Errno;

/// The kernel's errno values end at 133 (EHWPOISON).
const LAST_ERRNO: i32 = 133;

/// The name of `-ret` when a syscall returned an error, else `None`.
pub fn from_ret(ret: i64) -> Option<&'static str> {
    if ret >= 0 {
        return None;
    }
    Some(name(ret.unsigned_abs()))
}

/// The symbolic name of an errno value: `E<n>` for a value inside the kernel's
/// range that nix does not name, `EUNKNOWN` beyond it.
pub fn name(errno: u64) -> &'static str {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        // Built once so that naming an errno on the hot path allocates nothing.
        (0..=LAST_ERRNO)
            .map(|n| match Errno::from_raw(n) {
                Errno::UnknownErrno => &*format!("E{n}").leak(),
                known => &*format!("{known:?}").leak(),
            })
            .collect()
    });
    // `ret` keeps the exact value; the name of an unheard-of one is generic.
    usize::try_from(errno)
        .ok()
        .and_then(|index| names.get(index))
        .copied()
        .unwrap_or("EUNKNOWN")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_errors_this_tool_is_about() {
        assert_eq!(from_ret(-28), Some("ENOSPC"));
        assert_eq!(from_ret(-24), Some("EMFILE"));
        assert_eq!(from_ret(-2), Some("ENOENT"));
        assert_eq!(from_ret(-13), Some("EACCES"));
        assert_eq!(from_ret(-36), Some("ENAMETOOLONG"));
        assert_eq!(from_ret(-14), Some("EFAULT"));
    }

    #[test]
    fn success_has_no_name_and_strange_values_do_not_panic() {
        assert_eq!(from_ret(0), None);
        assert_eq!(from_ret(7), None);
        assert_eq!(from_ret(-9999), Some("EUNKNOWN"));
        assert_eq!(from_ret(i64::MIN), Some("EUNKNOWN"));
    }
}
