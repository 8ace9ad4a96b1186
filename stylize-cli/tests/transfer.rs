//! The optimisation loop through the library API: plans, outcomes, observer events, and the
//! memory estimate against the engine's own accounting.

mod common;

use nn::optim::AdamConfig;
use stylize::image::{load_rgb, resize_longest, size};
use stylize::memory;
use stylize::objective::{Layers, Objective, Weights};
use stylize::transfer::{
    transfer, Control, Event, Init, Observer, ObserverError, Optimizer, Outcome, Settings, Silent,
};
use stylize::Error;
use tensor::Tensor;
use vgg::Vgg19;

fn vgg() -> Vgg19 {
    Vgg19::load(&vgg::resolve_weights_path(None).unwrap(), &Layers::default().names()).unwrap()
}

/// The example content and style, at most `side` pixels long.
fn inputs(side: usize) -> (Tensor, Vec<(Tensor, f32)>) {
    let content = resize_longest(&load_rgb(&common::repo("examples/content_tubingen.jpg")).unwrap(), side);
    let style = resize_longest(&load_rgb(&common::repo("examples/style_starry_night.jpg")).unwrap(), side);
    (content, vec![(style, 1.0)])
}

/// Records every event; stops after `stop_after` steps if set.
#[derive(Default)]
struct Recorder {
    scales: Vec<(usize, usize)>,
    steps: Vec<f32>,
    saves: usize,
    stop_after: Option<usize>,
}

impl Observer for Recorder {
    fn on_event(&mut self, event: Event<'_>) -> Result<Control, ObserverError> {
        match event {
            Event::Scale { width, height, .. } => self.scales.push((width, height)),
            Event::Step(s) => self.steps.push(s.losses.total),
            Event::Save(img) => {
                assert_eq!(img.shape().dims()[..2], [1, 3]);
                self.saves += 1;
            }
        }
        Ok(match self.stop_after {
            Some(n) if self.steps.len() >= n => Control::Stop,
            _ => Control::Continue,
        })
    }
}

#[test]
fn a_run_goes_coarse_to_fine_and_reports_every_step() {
    let (content, styles) = inputs(64);
    let settings = Settings { size: 64, scales: Some(2), iters: 4, save_every: Some(3), ..Settings::default() };
    let mut rec = Recorder::default();
    let outcome = transfer(&vgg(), &content, &styles, &settings, &mut rec).unwrap();
    let Outcome::Finished { image } = outcome else { panic!("{outcome:?}") };
    assert_eq!(size(&image), (64, 48));
    assert_eq!(rec.scales, [(32, 24), (64, 48)]);
    assert_eq!(rec.steps.len(), 8);
    assert_eq!(rec.saves, 2, "after steps 3 and 6");
    assert!(rec.steps[3] < rec.steps[0], "the loss fell at the first scale: {:?}", rec.steps);
    assert!(image.data().iter().all(|v| v.is_finite()));
}

#[test]
fn an_observer_can_stop_the_run_with_the_image_so_far() {
    let (content, styles) = inputs(48);
    let settings = Settings { size: 48, iters: 50, ..Settings::default() };
    let mut rec = Recorder { stop_after: Some(2), ..Recorder::default() };
    let outcome = transfer(&vgg(), &content, &styles, &settings, &mut rec).unwrap();
    let Outcome::Interrupted { image, step: 2 } = outcome else { panic!("{outcome:?}") };
    assert_eq!(size(&image), (48, 36));
    assert_eq!(rec.steps.len(), 2);
}

#[test]
fn a_diverging_run_keeps_the_last_image_whose_loss_was_finite() {
    // An absurd learning rate sends the pixels to ~1e38 after one step, so the loss overflows
    // (unclamped: clamped pixels stay in 0..255 and the loss finite).
    let (content, styles) = inputs(32);
    let optimizer = Optimizer::Adam(AdamConfig { lr: 1e38, ..AdamConfig::default() });
    let settings = Settings { size: 32, iters: 5, optimizer, clamp: false, ..Settings::default() };
    let outcome = transfer(&vgg(), &content, &styles, &settings, &mut Silent).unwrap();
    let Outcome::Diverged { image, step: 2 } = outcome else { panic!("{outcome:?}") };
    // The kept image is the content (the start, whose loss was finite), not saturated noise.
    let worst = image.data().iter().zip(content.data()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-3, "kept image differs from the content by {worst}");
}

