//! Reading varints: from a [`Reader`] (updates) or, on the hot path of loading a
//! snapshot's columns, from a [`Cur`].

use super::bad;
use crate::codec::Reader;
use crate::error::{Error, Result};

/// Where the snapshot decoder reads varints from: [`Reader`] for updates, [`Cur`] for
/// the snapshot's columns (its hot loops).
pub(super) trait Src {
    fn u8(&mut self) -> Result<u8>;
    fn uvar(&mut self) -> Result<u64>;
    fn ivar(&mut self) -> Result<i64> {
        let u = self.uvar()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
}

impl Src for Reader<'_> {
    fn u8(&mut self) -> Result<u8> {
        Reader::u8(self)
    }
    fn uvar(&mut self) -> Result<u64> {
        Reader::uvar(self)
    }
}

/// A minimal reader over one column: one-byte varints (nearly all of them) take the
/// inlined fast path.
pub(super) struct Cur<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
}

#[cold]
fn truncated() -> Error {
    bad("truncated column")
}

impl<'a> Cur<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Cur { buf, pos: 0 }
    }

    fn uvar_long(&mut self, first: u8) -> Result<u64> {
        let mut v = u64::from(first & 0x7f);
        for shift in (7..64).step_by(7) {
            let b = Src::u8(self)?;
            let part = u64::from(b & 0x7f);
            if shift == 63 && part > 1 {
                return Err(bad("varint overflows 64 bits"));
            }
            v |= part << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint longer than 10 bytes"))
    }

    pub(super) fn end(&self) -> Result<()> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(bad("trailing bytes in a column"))
        }
    }
}

impl Src for Cur<'_> {
    #[inline(always)]
    fn u8(&mut self) -> Result<u8> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(truncated()),
        }
    }

    #[inline(always)]
    fn uvar(&mut self) -> Result<u64> {
        let b = self.u8()?;
        if b < 0x80 {
            Ok(u64::from(b))
        } else {
            self.uvar_long(b)
        }
    }

    #[inline(always)]
    fn ivar(&mut self) -> Result<i64> {
        let u = self.uvar()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
}
