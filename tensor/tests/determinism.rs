//! Same inputs and thread count give bit-identical results, and so do different thread counts:
//! work is split into fixed blocks and no reduction is split across threads.

use tensor::{Conv2d, Rng, Tape, Tensor};

/// A small conv → ReLU → pool → conv → Gram → loss pipeline, forward and backward; returns the
/// loss and the input gradient.
fn run(seed: u64) -> (f32, Vec<f32>) {
    let mut rng = Rng::new(seed);
    let mut t = |dims: &[usize]| Tensor::new(dims, rng.vec(dims.iter().product())).unwrap();
    let c1 = Conv2d::frozen(t(&[16, 3, 3, 3]), t(&[16]), 1).unwrap();
    let c2 = Conv2d::frozen(t(&[40, 16, 3, 3]), t(&[40]), 1).unwrap();
    let image = t(&[1, 3, 67, 45]);
    let target = t(&[1, 40, 40]);

    let mut tape = Tape::new();
    let x = tape.leaf(image);
    let h = tape.conv2d(&x, &c1).unwrap();
    let h = tape.relu(h);
    let h = tape.max_pool2(&h).unwrap();
    let h = tape.conv2d(&h, &c2).unwrap();
    let h = tape.relu(h);
    let g = tape.gram(&h).unwrap();
    let style = tape.mse(&g, &target).unwrap();
    let dx = tape.neighbour_diff(&x, false).unwrap();
    let tv = tape.mean_square(&dx).unwrap();
    let loss = tape.add(&style, &tv).unwrap();
    let value = loss.value().item().unwrap();
    let grads = tape.backward(&loss).unwrap();
    (value, grads.get(&x).unwrap().data().to_vec())
}

fn in_pool(threads: usize, seed: u64) -> (f32, Vec<f32>) {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| run(seed))
}

#[test]
fn results_are_bit_identical_across_runs_and_thread_counts() {
    let (loss1, grad1) = in_pool(1, 42);
    assert!(loss1.is_finite() && grad1.iter().any(|&g| g != 0.0));
    for threads in [1, 2, 3] {
        let (loss, grad) = in_pool(threads, 42);
        assert_eq!(loss.to_bits(), loss1.to_bits(), "{threads} threads: loss");
        let same = grad.iter().zip(&grad1).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{threads} threads: gradient bits differ");
    }
    // A different input gives a different answer (the comparison above can fail).
    assert_ne!(in_pool(2, 43).0.to_bits(), loss1.to_bits());
}

/// The feed-forward network's layers on a batch of three images, forward and backward: reflection
/// pad, instance norm with trained γ and β, leaky ReLU, upsampling, batch norm in training, a
/// residual add. Returns the loss, the batch statistics and every gradient, as bits.
fn run_layers(seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    let mut t = |dims: &[usize]| Tensor::new(dims, rng.vec(dims.iter().product())).unwrap();
    // 3·16 planes of 37x29 (ragged against every chunk size), padded to 45x37 and upsampled to
    // 90x74: 3·90·74 = 19980 values per batch-norm channel.
    let (image, g1, b1, g2, b2) = (t(&[3, 16, 37, 29]), t(&[16]), t(&[16]), t(&[16]), t(&[16]));

    let mut tape = Tape::new();
    let x = tape.leaf(image);
    let (g1, b1, g2, b2) = (tape.leaf(g1), tape.leaf(b1), tape.leaf(g2), tape.leaf(b2));
    let h = tape.reflection_pad2d(&x, 4).unwrap();
    let h = tape.instance_norm(h.clone(), &g1, &b1, 1e-5).unwrap();
    let h = tape.leaky_relu(h, 0.2);
    let h = tape.upsample_nearest2x(&h).unwrap();
    let (h, stats) = tape.batch_norm_train(h.clone(), &g2, &b2, 1e-5).unwrap();
    let h2 = tape.scale(&h, 0.5);
    let h = tape.add(&h, &h2).unwrap();
    let loss = tape.mean_square(&h).unwrap();
    let grads = tape.backward(&loss).unwrap();

    let mut out = vec![loss.value().item().unwrap().to_bits()];
    out.extend(stats.mean.iter().chain(&stats.var).map(|v| v.to_bits()));
    for v in [&x, &g1, &b1, &g2, &b2] {
        out.extend(grads.get(v).unwrap().data().iter().map(|v| v.to_bits()));
    }
    out
}

