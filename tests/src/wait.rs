//! Waiting for a condition, never for a fixed time: the one deadline loop of
//! the tests. A condition is polled until it holds or its time is up; then
//! the test fails, saying what never happened.
use std::{
    fmt::Display,
    process::{Child, ExitStatus},
    time::{Duration, Instant},
};

/// How often a condition is looked at: often enough that a test waits no
/// longer than it must, seldom enough that the polling costs nothing.
const POLL: Duration = Duration::from_millis(20);

/// Polls `ready` until it gives a value, which it returns; fails the test
/// with "never: WHAT" when `limit` has passed first.
pub fn wait_until<T>(what: impl Display, limit: Duration, ready: impl FnMut() -> Option<T>) -> T {
    poll(limit, ready).unwrap_or_else(|| panic!("never within {limit:?}: {what}"))
}

/// [`wait_until`], whose failure also says what `explain` tells of the
/// last look (e.g. what a server last answered).
pub fn wait_until_explained<T>(
    what: impl Display,
    limit: Duration,
    ready: impl FnMut() -> Option<T>,
    explain: impl FnOnce() -> String,
) -> T {
    poll(limit, ready).unwrap_or_else(|| panic!("never within {limit:?}: {what}\n{}", explain()))
}

/// [`wait_until`] for a condition without a value.
pub fn wait_for(what: impl Display, limit: Duration, mut ready: impl FnMut() -> bool) {
    wait_until(what, limit, || ready().then_some(()))
}

/// Waits for `child` to exit, and returns its status; past `limit`, kills
/// it (a hung child must not outlive its test) and fails the test with
/// "never: WHAT".
pub fn wait_for_exit(child: &mut Child, what: impl Display, limit: Duration) -> ExitStatus {
    match poll(limit, || child.try_wait().expect("waiting for a child")) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("never within {limit:?}: {what}");
        }
    }
}

/// The loop: `ready`'s first value, or None once `limit` has passed.
fn poll<T>(limit: Duration, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    let started = Instant::now();
    loop {
        if let Some(value) = ready() {
            return Some(value);
        }
        if started.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(POLL);
    }
}
