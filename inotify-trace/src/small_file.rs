//! A small file the tool is told to read (the agent's web config, the
//! agent's state for `check`): refused unless it is a regular file within a
//! size, and opened without blocking, so a FIFO or a device planted at the
//! path can neither hang the reader nor feed it without end.
use std::{io::Read as _, os::unix::fs::OpenOptionsExt as _, path::Path};

use anyhow::{bail, Context as _, Result};

/// The text of `path`, at most `max_bytes` of it.
pub fn read_text(path: &Path, max_bytes: u64) -> Result<String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .context("opening it")?;
    if !file.metadata()?.is_file() {
        bail!("not a regular file");
    }
    let mut text = String::new();
    file.take(max_bytes + 1)
        .read_to_string(&mut text)
        .context("not text")?;
    if text.len() as u64 > max_bytes {
        bail!("larger than {max_bytes} bytes");
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_small_regular_file_of_text_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "twelve bytes").unwrap();
        assert_eq!(read_text(&file, 12).unwrap(), "twelve bytes");
        let err = |path: &Path, max| format!("{:#}", read_text(path, max).unwrap_err());
        assert_eq!(err(&file, 11), "larger than 11 bytes");
        assert_eq!(err(dir.path(), 100), "not a regular file");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        // No writer: a blocking open would hang here.
        assert_eq!(err(&fifo, 100), "not a regular file");
        assert!(err(Path::new("/dev/zero"), 100).contains("not a regular file"));
        std::fs::write(&file, [0xff, 0xfe]).unwrap();
        assert!(err(&file, 100).starts_with("not text"));
        assert!(err(&dir.path().join("missing"), 100).starts_with("opening it"));
    }
}
