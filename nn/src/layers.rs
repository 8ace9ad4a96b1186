//! Trainable layers: small structs that own their parameters and run on the tape.
//!
//! A layer's `forward(&self, ctx, name, x)` binds its parameters through [`Ctx`]: tape leaves
//! when training (so `backward` returns their gradients, by name), constants otherwise (so
//! inference records nothing). Parameter names are the model file's keys (`res1.conv1.weight`),
//! built from the name the network gives each layer, as PyTorch's state dicts are.

use std::collections::BTreeMap;

use tensor::{BatchStats, Conv2d, Error, Grads, Rng, RunningStats, Tape, Tensor, Var};

/// What the normalisation layers do with statistics during one forward pass.
#[derive(Clone, Debug, Default)]
pub enum NormStats {
    /// Each image its own (instance norm) or the batch's / the running ones (batch norm).
    #[default]
    Own,
    /// As `Own`, and record each instance-norm layer's per-channel statistics (batch of one):
    /// the first pass of a tiled inference, on a reduced copy of the whole image.
    Record(Vec<RunningStats>),
    /// Normalise every instance-norm layer with recorded statistics, in layer order: each tile
    /// of a large image then sees the whole image's statistics, so tiles agree at their seams.
    Reuse(Vec<RunningStats>),
}

/// One forward pass's binding of parameters to the tape.
pub struct Ctx<'t> {
    pub tape: &'t mut Tape,
    pub train: bool,
    bound: BTreeMap<String, Var>,
    /// Training batch statistics of the batch-norm layers, by layer name, for their running estimates.
    pub batch_stats: Vec<(String, BatchStats)>,
    pub norm_stats: NormStats,
    reused: usize,
}

impl<'t> Ctx<'t> {
    pub fn new(tape: &'t mut Tape, train: bool) -> Self {
        Ctx { tape, train, bound: BTreeMap::new(), batch_stats: Vec::new(), norm_stats: NormStats::Own, reused: 0 }
    }

    /// `value` as this pass sees it: a leaf named `name` when training, else a constant.
    pub fn bind(&mut self, name: String, value: &Tensor) -> Var {
        let v = if self.train { self.tape.leaf(value.clone()) } else { Var::constant(value.clone()) };
        if self.train {
            self.bound.insert(name, v.clone());
        }
        v
    }

    /// Ends the pass, releasing the tape for `backward`: what it bound and observed.
    pub fn finish(self) -> Bound {
        Bound { vars: self.bound, batch_stats: self.batch_stats, norm_stats: self.norm_stats }
    }
}

/// What a training pass bound (its parameters' leaves) and observed (batch statistics).
pub struct Bound {
    vars: BTreeMap<String, Var>,
    pub batch_stats: Vec<(String, BatchStats)>,
    pub norm_stats: NormStats,
}

impl Bound {
    /// The gradient of every bound parameter, by name (zero where the loss ignores one).
    pub fn gradients(&self, grads: &mut Grads) -> BTreeMap<String, Tensor> {
        self.vars
            .iter()
            .map(|(name, v)| (name.clone(), grads.take(v).unwrap_or_else(|| Tensor::zeros(v.shape()))))
            .collect()
    }
}

/// A convolution with reflection padding of half its kernel (Johnson et al.'s `ConvLayer`):
/// reflection rather than zeros, so the picture's edges are not darkened. With `upsample`, of
/// its input upsampled 2x by nearest neighbour first (a resize-convolution, Johnson et al.'s
/// `UpsampleConvLayer` as PyTorch's `fast_neural_style` builds it).
#[derive(Clone, Debug)]
pub struct Conv {
    pub weight: Tensor,
    pub bias: Tensor,
    pub stride: usize,
    pub upsample: bool,
}

impl Conv {
    /// PyTorch's default initialisation: weight and bias uniform in ±1/√fan_in, fan_in = cin·k².
    pub fn new(cin: usize, cout: usize, kernel: usize, stride: usize, rng: &mut Rng) -> Self {
        let bound = 1.0 / ((cin * kernel * kernel) as f32).sqrt();
        let mut uniform = |n: usize| (0..n).map(|_| rng.uniform_in(-bound, bound)).collect::<Vec<_>>();
        let weight = Tensor::new([cout, cin, kernel, kernel], uniform(cout * cin * kernel * kernel)).expect("sized");
        let bias = Tensor::new([cout], uniform(cout)).expect("sized");
        Conv { weight, bias, stride, upsample: false }
    }

    /// The layer upsampling its input first.
    pub fn upsampled(self) -> Self {
        Conv { upsample: true, ..self }
    }

    pub fn kernel(&self) -> usize {
        self.weight.shape().dims()[2]
    }

    pub fn forward(&self, ctx: &mut Ctx, name: &str, x: &Var) -> Result<Var, Error> {
        let w = ctx.bind(format!("{name}.weight"), &self.weight);
        let b = ctx.bind(format!("{name}.bias"), &self.bias);
        let conv = Conv2d::with_stride(w, b, 0, self.stride)?;
        let conv = if self.upsample { conv.upsampled() } else { conv };
        ctx.tape.conv2d(x, &conv.reflected(self.kernel() / 2)?)
    }

