//! Binary encodings of [`Text`]: the full state (snapshot) and delta updates.
//!
//! **Snapshot** (`Kind::Text`, ending in a CRC-32 of everything after the header): runs
//! in document order, so loading rebuilds the
//! sequence directly with no integration work, then the delete log, then the
//! characters of every run (deleted ones too: history is kept) as one UTF-8 string.
//! Per run, a flags byte says whether it is deleted and whether its origins are simply
//! its neighbours in the document (the common case, which then costs nothing).
//!
//! **Update** (`Kind::TextUpdate`): the operations a version lacks, in Lamport order
//! (every operation after what it depends on), inserts with their content.
//!
//! Versions use [`crate::clock::VersionVector`]'s encoding. Site ids go in a table
//! once; everything else is varints. Decoding validates every
//! field and never panics.

use super::integrate::Op;
use super::seq::{Id, Run, Seq};
use std::cell::RefCell;

use super::{DelRun, Text, Version};
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
const RUN_FLAGS: u8 = 0b111_1111;

/// Snapshot payload after the header: stored as is, or deflated.
const STORED: u8 = 0;
const DEFLATED: u8 = 1;
/// Largest sequence number or Lamport time a decoder accepts (2^53: exact as a JS
/// number, and far from overflow however long a document is edited afterwards).
const MAX_SEQ: u64 = 1 << 53;

fn check_seq(v: u64, what: &str) -> Result<u64> {
    if v > MAX_SEQ {
        return Err(bad(&format!("{what} {v} is out of range")));
    }
    Ok(v)
}

/// CRC-32 (IEEE), guarding snapshots against accidental corruption (a flipped bit in
/// storage could otherwise load as a different document).
fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    !bytes
        .iter()
        .fold(!0u32, |c, &b| TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8))
}

/// Largest inflated snapshot accepted (a hostile length cannot make us allocate more).
const MAX_SNAPSHOT: usize = 1 << 30;

