//! The versioned binary format shared by every CRDT and clock encoding.
//!
//! Every encoded document starts with a 4-byte header:
//!
//! | bytes | meaning |
//! |---|---|
//! | 0–1 | magic `b"ES"` |
//! | 2   | format version ([`FORMAT_VERSION`]) |
//! | 3   | what follows ([`Kind`]): a full state or a delta update, of which type |
//!
//! followed by the type's payload built from LEB128 varints (unsigned), zigzag
//! varints (signed), and length-prefixed byte strings.
//!
//! Decoding is *checked*: truncated, corrupted or hostile input returns
//! [`crate::Error::Decode`] with a reason and the byte offset, never a panic, and a
//! length field can never make the decoder allocate more than the input could hold
//! (collections are pre-sized by `min(declared, remaining bytes)`).
//!
//! ```
//! use edgesync::codec::{Reader, Writer, Kind};
//! let mut w = Writer::new(Kind::GCounter);
//! w.uvar(300);
//! w.bytes(b"hi");
//! let bytes = w.finish();
//! let mut r = Reader::new(&bytes, Kind::GCounter).unwrap();
//! assert_eq!(r.uvar().unwrap(), 300);
//! assert_eq!(r.bytes().unwrap(), b"hi");
//! r.end().unwrap();
//! assert_eq!(Reader::new(&bytes[..3], Kind::GCounter).unwrap_err().code(), "DECODE_ERROR");
//! ```

use crate::error::{Error, Result};

/// Bumped when an encoding changes incompatibly. Decoders accept only versions they know.
pub const FORMAT_VERSION: u8 = 1;
const MAGIC: [u8; 2] = *b"ES";

/// What a byte string holds. The discriminants are part of the format: never reuse one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    VersionVector = 1,
    GCounter = 2,
    PNCounter = 3,
    ORSet = 4,
    LWWRegister = 5,
    LWWMap = 6,
    Text = 7,
    TextUpdate = 8,
    GCounterUpdate = 9,
    PNCounterUpdate = 10,
    ORSetUpdate = 11,
    LWWRegisterUpdate = 12,
    LWWMapUpdate = 13,
    Resolver = 14,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        use Kind::*;
        [
            VersionVector,
            GCounter,
            PNCounter,
            ORSet,
            LWWRegister,
            LWWMap,
            Text,
            TextUpdate,
            GCounterUpdate,
            PNCounterUpdate,
            ORSetUpdate,
            LWWRegisterUpdate,
            LWWMapUpdate,
            Resolver,
        ]
        .into_iter()
        .find(|k| *k as u8 == b)
    }
}

