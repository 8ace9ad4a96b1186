//! The weights loader on mutated files: every outcome is weights or a typed error naming the
//! file, never a panic, and no header can make it allocate more than the file holds.

use std::path::Path;

use proptest::prelude::*;
use safetensors::tensor::{Dtype, TensorView};
use tensor::Rng;
use vgg::weights;

/// A valid file holding conv1_1 only (quantised, 2.4 KB), which `load_first(path, 1)` accepts.
fn conv1_1() -> Vec<u8> {
    let mut rng = Rng::new(11);
    let index: Vec<u8> = (0..64 * 3 * 9).map(|_| rng.next_u64() as u8).collect();
    let codebook: Vec<u8> = (0..256).flat_map(|_| rng.uniform().to_le_bytes()).collect();
    let bias: Vec<u8> = (0..64).flat_map(|_| rng.uniform().to_le_bytes()).collect();
    let views = [
        ("conv1_1.weight_index", TensorView::new(Dtype::U8, vec![64, 3, 3, 3], &index).unwrap()),
        ("conv1_1.weight_codebook", TensorView::new(Dtype::F32, vec![256], &codebook).unwrap()),
        ("conv1_1.bias", TensorView::new(Dtype::F32, vec![64], &bias).unwrap()),
    ];
    safetensors::serialize(views, &None).unwrap()
}

fn load(bytes: &[u8], dir: &Path) -> Result<weights::Weights, vgg::Error> {
    let path = dir.join("fuzz.safetensors");
    std::fs::write(&path, bytes).unwrap();
    weights::load_first(&path, 1)
}

#[test]
fn the_unmutated_file_loads() {
    let dir = tempfile::tempdir().unwrap();
    let w = load(&conv1_1(), dir.path()).unwrap();
    assert_eq!(w.convs.len(), 1);
    assert_eq!(w.convs[0].weight.len(), 64 * 27);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

    /// Overwrite a few bytes anywhere (header length, JSON header, indices, floats) and maybe
    /// truncate: the loader returns weights or an error that names the file.
    #[test]
    fn mutated_files_are_values_or_errors(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = conv1_1();
        let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        for (k, (at, value)) in edits.into_iter().enumerate() {
            // Half of the edits land in the header, where a parser is most exposed.
            let i = if k % 2 == 0 { at.index(header) } else { at.index(bytes.len()) };
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        let dir = tempfile::tempdir().unwrap();
        if let Err(e) = load(&bytes, dir.path()) {
            prop_assert!(e.to_string().contains("fuzz.safetensors"), "{}", e);
        }
    }
}

/// A header that claims a tensor of 2^40 values in a file of a few hundred bytes is refused
/// before anything is allocated (the byte range lies outside the file).
#[test]
fn a_header_claiming_a_huge_tensor_is_refused() {
    let header = r#"{"conv1_1.weight":{"dtype":"F32","shape":[1048576,1048576],"data_offsets":[0,4398046511104]},"conv1_1.bias":{"dtype":"F32","shape":[64],"data_offsets":[0,256]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0; 256]);
    let dir = tempfile::tempdir().unwrap();
    let err = load(&bytes, dir.path()).unwrap_err();
    assert!(matches!(err, vgg::Error::NotSafetensors { .. }), "{err}");
}
