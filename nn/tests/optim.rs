//! The optimisers on functions with known minima, and their PyTorch-compatible details.

use nn::optim::{Adam, AdamConfig, AdamState, ClosureError, Lbfgs, LbfgsConfig, OptimError, Optimizer};
use tensor::Tensor;

/// Rosenbrock in n dimensions: Σ 100 (x[i+1] - x[i]²)² + (1 - x[i])², minimum 0 at all ones.
fn rosenbrock(x: &[f32], g: &mut [f32]) -> Result<f32, ClosureError> {
    g.fill(0.0);
    let mut f = 0.0f64;
    for i in 0..x.len() - 1 {
        let (a, b) = (x[i] as f64, x[i + 1] as f64);
        f += 100.0 * (b - a * a).powi(2) + (1.0 - a).powi(2);
        g[i] += (-400.0 * a * (b - a * a) - 2.0 * (1.0 - a)) as f32;
        g[i + 1] += (200.0 * (b - a * a)) as f32;
    }
    Ok(f as f32)
}

/// A convex quadratic ½ Σ k·(x_k - k)², minimum 0 at x_k = k.
fn quadratic(x: &[f32], g: &mut [f32]) -> Result<f32, ClosureError> {
    let mut f = 0.0;
    for (k, (&xk, gk)) in x.iter().zip(g.iter_mut()).enumerate() {
        let c = (k + 1) as f32;
        *gk = c * (xk - c);
        f += 0.5 * c * (xk - c) * (xk - c);
    }
    Ok(f)
}

/// A flat-vector test function as the optimisers' closure: `f(x, grad) -> loss`.
type Flat = fn(&[f32], &mut [f32]) -> Result<f32, ClosureError>;

fn closure(
    f: impl Fn(&[f32], &mut [f32]) -> Result<f32, ClosureError>,
) -> impl FnMut(&Tensor) -> Result<(f32, Tensor), ClosureError> {
    move |x: &Tensor| {
        let mut g = vec![0.0; x.shape().numel()];
        let loss = f(x.data(), &mut g)?;
        Ok((loss, Tensor::new(x.shape(), g)?))
    }
}

fn vector(v: &[f32]) -> Tensor {
    Tensor::new([v.len()], v.to_vec()).unwrap()
}

/// Runs `steps` steps from `x`; returns the loss at the start of the last one.
fn minimise(opt: &mut dyn Optimizer, x: &mut Tensor, steps: usize, f: Flat) -> f32 {
    let mut last = f32::NAN;
    for _ in 0..steps {
        let step = opt.step(x, &mut closure(f)).unwrap();
        (*x, last) = (step.x, step.loss);
    }
    last
}

#[test]
fn lbfgs_solves_a_quadratic_without_line_search() {
    let mut x = vector(&[0.0; 10]);
    let mut opt = Lbfgs::new(LbfgsConfig::default());
    minimise(&mut opt, &mut x, 60, quadratic);
    for (k, v) in x.data().iter().enumerate() {
        assert!((v - (k + 1) as f32).abs() < 1e-3, "x[{k}] = {v}");
    }
}

#[test]
fn lbfgs_with_line_search_solves_rosenbrock() {
    for n in [2, 10] {
        let mut x = vector(&vec![-1.2; n]);
        let mut opt = Lbfgs::new(LbfgsConfig { line_search: true, ..LbfgsConfig::default() });
        let loss = minimise(&mut opt, &mut x, 200, rosenbrock);
        assert!(loss < 1e-6, "{n}-D Rosenbrock: loss {loss}");
        assert!(x.data().iter().all(|v| (v - 1.0).abs() < 1e-2), "{n}-D: {x:?}");
    }
}

#[test]
fn lbfgs_first_step_is_the_scaled_gradient() {
    // torch: t = min(1, 1/‖g‖₁)·lr, d = -g. At x = 0 the quadratic's gradient is -(1, 4, 9).
    let mut x = vector(&[0.0; 3]);
    let mut opt = Lbfgs::new(LbfgsConfig { lr: 0.5, ..LbfgsConfig::default() });
    minimise(&mut opt, &mut x, 1, quadratic);
    let t = 0.5 / 14.0;
    for (k, g) in [-1.0f32, -4.0, -9.0].iter().enumerate() {
        assert!((x.data()[k] - (-t * g)).abs() < 1e-7, "x[{k}] = {}", x.data()[k]);
    }
    assert_eq!(opt.history_len(), 0);
    // The second step stores the first pair (s, y): on a convex quadratic s·y > 0.
    minimise(&mut opt, &mut x, 1, quadratic);
    assert_eq!(opt.history_len(), 1);
}

#[test]
fn lbfgs_keeps_at_most_history_pairs() {
    let mut x = vector(&[0.0; 6]);
    let mut opt = Lbfgs::new(LbfgsConfig { history: 2, ..LbfgsConfig::default() });
    minimise(&mut opt, &mut x, 8, quadratic);
    assert_eq!(opt.history_len(), 2);
}

#[test]
fn lbfgs_skips_pairs_without_curvature() {
    // A linear function has y = 0, so s·y = 0 <= 1e-10: no pair is ever stored.
    let mut x = vector(&[0.0; 4]);
    let mut opt = Lbfgs::new(LbfgsConfig::default());
    let linear: Flat = |x, g| {
        g.fill(1.0);
        Ok(x.iter().sum())
    };
    minimise(&mut opt, &mut x, 5, linear);
    assert_eq!(opt.history_len(), 0);
    assert!(x.data().iter().all(|&v| v < 0.0), "moved downhill: {x:?}");
}

