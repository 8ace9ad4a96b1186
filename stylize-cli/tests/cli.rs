//! The `stylize` binary as a user runs it: results, and every kind of bad input failing early
//! with a message that says what is wrong, a non-zero exit, and no output file.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::npy::{load_npy_f32, load_npy_f64};
use serde_json::Value;
use stylize::image::{self, load_rgb};
use stylize::objective::{Layers, Objective, Weights};

fn stylize(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stylize")).args(args).output().expect("run stylize")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn repo(rel: &str) -> String {
    common::repo(rel).to_string_lossy().into_owned()
}

fn golden(case: &str, file: &str) -> String {
    common::golden_dir(case).join(file).to_string_lossy().into_owned()
}

const CONTENT: &str = "examples/content_tubingen.jpg";
const STYLE: &str = "examples/style_starry_night.jpg";

/// Runs a command that must fail before writing `out`, and returns its error message.
/// Polls `done` every 20 ms for up to a minute (a child process getting under way).
fn wait_until(mut done: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if done() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Whether `log` has been written to: it is buffered, so once it has grown a run is under way.
fn has_grown(log: &Path) -> bool {
    std::fs::metadata(log).map(|m| m.len() > 0).unwrap_or(false)
}

fn fails(args: &[&str], out: &Path) -> String {
    let o = stylize(args);
    assert!(!o.status.success(), "{args:?} should fail");
    assert!(!out.exists(), "{args:?} must not write {}", out.display());
    let msg = stderr(&o);
    assert!(!msg.contains("panicked"), "{args:?} panicked: {msg}");
    msg
}

#[test]
fn eval_json_matches_the_reference_and_writes_the_gradient() {
    let dir = tempfile::tempdir().unwrap();
    for case in ["a", "b"] {
        let grad_path = dir.path().join(format!("{case}.npy"));
        let (content, style) = (golden(case, "content.png"), golden(case, "style.png"));
        let o = stylize(&[
            "eval",
            "--content",
            &content,
            "--style",
            &style,
            "--json",
            "--grad-out",
            grad_path.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let got: Value = serde_json::from_slice(&o.stdout).unwrap();
        let want: Value = serde_json::from_str(&std::fs::read_to_string(golden(case, "golden.json")).unwrap()).unwrap();
        for key in ["content", "style", "tv", "total"] {
            let (g, w) = (got[key].as_f64().unwrap(), want["at_content"][key].as_f64().unwrap());
            assert!((g - w).abs() <= common::LOSS_RTOL * w.abs(), "{case} {key}: {g} vs reference {w}");
        }
        let (shape, grad) = load_npy_f32(&grad_path).unwrap();
        let (shape64, grad64) = load_npy_f64(Path::new(&golden(case, "grad_f64.npy"))).unwrap();
        assert_eq!(shape, shape64);
        // The gradient's norm against the exact (float64) gradient's, not the float32 reference's
        // `grad_l2`: in case b that one is itself 4.3e-5 away from the exact norm (its max-pools
        // break near-ties in a flat sky by float32 rounding), ours 2.4e-7.
        let exact_l2 = grad64.iter().map(|v| v * v).sum::<f64>().sqrt();
        let g = got["grad_l2"].as_f64().unwrap();
        assert!((g - exact_l2).abs() <= common::LOSS_RTOL * exact_l2, "{case} grad_l2: {g} vs exact {exact_l2}");
        let num: f64 = grad.iter().zip(&grad64).map(|(&a, b)| (a as f64 - b).powi(2)).sum();
        let den: f64 = grad64.iter().map(|b| b * b).sum();
        assert!((num / den).sqrt() < 5e-3, "{case}: gradient relative L2 error {}", (num / den).sqrt());
    }
}

/// `eval --image X` scores a picture other than the content: here the content's negative, whose
/// content loss is far from zero, with the same losses the library's objective gives it. A
/// picture of another size is refused, naming both sizes.
#[test]
fn eval_scores_another_picture_of_the_contents_size() {
    let dir = tempfile::tempdir().unwrap();
    let (content, style) = (golden("a", "content.png"), golden("a", "style.png"));
    let rgb = load_rgb(Path::new(&content)).unwrap();
    let negative = tensor::Tensor::new(rgb.shape(), rgb.data().iter().map(|v| 255.0 - v).collect()).unwrap();
    let x = dir.path().join("negative.png");
    image::save(&negative, &x).unwrap();
    let o = stylize(&["eval", "--content", &content, "--style", &style, "--image", x.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got: Value = serde_json::from_slice(&o.stdout).unwrap();

    let vgg = vgg::Vgg19::load(&vgg::resolve_weights_path(None).unwrap(), &Layers::default().names()).unwrap();
    let styles = [(load_rgb(Path::new(&style)).unwrap(), 1.0)];
    let objective = Objective::new(&vgg, &rgb, &styles, Layers::default(), Weights::default()).unwrap();
    let (want, _) = objective.evaluate_rgb(&load_rgb(&x).unwrap()).unwrap();
    assert!(want.content > 1.0, "the negative is far from the content: {want:?}");
    for (key, w) in [("content", want.content), ("style", want.style), ("tv", want.tv), ("total", want.total)] {
        let g = got[key].as_f64().unwrap();
        assert!((g - w as f64).abs() <= 1e-5 * (w as f64).abs(), "{key}: {g} vs {w}");
    }

    let small = dir.path().join("small.png");
    image::save(&image::resize_longest(&rgb, 16), &small).unwrap();
    let o = stylize(&["eval", "--content", &content, "--style", &style, "--image", small.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("but the content is"), "{}", stderr(&o));
}

/// The acceptance run: 192 px, 100 L-BFGS steps, one scale, against the reference's loss after
/// 100 steps (`tests/golden/run_192.json`, with the command that printed it). With --iters 101
/// the last logged row is the loss at the start of step 101, i.e. after 100 steps. As the
/// reference does, every step runs and pixels may leave 0..255 (`--min-change 0 --no-clamp`).
#[test]
fn run_at_192_px_reaches_the_reference_loss() {
    let dir = tempfile::tempdir().unwrap();
    let (out, log) = (dir.path().join("out.png"), dir.path().join("log.jsonl"));
    let o = stylize(&[
        "run",
        &repo(CONTENT),
        &repo(STYLE),
        "-o",
        out.to_str().unwrap(),
        "--size",
        "192",
        "--iters",
        "101",
        "--scales",
        "1",
        "--min-change",
        "0",
        "--no-clamp",
        "--log",
        log.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<Value> =
        std::fs::read_to_string(&log).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 101);
    let first = rows[0]["total"].as_f64().unwrap();
    let last = rows[100]["total"].as_f64().unwrap();
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(golden("", "run_192.json")).unwrap()).unwrap();
    let reference = golden["total_after_100_steps"].as_f64().unwrap();
    assert!((last - reference).abs() <= 0.05 * reference, "loss after 100 steps {last} vs reference {reference}");
    assert!(last < first / 10.0, "the loss fell: {first} -> {last}");
    assert_eq!(image::size(&load_rgb(&out).unwrap()), (192, 144));
}

#[test]
fn run_multi_scale_with_two_styles_writes_every_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let (out, log) = (dir.path().join("out.jpg"), dir.path().join("log.csv"));
    let scream = repo("examples/style_the_scream.jpg");
    let o = stylize(&[
        "run",
        &repo(CONTENT),
        &repo(STYLE),
        &scream,
        "--style-blend",
        "3,1",
        "-o",
        out.to_str().unwrap(),
        "--size",
        "64",
        "--iters",
        "3",
        "--scales",
        "2",
        "--optimizer",
        "adam",
        "--preserve-colors",
        "--init",
        "noise",
        "--seed",
        "7",
        "--log",
        log.to_str().unwrap(),
        "--save-every",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(image::size(&load_rgb(&out).unwrap()), (64, 48));
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(log.lines().count(), 1 + 6, "a header and 3 steps at each of 2 scales:\n{log}");
    assert!(log.lines().nth(4).unwrap().starts_with("4,2,64,48,"), "{log}");
    // No temporary files are left beside the output.
    let names: Vec<PathBuf> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn bad_inputs_fail_before_any_work_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let out = dir.path().join("out.png");
    let o = out.to_str().unwrap();
    std::fs::write(d("empty.jpg"), b"").unwrap();
    std::fs::write(d("notes.png"), b"these are not pixels").unwrap();
    std::fs::write(d("notes.txt"), b"these are not pixels either").unwrap();
    image::save(&image::from_planes(8, 8, vec![128.0; 3 * 64]), Path::new(&d("tiny.png"))).unwrap();
    image::save(&image::from_planes(400, 2, vec![128.0; 3 * 800]), Path::new(&d("thin.png"))).unwrap();
    let (content, style) = (repo(CONTENT), repo(STYLE));
    // `run CONTENT STYLE -o OUT`, `eval --content CONTENT --style STYLE` and
    // `train STYLE --photos data/photos -o MODEL`, each with more arguments.
    let run = |more: &[&str]| -> Vec<String> {
        let head = ["run", &content, &style, "-o", o].map(String::from);
        head.into_iter().chain(more.iter().map(|s| s.to_string())).collect()
    };
    let eval = |more: &[&str]| -> Vec<String> {
        let head = ["eval", "--content", &content, "--style", &style].map(String::from);
        head.into_iter().chain(more.iter().map(|s| s.to_string())).collect()
    };
    let train = |style: &str, model: &str, more: &[&str]| -> Vec<String> {
        let head = ["train", style, "--photos", &repo("data/photos"), "-o", model].map(String::from);
        head.into_iter().chain(more.iter().map(|s| s.to_string())).collect()
    };

    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["run".into(), d("missing.jpg"), style.clone(), "-o".into(), o.into()], "no such file"),
        (vec!["run".into(), d("empty.jpg"), style.clone(), "-o".into(), o.into()], "empty"),
        (vec!["run".into(), content.clone(), d("notes.png"), "-o".into(), o.into()], "damaged"),
        (vec!["run".into(), content.clone(), d("notes.txt"), "-o".into(), o.into()], "not a recognised image"),
        (
            vec!["run".into(), d("tiny.png"), style.clone(), "-o".into(), o.into(), "--size".into(), "8".into()],
            "the output would be 8x8 pixels, but vgg19's relu5_1 needs at least 16x16",
        ),
        (vec!["run".into(), content.clone(), style.clone(), "-o".into(), d("no/such/dir/out.png")], "does not exist"),
        (vec!["run".into(), content.clone(), style.clone(), "-o".into(), d("out.xyz")], "extension"),
        (run(&["--style-weight", "nan"]), "finite"),
        (run(&["--tv-weight=-1"]), "negative"),
        (run(&["--size", "60000"]), "memory"),
        (run(&["--style-scale", "1000"]), "lower --style-scale"),
        (eval(&["--size", "60000"]), "lower --size"),
        (vec!["bench".into(), "--size".into(), "60000".into()], "lower --size"),
        (
            vec!["run".into(), content.clone(), d("thin.png"), "-o".into(), o.into(), "--size".into(), "64".into()],
            "the style image resized to 64x1 is too small for vgg19's relu5_1",
        ),
        (train(&d("thin.png"), &d("m.safetensors"), &[]), "the style image resized to 256x1 is too small"),
        (
            vec!["bench".into(), "--apply".into(), "starry_night".into(), "--size".into(), "60000".into()],
            "lower --size",
        ),
        (train(&style, &d("m.safetensors"), &["--batch", "100000"]), "lower --batch, --size or --width"),
        (train(&style, &d("m.safetensors"), &["--style-scale", "1000"]), "lower --style-scale"),
        (train(&style, &d("m.safetensors"), &["--resume"]), "no checkpoint"),
        (train(&style, o, &[]), "a model is a safetensors file, not a picture"),
        (train(&style, &d(""), &[]), "give the model's file name"),
        (run(&["--weights", &d("none.safetensors")]), "looked in"),
        (vec!["apply".into(), content.clone(), d("tiny.png"), "-o".into(), o.into()], "a picture, not a model"),
        (train(&style, &d("m.safetensors"), &["--init", &content]), "a picture, not a model"),
        (vec!["run".into(), d("tiny.png"), style.clone(), "-o".into(), d("tiny.png")], "written over this input"),
        (run(&["--weights", &d("notes.png")]), "safetensors"),
        (eval(&["--grad-out", &d("nope/g.npy")]), "does not exist"),
    ];
    for (args, expect) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let msg = fails(&args, &out).to_lowercase();
        assert!(msg.contains(expect), "{args:?}: expected '{expect}' in: {msg}");
    }
}

#[test]
fn a_diverging_run_exits_non_zero_and_keeps_the_last_finite_image() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.png");
    // An absurd learning rate sends the pixels to ~1e38 after one step, so the loss overflows
    // (unclamped: clamped pixels stay in 0..255 and the loss finite).
    let o = stylize(&[
        "run",
        &repo(CONTENT),
        &repo(STYLE),
        "-o",
        out.to_str().unwrap(),
        "--size",
        "32",
        "--iters",
        "5",
        "--optimizer",
        "adam",
        "--lr",
        "1e38",
        "--no-clamp",
        "--quiet",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let msg = stderr(&o);
    assert!(msg.contains("NaN or infinite at step 2") && msg.contains(out.to_str().unwrap()), "{msg}");
    // The kept image is the content (the last point with a finite loss), not saturated noise.
    let kept = load_rgb(&out).unwrap();
    let content = image::resize_longest(&load_rgb(Path::new(&repo(CONTENT))).unwrap(), 32);
    let diff = kept.data().iter().zip(content.data()).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(diff <= 1.0, "kept image differs from the content by {diff}");
}

#[test]
fn ctrl_c_stops_and_writes_the_current_image() {
    let dir = tempfile::tempdir().unwrap();
    let (out, log) = (dir.path().join("out.png"), dir.path().join("log.csv"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_stylize"))
        .args([
            "run",
            &repo(CONTENT),
            &repo(STYLE),
            "-o",
            out.to_str().unwrap(),
            "--size",
            "48",
            "--iters",
            "100000",
            "--min-change",
            "0",
            "--log",
            log.to_str().unwrap(),
            "--quiet",
        ])
        .spawn()
        .unwrap();
    wait_until(|| has_grown(&log));
    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "exit code after Ctrl-C");
    assert_eq!(image::size(&load_rgb(&out).unwrap()), (48, 36));
}

/// Ctrl-C in `apply` over a folder finishes the picture being painted, then stops: exit 130,
/// the pictures written are whole, no temporary file is left, and it says how far it got.
#[test]
fn ctrl_c_stops_apply_between_pictures() {
    let dir = tempfile::tempdir().unwrap();
    let (photos, out) = (dir.path().join("photos"), dir.path().join("out"));
    std::fs::create_dir(&photos).unwrap();
    let photo = image::resize_longest(&load_rgb(Path::new(&repo(CONTENT))).unwrap(), 64);
    for i in 0..300 {
        image::save(&photo, &photos.join(format!("p{i:04}.png"))).unwrap();
    }
    let child = Command::new(env!("CARGO_BIN_EXE_stylize"))
        .args(["apply", "starry_night", photos.to_str().unwrap(), "-o", out.to_str().unwrap(), "-q"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(|| std::fs::read_dir(&out).map(|d| d.count() >= 3).unwrap_or(false));
    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "exit code after Ctrl-C: {}", stderr(&o));
    let written: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(written.len() >= 3 && written.len() < 300, "{} written", written.len());
    for path in &written {
        assert_eq!(image::size(&load_rgb(path).unwrap()), (64, 48), "{}", path.display());
    }
    let err = stderr(&o);
    assert!(err.contains(&format!("interrupted: {} of 300 pictures done", written.len())), "{err}");
}

/// A training run whose photos vanish mid-run (a network drive gone, a folder tidied) stops with
/// the error and its steps saved in the checkpoint, which `--resume` continues once they are back.
#[test]
fn a_failing_training_run_saves_its_steps() {
    let dir = tempfile::tempdir().unwrap();
    let (photos, model, log) =
        (dir.path().join("photos"), dir.path().join("m.safetensors"), dir.path().join("log.csv"));
    std::fs::create_dir(&photos).unwrap();
    let photo = image::resize_longest(&load_rgb(Path::new(&repo(CONTENT))).unwrap(), 48);
    image::save(&photo, &photos.join("p.png")).unwrap();
    let args = |steps: usize, extra: &[&str]| {
        let mut a: Vec<String> =
            ["train", &repo(STYLE), "--photos", photos.to_str().unwrap(), "-o", model.to_str().unwrap()]
                .map(String::from)
                .to_vec();
        let fixed = ["--size", "32", "--batch", "1", "--width", "4", "--lr-decay", "0", "--checkpoint-every", "3"];
        a.extend(fixed.iter().chain(extra).map(|s| s.to_string()));
        a.extend(["--steps".into(), steps.to_string(), "--log".into(), log.to_str().unwrap().into(), "-q".into()]);
        a
    };
    let child = Command::new(env!("CARGO_BIN_EXE_stylize"))
        .args(args(100_000, &[]))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(|| has_grown(&log));
    std::fs::rename(photos.join("p.png"), dir.path().join("away.png")).unwrap();
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("training stopped after step") && err.contains("--resume") && err.contains("no such file"),
        "{err}"
    );
    let checkpoint = nn::model_file::ModelFile::read(&dir.path().join("m.safetensors.ckpt")).unwrap();
    let saved: usize = checkpoint.meta_parsed("train.step").unwrap();
    assert!(saved > 0 && err.contains(&format!("after step {saved},")), "{err}");

    // The photo back, the run continues from the checkpoint, one step more.
    std::fs::rename(dir.path().join("away.png"), photos.join("p.png")).unwrap();
    let resumed: Vec<String> = args(saved + 1, &["--resume"]);
    let o = stylize(&resumed.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", stderr(&o));
    let model = nn::model_file::ModelFile::read(&model).unwrap();
    assert_eq!(model.meta_parsed::<usize>("train.step").unwrap(), saved + 1);
}

/// A folder on a read-only file system, and one this user may not write to, are refused before
/// the weights are even loaded, naming the output once. Root ignores permissions, so the first
/// case mounts a read-only tmpfs in a private mount namespace and the second runs stylize as
/// `nobody` (both need root, as CI has; elsewhere the test says it skipped them).
#[cfg(target_os = "linux")]
#[test]
fn an_unwritable_output_folder_is_refused_before_any_work() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let (ro_fs, ro_dir) = (dir.path().join("ro_fs"), dir.path().join("ro_dir"));
    std::fs::create_dir(&ro_fs).unwrap();
    std::fs::create_dir(&ro_dir).unwrap();
    std::fs::set_permissions(&ro_dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let bin = env!("CARGO_BIN_EXE_stylize");
    let run =
        |out: &Path| format!("{bin} run {} {} -o {} --size 32 --iters 1", repo(CONTENT), repo(STYLE), out.display());
    let cases = [
        ("read-only file system", ro_fs.join("x.png"), {
            let script = format!("mount -t tmpfs -o ro none {} && exec {}", ro_fs.display(), run(&ro_fs.join("x.png")));
            Command::new("unshare").args(["--mount", "sh", "-c", &script]).output()
        }),
        ("not writable by this user", ro_dir.join("x.png"), {
            let id = ["--reuid=65534", "--regid=65534", "--clear-groups"];
            Command::new("setpriv").args(id).args(["sh", "-c", &run(&ro_dir.join("x.png"))]).output()
        }),
    ];
    for (what, out, o) in cases {
        let o = match o {
            Ok(o) if stderr(&o).contains("x.png") => o,
            other => {
                eprintln!("skipped the {what} case: could not set it up ({other:?})");
                continue;
            }
        };
        let msg = stderr(&o);
        assert!(!o.status.success(), "{what}: {msg}");
        let reason = if what.starts_with("read-only") { "Read-only file system" } else { "Permission denied" };
        assert!(msg.contains("cannot create files in") && msg.contains(reason), "{what}: {msg}");
        assert_eq!(msg.matches("x.png").count(), 1, "{what}: the path is named once: {msg}");
        assert!(!msg.contains("loaded VGG19"), "{what}: refused before any work: {msg}");
        assert!(!out.exists());
    }
}

/// The output folder disappears during the run: the finished picture is kept in the temporary
/// folder, the run says where, and exits non-zero.
#[test]
fn a_finished_picture_survives_its_folder_being_removed() {
    let (out_dir, log_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let out = out_dir.path().join("result.png");
    let log = log_dir.path().join("log.jsonl");
    let child = Command::new(env!("CARGO_BIN_EXE_stylize"))
        .args(["run", &repo(CONTENT), &repo(STYLE), "-o", out.to_str().unwrap(), "--size", "32", "--iters", "300"])
        .args(["--min-change", "0"])
        .args(["--log", log.to_str().unwrap(), "--quiet"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(|| has_grown(&log));
    std::fs::remove_dir_all(out_dir.path()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let msg = stderr(&o);
    let rescued = msg.split("saved to ").nth(1).and_then(|r| r.split(" instead").next()).expect(&msg);
    assert_eq!(msg.matches("result.png").count(), 1, "the target is named once: {msg}");
    assert_eq!(image::size(&load_rgb(Path::new(rescued)).unwrap()), (32, 24));
    std::fs::remove_file(rescued).unwrap();
}

#[test]
fn help_explains_the_main_command() {
    let o = stylize(&["run", "--help"]);
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for flag in ["--size", "--style-blend", "--preserve-colors", "--scales", "--optimizer", "--init", "--log"] {
        assert!(help.contains(flag), "run --help lacks {flag}");
    }
    assert!(
        help.contains("ICC colour profile") && help.contains("converted to sRGB"),
        "run --help says profiles are honoured"
    );
}

/// `train` then `apply` through the binary: a model, a checkpoint, a log and a preview are
/// written; `--resume` continues from the checkpoint; apply repaints a file and a folder slice.
#[test]
fn train_then_apply_as_a_user_would() {
    let dir = tempfile::tempdir().unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir(&photos).unwrap();
    for (i, name) in
        ["animal_cat_chelsea.jpg", "landscape_machu_picchu.jpg", "object_colorful_cups.jpg"].iter().enumerate()
    {
        let img = image::resize_longest(&load_rgb(&common::repo(&format!("data/photos/{name}"))).unwrap(), 48);
        image::save(&img, &photos.join(format!("p{i}.png"))).unwrap();
    }
    let model = dir.path().join("m.safetensors");
    let log = dir.path().join("log.csv");
    let style = repo(STYLE);
    let train = |extra: &[&str]| {
        let mut args = vec!["train", &style, "--photos", photos.to_str().unwrap(), "-o", model.to_str().unwrap()];
        args.extend([
            "--size",
            "32",
            "--batch",
            "1",
            "--width",
            "4",
            "--checkpoint-every",
            "2",
            "--preview-every",
            "2",
        ]);
        args.extend(["--log", log.to_str().unwrap(), "--quiet"]);
        args.extend(extra);
        stylize(&args)
    };
    // The rate kept constant: a run resumed with more steps must have had, at every step it
    // took, the rate the longer run gives it (by default the rate falls over the second half).
    let o = train(&["--steps", "2", "--lr-decay", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in ["m.safetensors", "m.safetensors.ckpt", "m.safetensors.preview.png", "log.csv"] {
        assert!(dir.path().join(f).is_file(), "{f} was not written");
    }
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().next(), Some("step,content,style,tv,total,seconds"));
    // A row logged after the last checkpoint, as if the run had died at step 3: the resumed
    // run drops it, does step 3 again, and continues the same log.
    std::fs::write(&log, std::fs::read_to_string(&log).unwrap() + "3,0,0,0,0,0\n").unwrap();
    let o = train(&["--steps", "4", "--lr-decay", "0", "--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = std::fs::read_to_string(&log).unwrap();
    let steps: Vec<&str> = rows.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(steps, ["1", "2", "3", "4"], "one log for the whole run:\n{rows}");
    assert!(!rows.contains("3,0,0,0,0,0"), "the row past the checkpoint is dropped:\n{rows}");

    // Training further from that model: the new model names where it started, and a network of
    // another width is refused, naming the flag to change.
    let tuned = dir.path().join("tuned.safetensors");
    let train_from = |init: &Path, out: &Path, extra: &[&str]| {
        let (photos, out, init) = (photos.to_str().unwrap(), out.to_str().unwrap(), init.to_str().unwrap());
        let args = ["--size", "32", "--batch", "1", "--steps", "2", "--init", init, "-q"];
        stylize(&[&["train", &style, "--photos", photos, "-o", out][..], &args, extra].concat())
    };
    let further = |extra: &[&str]| train_from(&model, &tuned, extra);
    let o = further(&["--width", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let made = nn::model_file::ModelFile::read(&tuned).unwrap();
    assert_eq!((made.meta("init.file").unwrap(), made.meta("init.steps").unwrap()), ("m.safetensors", "4"));
    assert_eq!(made.meta("init.sha256").unwrap().len(), 64);
    assert_eq!(made.meta("train.lr_decay").unwrap(), "1", "without --lr-decay the rate falls over the last half");
    assert_eq!(made.meta("arch").unwrap(), "johnson2016-sb", "the output is bounded by default");
    let o = further(&["--width", "4", "--output-range", "clamp"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(nn::model_file::ModelFile::read(&tuned).unwrap().meta("arch").unwrap(), "johnson2016-s");
    let o = further(&["--width", "4", "--output-range", "tanh"]);
    assert!(!o.status.success() && stderr(&o).contains("use soft or clamp"), "{}", stderr(&o));
    let o = further(&["--width", "8"]);
    assert!(!o.status.success() && stderr(&o).contains("--width"), "{}", stderr(&o));
    // A second start adds up: 2 steps from the tuned network, which had 2 after the first's 4.
    let again = dir.path().join("again.safetensors");
    let o = train_from(&tuned, &again, &["--width", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let again = nn::model_file::ModelFile::read(&again).unwrap();
    assert_eq!((again.meta("init.file").unwrap(), again.meta("init.steps").unwrap()), ("tuned.safetensors", "6"));

    let out = dir.path().join("styled.png");
    let o =
        stylize(&["apply", model.to_str().unwrap(), &repo(CONTENT), "-o", out.to_str().unwrap(), "--size", "40", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(image::size(&load_rgb(&out).unwrap()), (40, 30));
    let folder = dir.path().join("out");
    let o = stylize(&[
        "apply",
        model.to_str().unwrap(),
        photos.to_str().unwrap(),
        "-o",
        folder.to_str().unwrap(),
        "--shard",
        "1/2",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let written: Vec<_> = std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(written, ["p1.png"], "slice 1 of 2 of p0, p1, p2");
    let o = stylize(&["apply", &repo(STYLE), &repo(CONTENT), "-o", out.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("a picture, not a model"), "{}", stderr(&o));
    let o = stylize(&["apply", log.to_str().unwrap(), &repo(CONTENT), "-o", out.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("not a model file"), "{}", stderr(&o));
}

/// The shipped models, by name, as the README's third command uses them.
#[test]
fn shipped_models_are_listed_and_used_by_name() {
    let o = stylize(&["apply", "--list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list = String::from_utf8_lossy(&o.stdout);
    for (name, style) in [("great_wave", "style_great_wave.jpg"), ("starry_night", "style_starry_night.jpg")] {
        assert!(list.lines().any(|l| l.starts_with(name) && l.contains(style)), "{name} with {style} in:\n{list}");
        // The shipped models are a second stage: 1,600 steps after the first stage's 4,000.
        assert!(list.lines().any(|l| l.starts_with(name) && l.contains("1600 steps after 4000")), "{list}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("styled.png");
    let o = stylize(&["apply", "starry_night", &repo(CONTENT), "-o", out.to_str().unwrap(), "--size", "64", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(image::size(&load_rgb(&out).unwrap()), (64, 48));
}

/// Pictures `apply` cannot paint are refused with the reason, each named once, and nothing is
/// written for them: a size whose memory this machine lacks (it used to abort on the allocation),
/// and a JPEG cut short (which used to come out with a grey band).
#[test]
fn apply_refuses_absurd_sizes_and_cut_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("huge.png");
    let o = stylize(&["apply", "starry_night", &repo(CONTENT), "-o", out.to_str().unwrap(), "--size", "60000"]);
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains("of memory") && err.contains("lower --size"), "{err}");
    assert!(!err.contains("panicked") && !err.contains("pictures failed") && !out.exists(), "{err}");

    let cut = dir.path().join("cut.jpg");
    let bytes = std::fs::read(repo(CONTENT)).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let folder = dir.path().join("out");
    let o = stylize(&[
        "apply",
        "starry_night",
        cut.to_str().unwrap(),
        &repo(CONTENT),
        "-o",
        folder.to_str().unwrap(),
        "--size",
        "32",
        "-q",
    ]);
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains("end-of-image") && err.contains("1 of 2 pictures failed"), "{err}");
    assert_eq!(err.matches("cut.jpg").count(), 1, "the file named once: {err}");
    let written: Vec<_> = std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(written.len(), 1, "only the whole photo: {written:?}");
}

/// A reader that stops early (`stylize eval ... | head -1`) ends the output quietly: exit 0, no
/// panic, where `println!` used to panic on the broken pipe.
#[test]
fn a_closed_stdout_is_not_a_crash() {
    let (content, style) = (golden("a", "content.png"), golden("a", "style.png"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_stylize"))
        .args(["eval", "--content", &content, "--style", &style])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // closed long before eval has its losses to print
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}
