//! The few structure offsets the eBPF programs need from the running
//! kernel's BTF (`/sys/kernel/btf/vmlinux`): where a `task_struct` keeps its
//! pid, tgid, comm, credentials and cgroups, where a `cred` keeps its uids
//! and user namespace, and the way from a task's cgroups to its cgroup id.
//!
//! A small reader of the BTF format (`Documentation/bpf/btf.rst`) rather than
//! a crate: aya's BTF parser keeps its type lookups crate-private, and
//! btf-rs, the crate made for this, is LGPL, which this MIT/Apache-2.0 tool
//! would have to carry into every static binary it ships. A dozen offsets need
//! only the type section's framing and struct members.
use std::collections::HashMap;

use bytes::Buf;

use inotify_trace_common::TaskLayout;
use thiserror::Error;

/// Where the running kernel publishes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("not BTF (bad magic or header)")]
    BadHeader,
    #[error("the BTF is cut short")]
    Truncated,
    #[error("unknown BTF kind {0}")]
    UnknownKind(u32),
    #[error("no struct {0} in the kernel's BTF")]
    NoStruct(&'static str),
    #[error("no usable field {1} in struct {0}")]
    NoField(&'static str, &'static str),
}

/// The layout of the running kernel, from [`VMLINUX_BTF`].
pub fn running_kernel_task_layout() -> anyhow::Result<TaskLayout> {
    let data = std::fs::read(VMLINUX_BTF)?;
    Ok(task_layout(&data)?)
}

/// The `task_struct`, `cred` and cgroup offsets the programs read, from raw
/// BTF. The cgroup chain is optional: without it the programs ask the
/// helper for the cgroup id.
pub fn task_layout(data: &[u8]) -> Result<TaskLayout, BtfError> {
    let structs = Structs::parse(
        data,
        &[
            "task_struct",
            "cred",
            "user_namespace",
            "ns_common",
            "css_set",
            "cgroup",
            "kernfs_node",
        ],
    )?;
    let task = |field| structs.member("task_struct", field);
    let cred = |field| structs.member("cred", field);
    let mut layout = TaskLayout {
        known: 1,
        pid: task("pid")?,
        tgid: task("tgid")?,
        comm: task("comm")?,
        cred: task("cred")?,
        cred_uid: cred("uid")?,
        cred_euid: cred("euid")?,
        cred_user_ns: cred("user_ns")?,
        user_ns_inum: structs.member("user_namespace", "ns")?
            + structs.member("ns_common", "inum")?,
        ..TaskLayout::UNKNOWN
    };
    let cgroup_chain = || -> Result<[u32; 4], BtfError> {
        Ok([
            task("cgroups")?,
            structs.member("css_set", "dfl_cgrp")?,
            structs.member("cgroup", "kn")?,
            structs.member("kernfs_node", "id")?,
        ])
    };
    if let Ok([cgroups, dfl_cgrp, cgroup_kn, kernfs_id]) = cgroup_chain() {
        (
            layout.cgroups,
            layout.dfl_cgrp,
            layout.cgroup_kn,
            layout.kernfs_id,
        ) = (cgroups, dfl_cgrp, cgroup_kn, kernfs_id);
        layout.cgroup_known = 1;
    }
    Ok(layout)
}

/// Byte offsets of the members of some named structs.
struct Structs {
    members: HashMap<&'static str, HashMap<String, u32>>,
}

impl Structs {
    /// Walks the type section once, keeping the members of the first struct
    /// of each wanted name (the kernel's BTF has one of each).
    fn parse(data: &[u8], wanted: &[&'static str]) -> Result<Structs, BtfError> {
        let header = Header::parse(data)?;
        let mut members = HashMap::new();
        let mut types = header.types;
        while types.has_remaining() && members.len() < wanted.len() {
            let name_off = u32(&mut types)?;
            let info = u32(&mut types)?;
            let _size_or_type = u32(&mut types)?;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let kind_flag = info >> 31 == 1;
            if kind != KIND_STRUCT {
                skip(&mut types, extra_bytes(kind, vlen)?)?;
                continue;
            }
            let name = header.string(name_off)?;
            let Some(&wanted) = wanted.iter().find(|w| **w == name) else {
                skip(&mut types, vlen * 12)?;
                continue;
            };
            let mut fields = HashMap::new();
            for _ in 0..vlen {
                let member_name = header.string(u32(&mut types)?)?;
                let _type = u32(&mut types)?;
                let offset = u32(&mut types)?;
                // With kind_flag the top 8 bits are a bitfield size.
                let bits = if kind_flag {
                    offset & 0xff_ffff
                } else {
                    offset
                };
                if bits % 8 == 0 && !member_name.is_empty() {
                    fields.insert(member_name.to_owned(), bits / 8);
                }
            }
            members.entry(wanted).or_insert(fields);
        }
        Ok(Structs { members })
    }

    fn member(&self, name: &'static str, field: &'static str) -> Result<u32, BtfError> {
        self.members
            .get(name)
            .ok_or(BtfError::NoStruct(name))?
            .get(field)
            .copied()
            .ok_or(BtfError::NoField(name, field))
    }
}

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;

/// Bytes that follow a type's 12-byte common part, by kind.
fn extra_bytes(kind: u32, vlen: usize) -> Result<usize, BtfError> {
    Ok(match kind {
        // INT, VAR, DECL_TAG: one u32.
        1 | 14 | 17 => 4,
        // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG.
        2 | 7..=12 | 16 | 18 => 0,
        // ARRAY: type, index type, nelems.
        3 => 12,
        // STRUCT, UNION: members; DATASEC: var sections; ENUM64: values.
        4 | 5 | 15 | 19 => 12 * vlen,
        // ENUM: values; FUNC_PROTO: params.
        6 | 13 => 8 * vlen,
        other => return Err(BtfError::UnknownKind(other)),
    })
}

/// The header's view of the type and string sections.
struct Header<'a> {
    types: &'a [u8],
    strings: &'a [u8],
}

