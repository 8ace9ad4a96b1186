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

/// Adam's state: the step count and the first and second moment estimates of each parameter
/// tensor, in the order the parameters are given. What a checkpoint must keep for a resumed
/// run to continue exactly as an uninterrupted one.
#[derive(Clone, Debug, Default)]
pub struct AdamState {
    pub t: i32,
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
}

pub struct Adam {
    config: AdamConfig,
    /// One (m, v) pair per parameter tensor; empty until the first step.
    moments: Vec<(Vec<f32>, Vec<f32>)>,
    t: i32,
}

impl Adam {
    pub fn new(config: AdamConfig) -> Self {
        Adam { config, moments: Vec::new(), t: 0 }
    }

    /// Continues from a saved [`AdamState`].
    pub fn with_state(config: AdamConfig, state: AdamState) -> Self {
        let moments = state.m.into_iter().zip(state.v).map(|(m, v)| (m.into_vec(), v.into_vec())).collect();
        Adam { config, moments, t: state.t }
    }

    /// Sets the learning rate of the steps to come, for a schedule that changes it as it goes.
    pub fn set_lr(&mut self, lr: f32) {
        self.config.lr = lr;
    }

    /// The state to checkpoint; `shapes` are the parameters' (as given to [`Adam::update`]).
    pub fn state(&self, shapes: &[tensor::Shape]) -> AdamState {
        let tensor =
            |v: &Vec<f32>, s: &tensor::Shape| Tensor::new(*s, v.clone()).expect("moments match their parameter");
        AdamState {
            t: self.t,
            m: self.moments.iter().zip(shapes).map(|((m, _), s)| tensor(m, s)).collect(),
            v: self.moments.iter().zip(shapes).map(|((_, v), s)| tensor(v, s)).collect(),
        }
    }

    /// One step over a list of parameter tensors (a network's) and their gradients, as
    /// `torch.optim.Adam.step()` after a minibatch's backward pass. Returns the new parameters.
    /// A non-finite gradient changes nothing and is an error.
    pub fn update(&mut self, params: &[Tensor], grads: &[Tensor]) -> Result<Vec<Tensor>, OptimError> {
        assert_eq!(params.len(), grads.len(), "Adam::update: one gradient per parameter");
        if let Some(g) = grads.iter().find(|g| !g.is_finite()) {
            let loss = g.data().iter().copied().find(|v| !v.is_finite()).unwrap_or(f32::NAN);
            return Err(OptimError::NonFinite { loss });
        }
        let fresh = self.moments.len() != params.len()
            || self.moments.iter().zip(params).any(|((m, _), p)| m.len() != p.shape().numel());
        if fresh {
            self.moments =
                params.iter().map(|p| (vec![0.0; p.shape().numel()], vec![0.0; p.shape().numel()])).collect();
            self.t = 0;
        }
        self.t += 1;
        let AdamConfig { lr, beta1, beta2, eps } = self.config;
        let bc1 = 1.0 - beta1.powi(self.t);
        let bc2_sqrt = (1.0 - beta2.powi(self.t)).sqrt();
        let step = lr / bc1;
        let mut out = Vec::with_capacity(params.len());
        for ((p, g), (m, v)) in params.iter().zip(grads).zip(&mut self.moments) {
            assert_eq!(p.shape(), g.shape(), "Adam::update: gradient shaped like its parameter");
            let mut next = p.data().to_vec();
            for (((xi, &g), m), v) in next.iter_mut().zip(g.data()).zip(m.iter_mut()).zip(v.iter_mut()) {
                *m = beta1 * *m + (1.0 - beta1) * g;
                *v = beta2 * *v + (1.0 - beta2) * g * g;
                *xi -= step * *m / (v.sqrt() / bc2_sqrt + eps);
            }
            out.push(Tensor::new(p.shape(), next).expect("one value per parameter"));
        }
        Ok(out)
    }
}

impl Optimizer for Adam {
    fn step(&mut self, x: &Tensor, f: &mut Objective) -> Result<Step, OptimError> {
        let (loss, grad) = evaluate(f, x)?;
        let x = self.update(std::slice::from_ref(x), &[grad])?.remove(0);
        Ok(Step { x, loss, evaluations: 1 })
    }
}
