//! Minimal protobuf wire-format encoding for the few TensorBoard messages
//! trace-bench writes.
//!
//! Field numbers below were checked against the descriptors shipped with the
//! `tensorboard` Python package (2.21.0): `tensorboard/compat/proto/event.proto`,
//! `summary.proto`, `tensor.proto`, `tensor_shape.proto` and `types.proto`.
//!
//! Encoding follows proto3 rules, the same as the official serializer:
//! implicit-presence scalars with their default value (0, empty string) are
//! left out; message fields and oneof members are always written. Fields are
//! written in field-number order, so output is byte-for-byte what Python's
//! `SerializeToString()` gives for the same message.

/// Wire type for varint-encoded values (`int32`, `int64`, `bool`, enums).
pub const WIRE_VARINT: u32 = 0;
/// Wire type for 8-byte little-endian values (`double`, `fixed64`).
pub const WIRE_FIXED64: u32 = 1;
/// Wire type for length-delimited values (`string`, `bytes`, messages).
pub const WIRE_LEN: u32 = 2;
/// Wire type for 4-byte little-endian values (`float`, `fixed32`).
pub const WIRE_FIXED32: u32 = 5;

/// `tensorboard.Event` field numbers (event.proto).
pub mod event {
    /// `double wall_time = 1;`
    pub const WALL_TIME: u32 = 1;
    /// `int64 step = 2;`
    pub const STEP: u32 = 2;
    /// `string file_version = 3;` (member of oneof `what`)
    pub const FILE_VERSION: u32 = 3;
    /// `Summary summary = 5;` (member of oneof `what`)
    pub const SUMMARY: u32 = 5;
}

/// `tensorboard.Summary` field numbers (summary.proto).
pub mod summary {
    /// `repeated Value value = 1;`
    pub const VALUE: u32 = 1;
}

/// `tensorboard.Summary.Value` field numbers (summary.proto).
pub mod value {
    /// `string tag = 1;`
    pub const TAG: u32 = 1;
    /// `float simple_value = 2;` (member of oneof `value`)
    pub const SIMPLE_VALUE: u32 = 2;
    /// `TensorProto tensor = 8;` (member of oneof `value`)
    pub const TENSOR: u32 = 8;
    /// `SummaryMetadata metadata = 9;`
    pub const METADATA: u32 = 9;
}

/// `tensorboard.SummaryMetadata` and its nested `PluginData` (summary.proto).
pub mod metadata {
    /// `SummaryMetadata.plugin_data = 1` (`PluginData`).
    pub const PLUGIN_DATA: u32 = 1;
    /// `PluginData.plugin_name = 1` (`string`).
    pub const PLUGIN_NAME: u32 = 1;
    /// `PluginData.content = 2` (`bytes`). The text plugin's content is an
    /// empty `TextPluginData{version: 0}`, which serializes to nothing.
    pub const CONTENT: u32 = 2;
}

/// `tensorboard.TensorProto` field numbers (tensor.proto).
pub mod tensor {
    /// `DataType dtype = 1;`
    pub const DTYPE: u32 = 1;
    /// `TensorShapeProto tensor_shape = 2;` (empty message = scalar)
    pub const TENSOR_SHAPE: u32 = 2;
    /// `repeated bytes string_val = 8;`
    pub const STRING_VAL: u32 = 8;
    /// `DataType.DT_STRING` (types.proto).
    pub const DT_STRING: u64 = 7;
}

/// Value of `Event.file_version` in the first record of every event file.
pub const FILE_VERSION: &str = "brain.Event:2";

/// Name of the TensorBoard text plugin.
pub const TEXT_PLUGIN: &str = "text";

/// Appends `v` as a base-128 varint (1 to 10 bytes).
pub fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Appends a field key (`field_number << 3 | wire_type`).
pub fn put_key(buf: &mut Vec<u8>, field: u32, wire_type: u32) {
    put_varint(buf, (u64::from(field) << 3) | u64::from(wire_type));
}

/// Appends a varint field (`uint64`, enums, `bool`).
pub fn put_uint64_field(buf: &mut Vec<u8>, field: u32, v: u64) {
    put_key(buf, field, WIRE_VARINT);
    put_varint(buf, v);
}

/// Appends an `int64` field. Negative values take 10 bytes (two's
/// complement, as protobuf specifies for `int64`).
pub fn put_int64_field(buf: &mut Vec<u8>, field: u32, v: i64) {
    put_uint64_field(buf, field, v as u64);
}

