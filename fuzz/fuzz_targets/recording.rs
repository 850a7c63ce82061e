//! Any bytes given to the recording reader: it may refuse them, it must not
//! panic, hang or allocate absurdly. Run with `cargo xtask fuzz`.
#![no_main]

use inotify_trace::recording::reader::Reader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(mut reader) = Reader::open(bytes) {
        while let Ok(Some(_)) = reader.next_item() {}
    }
});
