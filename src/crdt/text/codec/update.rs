//! Delta updates: the operations a version lacks, in Lamport order, and applying
//! them (out of order and twice are fine); merge is an update.

use super::deletes::DelContext;
use super::sites::{read_opt_id, write_id, write_opt_id, Sites};
use super::{bad, check_seq, offset_from, read_len};
use crate::codec::{Kind, Reader, Writer};
use crate::crdt::text::integrate::{Content, Op};
use crate::crdt::text::seq::Id;
use crate::crdt::text::{DelRun, Text, Version};
use crate::error::Result;

/// Update operation tags.
const OP_INSERT: u8 = 0;
const OP_DELETE: u8 = 1;
/// An insert of deleted characters without their text (see [`super::integrate::Content`]).
const OP_INSERT_GONE: u8 = 2;

impl Text {
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
        crate::sort::sort_by_key(&mut ops, |o| (o.lamport(), o.id()));
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
