//! A guest's initramfs: busybox, the static tracer, the static workload and
//! test executables, `/init` and the list of checks; no disk image. An
//! uncompressed cpio archive (newc), which the kernel unpacks faster under
//! emulation than a gzipped one.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result};

use crate::cmd;

/// What goes into a guest of one architecture.
pub struct Contents<'a> {
    /// busybox-static's `bin/busybox` for the architecture.
    pub busybox: &'a Path,
    pub tracer: &'a Path,
    pub workload: &'a Path,
    /// The benchmark's load generator (`cargo xtask vm --bench`).
    pub load: &'a Path,
    /// Each test file's name and its executable.
    pub tests: &'a [(String, PathBuf)],
}

/// Lays out the guest's root under `stage` and archives it to `archive`.
pub fn build(contents: &Contents, stage: &Path, archive: &Path) -> Result<()> {
    let _ = std::fs::remove_dir_all(stage);
    for dir in ["bin", "t/deps", "etc", "proc", "sys", "dev", "tmp", "root"] {
        std::fs::create_dir_all(stage.join(dir))?;
    }
    let copy = |from: &Path, to: &str| -> Result<()> {
        std::fs::copy(from, stage.join(to))
            .with_context(|| format!("copying {} into the initramfs", from.display()))?;
        Ok(())
    };
    copy(contents.busybox, "bin/busybox")?;
    copy(contents.tracer, "t/inotify-trace")?;
    // Where the tests look for it: next to the folder of their executable.
    copy(contents.workload, "t/inotify-workload")?;
    copy(contents.load, "t/inotify-load")?;
    for (suite, executable) in contents.tests {
        copy(executable, &format!("t/deps/{suite}"))?;
    }
    write_executable(&stage.join("init"), include_str!("init.sh"))?;
    std::fs::write(stage.join("t/bench.sh"), include_str!("bench.sh"))?;
    std::fs::write(stage.join("t/checks"), super::checks::list())?;
    // The user and group names the tools print or take.
    std::fs::write(
        stage.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    std::fs::write(stage.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;

    crate::packages::ensure(&crate::packages::INITRAMFS)?;
    let out = std::fs::File::create(archive)?;
    // `find .` lists the root first, so every folder precedes its files.
    let find = Command::new("find")
        .arg(".")
        .current_dir(stage)
        .stdout(Stdio::piped())
        .spawn()?;
    cmd::run(
        Command::new("cpio")
            .args(["--quiet", "-o", "-H", "newc", "-R", "0:0"])
            .current_dir(stage)
            .stdin(find.stdout.context("find's output")?)
            .stdout(out),
    )
}

fn write_executable(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}
