//! Rebuild the eBPF object when the linker changes: aya-build only watches
//! this crate's sources, and a new bpf-linker (e.g. for another LLVM) must
//! produce a new object.
use which::which;

fn main() {
    if let Ok(linker) = which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
