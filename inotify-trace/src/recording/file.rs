//! Creating the `--record` file (and a report's `--svg` and `--html`) as
//! root without being turned against the
//! machine: the path is anyone's choice and may sit in a world-writable
//! directory, where another user can plant a symlink, a FIFO or a device
//! node under the name. So the file written is always one this process
//! created itself, mode 0600: never a symlink's target, never an existing
//! file opened for writing (with `--force`, a new file is renamed over the
//! old one, whose owner and mode go with it), and nothing that can block
//! in open(2).
use std::{
    fs::{File, OpenOptions},
    io,
    os::unix::fs::{FileTypeExt, OpenOptionsExt},
    path::Path,
};

use anyhow::{bail, Context as _, Result};

/// Creates `path` for writing, refusing anything but a missing name or,
/// with `force`, a regular file to replace.
pub fn create(path: &Path, force: bool) -> Result<File> {
    create_for("--record", path, force)
}

/// [`create`], for the file of `flag` (named in the errors).
pub fn create_for(flag: &str, path: &Path, force: bool) -> Result<File> {
    let shown = path.display();
    match existing(flag, path, force)? {
        Existing::None => create_new(path).with_context(|| format!("creating {shown}")),
        Existing::Replaced => replace(path).with_context(|| format!("replacing {shown}")),
    }
}

/// What [`create_for`] would refuse, found without creating or replacing
/// anything: a report checks its pictures' paths before reading the
/// recording, and makes the files only once it has them to write, so a
/// recording that turns out corrupt leaves no empty file and replaces none.
pub fn check_for(flag: &str, path: &Path, force: bool) -> Result<()> {
    if let Existing::None = existing(flag, path, force)? {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if !std::fs::metadata(dir)
            .with_context(|| format!("creating {}", path.display()))?
            .is_dir()
        {
            bail!(
                "creating {}: {} is not a directory",
                path.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

enum Existing {
    /// Nothing by that name: a new file.
    None,
    /// A regular file, to replace (`--force`).
    Replaced,
}

/// What is at `path` now, or why `flag` may not write there.
fn existing(flag: &str, path: &Path, force: bool) -> Result<Existing> {
    let shown = path.display();
    match std::fs::symlink_metadata(path) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Existing::None),
        Err(err) => Err(err).with_context(|| format!("checking {shown}")),
        Ok(meta) if !meta.file_type().is_file() => bail!(
            "{shown} is {}: {flag} writes only a new file or, with --force, replaces a regular one; choose another path",
            describe(meta.file_type())
        ),
        Ok(_) if !force => bail!(
            "{shown} exists already: choose another file, or add --force to overwrite it"
        ),
        Ok(_) => Ok(Existing::Replaced),
    }
}

/// Stdout as the recording (`-w -`), refused when it is a terminal: the
/// recording is binary.
pub fn stdout() -> Result<File> {
    use std::{io::IsTerminal as _, os::fd::AsFd as _};
    let out = io::stdout();
    if out.is_terminal() {
        bail!("-w - writes the recording, which is binary, to stdout, and stdout is a terminal: pipe it (-w - | inotify-trace report -) or redirect it to a file");
    }
    let fd = out
        .as_fd()
        .try_clone_to_owned()
        .context("taking stdout for the recording")?;
    Ok(File::from(fd))
}

/// O_EXCL never follows a symlink planted in the meantime (it fails with
/// EEXIST); O_NONBLOCK keeps a FIFO from blocking the open.
fn create_new(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    clear_nonblocking(&file)?;
    Ok(file)
}

/// A new private file beside the old one, renamed over it: rename(2)
/// replaces the name itself, whatever was planted there since the check.
fn replace(path: &Path) -> io::Result<File> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    // tempfile creates it O_EXCL, mode 0600, under a random name.
    let new = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    new.persist(path).map_err(|err| err.error)
}

fn clear_nonblocking(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on an fd this function's caller owns.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn describe(kind: std::fs::FileType) -> &'static str {
    if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    fn error(path: &Path, force: bool) -> String {
        format!("{:#}", create(path, force).unwrap_err())
    }

    #[test]
    fn a_new_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.rec");
        create(&path, false).unwrap();
        assert_eq!(path.metadata().unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn an_existing_file_needs_force_and_is_then_replaced_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.rec");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let old_inode = path.metadata().unwrap().ino();
        assert!(error(&path, false).contains("exists already"));
        assert_eq!(std::fs::read(&path).unwrap(), b"old");

        create(&path, true).unwrap();
        let meta = path.metadata().unwrap();
        assert_ne!(
            meta.ino(),
            old_inode,
            "a new file, renamed over the old one"
        );
        assert_eq!((meta.mode() & 0o777, meta.len()), (0o600, 0));
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn links_fifos_and_directories_are_refused_even_with_force() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"keep").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        for (path, kind) in [
            (&link, "a symbolic link"),
            (&dangling, "a symbolic link"),
            (&fifo, "a FIFO"),
            (&dir.path().to_owned(), "a directory"),
        ] {
            for force in [false, true] {
                let message = error(path, force);
                assert!(message.contains(&format!("is {kind}: ")), "{message}");
            }
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        assert!(!dir.path().join("nowhere").exists());
    }
}
