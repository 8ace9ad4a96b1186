//! L-BFGS (Nocedal & Wright, "Numerical Optimization", 2nd ed., Algorithm 7.4, the two-loop
//! recursion) with the semantics of `torch.optim.LBFGS(lr, max_iter=1, history_size,
//! tolerance_grad=0, tolerance_change=0)` as the reference calls it: every `step` evaluates the
//! function once at the current x, updates the history from the previous step, and moves x.
//!
//! - A pair `(s, y)` (`s` the last step, `y` the change in gradient) is kept only when
//!   `s·y > 1e-10` (curvature condition), the oldest dropped past `history` pairs.
//! - The initial inverse Hessian is `γ I` with `γ = s·y / y·y` of the newest pair.
//! - The first step is scaled by `min(1, 1/‖g‖₁)·lr`, later ones by `lr`: without a line search
//!   the first direction is the raw gradient, which in 0..255 pixel units would be far too long.
//! - When the direction is not downhill (`g·d > 0`), the step is skipped, as PyTorch does.
//! - Optionally a strong-Wolfe line search (Algorithms 3.5 and 3.6, cubic interpolation) chooses
//!   the step length; it may evaluate the function several times per step.

use std::collections::VecDeque;

use tensor::Tensor;

use super::{dot, evaluate, moved, Objective, OptimError, Optimizer, Step};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LbfgsConfig {
    pub lr: f32,
    /// Correction pairs kept.
    pub history: usize,
    /// Strong-Wolfe line search instead of a fixed step.
    pub line_search: bool,
}

impl Default for LbfgsConfig {
    /// The reference's settings: lr 1, history 100, no line search.
    fn default() -> Self {
        LbfgsConfig { lr: 1.0, history: 100, line_search: false }
    }
}

/// One correction pair and `ρ = 1 / (y·s)`.
struct Pair {
    s: Vec<f32>,
    y: Vec<f32>,
    rho: f64,
}

pub struct Lbfgs {
    config: LbfgsConfig,
    pairs: VecDeque<Pair>,
    /// The previous step's direction, step length and gradient; `None` before the first step.
    previous: Option<(Vec<f32>, f32, Tensor)>,
    /// Parameters per point; a change of size (a new scale) starts afresh.
    len: usize,
}

impl Lbfgs {
    pub fn new(config: LbfgsConfig) -> Self {
        Lbfgs { config, pairs: VecDeque::new(), previous: None, len: 0 }
    }

    /// Pairs currently held (for tests and diagnostics).
    pub fn history_len(&self) -> usize {
        self.pairs.len()
    }

    /// `d = -H g` by the two-loop recursion, `H` the L-BFGS inverse-Hessian approximation.
    fn direction(&self, g: &[f32], gamma: f64) -> Vec<f32> {
        let mut q: Vec<f32> = g.iter().map(|v| -v).collect();
        let mut alpha = vec![0.0f64; self.pairs.len()];
        for (i, p) in self.pairs.iter().enumerate().rev() {
            alpha[i] = p.rho * dot(&p.s, &q);
            let a = alpha[i] as f32;
            q.iter_mut().zip(&p.y).for_each(|(q, y)| *q -= a * y);
        }
        q.iter_mut().for_each(|v| *v *= gamma as f32);
        for (i, p) in self.pairs.iter().enumerate() {
            let beta = p.rho * dot(&p.y, &q);
            let c = (alpha[i] - beta) as f32;
            q.iter_mut().zip(&p.s).for_each(|(r, s)| *r += c * s);
        }
        q
    }
}

impl Optimizer for Lbfgs {
    fn step(&mut self, x: &Tensor, f: &mut Objective) -> Result<Step, OptimError> {
        let n = x.shape().numel();
        if self.len != n {
            *self = Lbfgs::new(self.config);
            self.len = n;
        }
        let (loss, grad) = evaluate(f, x)?;
        let g = grad.data();
        if g.iter().all(|&v| v == 0.0) {
            // At a stationary point (tolerance_grad = 0): stay.
            return Ok(Step { x: x.clone(), loss, evaluations: 1 });
        }
        let (d, first) = match self.previous.take() {
            None => (g.iter().map(|v| -v).collect::<Vec<f32>>(), true),
            Some((d_prev, t_prev, g_prev)) => {
                let y: Vec<f32> = g.iter().zip(g_prev.data()).map(|(a, b)| a - b).collect();
                let s: Vec<f32> = d_prev.iter().map(|v| v * t_prev).collect();
                let ys = dot(&y, &s);
                if ys > 1e-10 {
                    if self.pairs.len() == self.config.history {
                        self.pairs.pop_front();
                    }
                    self.pairs.push_back(Pair { s, y, rho: 1.0 / ys });
                }
                let gamma = self.pairs.back().map_or(1.0, |p| 1.0 / (p.rho * dot(&p.y, &p.y)));
                (self.direction(g, gamma), false)
            }
        };
        let lr = self.config.lr;
        let mut t = if first {
            let g1: f64 = g.iter().map(|v| v.abs() as f64).sum();
            (1.0f64.min(1.0 / g1) as f32) * lr
        } else {
            lr
        };
        let gtd = dot(g, &d);
        let mut evaluations = 1;
        let next = if gtd <= 0.0 {
            if self.config.line_search {
                let (t_ls, evals) = strong_wolfe(f, x, t as f64, &d, loss as f64, gtd)?;
                t = t_ls as f32;
                evaluations += evals;
            }
            moved(x, t, &d)
        } else {
            x.clone() // not a descent direction: skip the move, as PyTorch does
        };
        self.previous = Some((d, t, grad));
        Ok(Step { x: next, loss, evaluations })
    }
}

