//! Normalisation: instance normalisation (Ulyanov, Vedaldi and Lempitsky, "Instance
//! Normalization: The Missing Ingredient for Fast Stylization", 2016) and batch normalisation
//! (Ioffe and Szegedy, "Batch Normalization: Accelerating Deep Network Training by Reducing
//! Internal Covariate Shift", 2015). The two differ only in which values share a mean and a
//! variance ([`Statistics`]), so one set of kernels serves both.
//!
//! With x viewed as `[n, c, m]` (m = h·w pixels), each group of M values is normalised and then
//! scaled and shifted per channel:
//!
//! ```text
//! x̂ = (x - μ) / σ,   σ = √(var + ε),   var = (1/M) Σ (x - μ)²   (biased, as PyTorch)
//! y = γ[c]·x̂ + β[c]
//! ```
//!
//! Backward (Ioffe and Szegedy, §3, with the sums over a group): when the statistics are computed
//! from x they depend on it, and
//!
//! ```text
//! dx = (γ/σ)·(dy - mean(dy) - x̂·mean(dy·x̂))        (means over the group)
//! ```
//!
//! while with constant statistics (batch norm in inference) `dx = (γ/σ)·dy`. Either way
//! `dγ[c] = Σ dy·x̂` and `dβ[c] = Σ dy` over the batch and the pixels of channel c.
//!
//! Determinism: every sum is taken per `(sample, channel)` plane in f64, in [`ACC`] interleaved
//! accumulators added in a fixed order, and the planes of a group are added in sample order.
//! The partition depends on the shape alone, so results are the same for any thread count.
//!
//! Parallelism: the statistics and the backward run one task per group, which reads its planes
//! twice while they are in cache: n·c tasks for instance norm, c for batch norm (every
//! normalisation of the style network has 32 channels or more). Normalising is one task per
//! plane.

use rayon::prelude::*;

/// Accumulators per sum: element `i` of a plane goes to accumulator `i % ACC`. Independent
/// accumulators let the f64 additions overlap instead of forming one chain as long as the plane:
/// 32 make four chains of f64x8 vectors (eight of f64x4 on AVX2), so a sum is not held to one
/// vector addition per addition latency (3-4 cycles), as it is with 8. A constant, not the
/// vector width, so that the bits are the same on every build.
pub const ACC: usize = 32;

/// Which values share one mean and variance, and where those come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Statistics {
    /// Per `(sample, channel)` plane, over its h·w pixels, computed from x: instance
    /// normalisation.
    Instance,
    /// Per channel, over the n·h·w values of the batch, computed from x: batch normalisation
    /// in training.
    Batch,
    /// Per channel, given constants (the running estimates): batch normalisation in inference.
    Running,
}

impl Statistics {
    /// True when the statistics are computed from x, so that dx flows through them too.
    pub fn from_input(self) -> bool {
        self != Statistics::Running
    }
}

/// An `[n, c, h, w]` tensor seen as `[n, c, m]` (m = h·w), and the statistics that normalise it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormGeometry {
    pub n: usize,
    pub c: usize,
    pub m: usize,
    pub stats: Statistics,
}

impl NormGeometry {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.n * self.c * self.m
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of groups of values sharing statistics: n·c planes, or c channels.
    pub fn groups(&self) -> usize {
        match self.stats {
            Statistics::Instance => self.n * self.c,
            Statistics::Batch | Statistics::Running => self.c,
        }
    }

    /// Values per group, the M of the means.
    pub fn group_len(&self) -> usize {
        match self.stats {
            Statistics::Instance => self.m,
            Statistics::Batch | Statistics::Running => self.n * self.m,
        }
    }

    /// The group of plane `p` (plane `p` is sample `p / c`, channel `p % c`).
    pub fn group_of_plane(&self, p: usize) -> usize {
        match self.stats {
            Statistics::Instance => p,
            Statistics::Batch | Statistics::Running => p % self.c,
        }
    }

