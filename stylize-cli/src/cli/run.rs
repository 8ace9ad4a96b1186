//! `stylize run`: [`stylize::transfer`] with what a person at a terminal needs around it.
//!
//! Everything that can fail on bad input (paths, images, weights, size, memory) is checked
//! before the first VGG pass. The observer draws the progress bar, writes the log, answers
//! Ctrl-C by stopping the run, and saves the image when asked; the output is written whole or
//! not at all, whatever way the run ends.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use stylize::objective::Losses;
use stylize::train::TrainStep;
use stylize::transfer::{self, Control, Event, Observer, ObserverError, Outcome, StepReport};
use stylize::{image, output};
use vgg::Vgg19;

use super::args::{Init, LogFormat, RunArgs};

/// The exit code of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
pub(super) const INTERRUPTED: u8 = 130;

pub fn run(args: &RunArgs) -> Result<ExitCode> {
    let started = Instant::now();
    // --- Checks before any compute -------------------------------------------------------
    image::check_output_path(&args.output)?;
    if let Some(input) =
        std::iter::once(&args.content).chain(&args.styles).find(|p| output::is_same_file(p, &args.output))
    {
        anyhow::bail!("{}: the picture would be written over this input; give -o another file name", input.display());
    }
    if let Some(log) = &args.log {
        output::check(log)?;
    }
    let weights_path = vgg::resolve_weights_path(args.compute.weights.as_deref())?;
    let content = image::load_rgb(&args.content).context("reading the content image")?;
    let mut styles = Vec::with_capacity(args.styles.len());
    for (path, blend) in args.styles.iter().zip(args.loss.blend_weights(args.styles.len())) {
        let style = image::load_rgb(path).with_context(|| format!("reading style image {}", path.display()))?;
        styles.push((style, blend));
    }
    let seed = args.seed.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        nanos as u64
    });
    let init = match &args.init {
        Init::Content => transfer::Init::Content,
        Init::Noise => transfer::Init::Noise { seed },
        Init::Image(p) => transfer::Init::Image(image::load_rgb(p).context("reading the --init image")?),
    };
    let settings = args.settings(init);
    let plan = settings.plan(image::size(&content), styles.len())?;
    let mut settings = settings;
    if let Some((kept, asked)) = plan.history_reduced(&settings) {
        eprintln!(
            "L-BFGS keeps {kept} of its {asked} correction pairs so that the run fits in memory \
             (about {} in all); --optimizer adam needs less",
            stylize::memory::format_bytes(plan.memory)
        );
    }
    settings.optimizer = plan.optimizer;

    let say = |msg: String| {
        if !args.quiet {
            eprintln!("{msg}");
        }
    };
    let sizes: Vec<String> = plan.sizes.iter().map(|(w, h)| format!("{w}x{h}")).collect();
    let early = match settings.min_change {
        0.0 => String::new(),
        f => {
            let at: Vec<String> = plan.min_changes.iter().map(|&m| percent(m)).collect();
            format!(", each ending once the loss falls by less than {} a step (--min-change {f:e})", at.join(", "))
        }
    };
    say(format!(
        "{} scale{} ({}), up to {} steps each{early}; estimated peak memory {}",
        sizes.len(),
        if sizes.len() == 1 { "" } else { "s" },
        sizes.join(", "),
        settings.iters,
        stylize::memory::format_bytes(plan.memory)
    ));
    let t = Instant::now();
    let vgg = Vgg19::load(&weights_path, &settings.layers.names())?;
    say(format!("loaded VGG19 weights from {} in {:.2} s", weights_path.display(), t.elapsed().as_secs_f64()));
    if args.init == Init::Noise && args.seed.is_none() {
        say(format!("noise seed {seed} (pass --seed {seed} to repeat this run)"));
    }

    let interrupted = Arc::new(AtomicBool::new(false));
    {
        let flag = Arc::clone(&interrupted);
        // A handler exists already if this process ran before (tests): keep that one.
        let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    }
    let mut observer = Terminal {
        progress: Progress::new(settings.iters * plan.sizes.len(), args.quiet),
        log: args.log.as_deref().map(|p| Log::create(p, RUN_COLUMNS)).transpose()?,
        output: &args.output,
        interrupted,
    };
    let outcome = transfer::transfer(&vgg, &content, &styles, &settings, &mut observer)?;
    observer.progress.finish();
    image::save_or_rescue(outcome.image(), &args.output)?;
    if let Some(Err(e)) = observer.log.as_mut().map(Log::flush) {
        observer.progress.warn(&format!("warning: {e:#}"));
    }
    let (w, h) = image::size(outcome.image());
    let out = args.output.display();
    match outcome {
        Outcome::Finished { .. } => {
            say(format!("wrote {out} ({w}x{h}) in {:.1} s", started.elapsed().as_secs_f64()));
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Interrupted { step, .. } => {
            say(format!("interrupted after {step} steps: wrote the image so far to {out}"));
            Ok(ExitCode::from(INTERRUPTED))
        }
        Outcome::Diverged { step, .. } => Err(anyhow!(
            "the loss became NaN or infinite at step {step}; stopped and kept the last image whose loss was \
             finite in {out}. Try a lower --lr, --style-weight or --tv-weight"
        )),
    }
}

