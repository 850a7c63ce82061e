//! The things the tool does, one module each: trace live (the default),
//! report on a recording, show who holds the budget now, serve it to
//! Prometheus (the agent), and write its own completions and man pages. Each
//! takes its validated settings and returns the exit status.
mod agent;
mod check;
mod manuals;
mod report;
mod trace;
mod usage;

pub use self::{
    agent::agent,
    check::check,
    manuals::{completions, install_binary, man_pages},
    report::report,
    trace::trace,
    usage::usage,
};
