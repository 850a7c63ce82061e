//! The programs known to hold many inotify watches or instances, each with
//! the fix its own project recommends (`table.yaml`, the one definition),
//! and recognising them in a process from what `usage` may read anyway: its
//! executable, the libraries it maps, its command line. A process that
//! cannot be read is simply not matched.
use std::{path::Path, sync::OnceLock};

use serde::{Deserialize, Serialize};

/// One entry of the table: how to recognise the program, and what it is.
#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "match")]
    matcher: Matcher,
    #[serde(flatten)]
    culprit: Culprit,
}

/// A known program, as JSON and recordings carry it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Culprit {
    pub id: String,
    pub name: String,
    pub watches_for: String,
    pub fix: String,
    pub link: Option<String>,
    /// `"watches"`, `"instances"` (raising that limit is the fix), `"no"`
    /// (fix the program instead), `"none"` (nothing to fix).
    pub raise_limit: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Matcher {
    /// The executable's file name, exactly.
    #[serde(default)]
    exe: Vec<String>,
    /// A mapped file whose name starts with this (`libcoreclr.so`).
    #[serde(default)]
    maps: Vec<String>,
    /// A substring of any argument.
    #[serde(default)]
    cmdline: Vec<String>,
}

/// The table, parsed once (a bad table is a bug the unit tests catch).
fn entries() -> &'static [Entry] {
    static TABLE: OnceLock<Vec<Entry>> = OnceLock::new();
    TABLE.get_or_init(|| {
        serde_yaml_ng::from_str(include_str!("table.yaml")).expect("culprits/table.yaml parses")
    })
}

/// The known programs, in the table's order.
pub fn table() -> impl Iterator<Item = &'static Culprit> {
    entries().iter().map(|e| &e.culprit)
}

/// What is known of a process for matching.
#[derive(Default)]
pub struct Traits<'a> {
    pub exe: Option<String>,
    pub cmdline: &'a [String],
    /// The file names of what it maps (`None`: unreadable). Always read:
    /// the table's second entry matches on maps, so reading them lazily
    /// would save nothing but for VS Code servers.
    pub maps: Option<Vec<String>>,
}

impl<'a> Traits<'a> {
    /// What `/proc/PID` (under `proc_root`) shows of `pid`; what cannot be
    /// read stays empty.
    pub fn of(proc_root: &Path, pid: u32, cmdline: &'a [String]) -> Traits<'a> {
        let dir = proc_root.join(pid.to_string());
        let exe = std::fs::read_link(dir.join("exe")).ok().and_then(|p| {
            // A replaced binary reads "/usr/bin/x (deleted)".
            let name = p.file_name()?.to_string_lossy().into_owned();
            Some(name.trim_end_matches(" (deleted)").to_owned())
        });
        let maps = std::fs::read_to_string(dir.join("maps")).ok().map(|text| {
            let mut names: Vec<String> = text
                .lines()
                .filter_map(|l| l.rsplit_once('/').map(|(_, name)| name.to_owned()))
                .collect();
            names.sort_unstable();
            names.dedup();
            names
        });
        Traits { exe, cmdline, maps }
    }
}

/// The first entry of the table that `traits` match.
pub fn recognise(traits: &Traits) -> Option<&'static Culprit> {
    entries()
        .iter()
        .find(|e| e.matcher.matches(traits))
        .map(|e| &e.culprit)
}

impl Matcher {
    fn matches(&self, t: &Traits) -> bool {
        let exe = t
            .exe
            .as_deref()
            .is_some_and(|e| self.exe.iter().any(|x| x == e));
        let cmdline = self
            .cmdline
            .iter()
            .any(|word| t.cmdline.iter().any(|arg| arg.contains(word.as_str())));
        let maps = t.maps.as_ref().is_some_and(|maps| {
            self.maps
                .iter()
                .any(|lib| maps.iter().any(|m| m.starts_with(lib.as_str())))
        });
        exe || cmdline || maps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recognised(exe: &str, cmdline: &[&str], maps: &[&str]) -> Option<&'static str> {
        let cmdline: Vec<String> = cmdline.iter().map(|s| (*s).to_owned()).collect();
        let traits = Traits {
            exe: Some(exe.to_owned()),
            cmdline: &cmdline,
            maps: Some(maps.iter().map(|s| (*s).to_owned()).collect()),
        };
        recognise(&traits).map(|c| c.id.as_str())
    }

    #[test]
    fn the_table_parses_with_unique_ids_and_known_advice() {
        let ids: Vec<&str> = table().map(|c| c.id.as_str()).collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
        for Entry {
            matcher,
            culprit: c,
        } in entries()
        {
            assert!(
                ["watches", "instances", "no", "none"].contains(&c.raise_limit.as_str()),
                "{c:?}"
            );
            assert!(*matcher != Matcher::default(), "{} matches nothing", c.id);
            assert!(
                c.link.as_ref().is_none_or(|l| l.starts_with("https://")),
                "{c:?}"
            );
        }
    }

    #[test]
    fn docs_list_every_entry_and_its_source() {
        let docs = include_str!("../../../docs/culprits.md");
        for c in table() {
            assert!(
                docs.contains(&format!("| `{}` |", c.id)),
                "{} not in docs/culprits.md",
                c.id
            );
            if let Some(link) = &c.link {
                assert!(
                    docs.contains(link.as_str()),
                    "{link} not in docs/culprits.md"
                );
            }
        }
    }

    #[test]
    fn specific_entries_win_over_general_ones() {
        let vscode = ["/root/.vscode-server/bin/abc/node", "server-main.js"];
        assert_eq!(recognised("node", &vscode, &[]), Some("vscode-server"));
        assert_eq!(
            recognised("node", &["node", "watch.js"], &[]),
            Some("node-watcher")
        );
        assert_eq!(
            recognised("MyApp", &["./MyApp"], &["libcoreclr.so", "libc.so.6"]),
            Some("dotnet-filesystemwatcher")
        );
        let watchmedo = ["/usr/bin/python3", "/usr/bin/watchmedo", "log"];
        assert_eq!(
            recognised("python3.11", &watchmedo, &[]),
            Some("python-watchdog")
        );
        assert_eq!(
            recognised("inotifywait", &["inotifywait", "-m", "/srv"], &[]),
            None
        );
        assert_eq!(recognise(&Traits::default()), None);
    }

    #[test]
    fn a_culprit_written_out_reads_back_the_same() {
        // As a recording's diagnosis frame carries it (JSON, no `match`).
        for c in table() {
            let json = serde_json::to_string(c).unwrap();
            assert!(!json.contains("\"match\""), "{json}");
            assert_eq!(&serde_json::from_str::<Culprit>(&json).unwrap(), c);
        }
    }
}
