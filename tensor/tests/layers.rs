//! The feed-forward network's layers as ops: PyTorch's semantics on small worked examples, the
//! errors they return, and what they save for backward. (Their gradients are in `gradcheck.rs`,
//! their kernels against the scalar twins in `kernels_vs_reference.rs`.)

use tensor::{Error, Rng, Tape, Tensor, Var};

fn random(seed: u64, dims: &[usize]) -> Tensor {
    Tensor::new(dims, Rng::new(seed).vec(dims.iter().product())).unwrap()
}

#[test]
fn reflection_pad_is_pytorchs() {
    // The example of torch.nn.ReflectionPad2d's documentation: ReflectionPad2d(2) on
    // torch.arange(9, dtype=torch.float).reshape(1, 1, 3, 3).
    let x = Var::constant(Tensor::new([1, 1, 3, 3], (0..9).map(|v| v as f32).collect()).unwrap());
    let y = Tape::new().reflection_pad2d(&x, 2).unwrap();
    #[rustfmt::skip]
    let expected = [
        8., 7., 6., 7., 8., 7., 6.,
        5., 4., 3., 4., 5., 4., 3.,
        2., 1., 0., 1., 2., 1., 0.,
        5., 4., 3., 4., 5., 4., 3.,
        8., 7., 6., 7., 8., 7., 6.,
        5., 4., 3., 4., 5., 4., 3.,
        2., 1., 0., 1., 2., 1., 0.,
    ];
    assert_eq!(y.shape().dims(), &[1, 1, 7, 7]);
    assert_eq!(y.value().data(), &expected);
}

#[test]
fn reflection_pad_backward_counts_every_copy() {
    // A ones gradient gives each pixel the number of times it was copied, the product of its
    // row's and its column's counts. Pad 1 on a 3x4 plane: the middle row is copied three times
    // (itself, and mirrored from above and from below), the two inner columns twice.
    let mut tape = Tape::new();
    let x = tape.leaf(Tensor::zeros([1, 1, 3, 4]));
    let y = tape.reflection_pad2d(&x, 1).unwrap();
    let ones = Tensor::new(y.shape(), vec![1.0; y.shape().numel()]).unwrap();
    let grads = tape.backward_with(&y, ones).unwrap();
    #[rustfmt::skip]
    let expected = [
        1., 2., 2., 1.,
        3., 6., 6., 3.,
        1., 2., 2., 1.,
    ];
    assert_eq!(grads.get(&x).unwrap().data(), &expected);
}

#[test]
fn upsample_repeats_each_pixel_into_a_block() {
    // torch.nn.Upsample(scale_factor=2, mode='nearest') on [[1, 2], [3, 4]] (its documentation's
    // example), for two images at once.
    let x = Var::constant(Tensor::new([2, 1, 2, 2], vec![1., 2., 3., 4., 5., 6., 7., 8.]).unwrap());
    let y = Tape::new().upsample_nearest2x(&x).unwrap();
    assert_eq!(y.shape().dims(), &[2, 1, 4, 4]);
    #[rustfmt::skip]
    let first = [
        1., 1., 2., 2.,
        1., 1., 2., 2.,
        3., 3., 4., 4.,
        3., 3., 4., 4.,
    ];
    assert_eq!(&y.value().data()[..16], &first);
    assert_eq!(y.value().data()[16..], first.map(|v| v + 4.0));
}

#[test]
fn bad_shapes_and_sizes_are_typed_errors() {
    let mut tape = Tape::new();
    let x = Var::constant(Tensor::zeros([2, 3, 4, 5]));
    let bad_geometry = |r: Result<Var, Error>| matches!(r, Err(Error::BadGeometry { .. }));
    let bad_shape = |r: Result<Var, Error>| matches!(r, Err(Error::ShapeMismatch { .. }));

    assert!(tape.reflection_pad2d(&x, 3).is_ok());
    assert!(bad_geometry(tape.reflection_pad2d(&x, 4)), "pad = h");
    assert!(bad_geometry(tape.reflection_pad2d(&Var::constant(Tensor::zeros([1, 1, 9, 2])), 2)), "pad = w");
    assert!(bad_shape(tape.reflection_pad2d(&Var::constant(Tensor::zeros([3, 4, 5])), 1)), "not NCHW");
    assert!(bad_shape(tape.upsample_nearest2x(&Var::constant(Tensor::zeros([4, 5])))));

    assert!(tape.is_empty());
}

#[test]
fn padding_and_upsampling_save_shapes_leaky_relu_a_mask() {
    let x = random(8, &[2, 3, 4, 5]);
    let mut tape = Tape::new();
    let xv = tape.leaf(x);
    let padded = tape.reflection_pad2d(&xv, 2).unwrap();
    let up = tape.upsample_nearest2x(&padded).unwrap();
    assert_eq!(tape.saved_bytes(), 0, "padding and upsampling keep only shapes");
    let _ = tape.leaky_relu(&up, 0.2);
    assert_eq!(tape.saved_bytes(), up.shape().numel(), "a one-byte mask");
}