/// Appends a `fixed64` field (8 bytes, little endian).
pub fn put_fixed64_field(buf: &mut Vec<u8>, field: u32, v: u64) {
    put_key(buf, field, WIRE_FIXED64);
    buf.extend_from_slice(&v.to_le_bytes());
}

/// Appends a `double` field.
pub fn put_double_field(buf: &mut Vec<u8>, field: u32, v: f64) {
    put_fixed64_field(buf, field, v.to_bits());
}

/// Appends a `fixed32` field (4 bytes, little endian).
pub fn put_fixed32_field(buf: &mut Vec<u8>, field: u32, v: u32) {
    put_key(buf, field, WIRE_FIXED32);
    buf.extend_from_slice(&v.to_le_bytes());
}

/// Appends a `float` field.
pub fn put_float_field(buf: &mut Vec<u8>, field: u32, v: f32) {
    put_fixed32_field(buf, field, v.to_bits());
}

/// Appends a length-delimited field (`bytes`, `string`, or an encoded
/// sub-message).
pub fn put_bytes_field(buf: &mut Vec<u8>, field: u32, data: &[u8]) {
    put_key(buf, field, WIRE_LEN);
    put_varint(buf, data.len() as u64);
    buf.extend_from_slice(data);
}

/// Common `Event` header: `wall_time` and `step`, proto3 defaults omitted.
fn event_header(wall_time: f64, step: i64) -> Vec<u8> {
    let mut buf = Vec::with_capacity(64);
    if wall_time.to_bits() != 0 {
        put_double_field(&mut buf, event::WALL_TIME, wall_time);
    }
    if step != 0 {
        put_int64_field(&mut buf, event::STEP, step);
    }
    buf
}

/// Wraps one encoded `Summary.Value` into an encoded `Event`.
fn summary_event(wall_time: f64, step: i64, value: &[u8]) -> Vec<u8> {
    let mut summary = Vec::with_capacity(value.len() + 4);
    put_bytes_field(&mut summary, summary::VALUE, value);
    let mut buf = event_header(wall_time, step);
    put_bytes_field(&mut buf, event::SUMMARY, &summary);
    buf
}

/// Encodes `Event{wall_time, file_version}` (step 0).
pub fn file_version_event(wall_time: f64, version: &str) -> Vec<u8> {
    let mut buf = event_header(wall_time, 0);
    put_bytes_field(&mut buf, event::FILE_VERSION, version.as_bytes());
    buf
}

/// Encodes an `Event` holding one legacy scalar,
/// `Summary.Value{tag, simple_value}`.
pub fn scalar_event(wall_time: f64, step: i64, tag: &str, value: f32) -> Vec<u8> {
    let mut v = Vec::with_capacity(tag.len() + 8);
    if !tag.is_empty() {
        put_bytes_field(&mut v, value::TAG, tag.as_bytes());
    }
    put_float_field(&mut v, value::SIMPLE_VALUE, value);
    summary_event(wall_time, step, &v)
}

/// Encodes an `Event` holding one text summary, as TF2 `tf.summary.text`
/// writes it: a scalar `DT_STRING` tensor tagged with the `text` plugin.
pub fn text_event(wall_time: f64, step: i64, tag: &str, text: &str) -> Vec<u8> {
    let mut tensor_buf = Vec::with_capacity(text.len() + 16);
    put_uint64_field(&mut tensor_buf, tensor::DTYPE, tensor::DT_STRING);
    put_bytes_field(&mut tensor_buf, tensor::TENSOR_SHAPE, &[]);
    put_bytes_field(&mut tensor_buf, tensor::STRING_VAL, text.as_bytes());

    let mut plugin_data = Vec::with_capacity(8);
    put_bytes_field(
        &mut plugin_data,
        metadata::PLUGIN_NAME,
        TEXT_PLUGIN.as_bytes(),
    );
    let mut meta = Vec::with_capacity(12);
    put_bytes_field(&mut meta, metadata::PLUGIN_DATA, &plugin_data);

    let mut v = Vec::with_capacity(tag.len() + tensor_buf.len() + meta.len() + 12);
    if !tag.is_empty() {
        put_bytes_field(&mut v, value::TAG, tag.as_bytes());
    }
    put_bytes_field(&mut v, value::TENSOR, &tensor_buf);
    put_bytes_field(&mut v, value::METADATA, &meta);
    summary_event(wall_time, step, &v)
}

