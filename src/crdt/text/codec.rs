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

use super::integrate::{Content, Op};
use super::seq::{Id, Run};

use super::{DelRun, Loaded, Structure, Text, Version};
use crate::codec::{Kind, Reader, Writer};
use crate::error::{Error, Result};

const DELETED: u8 = 1;
const OL_NONE: u8 = 0 << 1;
const OL_PREV: u8 = 1 << 1;
const OL_EXPLICIT: u8 = 2 << 1;
const OR_NONE: u8 = 0 << 3;
const OR_NEXT: u8 = 1 << 3;
const OR_EXPLICIT: u8 = 2 << 3;
const LAMPORT_IS_SEQ: u8 = 1 << 5;
const SAME_SITE: u8 = 1 << 6;
/// The run's characters are not in the snapshot (only ever on deleted runs).
const NO_CONTENT: u8 = 1 << 7;

/// Snapshot payload after the header: stored as is, or deflated (both one body, the
/// layout before the split), or split into a plain part and two packed sections.
const STORED: u8 = 0;
const DEFLATED: u8 = 1;
const SPLIT: u8 = 2;
/// Flag bit of a split snapshot: the stored text includes deleted characters.
const HAS_HISTORY: u8 = 1;
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

/// CRC-32 (IEEE) tables for slicing by 8: table 0 is the byte-at-a-time table, table
/// `k` advances a byte's contribution by `k` more bytes.
const CRC_TABLES: [[u32; 256]; 8] = {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
};

