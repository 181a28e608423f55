//! Snapshots: encoding a whole text, and loading one (split layout: the text now,
//! the structure on first need; the earlier single-body layout: checked whole).

use super::crc::crc32;
use super::sections::{inflate_checked, write_section, Section, MAX_SNAPSHOT};
use super::sites::Sites;
use super::structure::{parse_structure, write_structure, PackedStructure, Written};
use super::{bad, check_seq, DEFLATED, STORED};
use crate::codec::{Kind, Reader, Writer};
use crate::crdt::text::seq::Run;
use crate::crdt::text::{Loaded, Structure, Text, Version};
use crate::error::Result;

const SPLIT: u8 = 2;
/// Flag bit of a split snapshot: the stored text includes deleted characters.
const HAS_HISTORY: u8 = 1;

/// The fields both snapshot layouts start with: the site table, the version and the
/// highest Lamport time.
fn read_common(r: &mut Reader) -> Result<(Sites, Version, u64)> {
    let sites = Sites::read(r)?;
    let version = Version::read(r)?;
    for (_, n) in version.iter() {
        check_seq(n, "version counter")?;
    }
    let lamport = check_seq(r.uvar()?, "lamport time")?;
    Ok((sites, version, lamport))
}

impl Text {
    /// The state as a compact snapshot that loads without replaying history: every
    /// run's id, origins and Lamport time, every deletion, and the visible text — but
    /// not the text of deleted characters (like Yjs's garbage collection). A replica
    /// loaded from it edits, merges and syncs with any peer exactly as the original
    /// would; only [`Text::text_at`] / [`Text::restore`] of versions that need deleted
    /// text return an error there. [`Text::encode_with_history`] keeps that text.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_snapshot(false)
    }

    /// [`Text::encode`] keeping the text of deleted characters too (as far as this
    /// replica holds it), so a replica loaded from it can read and restore old versions.
    pub fn encode_with_history(&self) -> Vec<u8> {
        self.encode_snapshot(true)
    }

    fn encode_snapshot(&self, history: bool) -> Vec<u8> {
        if let Some(bytes) = self.unchanged_snapshot(history) {
            return bytes;
        }
        if self.ready().is_err() {
            // An invalid loaded structure: hand back what was loaded, never less.
            return self.unchanged_snapshot(true).unwrap_or_default();
        }
        let b = self.b();
        let sites = Sites::collect(
            b.seq
                .runs()
                .flat_map(|r| {
                    [
                        Some(r.id.agent),
                        r.origin_left.map(|i| i.agent),
                        r.origin_right.map(|i| i.agent),
                    ]
                })
                .flatten()
                .chain(b.deletes.iter().flat_map(|d| [d.id.agent, d.target.agent]))
                .chain(self.version.iter().map(|(s, _)| s)),
        );
        let runs: Vec<&Run> = b.seq.runs().collect();
        let Written {
            structure,
            text,
            visible,
            stored,
        } = write_structure(&runs, &b.chars, &b.deletes, &sites, history);
        let mut w = Writer::new(Kind::Text);
        let header_len = w.len();
        w.u8(SPLIT);
        sites.write(&mut w);
        self.version.write(&mut w);
        w.uvar(self.lamport);
        w.uvar(visible);
        w.uvar(stored);
        w.u8(if stored > visible { HAS_HISTORY } else { 0 });
        write_section(&mut w, text.as_bytes());
        write_section(&mut w, &structure);
        let mut out = w.finish();
        let crc = crc32(&out[header_len..]);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Loads a snapshot made by [`Text::encode`]; further edits are made as `site`,
    /// which must not be a site that already edited this text elsewhere.
    ///
    /// This checks the checksum, the header and the text; the run structure is checked
    /// on first need (see [`Text::validate`]).
    pub fn decode(bytes: &[u8], site: u64) -> Result<Text> {
        Reader::peek_kind(bytes)?;
        if bytes.len() < 9 {
            return Err(bad("truncated snapshot"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        // Fuzzing builds skip the check so the fuzzer can reach the decoder itself.
        if cfg!(not(fuzzing)) && crc32(&body[4..]).to_le_bytes() != crc {
            return Err(bad("checksum mismatch: the snapshot is corrupted"));
        }
        let mut outer = Reader::new(body, Kind::Text)?;
        match outer.u8()? {
            STORED => Self::decode_whole(outer.rest(), site),
            DEFLATED => {
                let size = outer.len(MAX_SNAPSHOT)?;
                let inflated = inflate_checked(outer.rest(), size)?;
                Self::decode_whole(&inflated, site)
            }
            SPLIT => Self::decode_split(bytes, outer, site),
            m => Err(bad(&format!("unknown snapshot compression {m}"))),
        }
    }

    /// A split snapshot: the plain part and the text now, the structure on first need.
    fn decode_split(bytes: &[u8], mut r: Reader, site: u64) -> Result<Text> {
        let (sites, version, lamport) = read_common(&mut r)?;
        let visible = r.uvar()?;
        let stored = r.uvar()?;
        let flags = r.u8()?;
        if flags & !HAS_HISTORY != 0 {
            return Err(bad("bad snapshot flags"));
        }
        let history = flags & HAS_HISTORY != 0;
        if history != (stored > visible) || stored < visible {
            return Err(bad("text lengths do not match the flags"));
        }
        let text = Section::read(&mut r)?.unpack()?.into_owned();
        let text = String::from_utf8(text).map_err(|_| bad("the text is not UTF-8"))?;
        if text.chars().count() as u64 != stored {
            return Err(bad("character count does not match the header"));
        }
        let section = Section::read(&mut r)?;
        r.end()?;
        let packed = PackedStructure {
            sites,
            range: section.range,
            deflated: section.deflated,
            size: section.size,
            stored,
        };
        let snapshot = bytes.to_vec();
        let (stored, text) = if history {
            (Some(text), None)
        } else {
            (None, Some(text))
        };
        let loaded = Loaded {
            structure: Some(Structure::Packed(packed)),
            stored,
            visible: visible as usize,
            text,
            snapshot: Some(snapshot),
            history,
            broken: None,
        };
        Ok(Text::from_loaded(site, loaded, version, lamport))
    }

    /// A snapshot from before the split: one body, checked whole now.
    fn decode_whole(body: &[u8], site: u64) -> Result<Text> {
        let mut r = Reader::body(body);
        let (sites, version, lamport) = read_common(&mut r)?;
        let parsed = parse_structure(body, &mut r, &sites, &version)?;
        let text = r.str()?;
        r.end()?;
        if text.chars().count() as u64 != parsed.stored {
            return Err(bad("character count does not match the runs"));
        }
        let (stored, text) = if parsed.only_visible {
            (None, Some(text.to_owned()))
        } else {
            (Some(text.to_owned()), None)
        };
        let loaded = Loaded {
            structure: Some(Structure::Parsed {
                runs: parsed.runs,
                deletes: parsed.deletes,
            }),
            stored,
            visible: parsed.visible as usize,
            history: !parsed.only_visible,
            text,
            snapshot: None,
            broken: None,
        };
        Ok(Text::from_loaded(site, loaded, version, lamport))
    }
}
