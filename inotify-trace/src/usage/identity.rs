//! Telling whether two fds are the same inotify instance. An instance
//! inherited across fork (or passed over a socket) is one instance with
//! several holders, charged once; `kcmp(2)` with KCMP_FILE compares the open
//! file descriptions behind two fds, and orders them, so a sorted insert
//! groups n fds with O(n log n) comparisons.
use std::cmp::Ordering;

/// Where an fd lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FdRef {
    pub pid: u32,
    pub fd: i32,
}

/// Compares the files behind two fds; `None` when it cannot be known (a
/// process exited, or no permission).
pub trait FileOrder {
    fn compare(&self, a: FdRef, b: FdRef) -> Option<Ordering>;
}

/// The kernel's answer, through kcmp(2).
pub struct Kcmp;

impl FileOrder for Kcmp {
    fn compare(&self, a: FdRef, b: FdRef) -> Option<Ordering> {
        const KCMP_FILE: libc::c_long = 0;
        // SAFETY: kcmp takes plain integers and reads no memory of ours.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_kcmp,
                a.pid as libc::c_long,
                b.pid as libc::c_long,
                KCMP_FILE,
                a.fd as libc::c_long,
                b.fd as libc::c_long,
            )
        };
        match ret {
            0 => Some(Ordering::Equal),
            1 => Some(Ordering::Less),
            2 => Some(Ordering::Greater),
            _ => None,
        }
    }
}

/// Groups fds into instances: each group is one open file description.
/// An fd whose comparison fails is its own group.
pub fn group(fds: &[FdRef], order: &(impl FileOrder + ?Sized)) -> Vec<Vec<FdRef>> {
    // Sorted by the kernel's order, each entry one instance and its fds.
    let mut sorted: Vec<Vec<FdRef>> = Vec::new();
    let mut loners: Vec<Vec<FdRef>> = Vec::new();
    for &fd in fds {
        let mut failed = false;
        let found = sorted.binary_search_by(|group| {
            order.compare(group[0], fd).unwrap_or_else(|| {
                failed = true;
                Ordering::Less
            })
        });
        match (failed, found) {
            (true, _) => loners.push(vec![fd]),
            (false, Ok(at)) => sorted[at].push(fd),
            (false, Err(at)) => sorted.insert(at, vec![fd]),
        }
    }
    sorted.extend(loners);
    sorted
}

#[cfg(test)]
pub mod fake {
    use std::collections::HashMap;

    use super::*;

    /// Files as a table: fd -> file id.
    pub struct Table(pub HashMap<FdRef, u32>);

    impl FileOrder for Table {
        fn compare(&self, a: FdRef, b: FdRef) -> Option<Ordering> {
            Some(self.0.get(&a)?.cmp(self.0.get(&b)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{fake::Table, *};

    fn fd(pid: u32, fd: i32) -> FdRef {
        FdRef { pid, fd }
    }

    #[test]
    fn shared_fds_are_one_instance() {
        // Parent 10 and child 11 share file 1 (fd 3 in both); 12 has its own.
        let table = Table(
            [
                (fd(10, 3), 1),
                (fd(11, 3), 1),
                (fd(12, 4), 2),
                (fd(10, 5), 3),
            ]
            .into(),
        );
        let mut groups = group(&[fd(10, 3), fd(12, 4), fd(11, 3), fd(10, 5)], &table);
        groups.sort();
        assert_eq!(
            groups,
            [vec![fd(10, 3), fd(11, 3)], vec![fd(10, 5)], vec![fd(12, 4)]]
        );
    }

    #[test]
    fn an_unknown_fd_stands_alone() {
        let table = Table([(fd(10, 3), 1), (fd(11, 3), 1)].into());
        let groups = group(&[fd(10, 3), fd(99, 3), fd(11, 3)], &table);
        assert_eq!(groups, [vec![fd(10, 3), fd(11, 3)], vec![fd(99, 3)]]);
    }

    #[test]
    fn the_kernel_tells_a_dup_from_a_new_instance() {
        // SAFETY: plain syscalls on fds this test owns.
        let (a, b, dup) = unsafe {
            let a = libc::inotify_init1(libc::IN_CLOEXEC);
            let b = libc::inotify_init1(libc::IN_CLOEXEC);
            (a, b, libc::dup(a))
        };
        assert!(a >= 0 && b >= 0 && dup >= 0);
        let me = std::process::id();
        let groups = group(&[fd(me, a), fd(me, b), fd(me, dup)], &Kcmp);
        unsafe {
            libc::close(a);
            libc::close(b);
            libc::close(dup);
        }
        let mut sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
        sizes.sort();
        assert_eq!(sizes, [1, 2], "{groups:?}");
    }
}
