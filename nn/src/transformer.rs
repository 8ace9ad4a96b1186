//! The feed-forward style network of Johnson, Alahi and Fei-Fei, "Perceptual Losses for
//! Real-Time Style Transfer and Super-Resolution" (ECCV 2016), as the reference implementations
//! build it (pytorch/examples `fast_neural_style`): instance normalisation (Ulyanov et al. 2016)
//! instead of batch norm, and nearest-neighbour upsampling followed by a convolution instead of
//! transposed convolutions (Odena et al., "Deconvolution and Checkerboard Artifacts", 2016),
//! which avoids their checkerboard artefacts.
//!
//! ```text
//! conv1  9x9, 3 -> w, in1, relu          full resolution
//! conv2  3x3 /2, w -> 2w, in2, relu      1/2
//! conv3  3x3 /2, 2w -> 4w, in3, relu     1/4
//! res1..res5: x + in2(conv2(relu(in1(conv1(x)))))   4w channels, 1/4
//! deconv1  up 2x, 3x3, 4w -> 2w, in4, relu            1/2
//! deconv2  up 2x, 3x3, 2w -> w, in5, relu             full
//! deconv3  9x9, w -> 3, times OUTPUT_SCALE            the picture
//! soft clamp into the picture's range (OutputRange::Soft)
//! ```
//! `w` is the width: 32 is the paper's network (1.68 M parameters), 16 a quarter of the work.
//! Every convolution pads by reflection. The [`Variant::BatchLeaky`] variant swaps each instance
//! norm and ReLU for batch norm and a leaky ReLU, the Conv-BatchNorm-LeakyReLU blocks of Ulyanov
//! et al.'s texture networks.
//!
//! The network works in VGG's space (BGR minus the ImageNet mean, `vgg::Vgg19::preprocess`) at
//! both ends: its input is a preprocessed photo, its output goes straight into the perceptual
//! loss, and only the saved picture is taken back to RGB and clamped to 0..255. The last
//! convolution's output is multiplied by [`OUTPUT_SCALE`] (see there), then bounded by a scaled
//! tanh to the picture's range ([`OutputRange`]), as Johnson et al.'s network ends, so that the
//! loss is that of the picture that is saved.

use std::collections::BTreeMap;

use tensor::{Error, Rng, Tensor, Var};
use vgg::Vgg19;

use crate::layers::{Conv, Ctx, Norm, BATCH_NORM_MOMENTUM};
use crate::model_file::{ModelError, ModelFile};

/// Normalisation and activation of every block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// Instance norm and ReLU (Johnson et al. with Ulyanov et al.'s instance norm).
    InstanceRelu,
    /// Batch norm and leaky ReLU (slope 0.01), the original design's blocks.
    BatchLeaky,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::InstanceRelu => "instance-relu",
            Variant::BatchLeaky => "batch-leaky",
        }
    }

    pub fn from_name(s: &str) -> Option<Variant> {
        [Variant::InstanceRelu, Variant::BatchLeaky].into_iter().find(|v| v.name() == s)
    }

    fn norm(self, channels: usize) -> Norm {
        match self {
            Variant::InstanceRelu => Norm::instance(channels),
            Variant::BatchLeaky => Norm::batch(channels),
        }
    }

    /// The norm layers' name prefix: `in1` or `bn1`, as PyTorch's state dicts call them.
    fn norm_prefix(self) -> &'static str {
        match self {
            Variant::InstanceRelu => "in",
            Variant::BatchLeaky => "bn",
        }
    }
}

/// What becomes of the last convolution's output (after [`OUTPUT_SCALE`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputRange {
    /// A smooth clamp into the picture's range, per channel in VGG's space
    /// ([`Tape::soft_clamp`](tensor::Tape::soft_clamp) to
    /// [`Vgg19::pixel_bounds`](vgg::Vgg19::pixel_bounds)): the loss sees the
    /// picture that is saved. Why: on the raw output a network learns to put some of the style
    /// into values outside 0..255, which the saved picture loses; one trained on one photo for
    /// 3,000 steps had 2.5-2.9% of its values out of range, and clamping raised its picture's
    /// loss by a third. In a paired run the bound lowered the saved picture's loss by 19%
    /// (models/README.md, "the clamp is the next wall"). Model files say `johnson2016-sb`.
    Soft,
    /// The raw output, clamped to 0..255 only when saved, as the reference implementations do.
    /// Model files say `johnson2016-s` (the first models shipped, and their first stages).
    Clamp,
}

impl OutputRange {
    pub const ALL: [OutputRange; 2] = [OutputRange::Soft, OutputRange::Clamp];

