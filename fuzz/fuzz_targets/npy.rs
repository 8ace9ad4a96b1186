//! The tests' `.npy` reader (the reference's golden arrays) on arbitrary bytes: an array or an
//! error message, never a panic (a claimed shape whose size overflows included).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../stylize-cli/tests/common/npy.rs"]
mod npy;

fuzz_target!(|data: &[u8]| {
    let _ = npy::parse_npy(data.to_vec(), std::path::Path::new("fuzz.npy"));
});
