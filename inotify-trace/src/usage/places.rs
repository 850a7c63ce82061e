//! Where a process's watches are: the few directories most of its watched
//! paths fall under ("860 under /srv/data/n"), so that three `inotifywait`
//! rows can be told apart and a recursive watch of a large tree shows.
use std::{collections::HashMap, os::unix::ffi::OsStrExt, path::Path};

use crate::exact_text::PathName;

/// Directories given at most.
pub const PLACES: usize = 3;
/// Paths looked at per process at most: enough to say where a million
/// watches are, in bounded time at the end of a session.
const SAMPLE: usize = 100_000;

pub use crate::held::Place;

/// The directories that cover the paths: repeatedly, the deepest directory
/// that holds at least half of the paths not yet covered (a watched path
/// counts as under itself).
pub fn top_directories<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Vec<Place> {
    let mut remaining: Vec<Vec<u8>> = paths
        .into_iter()
        .take(SAMPLE)
        .map(|p| p.as_ref().as_os_str().as_bytes().to_vec())
        .collect();
    let mut places = Vec::new();
    while !remaining.is_empty() && places.len() < PLACES {
        let mut under: HashMap<&[u8], u64> = HashMap::new();
        for path in &remaining {
            for dir in ancestors(path) {
                *under.entry(dir).or_default() += 1;
            }
        }
        let half = remaining.len().div_ceil(2) as u64;
        let Some((dir, count)) = under
            .into_iter()
            .filter(|(_, n)| *n >= half)
            .max_by_key(|(dir, n)| (depth(dir), *n, std::cmp::Reverse(*dir)))
        else {
            break;
        };
        let dir = dir.to_vec();
        remaining.retain(|p| !is_under(p, &dir));
        places.push(Place {
            dir: PathName(dir),
            watches: count,
        });
    }
    places
}

/// The path itself and every directory above it, up to `/` (or, for a
/// relative path, its first component).
fn ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    let trimmed = match path {
        [rest @ .., b'/'] if !rest.is_empty() => rest,
        _ => path,
    };
    let cuts = trimmed
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'/')
        .map(|(i, _)| if i == 0 { &trimmed[..1] } else { &trimmed[..i] })
        .filter(|dir| dir.len() < trimmed.len());
    std::iter::once(trimmed).chain(cuts)
}

fn depth(dir: &[u8]) -> usize {
    dir.iter().filter(|b| **b == b'/').count() + usize::from(dir != b"/")
}

fn is_under(path: &[u8], dir: &[u8]) -> bool {
    path == dir
        || dir == b"/" && path.starts_with(b"/")
        || path.starts_with(dir) && path.get(dir.len()) == Some(&b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn places(paths: &[&str]) -> Vec<(String, u64)> {
        top_directories(paths)
            .into_iter()
            .map(|p| (p.dir.to_string(), p.watches))
            .collect()
    }

    #[test]
    fn a_recursive_watch_is_one_place_at_its_root() {
        let mut paths = vec!["/srv/data/n".to_owned()];
        paths.extend((0..859).map(|i| format!("/srv/data/n/{}/{i}", i % 7)));
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        assert_eq!(places(&paths), [("/srv/data/n".to_owned(), 860)]);
    }

    #[test]
    fn scattered_paths_give_a_few_places_most_first() {
        let got = places(&[
            "/var/log/a",
            "/var/log/b",
            "/var/log/c/d",
            "/etc/x",
            "/etc/y",
            "/home/u/.config",
        ]);
        assert_eq!(
            got,
            [
                ("/var/log".to_owned(), 3),
                ("/etc".to_owned(), 2),
                ("/home/u/.config".to_owned(), 1)
            ]
        );
    }

    #[test]
    fn a_sibling_with_a_common_prefix_is_not_under() {
        assert!(!is_under(b"/srv/data2/x", b"/srv/data"));
        assert!(is_under(b"/srv/data/x", b"/srv/data"));
        assert!(is_under(b"/x", b"/"));
        assert_eq!(places(&["/srv/data2/x", "/srv/data/x"]).len(), 2);
        assert_eq!(places(&["/"]), [("/".to_owned(), 1)]);
        assert_eq!(places(&[] as &[&str]), []);
    }
}
