//! A FILE named on the command line, where `-` is the standard stream: the
//! recording `report` reads (stdin), the recording `-w` writes and the
//! pictures `report --svg/--html` draw (stdout), as tcpdump's `-w -`. Decided
//! once, where the flag is parsed; nothing else compares a path with `-`.
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileArg {
    /// `-`: stdin when read, stdout when written.
    Std,
    Path(PathBuf),
}

impl From<PathBuf> for FileArg {
    fn from(path: PathBuf) -> FileArg {
        match path.as_os_str() == "-" {
            true => FileArg::Std,
            false => FileArg::Path(path),
        }
    }
}

impl FileArg {
    pub fn is_std(&self) -> bool {
        matches!(self, FileArg::Std)
    }

    /// The path, unless it is the standard stream.
    pub fn path(&self) -> Option<&Path> {
        match self {
            FileArg::Std => None,
            FileArg::Path(path) => Some(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dash_alone_is_the_standard_stream_and_anything_else_a_path() {
        assert_eq!(FileArg::from(PathBuf::from("-")), FileArg::Std);
        for path in ["./-", "-x", "--", "/tmp/-"] {
            assert_eq!(
                FileArg::from(PathBuf::from(path)).path(),
                Some(Path::new(path))
            );
        }
    }
}
