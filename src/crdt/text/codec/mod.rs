//! Binary encodings of [`Text`]: the full state (snapshot) and delta updates.
//!
//! **Snapshot** (`Kind::Text`, ending in a CRC-32 of everything after the header): a
//! small plain part (sites, version, Lamport time, lengths), then two sections, each
//! deflated on its own: the characters of every run that carries them as one UTF-8
//! string, and the structure — runs in document order, so loading rebuilds the
//! sequence directly with no integration work, then the delete log. Loading checks
//! the checksum and the text and leaves the structure packed until it is first needed
//! ([`Text::validate`]): reading a document right after loading it inflates only its
//! text. (Snapshots from before this split hold one deflated body and are checked
//! whole at load; they still decode.) Per run, a flags byte
//! says whether it is deleted, whether its origins are simply its neighbours in the
//! document (the common case, which then costs nothing), and whether its characters are
//! left out ([`Text::encode`] leaves out every deleted run's, like Yjs's garbage
//! collection; [`Text::encode_with_history`] keeps them, for `text_at` / `restore`).
//! Without history the characters stored are exactly the visible text, so loading
//! reads the text without assembling it. Snapshots from before the flag existed decode
//! unchanged (they carry every run's characters); older decoders reject the flag.
//!
//! **Update** (`Kind::TextUpdate`): the operations a version lacks, in Lamport order
//! (every operation after what it depends on), inserts with their content, or with only
//! their length for deleted characters whose text the sender does not hold.
//!
//! Versions use [`crate::clock::VersionVector`]'s encoding. Site ids go in a table
//! once; everything else is varints. Decoding validates every
//! field and never panics.
//!
//! Files: `snapshot.rs` (encoding and loading snapshots), `structure.rs` (the runs and
//! the delete log inside a snapshot), `sections.rs` (the separately deflated
//! sections), `update.rs` (delta updates and merge), `deletes.rs` (delete runs, shared
//! by snapshots and updates), `sites.rs` (the site table and ids), `cursor.rs` (the
//! varint readers), `crc.rs` (the snapshot checksum); this file: the limits and checks
//! they share.

mod crc;
mod cursor;
mod deletes;
mod sections;
mod sites;
mod snapshot;
mod structure;
mod update;

use crate::error::{Error, Result};
use cursor::Src;

#[cfg(test)]
pub(crate) use crc::crc32_for_tests;
pub(crate) use structure::PackedStructure;

/// Packing of a snapshot's payload and of each section: stored as is, or deflated.
const STORED: u8 = 0;
const DEFLATED: u8 = 1;
/// Largest sequence number or Lamport time a decoder accepts (2^53: exact as a JS
/// number, and far from overflow however long a document is edited afterwards).
const MAX_SEQ: u64 = 1 << 53;

#[inline]
fn check_seq(v: u64, what: &str) -> Result<u64> {
    if v > MAX_SEQ {
        return Err(bad(&format!("{what} {v} is out of range")));
    }
    Ok(v)
}

fn bad(reason: &str) -> Error {
    Error::Decode {
        reason: reason.to_owned(),
        offset: 0,
    }
}

#[inline]
fn read_len(r: &mut impl Src) -> Result<u32> {
    match r.uvar()? {
        0 => Err(bad("empty run")),
        n if n > u64::from(u32::MAX) => Err(bad("run too long")),
        n => Ok(n as u32),
    }
}

fn offset_from(base: u64, delta: i64) -> Result<u64> {
    base.checked_add_signed(delta)
        .ok_or_else(|| bad("lamport time out of range"))
}

/// The signed difference `a - b` that varints store (`ivar`).
fn zig(a: u64, b: u64) -> i64 {
    a.wrapping_sub(b) as i64
}

/// `base + delta`, refusing what leaves the range of sequence numbers.
fn unzig(base: u64, delta: i64) -> Result<u64> {
    base.checked_add_signed(delta)
        .ok_or_else(|| bad("sequence number out of range"))
}
