//! VGG19's convolutional part (Simonyan & Zisserman, "Very Deep Convolutional Networks for
//! Large-Scale Image Recognition", 2015) on the tensor engine, as style transfer uses it.
//!
//! Input: an image in the network's own space, made once from an RGB image in 0..255 by
//! [`Vgg19::preprocess`], the Caffe/Keras preprocessing the weights were trained with: reorder
//! to BGR and subtract the ImageNet mean. It is a channel permutation and a shift, so it stays
//! off the tape: the gradient with respect to the RGB image is the gradient with respect to the
//! preprocessed one with its channels permuted back ([`Vgg19::gradient_to_rgb`]), and an
//! optimiser can work on the preprocessed image throughout. Every convolution is 3x3, stride
//! 1, padding 1, followed by ReLU; a 2x2 max-pool closes each block.
//! The weights are frozen (constants), so the tape records only ReLU masks and max-pool
//! argmaxes, and gradients flow to the image alone. Each ReLU runs fused into its
//! convolution's write-back unless the convolution's own output is asked for. The convolutions
//! run by Winograd where it pays, except conv1_2's forward when optimising a picture
//! ([`conv_algorithms`]).

use std::path::Path;

use tensor::kernels::conv::{ConvAlgorithm, ConvAlgorithms, ConvGeometry};
use tensor::kernels::elementwise::Bounds;
use tensor::{Conv2d, Tape, Tensor, Var};

use crate::table::{self, Layer};
use crate::weights::{self, Weights};
use crate::Error;

/// The per-channel mean (B, G, R) of the ImageNet training images, subtracted by VGG's
/// preprocessing.
pub const MEAN_BGR: [f32; 3] = [103.939, 116.779, 123.68];

/// What a VGG19 is built for, which decides how its convolutions run ([`conv_algorithms`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Purpose {
    /// Optimising one picture (`stylize run`, `eval`): Winograd's weights transformed at each
    /// call (the least memory), and conv1_2's forward direct, so that the first max-pool meets
    /// the reference's ties and the gradient follows the reference's within the golden
    /// tolerance.
    #[default]
    Optimise,
    /// Training a feed-forward network (`stylize train`): Winograd's weights transformed once
    /// and kept (on 256² crops the per-call transform would add 10-30% to a step, for 0.35 GB
    /// saved; `benches/README.md`, "Winograd weights per call"), and every 3x3 layer with 16
    /// channels or more, conv1_2 included, by Winograd: 6-8% of a step, and no reference to
    /// match tie for tie.
    Train,
}

/// The algorithms convolution `name` runs for `purpose`: the fastest for its shape, except
/// that conv1_2's forward stays direct when optimising a picture.
///
/// Direct convolution gives bit-identical outputs wherever its 3x3 window is flat, so a flat
/// region of the photo (a clipped sky) stays exactly flat into the first max-pool, which meets
/// exact ties there and resolves them as the reference does (first cell wins). Winograd's
/// outputs near a flat region's edge are a rounding apart (see `tensor::kernels::winograd`), so
/// those ties would fall elsewhere and send the gradient to other pixels: on the golden test's
/// sky, 1.8% of the gradient's L2 norm, against the 0.5% it allows. With only this pass
/// direct, both golden gradients are within 1.1e-6 (relative L2) of the float64 reference's,
/// closer than with every layer direct (1.2e-3 in case b); `stylize-cli/tests/golden.rs`.
/// Training has no reference to follow tie for tie, so it takes Winograd there too.
pub fn conv_algorithms(name: &str, purpose: Purpose) -> ConvAlgorithms {
    let spec = table::CONVS.iter().find(|c| c.name == name).expect("a VGG19 convolution");
    let fastest = ConvAlgorithms::for_geometry(ConvGeometry::same3x3(spec.in_channels, spec.out_channels));
    match purpose {
        Purpose::Optimise if name == "conv1_2" => ConvAlgorithms { forward: ConvAlgorithm::Direct, ..fastest },
        Purpose::Optimise => fastest,
        Purpose::Train => fastest.kept(),
    }
}

/// VGG19 with its weights packed for the engine's GEMM, once.
pub struct Vgg19 {
    convs: Vec<Conv2d>,
}

impl Vgg19 {
    /// Loads, validates and packs the weights in a safetensors file, only as far as the deepest
    /// of `layers` needs (relu4_2 needs 10 of the 16 convolutions); see `weights::load_first`.
    /// Built to optimise a picture ([`Purpose::Optimise`]).
    pub fn load(path: &Path, layers: &[&str]) -> Result<Self, Error> {
        Vgg19::load_for(path, layers, Purpose::Optimise)
    }