    pub fn name(self) -> &'static str {
        match self {
            OutputRange::Soft => "soft",
            OutputRange::Clamp => "clamp",
        }
    }

    pub fn from_name(s: &str) -> Option<OutputRange> {
        OutputRange::ALL.into_iter().find(|o| o.name() == s)
    }

    /// The model file's `arch`: Johnson et al.'s network, `-s` its output scaled by
    /// [`OUTPUT_SCALE`], `b` then bounded.
    pub fn arch(self) -> &'static str {
        match self {
            OutputRange::Soft => "johnson2016-sb",
            OutputRange::Clamp => "johnson2016-s",
        }
    }

    fn from_arch(s: &str) -> Option<OutputRange> {
        OutputRange::ALL.into_iter().find(|o| o.arch() == s)
    }
}

/// Slope of the leaky ReLU of [`Variant::BatchLeaky`] (PyTorch's default).
pub const LEAKY_SLOPE: f32 = 0.01;

/// A residual block: two 3x3 convolutions of the same width, the input added back.
#[derive(Clone, Debug)]
struct Residual {
    conv1: Conv,
    norm1: Norm,
    conv2: Conv,
    norm2: Norm,
}

/// The network and its parameters.
#[derive(Clone, Debug)]
pub struct Transformer {
    pub width: usize,
    pub variant: Variant,
    /// [`OutputRange::Soft`] for a new network.
    pub output: OutputRange,
    conv1: Conv,
    norm1: Norm,
    conv2: Conv,
    norm2: Norm,
    conv3: Conv,
    norm3: Norm,
    res: Vec<Residual>,
    deconv1: Conv,
    norm4: Norm,
    deconv2: Conv,
    norm5: Norm,
    deconv3: Conv,
}

/// The metadata keys a model file must have to rebuild the network.
pub const META_ARCH: &str = "arch";
pub const META_WIDTH: &str = "width";
pub const META_VARIANT: &str = "variant";

/// The last convolution's output is multiplied by this. Its input is normalised (about unit
/// size) and its weights start at about `1/sqrt(fan_in)`, so without a scale the first pictures
/// are a flat grey of a few levels, and Adam, which moves each weight by about the learning rate
/// per step, needs thousands of steps only to reach the picture's range of about ±128 (measured:
/// after 200 steps at 1e-3 the network still gave a faint grey copy of its photo). Johnson et
/// al. end with `150 * tanh`, which is this scale near zero (and [`OutputRange::Soft`] the tanh).
pub const OUTPUT_SCALE: f32 = 128.0;

/// The layers in model-file naming, as `(convolutions, norms)`: one list that serves the
/// shared walks and, with `mut`, the mutable ones, so the names are written once.
macro_rules! named_layers {
    ($net:expr $(, $m:ident)?) => {{
        let p = $net.variant.norm_prefix();
        let mut convs = vec![
            ("conv1".to_string(), &$($m)? $net.conv1),
            ("conv2".to_string(), &$($m)? $net.conv2),
            ("conv3".to_string(), &$($m)? $net.conv3),
            ("deconv1".to_string(), &$($m)? $net.deconv1),
            ("deconv2".to_string(), &$($m)? $net.deconv2),
            ("deconv3".to_string(), &$($m)? $net.deconv3),
        ];
        let mut norms = vec![
            (format!("{p}1"), &$($m)? $net.norm1),
            (format!("{p}2"), &$($m)? $net.norm2),
            (format!("{p}3"), &$($m)? $net.norm3),
            (format!("{p}4"), &$($m)? $net.norm4),
            (format!("{p}5"), &$($m)? $net.norm5),
        ];
        for (i, Residual { conv1, norm1, conv2, norm2 }) in (&$($m)? $net.res).into_iter().enumerate() {
            let name = format!("res{}", i + 1);
            convs.push((format!("{name}.conv1"), conv1));
            convs.push((format!("{name}.conv2"), conv2));
            norms.push((format!("{name}.{p}1"), norm1));
            norms.push((format!("{name}.{p}2"), norm2));
        }
        (convs, norms)
    }};
}

impl Transformer {
    /// A freshly initialised network (PyTorch's default initialisation, from `seed`), its output
    /// [`OutputRange::Soft`].
    pub fn new(width: usize, variant: Variant, seed: u64) -> Self {
        assert!(width > 0, "a network needs at least one channel");
        let mut rng = Rng::new(seed);
        let (w1, w2, w4) = (width, 2 * width, 4 * width);
        let norm = |c| variant.norm(c);
        let mut residual = || Residual {
            conv1: Conv::new(w4, w4, 3, 1, &mut rng),
            norm1: norm(w4),
            conv2: Conv::new(w4, w4, 3, 1, &mut rng),
            norm2: norm(w4),
        };
        let res = (0..5).map(|_| residual()).collect();
        Transformer {
            width,
            variant,
            output: OutputRange::Soft,
            conv1: Conv::new(3, w1, 9, 1, &mut rng),
            norm1: norm(w1),
            conv2: Conv::new(w1, w2, 3, 2, &mut rng),
            norm2: norm(w2),
            conv3: Conv::new(w2, w4, 3, 2, &mut rng),
            norm3: norm(w4),
            res,
            deconv1: Conv::new(w4, w2, 3, 1, &mut rng).upsampled(),
            norm4: norm(w2),
            deconv2: Conv::new(w2, w1, 3, 1, &mut rng).upsampled(),
            norm5: norm(w1),
            deconv3: Conv::new(w1, 3, 9, 1, &mut rng),
        }
    }