/// Site ids used by an encoding, each written once.
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
    fn get(&self, r: &mut Reader) -> Result<u64> {
        let i = r.uvar()?;
        self.0
            .get(usize::try_from(i).unwrap_or(usize::MAX))
            .copied()
            .ok_or_else(|| bad(&format!("site index {i} out of range")))
    }
    fn id(&self, r: &mut Reader) -> Result<Id> {
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

    fn read(&mut self, r: &mut Reader, sites: &Sites) -> Result<DelRun> {
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

fn read_len(r: &mut Reader) -> Result<u32> {
    let n = r.len(u32::MAX as usize)?;
    if n == 0 {
        return Err(bad("empty run"));
    }
    Ok(n as u32)
}

fn offset_from(base: u64, delta: i64) -> Result<u64> {
    base.checked_add_signed(delta)
        .ok_or_else(|| bad("lamport time out of range"))
}

impl Text {
    /// The full state: every character ever inserted, every deletion, in a compact
    /// snapshot that loads without replaying history.
    pub fn encode(&self) -> Vec<u8> {
        let sites = Sites::collect(
            self.seq
                .runs()
                .flat_map(|r| {
                    [
                        Some(r.id.agent),
                        r.origin_left.map(|i| i.agent),
                        r.origin_right.map(|i| i.agent),
                    ]
                })
                .flatten()
                .chain(self.deletes.iter().flat_map(|d| [d.id.agent, d.target.agent]))
                .chain(self.version.iter().map(|(s, _)| s)),
        );
        let mut w = Writer::new(Kind::Text);
        let header_len = w.len();
        sites.write(&mut w);
        self.version.write(&mut w);
        w.uvar(self.lamport);
        let runs: Vec<&Run> = self.seq.runs().collect();
        w.uvar(runs.len() as u64);
        // Column by column: deflate compresses like with like far better than rows.
        let mut cols = RunColumns {
            flags: Writer::body(),
            sites: Writer::body(),
            seqs: Writer::body(),
            lens: Writer::body(),
            lamports: Writer::body(),
            origins: Writer::body(),
        };
        let mut text = String::with_capacity(self.chars.len());
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
            let flags = u8::from(r.deleted)
                | ol
                | or
                | if lamport_is_seq { LAMPORT_IS_SEQ } else { 0 }
                | if same_site { SAME_SITE } else { 0 };
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
            text.extend(&self.chars[r.content as usize..(r.content + r.len) as usize]);
        }
        cols.write(&mut w);
        w.uvar(self.deletes.len() as u64);
        let mut ctx = DelContext::default();
        for d in &self.deletes {
            ctx.write(&mut w, &sites, d);
        }
        w.str(&text);
        deflate_body(w.finish(), header_len)
    }

    /// Loads a snapshot made by [`Text::encode`]; further edits are made as `site`,
    /// which must not be a site that already edited this text elsewhere.
    pub fn decode(bytes: &[u8], site: u64) -> Result<Text> {
        Reader::peek_kind(bytes)?;
        if bytes.len() < 9 {
            return Err(bad("truncated snapshot"));
        }
        let (bytes, crc) = bytes.split_at(bytes.len() - 4);
        // Fuzzing builds skip the check so the fuzzer can reach the decoder itself.
        if cfg!(not(fuzzing)) && crc32(&bytes[4..]).to_le_bytes() != crc {
            return Err(bad("checksum mismatch: the snapshot is corrupted"));
        }
        let mut outer = Reader::new(bytes, Kind::Text)?;
        let inflated;
        let body = match outer.u8()? {
            STORED => outer.rest(),
            DEFLATED => {
                let size = outer.len(MAX_SNAPSHOT)?;
                let packed = outer.rest();
                // Deflate cannot expand more than ~1032:1; a larger claim is corrupt.
                if size > packed.len().saturating_mul(1032) + 64 {
                    return Err(bad("inflated size impossible for the compressed data"));
                }
                inflated = miniz_oxide::inflate::decompress_to_vec_with_limit(packed, size)
                    .map_err(|e| bad(&format!("bad compressed data: {e}")))?;
                if inflated.len() != size {
                    return Err(bad("inflated size does not match"));
                }
                &inflated[..]
            }
            m => return Err(bad(&format!("unknown snapshot compression {m}"))),
        };
        let mut r = Reader::body(body);
        let sites = Sites::read(&mut r)?;
        let version = Version::read(&mut r)?;
        for (_, n) in version.iter() {
            check_seq(n, "version counter")?;
        }
        let lamport = check_seq(r.uvar()?, "lamport time")?;
        let n_runs = r.count(1)?;
        let mut c = RunColumns::read(&mut r)?;
        struct Raw {
            flags: u8,
            run: Run,
        }
        let mut raws: Vec<Raw> = Vec::with_capacity(n_runs.min(c.flags.remaining()));
        let mut total: u64 = 0;
        let mut prev: Option<(u64, u64)> = None; // (site, end seq) of the previous run
        for _ in 0..n_runs {
            let flags = c.flags.u8()?;
            if flags & !RUN_FLAGS != 0 || (flags >> 1) & 3 == 3 || (flags >> 3) & 3 == 3 {
                return Err(bad("bad run flags"));
            }
            let agent = if flags & SAME_SITE != 0 {
                prev.ok_or_else(|| bad("first run refers to a previous one"))?.0
            } else {
                sites.get(&mut c.sites)?
            };
            let id = Id::new(agent, unzig(prev.map_or(0, |p| p.1), c.seqs.ivar()?)?);
            let len = read_len(&mut c.lens)?;
            let lamport = if flags & LAMPORT_IS_SEQ != 0 {
                id.seq
            } else {
                unzig(id.seq, c.lamports.ivar()?)?
            };
            check_seq(lamport.saturating_add(u64::from(len)), "lamport time")?;
            let origin_left = if flags & (3 << 1) == OL_EXPLICIT {
                Some(sites.id(&mut c.origins)?)
            } else {
                None
            };
            let origin_right = if flags & (3 << 3) == OR_EXPLICIT {
                Some(sites.id(&mut c.origins)?)
            } else {
                None
            };
            if id
                .seq
                .checked_add(u64::from(len))
                .is_none_or(|end| end > version.get(id.agent))
            {
                return Err(bad("run beyond the version"));
            }
            total += u64::from(len);
            if total > u32::MAX as u64 {
                return Err(bad("text too large"));
            }
            prev = Some((agent, id.seq + u64::from(len)));
            raws.push(Raw {
                flags,
                run: Run {
                    id,
                    len,
                    lamport,
                    origin_left,
                    origin_right,
                    content: (total - u64::from(len)) as u32,
                    deleted: flags & DELETED != 0,
                },
            });
        }
        c.end()?;
        // Resolve neighbour-relative origins.
        for i in 0..raws.len() {
            if raws[i].flags & (3 << 1) == OL_PREV {
                let prev = i
                    .checked_sub(1)
                    .map(|p| raws[p].run.last_id())
                    .ok_or_else(|| bad("first run has a previous origin"))?;
                raws[i].run.origin_left = Some(prev);
            }
            if raws[i].flags & (3 << 3) == OR_NEXT {
                let next = raws
                    .get(i + 1)
                    .map(|n| n.run.id)
                    .ok_or_else(|| bad("last run has a next origin"))?;
                raws[i].run.origin_right = Some(next);
            }
        }
        let n_del = r.count(4)?;
        let mut deletes = Vec::with_capacity(n_del);
        let mut ctx = DelContext::default();
        for _ in 0..n_del {
            deletes.push(ctx.read(&mut r, &sites)?);
        }
        for d in &deletes {
            if d.id.seq + u64::from(d.len) > version.get(d.id.agent) {
                return Err(bad("delete beyond the version"));
            }
            check_seq(d.lamport + u64::from(d.len), "lamport time")?;
        }
        let text = r.str()?;
        r.end()?;
        let chars: Vec<char> = text.chars().collect();
        if chars.len() as u64 != total {
            return Err(bad("character count does not match the runs"));
        }
        let runs: Vec<Run> = raws.into_iter().map(|r| r.run).collect();
        let seq = Seq::from_runs(runs);
        Ok(Text {
            site,
            seq,
            chars,
            version,
            lamport,
            deletes,
            delete_index: RefCell::new(None),
            pending: Vec::new(),
        })
    }

    /// The operations `since` lacks (all of them for an empty version), in an order in
    /// which each follows what it depends on.
    pub fn encode_update_since(&self, since: &Version) -> Vec<u8> {
        self.encode_update_between(since, &self.version)
    }

    /// The operations that `until` has and `since` lacks: the update that takes a
    /// replica from one version to another (for example to rebuild a past state, or to
    /// send history in slices). Both are versions this text has seen.
    pub fn encode_update_between(&self, since: &Version, until: &Version) -> Vec<u8> {
        let from = |id: Id| since.get(id.agent);
        let to = |id: Id| until.get(id.agent);
        // The part of a run of `len` operations starting at `id` inside [from, to).
        let window = |id: Id, len: u32| {
            let start = from(id).max(id.seq);
            let end = to(id).min(id.seq + u64::from(len));
            (start < end).then(|| (start - id.seq, end - start))
        };
        let mut ops: Vec<Op> = Vec::new();
        for (site, hi) in until.iter() {
            let lo = since.get(site);
            if lo >= hi {
                continue;
            }
            for r in self.seq.runs_in(site, lo, hi) {
                if let Some((skip, n)) = window(r.id, r.len) {
                    let first = r.content as usize + skip as usize;
                    let op = Op::Insert {
                        id: r.id,
                        lamport: r.lamport,
                        origin_left: r.origin_left,
                        origin_right: r.origin_right,
                        content: self.chars[r.content as usize..first + n as usize].to_vec(),
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
                let d = &self.deletes[i];
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
                    w.u8(0);
                    write_id(&mut w, &sites, *id);
                    w.uvar(content.len() as u64);
                    w.ivar(*lamport as i64 - id.seq as i64);
                    write_opt_id(&mut w, &sites, *origin_left);
                    write_opt_id(&mut w, &sites, *origin_right);
                    text.extend(content);
                }
                Op::Delete(d) => {
                    w.u8(1);
                    del_ctx.write(&mut w, &sites, d);
                }
            }
        }
        w.str(&text);
        w.finish()
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
            },
            Del(DelRun),
        }
        let mut raws = Vec::with_capacity(n);
        let mut total: u64 = 0;
        let mut del_ctx = DelContext::default();
        for _ in 0..n {
            raws.push(match r.u8()? {
                0 => {
                    let id = sites.id(&mut r)?;
                    let len = read_len(&mut r)?;
                    let lamport = offset_from(id.seq, r.ivar()?)?;
                    let ol = read_opt_id(&mut r, &sites)?;
                    let or = read_opt_id(&mut r, &sites)?;
                    check_seq(id.seq.saturating_add(u64::from(len)), "sequence number")?;
                    check_seq(lamport.saturating_add(u64::from(len)), "lamport time")?;
                    total += u64::from(len);
                    Raw::Ins {
                        id,
                        len,
                        lamport,
                        ol,
                        or,
                    }
                }
                1 => Raw::Del(del_ctx.read(&mut r, &sites)?),
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
                } => Op::Insert {
                    id,
                    lamport,
                    origin_left: ol,
                    origin_right: or,
                    content: chars.by_ref().take(len as usize).collect(),
                },
                Raw::Del(d) => Op::Delete(d),
            })
            .collect();
        self.apply_ops(ops)
    }

    /// Brings in everything `other` has that this text lacks.
    pub fn merge(&mut self, other: &Text) -> Result<()> {
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

impl<'a> RunColumns<Reader<'a>> {
    fn read(r: &mut Reader<'a>) -> Result<Self> {
        let mut col = || r.bytes().map(Reader::body);
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

/// Deflates everything after the header when that makes it smaller, and appends the
/// CRC-32 of everything after the header.
fn deflate_body(plain: Vec<u8>, header_len: usize) -> Vec<u8> {
    let (header, body) = plain.split_at(header_len);
    let packed = miniz_oxide::deflate::compress_to_vec(body, 6);
    let mut w = Writer::new(Kind::Text);
    debug_assert_eq!(w.len(), header.len());
    if packed.len() + 8 < body.len() {
        w.u8(DEFLATED);
        w.uvar(body.len() as u64);
        w.raw(&packed);
    } else {
        w.u8(STORED);
        w.raw(body);
    }
    let mut out = w.finish();
    let crc = crc32(&out[header_len..]);
    out.extend_from_slice(&crc.to_le_bytes());
    out
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

#[cfg(test)]
mod crc_tests {
    #[test]
    fn crc32_matches_the_standard() {
        assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(super::crc32(b""), 0);
    }
}
