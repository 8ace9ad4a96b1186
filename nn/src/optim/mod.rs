//! Optimisers over one parameter tensor and a loss-and-gradient closure.
//!
//! Both reproduce PyTorch's `torch.optim` semantics as the reference uses them, so runs can be
//! compared step by step. The closure gets the parameters and returns the loss and `∂loss/∂x`,
//! or an error of the caller's, which is passed through. A step returns the next point as a new
//! tensor and leaves the one it was given alone, so the caller can keep the last good point
//! (what a diverging run falls back to) without copying it.

mod adam;
mod lbfgs;

pub use adam::{Adam, AdamConfig, AdamState};
pub use lbfgs::{Lbfgs, LbfgsConfig};
use tensor::Tensor;

/// The caller's errors inside the closure.
pub type ClosureError = Box<dyn std::error::Error + Send + Sync>;

/// A loss-and-gradient function: `f(x) -> (loss, ∂loss/∂x)`, the gradient shaped like `x`.
pub type Objective<'a> = dyn FnMut(&Tensor) -> Result<(f32, Tensor), ClosureError> + 'a;

#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    /// The loss or gradient was NaN or infinite at the point the step started from.
    #[error("the loss or its gradient is not finite (loss {loss}); lower the learning rate or the loss weights")]
    NonFinite { loss: f32 },
    /// The closure failed.
    #[error(transparent)]
    Closure(ClosureError),
}

/// What one step did.
#[derive(Clone, Debug)]
pub struct Step {
    /// The next point.
    pub x: Tensor,
    /// The loss at the point the step started from (what `torch.optim` returns).
    pub loss: f32,
    /// Function evaluations the step made (1 unless a line search ran).
    pub evaluations: usize,
}

/// One optimisation step at a time, state kept between steps.
pub trait Optimizer {
    /// Evaluates `f` at `x` and moves one step downhill from it.
    fn step(&mut self, x: &Tensor, f: &mut Objective) -> Result<Step, OptimError>;
}

/// Evaluates `f` at `x`, checking that the loss and gradient are finite and shaped like `x`.
fn evaluate(f: &mut Objective, x: &Tensor) -> Result<(f32, Tensor), OptimError> {
    let (loss, grad) = f(x).map_err(OptimError::Closure)?;
    if grad.shape() != x.shape() {
        let msg = format!("the gradient has shape {}, the parameters {}", grad.shape(), x.shape());
        return Err(OptimError::Closure(msg.into()));
    }
    if !loss.is_finite() || !grad.is_finite() {
        return Err(OptimError::NonFinite { loss });
    }
    Ok((loss, grad))
}

/// `x + t·d` as a new tensor shaped like `x`.
fn moved(x: &Tensor, t: f32, d: &[f32]) -> Tensor {
    let data = x.data().iter().zip(d).map(|(x, d)| x + t * d).collect();
    Tensor::new(x.shape(), data).expect("d has one value per parameter")
}

/// `Σ a·b`, accumulated in f64: the optimisers' inner products stay accurate over millions of
/// pixels (PyTorch sums in f32 with pairwise reduction; both are far below the noise of a run).
fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}