    /// The channel of group `g`, whose γ and β apply to it.
    pub fn channel_of_group(&self, g: usize) -> usize {
        match self.stats {
            Statistics::Instance => g % self.c,
            Statistics::Batch | Statistics::Running => g,
        }
    }

    /// The planes of group `g`, in sample order: plane `g` itself (instance statistics), or
    /// plane `i·c + g` of every sample i (a channel).
    fn planes_of_group(&self, g: usize) -> impl Iterator<Item = usize> {
        let (count, stride) = match self.stats {
            Statistics::Instance => (1, 0),
            Statistics::Batch | Statistics::Running => (self.n, self.c),
        };
        (0..count).map(move |i| g + i * stride)
    }

    /// The values of plane `p`.
    fn plane(&self, p: usize) -> std::ops::Range<usize> {
        p * self.m..(p + 1) * self.m
    }
}

/// `Σ f(x[i])` in f64, over [`ACC`] interleaved accumulators added in order at the end.
fn sum(x: &[f32], f: impl Fn(f32) -> f64) -> f64 {
    let mut acc = [0.0f64; ACC];
    let mut chunks = x.chunks_exact(ACC);
    for chunk in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += f(v);
        }
    }
    for (a, &v) in acc.iter_mut().zip(chunks.remainder()) {
        *a += f(v);
    }
    acc.iter().sum()
}

/// `Σ dy·x̂` in f64, as [`sum`] does it. (A loop computing this and `Σ dy` together is not
/// vectorised by LLVM, which pairs the two sums instead of the lanes: two passes over a plane in
/// cache are faster.)
fn dot(dy: &[f32], xhat: &[f32]) -> f64 {
    let mut acc = [0.0f64; ACC];
    let (mut gs, mut xs) = (dy.chunks_exact(ACC), xhat.chunks_exact(ACC));
    for (g, x) in (&mut gs).zip(&mut xs) {
        for ((a, &g), &x) in acc.iter_mut().zip(g).zip(x) {
            *a += g as f64 * x as f64;
        }
    }
    for ((a, &g), &x) in acc.iter_mut().zip(gs.remainder()).zip(xs.remainder()) {
        *a += g as f64 * x as f64;
    }
    acc.iter().sum()
}

/// The mean and the biased variance of each group of `x`, in two passes (the mean, then the
/// squared deviations from it), which avoids the cancellation of `E[x²] - μ²` when the mean
/// is large against the spread.
pub fn moments(x: &[f32], g: NormGeometry, mean: &mut [f32], var: &mut [f32]) {
    assert_eq!(x.len(), g.len());
    assert!(mean.len() == g.groups() && var.len() == g.groups());
    if g.groups() == 0 {
        return;
    }
    assert!(g.group_len() > 0, "the statistics of a group of no values");
    let count = g.group_len() as f64;
    // One task per group, whose second pass finds its planes still in cache (a 256x256 plane is
    // 256 KiB, a channel of four such planes 1 MiB).
    let stats: Vec<(f32, f32)> = (0..g.groups())
        .into_par_iter()
        .map(|group| {
            let mu = g.planes_of_group(group).map(|p| sum(&x[g.plane(p)], f64::from)).sum::<f64>() / count;
            let deviation = |v: f32| (v as f64 - mu) * (v as f64 - mu);
            let sq = g.planes_of_group(group).map(|p| sum(&x[g.plane(p)], deviation)).sum::<f64>();
            (mu as f32, (sq / count) as f32)
        })
        .collect();
    for ((mean, var), (mu, sq)) in mean.iter_mut().zip(var).zip(stats) {
        *mean = mu;
        *var = sq;
    }
}

/// `1/√(var + ε)` of each variance, computed in f64 and rounded once (as PyTorch's CPU kernels
/// compute it in their f64 accumulation type).
pub fn inverse_std(var: &[f32], eps: f32) -> Vec<f32> {
    var.iter().map(|&v| (1.0 / (v as f64 + eps as f64).sqrt()) as f32).collect()
}

