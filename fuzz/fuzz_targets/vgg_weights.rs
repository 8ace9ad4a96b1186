//! The VGG19 weights loader (safetensors header, dtypes, shapes, offsets, codebook indices) on
//! arbitrary bytes: weights or a typed error, never a panic, a hang or a huge allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vgg::weights::from_bytes(data, std::path::Path::new("fuzz.safetensors"), 2);
});
