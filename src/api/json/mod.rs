//! JSON encoding of API objects: the same output as `serde_json::to_vec` of the k8s-openapi
//! types, byte for byte (the unit tests compare them), written faster. Two parts:
//!
//! * this module's serializer, for every value: string escaping eight bytes at a time;
//! * `objects`: Pods and Events serialized with their timestamps formatted directly
//!   ([`PodJson`], [`EventJson`]) instead of through jiff's `strtime`.
//!
//! [`ObjectJson`] puts them together; [`Object::to_json`](super::Object::to_json) and the
//! stored bytes of every write use it.
//!
//! Why: on the durable create path the encoding was the API server's largest cost, and three
//! quarters of it was serde_json's string escaping, which looks every byte up in a table
//! (`format_escaped_str`). Here a string is checked eight bytes at a time for the three
//! things JSON must escape (`"`, `\` and control characters below 0x20) and, as almost every
//! string needs no escape, copied whole. Integers use `itoa`, as serde_json does; floats (rare
//! in API objects) are handed to serde_json itself. serde_json's `Serializer` cannot be given
//! another escaper (its formatter only sees the runs between escapes), hence a serializer of
//! its own; the output format is serde_json's `CompactFormatter`.
//!
use serde::ser::{self, Impossible, Serialize};

use super::Object;

mod objects;
pub use objects::{EventJson, PodJson};

/// An [`Object`] as JSON, with `apiVersion` and `kind`: Pods and Events through
/// [`PodJson`] / [`EventJson`], the other kinds through k8s-openapi's `Serialize`.
pub struct ObjectJson<'a>(pub &'a Object);

impl Serialize for ObjectJson<'_> {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Object::Pod(p) => PodJson(p).serialize(s),
            Object::Event(e) => EventJson(e).serialize(s),
            other => other.serialize(s),
        }
    }
}

type Error = serde_json::Error;

/// Encode `value` as compact JSON, exactly as `serde_json::to_vec` would.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    write(&mut out, value)?;
    Ok(out)
}

/// Append `value` to `out` as compact JSON (a reused buffer grows once, not per object).
pub fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    value.serialize(&mut Serializer { out })
}

/// The stored bytes of `value`: encoded into this thread's reused buffer, then copied once
/// into an exactly sized shared slice (what the store, the WAL and the checkpoint share).
pub fn to_shared_bytes<T: Serialize + ?Sized>(value: &T) -> Result<std::sync::Arc<[u8]>, Error> {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        write(buf, value)?;
        let bytes = std::sync::Arc::from(buf.as_slice());
        if buf.capacity() > 1 << 20 {
            *buf = Vec::new(); // one huge object: do not keep its buffer
        }
        Ok(bytes)
    })
}

struct Serializer<'a> {
    out: &'a mut Vec<u8>,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whether any of the eight bytes of `w` is `"`, `\` or below 0x20 (the classic
/// "has a zero byte" / "has a byte less than n" word tricks; exact, no false negatives, and a
/// false positive only sends that word down the byte-by-byte path).
#[inline]
fn needs_escape(w: u64) -> bool {
    escape_bits(w) != 0
}

/// [`needs_escape`] as a mask, non-zero if a byte needs escaping: several words' masks are
/// or-ed and tested once.
#[inline]
fn escape_bits(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
    below_space | has_zero(w ^ (ONES * b'"' as u64)) | has_zero(w ^ (ONES * b'\\' as u64))
}

/// Whether a byte must be escaped in a JSON string.
#[inline]
fn must_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Whether any byte of `bytes` must be escaped: eight bytes at a time, and the tail as one
/// more word — the last eight bytes again (overlapping is harmless), or for a string shorter
/// than a word (most keys and many values) its bytes loaded in overlapping halves or quarters
/// and padded with spaces, which need no escape. A byte-by-byte tail was a sixteenth of the
/// API server's instructions per create.
#[inline]
fn any_escape(bytes: &[u8]) -> bool {
    let word = |w: &[u8]| u64::from_le_bytes(w.try_into().expect("8 bytes"));
    let mut words = bytes.chunks_exact(8);
    for w in words.by_ref() {
        if needs_escape(word(w)) {
            return true;
        }
    }
    let n = bytes.len();
    let spaces = u64::from_le_bytes([b' '; 8]);
    let tail = match n {
        _ if words.remainder().is_empty() => return false,
        8.. => word(&bytes[n - 8..]),
        // Two overlapping loads cover every byte; the rest of the word stays spaces.
        4..=7 => {
            let half = |w: &[u8]| u64::from(u32::from_le_bytes(w.try_into().expect("4 bytes")));
            half(&bytes[..4]) | half(&bytes[n - 4..]) << 32
        }
        2..=3 => {
            let quarter = |w: &[u8]| u64::from(u16::from_le_bytes(w.try_into().expect("2 bytes")));
            quarter(&bytes[..2]) | quarter(&bytes[n - 2..]) << 16 | spaces << 32
        }
        _ => u64::from(bytes[0]) | spaces << 8,
    };
    needs_escape(tail)
}