#[test]
fn noise_init_is_reproducible_from_its_seed() {
    let (content, styles) = inputs(32);
    let run = |seed| {
        let settings = Settings { size: 32, iters: 2, init: Init::Noise { seed }, ..Settings::default() };
        transfer(&vgg(), &content, &styles, &settings, &mut Silent).unwrap()
    };
    let (a, b, c) = (run(7), run(7), run(8));
    assert_eq!(a.image().data(), b.image().data());
    assert_ne!(a.image().data(), c.image().data());
}

#[test]
fn plans_refuse_outputs_too_small_for_the_deepest_layer() {
    let settings = Settings { size: 8, ..Settings::default() };
    let err = settings.plan((100, 100), 1).unwrap_err();
    assert!(matches!(err, Error::TooSmall { width: 8, height: 8, layer: "relu5_1", min: 16 }), "{err}");
    // relu3_1 sits behind two pools: 4 pixels are enough for it.
    let shallow = Layers { content: "relu2_1".into(), style: vec![("relu3_1".into(), 1.0)] };
    let plan = Settings { size: 8, layers: shallow, ..Settings::default() }.plan((100, 100), 1).unwrap();
    assert_eq!(plan.sizes, [(8, 8)]);
    // An elongated content: 512 x 8 at --size 512 has a short side of 8.
    let err = Settings::default().plan((4096, 64), 1).unwrap_err();
    assert!(matches!(err, Error::TooSmall { width: 512, height: 8, min: 16, .. }), "{err}");
}

#[test]
fn plans_drop_coarse_scales_that_would_be_too_small() {
    let plan = Settings { size: 64, scales: Some(3), ..Settings::default() }.plan((400, 100), 1).unwrap();
    // 16 x 4 and 32 x 8 are below relu5_1's 16 pixels; only 64 x 16 remains.
    assert_eq!(plan.sizes, [(64, 16)]);
}

#[test]
fn plans_give_each_scale_its_stopping_threshold() {
    let plan = Settings { size: 512, ..Settings::default() }.plan_within((512, 256), 1, None).unwrap();
    assert_eq!(plan.sizes, [(256, 128), (512, 256)]);
    assert_eq!(plan.min_changes, [1e-3, 4e-3], "4x the coarsest's at 4x its pixels");
    let dropped = Settings { size: 64, scales: Some(3), ..Settings::default() }.plan((400, 100), 1).unwrap();
    assert_eq!(dropped.min_changes, [1e-3], "the coarsest kept scale is the reference, not a dropped one");
}

#[test]
fn plans_refuse_sizes_that_do_not_fit_in_memory() {
    let err = Settings { size: 200_000, ..Settings::default() }.plan((1000, 1000), 1).unwrap_err();
    let Error::OutOfMemory { width: 200_000, height: 200_000, needed, available } = err else { panic!("{err}") };
    assert!(needed > available);
    assert!(err.to_string().contains("lower --size"), "{err}");
}

/// The estimate's saved bytes are what the tape really keeps, byte for byte: the count per op
/// in `memory::saved_bytes` follows `Op::saved_bytes`. Odd sizes make the pools floor.
#[test]
fn memory_estimate_matches_the_tapes_own_accounting() {
    let vgg = Vgg19::load(&vgg::resolve_weights_path(None).unwrap(), &["relu5_1"]).unwrap();
    let (w, h) = (37, 29);
    let image = Tensor::uniform([1, 3, h, w], 0.0, 255.0, 3);
    let layer_sets = [
        Layers::default(),
        Layers { content: "relu2_2".into(), style: vec![("relu1_1".into(), 1.0), ("conv3_1".into(), 0.5)] },
        Layers { content: "pool2".into(), style: vec![("relu1_2".into(), 1.0)] },
    ];
    for layers in layer_sets {
        for styles in [1, 2] {
            let targets: Vec<(Tensor, f32)> = (0..styles).map(|_| (image.clone(), 1.0 / styles as f32)).collect();
            let objective = Objective::new(&vgg, &image, &targets, layers.clone(), Weights::default()).unwrap();
            let taped = objective.saved_bytes(&Vgg19::preprocess(&image).unwrap()).unwrap() as u64;
            let estimated = memory::saved_bytes(w, h, &layers, styles).unwrap();
            assert_eq!(estimated, taped, "{layers:?} with {styles} styles");
        }
    }
}