/// Builds an encoding: header first, then payload fields.
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new(kind: Kind) -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&MAGIC);
        buf.push(FORMAT_VERSION);
        buf.push(kind as u8);
        Writer { buf }
    }

    /// A writer with no header, for a part (a column) embedded in another encoding.
    pub fn body() -> Self {
        Writer { buf: Vec::new() }
    }

    /// An unsigned LEB128 varint: 7 bits a byte, small numbers in one byte.
    pub fn uvar(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// A signed varint (zigzag: small magnitudes of either sign stay short).
    pub fn ivar(&mut self, v: i64) {
        self.uvar(((v << 1) ^ (v >> 63)) as u64);
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Length-prefixed bytes.
    pub fn bytes(&mut self, b: &[u8]) {
        self.uvar(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// Raw bytes with no length (the caller's format knows the size).
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.len() <= 4
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads an encoding, checking every step.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Checks the header: magic, a known format version, and the expected kind.
    pub fn new(buf: &'a [u8], expect: Kind) -> Result<Self> {
        let kind = Self::peek_kind(buf)?;
        if kind != expect {
            return Err(decode(format!("expected {expect:?} data, found {kind:?}"), 3));
        }
        Ok(Reader { buf, pos: 4 })
    }

    /// A reader over a body with no header (a payload that was compressed inside a
    /// checked encoding, for example).
    pub fn body(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// The offset of the next byte to read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    /// The kind of an encoding, after checking its header.
    pub fn peek_kind(buf: &[u8]) -> Result<Kind> {
        if buf.len() < 4 {
            return Err(decode("truncated header".into(), buf.len()));
        }
        if buf[..2] != MAGIC {
            return Err(decode("not edgesync data (bad magic bytes)".into(), 0));
        }
        if buf[2] != FORMAT_VERSION {
            return Err(decode(
                format!(
                    "format version {} is not supported (this build reads {FORMAT_VERSION})",
                    buf[2]
                ),
                2,
            ));
        }
        Kind::from_byte(buf[3]).ok_or_else(|| decode(format!("unknown data kind {}", buf[3]), 3))
    }

    fn err(&self, what: &str) -> Error {
        decode(what.to_owned(), self.pos)
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn u8(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.pos).ok_or_else(|| self.err("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    pub fn uvar(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            let part = u64::from(b & 0x7f);
            if shift == 63 && part > 1 {
                return Err(self.err("varint overflows 64 bits"));
            }
            v |= part << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint longer than 10 bytes"))
    }

    pub fn ivar(&mut self) -> Result<i64> {
        let u = self.uvar()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A varint that must fit `usize` and be at most `max`.
    pub fn len(&mut self, max: usize) -> Result<usize> {
        let v = self.uvar()?;
        usize::try_from(v)
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| self.err(&format!("length {v} exceeds the {max} possible here")))
    }

    /// A count of items each taking at least `min_item_bytes`: bounded by what is left,
    /// so `Vec::with_capacity(count)` cannot be made to allocate gigabytes.
    pub fn count(&mut self, min_item_bytes: usize) -> Result<usize> {
        let max = self.remaining() / min_item_bytes.max(1);
        self.len(max)
    }

    pub fn f64(&mut self) -> Result<f64> {
        let b = self.raw(8)?;
        Ok(f64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    pub fn raw(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(&format!("truncated: {n} bytes declared, {} left", self.remaining())));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len(self.remaining())?;
        self.raw(n)
    }

    pub fn str(&mut self) -> Result<&'a str> {
        let at = self.pos;
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| decode("invalid UTF-8 in a string".into(), at))
    }

    /// Fails unless every byte was consumed (trailing garbage is corruption).
    pub fn end(&self) -> Result<()> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(self.err(&format!("{} unexpected trailing bytes", self.remaining())))
        }
    }
}

fn decode(reason: String, offset: usize) -> Error {
    Error::Decode { reason, offset }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_round_trip(u in any::<u64>(), i in any::<i64>()) {
            let mut w = Writer::new(Kind::GCounter);
            w.uvar(u);
            w.ivar(i);
            let b = w.finish();
            let mut r = Reader::new(&b, Kind::GCounter).unwrap();
            prop_assert_eq!(r.uvar().unwrap(), u);
            prop_assert_eq!(r.ivar().unwrap(), i);
            r.end().unwrap();
        }

        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(mut r) = Reader::new(&b, Kind::GCounter) {
                let _ = r.uvar();
                let _ = r.bytes();
                let _ = r.count(1);
                let _ = r.str();
            }
        }
    }

    #[test]
    fn rejects_bad_headers() {
        let code = |b: &[u8]| Reader::new(b, Kind::Text).err().map(|e| e.code());
        assert_eq!(code(b""), Some("DECODE_ERROR"));
        assert_eq!(code(b"XX\x01\x07"), Some("DECODE_ERROR"));
        assert_eq!(code(b"ES\x09\x07"), Some("DECODE_ERROR"));
        assert_eq!(code(b"ES\x01\xff"), Some("DECODE_ERROR"));
        assert_eq!(code(b"ES\x01\x02"), Some("DECODE_ERROR"), "wrong kind");
        assert_eq!(code(b"ES\x01\x07"), None);
    }

    #[test]
    fn hostile_lengths_are_bounded() {
        let mut w = Writer::new(Kind::ORSet);
        w.uvar(u64::MAX / 2); // "4 billion items follow"
        let b = w.finish();
        let mut r = Reader::new(&b, Kind::ORSet).unwrap();
        assert!(r.count(1).is_err());
        let mut r = Reader::new(&b, Kind::ORSet).unwrap();
        assert!(r.bytes().is_err());
        // An 11-byte varint.
        let b = [
            b'E', b'S', 1, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(Reader::new(&b, Kind::ORSet).unwrap().uvar().is_err());
    }
}
