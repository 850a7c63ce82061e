//! `cargo xtask fresh`: the README's two commands on a machine that has
//! nothing. A minimal Debian root of the host's release (mmdebstrap, from
//! Debian's registry; cached under `target/fresh/`) gets what a new machine
//! of this kind comes with and nothing more: Debian's C compiler, git, curl,
//! python3 with pip, and rustup with a minimal toolchain, installed inside
//! as a new user would. A clean clone of this repository's HEAD then runs,
//! in a chroot with /proc, /sys (tracefs with it) and /dev bound, the
//! README's run command and the test command's install and build steps
//! (`cargo xtask test --no-run`). Each step is named and timed; the first
//! that fails ends the check and is named in its error.
//!
//! Only downloads are cached between runs (the base root's tarball and
//! apt's .deb files): what is installed is installed afresh every time.
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{bail, Context as _, Result};

use crate::{cmd, dist, packages};

/// What a new machine of this kind has that Debian provides, beside the
/// essential packages and apt: the README assumes a C compiler (rustc links
/// with it), git (to clone), curl (rustup's installer), python3 with pip.
/// Nothing the project's own setup installs belongs here.
const BASE: [&str; 8] = [
    "ca-certificates",
    "curl",
    "gcc",
    "libc6-dev",
    "git",
    "python3",
    "python3-pip",
    "procps",
];

/// Where the clone lives inside the root.
const CLONE: &str = "/root/inotify-trace";

/// One step of the check: its name and the shell command run in the root.
struct Step {
    name: &'static str,
    script: String,
}

pub fn run(toolchain: Option<String>) -> Result<()> {
    packages::ensure(&packages::FRESH)?;
    let toolchain = match toolchain {
        Some(toolchain) => toolchain,
        None => host_rustc_version()?,
    };
    let dir = cmd::target_dir()?.join("fresh");
    std::fs::create_dir_all(dir.join("apt-archives/partial"))?;
    let suite = host_suite()?;
    let uri = packages::host_debian_uri()?;
    let sources = sources(&uri, &suite);
    let tarball = base_tarball(&dir, &suite, &sources)?;

    let root = dir.join("root");
    if root.exists() {
        unmount_all(&root);
        remove_root(&root)?;
    }
    std::fs::create_dir_all(&root)?;
    cmd::step(&format!(
        "unpacking a fresh Debian {suite} root into {}",
        root.display()
    ));
    cmd::run(
        Command::new("tar")
            .arg("-xf")
            .arg(&tarball)
            .arg("-C")
            .arg(&root),
    )?;
    std::fs::write(root.join("etc/apt/sources.list.d/debian.sources"), &sources)?;
    let _ = std::fs::remove_file(root.join("etc/apt/sources.list"));
    std::fs::copy("/etc/resolv.conf", root.join("etc/resolv.conf"))
        .context("copying /etc/resolv.conf into the root (its DNS)")?;
    trust_the_machines_authorities(&root)?;
    cmd::step(&format!(
        "cloning this repository's HEAD into the root ({CLONE}; uncommitted changes are not in it)"
    ));
    cmd::run(
        Command::new("git")
            .args(["clone", "--quiet", "--no-hardlinks"])
            .arg(cmd::workspace_root())
            .arg(root.join(CLONE.trim_start_matches('/'))),
    )?;

    let mounts = Mounts::bind(&root, &dir.join("apt-archives"))?;
    let steps = steps(&toolchain);
    let started = Instant::now();
    for (i, step) in steps.iter().enumerate() {
        cmd::step(&format!(
            "fresh root, step {}/{}: {} ($ {})",
            i + 1,
            steps.len(),
            step.name,
            step.script
        ));
        let step_started = Instant::now();
        let status = in_root(&root, &step.script)
            .status()
            .context("starting chroot")?;
        if !status.success() {
            bail!(
                "the fresh-root check failed at step {}/{}: {} ({status}, after {:.0} s); \
                 the root is kept in {} for a look (chroot into it; `cargo xtask fresh` \
                 starts afresh)",
                i + 1,
                steps.len(),
                step.name,
                step_started.elapsed().as_secs_f64(),
                root.display()
            );
        }
        cmd::step(&format!(
            "fresh root, step {}/{} passed in {:.0} s",
            i + 1,
            steps.len(),
            step_started.elapsed().as_secs_f64()
        ));
    }
    let clone = root.join(CLONE.trim_start_matches('/'));
    for (arch, binary) in dist::Arch::ALL.into_iter().map(|arch| {
        (
            arch,
            clone.join("dist").join(arch.name()).join("inotify-trace"),
        )
    }) {
        dist::check_static_elf(&binary, arch)
            .with_context(|| format!("the fresh root's static {} binary", arch.name()))?;
    }
    drop(mounts);
    cmd::step(&format!(
        "fresh root: all {} steps passed in {:.0} s (rustup {toolchain}, Debian {suite}); \
         the static amd64 and arm64 binaries are static ELF files of their architecture",
        steps.len(),
        started.elapsed().as_secs_f64()
    ));
    remove_root(&root)
}

