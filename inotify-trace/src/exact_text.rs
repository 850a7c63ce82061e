//! Names that come from the machine (a process's comm, a watched path) are
//! bytes, not always UTF-8: a watch hog may rename itself `G\xffREEDY`. They
//! stay bytes end to end: escaped for people (`Display`), and in JSON as
//! text with, when the bytes are not UTF-8, their exact value in base64
//! beside it (`comm_base64`, `path_base64`), as events carry paths.
use std::{fmt, path::Path};

use base64::{engine::general_purpose::STANDARD, Engine};
use inotify_trace_common::{comm_key, Comm};
use serde::{de, ser::SerializeMap, Deserialize, Deserializer, Serialize, Serializer};

use crate::{escape::Escaped, event::comm_bytes};

/// A process name as the kernel keeps it (15 bytes at most). In a struct,
/// `#[serde(flatten)]` it: JSON `comm`, and `comm_base64` when needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessName(pub Comm);

impl ProcessName {
    pub fn from_bytes(name: &[u8]) -> ProcessName {
        ProcessName(comm_key(name))
    }

    pub fn bytes(&self) -> &[u8] {
        comm_bytes(&self.0)
    }
}

/// A path, exact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathName(pub Vec<u8>);

impl PathName {
    pub fn from_path(path: &Path) -> PathName {
        use std::os::unix::ffi::OsStrExt;
        PathName(path.as_os_str().as_bytes().to_vec())
    }
}

impl fmt::Display for ProcessName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Escaped(self.bytes()).fmt(f)
    }
}

impl fmt::Display for PathName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Escaped(&self.0).fmt(f)
    }
}

impl Serialize for ProcessName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_exact(s, "comm", "comm_base64", self.bytes())
    }
}

impl Serialize for PathName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_exact(s, "path", "path_base64", &self.0)
    }
}

/// The bytes in base64 when they are not UTF-8 (their text form then had
/// to replace some): the `*_base64` companion of every lossy JSON string.
pub fn base64_if_lossy(bytes: &[u8]) -> Option<String> {
    std::str::from_utf8(bytes)
        .is_err()
        .then(|| STANDARD.encode(bytes))
}

/// `{key: text}`, plus `{key_base64: exact}` when the text had to replace
/// invalid bytes.
fn serialize_exact<S: Serializer>(
    s: S,
    key: &str,
    key_base64: &str,
    bytes: &[u8],
) -> Result<S::Ok, S::Error> {
    let text = String::from_utf8_lossy(bytes);
    let exact = base64_if_lossy(bytes);
    let mut map = s.serialize_map(Some(1 + usize::from(exact.is_some())))?;
    map.serialize_entry(key, &text)?;
    if let Some(exact) = exact {
        map.serialize_entry(key_base64, &exact)?;
    }
    map.end()
}

/// The bytes back: from base64 when present, else from the text.
fn exact_bytes<E: de::Error>(text: String, base64: Option<String>) -> Result<Vec<u8>, E> {
    match base64 {
        Some(b64) => STANDARD.decode(b64).map_err(E::custom),
        None => Ok(text.into_bytes()),
    }
}

#[derive(Deserialize)]
struct CommFields {
    comm: String,
    comm_base64: Option<String>,
}

#[derive(Deserialize)]
struct PathFields {
    path: String,
    path_base64: Option<String>,
}

impl<'de> Deserialize<'de> for ProcessName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let fields = CommFields::deserialize(d)?;
        exact_bytes(fields.comm, fields.comm_base64).map(|b| ProcessName::from_bytes(&b))
    }
}

impl<'de> Deserialize<'de> for PathName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let fields = PathFields::deserialize(d)?;
        exact_bytes(fields.path, fields.path_base64).map(PathName)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Holder {
        pid: u32,
        #[serde(flatten)]
        comm: ProcessName,
        uid: u32,
    }

    #[test]
    fn utf8_names_are_plain_text_and_others_carry_their_bytes() {
        let plain = Holder {
            pid: 1,
            comm: ProcessName::from_bytes(b"kubelet"),
            uid: 0,
        };
        let json = serde_json::to_string(&plain).unwrap();
        assert_eq!(json, r#"{"pid":1,"comm":"kubelet","uid":0}"#);
        assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), plain);

        let hog = Holder {
            pid: 2,
            comm: ProcessName::from_bytes(b"G\xffREEDY\n"),
            uid: 0,
        };
        let json = serde_json::to_string(&hog).unwrap();
        assert_eq!(
            json,
            "{\"pid\":2,\"comm\":\"G\u{fffd}REEDY\\n\",\"comm_base64\":\"R/9SRUVEWQo=\",\"uid\":0}"
        );
        assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), hog);
        assert_eq!(hog.comm.to_string(), "G\\xffREEDY\\n", "escaped for people");
    }

    #[test]
    fn paths_too() {
        let path = PathName(b"/srv/\xfe".to_vec());
        let json = serde_json::to_value(&path).unwrap();
        assert_eq!(json["path_base64"], "L3Nydi/+");
        assert_eq!(serde_json::from_value::<PathName>(json).unwrap(), path);
    }
}