    fn activate(&self, ctx: &mut Ctx, x: Var) -> Var {
        match self.variant {
            Variant::InstanceRelu => ctx.tape.relu(x),
            Variant::BatchLeaky => ctx.tape.leaky_relu(x, LEAKY_SLOPE),
        }
    }

    /// conv -> norm -> activation.
    fn block(&self, ctx: &mut Ctx, x: &Var, conv: (&Conv, &str), norm: (&Norm, usize)) -> Result<Var, Error> {
        let y = conv.0.forward(ctx, conv.1, x)?;
        let y = norm.0.forward(ctx, &format!("{}{}", self.variant.norm_prefix(), norm.1), y)?;
        Ok(self.activate(ctx, y))
    }

    /// The network on images `[n, 3, H, W]` in VGG's space, H and W multiples of 4; the
    /// output has the input's shape.
    pub fn forward(&self, ctx: &mut Ctx, x: &Var) -> Result<Var, Error> {
        let p = self.variant.norm_prefix();
        let y = self.block(ctx, x, (&self.conv1, "conv1"), (&self.norm1, 1))?;
        let y = self.block(ctx, &y, (&self.conv2, "conv2"), (&self.norm2, 2))?;
        let mut y = self.block(ctx, &y, (&self.conv3, "conv3"), (&self.norm3, 3))?;
        for (i, r) in self.res.iter().enumerate() {
            let name = format!("res{}", i + 1);
            let h = r.conv1.forward(ctx, &format!("{name}.conv1"), &y)?;
            let h = r.norm1.forward(ctx, &format!("{name}.{p}1"), h)?;
            let h = self.activate(ctx, h);
            let h = r.conv2.forward(ctx, &format!("{name}.conv2"), &h)?;
            let h = r.norm2.forward(ctx, &format!("{name}.{p}2"), h)?;
            y = ctx.tape.add(&y, &h)?;
        }
        // deconv1 and deconv2 upsample their input as they read it (`Conv::upsampled`).
        let y = self.block(ctx, &y, (&self.deconv1, "deconv1"), (&self.norm4, 4))?;
        let y = self.block(ctx, &y, (&self.deconv2, "deconv2"), (&self.norm5, 5))?;
        let y = self.deconv3.forward(ctx, "deconv3", &y)?;
        let y = ctx.tape.scale(&y, OUTPUT_SCALE);
        match self.output {
            OutputRange::Soft => ctx.tape.soft_clamp(y, &Vgg19::pixel_bounds()),
            OutputRange::Clamp => Ok(y),
        }
    }

    /// Every parameter with its model-file name, in a fixed order.
    pub fn params(&self) -> Vec<(String, &Tensor)> {
        let (convs, norms) = named_layers!(self);
        let mut out = Vec::new();
        convs.into_iter().for_each(|(name, c)| c.params(&name, &mut out));
        norms.into_iter().for_each(|(name, n)| n.params(&name, &mut out));
        out
    }

    /// [`Transformer::params`], mutable, in the same order.
    pub fn params_mut(&mut self) -> Vec<(String, &mut Tensor)> {
        let (convs, norms) = named_layers!(self, mut);
        let mut out = Vec::new();
        convs.into_iter().for_each(|(name, c)| c.params_mut(&name, &mut out));
        norms.into_iter().for_each(|(name, n)| n.params_mut(&name, &mut out));
        out
    }

    /// The batch-norm layers' running statistics, by layer name (none for instance norm).
    fn running(&self) -> Vec<(String, &tensor::RunningStats)> {
        let (_, norms) = named_layers!(self);
        norms
            .into_iter()
            .filter_map(|(name, n)| match n {
                Norm::Batch { running, .. } => Some((name, running)),
                Norm::Instance { .. } => None,
            })
            .collect()
    }

    /// [`Transformer::running`], mutable and by name.
    fn running_mut(&mut self) -> BTreeMap<String, &mut tensor::RunningStats> {
        let (_, norms) = named_layers!(self, mut);
        norms
            .into_iter()
            .filter_map(|(name, n)| match n {
                Norm::Batch { running, .. } => Some((name, running)),
                Norm::Instance { .. } => None,
            })
            .collect()
    }

