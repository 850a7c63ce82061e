// Exists only so that the userspace crate can list this crate as a
// build-dependency (which makes cargo rebuild userspace when it changes); the
// eBPF object itself is the `inotify-trace` binary of this crate.
#![no_std]
