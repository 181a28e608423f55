//! Binary encodings of [`Text`]: the full state (snapshot) and delta updates.
//!
//! **Snapshot** (`Kind::Text`): runs in document order, so loading rebuilds the
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

fn write_delete(w: &mut Writer, sites: &Sites, d: &DelRun) {
    write_id(w, sites, d.id);
    w.uvar(u64::from(d.len));
    w.ivar(d.lamport as i64 - d.id.seq as i64);
    write_id(w, sites, d.target);
    w.u8(u8::from(d.reversed));
}

fn read_delete(r: &mut Reader, sites: &Sites) -> Result<DelRun> {
    let id = sites.id(r)?;
    let len = read_len(r)?;
    let lamport = offset_from(id.seq, r.ivar()?)?;
    let target = sites.id(r)?;
    let reversed = match r.u8()? {
        0 => false,
        1 => true,
        _ => return Err(bad("bad delete direction")),
    };
    if reversed && target.seq + 1 < u64::from(len) {
        return Err(bad("reversed delete runs past the first character"));
    }
    Ok(DelRun {
        id,
        len,
        lamport,
        target,
        reversed,
    })
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
        sites.write(&mut w);
        self.version.write(&mut w);
        w.uvar(self.lamport);
        let runs: Vec<&Run> = self.seq.runs().collect();
        w.uvar(runs.len() as u64);
        let mut text = String::with_capacity(self.chars.len());
        for (i, r) in runs.iter().enumerate() {
            let prev_last = i.checked_sub(1).map(|p| runs[p].last_id());
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
            w.u8(u8::from(r.deleted) | ol | or);
            write_id(&mut w, &sites, r.id);
            w.uvar(u64::from(r.len));
            w.ivar(r.lamport as i64 - r.id.seq as i64);
            if let (OL_EXPLICIT, Some(o)) = (ol, r.origin_left) {
                write_id(&mut w, &sites, o);
            }
            if let (OR_EXPLICIT, Some(o)) = (or, r.origin_right) {
                write_id(&mut w, &sites, o);
            }
            text.extend(&self.chars[r.content as usize..(r.content + r.len) as usize]);
        }
        w.uvar(self.deletes.len() as u64);
        for d in &self.deletes {
            write_delete(&mut w, &sites, d);
        }
        w.str(&text);
        w.finish()
    }

    /// Loads a snapshot made by [`Text::encode`]; further edits are made as `site`,
    /// which must not be a site that already edited this text elsewhere.
    pub fn decode(bytes: &[u8], site: u64) -> Result<Text> {
        let mut r = Reader::new(bytes, Kind::Text)?;
        let sites = Sites::read(&mut r)?;
        let version = Version::read(&mut r)?;
        let lamport = r.uvar()?;
        let n_runs = r.count(4)?;
        struct Raw {
            flags: u8,
            run: Run,
        }
        let mut raws: Vec<Raw> = Vec::with_capacity(n_runs);
        let mut total: u64 = 0;
        for _ in 0..n_runs {
            let flags = r.u8()?;
            if flags & !0b11111 != 0 || (flags >> 1) & 3 == 3 || (flags >> 3) & 3 == 3 {
                return Err(bad("bad run flags"));
            }
            let id = sites.id(&mut r)?;
            let len = read_len(&mut r)?;
            let lamport = offset_from(id.seq, r.ivar()?)?;
            let origin_left = if flags & (3 << 1) == OL_EXPLICIT {
                Some(sites.id(&mut r)?)
            } else {
                None
            };
            let origin_right = if flags & (3 << 3) == OR_EXPLICIT {
                Some(sites.id(&mut r)?)
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
        let n_del = r.count(6)?;
        let mut deletes = Vec::with_capacity(n_del);
        for _ in 0..n_del {
            deletes.push(read_delete(&mut r, &sites)?);
        }
        let text = r.str()?;
        r.end()?;
        let chars: Vec<char> = text.chars().collect();
        if chars.len() as u64 != total {
            return Err(bad("character count does not match the runs"));
        }
        let runs: Vec<Run> = raws.into_iter().map(|r| r.run).collect();
        let delete_index = deletes.iter().enumerate().map(|(i, d)| (d.id, i)).collect();
        Ok(Text {
            site,
            seq: Seq::from_runs(runs),
            chars,
            version,
            lamport,
            deletes,
            delete_index,
            pending: Vec::new(),
            max_len: u32::MAX as usize,
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
            let first_del = self
                .delete_index
                .range(..=Id::new(site, lo))
                .next_back()
                .filter(|(id, _)| id.agent == site)
                .map(|(_, i)| *i);
            let later = self
                .delete_index
                .range(Id::new(site, lo + 1)..Id::new(site, hi))
                .map(|(_, i)| *i);
            for i in first_del.into_iter().chain(later) {
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
                    write_delete(&mut w, &sites, d);
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
        for _ in 0..n {
            raws.push(match r.u8()? {
                0 => {
                    let id = sites.id(&mut r)?;
                    let len = read_len(&mut r)?;
                    let lamport = offset_from(id.seq, r.ivar()?)?;
                    let ol = read_opt_id(&mut r, &sites)?;
                    let or = read_opt_id(&mut r, &sites)?;
                    total += u64::from(len);
                    Raw::Ins {
                        id,
                        len,
                        lamport,
                        ol,
                        or,
                    }
                }
                1 => Raw::Del(read_delete(&mut r, &sites)?),
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