#[test]
fn adam_first_step_moves_each_coordinate_by_lr() {
    // With bias correction the first update is lr · g / (|g| + ε·…) ≈ lr · sign(g).
    let mut x = vector(&[0.0, 10.0, 3.0]);
    let mut opt = Adam::new(AdamConfig::default());
    let fixed: Flat = |x, g| {
        g.copy_from_slice(&[-5.0, 0.25, 1e3]);
        Ok(x[0])
    };
    minimise(&mut opt, &mut x, 1, fixed);
    let want = [2.0f32, 8.0, 1.0];
    for (v, w) in x.data().iter().zip(want) {
        assert!((v - w).abs() < 1e-5, "{x:?}");
    }
}

#[test]
fn adam_decreases_a_quadratic() {
    let mut x = vector(&[0.0; 5]);
    let mut opt = Adam::new(AdamConfig { lr: 0.1, ..AdamConfig::default() });
    let first = minimise(&mut opt, &mut x, 1, quadratic);
    let last = minimise(&mut opt, &mut x, 500, quadratic);
    assert!(last < first * 1e-3, "{first} -> {last}");
}

#[test]
fn non_finite_loss_is_an_error() {
    for opt in [&mut Lbfgs::new(LbfgsConfig::default()) as &mut dyn Optimizer, &mut Adam::new(AdamConfig::default())] {
        let x = vector(&[1.0, 2.0]);
        let err = opt
            .step(
                &x,
                &mut closure(|_, g| {
                    g.fill(0.5);
                    Ok(f32::NAN)
                }),
            )
            .unwrap_err();
        assert!(matches!(err, OptimError::NonFinite { .. }), "{err}");
        let err = opt.step(
            &x,
            &mut closure(|_, g| {
                g[1] = f32::INFINITY;
                Ok(1.0)
            }),
        );
        assert!(matches!(err, Err(OptimError::NonFinite { loss: 1.0 })), "an infinite gradient is refused too");
    }
}

#[test]
fn closure_errors_propagate() {
    let x = vector(&[1.0]);
    let err =
        Lbfgs::new(LbfgsConfig::default()).step(&x, &mut closure(|_, _| Err("out of coffee".into()))).unwrap_err();
    assert_eq!(err.to_string(), "out of coffee");
    let wrong_shape = Adam::new(AdamConfig::default()).step(&x, &mut |_: &Tensor| Ok((1.0, vector(&[1.0, 2.0]))));
    assert!(wrong_shape.unwrap_err().to_string().contains("shape"));
}

#[test]
fn adam_over_a_parameter_list_matches_one_adam_per_tensor() {
    // Adam is per coordinate: two tensors stepped together move as each would alone.
    let (a, b) = (vector(&[1.0, -2.0]), vector(&[0.5, 3.0, -1.0]));
    let (ga, gb) = (vector(&[0.3, -0.1]), vector(&[2.0, 0.0, -4.0]));
    let mut together = Adam::new(AdamConfig::default());
    let mut alone = (Adam::new(AdamConfig::default()), Adam::new(AdamConfig::default()));
    let mut both = vec![a.clone(), b.clone()];
    let (mut a1, mut b1) = (a, b);
    for _ in 0..3 {
        both = together.update(&both, &[ga.clone(), gb.clone()]).unwrap();
        a1 = alone.0.update(&[a1], std::slice::from_ref(&ga)).unwrap().remove(0);
        b1 = alone.1.update(&[b1], std::slice::from_ref(&gb)).unwrap().remove(0);
    }
    assert_eq!(both[0].data(), a1.data());
    assert_eq!(both[1].data(), b1.data());
}

#[test]
fn adam_resumed_from_its_state_continues_exactly() {
    let grads = |k: usize| vec![vector(&[k as f32, -1.0]), vector(&[0.5 / (k + 1) as f32])];
    let start = vec![vector(&[1.0, 2.0]), vector(&[3.0])];
    let mut straight = Adam::new(AdamConfig::default());
    let mut p = start.clone();
    for k in 0..6 {
        p = straight.update(&p, &grads(k)).unwrap();
    }
    let mut first = Adam::new(AdamConfig::default());
    let mut q = start;
    for k in 0..3 {
        q = first.update(&q, &grads(k)).unwrap();
    }
    let shapes: Vec<_> = q.iter().map(|t| t.shape()).collect();
    let AdamState { t, m, v } = first.state(&shapes);
    assert_eq!(t, 3);
    let mut resumed = Adam::with_state(AdamConfig::default(), AdamState { t, m, v });
    for k in 3..6 {
        q = resumed.update(&q, &grads(k)).unwrap();
    }
    assert_eq!(p[0].data(), q[0].data());
    assert_eq!(p[1].data(), q[1].data());
}

#[test]
fn adam_refuses_a_non_finite_gradient() {
    let mut opt = Adam::new(AdamConfig::default());
    let err = opt.update(&[vector(&[1.0])], &[vector(&[f32::NAN])]).unwrap_err();
    assert!(matches!(err, OptimError::NonFinite { .. }), "{err}");
}