/// Append `s` as a JSON string literal, escaped as serde_json escapes it. Almost every
/// string in an object needs no escape: [`append_unescaped`] checks it and copies it whole
/// with its quotes; the others are escaped byte by byte.
#[inline]
fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if !append_unescaped(out, b"\"", bytes, b"\"") {
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        write_escaped(out, bytes);
        out.push(b'"');
    }
}

/// If `body` needs no escape, append `head`, `body` and `tail` and return true; otherwise
/// append nothing and return false.
///
/// Strings are most of an object's bytes and most are short (field names, names, images,
/// policies), so the per-string overheads dominate. A body of up to 32 bytes is checked as
/// one to four overlapping words, each length with its own straight-line check ([`any_escape`]'s
/// word loop and tail cost ~30 instructions a string); then everything is copied with one
/// capacity check and one length update ([`append`]). Longer bodies use [`any_escape`].
#[inline(always)]
fn append_unescaped(out: &mut Vec<u8>, head: &[u8], body: &[u8], tail: &[u8]) -> bool {
    let word = |w: &[u8]| u64::from_le_bytes(w.try_into().expect("8 bytes"));
    let half = |w: &[u8]| u64::from(u32::from_le_bytes(w.try_into().expect("4 bytes")));
    let spaces = u64::from_le_bytes([b' '; 8]);
    let n = body.len();
    let escape = match n {
        0 => false,
        1..=3 => {
            let b = u64::from(body[0]) | u64::from(body[n / 2]) << 8 | u64::from(body[n - 1]) << 16;
            needs_escape(b | spaces << 24)
        }
        4..=7 => needs_escape(half(&body[..4]) | half(&body[n - 4..]) << 32),
        8..=16 => escape_bits(word(&body[..8])) | escape_bits(word(&body[n - 8..])) != 0,
        17..=32 => {
            escape_bits(word(&body[..8]))
                | escape_bits(word(&body[8..16]))
                | escape_bits(word(&body[n - 16..n - 8]))
                | escape_bits(word(&body[n - 8..]))
                != 0
        }
        _ => any_escape(body),
    };
    if escape {
        return false;
    }
    append(out, head, body, tail);
    true
}

/// Append `head`, `body` and `tail` with one capacity check and one length update (a
/// `reserve` and three `push`/`extend_from_slice` calls checked the capacity four times),
/// copying short pieces without a call to `memcpy` ([`copy_short`]).
#[inline(always)]
fn append(out: &mut Vec<u8>, head: &[u8], body: &[u8], tail: &[u8]) {
    let n = head.len() + body.len() + tail.len();
    out.reserve(n);
    let len = out.len();
    let spare = &mut out.spare_capacity_mut()[..n];
    let (h, rest) = spare.split_at_mut(head.len());
    copy_short(h, head); // a field's head is `"` or `,"`: not a constant length
    let (b, t) = rest.split_at_mut(body.len());
    copy_short(b, body);
    t.write_copy_of_slice(tail);
    // SAFETY: the `n` bytes after `len` are within the capacity (`reserve(n)`) and were all
    // initialized just above (`head`, `body` and `tail` fill the `n`-byte slice exactly).
    unsafe { out.set_len(len + n) };
}