/// The steps, in the order a newcomer takes them.
fn steps(toolchain: &str) -> Vec<Step> {
    vec![
        Step {
            name: "rustup and a minimal Rust toolchain, as a new user installs them",
            script: format!(
                "curl --proto '=https' --tlsv1.2 -sSf https://static.rust-lang.org/rustup/rustup-init.sh \
                 | sh -s -- -y --no-modify-path --profile minimal --default-toolchain {toolchain}"
            ),
        },
        Step {
            name: "the README's run command (traces for 3 s)",
            script: format!("cd {CLONE} && cargo xtask run -- --quiet --duration 3s"),
        },
        Step {
            name: "the README's test command, its installs and builds (--no-run)",
            script: format!("cd {CLONE} && cargo xtask test --no-run"),
        },
        Step {
            name: "every binary is there: host (debug, release), static amd64 and arm64, the tests",
            script: format!(
                "cd {CLONE} && ls -l target/release/inotify-trace target/debug/inotify-trace \
                 dist/amd64/inotify-trace dist/arm64/inotify-trace \
                 && ls target/debug/deps/live-* target/debug/deps/recording-* >/dev/null"
            ),
        },
    ]
}

/// `chroot ROOT` running `script` in bash with a new machine's environment:
/// nothing of this session's variables but what the machine itself sets.
fn in_root(root: &Path, script: &str) -> Command {
    let mut command = Command::new("chroot");
    command.arg(root).args(["/usr/bin/env", "-i"]);
    for name in TRUST_VARIABLES {
        if let Some(value) = std::env::var_os(name) {
            let mut pair = std::ffi::OsString::from(format!("{name}="));
            pair.push(value);
            command.arg(pair);
        }
    }
    command.args([
        "HOME=/root",
        "USER=root",
        "LANG=C.UTF-8",
        "TERM=dumb",
        "PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        // As on the machines of this kind: rustup fetches nothing by itself.
        "RUSTUP_AUTO_INSTALL=0",
        "/bin/bash",
        "-euo",
        "pipefail",
        "-c",
        script,
    ]);
    command
}

/// Where a machine keeps the certificate authorities it adds to Debian's
/// (on this kind, the workplace's egress proxy signs every TLS connection).
const LOCAL_AUTHORITIES: &str = "/usr/local/share/ca-certificates";

/// The variables by which a machine of this kind points its tools at its
/// certificate bundle: part of the machine, so the root's commands get them.
const TRUST_VARIABLES: [&str; 7] = [
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "NODE_EXTRA_CA_CERTS",
    "PIP_CERT",
    "REQUESTS_CA_BUNDLE",
];

/// The machine's own certificate authorities, in the root's bundle too: a
/// new machine of this kind trusts them from the start.
fn trust_the_machines_authorities(root: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(LOCAL_AUTHORITIES) else {
        return Ok(());
    };
    let into = root.join(LOCAL_AUTHORITIES.trim_start_matches('/'));
    std::fs::create_dir_all(&into)?;
    for entry in entries.flatten() {
        std::fs::copy(entry.path(), into.join(entry.file_name()))?;
    }
    cmd::run(
        Command::new("chroot")
            .arg(root)
            .args(["update-ca-certificates", "--fresh"]),
    )
    .context("adding the machine's certificate authorities to the root's bundle")
}

/// The host's release (`VERSION_CODENAME` of /etc/os-release).
fn host_suite() -> Result<String> {
    let release = std::fs::read_to_string("/etc/os-release").context("reading /etc/os-release")?;
    release
        .lines()
        .find_map(|line| line.strip_prefix("VERSION_CODENAME="))
        .map(|name| name.trim_matches('"').to_owned())
        .filter(|name| !name.is_empty())
        .context("/etc/os-release names no VERSION_CODENAME: the fresh root copies the host's Debian release")
}

/// `1.95.0` from `rustc 1.95.0 (...)`: the root gets the toolchain this
/// machine kind comes with, unless told otherwise.
fn host_rustc_version() -> Result<String> {
    let version = cmd::output(Command::new("rustc").arg("--version"))?;
    version
        .split_whitespace()
        .nth(1)
        .map(str::to_owned)
        .with_context(|| format!("unexpected `rustc --version`: {version:?}"))
}

