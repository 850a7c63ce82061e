//! A shell script run beside a test, which reads its lines as they come
//! (a pid, `ready`, `done`) while the script keeps its processes alive.
use std::{
    io::{BufRead, BufReader, Lines},
    process::{Child, ChildStdout, Command, Stdio},
};

pub struct Spawned {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Spawned {
    /// Starts `command` with its stdout piped to the test.
    pub fn start(command: &mut Command) -> Spawned {
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Spawned { child, lines }
    }

    /// `script` run by sh in a user namespace of its own (`unshare -U -r`:
    /// its own inotify caps, root inside).
    pub fn in_user_namespace(script: &str) -> Spawned {
        Spawned::start(Command::new("unshare").args(["-U", "-r", "sh", "-c", script]))
    }

    /// Its next line (the test fails if it ended first).
    pub fn line(&mut self) -> String {
        match self.lines.next() {
            Some(line) => line.unwrap(),
            None => panic!("the script ended: {:?}", self.child.wait()),
        }
    }

    /// Waits for its end; whether it succeeded.
    pub fn succeeded(mut self) -> bool {
        self.child.wait().unwrap().success()
    }
}