    /// [`Vgg19::load`] for `purpose`.
    pub fn load_for(path: &Path, layers: &[&str], purpose: Purpose) -> Result<Self, Error> {
        let convs = convs_needed(layers)?;
        Vgg19::from_weights_for(&weights::load_first(path, convs)?, purpose)
    }

    /// The network from weights already loaded, built to optimise a picture.
    pub fn from_weights(w: &Weights) -> Result<Self, Error> {
        Vgg19::from_weights_for(w, Purpose::Optimise)
    }

    /// [`Vgg19::from_weights`] for `purpose`.
    pub fn from_weights_for(w: &Weights, purpose: Purpose) -> Result<Self, Error> {
        let mut convs = Vec::new();
        for spec in table::CONVS.iter() {
            let Some(cw) = w.get(spec.name) else { break };
            let weight = Tensor::new([spec.out_channels, spec.in_channels, 3, 3], cw.weight.clone())?;
            let bias = Tensor::new([spec.out_channels], cw.bias.clone())?;
            convs.push(Conv2d::frozen_with(weight, bias, 1, conv_algorithms(spec.name, purpose))?);
        }
        Ok(Vgg19 { convs })
    }

    /// The smallest image side for which `layer` has at least one pixel: each max-pool before
    /// it halves (and floors) the size, so `2^pools` (16 for relu5_1).
    pub fn min_side(layer: &str) -> Result<usize, Error> {
        let idx = layer_index(layer)?;
        let pools = table::LAYERS[..idx].iter().filter(|l| matches!(l, Layer::Pool { .. })).count();
        Ok(1 << pools)
    }

    /// The smallest image side the deepest of `layers` accepts (see [`Vgg19::min_side`]).
    pub fn min_side_for(layers: &[&str]) -> Result<usize, Error> {
        let deepest = deepest(layers)?;
        Vgg19::min_side(table::LAYERS[deepest].name())
    }

    /// An RGB image `[n, 3, h, w]` in 0..255 as the network sees it: BGR minus [`MEAN_BGR`].
    pub fn preprocess(rgb: &Tensor) -> Result<Tensor, Error> {
        Ok(shift_channels(permute_to_bgr(rgb)?, MEAN_BGR.map(|m| -m)))
    }

    /// The RGB image in 0..255 that [`Vgg19::preprocess`] turned into `x`.
    pub fn deprocess(x: &Tensor) -> Result<Tensor, Error> {
        permute_to_bgr(&shift_channels(x.clone(), MEAN_BGR))
    }

    /// The range of each BGR channel `c` of a preprocessed picture whose pixels lie in 0..255:
    /// `-mean_c..255 - mean_c`.
    pub fn pixel_bounds() -> [Bounds; 3] {
        MEAN_BGR.map(|m| Bounds { lo: -m, hi: 255.0 - m })
    }

    /// The preprocessed image nearest to `x` whose pixels all lie in 0..255: the projection
    /// onto the pictures a file can hold ([`Vgg19::pixel_bounds`]).
    pub fn clamp_to_pixels(x: Tensor) -> Tensor {
        let bounds = Vgg19::pixel_bounds();
        map_channels(x, |c, v| v.clamp(bounds[c].lo, bounds[c].hi))
    }

    /// `∂L/∂rgb` from `∂L/∂x` for `x = preprocess(rgb)`: the shift has derivative 1, and the
    /// permutation's transpose is itself (swapping R and B twice is the identity).
    pub fn gradient_to_rgb(grad: &Tensor) -> Result<Tensor, Error> {
        permute_to_bgr(grad)
    }

    /// The features of `x` (images `[n, 3, H, W]` made by [`Vgg19::preprocess`]) at each of
    /// `layers`, in the order asked, `[n, C, H', W']` each. Runs the network only up to the
    /// deepest of them.
    pub fn features(&self, tape: &mut Tape, x: &Var, layers: &[&str]) -> Result<Vec<Var>, Error> {
        let wanted: Vec<usize> = layers.iter().map(|l| layer_index(l)).collect::<Result<_, _>>()?;
        let Some(&deepest) = wanted.iter().max() else { return Ok(Vec::new()) };
        let dims = x.shape().dims().to_vec();
        let [_, 3, h, w] = dims[..] else {
            return Err(Error::BadImage { reason: format!("expected images [n, 3, H, W], got {:?}", dims) });
        };
        let deepest_name = table::LAYERS[deepest].name();
        let min = Vgg19::min_side(deepest_name)?;
        if h < min || w < min {
            return Err(Error::BadImage {
                reason: format!(
                    "a {w}x{h} image is too small for {deepest_name}: it needs at least {min}x{min} pixels"
                ),
            });
        }

        let mut h = x.clone();
        let mut out: Vec<Option<Var>> = vec![None; layers.len()];
        let mut i = 0;
        while i <= deepest {
            let layer = table::LAYERS[i];
            h = match layer {
                Layer::Conv { index } => {
                    let conv = self
                        .convs
                        .get(index)
                        .ok_or_else(|| Error::LayerNotLoaded { layer: layer.name().to_string() })?;
                    // A ReLU follows every convolution; when nobody asked for the convolution's
                    // own output, the ReLU runs inside it (one pass over the activations less).
                    if i < deepest && !wanted.contains(&i) {
                        debug_assert!(matches!(table::LAYERS[i + 1], Layer::Relu { .. }));
                        i += 1;
                        tape.conv2d_relu(&h, conv)?
                    } else {
                        tape.conv2d(&h, conv)?
                    }
                }
                Layer::Relu { .. } => tape.relu(h),
                Layer::Pool { .. } => tape.max_pool2(&h)?,
            };
            for (slot, _) in out.iter_mut().zip(&wanted).filter(|(_, &w)| w == i) {
                *slot = Some(h.clone());
            }
            i += 1;
        }
        Ok(out.into_iter().map(|v| v.expect("every wanted layer is at most the deepest")).collect())
    }
}