impl<'a> Header<'a> {
    fn parse(data: &'a [u8]) -> Result<Header<'a>, BtfError> {
        let mut r = data;
        // The kernel writes its BTF in its own (here: the host's) byte order.
        if r.try_get_u16_ne().map_err(|_| BtfError::BadHeader)? != BTF_MAGIC {
            return Err(BtfError::BadHeader);
        }
        skip(&mut r, 2)?; // version, flags
        let header_len = u32(&mut r)? as usize;
        let (type_off, type_len) = (u32(&mut r)? as usize, u32(&mut r)? as usize);
        let (str_off, str_len) = (u32(&mut r)? as usize, u32(&mut r)? as usize);
        let body = data.get(header_len..).ok_or(BtfError::Truncated)?;
        let section = |off: usize, len: usize| {
            body.get(off..off.checked_add(len).ok_or(BtfError::Truncated)?)
                .ok_or(BtfError::Truncated)
        };
        Ok(Header {
            types: section(type_off, type_len)?,
            strings: section(str_off, str_len)?,
        })
    }

    fn string(&self, offset: u32) -> Result<&'a str, BtfError> {
        let rest = self
            .strings
            .get(offset as usize..)
            .ok_or(BtfError::Truncated)?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(BtfError::Truncated)?;
        // Kernel identifiers are ASCII; anything else matches no wanted name.
        Ok(std::str::from_utf8(&rest[..end]).unwrap_or(""))
    }
}

/// The next native-endian u32 of `buf`.
fn u32(buf: &mut &[u8]) -> Result<u32, BtfError> {
    buf.try_get_u32_ne().map_err(|_| BtfError::Truncated)
}

