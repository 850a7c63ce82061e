//! The running kernel's struct sizes as bpftool reads its BTF: the ground
//! truth for what the tool computes with its own BTF parser.
use std::process::Command;

/// `sizeof(struct NAME)` in the running kernel.
pub fn struct_size(name: &str) -> u64 {
    let out = Command::new("bpftool")
        .args([
            "btf",
            "dump",
            "file",
            "/sys/kernel/btf/vmlinux",
            "format",
            "raw",
        ])
        .output()
        .expect("bpftool (Debian's; cargo xtask test installs it)");
    assert!(out.status.success(), "{out:?}");
    let prefix = format!("STRUCT '{name}' size=");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| {
            let rest = &line[line.find(&prefix)? + prefix.len()..];
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no struct {name} in the kernel's BTF"))
}

/// The kernel's own estimate of what one watch pins, `INOTIFY_WATCH_COST`:
/// `sizeof(struct inotify_inode_mark) + 2 * sizeof(struct inode)`.
pub fn watch_cost() -> u64 {
    struct_size("inotify_inode_mark") + 2 * struct_size("inode")
}