#[test]
fn feed_forward_layers_are_bit_identical_across_thread_counts() {
    let pool = |threads: usize| rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let one = pool(1).install(|| run_layers(42));
    for threads in [1, 2, 3] {
        assert!(pool(threads).install(|| run_layers(42)) == one, "{threads} threads: results differ");
    }
    assert_ne!(pool(2).install(|| run_layers(43))[0], one[0], "another input, another loss");
}

/// The gradients of a trainable stride-2 layer, a 3x3 layer wide enough for Winograd (the
/// forward and input-gradient passes) and a 9x9 layer with 3 outputs (its weight gradient by
/// sliding rows, whose groups of input channels per task follow the thread count) on a batch
/// of two (weights, biases and input), as bits. Large enough for several GEMM tasks, KC blocks
/// over the pixels, bands of dcol and batches of tiles.
fn train_step(seed: u64) -> Vec<Vec<u32>> {
    let mut rng = Rng::new(seed);
    let mut t = |dims: &[usize]| Tensor::new(dims, rng.vec(dims.iter().product())).unwrap();
    let (w1, b1, w2, b2) = (t(&[32, 5, 3, 3]), t(&[32]), t(&[36, 32, 3, 3]), t(&[36]));
    let (w3, b3) = (t(&[3, 36, 9, 9]), t(&[3]));
    let (image, r) = (t(&[2, 5, 61, 83]), t(&[2, 3, 23, 34]));
    let mut tape = Tape::new();
    let x = tape.leaf(image);
    let vars = [w1, b1, w2, b2, w3, b3].map(|v| tape.leaf(v));
    let down = Conv2d::with_stride(vars[0].clone(), vars[1].clone(), 1, 2).unwrap();
    let same = Conv2d::new(vars[2].clone(), vars[3].clone(), 1).unwrap();
    let wide = Conv2d::new(vars[4].clone(), vars[5].clone(), 0).unwrap();
    let h = tape.conv2d_relu(&x, &down).unwrap();
    let h = tape.conv2d_relu(&h, &same).unwrap();
    let y = tape.conv2d(&h, &wide).unwrap();
    let grads = tape.backward_with(&y, r).unwrap();
    std::iter::once(&x)
        .chain(&vars)
        .map(|v| grads.get(v).unwrap().data().iter().map(|g| g.to_bits()).collect())
        .collect()
}

#[test]
fn weight_gradients_are_bit_identical_across_thread_counts() {
    let pool = |threads| rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let one = pool(1).install(|| train_step(7));
    for threads in [2, 3] {
        assert_eq!(pool(threads).install(|| train_step(7)), one, "{threads} threads");
    }
    assert_ne!(train_step(8), one);
}

/// The Winograd weight gradient, which no layer takes by default (it measured slower than the
/// direct route) but a caller may choose: its products over both images' tiles, in batches
/// on several threads, give the same bits on any thread count.
#[test]
fn winograd_weight_gradient_is_bit_identical_across_thread_counts() {
    use tensor::kernels::conv::{conv_backward_weight, ConvAlgorithm, ConvAlgorithms, ConvGeometry, PackedConv};
    let (g, n, h, w) = (ConvGeometry::same3x3(32, 36), 2, 61, 83);
    let mut rng = Rng::new(11);
    let (x, weights, bias, dy) = (rng.vec(n * 32 * h * w), rng.vec(36 * 32 * 9), rng.vec(36), rng.vec(n * 36 * h * w));
    let a = ConvAlgorithms { weight_gradient: ConvAlgorithm::Winograd, ..ConvAlgorithms::for_geometry(g) };
    let packed = PackedConv::with_algorithms(&weights, &bias, g, a);
    let dw = || {
        let mut dw = vec![0.0; weights.len()];
        conv_backward_weight(&packed, &x, n, h, w, &dy, &mut dw);
        dw.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    };
    let pool = |threads| rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let one = pool(1).install(dw);
    for threads in [2, 3] {
        assert_eq!(pool(threads).install(dw), one, "{threads} threads");
    }
}
