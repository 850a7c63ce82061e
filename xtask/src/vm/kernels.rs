//! The kernels the tool is proven on, and fetching them: Debian's cloud
//! kernel packages (and busybox-static for each architecture) from Debian's
//! package registry, with an apt configuration of the project's own under
//! `target/vm/apt`, so the host's apt state is never touched.
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::{cmd, dist::Arch};

/// One kernel of the matrix.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    /// How the matrix names it (`--kernel NAME`).
    pub name: &'static str,
    pub arch: Arch,
    /// Debian's package, pinned: a new ABI is a new line here.
    pub package: &'static str,
    /// Which nodes run a kernel of this line.
    pub stands_for: &'static str,
    /// Whether `auto` must choose fexit there (the kernel allows BPF
    /// trampolines on the syscall functions): a guest that falls back fails.
    pub fexit: bool,
}

/// The matrix: the kernel lines nodes run, amd64 and arm64. To add one, add
/// a line (`apt-cache search linux-image-.*-cloud` with the configuration
/// `cargo xtask vm` writes lists the candidates).
pub const MATRIX: [Kernel; 4] = [
    Kernel {
        name: "5.10-amd64",
        arch: Arch::Amd64,
        package: "linux-image-5.10.0-32-cloud-amd64",
        stands_for: "Debian 11, Amazon Linux 2",
        fexit: true,
    },
    Kernel {
        name: "6.1-amd64",
        arch: Arch::Amd64,
        package: "linux-image-6.1.0-50-cloud-amd64",
        stands_for: "Debian 12, Bottlerocket, COS",
        fexit: true,
    },
    Kernel {
        name: "6.12-amd64",
        arch: Arch::Amd64,
        package: "linux-image-6.12.117+deb13-cloud-amd64",
        stands_for: "Debian 13, newer distributions",
        fexit: true,
    },
    Kernel {
        name: "6.12-arm64",
        arch: Arch::Arm64,
        package: "linux-image-6.12.117+deb13-cloud-arm64",
        stands_for: "Graviton, Ampere",
        fexit: true,
    },
];

/// The apt configuration of the matrix: its own sources, lists and cache.
pub struct Apt {
    dir: PathBuf,
}

impl Apt {
    pub fn new(vm_dir: &Path) -> Result<Apt> {
        let dir = vm_dir.join("apt");
        for sub in ["lists/partial", "cache/archives/partial", "debs"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        std::fs::write(
            dir.join("matrix.sources"),
            sources(&crate::packages::host_debian_uri()?),
        )?;
        Ok(Apt { dir })
    }

    fn options(&self) -> Vec<String> {
        let d = self.dir.display();
        [
            format!("Dir::Etc::SourceList={d}/matrix.sources"),
            "Dir::Etc::SourceParts=/dev/null".to_owned(),
            format!("Dir::State::Lists={d}/lists"),
            format!("Dir::Cache={d}/cache"),
            // Only the package lists: no installed packages, no translations.
            "Dir::State::status=/dev/null".to_owned(),
            "Acquire::Languages=none".to_owned(),
            "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".to_owned(),
            // Downloads land in target/, which apt's sandbox user cannot write.
            "APT::Sandbox::User=root".to_owned(),
            "APT::Architectures::=amd64".to_owned(),
            "APT::Architectures::=arm64".to_owned(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_owned(), o])
        .collect()
    }

    /// The unpacked package `package` (`NAME` or `NAME:ARCH`), downloaded
    /// once: `target/vm/apt/debs/NAME_ARCH/`.
    pub fn unpacked(&self, package: &str, arch: Arch) -> Result<PathBuf> {
        let name = package.split(':').next().unwrap_or(package);
        let out = self
            .dir
            .join("debs")
            .join(format!("{name}_{}", arch.name()));
        if out.join(".unpacked").exists() {
            return Ok(out);
        }
        self.update_once()?;
        let download = self.dir.join("download");
        let _ = std::fs::remove_dir_all(&download);
        std::fs::create_dir_all(&download)?;
        cmd::step(&format!("downloading {name} ({}) from Debian", arch.name()));
        let qualified = format!("{name}:{}", arch.name());
        let status = Command::new("apt-get")
            .args(self.options())
            .args(["-q", "download", &qualified])
            .current_dir(&download)
            .status()
            .context("running apt-get")?;
        if !status.success() {
            bail!(
                "apt-get could not download {qualified}: list the candidates with `apt-cache {} \
                 search '^{name}'` (a kernel: if Debian has moved on to a newer ABI, pin one in \
                 xtask/src/vm/kernels.rs)",
                self.options().join(" ")
            );
        }
        let deb = std::fs::read_dir(&download)?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .context("apt-get download left no .deb")?;
        let _ = std::fs::remove_dir_all(&out);
        cmd::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&out))?;
        std::fs::write(out.join(".unpacked"), "")?;
        std::fs::remove_dir_all(&download)?;
        Ok(out)
    }

    fn update_once(&self) -> Result<()> {
        let stamp = self.dir.join("lists/.updated");
        if stamp.exists() {
            return Ok(());
        }
        cmd::step("reading Debian's package lists for bullseye, bookworm and trixie (apt-get update, with the matrix's own apt configuration)");
        cmd::run(
            Command::new("apt-get")
                .args(self.options())
                .args(["-q", "update"]),
        )?;
        std::fs::write(stamp, "")?;
        Ok(())
    }
}

/// A deb822 sources file of the three suites the matrix's kernels come from.
fn sources(uri: &str) -> String {
    format!(
        "Types: deb\nURIs: {uri}\nSuites: bullseye bookworm trixie\nComponents: main\n\
         Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
}

/// busybox inside an unpacked busybox-static package (`/bin` before trixie,
/// `/usr/bin` since).
pub fn busybox(unpacked: &Path) -> Result<PathBuf> {
    ["usr/bin/busybox", "bin/busybox"]
        .iter()
        .map(|p| unpacked.join(p))
        .find(|p| p.is_file())
        .with_context(|| format!("no busybox in {}", unpacked.display()))
}

/// The kernel image inside an unpacked kernel package.
pub fn vmlinuz(unpacked: &Path) -> Result<PathBuf> {
    std::fs::read_dir(unpacked.join("boot"))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .with_context(|| format!("no boot/vmlinuz-* in {}", unpacked.display()))
}
