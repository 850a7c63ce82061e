//! Waiting for a condition, never for a fixed time: the one deadline loop of
//! the tests. A condition is polled until it holds or its time is up; then
//! the test fails, saying what never happened.
use std::{
    fmt::Display,
    time::{Duration, Instant},
};

/// How often a condition is looked at: often enough that a test waits no
/// longer than it must, seldom enough that the polling costs nothing.
const POLL: Duration = Duration::from_millis(20);

/// Polls `ready` until it gives a value, which it returns; fails the test
/// with "never: WHAT" when `limit` has passed first.
pub fn wait_until<T>(
    what: impl Display,
    limit: Duration,
    mut ready: impl FnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = ready() {
            return value;
        }
        assert!(started.elapsed() < limit, "never within {limit:?}: {what}");
        std::thread::sleep(POLL);
    }
}

/// [`wait_until`] for a condition without a value.
pub fn wait_for(what: impl Display, limit: Duration, mut ready: impl FnMut() -> bool) {
    wait_until(what, limit, || ready().then_some(()))
}
