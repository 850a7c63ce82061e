//! Making untrusted bytes (paths and comms chosen by any process on the
//! machine) safe to print on a terminal: control characters and invalid
//! UTF-8 are shown as escapes, never sent raw.
use std::fmt::{self, Write};

/// Displays bytes with `\n`, `\t`, `\\`, `\xNN` (other control characters
/// and each byte of invalid UTF-8) escaped. Valid printable UTF-8, spaces
/// included, is shown as it is.
pub struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '\n' => f.write_str("\\n")?,
                    '\t' => f.write_str("\\t")?,
                    '\r' => f.write_str("\\r")?,
                    c if c.is_control() || is_invisible_format(c) => {
                        write!(f, "\\u{{{:x}}}", c as u32)?
                    }
                    c => f.write_char(c)?,
                }
            }
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

/// Characters that reorder or hide text on a terminal (bidirectional
/// overrides, zero-width marks): a path could use them to disguise itself.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::Escaped;

    fn esc(bytes: &[u8]) -> String {
        Escaped(bytes).to_string()
    }

    #[test]
    fn plain_paths_are_unchanged() {
        assert_eq!(
            esc(b"/sys/fs/cgroup/kubepods.slice"),
            "/sys/fs/cgroup/kubepods.slice"
        );
        assert_eq!(
            esc("/tmp/caf\u{e9} au lait".as_bytes()),
            "/tmp/caf\u{e9} au lait"
        );
    }

    #[test]
    fn terminal_escape_sequences_are_defused() {
        assert_eq!(
            esc(b"/tmp/\x1b[2J\x1b]0;pwned\x07"),
            "/tmp/\\u{1b}[2J\\u{1b}]0;pwned\\u{7}"
        );
        assert_eq!(esc(b"a\nb\tc\rd"), "a\\nb\\tc\\rd");
        assert_eq!(esc("\u{9b}31m".as_bytes()), "\\u{9b}31m");
    }

    #[test]
    fn invalid_utf8_and_backslashes_are_unambiguous() {
        assert_eq!(esc(b"/tmp/\xff\xfe-x"), "/tmp/\\xff\\xfe-x");
        // A literal backslash cannot be mistaken for an escape.
        assert_eq!(esc(b"/tmp/\\xff"), "/tmp/\\\\xff");
    }

    #[test]
    fn bidi_overrides_are_shown() {
        assert_eq!(
            esc("/tmp/\u{202e}txt.exe".as_bytes()),
            "/tmp/\\u{202e}txt.exe"
        );
    }
}
