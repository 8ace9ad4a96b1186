//! A NumPy `.npy` reader for the tests: the reference's golden arrays and `eval --grad-out`.
//! The project ships only the writer (`stylize::npy`); reading is for checking.

use std::fs;
use std::io::Read;
use std::path::Path;

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Reads a '<f4' array as f32. Fails (clearly) on '<f8', which would lose precision silently.
pub fn load_npy_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>), String> {
    let (shape, descr, bytes) = read_npy(path)?;
    match descr.as_str() {
        "<f4" => Ok((shape, bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())),
        other => Err(npy_error(path, format!("dtype '{other}', expected '<f4' (use load_npy_f64 for '<f8')"))),
    }
}

/// Reads a '<f4' or '<f8' array as f64, e.g. `shared/golden/*/grad_f64.npy` for gradient tests.
pub fn load_npy_f64(path: &Path) -> Result<(Vec<usize>, Vec<f64>), String> {
    let (shape, descr, bytes) = read_npy(path)?;
    let data = match descr.as_str() {
        "<f4" => bytes.chunks_exact(4).map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))).collect(),
        "<f8" => bytes.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("chunks of 8"))).collect(),
        other => return Err(npy_error(path, format!("dtype '{other}', expected '<f4' or '<f8'"))),
    };
    Ok((shape, data))
}

fn npy_error(path: &Path, reason: impl Into<String>) -> String {
    format!("{}: not a usable .npy file: {}", path.display(), reason.into())
}

/// (shape, descr, data bytes) of a C-order .npy file of version 1, 2 or 3.
fn read_npy(path: &Path) -> Result<(Vec<usize>, String, Vec<u8>), String> {
    let mut bytes = Vec::new();
    fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| npy_error(path, e.to_string()))?;
    parse_npy(bytes, path)
}

/// [`read_npy`] on a file's bytes (`path` names it in errors); also the fuzz target's entry.
pub fn parse_npy(mut bytes: Vec<u8>, path: &Path) -> Result<(Vec<usize>, String, Vec<u8>), String> {
    if bytes.len() < 10 || &bytes[..6] != NPY_MAGIC {
        return Err(npy_error(path, "missing the \\x93NUMPY magic"));
    }
    // Version 1 has a u16 header length; 2 and 3 a u32 (3 only changes the header's encoding).
    let (header_start, header_len) = match bytes[6] {
        1 => (10, usize::from(u16::from_le_bytes([bytes[8], bytes[9]]))),
        2 | 3 if bytes.len() >= 12 => (12, u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize),
        v => return Err(npy_error(path, format!("unsupported format version {v}"))),
    };
    let data_start = header_start + header_len;
    let header = bytes
        .get(header_start..data_start)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| npy_error(path, "truncated or non-text header"))?;
    let descr = dict_value(header, "descr")
        .and_then(|v| v.strip_prefix('\'')?.split('\'').next())
        .ok_or_else(|| npy_error(path, format!("no 'descr' in header {header}")))?
        .to_string();
    if dict_value(header, "fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err(npy_error(path, "Fortran-order arrays are not supported; save with np.ascontiguousarray"));
    }
    let shape: Vec<usize> = dict_value(header, "shape")
        .and_then(|v| {
            let inner = v.strip_prefix('(')?.split(')').next()?;
            inner.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().ok()).collect()
        })
        .ok_or_else(|| npy_error(path, format!("bad 'shape' in header {header}")))?;
    let item = match descr.as_str() {
        "<f4" => 4,
        "<f8" => 8,
        _ => 1,
    };
    // A header can claim any shape: the size is checked against the file, without overflow.
    let needed = shape.iter().try_fold(item, |n: usize, &d| n.checked_mul(d));
    let data = bytes.split_off(data_start);
    if needed != Some(data.len()) {
        let needed = needed.map_or("more than usize::MAX".to_string(), |n| n.to_string());
        let reason = format!("shape {shape:?} of {descr} needs {needed} data bytes, the file has {}", data.len());
        return Err(npy_error(path, reason));
    }
    Ok((shape, descr, data))
}

/// The text after `'key':` in a Python dict literal, leading spaces trimmed.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(&format!("'{key}':"))?;
    Some(header[at + key.len() + 3..].trim_start())
}
