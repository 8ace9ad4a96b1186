//! `stylize run`: Gatys style transfer from the command line.
//!
//! Everything that can fail on bad input (paths, images, weights, memory) is checked before
//! the first VGG pass. Then, for each scale from coarse to fine: resize the inputs, compute the
//! targets, and optimise the pixels with L-BFGS or Adam. Ctrl-C, `--save-every` and a NaN loss
//! all write the latest good image atomically; the output is never left half-written.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use nn::optim::{Adam, AdamConfig, Lbfgs, LbfgsConfig, OptimError};
use tensor::Tensor;
use vgg::Vgg19;

use crate::cli::{Init, LogFormat, Optimizer, RunArgs};
use crate::image_io::{self, Image};
use crate::objective::{image_tensor, Layers, Losses, Objective, Weights};
use crate::{color, memory};

/// The smallest side the deepest default layer (relu5_1, after four 2x2 pools) accepts.
const MIN_SIDE: usize = 16;
/// With `--scales` unset, the coarsest scale is at least this long on its longest side.
const AUTO_SCALE_MIN: usize = 256;

/// The sizes (longest side) to optimise at, coarse to fine, each twice the previous.
pub fn scale_sizes(size: usize, scales: Option<usize>) -> Vec<usize> {
    let n = scales.unwrap_or_else(|| {
        // Auto: halve while the coarse scale stays >= 256 px; 512 -> [256, 512], 1024 -> 3 scales.
        let mut n = 1;
        while size >> n >= AUTO_SCALE_MIN {
            n += 1;
        }
        n
    });
    (0..n).rev().map(|i| (size >> i).max(MIN_SIDE)).collect()
}

/// What the loop reports per step, to the progress bar and the log.
struct Step {
    step: usize,
    scale: usize,
    size: (usize, usize),
    losses: Losses,
    seconds: f64,
}

