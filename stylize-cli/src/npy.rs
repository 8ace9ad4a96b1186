//! NumPy `.npy` files (format 1.0), for `eval --grad-out`: magic `\x93NUMPY`, version, a
//! little-endian header length, a Python dict literal `{'descr': '<f4', 'fortran_order': False,
//! 'shape': (..), }` padded with spaces and a newline so the data starts on a 64-byte boundary,
//! then the raw C-order data (<https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>).
//! Only the writer ships; the tests' reader is in `tests/common/npy.rs`.

use std::io::{BufWriter, Write};
use std::path::Path;

use crate::output::{self, FillError, OutputError};

const NPY_MAGIC: &[u8] = b"\x93NUMPY";

/// Writes `data` as a little-endian f32 ('<f4') C-order array of `shape`, atomically.
pub fn save_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), OutputError> {
    let numel: usize = shape.iter().product();
    assert_eq!(numel, data.len(), "npy::save_f32: shape {shape:?} does not match {} values", data.len());
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}");
    let unpadded = NPY_MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let header_len = u16::try_from(header.len()).expect("an npy header for a rank <= 8 shape fits in u16");
    output::write_atomic(path, |file| {
        let mut out = BufWriter::new(file);
        let mut write = || -> std::io::Result<()> {
            out.write_all(NPY_MAGIC)?;
            out.write_all(&[1, 0])?;
            out.write_all(&header_len.to_le_bytes())?;
            out.write_all(header.as_bytes())?;
            for v in data {
                out.write_all(&v.to_le_bytes())?;
            }
            out.flush()
        };
        write().map_err(FillError::Io)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_numpy_1_0_and_data_64_byte_aligned() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.npy");
        save_f32(&p, &[1, 2, 3], &[0.5, -1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let header_len = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3), }"), "{header}");
        assert!(header.ends_with('\n'));
        assert_eq!((10 + header_len) % 64, 0, "data starts 64-byte aligned");
        assert_eq!(&bytes[10 + header_len..][..8], [0.5f32.to_le_bytes(), (-1.0f32).to_le_bytes()].concat());
        assert_eq!(bytes.len(), 10 + header_len + 6 * 4);
        save_f32(&p, &[3], &[1.0, 2.0, 3.0]).unwrap();
        let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
        assert!(text.contains("'shape': (3,), }"), "a 1-tuple has its comma: {text}");
    }
}
