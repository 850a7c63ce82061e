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

use inotify_trace_common::{ChargeLayout, KeptConfig, TaskLayout, CHARGE_SPAN_MAX};
use serde::{Deserialize, Serialize};
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
    #[error("no enumerator {0} in the kernel's BTF")]
    NoEnumerator(&'static str),
    #[error("no function {0} in the kernel's BTF")]
    NoFunction(&'static str),
    #[error("{0} is laid out in a way the programs do not read")]
    Unexpected(&'static str),
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

/// What one watch pins in kernel memory by the kernel's own estimate
/// (`INOTIFY_WATCH_COST`): its mark and two inodes (an inode with a watch
/// on it cannot be evicted). An estimate, as the kernel's is: the inodes may
/// be cached anyway, and dentries are not counted (docs/internals.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchCost {
    pub bytes: u64,
    /// `sizeof(struct inotify_inode_mark)`.
    pub mark_bytes: u64,
    /// `sizeof(struct inode)`.
    pub inode_bytes: u64,
}

impl WatchCost {
    /// The running kernel's (its BTF read once per process), or why not.
    pub fn of_running_kernel() -> Result<WatchCost, String> {
        static COST: std::sync::OnceLock<Result<WatchCost, String>> = std::sync::OnceLock::new();
        COST.get_or_init(|| {
            running_kernel_watch_cost()
                .map_err(|err| format!("{} unreadable ({err}): the kernel has no BTF", VMLINUX_BTF))
        })
        .clone()
    }

    /// What `watches` pin.
    pub fn of(self, watches: u64) -> u64 {
        watches.saturating_mul(self.bytes)
    }
}

/// What one watch pins by the kernel's own estimate, from the running
/// kernel's BTF.
pub fn running_kernel_watch_cost() -> anyhow::Result<WatchCost> {
    let data = std::fs::read(VMLINUX_BTF)?;
    Ok(watch_cost(&data)?)
}

/// `INOTIFY_WATCH_COST` (fs/notify/inotify/inotify_user.c, 5.11+, which
/// sizes the default `max_user_watches` with it): a watch's mark and the two
/// inodes it is taken to pin, `sizeof(struct inotify_inode_mark) + 2 *
/// sizeof(struct inode)`, with this kernel's sizes.
pub fn watch_cost(data: &[u8]) -> Result<WatchCost, BtfError> {
    let types = Types::parse(data)?;
    let size = |name: &'static str| -> Result<u64, BtfError> {
        let id = types.find_struct(name).ok_or(BtfError::NoStruct(name))?;
        Ok(u64::from(types.size(id)?))
    };
    let (mark_bytes, inode_bytes) = (size("inotify_inode_mark")?, size("inode")?);
    Ok(WatchCost {
        bytes: mark_bytes + 2 * inode_bytes,
        mark_bytes,
        inode_bytes,
    })
}

/// Where the inotify charge is (`ChargeLayout`'s fields say what each
/// offset is), from the running kernel's BTF.
pub fn running_kernel_charge_layout() -> anyhow::Result<ChargeLayout> {
    let data = std::fs::read(VMLINUX_BTF)?;
    Ok(charge_layout(&data)?)
}

/// The offsets the kept counts' programs read (`KeptConfig`), from the
/// running kernel's BTF; `learn_tgid` and `learn_fd` are left for the agent.
pub fn running_kernel_kept_layout() -> anyhow::Result<KeptConfig> {
    let data = std::fs::read(VMLINUX_BTF)?;
    Ok(kept_layout(&data)?)
}

/// The same, from raw BTF: refused where `fsnotify_add_mark_locked` does not
/// take the 4 or 5 parameters the programs know.
pub fn kept_layout(data: &[u8]) -> Result<KeptConfig, BtfError> {
    let types = Types::parse(data)?;
    let at = |structure, path: &[&'static str]| types.field(structure, path).map(|(at, _)| at);
    let add_mark_params = types.function_params("fsnotify_add_mark_locked")?;
    if !(4..=5).contains(&add_mark_params) {
        return Err(BtfError::Unexpected("fsnotify_add_mark_locked"));
    }
    Ok(KeptConfig {
        learn_tgid: 0,
        learn_fd: 0,
        task_tgid: at("task_struct", &["tgid"])?,
        file_f_op: at("file", &["f_op"])?,
        file_private_data: at("file", &["private_data"])?,
        mark_group: at("fsnotify_mark", &["group"])?,
        group_ops: at("fsnotify_group", &["ops"])?,
        add_mark_params: add_mark_params as u32,
    })
}

/// The offsets from an inotify fd to its charge, and each level's caps and
/// parent, from raw BTF; refused when the counters or caps are not 4 or 8
/// bytes wide, or the fields a level is read in one span are not in the
/// order, or not as close together, as the programs read them.
pub fn charge_layout(data: &[u8]) -> Result<ChargeLayout, BtfError> {
    let types = Types::parse(data)?;
    let at = |structure, path: &[&'static str]| types.field(structure, path).map(|(at, _)| at);
    let element = |structure, name| -> Result<(u32, u32), BtfError> {
        let (at, array) = types.field(structure, &[name])?;
        let (element, _) = types.array(array)?;
        Ok((at, types.size(element)?))
    };
    let (instances, watches) = (
        types.enumerator("UCOUNT_INOTIFY_INSTANCES")?,
        types.enumerator("UCOUNT_INOTIFY_WATCHES")?,
    );
    let (counters, counter_width) = element("ucounts", "ucount")?;
    let (caps, max_width) = element("user_namespace", "ucount_max")?;
    let layout = ChargeLayout {
        known: 1,
        task_files: at("task_struct", &["files"])?,
        files_fdt: at("files_struct", &["fdt"])?,
        fdt_max_fds: at("fdtable", &["max_fds"])?,
        fdt_fd: at("fdtable", &["fd"])?,
        file_private_data: at("file", &["private_data"])?,
        group_ucounts: at("fsnotify_group", &["inotify_data", "ucounts"])?,
        ucounts_ns: at("ucounts", &["ns"])?,
        ucounts_uid: at("ucounts", &["uid"])?,
        ucounts_instances: counters + instances * counter_width,
        ucounts_watches: counters + watches * counter_width,
        counter_width,
        ns_ucounts: at("user_namespace", &["ucounts"])?,
        ns_max_instances: caps + instances * max_width,
        ns_max_watches: caps + watches * max_width,
        max_width,
        ns_inum: at("user_namespace", &["ns", "inum"])?,
        task_cred: at("task_struct", &["cred"])?,
        cred_uid: at("cred", &["uid"])?,
        cred_euid: at("cred", &["euid"])?,
        // `struct cred` has its own level since 5.14.
        cred_ucounts: at("cred", &["ucounts"]).unwrap_or(0),
        reserved: 0,
    };
    check_spans(&layout)?;
    Ok(layout)
}

/// The programs read a level's `ns`..counters, and its namespace's
/// `ucounts`..caps, each in one span of at most `CHARGE_SPAN_MAX` bytes.
fn check_spans(l: &ChargeLayout) -> Result<(), BtfError> {
    let widths_ok = [l.counter_width, l.max_width]
        .iter()
        .all(|w| *w == 4 || *w == 8);
    let counters_end = l.ucounts_instances.max(l.ucounts_watches) + l.counter_width;
    let caps_end = l.ns_max_instances.max(l.ns_max_watches) + l.max_width;
    let fits = |start: u32, fields: &[u32], end: u32| {
        fields.iter().all(|f| *f >= start + 8 || *f == start)
            && end > start
            && (end - start) as usize <= CHARGE_SPAN_MAX
    };
    if !widths_ok {
        return Err(BtfError::Unexpected("an inotify counter"));
    }
    if !fits(
        l.ucounts_ns,
        &[l.ucounts_uid, l.ucounts_instances, l.ucounts_watches],
        counters_end,
    ) {
        return Err(BtfError::Unexpected("struct ucounts"));
    }
    if !fits(
        l.ns_ucounts,
        &[l.ns_max_instances, l.ns_max_watches],
        caps_end,
    ) {
        return Err(BtfError::Unexpected("struct user_namespace"));
    }
    Ok(())
}

/// Byte offsets of the members of some named structs.
struct Structs {
    members: HashMap<&'static str, HashMap<String, u32>>,
}

impl Structs {
    /// The members of the first struct of each wanted name (the kernel's
    /// BTF has one of each).
    fn parse(data: &[u8], wanted: &[&'static str]) -> Result<Structs, BtfError> {
        let types = Types::parse(data)?;
        let mut members = HashMap::new();
        for &name in wanted {
            let Some(id) = types.find_struct(name) else {
                continue;
            };
            let fields = types
                .members(id)?
                .into_iter()
                .filter(|m| m.bits % 8 == 0 && !m.name.is_empty())
                .map(|m| (m.name.to_owned(), m.bits / 8))
                .collect();
            members.insert(name, fields);
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

/// Every type of a BTF blob, by id, read where it is asked for.
struct Types<'a> {
    header: Header<'a>,
    /// Where each type starts in the type section; type id `i` is at
    /// `starts[i - 1]` (id 0 is void).
    starts: Vec<usize>,
    /// The first struct of each name (a kernel has ~10,000: looked up by
    /// name, not walked for each).
    structs: HashMap<&'a str, u32>,
}

/// One member of a struct or union.
struct Member<'a> {
    name: &'a str,
    type_id: u32,
    bits: u32,
}

/// A type's common part: its name, kind, member count and the word that is
/// its size or the type it refers to.
struct Common {
    kind: u32,
    vlen: usize,
    kind_flag: bool,
    size_or_type: u32,
}

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_ENUM64: u32 = 19;
/// Kinds that only qualify another type: typedef, volatile, const,
/// restrict, type tag.
const QUALIFIERS: [u32; 5] = [8, 9, 10, 11, 18];

impl<'a> Types<'a> {
    fn parse(data: &'a [u8]) -> Result<Types<'a>, BtfError> {
        let header = Header::parse(data)?;
        let mut starts = Vec::new();
        let mut structs = HashMap::new();
        let mut rest = header.types;
        while rest.has_remaining() {
            starts.push(header.types.len() - rest.len());
            let name = u32(&mut rest)?;
            let info = u32(&mut rest)?;
            let _size_or_type = u32(&mut rest)?;
            let kind = (info >> 24) & 0x1f;
            if kind == KIND_STRUCT {
                structs
                    .entry(header.string(name)?)
                    .or_insert(starts.len() as u32);
            }
            skip(&mut rest, extra_bytes(kind, (info & 0xffff) as usize)?)?;
        }
        Ok(Types {
            header,
            starts,
            structs,
        })
    }

    /// The type's common part, and the bytes after it.
    fn common(&self, id: u32) -> Result<(Common, &'a [u8]), BtfError> {
        let start = *id
            .checked_sub(1)
            .and_then(|i| self.starts.get(i as usize))
            .ok_or(BtfError::Truncated)?;
        let mut r = &self.header.types[start..];
        let _name = u32(&mut r)?;
        let info = u32(&mut r)?;
        let size_or_type = u32(&mut r)?;
        let common = Common {
            kind: (info >> 24) & 0x1f,
            vlen: (info & 0xffff) as usize,
            kind_flag: info >> 31 == 1,
            size_or_type,
        };
        Ok((common, r))
    }

    /// The first struct of this name.
    fn find_struct(&self, name: &str) -> Option<u32> {
        self.structs.get(name).copied()
    }

    /// A struct's or union's members (bit offsets without a bitfield size).
    fn members(&self, id: u32) -> Result<Vec<Member<'a>>, BtfError> {
        let (common, mut r) = self.common(id)?;
        let mut members = Vec::with_capacity(common.vlen);
        for _ in 0..common.vlen {
            let name = self.header.string(u32(&mut r)?)?;
            let type_id = u32(&mut r)?;
            let offset = u32(&mut r)?;
            // With kind_flag the top 8 bits are a bitfield size.
            let bits = match common.kind_flag {
                true => offset & 0xff_ffff,
                false => offset,
            };
            members.push(Member {
                name,
                type_id,
                bits,
            });
        }
        Ok(members)
    }

    /// The type behind typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> Result<u32, BtfError> {
        for _ in 0..32 {
            let (common, _) = self.common(id)?;
            if !QUALIFIERS.contains(&common.kind) {
                return Ok(id);
            }
            id = common.size_or_type;
        }
        Err(BtfError::Truncated)
    }

    /// A type's size in bytes.
    fn size(&self, id: u32) -> Result<u32, BtfError> {
        let id = self.resolve(id)?;
        let (common, _) = self.common(id)?;
        match common.kind {
            KIND_INT | KIND_STRUCT | KIND_UNION | KIND_ENUM | KIND_ENUM64 => {
                Ok(common.size_or_type)
            }
            KIND_PTR => Ok(8),
            KIND_ARRAY => {
                let (element, count) = self.array(id)?;
                Ok(self.size(element)?.saturating_mul(count))
            }
            _ => Err(BtfError::Truncated),
        }
    }

    /// An array's element type and length.
    fn array(&self, id: u32) -> Result<(u32, u32), BtfError> {
        let (common, mut r) = self.common(self.resolve(id)?)?;
        if common.kind != KIND_ARRAY {
            return Err(BtfError::Truncated);
        }
        let element = u32(&mut r)?;
        let _index = u32(&mut r)?;
        Ok((element, u32(&mut r)?))
    }

    /// A field of a struct by its path of member names, looking into
    /// anonymous struct and union members on the way: its byte offset and
    /// type.
    fn field(
        &self,
        structure: &'static str,
        path: &[&'static str],
    ) -> Result<(u32, u32), BtfError> {
        let mut id = self
            .find_struct(structure)
            .ok_or(BtfError::NoStruct(structure))?;
        let mut offset = 0;
        for &name in path {
            let (bits, type_id) = self
                .member_within(id, name)?
                .ok_or(BtfError::NoField(structure, name))?;
            if bits % 8 != 0 {
                return Err(BtfError::NoField(structure, name));
            }
            offset += bits / 8;
            id = self.resolve(type_id)?;
        }
        Ok((offset, id))
    }

    /// A member of a struct or union, or of an anonymous member of it: its
    /// bit offset from the start and its type.
    fn member_within(&self, id: u32, name: &str) -> Result<Option<(u32, u32)>, BtfError> {
        for member in self.members(id)? {
            if member.name == name {
                return Ok(Some((member.bits, member.type_id)));
            }
            if member.name.is_empty() {
                let inner = self.resolve(member.type_id)?;
                let (common, _) = self.common(inner)?;
                if [KIND_STRUCT, KIND_UNION].contains(&common.kind) {
                    if let Some((bits, type_id)) = self.member_within(inner, name)? {
                        return Ok(Some((member.bits + bits, type_id)));
                    }
                }
            }
        }
        Ok(None)
    }

    /// How many parameters the kernel function `name` takes.
    fn function_params(&self, name: &'static str) -> Result<usize, BtfError> {
        const KIND_FUNC: u32 = 12;
        const KIND_FUNC_PROTO: u32 = 13;
        for (i, start) in self.starts.iter().enumerate() {
            let mut r = &self.header.types[*start..];
            let name_at = u32(&mut r)?;
            let info = u32(&mut r)?;
            if (info >> 24) & 0x1f != KIND_FUNC || self.header.string(name_at)? != name {
                continue;
            }
            let (function, _) = self.common(i as u32 + 1)?;
            let (proto, _) = self.common(function.size_or_type)?;
            if proto.kind != KIND_FUNC_PROTO {
                break;
            }
            return Ok(proto.vlen);
        }
        Err(BtfError::NoFunction(name))
    }

    /// The value of an enumerator, from whichever enum declares it.
    fn enumerator(&self, name: &'static str) -> Result<u32, BtfError> {
        for id in 1..=self.starts.len() as u32 {
            let (common, mut r) = self.common(id)?;
            let (kind, vlen) = (common.kind, common.vlen);
            if kind != KIND_ENUM && kind != KIND_ENUM64 {
                continue;
            }
            for _ in 0..vlen {
                let value_name = self.header.string(u32(&mut r)?)?;
                let value = u32(&mut r)?;
                if kind == KIND_ENUM64 {
                    let _high = u32(&mut r)?;
                }
                if value_name == name {
                    return Ok(value);
                }
            }
        }
        Err(BtfError::NoEnumerator(name))
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
            self.typed(name, kind, vlen | (u32::from(kind_flag) << 31), 8, extra);
        }

        /// A type with its size (or referred type) given (`vlen` may carry
        /// the kind flag, bit 31).
        fn typed(&mut self, name: &str, kind: u32, vlen: u32, size_or_type: u32, extra: &[u32]) {
            let name = self.string(name);
            let info = (kind << 24) | vlen;
            self.words(&[name, info, size_or_type]);
            self.words(extra);
        }

        /// An enum of (name, value) enumerators.
        fn enumeration(&mut self, name: &str, values: &[(&str, u32)]) {
            self.typed(name, KIND_ENUM, values.len() as u32, 4, &[]);
            for (value_name, value) in values {
                let value_name = self.string(value_name);
                self.words(&[value_name, *value]);
            }
        }

        /// A struct (or union) whose members are (name, type id, bit offset).
        fn typed_members(&mut self, name: &str, kind: u32, members: &[(&str, u32, u32)]) {
            self.sized_members(name, kind, 8, members);
        }

        /// The same, of `size` bytes.
        fn sized_members(
            &mut self,
            name: &str,
            kind: u32,
            size: u32,
            members: &[(&str, u32, u32)],
        ) {
            self.typed(name, kind, members.len() as u32, size, &[]);
            for (member, type_id, bits) in members {
                let member = self.string(member);
                self.words(&[member, *type_id, *bits]);
            }
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

    /// A 5.10-like layout: 4-byte counters (`atomic_t`) and caps (`int`),
    /// the group's charge inside an anonymous union, no `cred.ucounts`.
    #[test]
    fn finds_the_charge_through_typedefs_arrays_anonymous_unions_and_enums() {
        let mut b = Builder::new();
        b.typed("int", 1, 0, 4, &[32]); // 1
        b.typed("long", 1, 0, 8, &[64]); // 2
        b.sized_members("atomic_t", KIND_STRUCT, 4, &[("counter", 1, 0)]); // 3
        b.typed("", KIND_ARRAY, 0, 0, &[3, 1, 10]); // 4: atomic_t[10]
        b.typed("", KIND_ARRAY, 0, 0, &[1, 1, 10]); // 5: int[10]
        b.enumeration(
            "ucount_type",
            &[
                ("UCOUNT_INOTIFY_INSTANCES", 8),
                ("UCOUNT_INOTIFY_WATCHES", 9),
            ],
        ); // 6
        b.typed_members(
            "ucounts",
            KIND_STRUCT,
            &[
                ("node", 2, 0),
                ("ns", 2, 128),
                ("uid", 1, 192),
                ("ucount", 4, 256),
            ],
        ); // 7
        b.typed_members("ns_common", KIND_STRUCT, &[("inum", 1, 128)]); // 8
        b.typed_members(
            "user_namespace",
            KIND_STRUCT,
            &[
                ("ns", 8, 1600),
                ("ucounts", 2, 4096),
                ("ucount_max", 5, 4160),
            ],
        ); // 9
        b.typed_members(
            "task_struct",
            KIND_STRUCT,
            &[("files", 2, 800), ("cred", 2, 960)],
        ); // 10
        b.typed_members("files_struct", KIND_STRUCT, &[("fdt", 2, 256)]); // 11
        b.typed_members("fdtable", KIND_STRUCT, &[("max_fds", 1, 0), ("fd", 2, 64)]); // 12
        b.typed_members("file", KIND_STRUCT, &[("private_data", 2, 1536)]); // 13
        b.typed_members(
            "inotify_group_private_data",
            KIND_STRUCT,
            &[("ucounts", 2, 256)],
        ); // 14
        b.typed("ipd_t", 8, 0, 14, &[]); // 15: a typedef of it
        b.typed_members(
            "",
            KIND_UNION,
            &[("private", 2, 0), ("inotify_data", 15, 0)],
        ); // 16
        b.typed_members("fsnotify_group", KIND_STRUCT, &[("", 16, 2048)]); // 17
        b.typed_members("cred", KIND_STRUCT, &[("uid", 1, 32), ("euid", 1, 96)]); // 18
        let blob = b.build();
        let layout = charge_layout(&blob).unwrap();
        assert_eq!(
            layout,
            ChargeLayout {
                known: 1,
                task_files: 100,
                files_fdt: 32,
                fdt_max_fds: 0,
                fdt_fd: 8,
                file_private_data: 192,
                group_ucounts: 256 + 32,
                ucounts_ns: 16,
                ucounts_uid: 24,
                ucounts_instances: 32 + 8 * 4,
                ucounts_watches: 32 + 9 * 4,
                counter_width: 4,
                ns_ucounts: 512,
                ns_max_instances: 520 + 8 * 4,
                ns_max_watches: 520 + 9 * 4,
                max_width: 4,
                ns_inum: 200 + 16,
                task_cred: 120,
                cred_uid: 4,
                cred_euid: 12,
                cred_ucounts: 0,
                reserved: 0,
            }
        );
    }

    /// The running kernel's charge, where it has BTF (CI's machines do).
    #[test]
    fn reads_the_running_kernels_charge_layout() {
        let Ok(data) = std::fs::read(VMLINUX_BTF) else {
            eprintln!("skipped: no {VMLINUX_BTF} on this machine");
            return;
        };
        let layout = charge_layout(&data).unwrap();
        // The two inotify counters are neighbours in both arrays.
        assert_eq!(
            layout.ucounts_watches,
            layout.ucounts_instances + layout.counter_width
        );
        assert_eq!(
            layout.ns_max_watches,
            layout.ns_max_instances + layout.max_width
        );
        assert_eq!(layout.task_cred, task_layout(&data).unwrap().cred);
    }

    /// The kept counts' offsets agree with the tracer's own, and the
    /// function has one of the two forms the programs know.
    #[test]
    fn reads_the_running_kernels_kept_layout() {
        let Ok(data) = std::fs::read(VMLINUX_BTF) else {
            eprintln!("skipped: no {VMLINUX_BTF} on this machine");
            return;
        };
        let kept = kept_layout(&data).unwrap();
        assert_eq!(kept.task_tgid, task_layout(&data).unwrap().tgid);
        assert_eq!(
            kept.file_private_data,
            charge_layout(&data).unwrap().file_private_data
        );
        assert_ne!(kept.file_f_op, kept.file_private_data);
        assert!((4..=5).contains(&kept.add_mark_params));
        let types = Types::parse(&data).unwrap();
        assert_eq!(
            types.function_params("nope_no_such_function"),
            Err(BtfError::NoFunction("nope_no_such_function"))
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