/// `dst.write_copy_of_slice(src)` (`dst.len() == src.len()`), with strings of up to 32 bytes
/// copied as two overlapping loads and stores of 16, 8, 4 or 1 bytes instead of through a
/// call to `memcpy` (which costs more than the copy at these sizes).
#[inline(always)]
fn copy_short(dst: &mut [std::mem::MaybeUninit<u8>], src: &[u8]) {
    let n = src.len();
    match n {
        0 => {}
        1..=3 => {
            dst[0].write(src[0]);
            dst[n / 2].write(src[n / 2]);
            dst[n - 1].write(src[n - 1]);
        }
        4..=7 => {
            dst[..4].write_copy_of_slice(&src[..4]);
            dst[n - 4..].write_copy_of_slice(&src[n - 4..]);
        }
        8..=16 => {
            dst[..8].write_copy_of_slice(&src[..8]);
            dst[n - 8..].write_copy_of_slice(&src[n - 8..]);
        }
        17..=32 => {
            dst[..16].write_copy_of_slice(&src[..16]);
            dst[n - 16..].write_copy_of_slice(&src[n - 16..]);
        }
        _ => {
            dst.write_copy_of_slice(src);
        }
    }
}

/// The contents of a string that holds something to escape, byte by byte.
fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0; // first byte not yet copied
    for (i, &b) in bytes.iter().enumerate() {
        if !must_escape(b) {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]),
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

fn write_int<I: itoa::Integer>(out: &mut Vec<u8>, v: I) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

impl<'a, 'b> ser::Serializer for &'b mut Serializer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a, 'b>;
    type SerializeTuple = Compound<'a, 'b>;
    type SerializeTupleStruct = Compound<'a, 'b>;
    type SerializeTupleVariant = Compound<'a, 'b>;
    type SerializeMap = Compound<'a, 'b>;
    type SerializeStruct = Compound<'a, 'b>;
    type SerializeStructVariant = Compound<'a, 'b>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        write_int(self.out, v);
        Ok(())
    }
    /// Floats are rare in API objects: serde_json writes them (its float formatter, `null`
    /// for non-finite values), so they are the same by construction.
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        serde_json::to_writer(&mut *self.out, &v)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        serde_json::to_writer(&mut *self.out, &v)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        write_str(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(self.out, v);
        Ok(())
    }
    /// An array of numbers, as serde_json writes bytes.
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.out.push(b'[');
        for (i, b) in v.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            write_int(self.out, *b);
        }
        self.out.push(b']');
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        write_str(self.out, variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.push(b':');
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a, 'b>, Error> {
        self.out.push(b'[');
        Ok(Compound::new(self, b"]"))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a, 'b>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'a, 'b>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'b>, Error> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.extend_from_slice(b":[");
        Ok(Compound::new(self, b"]}"))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a, 'b>, Error> {
        self.out.push(b'{');
        Ok(Compound::new(self, b"}"))
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Compound<'a, 'b>, Error> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'b>, Error> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.extend_from_slice(b":{");
        Ok(Compound::new(self, b"}}"))
    }
}

/// A sequence, map or struct being written: a comma before every element but the first,
/// `end` after the last.
struct Compound<'a, 'b> {
    ser: &'b mut Serializer<'a>,
    first: bool,
    end: &'static [u8],
}

impl<'a, 'b> Compound<'a, 'b> {
    fn new(ser: &'b mut Serializer<'a>, end: &'static [u8]) -> Self {
        Compound {
            ser,
            first: true,
            end,
        }
    }

    fn comma(&mut self) {
        if !self.first {
            self.ser.out.push(b',');
        }
        self.first = false;
    }

    #[inline(always)]
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.comma();
        value.serialize(&mut *self.ser)
    }

    /// A struct field: `,"key":` (or `"key":` first) appended as one piece, then the value.
    /// The keys are the types' static field names, which never need escaping in practice;
    /// they are checked anyway, so that any `Serialize` type comes out as serde_json's.
    #[inline(always)]
    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), Error> {
        let head: &[u8] = if self.first { b"\"" } else { b",\"" };
        self.first = false;
        let out = &mut *self.ser.out;
        if !append_unescaped(out, head, key.as_bytes(), b"\":") {
            out.extend_from_slice(&head[..head.len() - 1]);
            write_str(out, key);
            out.push(b':');
        }
        value.serialize(&mut *self.ser)
    }

    fn finish(self) -> Result<(), Error> {
        self.ser.out.extend_from_slice(self.end);
        Ok(())
    }
}