/// `[n, 3, h, w]` with channels 0 and 2 swapped (RGB <-> BGR).
fn permute_to_bgr(t: &Tensor) -> Result<Tensor, Error> {
    let shape = t.shape();
    let dims = shape.dims();
    let [n, 3, h, w] = *dims else {
        return Err(Error::BadImage { reason: format!("expected an image [n, 3, H, W], got {dims:?}") });
    };
    let plane = h * w;
    let src = t.data();
    let mut out = Vec::with_capacity(src.len());
    for b in 0..n {
        for c in [2, 1, 0] {
            out.extend_from_slice(&src[(3 * b + c) * plane..][..plane]);
        }
    }
    Ok(Tensor::new(t.shape(), out)?)
}

/// `t[:, c] += offsets[c]` for `[n, 3, h, w]`.
fn shift_channels(t: Tensor, offsets: [f32; 3]) -> Tensor {
    map_channels(t, |c, v| v + offsets[c])
}

/// `f(channel, value)` applied to every value of `[n, 3, h, w]` (copies only if `t` is shared).
fn map_channels(t: Tensor, f: impl Fn(usize, f32) -> f32) -> Tensor {
    let shape = t.shape();
    let plane = shape.numel() / shape.dims()[0].max(1) / 3;
    let mut data = t.into_vec();
    for (i, p) in data.chunks_exact_mut(plane.max(1)).enumerate() {
        p.iter_mut().for_each(|v| *v = f(i % 3, *v));
    }
    Tensor::new(shape, data).expect("same length")
}

/// The position in [`table::LAYERS`] of the deepest of `layers`.
pub fn deepest(layers: &[&str]) -> Result<usize, Error> {
    let mut deepest = None;
    for l in layers {
        deepest = deepest.max(Some(layer_index(l)?));
    }
    deepest.ok_or_else(|| Error::UnknownLayer { name: "(no layer given)".into() })
}

/// How many convolutions, from conv1_1 on, reaching the deepest of `layers` takes.
pub fn convs_needed(layers: &[&str]) -> Result<usize, Error> {
    let deepest = deepest(layers)?;
    Ok(table::LAYERS[..=deepest].iter().filter(|l| matches!(l, Layer::Conv { .. })).count())
}

/// The position of a named layer in the network.
pub fn layer_index(name: &str) -> Result<usize, Error> {
    table::layer_index(name).ok_or_else(|| Error::UnknownLayer { name: name.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensor::kernels::conv::Transforms;

    #[test]
    fn each_purpose_runs_the_convolutions_it_documents() {
        let (direct, winograd) = (ConvAlgorithm::Direct, ConvAlgorithm::Winograd);
        let passes = |a: ConvAlgorithms| (a.forward, a.input_gradient, a.weight_gradient, a.transforms);
        // Optimising: conv1_2's forward direct for the reference's ties, transforms per call.
        let optimise = conv_algorithms("conv1_2", Purpose::Optimise);
        assert_eq!(passes(optimise), (direct, winograd, direct, Transforms::PerCall));
        // Training: Winograd wherever it pays, conv1_2 included, transforms kept.
        let train = conv_algorithms("conv1_2", Purpose::Train);
        assert_eq!(passes(train), (winograd, winograd, direct, Transforms::Kept));
        for purpose in [Purpose::Optimise, Purpose::Train] {
            // conv1_1 (3 channels in) is direct either way; the deeper layers Winograd.
            assert_eq!(conv_algorithms("conv1_1", purpose).forward, direct);
            assert_eq!(conv_algorithms("conv4_1", purpose).forward, winograd);
        }
    }
}
