//! Installs what the eBPF build and the tracer need, each step only when it
//! is missing: rust-src, rustfmt and clippy, a bpf-linker built against the
//! LLVM of this very toolchain, and a tracefs mount.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

use crate::{cmd, packages};

/// The bpf-linker release known to work with the pinned aya crates.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// LLVM majors that bpf-linker has a feature for.
const BPF_LINKER_LLVM_MAJORS: &[u32] = &[21, 22, 23];
const TRACEFS: &str = "/sys/kernel/tracing";

pub fn all() -> Result<()> {
    rustup_components()?;
    bpf_linker()?;
    tracefs()
}

/// The toolchain's components the project needs: rust-src (`-Z
/// build-std=core` compiles `core` for the BPF target from source), and
/// rustfmt and clippy for the lints, which rustup's minimal profile leaves
/// out.
const COMPONENTS: [&str; 3] = ["rust-src", "rustfmt", "clippy"];

fn rustup_components() -> Result<()> {
    let installed = cmd::output(Command::new("rustup").args(["component", "list", "--installed"]))?;
    // Installed components are listed as `rust-src`, `clippy-x86_64-...`.
    let is_installed = |component: &str| {
        installed
            .lines()
            .any(|line| line == component || line.starts_with(&format!("{component}-")))
    };
    for component in COMPONENTS.into_iter().filter(|c| !is_installed(c)) {
        cmd::step(&format!(
            "installing {component} (rustup component add {component})"
        ));
        cmd::run(Command::new("rustup").args(["component", "add", component]))?;
    }
    Ok(())
}

/// What `rustc -vV` says about the toolchain's LLVM.
struct RustcLlvm {
    major: u32,
    /// The toolchain's own `lib/libLLVM.so.*`, which has the LLVM C API.
    library: PathBuf,
}

fn rustc_llvm() -> Result<RustcLlvm> {
    let verbose = cmd::output(Command::new("rustc").arg("-vV"))?;
    let version = verbose
        .lines()
        .find_map(|line| line.strip_prefix("LLVM version: "))
        .context("`rustc -vV` printed no LLVM version")?;
    let major = version
        .split('.')
        .next()
        .and_then(|m| m.trim().parse().ok())
        .with_context(|| format!("unexpected LLVM version {version:?}"))?;
    let sysroot = cmd::output(Command::new("rustc").args(["--print", "sysroot"]))?;
    let lib = Path::new(sysroot.trim()).join("lib");
    let library = fs::read_dir(&lib)
        .with_context(|| format!("reading {}", lib.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("libLLVM.so.{major}")))
        })
        .with_context(|| format!("no libLLVM.so.{major}* in {}", lib.display()))?;
    Ok(RustcLlvm { major, library })
}

/// A bpf-linker is usable when it starts and its dynamic LLVM (if any) has
/// the same major as rustc's: a mismatch fails at link time with
/// `Invalid record`.
fn bpf_linker() -> Result<()> {
    let llvm = rustc_llvm()?;
    match installed_linker_llvm()? {
        LinkerState::Matches => return Ok(()),
        LinkerState::Static => {
            cmd::step("bpf-linker found, statically linked: assuming its LLVM matches rustc's");
            return Ok(());
        }
        LinkerState::Missing => cmd::step("bpf-linker not found"),
        LinkerState::Broken(why) => cmd::step(&format!("bpf-linker is unusable ({why})")),
        LinkerState::Other(major) if major == llvm.major => return Ok(()),
        LinkerState::Other(major) => cmd::step(&format!(
            "bpf-linker uses LLVM {major}, rustc uses LLVM {}",
            llvm.major
        )),
    }
    if !BPF_LINKER_LLVM_MAJORS.contains(&llvm.major) {
        bail!(
            "rustc uses LLVM {}, but bpf-linker {BPF_LINKER_VERSION} only supports LLVM {BPF_LINKER_LLVM_MAJORS:?}",
            llvm.major
        );
    }
    // bpf-linker's llvm-sys looks for `$LLVM_PREFIX/lib/libLLVM.so`; the
    // toolchain ships the library under a versioned name only. The prefix
    // stays in CARGO_HOME because the linker keeps it as its rpath.
    let prefix = cargo_home()?.join(format!("bpf-linker-llvm-{}", llvm.major));
    let lib = prefix.join("lib");
    fs::create_dir_all(&lib).with_context(|| format!("creating {}", lib.display()))?;
    let file_name = llvm
        .library
        .file_name()
        .context("LLVM library has no name")?;
    for link in [lib.join("libLLVM.so"), lib.join(file_name)] {
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&llvm.library, &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    cmd::step(&format!(
        "installing bpf-linker {BPF_LINKER_VERSION} against rustc's LLVM {} (cargo install, about a minute)",
        llvm.major
    ));
    cmd::run(
        Command::new(cmd::cargo_program())
            .env("LLVM_PREFIX", &prefix)
            .args(["install", "--force", "--locked", "--no-default-features"])
            .args(["--features", &format!("llvm-{}", llvm.major)])
            .arg(format!("bpf-linker@{BPF_LINKER_VERSION}")),
    )?;
    match installed_linker_llvm()? {
        LinkerState::Other(major) if major == llvm.major => Ok(()),
        LinkerState::Matches | LinkerState::Static => Ok(()),
        _ => bail!("bpf-linker was installed but is still unusable; see the output above"),
    }
}

enum LinkerState {
    Missing,
    Broken(String),
    /// Linked statically: its LLVM cannot be told from outside.
    Static,
    Matches,
    Other(u32),
}

fn installed_linker_llvm() -> Result<LinkerState> {
    let Some(linker) = find_bpf_linker()? else {
        return Ok(LinkerState::Missing);
    };
    let ldd = match Command::new("ldd").arg(&linker).output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(_) => return Ok(LinkerState::Static),
    };
    let Some(line) = ldd.lines().find(|l| l.contains("libLLVM")) else {
        return Ok(LinkerState::Static);
    };
    if line.contains("not found") {
        return Ok(LinkerState::Broken(format!(
            "its LLVM library is gone: {}",
            line.trim()
        )));
    }
    // e.g. `libLLVM.so.22.1-rust-1.95.0-stable => ...` or `libLLVM-22.so => ...`
    let name = line.split_whitespace().next().unwrap_or_default();
    let major = name
        .trim_start_matches("libLLVM")
        .trim_start_matches(".so.")
        .trim_start_matches('-')
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|m| m.parse().ok());
    Ok(match major {
        Some(major) => LinkerState::Other(major),
        None => LinkerState::Matches,
    })
}

