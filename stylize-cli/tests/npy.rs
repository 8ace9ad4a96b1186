//! `.npy` files: what `stylize::npy` writes, the tests' reader reads back; bad files fail clearly.

mod common;

use common::npy::{load_npy_f32, load_npy_f64, parse_npy};
use proptest::prelude::*;

#[test]
fn round_trip_through_the_writer_and_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("g.npy");
    let data: Vec<f32> = (0..24).map(|i| i as f32 * 0.5 - 3.0).collect();
    stylize::npy::save_f32(&p, &[1, 2, 3, 4], &data).unwrap();
    assert_eq!(load_npy_f32(&p).unwrap(), (vec![1, 2, 3, 4], data.clone()));
    let (shape, wide) = load_npy_f64(&p).unwrap();
    assert_eq!(shape, [1, 2, 3, 4]);
    assert!(wide.iter().zip(&data).all(|(a, &b)| *a == f64::from(b)));
    stylize::npy::save_f32(&p, &[3], &[1.0, 2.0, 3.0]).unwrap();
    assert_eq!(load_npy_f32(&p).unwrap(), (vec![3], vec![1.0, 2.0, 3.0]));
}

#[test]
fn bad_files_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.npy");
    std::fs::write(&p, b"not numpy at all").unwrap();
    assert!(load_npy_f64(&p).unwrap_err().contains("magic"));
    stylize::npy::save_f32(&p, &[2, 2], &[1.0; 4]).unwrap();
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.pop();
    std::fs::write(&p, &bytes).unwrap();
    let err = load_npy_f64(&p).unwrap_err();
    assert!(err.contains("needs 16 data bytes, the file has 15"), "{err}");
    // A header whose shape overflows usize is refused; it used to overflow (a panic in tests).
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }\n";
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    std::fs::write(&p, &bytes).unwrap();
    let err = load_npy_f32(&p).unwrap_err();
    assert!(err.contains("more than usize::MAX"), "{err}");
}

/// The golden files the numerics are checked against must be readable here.
#[test]
fn reads_the_golden_arrays() {
    let golden = common::golden_dir("a");
    let (shape, grad) = load_npy_f64(&golden.join("grad_f64.npy")).unwrap();
    assert_eq!(shape, [1, 3, 64, 96]);
    assert!(grad.iter().all(|v| v.is_finite()) && grad.iter().any(|&v| v != 0.0));
    let (shape, gram) = load_npy_f32(&golden.join("gram_style_relu1_1.npy")).unwrap();
    assert_eq!(shape, [64, 64]);
    // A Gram matrix is symmetric.
    assert!((0..64).all(
        |i| (0..64).all(|j| (gram[i * 64 + j] - gram[j * 64 + i]).abs() <= 1e-3 * gram[i * 64 + j].abs().max(1.0))
    ));
}

/// A valid `[2, 3]` '<f4' file, as `stylize::npy` writes it.
fn valid_npy() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("v.npy");
    stylize::npy::save_f32(&p, &[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    std::fs::read(&p).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    /// The reader on mutated valid files (bytes overwritten, the file cut short): an array whose
    /// data is exactly what its shape needs, or an error; never a panic.
    #[test]
    fn mutated_files_are_read_or_refused(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = valid_npy();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        if let Ok((shape, descr, data)) = parse_npy(bytes, std::path::Path::new("m.npy")) {
            let item = match descr.as_str() { "<f4" => 4, "<f8" => 8, _ => 1 };
            prop_assert_eq!(data.len(), shape.iter().product::<usize>() * item);
        }
    }
}