pub fn run(args: &RunArgs) -> Result<()> {
    let started = Instant::now();
    // --- Checks before any compute -------------------------------------------------------
    image_io::check_output_path(&args.output)?;
    if let Some(log) = &args.log {
        image_io::check_output_dir(log)?;
    }
    let weights_path = vgg::resolve_weights_path(args.compute.weights.as_deref())?;
    let content = image_io::load_rgb(&args.content).context("reading the content image")?;
    let styles: Vec<Image> = args
        .styles
        .iter()
        .map(|p| image_io::load_rgb(p).with_context(|| format!("reading style image {}", p.display())))
        .collect::<Result<_>>()?;
    // --preserve-colors: optimise on luminance only, put the content's colours back when saving.
    let (transfer_content, styles) =
        if args.preserve_colors { color::luminance_only(&content, &styles) } else { (content.clone(), styles) };
    let init_image = match &args.init {
        Init::Image(p) => Some(image_io::load_rgb(p).context("reading the --init image")?),
        _ => None,
    };
    let sizes = scale_sizes(args.size, args.scales);
    let (out_w, out_h) = image_io::longest_side_size(content.width, content.height, args.size);
    if out_w.min(out_h) < MIN_SIDE {
        bail!(
            "the output would be {out_w}x{out_h} pixels, but VGG19's relu5_1 needs at least {MIN_SIDE} on each side; \
             raise --size or use a less elongated content image"
        );
    }
    let history = match args.optimizer {
        Optimizer::Lbfgs => 2 * LbfgsConfig::default().history,
        Optimizer::Adam => 2,
    };
    let need = memory::estimate_bytes(out_w, out_h, history);
    if let Some(avail) = memory::available_bytes() {
        if need > avail {
            bail!(
                "a {out_w}x{out_h} output needs about {} of memory, but only {} is available; lower --size",
                memory::format_bytes(need),
                memory::format_bytes(avail)
            );
        }
    }
    let mut log = args.log.as_deref().map(Log::create).transpose()?;
    let layers = Layers { content: args.content_layer.clone(), style: args.style_layers.0.clone() };
    let weights = Weights { content: args.loss.content_weight, style: args.loss.style_weight, tv: args.loss.tv_weight };
    let blend = args.loss.blend_weights(styles.len());

    let t = Instant::now();
    let vgg = Vgg19::load(&weights_path)?;
    let quiet = args.quiet;
    let say = |msg: String| {
        if !quiet {
            eprintln!("{msg}");
        }
    };
    say(format!("loaded VGG19 weights from {} in {:.2} s", weights_path.display(), t.elapsed().as_secs_f64()));

    let seed = args.seed.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        nanos as u64
    });
    if args.init == Init::Noise && args.seed.is_none() {
        say(format!("noise seed {seed} (pass --seed {seed} to repeat this run)"));
    }

    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = Arc::clone(&interrupted);
        // A second handler cannot be installed (tests call `run` twice): the first one stays.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    }

    // --- Coarse to fine ------------------------------------------------------------------
    let total_steps = args.iters * sizes.len();
    let progress = Progress::new(total_steps, quiet);
    let mut x: Option<Image> = None;
    let mut last_good: Option<Image> = None;
    let mut step = 0;
    let mut outcome: Result<()> = Ok(());
    'scales: for (scale_idx, &size) in sizes.iter().enumerate() {
        let content_s = image_io::resize_longest(&transfer_content, size);
        let (w, h) = (content_s.width, content_s.height);
        let style_side = ((size as f32 * args.style_scale).round() as usize).max(MIN_SIDE);
        let style_tensors: Vec<(Tensor, f32)> = styles
            .iter()
            .zip(&blend)
            .map(|(s, &b)| {
                let s = image_io::resize_longest(s, style_side);
                Ok((image_tensor(s.data, s.height, s.width)?, b))
            })
            .collect::<Result<_>>()?;
        let content_t = image_tensor(content_s.data.clone(), h, w)?;
        let objective = Objective::new(&vgg, &content_t, &style_tensors, layers.clone(), weights)?;

        let start = match x.take() {
            Some(prev) => image_io::resize_exact(&prev, w, h),
            None => match (&args.init, &init_image) {
                (Init::Content, _) => content_s.clone(),
                (Init::Noise, _) => noise_image(w, h, seed),
                (Init::Image(_), Some(img)) => image_io::resize_exact(img, w, h),
                (Init::Image(_), None) => unreachable!("loaded above"),
            },
        };
        let mut pixels = start.data;
        let mut optimizer: Box<dyn nn::optim::Optimizer> = match args.optimizer {
            Optimizer::Lbfgs => Box::new(Lbfgs::new(LbfgsConfig {
                lr: args.lr.unwrap_or(1.0),
                line_search: args.line_search,
                ..LbfgsConfig::default()
            })),
            Optimizer::Adam => Box::new(Adam::new(AdamConfig { lr: args.lr.unwrap_or(2.0), ..AdamConfig::default() })),
        };
        // The pixels at which the loss was last finite: what a NaN leaves behind.
        let mut good = pixels.clone();
        for _ in 0..args.iters {
            if interrupted.load(Ordering::SeqCst) {
                outcome = Err(anyhow::anyhow!("interrupted"));
                last_good = Some(Image::new(w, h, pixels.clone()));
                break 'scales;
            }
            let before = pixels.clone();
            let t_step = Instant::now();
            let mut losses = Losses::default();
            let result = optimizer.step(&mut pixels, &mut |p: &[f32], grad: &mut [f32]| {
                let image = image_tensor(p.to_vec(), h, w)?;
                let (l, g) = objective.evaluate(&image, true)?;
                grad.copy_from_slice(g.expect("asked for the gradient").data());
                losses = l;
                Ok(l.total)
            });
            step += 1;
            match result {
                Ok(_) => good = before,
                Err(OptimError::NonFinite { .. }) => {
                    outcome = Err(anyhow::anyhow!(
                        "the loss became NaN or infinite at step {step}; stopped and kept the last image whose \
                         loss was finite. Try a lower --lr, --style-weight or --tv-weight"
                    ));
                    last_good = Some(Image::new(w, h, std::mem::take(&mut good)));
                    break 'scales;
                }
                Err(e) => return Err(anyhow::Error::new(e).context(format!("optimising, step {step}"))),
            }
            let s = Step { step, scale: scale_idx + 1, size: (w, h), losses, seconds: t_step.elapsed().as_secs_f64() };
            progress.update(&s, sizes.len());
            if let Some(log) = &mut log {
                log.write(&s)?;
            }
            if args.save_every.is_some_and(|n| step % n == 0) {
                save(&Image::new(w, h, pixels.clone()), &content, args)?;
            }
        }
        x = Some(Image::new(w, h, pixels));
    }
    progress.finish();
    let result = last_good.or(x).expect("at least one scale ran");
    save(&result, &content, args)?;
    if let Some(log) = &mut log {
        log.flush()?;
    }
    match outcome {
        Ok(()) => {
            say(format!(
                "wrote {} ({}x{}) in {:.1} s",
                args.output.display(),
                result.width,
                result.height,
                started.elapsed().as_secs_f64()
            ));
            Ok(())
        }
        Err(e) if e.to_string() == "interrupted" => {
            say(format!("interrupted: wrote the image so far to {}", args.output.display()));
            std::process::exit(130);
        }
        Err(e) => Err(e.context(format!("the image so far is in {}", args.output.display()))),
    }
}