/// CRC-32 (IEEE), guarding snapshots against accidental corruption (a flipped bit in
/// storage could otherwise load as a different document). Eight bytes a step: loading
/// checks every byte of the snapshot, so this is on the load path.
fn crc32(bytes: &[u8]) -> u32 {
    let t = &CRC_TABLES;
    let mut c = !0u32;
    let mut blocks = bytes.chunks_exact(8);
    for b in &mut blocks {
        let lo = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) ^ c;
        let hi = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        c = t[7][(lo & 0xff) as usize]
            ^ t[6][((lo >> 8) & 0xff) as usize]
            ^ t[5][((lo >> 16) & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][(hi & 0xff) as usize]
            ^ t[2][((hi >> 8) & 0xff) as usize]
            ^ t[1][((hi >> 16) & 0xff) as usize]
            ^ t[0][(hi >> 24) as usize];
    }
    for &b in blocks.remainder() {
        c = t[0][((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// Where the snapshot decoder reads varints from: [`Reader`] for updates, [`Cur`] for
/// the snapshot's columns (its hot loops).
trait Src {
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
struct Cur<'a> {
    buf: &'a [u8],
    pos: usize,
}

#[cold]
fn truncated() -> Error {
    bad("truncated column")
}

impl<'a> Cur<'a> {
    fn new(buf: &'a [u8]) -> Self {
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

    fn end(&self) -> Result<()> {
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

/// Largest inflated snapshot accepted (a hostile length cannot make us allocate more).
const MAX_SNAPSHOT: usize = 1 << 30;

/// Site ids used by an encoding, each written once.
#[derive(Clone)]
struct Sites(Vec<u64>);

impl Sites {
    fn collect(ids: impl Iterator<Item = u64>) -> Self {
        let mut v: Vec<u64> = ids.collect();
        v.sort_unstable();
        v.dedup();
        Sites(v)
    }
    fn idx(&self, site: u64) -> u64 {
        self.0.binary_search(&site).expect("collected") as u64
    }
    fn write(&self, w: &mut Writer) {
        w.uvar(self.0.len() as u64);
        for s in &self.0 {
            w.uvar(*s);
        }
    }
    fn read(r: &mut Reader) -> Result<Self> {
        let n = r.count(1)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(r.uvar()?);
        }
        Ok(Sites(v))
    }
    fn get(&self, r: &mut impl Src) -> Result<u64> {
        Ok(self.0[self.index(r)?])
    }
    /// A site's index in the table.
    #[inline]
    fn index(&self, r: &mut impl Src) -> Result<usize> {
        let i = r.uvar()?;
        match usize::try_from(i) {
            Ok(i) if i < self.0.len() => Ok(i),
            _ => Err(bad(&format!("site index {i} out of range"))),
        }
    }
    fn id(&self, r: &mut impl Src) -> Result<Id> {
        Ok(Id::new(self.get(r)?, r.uvar()?))
    }
}

fn bad(reason: &str) -> Error {
    Error::Decode {
        reason: reason.to_owned(),
        offset: 0,
    }
}

fn write_id(w: &mut Writer, sites: &Sites, id: Id) {
    w.uvar(sites.idx(id.agent));
    w.uvar(id.seq);
}

/// Deletes are written relative to the previous one: the same sites, the next
/// operation ids and nearby targets cost a flag bit or a one-byte delta.
#[derive(Default)]
struct DelContext {
    prev: Option<DelRun>,
}

const DEL_REVERSED: u8 = 1;
const DEL_LAMPORT_IS_SEQ: u8 = 2;
const DEL_SAME_SITE: u8 = 4;
const DEL_TARGET_SAME_SITE: u8 = 8;

fn zig(a: u64, b: u64) -> i64 {
    a.wrapping_sub(b) as i64
}

fn unzig(base: u64, delta: i64) -> Result<u64> {
    base.checked_add_signed(delta)
        .ok_or_else(|| bad("sequence number out of range"))
}

impl DelContext {
    fn write(&mut self, w: &mut Writer, sites: &Sites, d: &DelRun) {
        let (prev_site, prev_end, prev_target) = self.prev.as_ref().map_or((None, 0, 0), |p| {
            (Some(p.id.agent), p.id.seq + u64::from(p.len), p.target.seq)
        });
        let mut flags = 0;
        if d.reversed {
            flags |= DEL_REVERSED;
        }
        if d.lamport == d.id.seq {
            flags |= DEL_LAMPORT_IS_SEQ;
        }
        if prev_site == Some(d.id.agent) {
            flags |= DEL_SAME_SITE;
        }
        if d.target.agent == d.id.agent {
            flags |= DEL_TARGET_SAME_SITE;
        }
        w.u8(flags);
        if flags & DEL_SAME_SITE == 0 {
            w.uvar(sites.idx(d.id.agent));
        }
        w.ivar(zig(d.id.seq, prev_end));
        w.uvar(u64::from(d.len));
        if flags & DEL_LAMPORT_IS_SEQ == 0 {
            w.ivar(zig(d.lamport, d.id.seq));
        }
        if flags & DEL_TARGET_SAME_SITE == 0 {
            w.uvar(sites.idx(d.target.agent));
        }
        w.ivar(zig(d.target.seq, prev_target));
        self.prev = Some(d.clone());
    }

    fn read(&mut self, r: &mut impl Src, sites: &Sites) -> Result<DelRun> {
        let (prev_site, prev_end, prev_target) = self.prev.as_ref().map_or((None, 0, 0), |p| {
            (Some(p.id.agent), p.id.seq + u64::from(p.len), p.target.seq)
        });
        let flags = r.u8()?;
        if flags & !0b1111 != 0 {
            return Err(bad("bad delete flags"));
        }
        let agent = if flags & DEL_SAME_SITE != 0 {
            prev_site.ok_or_else(|| bad("first delete refers to a previous one"))?
        } else {
            sites.get(r)?
        };
        let id = Id::new(agent, unzig(prev_end, r.ivar()?)?);
        let len = read_len(r)?;
        let lamport = if flags & DEL_LAMPORT_IS_SEQ != 0 {
            id.seq
        } else {
            unzig(id.seq, r.ivar()?)?
        };
        let target_agent = if flags & DEL_TARGET_SAME_SITE != 0 {
            agent
        } else {
            sites.get(r)?
        };
        let target = Id::new(target_agent, unzig(prev_target, r.ivar()?)?);
        let reversed = flags & DEL_REVERSED != 0;
        if reversed && target.seq + 1 < u64::from(len) {
            return Err(bad("reversed delete runs past the first character"));
        }
        check_seq(id.seq.saturating_add(u64::from(len)), "sequence number")?;
        check_seq(lamport.saturating_add(u64::from(len)), "lamport time")?;
        check_seq(target.seq.saturating_add(u64::from(len)), "sequence number")?;
        let d = DelRun {
            id,
            len,
            lamport,
            target,
            reversed,
        };
        self.prev = Some(d.clone());
        Ok(d)
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

/// Decodes and checks the runs (in document order) and the delete log: every field in
/// range, every run and delete within `version`, origins consistent.
fn parse_structure(body: &[u8], r: &mut Reader, sites: &Sites, version: &Version) -> Result<ParsedStructure> {
    let n_runs = r.count(1)?;
    let mut c = RunColumns::read(r)?;
    let mut runs: Vec<Run> = Vec::with_capacity(n_runs.min(c.flags.buf.len()));
    // Characters stored, and whether they are exactly the visible text (no deleted
    // run carries its characters: a snapshot without history).
    let mut stored: u64 = 0;
    let mut only_visible = true;
    let mut visible: u64 = 0;
    // Operations seen per site, by site index: no run may go beyond them.
    let limits: Vec<u64> = sites.0.iter().map(|&s| version.get(s)).collect();
    let mut prev: Option<(usize, u64)> = None; // (site index, end seq) of the previous run
    let mut next_origin_pending = false; // the previous run's right origin is this run
    for _ in 0..n_runs {
        let flags = c.flags.u8()?;
        if (flags >> 1) & 3 == 3 || (flags >> 3) & 3 == 3 {
            return Err(bad("bad run flags"));
        }
        let deleted = flags & DELETED != 0;
        let has_content = flags & NO_CONTENT == 0;
        if !deleted && !has_content {
            return Err(bad("a visible run without its characters"));
        }
        let site = if flags & SAME_SITE != 0 {
            prev.ok_or_else(|| bad("first run refers to a previous one"))?.0
        } else {
            sites.index(&mut c.sites)?
        };
        let agent = sites.0[site];
        let id = Id::new(agent, unzig(prev.map_or(0, |p| p.1), c.seqs.ivar()?)?);
        let len = read_len(&mut c.lens)?;
        let lamport = if flags & LAMPORT_IS_SEQ != 0 {
            id.seq
        } else {
            unzig(id.seq, c.lamports.ivar()?)?
        };
        check_seq(lamport.saturating_add(u64::from(len)), "lamport time")?;
        let origin_left = match flags & (3 << 1) {
            OL_EXPLICIT => Some(sites.id(&mut c.origins)?),
            OL_PREV => Some(
                runs.last()
                    .map(Run::last_id)
                    .ok_or_else(|| bad("first run has a previous origin"))?,
            ),
            _ => None,
        };
        let origin_right = if flags & (3 << 3) == OR_EXPLICIT {
            Some(sites.id(&mut c.origins)?)
        } else {
            None
        };
        if id.seq.checked_add(u64::from(len)).is_none_or(|end| end > limits[site]) {
            return Err(bad("run beyond the version"));
        }
        if next_origin_pending {
            if let Some(p) = runs.last_mut() {
                p.origin_right = Some(id);
            }
        }
        next_origin_pending = flags & (3 << 3) == OR_NEXT;
        if !deleted {
            visible += u64::from(len);
        }
        let content = if has_content {
            stored += u64::from(len);
            if stored > u32::MAX as u64 {
                return Err(bad("text too large"));
            }
            only_visible &= !deleted;
            (stored - u64::from(len)) as u32
        } else {
            0
        };
        prev = Some((site, id.seq + u64::from(len)));
        runs.push(Run {
            id,
            len,
            lamport,
            origin_left,
            origin_right,
            content,
            deleted,
            gone: !has_content,
        });
    }
    if next_origin_pending {
        return Err(bad("last run has a next origin"));
    }
    c.end()?;
    let n_del = r.count(4)?;
    let mut deletes = Vec::with_capacity(n_del);
    let mut ctx = DelContext::default();
    let mut cur = Cur {
        buf: body,
        pos: r.position(),
    };
    // (site, its version): consecutive deletes are mostly one site's.
    let mut limit: Option<(u64, u64)> = None;
    for _ in 0..n_del {
        let d = ctx.read(&mut cur, sites)?;
        let max = match limit {
            Some((site, max)) if site == d.id.agent => max,
            _ => {
                let max = version.get(d.id.agent);
                limit = Some((d.id.agent, max));
                max
            }
        };
        if d.id.seq + u64::from(d.len) > max {
            return Err(bad("delete beyond the version"));
        }
        deletes.push(d);
    }
    r.raw(cur.pos - r.position())?;
    Ok(ParsedStructure {
        runs,
        deletes,
        stored,
        visible,
        only_visible,
    })
}

/// Update operation tags.
const OP_INSERT: u8 = 0;
const OP_DELETE: u8 = 1;
/// An insert of deleted characters without their text (see [`super::integrate::Content`]).
const OP_INSERT_GONE: u8 = 2;

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
        let mut st = Writer::body();
        st.uvar(runs.len() as u64);
        // Column by column: deflate compresses like with like far better than rows.
        let mut cols = RunColumns {
            flags: Writer::body(),
            sites: Writer::body(),
            seqs: Writer::body(),
            lens: Writer::body(),
            lamports: Writer::body(),
            origins: Writer::body(),
        };
        let mut text = String::with_capacity(b.chars.len());
        let (mut visible, mut stored) = (0u64, 0u64);
        for (i, r) in runs.iter().enumerate() {
            let prev = i.checked_sub(1).map(|p| runs[p]);
            let prev_last = prev.map(|p| p.last_id());
            let next_first = runs.get(i + 1).map(|n| n.id);
            let ol = match r.origin_left {
                None => OL_NONE,
                o if o == prev_last => OL_PREV,
                Some(_) => OL_EXPLICIT,
            };
            let or = match r.origin_right {
                None => OR_NONE,
                o if o == next_first => OR_NEXT,
                Some(_) => OR_EXPLICIT,
            };
            let same_site = prev.is_some_and(|p| p.id.agent == r.id.agent);
            let lamport_is_seq = r.lamport == r.id.seq;
            let content = !r.gone && (history || !r.deleted);
            let flags = u8::from(r.deleted)
                | ol
                | or
                | if lamport_is_seq { LAMPORT_IS_SEQ } else { 0 }
                | if same_site { SAME_SITE } else { 0 }
                | if content { 0 } else { NO_CONTENT };
            cols.flags.u8(flags);
            if !same_site {
                cols.sites.uvar(sites.idx(r.id.agent));
            }
            cols.seqs
                .ivar(zig(r.id.seq, prev.map_or(0, |p| p.id.seq + u64::from(p.len))));
            cols.lens.uvar(u64::from(r.len));
            if !lamport_is_seq {
                cols.lamports.ivar(zig(r.lamport, r.id.seq));
            }
            if let (OL_EXPLICIT, Some(o)) = (ol, r.origin_left) {
                write_id(&mut cols.origins, &sites, o);
            }
            if let (OR_EXPLICIT, Some(o)) = (or, r.origin_right) {
                write_id(&mut cols.origins, &sites, o);
            }
            if !r.deleted {
                visible += u64::from(r.len);
            }
            if content {
                stored += u64::from(r.len);
                text.extend(&b.chars[r.content as usize..(r.content + r.len) as usize]);
            }
        }
        cols.write(&mut st);
        st.uvar(b.deletes.len() as u64);
        let mut ctx = DelContext::default();
        for d in &b.deletes {
            ctx.write(&mut st, &sites, d);
        }
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
        write_section(&mut w, &st.finish());
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

    /// The operations `since` lacks (all of them for an empty version), in an order in
    /// which each follows what it depends on.
    ///
    /// A document loaded from a snapshot whose structure is invalid has no operations
    /// to give: the update is empty. [`Text::validate`] reports that case (the wasm
    /// binding, the resolver and the sync engine check it before encoding updates).
    pub fn encode_update_since(&self, since: &Version) -> Vec<u8> {
        self.update_ops(since, &self.version, false)
            .unwrap_or_else(|_| Self::empty_update())
    }

    /// An update with no operations.
    fn empty_update() -> Vec<u8> {
        let mut w = Writer::new(Kind::TextUpdate);
        Sites(Vec::new()).write(&mut w);
        w.uvar(0);
        w.str("");
        w.finish()
    }

    /// The operations that `until` has and `since` lacks: the update that takes a
    /// replica from one version to another (for example to rebuild a past state, or to
    /// send history in slices). Both are versions this text has seen.
    ///
    /// Characters this replica holds without their text (it was loaded from a snapshot
    /// without history, see [`Text::encode`]) are sent as deleted; if some were still
    /// visible at `until`, the update shows a later state there.
    /// [`Text::try_encode_update_between`] returns an error in that case instead.
    /// (Empty for an invalid loaded structure, as [`Text::encode_update_since`].)
    pub fn encode_update_between(&self, since: &Version, until: &Version) -> Vec<u8> {
        self.update_ops(since, until, false)
            .unwrap_or_else(|_| Self::empty_update())
    }

    /// [`Text::encode_update_between`], but an error (`INVALID_OPERATION`) when the
    /// update would need the text of characters visible at `until` that this replica
    /// does not hold.
    pub fn try_encode_update_between(&self, since: &Version, until: &Version) -> Result<Vec<u8>> {
        self.update_ops(since, until, until != &self.version)
    }

    fn update_ops(&self, since: &Version, until: &Version, check_gone: bool) -> Result<Vec<u8>> {
        self.ready()?;
        let from = |id: Id| since.get(id.agent);
        let to = |id: Id| until.get(id.agent);
        // The part of a run of `len` operations starting at `id` inside [from, to).
        let window = |id: Id, len: u32| {
            let start = from(id).max(id.seq);
            let end = to(id).min(id.seq + u64::from(len));
            (start < end).then(|| (start - id.seq, end - start))
        };
        let deleted_at_until = if check_gone { self.deleted_at(until) } else { Vec::new() };
        let mut ops: Vec<Op> = Vec::new();
        for (site, hi) in until.iter() {
            let lo = since.get(site);
            if lo >= hi {
                continue;
            }
            for r in self.b().seq.runs_in(site, lo, hi) {
                if let Some((skip, n)) = window(r.id, r.len) {
                    let content = if r.gone {
                        // Sent as deleted: right only if it is deleted at `until` too.
                        if check_gone
                            && (skip..skip + n)
                                .any(|k| !Self::in_ranges(&deleted_at_until, Id::new(r.id.agent, r.id.seq + k)))
                        {
                            return Err(Self::no_history());
                        }
                        Content::Gone((skip + n) as u32)
                    } else {
                        let first = r.content as usize + skip as usize;
                        Content::Chars(self.b().chars[r.content as usize..first + n as usize].to_vec())
                    };
                    let op = Op::Insert {
                        id: r.id,
                        lamport: r.lamport,
                        origin_left: r.origin_left,
                        origin_right: r.origin_right,
                        content,
                    };
                    ops.push(if skip > 0 { op.skip(skip) } else { op });
                }
            }
            let in_window: Vec<usize> = self.with_delete_index(|idx| {
                let first = idx
                    .range(..=Id::new(site, lo))
                    .next_back()
                    .filter(|(id, _)| id.agent == site)
                    .map(|(_, i)| *i);
                let later = idx.range(Id::new(site, lo + 1)..Id::new(site, hi)).map(|(_, i)| *i);
                first.into_iter().chain(later).collect()
            });
            for i in in_window {
                let d = &self.b().deletes[i];
                if let Some((skip, n)) = window(d.id, d.len) {
                    let op = Op::Delete(DelRun {
                        len: (skip + n) as u32,
                        ..d.clone()
                    });
                    ops.push(if skip > 0 { op.skip(skip) } else { op });
                }
            }
        }
        ops.sort_by_key(|o| (o.lamport(), o.id()));
        let sites = Sites::collect(
            ops.iter()
                .flat_map(|o| match o {
                    Op::Insert {
                        id,
                        origin_left,
                        origin_right,
                        ..
                    } => [
                        Some(id.agent),
                        origin_left.map(|i| i.agent),
                        origin_right.map(|i| i.agent),
                    ],
                    Op::Delete(d) => [Some(d.id.agent), Some(d.target.agent), None],
                })
                .flatten(),
        );
        let mut w = Writer::new(Kind::TextUpdate);
        sites.write(&mut w);
        w.uvar(ops.len() as u64);
        let mut text = String::new();
        let mut del_ctx = DelContext::default();
        for op in &ops {
            match op {
                Op::Insert {
                    id,
                    lamport,
                    origin_left,
                    origin_right,
                    content,
                } => {
                    w.u8(match content {
                        Content::Chars(_) => OP_INSERT,
                        Content::Gone(_) => OP_INSERT_GONE,
                    });
                    write_id(&mut w, &sites, *id);
                    w.uvar(content.len() as u64);
                    w.ivar(*lamport as i64 - id.seq as i64);
                    write_opt_id(&mut w, &sites, *origin_left);
                    write_opt_id(&mut w, &sites, *origin_right);
                    if let Content::Chars(c) = content {
                        text.extend(c);
                    }
                }
                Op::Delete(d) => {
                    w.u8(OP_DELETE);
                    del_ctx.write(&mut w, &sites, d);
                }
            }
        }
        w.str(&text);
        Ok(w.finish())
    }

    /// Applies an update from [`Text::encode_update_since`]. Safe to apply twice, out of
    /// order, or before updates it depends on (those operations wait until they can apply).
    pub fn apply_update(&mut self, bytes: &[u8]) -> Result<()> {
        let mut r = Reader::new(bytes, Kind::TextUpdate)?;
        let sites = Sites::read(&mut r)?;
        let n = r.count(4)?;
        enum Raw {
            Ins {
                id: Id,
                len: u32,
                lamport: u64,
                ol: Option<Id>,
                or: Option<Id>,
                gone: bool,
            },
            Del(DelRun),
        }
        let mut raws = Vec::with_capacity(n);
        let mut total: u64 = 0;
        let mut del_ctx = DelContext::default();
        for _ in 0..n {
            raws.push(match r.u8()? {
                tag @ (OP_INSERT | OP_INSERT_GONE) => {
                    let gone = tag == OP_INSERT_GONE;
                    let id = sites.id(&mut r)?;
                    let len = read_len(&mut r)?;
                    let lamport = offset_from(id.seq, r.ivar()?)?;
                    let ol = read_opt_id(&mut r, &sites)?;
                    let or = read_opt_id(&mut r, &sites)?;
                    check_seq(id.seq.saturating_add(u64::from(len)), "sequence number")?;
                    check_seq(lamport.saturating_add(u64::from(len)), "lamport time")?;
                    if !gone {
                        total += u64::from(len);
                    }
                    Raw::Ins {
                        id,
                        len,
                        lamport,
                        ol,
                        or,
                        gone,
                    }
                }
                OP_DELETE => Raw::Del(del_ctx.read(&mut r, &sites)?),
                t => return Err(bad(&format!("unknown operation tag {t}"))),
            });
        }
        let text = r.str()?;
        r.end()?;
        let mut chars = text.chars();
        if text.chars().count() as u64 != total {
            return Err(bad("character count does not match the inserts"));
        }
        let ops: Vec<Op> = raws
            .into_iter()
            .map(|raw| match raw {
                Raw::Ins {
                    id,
                    len,
                    lamport,
                    ol,
                    or,
                    gone,
                } => Op::Insert {
                    id,
                    lamport,
                    origin_left: ol,
                    origin_right: or,
                    content: if gone {
                        Content::Gone(len)
                    } else {
                        Content::Chars(chars.by_ref().take(len as usize).collect())
                    },
                },
                Raw::Del(d) => Op::Delete(d),
            })
            .collect();
        self.apply_ops(ops)
    }

    /// Brings in everything `other` has that this text lacks.
    pub fn merge(&mut self, other: &Text) -> Result<()> {
        other.ready()?;
        let update = other.encode_update_since(&self.version);
        self.apply_update(&update)
    }
}

/// The run fields of a snapshot, one column each.
struct RunColumns<W> {
    flags: W,
    sites: W,
    seqs: W,
    lens: W,
    lamports: W,
    origins: W,
}

impl RunColumns<Writer> {
    fn write(self, w: &mut Writer) {
        for col in [
            self.flags,
            self.sites,
            self.seqs,
            self.lens,
            self.lamports,
            self.origins,
        ] {
            w.bytes(&col.finish());
        }
    }
}

impl<'a> RunColumns<Cur<'a>> {
    fn read(r: &mut Reader<'a>) -> Result<Self> {
        let mut col = || r.bytes().map(Cur::new);
        Ok(RunColumns {
            flags: col()?,
            sites: col()?,
            seqs: col()?,
            lens: col()?,
            lamports: col()?,
            origins: col()?,
        })
    }

    /// Every column fully read: leftovers mean corruption.
    fn end(&self) -> Result<()> {
        for col in [
            &self.flags,
            &self.sites,
            &self.seqs,
            &self.lens,
            &self.lamports,
            &self.origins,
        ] {
            col.end()?;
        }
        Ok(())
    }
}

/// Writes one packed section: a packing byte, the plain size, then the bytes —
/// deflated when that makes them smaller.
fn write_section(w: &mut Writer, plain: &[u8]) {
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
struct Section<'a> {
    deflated: bool,
    size: usize,
    bytes: &'a [u8],
    range: std::ops::Range<usize>,
}

impl<'a> Section<'a> {
    /// Reads a section's header and steps over its bytes, without unpacking them.
    fn read(r: &mut Reader<'a>) -> Result<Self> {
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

    fn unpack(&self) -> Result<std::borrow::Cow<'a, [u8]>> {
        Ok(if self.deflated {
            std::borrow::Cow::Owned(inflate_checked(self.bytes, self.size)?)
        } else {
            std::borrow::Cow::Borrowed(self.bytes)
        })
    }
}

/// Inflates raw deflate data that must come to exactly `size` bytes, straight into a
/// buffer of that size (no growing and copying). `size` is bounded by the caller.
fn inflate_checked(packed: &[u8], size: usize) -> Result<Vec<u8>> {
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

/// A split snapshot's structure section, kept packed in the loaded snapshot until the
/// document first needs its runs and deletes.
#[derive(Clone)]
pub(crate) struct PackedStructure {
    sites: Sites,
    range: std::ops::Range<usize>,
    deflated: bool,
    size: usize,
    /// Characters the text section holds (checked against the runs).
    stored: u64,
}

impl PackedStructure {
    /// Unpacks and checks the runs and deletes against the rest of the snapshot
    /// (`visible`: its visible length in code points).
    pub(crate) fn unpack(&self, snapshot: &[u8], version: &Version, visible: usize) -> Result<(Vec<Run>, Vec<DelRun>)> {
        let packed = snapshot
            .get(self.range.clone())
            .ok_or_else(|| bad("structure section out of range"))?;
        let plain = Section {
            deflated: self.deflated,
            size: self.size,
            bytes: packed,
            range: self.range.clone(),
        }
        .unpack()?;
        let mut r = Reader::body(&plain);
        let p = parse_structure(&plain, &mut r, &self.sites, version)?;
        r.end()?;
        if p.stored != self.stored || p.visible != visible as u64 {
            return Err(bad("the runs do not match the text"));
        }
        Ok((p.runs, p.deletes))
    }
}

/// Runs and deletes as decoded and checked, with the character counts they imply.
struct ParsedStructure {
    runs: Vec<Run>,
    deletes: Vec<DelRun>,
    /// Characters the runs carry (those with content).
    stored: u64,
    /// Characters not deleted.
    visible: u64,
    /// No deleted run carries its characters (a snapshot without history).
    only_visible: bool,
}

fn write_opt_id(w: &mut Writer, sites: &Sites, id: Option<Id>) {
    match id {
        None => w.u8(0),
        Some(id) => {
            w.u8(1);
            write_id(w, sites, id);
        }
    }
}

fn read_opt_id(r: &mut Reader, sites: &Sites) -> Result<Option<Id>> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(sites.id(r)?)),
        _ => Err(bad("bad origin tag")),
    }
}

/// The snapshot checksum, for tests that forge snapshots.
#[cfg(test)]
pub(crate) fn crc32_for_tests(bytes: &[u8]) -> u32 {
    crc32(bytes)
}

#[cfg(test)]
mod crc_tests {
    #[test]
    fn crc32_matches_the_standard() {
        assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(super::crc32(b""), 0);
    }
}