/// A tiny protobuf decoder for tests: enough to check what we encode.
#[cfg(test)]
pub(crate) mod decode {
    /// One decoded field value.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Field {
        Varint(u64),
        Fixed64(u64),
        Len(Vec<u8>),
        Fixed32(u32),
    }

    pub fn varint(data: &[u8], pos: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = *data.get(*pos)?;
            *pos += 1;
            if shift == 63 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// Decodes a message into `(field_number, value)` pairs, in order.
    pub fn fields(data: &[u8]) -> Option<Vec<(u32, Field)>> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let key = varint(data, &mut pos)?;
            let field = u32::try_from(key >> 3).ok()?;
            let f = match key & 7 {
                0 => Field::Varint(varint(data, &mut pos)?),
                1 => {
                    let b = data.get(pos..pos + 8)?;
                    pos += 8;
                    Field::Fixed64(u64::from_le_bytes(b.try_into().ok()?))
                }
                2 => {
                    let n = usize::try_from(varint(data, &mut pos)?).ok()?;
                    let b = data.get(pos..pos.checked_add(n)?)?;
                    pos += n;
                    Field::Len(b.to_vec())
                }
                5 => {
                    let b = data.get(pos..pos + 4)?;
                    pos += 4;
                    Field::Fixed32(u32::from_le_bytes(b.try_into().ok()?))
                }
                _ => return None,
            };
            out.push((field, f));
        }
        Some(out)
    }

    /// The single length-delimited field `n` of `data` (panics otherwise).
    pub fn only_len(data: &[u8], n: u32) -> Vec<u8> {
        let fs = fields(data).expect("decodes");
        let hits: Vec<_> = fs.into_iter().filter(|(k, _)| *k == n).collect();
        assert_eq!(hits.len(), 1, "field {n} once");
        match &hits[0].1 {
            Field::Len(b) => b.clone(),
            other => panic!("field {n} is not length-delimited: {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::decode::{Field, fields, only_len, varint};
    use super::*;

    fn enc(v: u64) -> Vec<u8> {
        let mut b = Vec::new();
        put_varint(&mut b, v);
        b
    }

    #[test]
    fn varint_edge_cases() {
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(1), [0x01]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(128), [0x80, 0x01]);
        assert_eq!(enc(150), [0x96, 0x01]);
        assert_eq!(enc(300), [0xac, 0x02]);
        assert_eq!(enc(16_383), [0xff, 0x7f]);
        assert_eq!(enc(16_384), [0x80, 0x80, 0x01]);
        assert_eq!(enc(u64::from(u32::MAX)), [0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(
            enc(1 << 63),
            [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]
        );
        assert_eq!(
            enc(u64::MAX),
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        for v in [
            0,
            1,
            127,
            128,
            255,
            256,
            1 << 35,
            (1 << 56) - 1,
            1 << 56,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let b = enc(v);
            let mut pos = 0;
            assert_eq!(varint(&b, &mut pos), Some(v));
            assert_eq!(pos, b.len());
            // Length is ceil(bits / 7), at least 1.
            let bits = 64 - v.leading_zeros() as usize;
            assert_eq!(b.len(), bits.div_ceil(7).max(1));
        }
    }

    #[test]
    fn int64_negative_is_ten_bytes() {
        let mut b = Vec::new();
        put_int64_field(&mut b, 2, -1);
        assert_eq!(
            b,
            [
                0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]
        );
        let mut b = Vec::new();
        put_int64_field(&mut b, 2, i64::MIN);
        assert_eq!(b.len(), 11);
        assert_eq!(fields(&b).unwrap(), [(2, Field::Varint(i64::MIN as u64))]);
        let mut b = Vec::new();
        put_int64_field(&mut b, 2, i64::MAX);
        assert_eq!(b.len(), 10);
    }

    #[test]
    fn keys_and_fixed_fields() {
        let mut b = Vec::new();
        put_double_field(&mut b, 1, 1.5);
        assert_eq!(b[0], 0x09);
        assert_eq!(&b[1..], 1.5f64.to_le_bytes());
        let mut b = Vec::new();
        put_float_field(&mut b, 2, -2.25);
        assert_eq!(b[0], 0x15);
        assert_eq!(&b[1..], (-2.25f32).to_le_bytes());
        let mut b = Vec::new();
        put_bytes_field(&mut b, 3, b"abc");
        assert_eq!(b, [0x1a, 3, b'a', b'b', b'c']);
        // Field numbers >= 16 need a two-byte key.
        let mut b = Vec::new();
        put_key(&mut b, 16, WIRE_VARINT);
        assert_eq!(b, [0x80, 0x01]);
    }

    // The golden byte strings below were produced by the official Python
    // protobuf serializer (tensorboard 2.21.0, protobuf 7.36.2), e.g.
    // `event_pb2.Event(wall_time=1700000000.25,
    //   file_version="brain.Event:2").SerializeToString()`.

    #[test]
    fn golden_file_version_event() {
        assert_eq!(
            file_version_event(1_700_000_000.25, FILE_VERSION),
            b"\x09\x00\x00\x10\x40\xfcT\xd9A\x1a\x0dbrain.Event:2"
        );
    }

    #[test]
    fn golden_scalar_event() {
        // Event(wall_time=1700000000.25, step=7,
        //   summary=Summary(value=[Value(tag="loss", simple_value=0.5)]))
        assert_eq!(
            scalar_event(1_700_000_000.25, 7, "loss", 0.5),
            b"\x09\x00\x00\x10\x40\xfcT\xd9A\x10\x07\x2a\x0d\x0a\x0b\x0a\x04loss\x15\x00\x00\x00\x3f"
        );
    }

    #[test]
    fn golden_text_event() {
        // Event(wall_time=1700000000.25, step=3,
        //   summary=tensorboard.plugins.text.summary_v2.text_pb("note", "hi"))
        assert_eq!(
            text_event(1_700_000_000.25, 3, "note", "hi"),
            b"\x09\x00\x00\x10\x40\xfcT\xd9A\x10\x03\x2a\x1c\x0a\x1a\x0a\x04noteB\x08\x08\x07\x12\x00B\x02hiJ\x08\x0a\x06\x0a\x04text"
        );
    }

    #[test]
    fn golden_text_event_unicode_negative_step() {
        // Event(wall_time=5.0, step=-1, summary=text_pb("t/\u{fc}", "h\u{e9}llo\n"))
        assert_eq!(
            text_event(5.0, -1, "t/\u{fc}", "h\u{e9}llo\n"),
            b"\x09\x00\x00\x00\x00\x00\x00\x14\x40\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x2a\x21\x0a\x1f\x0a\x04t/\xc3\xbcB\x0d\x08\x07\x12\x00B\x07h\xc3\xa9llo\x0aJ\x08\x0a\x06\x0a\x04text"
        );
    }

    #[test]
    fn text_event_structure() {
        let ev = text_event(10.0, -4, "a/b", "héllo\nworld");
        let fs = fields(&ev).unwrap();
        assert_eq!(fs[0], (event::WALL_TIME, Field::Fixed64(10.0f64.to_bits())));
        assert_eq!(fs[1], (event::STEP, Field::Varint(-4i64 as u64)));
        let summary = only_len(&ev, event::SUMMARY);
        let value = only_len(&summary, summary::VALUE);
        assert_eq!(only_len(&value, value::TAG), b"a/b");
        let tensor_buf = only_len(&value, value::TENSOR);
        let tf = fields(&tensor_buf).unwrap();
        assert_eq!(tf[0], (tensor::DTYPE, Field::Varint(7)));
        assert_eq!(tf[1], (tensor::TENSOR_SHAPE, Field::Len(vec![])));
        assert_eq!(
            tf[2],
            (tensor::STRING_VAL, Field::Len("héllo\nworld".into()))
        );
        let meta = only_len(&value, value::METADATA);
        let pd = only_len(&meta, metadata::PLUGIN_DATA);
        assert_eq!(only_len(&pd, metadata::PLUGIN_NAME), b"text");
    }

    #[test]
    fn defaults_are_omitted_but_oneof_members_kept() {
        // step 0 and wall_time 0.0 are proto3 defaults: omitted. simple_value
        // is a oneof member: written even when 0.0. Empty tag omitted.
        let ev = scalar_event(0.0, 0, "", 0.0);
        assert_eq!(ev, b"\x2a\x07\x0a\x05\x15\x00\x00\x00\x00");
    }
}