/// Writes the current pixels (with the content's colours if asked) to the output, atomically.
fn save(img: &Image, content: &Image, args: &RunArgs) -> Result<()> {
    let out = if args.preserve_colors { color::preserve_colors(content, img) } else { img.clone() };
    image_io::save_rgb_atomic(&out, &args.output)?;
    Ok(())
}

/// Uniform noise in 0..255 from a seeded SplitMix64: the same seed gives the same image.
pub fn noise_image(width: usize, height: usize, seed: u64) -> Image {
    let mut state = seed;
    let data = (0..3 * width * height)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 * 255.0
        })
        .collect();
    Image::new(width, height, data)
}

/// A progress bar on a terminal; a plain line every ~5% otherwise; nothing with `--quiet`.
struct Progress {
    bar: Option<ProgressBar>,
    plain_every: Option<usize>,
    total: usize,
}

impl Progress {
    fn new(total: usize, quiet: bool) -> Self {
        if quiet {
            return Progress { bar: None, plain_every: None, total };
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} (ETA {eta})")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            Progress { bar: Some(bar), plain_every: None, total }
        } else {
            Progress { bar: None, plain_every: Some((total / 20).max(1)), total }
        }
    }

    fn update(&self, s: &Step, scales: usize) {
        let l = s.losses;
        let msg = format!("total {:.4e} content {:.3e} style {:.3e} tv {:.3e}", l.total, l.content, l.style, l.tv);
        if let Some(bar) = &self.bar {
            bar.set_prefix(format!("scale {}/{scales} {}x{}", s.scale, s.size.0, s.size.1));
            bar.set_message(msg);
            bar.set_position(s.step as u64);
        } else if let Some(every) = self.plain_every {
            if s.step.is_multiple_of(every) || s.step == self.total {
                eprintln!(
                    "step {}/{} scale {}/{scales} ({}x{}): {msg}",
                    s.step, self.total, s.scale, s.size.0, s.size.1
                );
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// The per-step loss log: CSV or JSON lines.
struct Log {
    file: BufWriter<File>,
    format: LogFormat,
    path: PathBuf,
}

impl Log {
    fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).with_context(|| format!("creating the log file {}", path.display()))?;
        let mut log = Log { file: BufWriter::new(file), format: LogFormat::for_path(path), path: path.to_path_buf() };
        if log.format == LogFormat::Csv {
            writeln!(log.file, "step,scale,width,height,content,style,tv,total,seconds")?;
        }
        Ok(log)
    }

    fn write(&mut self, s: &Step) -> Result<()> {
        let l = s.losses;
        let line = match self.format {
            LogFormat::Csv => format!(
                "{},{},{},{},{},{},{},{},{:.4}",
                s.step, s.scale, s.size.0, s.size.1, l.content, l.style, l.tv, l.total, s.seconds
            ),
            LogFormat::JsonLines => serde_json::json!({
                "step": s.step, "scale": s.scale, "width": s.size.0, "height": s.size.1,
                "content": l.content, "style": l.style, "tv": l.tv, "total": l.total, "seconds": s.seconds,
            })
            .to_string(),
        };
        writeln!(self.file, "{line}").with_context(|| format!("writing the log {}", self.path.display()))
    }

    fn flush(&mut self) -> Result<()> {
        self.file.flush().with_context(|| format!("writing the log {}", self.path.display()))
    }
}