/// The sequence-like compounds (`[a,b]`) differ only in their trait's name and in what the
/// element method is called.
macro_rules! sequence_compound {
    ($($trait:ident :: $method:ident),* $(,)?) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;
            #[inline(always)]
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.element(value)
            }
            fn end(self) -> Result<(), Error> {
                self.finish()
            }
        }
    )*};
}

sequence_compound!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    #[inline(always)]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.comma();
        key.serialize(MapKey { out: self.ser.out })?;
        self.ser.out.push(b':');
        Ok(())
    }
    #[inline(always)]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.ser)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    /// Inlined into each type's `serialize`: a call per field (its register saves and
    /// restores) was ~1.4 K instructions per pod.
    #[inline(always)]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

/// A map key: strings as they are; integers, bools, chars and finite floats quoted
/// (serde_json's `MapKeySerializer`); anything else is an error, as there.
struct MapKey<'a> {
    out: &'a mut Vec<u8>,
}

fn key_must_be_a_string() -> Error {
    ser::Error::custom("key must be a string")
}

impl MapKey<'_> {
    fn quoted(self, s: &[u8]) -> Result<(), Error> {
        self.out.push(b'"');
        self.out.extend_from_slice(s);
        self.out.push(b'"');
        Ok(())
    }
    fn int<I: itoa::Integer>(self, v: I) -> Result<(), Error> {
        let mut buf = itoa::Buffer::new();
        let s = buf.format(v).as_bytes().to_vec();
        self.quoted(&s)
    }
}

