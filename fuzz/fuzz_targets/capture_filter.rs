//! The capture filter language and the capture's frame readers on arbitrary input: parsing
//! never panics, a parsed filter matches any bytes without panicking, and the one-line
//! summary reads any frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vswitch::capture::{summary, Filter};

fuzz_target!(|data: &[u8]| {
    // First byte: how much of the input is the expression; the rest is a frame.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(split).min(rest.len());
    let (expr, frame) = rest.split_at(cut);
    let Ok(expr) = std::str::from_utf8(expr) else {
        return;
    };
    if let Ok(f) = Filter::parse(expr) {
        let _ = f.matches(frame);
    }
    let _ = summary::describe(frame, frame.len() as u32);
});