/// 3840x2160 with the defaults on a 24 GB machine: L-BFGS's 100 pairs (20 GB of images) are
/// shortened to what fits; with memory to spare nothing changes; Adam is never shortened.
#[test]
fn lbfgs_history_shrinks_to_fit_the_memory_available() {
    use nn::optim::LbfgsConfig;
    let settings = Settings { size: 3840, ..Settings::default() };
    let gib = 1u64 << 30;
    let plan = settings.plan_within((3840, 2160), 1, Some(22 * gib)).unwrap();
    let (kept, asked) = plan.history_reduced(&settings).expect("shortened");
    assert_eq!(asked, 100);
    assert!((stylize::transfer::MIN_LBFGS_HISTORY..100).contains(&kept), "{kept}");
    // A tenth of the memory is left free, against an estimate a little low.
    let budget = 22 * gib - 22 * gib / 10;
    assert!(plan.memory <= budget, "{}", memory::format_bytes(plan.memory));
    let one_more = Optimizer::Lbfgs(LbfgsConfig { history: kept + 1, ..LbfgsConfig::default() });
    let more = memory::estimate_bytes(3840, 2160, &settings.layers, 1, one_more.history_vectors()).unwrap();
    assert!(more > budget, "the longest history that fits: {kept}");
    let roomy = settings.plan_within((3840, 2160), 1, Some(1 << 40)).unwrap();
    assert_eq!(roomy.history_reduced(&settings), None);
    let err = settings.plan_within((3840, 2160), 1, Some(4 * gib)).unwrap_err();
    assert!(matches!(err, Error::OutOfMemory { .. }), "even 5 pairs do not fit in 4 GiB: {err}");
    let adam = Settings { optimizer: Optimizer::Adam(AdamConfig::default()), ..settings };
    assert_eq!(adam.plan_within((3840, 2160), 1, Some(22 * gib)).unwrap().history_reduced(&adam), None);
}

#[test]
fn a_scale_ends_early_once_the_loss_stops_falling() {
    let (content, styles) = inputs(32);
    let settings = Settings { size: 32, iters: 300, min_change: 1e-3, ..Settings::default() };
    let mut rec = Recorder::default();
    let outcome = transfer(&vgg(), &content, &styles, &settings, &mut rec).unwrap();
    assert!(matches!(outcome, Outcome::Finished { .. }));
    let n = rec.steps.len();
    assert!(n > stylize::transfer::CONVERGENCE_WINDOW && n < 300, "{n} steps");
    let (then, now) = (rec.steps[n - 1 - stylize::transfer::CONVERGENCE_WINDOW], rec.steps[n - 1]);
    assert!((then - now) / then / 10.0 < 1e-3, "it stopped because progress slowed: {then} -> {now}");
}

/// Unclamped, the optimiser drives some pixels out of 0..255, which saving clips (so the saved
/// picture scores worse than the loss the run reported); clamped, every pixel stays a pixel.
#[test]
fn clamped_runs_keep_every_pixel_in_range() {
    let (content, styles) = inputs(64);
    let out_of_range = |clamp: bool| {
        let settings = Settings { size: 64, scales: Some(1), iters: 30, clamp, ..Settings::default() };
        let outcome = transfer(&vgg(), &content, &styles, &settings, &mut Silent).unwrap();
        outcome.image().data().iter().filter(|v| !(0.0..=255.0).contains(*v)).count()
    };
    assert!(out_of_range(false) > 0, "the unclamped run leaves the range, or this test shows nothing");
    assert_eq!(out_of_range(true), 0);
}