impl ser::Serializer for MapKey<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(self.out, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        write_str(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.quoted(if v { b"true" } else { b"false" })
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.int(v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.int(v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.int(v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.int(v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.int(v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.int(v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.int(v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.int(v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.int(v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.int(v)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        if !v.is_finite() {
            return Err(ser::Error::custom(
                "float key must be finite (got NaN or +/-inf)",
            ));
        }
        let s = serde_json::to_vec(&v)?;
        self.quoted(&s)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        if !v.is_finite() {
            return Err(ser::Error::custom(
                "float key must be finite (got NaN or +/-inf)",
            ));
        }
        let s = serde_json::to_vec(&v)?;
        self.quoted(&s)
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_none(self) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        Err(key_must_be_a_string())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(key_must_be_a_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Object;
    use std::collections::BTreeMap;

    fn same<T: Serialize + ?Sized>(value: &T) {
        let expected = serde_json::to_vec(value).unwrap();
        let actual = to_vec(value).unwrap();
        assert_eq!(*to_shared_bytes(value).unwrap(), *expected);
        assert_eq!(
            String::from_utf8_lossy(&actual),
            String::from_utf8_lossy(&expected)
        );
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut samples: Vec<String> = vec![
            String::new(),
            "plain".into(),
            "exactly8".into(),
            "sixteen bytes ok".into(),
            "quote \" and backslash \\ inside a long enough string".into(),
            "\"\\\u{8}\t\n\u{c}\r".into(),
            "control \u{1} \u{1f} \u{7f} del is not escaped".into(),
            "unicode: héllo wörld — ✓ 日本語 🙂 and more text after it".into(),
            "/registry/pods/default/web-7d9fbb5c4b-x8k2p".into(),
        ];
        // Every byte value below 0x80 at every position of strings of 1 to 40 bytes: shorter
        // than a word (padded tail), whole words, and words plus an overlapping tail; copied
        // in overlapping pieces (up to 32 bytes) and by `memcpy` (longer).
        for len in 1..=40 {
            for b in 0u8..0x80 {
                for pos in 0..len {
                    let mut s: Vec<u8> =
                        b"abcdefghijklmnopqrstuvwxyz0123456789ABCD"[..len].to_vec();
                    s[pos] = b;
                    samples.push(String::from_utf8(s).unwrap());
                }
            }
        }
        for s in &samples {
            same(s);
        }
        same(&samples);
    }

    /// Struct field names of every short length (the copies without `memcpy`), one that
    /// needs escaping, an empty one, and struct variants, first and later fields.
    #[test]
    fn struct_field_names_match() {
        #[derive(serde::Serialize)]
        #[allow(non_snake_case)]
        struct Fields {
            a: u8,
            ab: &'static str,
            abc: Option<u8>,
            abcd: bool,
            abcdefg: (),
            abcdefgh: Vec<u8>,
            abcdefghi: &'static str,
            abcdefghijklmnop: u8,
            abcdefghijklmnopq: u8,
            terminationGracePeriodSeconds: u8,
            abcdefghijklmnopqrstuvwxyz012345: u8,
            abcdefghijklmnopqrstuvwxyz0123456: u8,
            #[serde(rename = "a\"quoted\\key\n")]
            quoted: u8,
            #[serde(rename = "")]
            empty: u8,
            terminationMessagePolicy: &'static str,
        }
        #[derive(serde::Serialize)]
        struct Empty {}
        #[derive(serde::Serialize)]
        enum E {
            S {
                x: u8,
                #[serde(rename = "y\"")]
                y: u8,
            },
            T(u8, u8),
            N(u8),
            U,
        }
        same(&Fields {
            a: 1,
            ab: "",
            abc: None,
            abcd: true,
            abcdefg: (),
            abcdefgh: vec![1, 2],
            abcdefghi: "x\"y",
            abcdefghijklmnop: 2,
            abcdefghijklmnopq: 3,
            terminationGracePeriodSeconds: 30,
            abcdefghijklmnopqrstuvwxyz012345: 32,
            abcdefghijklmnopqrstuvwxyz0123456: 33,
            quoted: 4,
            empty: 5,
            terminationMessagePolicy: "File",
        });
        same(&Empty {});
        same(&[E::S { x: 1, y: 2 }, E::T(3, 4), E::N(5), E::U]);
    }

    #[test]
    fn numbers_options_maps_and_values_match() {
        same(&(
            i64::MIN,
            u64::MAX,
            -1i32,
            0u8,
            1.5f64,
            -0.0f64,
            1e300f64,
            f64::NAN,
        ));
        same(&(
            f32::INFINITY,
            0.1f32,
            i128::MIN,
            u128::MAX,
            'x',
            '"',
            true,
            (),
        ));
        same(&Some(None::<u8>));
        let mut m = BTreeMap::new();
        m.insert(3u32, "three");
        m.insert(10u32, "ten");
        same(&m);
        let mut b = BTreeMap::new();
        b.insert(true, 1);
        same(&b);
        same(&serde_json::json!({
            "a": [1, -2, 3.25, null, true, "s\"q"],
            "nested": {"k\n": {"x": []}, "e": {}},
            "big": 12345678901234567890u64,
        }));
        same(b"bytes".as_slice());
    }

    #[test]
    fn every_kind_of_object_matches() {
        use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, PodSpec};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("web-1".into()),
                namespace: Some("default".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                annotations: Some([("note".to_string(), "line\nbreak \"q\"".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    image: Some("nginx:1.27".into()),
                    env: Some(vec![EnvVar {
                        name: "A".into(),
                        value: Some("tab\there".into()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut object = Object::Pod(pod.into());
        crate::api::defaults::apply(&mut object);
        crate::apiserver::strategy::prepare_for_create(
            &mut object,
            crate::apiserver::strategy::now(),
        );
        same(&object);
        for kind in crate::api::Kind::ALL {
            let empty = Object::from_json(kind, b"{}").unwrap();
            same(&empty);
            // ObjectJson (Pods and Events with their own timestamp encoding) through this
            // serializer: still serde_json's bytes of the plain object.
            assert_eq!(
                to_vec(&ObjectJson(&empty)).unwrap(),
                serde_json::to_vec(&empty).unwrap()
            );
        }
        assert_eq!(object.to_json(), serde_json::to_vec(&object).unwrap());
        let at = crate::apiserver::strategy::now();
        let event = Object::from(k8s_openapi::api::core::v1::Event {
            metadata: ObjectMeta {
                name: Some("web-1.17f".into()),
                namespace: Some("default".into()),
                creation_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at)),
                ..Default::default()
            },
            event_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                at,
            )),
            first_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at)),
            last_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at)),
            message: Some("Successfully assigned default/web-1 to node-1".into()),
            count: Some(2),
            ..Default::default()
        });
        assert_eq!(event.to_json(), serde_json::to_vec(&event).unwrap());
        assert_eq!(
            *to_shared_bytes(&ObjectJson(&object)).unwrap(),
            *serde_json::to_vec(&object).unwrap()
        );
    }
}
