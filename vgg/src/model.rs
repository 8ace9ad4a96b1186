//! VGG19's convolutional part (Simonyan & Zisserman, "Very Deep Convolutional Networks for
//! Large-Scale Image Recognition", 2015) on the tensor engine, as style transfer uses it.
//!
//! Input: an RGB image `[1, 3, H, W]` in 0..255. Preprocessing is the Caffe/Keras one the
//! weights were trained with: reorder to BGR and subtract the ImageNet mean. Every
//! convolution is 3x3, stride 1, padding 1, followed by ReLU; a 2x2 max-pool closes each block.
//! The weights are frozen (constants), so the tape records only ReLU masks and max-pool
//! argmaxes, and gradients flow to the image alone. Each ReLU runs fused into its
//! convolution's write-back unless the convolution's own output is asked for.

use std::path::Path;

use tensor::{Conv2d, Tape, Tensor, Var};

use crate::table::{self, Layer};
use crate::weights::{self, Weights};
use crate::Error;

/// The per-channel mean (B, G, R) of the ImageNet training images, subtracted by VGG's
/// preprocessing.
pub const MEAN_BGR: [f32; 3] = [103.939, 116.779, 123.68];

/// VGG19 with its weights packed for the engine's GEMM, once.
pub struct Vgg19 {
    convs: Vec<Conv2d>,
}

impl Vgg19 {
    /// Loads, validates and packs the weights in a safetensors file (see `weights::load`).
    pub fn load(path: &Path) -> Result<Self, Error> {
        Vgg19::from_weights(&weights::load(path)?)
    }

    pub fn from_weights(w: &Weights) -> Result<Self, Error> {
        let mut convs = Vec::new();
        for spec in table::CONVS.iter() {
            let Some(cw) = w.get(spec.name) else { break };
            let weight = Tensor::new([spec.out_channels, spec.in_channels, 3, 3], cw.weight.clone())?;
            let bias = Tensor::new([spec.out_channels], cw.bias.clone())?;
            convs.push(Conv2d::frozen(weight, bias, 1)?);
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

    /// The features of `image` at each of `layers`, in the order asked. Runs the network only
    /// up to the deepest of them.
    pub fn features(&self, tape: &mut Tape, image: &Var, layers: &[&str]) -> Result<Vec<Var>, Error> {
        let wanted: Vec<usize> = layers.iter().map(|l| layer_index(l)).collect::<Result<_, _>>()?;
        let Some(&deepest) = wanted.iter().max() else { return Ok(Vec::new()) };
        let dims = image.shape().dims().to_vec();
        let [1, 3, h, w] = dims[..] else {
            return Err(Error::BadImage { reason: format!("expected an RGB image [1, 3, H, W], got {:?}", dims) });
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

        let bgr = tape.select_channels(image, &[2, 1, 0])?;
        let mut h = tape.add_channel_offsets(&bgr, &MEAN_BGR.map(|m| -m))?;
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
                Layer::Relu { .. } => tape.relu(&h),
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

/// The position of a named layer in the network.
pub fn layer_index(name: &str) -> Result<usize, Error> {
    table::layer_index(name).ok_or_else(|| Error::UnknownLayer { name: name.to_string() })
}