/// The parameters of one normalisation: per group the mean and `1/σ`, per channel γ and β.
#[derive(Clone, Copy, Debug)]
pub struct NormParams<'a> {
    pub mean: &'a [f32],
    pub inv_std: &'a [f32],
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
}

/// `y = γ·x̂ + β` with `x̂ = (x - μ)·(1/σ)`, also writing x̂ when it is asked for (backward needs
/// it for dγ, and for dx when the statistics came from x).
pub fn normalize(x: &[f32], g: NormGeometry, p: NormParams<'_>, y: &mut [f32], xhat: Option<&mut [f32]>) {
    assert_eq!(x.len(), g.len());
    normalize_from(Some(x), g, p, y, xhat);
}

/// [`normalize`] with x read from y and overwritten: the tape's normalisations when nothing
/// else holds their input.
pub fn normalize_in_place(y: &mut [f32], g: NormGeometry, p: NormParams<'_>, xhat: Option<&mut [f32]>) {
    normalize_from(None, g, p, y, xhat);
}

/// [`normalize`], x being y itself when `None`.
fn normalize_from(x: Option<&[f32]>, g: NormGeometry, p: NormParams<'_>, y: &mut [f32], xhat: Option<&mut [f32]>) {
    assert_eq!(y.len(), g.len());
    assert!(p.mean.len() == g.groups() && p.inv_std.len() == g.groups());
    assert!(p.gamma.len() == g.c && p.beta.len() == g.c);
    assert!(xhat.as_ref().is_none_or(|xhat| xhat.len() == g.len()));
    if g.is_empty() {
        return;
    }
    // Plane `plane` of y, with x̂'s when asked for.
    let one = |plane: usize, y: &mut [f32], xhat: Option<&mut [f32]>| {
        let (group, channel) = (g.group_of_plane(plane), plane % g.c);
        let (mu, inv_std, gamma, beta) = (p.mean[group], p.inv_std[group], p.gamma[channel], p.beta[channel]);
        let x = x.map(|x| &x[g.plane(plane)]);
        match (x, xhat) {
            (Some(x), Some(xhat)) => {
                for ((y, xhat), &x) in y.iter_mut().zip(xhat).zip(x) {
                    let v = (x - mu) * inv_std;
                    *xhat = v;
                    *y = gamma * v + beta;
                }
            }
            (None, Some(xhat)) => {
                for (y, xhat) in y.iter_mut().zip(xhat) {
                    let v = (*y - mu) * inv_std;
                    *xhat = v;
                    *y = gamma * v + beta;
                }
            }
            (Some(x), None) => y.iter_mut().zip(x).for_each(|(y, &x)| *y = gamma * ((x - mu) * inv_std) + beta),
            (None, None) => y.iter_mut().for_each(|y| *y = gamma * ((*y - mu) * inv_std) + beta),
        }
    };
    let planes = y.par_chunks_mut(g.m).enumerate();
    match xhat {
        Some(xhat) => planes.zip(xhat.par_chunks_mut(g.m)).for_each(|((plane, y), xhat)| one(plane, y, Some(xhat))),
        None => planes.for_each(|(plane, y)| one(plane, y, None)),
    }
}

/// The gradients [`normalize_backward`] computes: each is written when it is `Some`.
#[derive(Default)]
pub struct NormGrads<'a> {
    /// `[n, c, m]`, like x.
    pub dx: Option<&'a mut [f32]>,
    /// `[c]`.
    pub dgamma: Option<&'a mut [f32]>,
    /// `[c]`.
    pub dbeta: Option<&'a mut [f32]>,
}

