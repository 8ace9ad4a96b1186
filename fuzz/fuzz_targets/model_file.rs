//! Feed-forward model files on arbitrary bytes, read and then built into a network as
//! `stylize apply` does: a network or a typed error, never a panic, a hang or a huge allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nn::model_file::ModelFile;
use nn::transformer::Transformer;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut m) = ModelFile::from_bytes(data, std::path::Path::new("fuzz.safetensors")) {
        if Transformer::from_model_file(&mut m).is_ok() {
            let _ = m.finish();
        }
    }
});
