//! Optimisers over a flat parameter vector and a loss-and-gradient closure.
//!
//! Both reproduce PyTorch's `torch.optim` semantics as the reference uses them, so runs can be
//! compared step by step. The closure gets the parameters, writes `∂loss/∂x` into its second
//! argument and returns the loss, or an error of the caller's, which is passed through.

mod adam;
mod lbfgs;

pub use adam::{Adam, AdamConfig};
pub use lbfgs::{Lbfgs, LbfgsConfig};

/// The caller's errors inside the closure.
pub type ClosureError = Box<dyn std::error::Error + Send + Sync>;

/// A loss-and-gradient function: `f(x, grad) -> loss`.
pub type Objective<'a> = dyn FnMut(&[f32], &mut [f32]) -> Result<f32, ClosureError> + 'a;

#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    /// The loss or gradient was NaN or infinite at the start of this step; `x` is unchanged.
    #[error("the loss or its gradient is not finite (loss {loss}); lower the learning rate or the loss weights")]
    NonFinite { loss: f32 },
    /// The closure failed.
    #[error(transparent)]
    Closure(ClosureError),
}

/// What one step did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepInfo {
    /// The loss at the parameters the step started from (what `torch.optim` returns).
    pub loss: f32,
    /// Function evaluations the step made (1 unless a line search ran).
    pub evaluations: usize,
}

/// One optimisation step at a time, state kept between steps.
pub trait Optimizer {
    /// Moves `x` one step downhill. On error `x` is left as it was.
    fn step(&mut self, x: &mut [f32], f: &mut Objective) -> Result<StepInfo, OptimError>;
}

/// Evaluates `f` at `x`, checking that the loss and gradient are finite.
fn evaluate(f: &mut Objective, x: &[f32], grad: &mut [f32]) -> Result<f32, OptimError> {
    let loss = f(x, grad).map_err(OptimError::Closure)?;
    if !loss.is_finite() || grad.iter().any(|g| !g.is_finite()) {
        return Err(OptimError::NonFinite { loss });
    }
    Ok(loss)
}

/// `Σ a·b`, accumulated in f64: the optimisers' inner products stay accurate over millions of
/// pixels (PyTorch sums in f32 with pairwise reduction; both are far below the noise of a run).
fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}