/// The gradients of [`normalize`] given `dy` (see the module docs for the formulas).
///
/// `xhat` is needed for dγ and, when the statistics came from x, for dx; `dx_scale` is `γ[c]/σ`
/// per group, read only for dx. One task per group computes `Σ dy` and `Σ dy·x̂` over each of its
/// planes, which dγ and dβ are made of, then its planes' dx while they are still in cache.
pub fn normalize_backward(dy: &[f32], xhat: Option<&[f32]>, g: NormGeometry, dx_scale: &[f32], grads: NormGrads<'_>) {
    let NormGrads { dx, dgamma, dbeta } = grads;
    let through_stats = dx.is_some() && g.stats.from_input();
    assert_eq!(dy.len(), g.len());
    if let Some(xhat) = xhat {
        assert_eq!(xhat.len(), g.len());
    }
    assert!(xhat.is_some() || (dgamma.is_none() && !through_stats), "dγ, and dx through batch statistics, need x̂");
    if let Some(dx) = &dx {
        assert!(dx.len() == g.len() && dx_scale.len() == g.groups());
    }
    let needs_sums = dgamma.is_some() || dbeta.is_some() || through_stats;
    let count = g.group_len() as f64;

    // dx's planes, handed to the task of their group.
    let mut dx_of_group: Vec<Vec<&mut [f32]>> = (0..g.groups()).map(|_| Vec::new()).collect();
    if let Some(dx) = dx.filter(|_| g.m > 0) {
        for (p, plane) in dx.chunks_mut(g.m).enumerate() {
            dx_of_group[g.group_of_plane(p)].push(plane);
        }
    }
    let sums: Vec<Vec<(f64, f64)>> = dx_of_group
        .into_par_iter()
        .enumerate()
        .map(|(group, dx)| {
            let plane_sums: Vec<(f64, f64)> = match (needs_sums, xhat) {
                (false, _) => Vec::new(),
                (true, Some(xhat)) => g
                    .planes_of_group(group)
                    .map(|p| (sum(&dy[g.plane(p)], f64::from), dot(&dy[g.plane(p)], &xhat[g.plane(p)])))
                    .collect(),
                (true, None) => g.planes_of_group(group).map(|p| (sum(&dy[g.plane(p)], f64::from), 0.0)).collect(),
            };
            if dx.is_empty() {
                return plane_sums;
            }
            let k = dx_scale[group];
            if through_stats {
                let xhat = xhat.expect("checked above");
                let mean = |f: fn(&(f64, f64)) -> f64| (plane_sums.iter().map(f).sum::<f64>() / count) as f32;
                let (a, b) = (mean(|s| s.0), mean(|s| s.1));
                for (p, dx) in g.planes_of_group(group).zip(dx) {
                    for ((dx, &dy), &xhat) in dx.iter_mut().zip(&dy[g.plane(p)]).zip(&xhat[g.plane(p)]) {
                        *dx = k * (dy - a - xhat * b);
                    }
                }
            } else {
                for (p, dx) in g.planes_of_group(group).zip(dx) {
                    for (dx, &dy) in dx.iter_mut().zip(&dy[g.plane(p)]) {
                        *dx = k * dy;
                    }
                }
            }
            plane_sums
        })
        .collect();

    // dβ[c] = Σ dy and dγ[c] = Σ dy·x̂ over the planes of channel c, in sample order.
    let mut channel_totals = vec![(0.0f64, 0.0f64); g.c];
    if needs_sums {
        let mut per_plane = vec![(0.0, 0.0); g.n * g.c];
        for (group, sums) in sums.iter().enumerate() {
            for (p, &s) in g.planes_of_group(group).zip(sums) {
                per_plane[p] = s;
            }
        }
        for (p, (s, d)) in per_plane.into_iter().enumerate() {
            channel_totals[p % g.c].0 += s;
            channel_totals[p % g.c].1 += d;
        }
    }
    if let Some(dbeta) = dbeta {
        assert_eq!(dbeta.len(), g.c);
        for (d, t) in dbeta.iter_mut().zip(&channel_totals) {
            *d = t.0 as f32;
        }
    }
    if let Some(dgamma) = dgamma {
        assert_eq!(dgamma.len(), g.c);
        for (d, t) in dgamma.iter_mut().zip(&channel_totals) {
            *d = t.1 as f32;
        }
    }
}
