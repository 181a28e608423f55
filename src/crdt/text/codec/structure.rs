//! The structure of a snapshot: the runs in document order, field by field in
//! columns, then the delete log; parsed and checked on first need.

use super::cursor::{Cur, Src};
use super::deletes::DelContext;
use super::sections::Section;
use super::sites::write_id;
use super::sites::Sites;
use super::{bad, check_seq, read_len, unzig, zig};
use crate::codec::{Reader, Writer};
use crate::crdt::text::seq::{Id, Run};
use crate::crdt::text::{DelRun, Version};
use crate::error::Result;

/// Run flags.
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

/// A snapshot's structure section as written, with the text section's characters.
pub(super) struct Written {
    pub(super) structure: Vec<u8>,
    /// The characters of every run that carries them, in document order.
    pub(super) text: String,
    /// Characters not deleted.
    pub(super) visible: u64,
    /// Characters in `text`.
    pub(super) stored: u64,
}

/// Writes the runs (in document order, field by field in columns) and the delete log.
/// Deleted runs carry their characters only with `history`.
pub(super) fn write_structure(
    runs: &[&Run],
    chars: &[char],
    deletes: &[DelRun],
    sites: &Sites,
    history: bool,
) -> Written {
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
    let mut text = String::with_capacity(chars.len());
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
            write_id(&mut cols.origins, sites, o);
        }
        if let (OR_EXPLICIT, Some(o)) = (or, r.origin_right) {
            write_id(&mut cols.origins, sites, o);
        }
        if !r.deleted {
            visible += u64::from(r.len);
        }
        if content {
            stored += u64::from(r.len);
            text.extend(&chars[r.content as usize..(r.content + r.len) as usize]);
        }
    }
    cols.write(&mut st);
    st.uvar(deletes.len() as u64);
    let mut ctx = DelContext::default();
    for d in deletes {
        ctx.write(&mut st, sites, d);
    }
    Written {
        structure: st.finish(),
        text,
        visible,
        stored,
    }
}

/// Decodes and checks the runs (in document order) and the delete log: every field in
/// range, every run and delete within `version`, origins consistent.
pub(super) fn parse_structure(
    body: &[u8],
    r: &mut Reader,
    sites: &Sites,
    version: &Version,
) -> Result<ParsedStructure> {
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

/// A split snapshot's structure section, kept packed in the loaded snapshot until the
/// document first needs its runs and deletes.
#[derive(Clone)]
pub(crate) struct PackedStructure {
    pub(super) sites: Sites,
    pub(super) range: std::ops::Range<usize>,
    pub(super) deflated: bool,
    pub(super) size: usize,
    /// Characters the text section holds (checked against the runs).
    pub(super) stored: u64,
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
pub(super) struct ParsedStructure {
    pub(super) runs: Vec<Run>,
    pub(super) deletes: Vec<DelRun>,
    /// Characters the runs carry (those with content).
    pub(super) stored: u64,
    /// Characters not deleted.
    pub(super) visible: u64,
    /// No deleted run carries its characters (a snapshot without history).
    pub(super) only_visible: bool,
}