/// The run's observer: progress, log, Ctrl-C and `--save-every`.
struct Terminal<'a> {
    progress: Progress,
    log: Option<Log>,
    output: &'a Path,
    interrupted: Arc<AtomicBool>,
}

/// A log or an intermediate save that fails does not end the run: the finished picture matters
/// more. Each failure is reported once, and the log is then given up.
impl Observer for Terminal<'_> {
    fn on_event(&mut self, event: Event<'_>) -> Result<Control, ObserverError> {
        match event {
            Event::Scale { .. } => {}
            Event::Step(s) => {
                self.progress.update(s);
                if let Some(Err(e)) = self.log.as_mut().map(|log| log.write_step(s)) {
                    self.progress.warn(&format!("warning: {e}; the run goes on without the log"));
                    self.log = None;
                }
            }
            Event::Save(img) => {
                if let Err(e) = image::save(img, self.output) {
                    self.progress.warn(&format!("warning: intermediate save failed: {e}; the run goes on"));
                }
            }
        }
        Ok(if self.interrupted.load(Ordering::SeqCst) { Control::Stop } else { Control::Continue })
    }
}

/// A progress bar on a terminal; a plain line every ~5% otherwise; nothing with `--quiet`.
pub(super) struct Progress {
    bar: Option<ProgressBar>,
    plain_every: Option<usize>,
}

impl Progress {
    pub(super) fn new(total: usize, quiet: bool) -> Self {
        if quiet {
            return Progress { bar: None, plain_every: None };
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} (ETA {eta})")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            Progress { bar: Some(bar), plain_every: None }
        } else {
            Progress { bar: None, plain_every: Some((total / 20).max(1)) }
        }
    }

    fn update(&self, s: &StepReport) {
        let prefix = format!("scale {}/{} {}x{}", s.scale, s.scales, s.width, s.height);
        self.show(s.step, s.total_steps, &prefix, &s.losses);
    }

    pub(super) fn update_train(&self, s: &TrainStep) {
        self.show(s.step, s.steps, "training", &s.losses);
    }

    fn show(&self, step: usize, total: usize, prefix: &str, l: &Losses) {
        let msg = format!("total {:.4e} content {:.3e} style {:.3e} tv {:.3e}", l.total, l.content, l.style, l.tv);
        if let Some(bar) = &self.bar {
            bar.set_prefix(prefix.to_string());
            bar.set_message(msg);
            bar.set_position(step as u64);
        } else if let Some(every) = self.plain_every {
            if step.is_multiple_of(every) || step == total {
                eprintln!("step {step}/{total} {prefix}: {msg}");
            }
        }
    }

    /// A line above the bar (or plain, without one); shown even with `--quiet`.
    pub(super) fn warn(&self, msg: &str) {
        match &self.bar {
            Some(bar) => bar.println(msg),
            None => eprintln!("{msg}"),
        }
    }

    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}

/// The per-step loss log: CSV with a header, or JSON lines, one row per step. `run` and
/// `train` share the column names (training has no scales, so no `scale`, `width`, `height`).
pub(super) struct Log {
    file: BufWriter<File>,
    format: LogFormat,
    path: PathBuf,
    columns: &'static [&'static str],
}