/// The minimiser of the cubic through `(a, fa, ga)` and `(b, fb, gb)`, clamped to `bounds`
/// (Nocedal & Wright, eq. 3.59); the midpoint when the cubic has no minimiser.
fn cubic_minimum(a: f64, fa: f64, ga: f64, b: f64, fb: f64, gb: f64, bounds: (f64, f64)) -> f64 {
    let (lo, hi) = bounds;
    let d1 = ga + gb - 3.0 * (fa - fb) / (a - b);
    let d2_sq = d1 * d1 - ga * gb;
    if d2_sq >= 0.0 {
        let d2 = d2_sq.sqrt();
        let t = if a <= b {
            b - (b - a) * ((gb + d2 - d1) / (gb - ga + 2.0 * d2))
        } else {
            a - (a - b) * ((ga + d2 - d1) / (ga - gb + 2.0 * d2))
        };
        t.clamp(lo, hi)
    } else {
        (lo + hi) / 2.0
    }
}

/// A point on the line: step, loss, directional derivative.
#[derive(Clone, Copy)]
struct Point {
    t: f64,
    f: f64,
    gtd: f64,
}

/// Strong-Wolfe line search along `d` from `x` (Nocedal & Wright, Algorithms 3.5 and 3.6, with
/// PyTorch's constants: c1 = 1e-4, c2 = 0.9, at most 25 evaluations, interval tolerance 1e-9).
/// Returns the step length and the evaluations made.
fn strong_wolfe(
    f: &mut Objective,
    x: &Tensor,
    t0: f64,
    d: &[f32],
    f0: f64,
    gtd0: f64,
) -> Result<(f64, usize), OptimError> {
    const C1: f64 = 1e-4;
    const C2: f64 = 0.9;
    const MAX_EVALS: usize = 25;
    const TOLERANCE: f64 = 1e-9;
    let d_max = d.iter().fold(0.0f64, |m, v| m.max(v.abs() as f64));
    let mut evals = 0;
    let mut eval_at = |t: f64, x: &Tensor| -> Result<Point, OptimError> {
        let (loss, g) = evaluate(f, &moved(x, t as f32, d))?;
        Ok(Point { t, f: loss as f64, gtd: dot(g.data(), d) })
    };
    let start = Point { t: 0.0, f: f0, gtd: gtd0 };
    let armijo = |p: &Point| p.f > f0 + C1 * p.t * gtd0;
    let curvature = |p: &Point| p.gtd.abs() <= -C2 * gtd0;

    // Bracketing phase (Algorithm 3.5).
    let mut prev = start;
    let mut cur = eval_at(t0, x)?;
    evals += 1;
    let mut bracket: [Point; 2];
    loop {
        // PyTorch compares with the previous point only from the third evaluation on.
        if armijo(&cur) || (evals > 2 && cur.f >= prev.f) {
            bracket = [prev, cur];
            break;
        }
        if curvature(&cur) {
            return Ok((cur.t, evals));
        }
        if cur.gtd >= 0.0 {
            bracket = [prev, cur];
            break;
        }
        if evals >= MAX_EVALS {
            return Ok((cur.t, evals));
        }
        let bounds = (cur.t + 0.01 * (cur.t - prev.t), cur.t * 10.0);
        let t = cubic_minimum(prev.t, prev.f, prev.gtd, cur.t, cur.f, cur.gtd, bounds);
        prev = cur;
        cur = eval_at(t, x)?;
        evals += 1;
    }

    // Zoom phase (Algorithm 3.6): shrink the bracket until a point satisfies both conditions.
    let mut insufficient_progress = false;
    let (mut low, mut high) = if bracket[0].f <= bracket[1].f { (0, 1) } else { (1, 0) };
    while evals < MAX_EVALS {
        let (a, b) = (&bracket[0], &bracket[1]);
        if (b.t - a.t).abs() * d_max < TOLERANCE {
            break;
        }
        let (lo, hi) = (a.t.min(b.t), a.t.max(b.t));
        let mut t = cubic_minimum(a.t, a.f, a.gtd, b.t, b.f, b.gtd, (lo, hi));
        // Keep away from the ends of the bracket, or it may shrink by almost nothing.
        let eps = 0.1 * (hi - lo);
        if (hi - t).min(t - lo) < eps {
            if insufficient_progress || t >= hi || t <= lo {
                t = if (t - hi).abs() < (t - lo).abs() { hi - eps } else { lo + eps };
                insufficient_progress = false;
            } else {
                insufficient_progress = true;
            }
        } else {
            insufficient_progress = false;
        }
        let p = eval_at(t, x)?;
        evals += 1;
        if armijo(&p) || p.f >= bracket[low].f {
            bracket[high] = p;
        } else {
            if curvature(&p) {
                return Ok((p.t, evals));
            }
            if p.gtd * (bracket[high].t - bracket[low].t) >= 0.0 {
                bracket[high] = bracket[low];
            }
            bracket[low] = p;
        }
        (low, high) = if bracket[0].f <= bracket[1].f { (0, 1) } else { (1, 0) };
    }
    Ok((bracket[low].t, evals))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cubic_minimum_of_a_parabola_is_exact() {
        // f = (t - 1)², f' = 2 (t - 1): through t = 0 and t = 3.
        let t = cubic_minimum(0.0, 1.0, -2.0, 3.0, 4.0, 4.0, (0.0, 3.0));
        assert!((t - 1.0).abs() < 1e-12, "{t}");
    }
}
