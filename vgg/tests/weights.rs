//! The shipped weights file and how bad files fail. The converter that made it is tested in
//! `pastiche.rs`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use safetensors::tensor::{Dtype, TensorView};
use sha2::{Digest, Sha256};
use vgg::table::CONVS;
use vgg::weights::{self, SHIPPED_WEIGHTS};
use vgg::{Error, Vgg19};

/// SHA-256 of `vgg/weights/vgg19.safetensors`, as made by `stylize convert` from pastiche
/// 1.6.0's `vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin` (see vgg/weights/README.md;
/// `pastiche.rs` checks the converter reproduces the file).
const SHIPPED_SHA256: &str = "8eeacbff3a1d279cc2ac469aaac2ee7dda752af922465ab7206ebbfdf4aee423";

fn sha256(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn shipped_weights_are_pinned() {
    assert_eq!(sha256(Path::new(SHIPPED_WEIGHTS)), SHIPPED_SHA256);
}

#[test]
fn shipped_weights_load_with_the_right_shapes() {
    let t = Instant::now();
    let w = weights::load(Path::new(SHIPPED_WEIGHTS)).unwrap();
    eprintln!("loading and dequantising the shipped weights took {:.3} s", t.elapsed().as_secs_f64());
    assert_eq!(w.convs.len(), 16);
    for (c, spec) in w.convs.iter().zip(CONVS) {
        assert_eq!(c.spec, spec);
        assert_eq!(c.weight.len(), spec.out_channels * spec.in_channels * 9);
        assert_eq!(c.bias.len(), spec.out_channels);
        assert!(c.weight.iter().chain(&c.bias).all(|v| v.is_finite()));
    }
    // Dequantisation is exactly codebook[index]: read both from the file and compare.
    let bytes = std::fs::read(SHIPPED_WEIGHTS).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let index = st.tensor("conv3_2.weight_index").unwrap();
    let codebook = st.tensor("conv3_2.weight_codebook").unwrap();
    let cb = |i: usize| f32::from_le_bytes(codebook.data()[4 * i..4 * i + 4].try_into().unwrap());
    let conv = w.get("conv3_2").unwrap();
    for i in [0, 1, 1000, index.data().len() - 1] {
        assert_eq!(conv.weight[i], cb(index.data()[i] as usize));
    }
    assert!(Vgg19::from_weights(&w).is_ok());
}

/// A tensor to write: name, dtype, shape, little-endian bytes.
type Entry = (String, Dtype, Vec<usize>, Vec<u8>);

/// Writes a safetensors file of the shipped layers, with `edit` applied to the tensor list.
fn write_variant(path: &Path, edit: impl Fn(&mut Vec<Entry>)) {
    let w = weights::load(Path::new(SHIPPED_WEIGHTS)).unwrap();
    let mut tensors: Vec<Entry> = Vec::new();
    for c in &w.convs {
        let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let (o, i) = (c.spec.out_channels, c.spec.in_channels);
        tensors.push((format!("{}.weight", c.spec.name), Dtype::F32, vec![o, i, 3, 3], f32_bytes(&c.weight)));
        tensors.push((format!("{}.bias", c.spec.name), Dtype::F32, vec![o], f32_bytes(&c.bias)));
    }
    edit(&mut tensors);
    let views: Vec<(String, TensorView)> =
        tensors.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    std::fs::write(path, safetensors::serialize(views, &None).unwrap()).unwrap();
}

#[test]
fn plain_f32_weights_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f32.safetensors");
    write_variant(&path, |_| {});
    let plain = weights::load(&path).unwrap();
    let shipped = weights::load(Path::new(SHIPPED_WEIGHTS)).unwrap();
    assert_eq!(plain.convs[4].weight, shipped.convs[4].weight);
}

#[test]
fn bad_files_fail_with_errors_that_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let shipped = std::fs::read(SHIPPED_WEIGHTS).unwrap();
    type Check = fn(&Error) -> bool;
    let cases: Vec<(PathBuf, Check)> = vec![
        (file("empty.safetensors", b""), |e| matches!(e, Error::NotSafetensors { .. })),
        (file("half.safetensors", &shipped[..shipped.len() / 2]), |e| matches!(e, Error::NotSafetensors { .. })),
        (file("noise.safetensors", &[0x5a; 4096]), |e| matches!(e, Error::NotSafetensors { .. })),
        (dir.path().join("missing.safetensors"), |e| matches!(e, Error::Io { .. })),
    ];
    for (path, expected) in cases {
        let err = weights::load(&path).unwrap_err();
        assert!(expected(&err), "{}: {err}", path.display());
        assert!(err.to_string().contains(&*path.file_name().unwrap().to_string_lossy()), "names the file: {err}");
    }

    let variant = |name: &str, edit: &dyn Fn(&mut Vec<Entry>)| {
        let p = dir.path().join(name);
        write_variant(&p, edit);
        weights::load(&p).unwrap_err()
    };
    let err = variant("no_conv2_1.safetensors", &|t| t.retain(|(n, ..)| !n.starts_with("conv2_1.")));
    assert!(matches!(&err, Error::MissingTensor { name, .. } if name == "conv2_1.bias"), "{err}");
    let err = variant("f64.safetensors", &|t| {
        let bias = t.iter_mut().find(|(n, ..)| n == "conv1_1.bias").unwrap();
        bias.1 = Dtype::F64;
        bias.2 = vec![32];
    });
    assert!(matches!(&err, Error::WrongDtype { name, .. } if name == "conv1_1.bias"), "{err}");
    let err = variant("shape.safetensors", &|t| {
        let w = t.iter_mut().find(|(n, ..)| n == "conv3_1.weight").unwrap();
        w.2 = vec![128, 256, 3, 3];
    });
    assert!(matches!(&err, Error::WrongShape { name, .. } if name == "conv3_1.weight"), "{err}");
    let err = variant("nan.safetensors", &|t| {
        let b = t.iter_mut().find(|(n, ..)| n == "conv4_1.bias").unwrap();
        b.3[..4].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    assert!(matches!(&err, Error::NonFinite { name, .. } if name == "conv4_1.bias"), "{err}");
}

#[test]
fn missing_weights_say_where_they_were_looked_for() {
    let err = vgg::resolve_weights_path(Some(Path::new("/nonexistent/w.safetensors"))).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
    assert!(err.to_string().contains("/nonexistent/w.safetensors"), "{err}");
}

/// A batch of two images gives, per image, exactly the features each gives alone.
#[test]
fn a_batch_gives_each_image_its_own_features() {
    use tensor::{Tape, Tensor, Var};
    let vgg = Vgg19::load(Path::new(SHIPPED_WEIGHTS), &["relu2_1"]).unwrap();
    let (a, b) = (Tensor::uniform([1, 3, 20, 24], -100.0, 100.0, 1), Tensor::uniform([1, 3, 20, 24], -100.0, 100.0, 2));
    let both = Tensor::new([2, 3, 20, 24], [a.data(), b.data()].concat()).unwrap();
    let mut tape = Tape::new();
    let feats =
        |t: &Tensor, tape: &mut Tape| vgg.features(tape, &Var::constant(t.clone()), &["relu2_1"]).unwrap().remove(0);
    let batch = feats(&both, &mut tape);
    assert_eq!(batch.shape().dims(), [2, 128, 10, 12]);
    let single = [feats(&a, &mut tape), feats(&b, &mut tape)].map(|f| f.value().data().to_vec()).concat();
    assert_eq!(batch.value().data(), &single[..]);
}