/// The columns of `run`'s log.
const RUN_COLUMNS: &[&str] = &["step", "scale", "width", "height", "content", "style", "tv", "total", "seconds"];
/// The columns of `train`'s log.
pub(super) const TRAIN_COLUMNS: &[&str] = &["step", "content", "style", "tv", "total", "seconds"];

impl Log {
    pub(super) fn create(path: &Path, columns: &'static [&'static str]) -> Result<Self> {
        let file = File::create(path).with_context(|| format!("creating the log file {}", path.display()))?;
        let mut log =
            Log { file: BufWriter::new(file), format: LogFormat::for_path(path), path: path.to_path_buf(), columns };
        if log.format == LogFormat::Csv {
            writeln!(log.file, "{}", columns.join(","))?;
        }
        Ok(log)
    }

    /// Continues the log of a resumed run: the rows of steps up to `through` (those the
    /// checkpoint holds) are kept and the rest dropped, since the resumed run writes them again;
    /// new rows are appended. A missing log is started afresh.
    pub(super) fn resume(path: &Path, columns: &'static [&'static str], through: usize) -> Result<Self> {
        let old = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Log::create(path, columns),
            Err(e) => return Err(e).with_context(|| format!("reading the log {} to continue it", path.display())),
        };
        let format = LogFormat::for_path(path);
        let step_of = |line: &str| -> Option<usize> {
            match format {
                LogFormat::Csv => line.split(',').next()?.parse().ok(),
                LogFormat::JsonLines => {
                    serde_json::from_str::<serde_json::Value>(line).ok()?["step"].as_u64().map(|s| s as usize)
                }
            }
        };
        let mut log = Log::create(path, columns)?;
        for line in old.lines().filter(|l| step_of(l).is_some_and(|s| s <= through)) {
            writeln!(log.file, "{line}").with_context(|| format!("writing the log {}", path.display()))?;
        }
        Ok(log)
    }

    /// One row, the values in the order of the columns.
    pub(super) fn write(&mut self, values: &[serde_json::Value]) -> Result<()> {
        assert_eq!(values.len(), self.columns.len(), "one value per column");
        let line = match self.format {
            LogFormat::Csv => values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","),
            LogFormat::JsonLines => {
                let row: serde_json::Map<String, serde_json::Value> =
                    self.columns.iter().map(|c| c.to_string()).zip(values.iter().cloned()).collect();
                serde_json::Value::Object(row).to_string()
            }
        };
        writeln!(self.file, "{line}").with_context(|| format!("writing the log {}", self.path.display()))
    }

    fn write_step(&mut self, s: &StepReport) -> Result<()> {
        let l = s.losses;
        self.write(&[
            s.step.into(),
            s.scale.into(),
            s.width.into(),
            s.height.into(),
            l.content.into(),
            l.style.into(),
            l.tv.into(),
            l.total.into(),
            s.seconds.into(),
        ])
    }

    pub(super) fn write_train(&mut self, s: &TrainStep) -> Result<()> {
        let l = s.losses;
        self.write(&[s.step.into(), l.content.into(), l.style.into(), l.tv.into(), l.total.into(), s.seconds.into()])
    }

    pub(super) fn flush(&mut self) -> Result<()> {
        self.file.flush().with_context(|| format!("writing the log {}", self.path.display()))
    }
}

/// A fraction as a short percentage: 0.004 -> "0.4%", 0.064 -> "6.4%", 1.5e-5 -> "0.0015%".
fn percent(f: f32) -> String {
    let digits = (2 - (f * 100.0).log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{:.*}", digits, f * 100.0);
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    format!("{s}%")
}

#[cfg(test)]
mod tests {
    use super::percent;

    #[test]
    fn percentages_keep_three_significant_digits_at_most() {
        assert_eq!(percent(1e-3), "0.1%");
        assert_eq!(percent(4e-3), "0.4%");
        assert_eq!(percent(6.4e-2), "6.4%");
        assert_eq!(percent(1.5e-5), "0.0015%");
        assert_eq!(percent(0.256), "25.6%");
    }
}
