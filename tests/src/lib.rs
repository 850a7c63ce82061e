//! Helpers for the end-to-end tests: start the real tracer (`tracer`), make
//! calls with the workload program (`workload`), stop the tracer, and
//! compare what it reported with what the calls saw (`expect`); wait for a
//! condition, never a fixed time (`wait`); real watchers (`watchers`), a
//! pretend node's cgroups and log layout (`node`), Prometheus (`scrape`),
//! podman (`podman`), programs from other Debian releases (`elsewhere`),
//! a script read line by line while it runs (`spawned`).
//!
//! Tests share the kernel (attached programs slow every syscall, and a
//! user-namespace limit is per namespace), so they run one at a time:
//! `cargo xtask test` passes `--test-threads=1`.
pub mod btf;
pub mod elsewhere;
mod expect;
pub mod node;
pub mod podman;
pub mod scrape;
pub mod spawned;
mod tracer;
pub mod wait;
pub mod watchers;
mod workload;

pub use self::{expect::*, tracer::*, workload::*};