/// bpf-linker on PATH, or where `cargo install` puts it.
fn find_bpf_linker() -> Result<Option<PathBuf>> {
    if let Some(linker) = cmd::on_path("bpf-linker") {
        return Ok(Some(linker));
    }
    let installed = cargo_home()?.join("bin/bpf-linker");
    Ok(installed.is_file().then_some(installed))
}

fn cargo_home() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        return Ok(PathBuf::from(home));
    }
    let home = std::env::var_os("HOME").context("neither CARGO_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cargo"))
}

/// aya attaches tracepoints through tracefs. The tracer mounts it by itself
/// too, but tests and benchmarks expect it in place.
fn tracefs() -> Result<()> {
    if Path::new(TRACEFS).join("events").is_dir() {
        return Ok(());
    }
    cmd::step(&format!("mounting tracefs at {TRACEFS}"));
    cmd::run(Command::new("mount").args(["-t", "tracefs", "tracefs", TRACEFS]))
        .with_context(|| format!("mount tracefs by hand: mount -t tracefs tracefs {TRACEFS}"))
}

/// What the tests take from npm, pinned, installed globally: the Node.js
/// watcher the culprit tests run (the same string as tests/src/watchers.rs's
/// CHOKIDAR), and the Prometheus Operator's CRD schemas (as validators) for
/// the ServiceMonitor and PodMonitor overlays.
const NPM_PACKAGES: [&str; 2] = [
    "chokidar@4.0.3",
    "@kubernetes-models/prometheus-operator@6.0.0",
];

/// The offline validator of Kubernetes manifests the tests run, from PyPI,
/// pinned (its schemas are those of its Kubernetes version).
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.31.0";

/// Installs what the tests run that is missing (apt-get, pip and npm, as
/// root).
pub fn test_programs() -> Result<()> {
    let validator = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--version"])
        .output()
        .is_ok_and(|out| {
            out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "1.31.0"
        });
    if !validator {
        cmd::step(&format!(
            "installing {KUBERNETES_VALIDATE} for the tests (pip)"
        ));
        // Debian's own python3 refuses a system-wide pip install (PEP 668)
        // unless told; the machine's pyenv python ignores the variable.
        cmd::run(
            Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", KUBERNETES_VALIDATE])
                .env("PIP_ROOT_USER_ACTION", "ignore")
                .env("PIP_BREAK_SYSTEM_PACKAGES", "1"),
        )?;
    }
    packages::ensure(&packages::TESTS)?;
    NPM_PACKAGES.into_iter().try_for_each(npm_global)
}

/// Installs `package@version` with npm, globally, unless that version is
/// there already.
fn npm_global(package: &str) -> Result<()> {
    // A scoped name starts with `@` too: the version is after the last.
    let (name, version) = package.rsplit_once('@').expect("package@version");
    let root = cmd::output(Command::new("npm").args(["root", "-g"]))?;
    let manifest = Path::new(root.trim()).join(name).join("package.json");
    let installed = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|json| json["version"] == version);
    if installed {
        return Ok(());
    }
    cmd::step(&format!(
        "installing {package} for the tests (npm install -g)"
    ));
    cmd::run(Command::new("npm").args(["install", "-g", "--no-audit", "--no-fund", package]))
}
