//! Model files from arbitrary and mutated bytes: every outcome is a value or a typed error,
//! never a panic, and nothing is allocated beyond what the bytes hold.

use std::path::Path;

use nn::model_file::ModelFile;
use proptest::prelude::*;
use tensor::Tensor;

fn valid() -> Vec<u8> {
    let mut m = ModelFile::default();
    m.metadata.insert("arch".into(), "test".into());
    m.tensors.insert("a.weight".into(), Tensor::uniform([8, 3, 3, 3], -1.0, 1.0, 1));
    m.tensors.insert("a.bias".into(), Tensor::uniform([8], -1.0, 1.0, 2));
    m.to_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Flip, overwrite and truncate bytes of a valid file, anywhere (header length, JSON, data).
    #[test]
    fn mutated_files_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = valid();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        let _ = ModelFile::from_bytes(&bytes, Path::new("fuzz.safetensors"));
    }

    /// A header that claims any length, followed by arbitrary text.
    #[test]
    fn arbitrary_headers_never_panic(claim in any::<u64>(), body in ".{0,200}") {
        let mut bytes = claim.to_le_bytes().to_vec();
        bytes.extend_from_slice(body.as_bytes());
        let _ = ModelFile::from_bytes(&bytes, Path::new("fuzz.safetensors"));
    }
}

/// A header claiming a 2^40-element tensor in a tiny file is refused, not allocated.
#[test]
fn a_header_claiming_a_huge_tensor_is_refused() {
    let header = r#"{"__metadata__":{"stylize.format":"stylize-model-1"},"w":{"dtype":"F32","shape":[1048576,1048576],"data_offsets":[0,4398046511104]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0; 16]);
    let err = ModelFile::from_bytes(&bytes, Path::new("huge.safetensors")).unwrap_err();
    assert!(err.to_string().contains("huge.safetensors"), "{err}");
}