    /// Folds a training pass's batch statistics into the running estimates (batch norm only).
    pub fn update_running_stats(&mut self, stats: &[(String, tensor::BatchStats)]) -> Result<(), Error> {
        let mut running = self.running_mut();
        for (name, s) in stats {
            if let Some(r) = running.get_mut(name) {
                r.update(s, BATCH_NORM_MOMENTUM)?;
            }
        }
        Ok(())
    }

    /// Multiply-adds x 2 of one forward pass on an `h x w` image: every convolution's
    /// `2·cout·cin·k²·Ho·Wo` (normalisation, activations and upsampling are a few percent more).
    pub fn forward_flops(&self, h: usize, w: usize) -> f64 {
        let conv = |c: &Conv, h: usize, w: usize| {
            let [cout, cin, k, _] = c.weight.shape().dims().try_into().expect("a 4-d weight");
            2.0 * (cout * cin * k * k) as f64 * (h.div_ceil(c.stride) * w.div_ceil(c.stride)) as f64
        };
        let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
        let (h4, w4) = (h2.div_ceil(2), w2.div_ceil(2));
        let res: f64 = self.res.iter().map(|r| conv(&r.conv1, h4, w4) + conv(&r.conv2, h4, w4)).sum();
        conv(&self.conv1, h, w)
            + conv(&self.conv2, h, w)
            + conv(&self.conv3, h2, w2)
            + res
            + conv(&self.deconv1, 2 * h4, 2 * w4)
            + conv(&self.deconv2, 4 * h4, 4 * w4)
            + conv(&self.deconv3, 4 * h4, 4 * w4)
    }

    /// Parameters in total.
    pub fn num_params(&self) -> usize {
        self.params().iter().map(|(_, t)| t.shape().numel()).sum()
    }

    /// The network as a model file: its parameters, the batch norms' running statistics
    /// (`NAME.running_mean`, `NAME.running_var`), and the metadata that rebuilds it.
    pub fn to_model_file(&self) -> ModelFile {
        let mut m = ModelFile::default();
        m.metadata.insert(META_ARCH.into(), self.output.arch().into());
        m.metadata.insert(META_WIDTH.into(), self.width.to_string());
        m.metadata.insert(META_VARIANT.into(), self.variant.name().into());
        for (name, t) in self.params() {
            m.tensors.insert(name, t.clone());
        }
        for (name, r) in self.running() {
            let c = r.channels();
            m.tensors.insert(format!("{name}.running_mean"), Tensor::new([c], r.mean().to_vec()).expect("sized"));
            m.tensors.insert(format!("{name}.running_var"), Tensor::new([c], r.var().to_vec()).expect("sized"));
        }
        m
    }

    /// Rebuilds the network a model file describes, checking every tensor's name and shape.
    /// Tensors the network does not use are left in `m` (a checkpoint's optimiser state).
    pub fn from_model_file(m: &mut ModelFile) -> Result<Self, ModelError> {
        let arch = m.meta(META_ARCH)?;
        let Some(output) = OutputRange::from_arch(arch) else {
            let (path, value) = (m.path.clone(), arch.to_string());
            let known = OutputRange::ALL.map(|o| format!("`{}`", o.arch()));
            return Err(ModelError::BadMetadata {
                path,
                key: META_ARCH.into(),
                value,
                reason: format!("this stylize builds {}", known.join(" and ")),
            });
        };
        let width: usize = m.meta_parsed(META_WIDTH)?;
        let variant_name = m.meta(META_VARIANT)?.to_string();
        let variant = Variant::from_name(&variant_name).ok_or_else(|| ModelError::BadMetadata {
            path: m.path.clone(),
            key: META_VARIANT.into(),
            value: variant_name,
            reason: "expected instance-relu or batch-leaky".into(),
        })?;
        if width == 0 || width > 1024 {
            return Err(ModelError::BadMetadata {
                path: m.path.clone(),
                key: META_WIDTH.into(),
                value: width.to_string(),
                reason: "a width from 1 to 1024".into(),
            });
        }
        let mut net = Transformer::new(width, variant, 0);
        net.output = output;
        for (name, slot) in net.params_mut() {
            let shape = slot.shape().dims().to_vec();
            *slot = m.take(&name, &shape)?;
        }
        for (name, r) in net.running_mut() {
            let c = r.channels();
            let mean = m.take(&format!("{name}.running_mean"), &[c])?.into_vec();
            let var = m.take(&format!("{name}.running_var"), &[c])?.into_vec();
            *r = tensor::RunningStats::from_parts(mean, var).map_err(|e| ModelError::BadMetadata {
                path: m.path.clone(),
                key: format!("{name}.running_var"),
                value: String::new(),
                reason: e.to_string(),
            })?;
        }
        Ok(net)
    }
}