/// Skips `n` bytes of `buf`.
fn skip(buf: &mut &[u8], n: usize) -> Result<(), BtfError> {
    if buf.remaining() < n {
        return Err(BtfError::Truncated);
    }
    buf.advance(n);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BTF blob in the kernel's encoding, built type by type.
    #[derive(Default)]
    struct Builder {
        types: Vec<u8>,
        strings: Vec<u8>,
    }

    impl Builder {
        fn new() -> Builder {
            Builder {
                types: Vec::new(),
                strings: vec![0],
            }
        }

        fn string(&mut self, s: &str) -> u32 {
            let at = self.strings.len() as u32;
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            at
        }

        fn words(&mut self, words: &[u32]) {
            for w in words {
                self.types.extend_from_slice(&w.to_ne_bytes());
            }
        }

        fn kind(&mut self, name: &str, kind: u32, vlen: u32, kind_flag: bool, extra: &[u32]) {
            let name = self.string(name);
            let info = (u32::from(kind_flag) << 31) | (kind << 24) | vlen;
            self.words(&[name, info, 8]);
            self.words(extra);
        }

        /// A struct whose members are (name, bit offset).
        fn structure(&mut self, name: &str, kind_flag: bool, members: &[(&str, u32)]) {
            self.kind(name, KIND_STRUCT, members.len() as u32, kind_flag, &[]);
            for (member, bits) in members {
                let member = self.string(member);
                self.words(&[member, 1, *bits]);
            }
        }

        fn build(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&BTF_MAGIC.to_ne_bytes());
            out.extend_from_slice(&[1, 0]);
            for word in [
                24,
                0,
                self.types.len() as u32,
                self.types.len() as u32,
                self.strings.len() as u32,
            ] {
                out.extend_from_slice(&word.to_ne_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    /// Every kind before the structs, so a wrong size for any one of them
    /// would misread what follows.
    fn kernel_like() -> Vec<u8> {
        let mut b = Builder::new();
        b.kind("int", 1, 0, false, &[32]);
        b.kind("", 2, 0, false, &[]);
        b.kind("", 3, 0, false, &[1, 1, 16]);
        b.structure("task_struct", false, &[("decoy", 0)]);
        b.kind("", 5, 2, false, &[0, 1, 0, 0, 1, 0]);
        b.kind("e", 6, 2, false, &[0, 1, 0, 2]);
        b.kind("fwd", 7, 0, false, &[]);
        for kind in 8..=12 {
            b.kind("", kind, 0, false, &[]);
        }
        b.kind("", 13, 3, false, &[0, 1, 0, 1, 0, 1]);
        b.kind("v", 14, 0, false, &[1]);
        b.kind(".data", 15, 1, false, &[1, 0, 4]);
        b.kind("float", 16, 0, false, &[]);
        b.kind("tag", 17, 0, false, &[0]);
        b.kind("", 18, 0, false, &[]);
        b.kind("e64", 19, 1, false, &[0, 1, 0]);
        b.structure(
            "task_struct",
            true,
            &[("flags", 3 << 24), ("pid", 2528 * 8), ("tgid", 2532 * 8)],
        );
        b.structure("other", false, &[("pid", 8)]);
        b.build()
    }

    #[test]
    fn finds_the_first_struct_of_each_name_after_every_kind() {
        let mut b = Builder::new();
        b.kind("int", 1, 0, false, &[32]);
        b.structure(
            "task_struct",
            false,
            &[
                ("pid", 1264 * 8),
                ("tgid", 1268 * 8),
                ("comm", 1752 * 8),
                ("cred", 1736 * 8),
            ],
        );
        b.structure(
            "cred",
            false,
            &[("usage", 0), ("uid", 64), ("euid", 192), ("user_ns", 1152)],
        );
        b.structure("cred", false, &[("uid", 800)]);
        b.structure("user_namespace", false, &[("ns", 1728)]);
        b.structure("ns_common", false, &[("inum", 192)]);
        let without_cgroups = b.build();
        let credentials = TaskLayout {
            known: 1,
            pid: 1264,
            tgid: 1268,
            comm: 1752,
            cred: 1736,
            cred_uid: 8,
            cred_euid: 24,
            cred_user_ns: 144,
            user_ns_inum: 216 + 24,
            ..TaskLayout::UNKNOWN
        };
        // Without the cgroup chain the programs use the helper for it.
        assert_eq!(task_layout(&without_cgroups), Ok(credentials));
        b.structure("task_struct", false, &[("pid", 0), ("cgroups", 2376 * 8)]);
        b.structure("css_set", false, &[("dfl_cgrp", 896)]);
        b.structure("cgroup", false, &[("kn", 2048)]);
        b.structure("kernfs_node", false, &[("id", 768)]);
        // The first task_struct still counts: it has no `cgroups`.
        assert_eq!(task_layout(&b.build()), Ok(credentials));
        let mut b = Builder::new();
        b.structure(
            "task_struct",
            false,
            &[
                ("pid", 1264 * 8),
                ("tgid", 1268 * 8),
                ("comm", 1752 * 8),
                ("cred", 1736 * 8),
                ("cgroups", 2376 * 8),
            ],
        );
        b.structure(
            "cred",
            false,
            &[("uid", 64), ("euid", 192), ("user_ns", 1152)],
        );
        b.structure("user_namespace", false, &[("ns", 1728)]);
        b.structure("ns_common", false, &[("inum", 192)]);
        b.structure("css_set", false, &[("dfl_cgrp", 896)]);
        b.structure("cgroup", false, &[("kn", 2048)]);
        b.structure("kernfs_node", false, &[("id", 768)]);
        assert_eq!(
            task_layout(&b.build()),
            Ok(TaskLayout {
                cgroup_known: 1,
                cgroups: 2376,
                dfl_cgrp: 112,
                cgroup_kn: 256,
                kernfs_id: 96,
                ..credentials
            })
        );
        // The decoy struct of the same name comes first: its members count.
        assert_eq!(
            task_layout(&kernel_like()),
            Err(BtfError::NoField("task_struct", "pid"))
        );
    }

    #[test]
    fn walks_every_kind_to_reach_a_later_struct() {
        let structs = Structs::parse(&kernel_like(), &["other"]).unwrap();
        assert_eq!(structs.member("other", "pid"), Ok(1));
        assert_eq!(
            structs.member("task_struct", "pid"),
            Err(BtfError::NoStruct("task_struct"))
        );
    }

    #[test]
    fn bad_input_is_an_error_never_a_panic() {
        let good = kernel_like();
        for len in 0..good.len() {
            assert!(
                Structs::parse(&good[..len], &["other"]).is_err(),
                "prefix {len}"
            );
        }
        let mut bad = good.clone();
        bad[0] ^= 0xff;
        assert_eq!(task_layout(&bad).unwrap_err(), BtfError::BadHeader);
        let mut unknown = Builder::new();
        unknown.kind("", 31, 0, false, &[]);
        assert_eq!(
            task_layout(&unknown.build()).unwrap_err(),
            BtfError::UnknownKind(31)
        );
    }

    /// The running kernel's own BTF, where it has one (CI's machines do).
    #[test]
    fn reads_the_running_kernels_task_struct() {
        let Ok(data) = std::fs::read(VMLINUX_BTF) else {
            eprintln!("skipped: no {VMLINUX_BTF} on this machine");
            return;
        };
        let layout = task_layout(&data).unwrap();
        // pid and tgid are adjacent pid_t fields in every kernel.
        assert_eq!(layout.tgid, layout.pid + 4);
        assert!(layout.comm > layout.tgid && layout.cred > layout.tgid);
        assert!(layout.cred_uid > 0 && layout.cred_uid < 64);
    }
}