    pub fn params<'a>(&'a self, name: &str, out: &mut Vec<(String, &'a Tensor)>) {
        out.push((format!("{name}.weight"), &self.weight));
        out.push((format!("{name}.bias"), &self.bias));
    }

    pub fn params_mut<'a>(&'a mut self, name: &str, out: &mut Vec<(String, &'a mut Tensor)>) {
        out.push((format!("{name}.weight"), &mut self.weight));
        out.push((format!("{name}.bias"), &mut self.bias));
    }
}

/// Instance normalisation (Ulyanov et al. 2016) or batch normalisation (Ioffe & Szegedy 2015),
/// each with a per-channel scale `gamma` (initially 1) and shift `beta` (initially 0).
#[derive(Clone, Debug)]
pub enum Norm {
    Instance { gamma: Tensor, beta: Tensor },
    Batch { gamma: Tensor, beta: Tensor, running: RunningStats },
}

/// PyTorch's epsilon for both norms, and batch norm's momentum for its running estimates.
pub const NORM_EPS: f32 = 1e-5;
pub const BATCH_NORM_MOMENTUM: f32 = 0.1;

impl Norm {
    pub fn instance(channels: usize) -> Self {
        Norm::Instance {
            gamma: Tensor::new([channels], vec![1.0; channels]).expect("sized"),
            beta: Tensor::zeros([channels]),
        }
    }

    pub fn batch(channels: usize) -> Self {
        Norm::Batch {
            gamma: Tensor::new([channels], vec![1.0; channels]).expect("sized"),
            beta: Tensor::zeros([channels]),
            running: RunningStats::new(channels),
        }
    }

    /// Takes x by value: the normalisation writes over it when nothing else holds it.
    pub fn forward(&self, ctx: &mut Ctx, name: &str, x: Var) -> Result<Var, Error> {
        match self {
            Norm::Instance { gamma, beta } => {
                let (g, b) = (ctx.bind(format!("{name}.gamma"), gamma), ctx.bind(format!("{name}.beta"), beta));
                match &mut ctx.norm_stats {
                    NormStats::Own => ctx.tape.instance_norm(x, &g, &b, NORM_EPS),
                    NormStats::Record(stats) => {
                        stats.push(plane_stats(x.value())?);
                        ctx.tape.instance_norm(x, &g, &b, NORM_EPS)
                    }
                    NormStats::Reuse(stats) => {
                        let s = stats.get(ctx.reused).cloned().ok_or(Error::BadGeometry {
                            op: "instance_norm",
                            reason: "fewer recorded statistics than instance-norm layers".into(),
                        })?;
                        ctx.reused += 1;
                        ctx.tape.batch_norm_eval(x, &g, &b, &s, NORM_EPS)
                    }
                }
            }
            Norm::Batch { gamma, beta, running } => {
                let (g, b) = (ctx.bind(format!("{name}.gamma"), gamma), ctx.bind(format!("{name}.beta"), beta));
                if ctx.train {
                    let (y, stats) = ctx.tape.batch_norm_train(x, &g, &b, NORM_EPS)?;
                    ctx.batch_stats.push((name.to_string(), stats));
                    Ok(y)
                } else {
                    ctx.tape.batch_norm_eval(x, &g, &b, running, NORM_EPS)
                }
            }
        }
    }

    pub fn params<'a>(&'a self, name: &str, out: &mut Vec<(String, &'a Tensor)>) {
        let (Norm::Instance { gamma, beta } | Norm::Batch { gamma, beta, .. }) = self;
        out.push((format!("{name}.gamma"), gamma));
        out.push((format!("{name}.beta"), beta));
    }

    pub fn params_mut<'a>(&'a mut self, name: &str, out: &mut Vec<(String, &'a mut Tensor)>) {
        let (Norm::Instance { gamma, beta } | Norm::Batch { gamma, beta, .. }) = self;
        out.push((format!("{name}.gamma"), gamma));
        out.push((format!("{name}.beta"), beta));
    }
}

/// Per-channel mean and (biased) variance of one image `[1, c, h, w]`, accumulated in f64: the
/// statistics instance norm would use for it.
fn plane_stats(x: &Tensor) -> Result<RunningStats, Error> {
    let (n, c, h, w) = x.shape().nchw().expect("a norm input is [n, c, h, w]");
    if n != 1 {
        return Err(Error::BadGeometry {
            op: "instance_norm",
            reason: format!("recording statistics needs one image, got {n}"),
        });
    }
    let (mut mean, mut var) = (Vec::with_capacity(c), Vec::with_capacity(c));
    for plane in x.data().chunks_exact(h * w) {
        let m = plane.iter().map(|&v| f64::from(v)).sum::<f64>() / plane.len() as f64;
        let v = plane.iter().map(|&v| (f64::from(v) - m).powi(2)).sum::<f64>() / plane.len() as f64;
        mean.push(m as f32);
        var.push(v as f32);
    }
    RunningStats::from_parts(mean, var)
}