/// The root's apt sources: the release, its updates and its security
/// archive, from the mirror the host uses.
fn sources(uri: &str, suite: &str) -> String {
    let security = format!("{}-security", uri.trim_end_matches('/'));
    format!(
        "Types: deb\nURIs: {uri}\nSuites: {suite} {suite}-updates\nComponents: main\n\
         Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
         Types: deb\nURIs: {security}\nSuites: {suite}-security\nComponents: main\n\
         Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
}

/// The base root as a tarball, made once per release and base list.
fn base_tarball(dir: &Path, suite: &str, sources: &str) -> Result<PathBuf> {
    let tarball = dir.join(format!("debian-{suite}-{}.tar", BASE.join("+")));
    if tarball.is_file() {
        return Ok(tarball);
    }
    let list = dir.join("base.sources");
    std::fs::write(&list, sources)?;
    let partial = tarball.with_extension("tar.partial");
    cmd::step(&format!(
        "making a minimal Debian {suite} root with {} (mmdebstrap, once; cached as {})",
        BASE.join(" "),
        tarball.display()
    ));
    cmd::run(
        Command::new("mmdebstrap")
            .args(["--quiet", "--mode=root", "--variant=apt", "--format=tar"])
            .arg(format!("--include={}", BASE.join(",")))
            .arg(suite)
            .arg(&partial)
            .arg(&list),
    )?;
    std::fs::rename(&partial, &tarball)?;
    Ok(tarball)
}

/// The mounts the root runs with, undone when dropped (also when a step
/// fails), so a kept root holds no mount of the host's.
struct Mounts {
    root: PathBuf,
}

impl Mounts {
    fn bind(root: &Path, apt_archives: &Path) -> Result<Mounts> {
        let mounts = Mounts {
            root: root.to_owned(),
        };
        let mount = |args: &[&str], target: &str| {
            cmd::run(Command::new("mount").args(args).arg(root.join(target)))
        };
        mount(&["-t", "proc", "proc"], "proc")?;
        // tracefs and cgroup2 come with /sys; rslave keeps the root's own
        // mounts (a tracefs it mounts) from reaching back to the host.
        for (dir, host) in [("sys", "/sys"), ("dev", "/dev")] {
            mount(&["--rbind", host], dir)?;
            mount(&["--make-rslave"], dir)?;
        }
        let apt = apt_archives.to_str().context("non-UTF-8 target dir")?;
        mount(&["--bind", apt], "var/cache/apt/archives")?;
        Ok(mounts)
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        unmount_all(&self.root);
    }
}

/// Unmounts whatever is mounted below `root` (a root left by a run that was
/// killed, too), deepest first.
fn unmount_all(root: &Path) {
    for dir in ["var/cache/apt/archives", "dev", "sys", "proc"] {
        let target = root.join(dir);
        let _ = Command::new("umount")
            .args(["--recursive", "--lazy"])
            .arg(&target)
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Removes the root, but never while anything is mounted below it: a bind
/// of /dev or /sys still in place would take the host's files with it.
fn remove_root(root: &Path) -> Result<()> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let still = mounted_below(&mountinfo, root);
    if !still.is_empty() {
        bail!(
            "{} still has mounts below it ({}): unmount them (umount -R) before the next run",
            root.display(),
            still.join(", ")
        );
    }
    std::fs::remove_dir_all(root).with_context(|| format!("removing {}", root.display()))
}

/// The mount points in `mountinfo` (/proc/self/mountinfo's text) at or
/// below `root`. The fifth field is the mount point, with spaces and the
/// like escaped as octal, which a root under target/ does not have.
fn mounted_below(mountinfo: &str, root: &Path) -> Vec<String> {
    let root = root.to_string_lossy();
    let root = root.trim_end_matches('/');
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| *point == root || point.starts_with(&format!("{root}/")))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_below_the_root_are_found_and_neighbours_are_not() {
        let mountinfo = "\
22 1 8:1 / / rw - ext4 /dev/vda rw
30 22 0:5 / /t/fresh/root/dev rw - devtmpfs udev rw
31 30 0:6 / /t/fresh/root/dev/pts rw - devpts devpts rw
32 22 0:7 / /t/fresh/rootfs rw - tmpfs tmpfs rw
";
        assert_eq!(
            mounted_below(mountinfo, Path::new("/t/fresh/root")),
            ["/t/fresh/root/dev", "/t/fresh/root/dev/pts"]
        );
        assert!(mounted_below(mountinfo, Path::new("/t/other")).is_empty());
    }

    #[test]
    fn the_root_gets_the_release_its_updates_and_its_security_archive() {
        let sources = sources("http://deb.debian.org/debian", "bookworm");
        assert!(sources
            .contains("URIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n"));
        assert!(sources
            .contains("URIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n"));
    }
}
