//! Every Debian package the project's tasks need, in one place: what each is
//! for, and the file that shows it is there. A package counts as installed
//! only when the file it is needed for exists (the program on PATH, or a
//! header or library at its path), never by a neighbour's program: a cross
//! compiler on PATH without its C library headers passes a PATH test and
//! fails the build (issue 28).
//!
//! Packages are installed with `--no-install-recommends`, so what a named
//! package only *recommends* and the project uses must be named here too.
//! The Recommends of every package below were read with `apt-cache show`
//! (bookworm, 2026-12-07); the one the project needs is
//! `libc6-dev-arm64-cross` (gcc-aarch64-linux-gnu's). Left out on purpose:
//! podman's buildah, slirp4netns, fuse-overlayfs, uidmap and catatonit (the
//! container test runs rootful with `--network none`, no `--init`, on the
//! native overlay driver); runc's criu; npm's git and node-tap (pinned
//! registry packages only); prometheus's node-exporter; qemu's gui, ovmf,
//! efi and block-extra packages (the guests boot `-kernel` with no display,
//! NIC or disk); mmdebstrap's fakechroot, fakeroot, arch-test and uidmap
//! (it runs as root, for the host's architecture).
use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{bail, Result};

use crate::cmd;

/// What shows that a package is installed.
#[derive(Clone, Copy, Debug)]
pub enum Provides {
    /// A program, found on PATH.
    Program(&'static str),
    /// A file at an absolute path (a header, a library).
    File(&'static str),
}

impl Provides {
    fn is_present(self) -> bool {
        match self {
            Provides::Program(program) => cmd::on_path(program).is_some(),
            Provides::File(path) => Path::new(path).is_file(),
        }
    }

    fn describe(self) -> String {
        match self {
            Provides::Program(program) => format!("the program {program}"),
            Provides::File(path) => path.to_owned(),
        }
    }
}

/// One Debian package and what shows it is installed.
#[derive(Clone, Copy, Debug)]
pub struct Need {
    pub package: &'static str,
    pub provides: Provides,
}

/// The packages one task needs, and what for (said when they are installed).
#[derive(Debug)]
pub struct Needs {
    pub what_for: &'static str,
    pub needs: &'static [Need],
}

const fn program(package: &'static str, program: &'static str) -> Need {
    Need {
        package,
        provides: Provides::Program(program),
    }
}

const fn file(package: &'static str, path: &'static str) -> Need {
    Need {
        package,
        provides: Provides::File(path),
    }
}

/// The static amd64 binary: ring (rustls's cryptography) compiles C, so cc
/// needs a C compiler and C library for musl.
pub const STATIC_AMD64: Needs = Needs {
    what_for: "the static amd64 build",
    needs: &[
        program("musl-tools", "musl-gcc"),
        file("musl-dev", "/usr/include/x86_64-linux-musl/stdio.h"),
    ],
};

/// The static arm64 binary: a cross compiler, which links too, and its C
/// library headers, which the compiler only recommends.
pub const STATIC_ARM64: Needs = Needs {
    what_for: "the static arm64 build",
    needs: &[
        program("gcc-aarch64-linux-gnu", "aarch64-linux-gnu-gcc"),
        file(
            "libc6-dev-arm64-cross",
            "/usr/aarch64-linux-gnu/include/stdio.h",
        ),
    ],
};

/// Real programs the end-to-end tests run. The watchers are traced besides
/// the tests' own workload (watchmedo stands for python3-watchdog, which the
/// tests use as a module); Prometheus scrapes the agent, and its promtool
/// checks the metrics and the alert rules.
pub const TESTS: Needs = Needs {
    what_for: "the tests",
    needs: &[
        program("inotify-tools", "inotifywait"),
        program("fswatch", "fswatch"),
        program("entr", "entr"),
        program("watchman", "watchman"),
        program("python3-watchdog", "watchmedo"),
        program("syncthing", "syncthing"),
        // Node.js and npm, for chokidar (setup's NPM_PACKAGES).
        program("nodejs", "node"),
        program("npm", "npm"),
        program("prometheus", "promtool"),
        program("prometheus", "prometheus"),
        // `man -l` renders the man pages dist makes.
        program("man-db", "man"),
        // A report's timeline: xmllint checks the SVG, headless Chromium
        // renders it.
        program("libxml2-utils", "xmllint"),
        program("chromium", "chromium"),
        // The image under a real runtime (tests/tests/container.rs); runc,
        // as crun refuses this machine kind's hybrid cgroup layout.
        program("podman", "podman"),
        file("runc", "/usr/sbin/runc"),
        // TLS material for the agent's endpoint tests.
        program("openssl", "openssl"),
        // The kernel's own struct sizes, read apart from the tool's BTF
        // parser (what a watch costs).
        program("bpftool", "bpftool"),
    ],
};

/// The guests' initramfs is a cpio archive.
pub const INITRAMFS: Needs = Needs {
    what_for: "the guests' initramfs",
    needs: &[program("cpio", "cpio")],
};

/// QEMU for the amd64 guests (seabios and ipxe come as its dependencies).
pub const QEMU_AMD64: Needs = Needs {
    what_for: "the VM kernel matrix (amd64)",
    needs: &[program("qemu-system-x86", "qemu-system-x86_64")],
};

/// QEMU for the arm64 guest.
pub const QEMU_ARM64: Needs = Needs {
    what_for: "the VM kernel matrix (arm64)",
    needs: &[program("qemu-system-arm", "qemu-system-aarch64")],
};

/// The peers the benchmark compares with.
pub const BENCH: Needs = Needs {
    what_for: "the benchmark's peers and its node-scale holders",
    needs: &[
        program("bpftrace", "bpftrace"),
        // inotifywait -m -r: the real holders of the node-scale rows.
        program("inotify-tools", "inotifywait"),
    ],
};

/// What `cargo xtask fresh` builds its Debian root with.
pub const FRESH: Needs = Needs {
    what_for: "the fresh-root check",
    needs: &[program("mmdebstrap", "mmdebstrap")],
};

/// Every list, for the checks below.
#[cfg(test)]
const ALL: [&Needs; 8] = [
    &STATIC_AMD64,
    &STATIC_ARM64,
    &TESTS,
    &INITRAMFS,
    &QEMU_AMD64,
    &QEMU_ARM64,
    &BENCH,
    &FRESH,
];

/// `apt-get update` once per run: the first install reads the lists, later
/// ones reuse them.
static LISTS_READ: AtomicBool = AtomicBool::new(false);

/// Installs the packages of `needs` whose file is missing, saying what for;
/// fails unless every file is there afterwards.
pub fn ensure(needs: &Needs) -> Result<()> {
    let mut missing: Vec<&str> = needs
        .needs
        .iter()
        .filter(|need| !need.provides.is_present())
        .map(|need| need.package)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    cmd::step(&format!(
        "installing {} for {} (apt-get install)",
        missing.join(" "),
        needs.what_for
    ));
    if !LISTS_READ.swap(true, Ordering::SeqCst) {
        cmd::run(Command::new("apt-get").arg("update").arg("-q"))?;
    }
    cmd::run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    let still_missing: Vec<String> = needs
        .needs
        .iter()
        .filter(|need| !need.provides.is_present())
        .map(|need| format!("{} ({})", need.provides.describe(), need.package))
        .collect();
    if !still_missing.is_empty() {
        bail!(
            "apt-get installed {} for {}, but these are still missing: {}",
            missing.join(" "),
            needs.what_for,
            still_missing.join(", ")
        );
    }
    Ok(())
}

/// The Debian mirror the host's apt uses (the one this machine can reach):
/// the VM matrix takes its kernels from it, the fresh-root check its root.
pub fn host_debian_uri() -> Result<String> {
    let mut candidates = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        candidates.extend(dir.flatten().map(|e| e.path()));
    }
    for file in candidates {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for line in text.lines() {
            let line = line.trim();
            // deb822 (`URIs: ...`) or one-line (`deb URI suite ...`).
            let uri = line
                .strip_prefix("URIs:")
                .and_then(|rest| rest.split_whitespace().next())
                .or_else(|| {
                    let mut words = line.strip_prefix("deb ")?.split_whitespace();
                    words.find(|w| w.contains("://"))
                });
            // Debian's main archive, not its security archive nor a
            // third party's repository.
            let debian = |u: &&str| u.trim_end_matches('/').ends_with("/debian");
            if let Some(uri) = uri.filter(debian) {
                return Ok(uri.to_owned());
            }
        }
    }
    bail!("no Debian mirror (a URI ending in /debian) in /etc/apt/sources.list(.d): the VM matrix and the fresh-root check download from the host's mirror")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_need_names_a_package_and_a_program_or_an_absolute_path() {
        for needs in ALL {
            for need in needs.needs {
                assert!(!need.package.is_empty() && !need.package.contains(' '));
                match need.provides {
                    Provides::Program(p) => assert!(!p.is_empty() && !p.contains('/'), "{need:?}"),
                    Provides::File(p) => assert!(p.starts_with('/'), "{need:?}"),
                }
            }
        }
    }

    /// The regression of issue 28: the cross compiler alone passes a PATH
    /// test, and the build then fails on `bits/libc-header-start.h`.
    #[test]
    fn each_static_build_needs_its_c_library_headers_not_only_a_compiler() {
        for (needs, include) in [
            (&STATIC_AMD64, "/usr/include/x86_64-linux-musl/"),
            (&STATIC_ARM64, "/usr/aarch64-linux-gnu/include/"),
        ] {
            assert!(
                needs.needs.iter().any(|need| matches!(
                    need.provides,
                    Provides::File(path) if path.starts_with(include)
                )),
                "{} checks no header under {include}",
                needs.what_for
            );
        }
    }

    #[test]
    fn a_missing_file_is_missing_and_a_present_one_present() {
        assert!(Provides::File("/proc/self/status").is_present());
        assert!(!Provides::File("/nonexistent/inotify-trace/header.h").is_present());
        assert!(!Provides::Program("inotify-trace-no-such-program").is_present());
    }
}
