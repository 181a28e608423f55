//! Sections of a split snapshot, each deflated on its own when that makes it
//! smaller, and the checked inflater.

use super::{bad, DEFLATED, STORED};
use crate::codec::{Reader, Writer};
use crate::error::Result;

/// Largest inflated snapshot accepted (a hostile length cannot make us allocate more).
pub(super) const MAX_SNAPSHOT: usize = 1 << 30;

/// Writes one packed section: a packing byte, the plain size, then the bytes —
/// deflated when that makes them smaller.
pub(super) fn write_section(w: &mut Writer, plain: &[u8]) {
    let packed = miniz_oxide::deflate::compress_to_vec(plain, 6);
    w.u8(if packed.len() + 8 < plain.len() {
        DEFLATED
    } else {
        STORED
    });
    w.uvar(plain.len() as u64);
    w.bytes(if packed.len() + 8 < plain.len() { &packed } else { plain });
}

/// A packed section as read: its packing, plain size, bytes, and where those bytes
/// are in the reader's buffer.
pub(super) struct Section<'a> {
    pub(super) deflated: bool,
    pub(super) size: usize,
    pub(super) bytes: &'a [u8],
    pub(super) range: std::ops::Range<usize>,
}

impl<'a> Section<'a> {
    /// Reads a section's header and steps over its bytes, without unpacking them.
    pub(super) fn read(r: &mut Reader<'a>) -> Result<Self> {
        let deflated = match r.u8()? {
            STORED => false,
            DEFLATED => true,
            m => return Err(bad(&format!("unknown section packing {m}"))),
        };
        let size = r.len(MAX_SNAPSHOT)?;
        let len = r.len(r.remaining())?;
        let start = r.position();
        let bytes = r.raw(len)?;
        if !deflated && size != len {
            return Err(bad("stored section size does not match"));
        }
        // Deflate cannot expand more than ~1032:1; a larger claim is corrupt.
        if size > len.saturating_mul(1032) + 64 {
            return Err(bad("inflated size impossible for the compressed data"));
        }
        Ok(Section {
            deflated,
            size,
            bytes,
            range: start..start + len,
        })
    }

    pub(super) fn unpack(&self) -> Result<std::borrow::Cow<'a, [u8]>> {
        Ok(if self.deflated {
            std::borrow::Cow::Owned(inflate_checked(self.bytes, self.size)?)
        } else {
            std::borrow::Cow::Borrowed(self.bytes)
        })
    }
}

/// Inflates raw deflate data that must come to exactly `size` bytes, straight into a
/// buffer of that size (no growing and copying). `size` is bounded by the caller.
pub(super) fn inflate_checked(packed: &[u8], size: usize) -> Result<Vec<u8>> {
    use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
    use miniz_oxide::inflate::TINFLStatus;
    if size > packed.len().saturating_mul(1032) + 64 {
        return Err(bad("inflated size impossible for the compressed data"));
    }
    let mut out = vec![0u8; size];
    let mut state = Box::<DecompressorOxide>::default();
    let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let (status, read, written) = decompress(&mut state, packed, &mut out, 0, flags);
    match status {
        TINFLStatus::Done if written == size && read == packed.len() => Ok(out),
        TINFLStatus::Done => Err(bad("inflated size does not match")),
        TINFLStatus::HasMoreOutput => Err(bad("inflated size does not match")),
        e => Err(bad(&format!("bad compressed data: {e:?}"))),
    }
}
