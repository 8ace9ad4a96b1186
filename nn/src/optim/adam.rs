//! Adam (Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, Algorithm 1),
//! with PyTorch's placement of epsilon: `x -= lr / (1 - β₁ᵗ) · m / (√v / √(1 - β₂ᵗ) + ε)`.

use tensor::Tensor;

use super::{evaluate, Objective, OptimError, Optimizer, Step};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
}

impl Default for AdamConfig {
    /// The reference's settings: lr 2 in 0..255 pixel units, PyTorch's betas and epsilon.
    fn default() -> Self {
        AdamConfig { lr: 2.0, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
}

pub struct Adam {
    config: AdamConfig,
    /// First and second moment estimates; empty until the first step.
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    pub fn new(config: AdamConfig) -> Self {
        Adam { config, m: Vec::new(), v: Vec::new(), t: 0 }
    }
}

impl Optimizer for Adam {
    fn step(&mut self, x: &Tensor, f: &mut Objective) -> Result<Step, OptimError> {
        let n = x.shape().numel();
        if self.m.len() != n {
            (self.m, self.v, self.t) = (vec![0.0; n], vec![0.0; n], 0);
        }
        let (loss, grad) = evaluate(f, x)?;
        self.t += 1;
        let AdamConfig { lr, beta1, beta2, eps } = self.config;
        let bc1 = 1.0 - beta1.powi(self.t);
        let bc2_sqrt = (1.0 - beta2.powi(self.t)).sqrt();
        let step = lr / bc1;
        let mut next = x.data().to_vec();
        for (((xi, &g), m), v) in next.iter_mut().zip(grad.data()).zip(&mut self.m).zip(&mut self.v) {
            *m = beta1 * *m + (1.0 - beta1) * g;
            *v = beta2 * *v + (1.0 - beta2) * g * g;
            *xi -= step * *m / (v.sqrt() / bc2_sqrt + eps);
        }
        let x = Tensor::new(x.shape(), next).expect("one value per parameter");
        Ok(Step { x, loss, evaluations: 1 })
    }
}
