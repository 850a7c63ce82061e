//! Shell completions and man pages, as `cargo xtask dist` makes them from
//! the binary: the bash script parses and completes a subcommand's flags
//! (the hyphen in the program's name once broke that, clap-rs/clap#6421),
//! and `man -l` renders every page with the flags `--help` lists.
use std::process::Command;

use tests::tracer_binary;

fn completion(shell: &str) -> String {
    let out = Command::new(tracer_binary())
        .args(["completions", shell])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// What bash's completion offers for `words` (the last one being typed).
fn bash_completes(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let cur = words.last().unwrap();
    let prev = words[words.len() - 2];
    let program = format!(
        "source {}; COMP_WORDS=({}); COMP_CWORD={}; _inotify__trace inotify-trace '{cur}' '{prev}'; \
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        words.join(" "),
        words.len() - 1
    );
    let out = Command::new("bash")
        .args(["-c", &program])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_bash_completion_parses_and_completes_subcommands_and_their_flags() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("inotify-trace.bash");
    std::fs::write(&script, completion("bash")).unwrap();
    let check = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(check.status.success(), "bash -n: {check:?}");

    assert_eq!(
        bash_completes(&script, &["inotify-trace", "rep"]),
        ["report"]
    );
    assert_eq!(
        bash_completes(&script, &["inotify-trace", "usage", "--po"]),
        ["--pod"]
    );
    assert_eq!(
        bash_completes(&script, &["inotify-trace", "report", "--ev"]),
        ["--events"]
    );
    assert_eq!(
        bash_completes(&script, &["inotify-trace", "--ring"]),
        ["--ring-size"]
    );
    // The other shells' scripts name the program and its subcommands.
    for shell in ["zsh", "fish"] {
        let script = completion(shell);
        for word in [
            "inotify-trace",
            "report",
            "usage",
            "agent",
            "check",
            "ring-size",
        ] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
    }
    // What is hidden (the benchmark's flags, the init container's
    // subcommand) is in no shell's script.
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = completion(shell);
        assert!(
            script.contains("man-pages"),
            "{shell}: man-pages is for users"
        );
        for hidden in ["install-binary", "no-attribution", "no-charge"] {
            assert!(
                !script.contains(hidden),
                "{shell} offers the hidden {hidden}"
            );
        }
    }
}

#[test]
fn an_unknown_shell_is_refused_in_one_line() {
    let out = Command::new(tracer_binary())
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("possible values: bash"), "{stderr}");
}

#[test]
fn man_renders_a_page_for_every_subcommand_with_its_flags() {
    let parent = tempfile::tempdir().unwrap();
    // DIR is made, with its parents.
    let dir = parent.path().join("share/man/man1");
    let out = Command::new(tracer_binary())
        .arg("man-pages")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    pages.sort();
    assert_eq!(
        pages,
        [
            "inotify-trace-agent.1",
            "inotify-trace-check.1",
            "inotify-trace-completions.1",
            "inotify-trace-man-pages.1",
            "inotify-trace-report.1",
            "inotify-trace-usage.1",
            "inotify-trace.1",
        ]
    );
    for (page, flags) in [
        (
            "inotify-trace.1",
            &["--ring-size", "--attach", "--record"][..],
        ),
        ("inotify-trace-report.1", &["--events", "--uid"][..]),
        ("inotify-trace-usage.1", &["--paths", "--pod"][..]),
        ("inotify-trace-agent.1", &["--listen", "--web-config"][..]),
        ("inotify-trace-check.1", &["--agent-state", "--nagios"][..]),
        ("inotify-trace-completions.1", &["bash"][..]),
        ("inotify-trace-man-pages.1", &["DIR"][..]),
    ] {
        let rendered = Command::new("man")
            .arg("-l")
            .arg(dir.join(page))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .expect("man (man-db; cargo xtask test installs it)");
        assert!(rendered.status.success(), "man -l {page}: {rendered:?}");
        let text = String::from_utf8_lossy(&rendered.stdout);
        for section in ["NAME", "SYNOPSIS", "EXAMPLES", "EXIT STATUS", "SEE ALSO"] {
            assert!(text.contains(section), "{page} lacks {section}:\n{text}");
        }
        // Each example is a command the parser takes (a program to trace
        // aside, after --).
        let examples = text
            .split("EXAMPLES")
            .nth(1)
            .and_then(|rest| rest.split("EXIT STATUS").next())
            .unwrap();
        let shown: Vec<&str> = examples
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("inotify-trace"))
            .collect();
        assert!(!shown.is_empty(), "{page}: {examples}");
        for example in shown {
            // Up to a redirection or the program to trace: --help goes
            // before `--`, or it would be that program's.
            let words: Vec<&str> = example
                .split_whitespace()
                .take_while(|w| !w.starts_with('>') && *w != "--")
                .collect();
            let parsed = Command::new(tracer_binary())
                .args(&words[1..])
                .arg("--help")
                .output()
                .unwrap();
            assert!(
                parsed.status.success(),
                "{page}: `{example}` is refused: {parsed:?}"
            );
        }
        for hidden in ["install-binary", "no-attribution", "no-charge"] {
            assert!(!text.contains(hidden), "{page} shows the hidden {hidden}");
        }
        for flag in flags {
            assert!(text.contains(flag), "{page} lacks {flag}:\n{text}");
        }
    }
    // Into something that is not a directory: one line, nothing written.
    let file = dir.join("inotify-trace.1");
    let out = Command::new(tracer_binary())
        .arg("man-pages")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().count(),
        1,
        "{out:?}"
    );
}
