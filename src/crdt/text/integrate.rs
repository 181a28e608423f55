//! Applying remote operations: duplicates skipped, gaps and missing dependencies held
//! back until they can apply, and inserts placed by the YjsMod rule.

use super::seq::{Id, Loc, Run};
use super::{DelRun, Text};
use crate::error::{Error, Result};

/// What an insert carries: its characters, or only how many there were, for characters
/// that are deleted and whose text the sender no longer holds (loaded without history).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Content {
    Chars(Vec<char>),
    Gone(u32),
}

impl Content {
    pub fn len(&self) -> usize {
        match self {
            Content::Chars(c) => c.len(),
            Content::Gone(n) => *n as usize,
        }
    }
}

/// One remote operation, as carried by an update.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Op {
    Insert {
        id: Id,
        lamport: u64,
        origin_left: Option<Id>,
        origin_right: Option<Id>,
        content: Content,
    },
    Delete(DelRun),
}

impl Op {
    pub fn id(&self) -> Id {
        match self {
            Op::Insert { id, .. } => *id,
            Op::Delete(d) => d.id,
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            Op::Insert { content, .. } => content.len() as u64,
            Op::Delete(d) => u64::from(d.len),
        }
    }

    pub fn lamport(&self) -> u64 {
        match self {
            Op::Insert { lamport, .. } => *lamport,
            Op::Delete(d) => d.lamport,
        }
    }

    /// Drops the first `k` operations of the run (already seen).
    pub fn skip(self, k: u64) -> Op {
        match self {
            Op::Insert {
                id,
                lamport,
                content,
                origin_right,
                ..
            } => Op::Insert {
                id: Id::new(id.agent, id.seq + k),
                lamport: lamport + k,
                origin_left: Some(Id::new(id.agent, id.seq + k - 1)),
                origin_right,
                content: match content {
                    Content::Chars(c) => Content::Chars(c[k as usize..].to_vec()),
                    Content::Gone(n) => Content::Gone(n - k as u32),
                },
            },
            Op::Delete(d) => {
                let k32 = k as u32;
                let target = if d.reversed {
                    Id::new(d.target.agent, d.target.seq - k)
                } else {
                    Id::new(d.target.agent, d.target.seq + k)
                };
                Op::Delete(DelRun {
                    id: Id::new(d.id.agent, d.id.seq + k),
                    len: d.len - k32,
                    lamport: d.lamport + k,
                    target,
                    reversed: d.reversed,
                })
            }
        }
    }
}

enum Outcome {
    Applied,
    Duplicate,
    NotReady,
}

impl Text {
    /// Applies remote operations in any order: each is applied once its site's earlier
    /// operations and the characters it refers to are present; the rest wait in
    /// `pending`, and are retried whenever something applies.
    pub(crate) fn apply_ops(&mut self, mut ops: Vec<Op>) -> Result<()> {
        self.changed()?;
        ops.append(&mut self.pending);
        crate::sort::sort_by_key(&mut ops, |o| (o.lamport(), o.id()));
        loop {
            let mut progress = false;
            let mut waiting = Vec::new();
            let mut rest = ops.into_iter();
            while let Some(op) = rest.next() {
                match self.apply_op(op.clone()) {
                    Ok(Outcome::Applied) => progress = true,
                    Ok(Outcome::Duplicate) => {}
                    Ok(Outcome::NotReady) => waiting.push(op),
                    Err(e) => {
                        // Keep what still waits; the bad operation itself is dropped.
                        waiting.extend(rest);
                        self.pending = waiting;
                        return Err(e);
                    }
                }
            }
            ops = waiting;
            if !progress || ops.is_empty() {
                break;
            }
        }
        self.pending = ops;
        Ok(())
    }

    fn apply_op(&mut self, op: Op) -> Result<Outcome> {
        let id = op.id();
        let next = self.next_seq(id.agent);
        if id.seq + op.len() <= next {
            return Ok(Outcome::Duplicate);
        }
        if id.seq > next {
            return Ok(Outcome::NotReady);
        }
        let op = if id.seq < next { op.skip(next - id.seq) } else { op };
        let (id, len, lamport) = (op.id(), op.len(), op.lamport());
        match op {
            Op::Insert {
                id,
                lamport,
                origin_left,
                origin_right,
                content,
            } => {
                let deps_present = origin_left.is_none_or(|o| self.b().seq.contains_id(o))
                    && origin_right.is_none_or(|o| self.b().seq.contains_id(o));
                if !deps_present {
                    return Ok(Outcome::NotReady);
                }
                let gone = matches!(content, Content::Gone(_));
                let n = content.len();
                if self.b().chars.len() + n > u32::MAX as usize {
                    return Err(Error::InvalidOperation("text too large".into()));
                }
                let start = self.b().chars.len() as u32;
                if let Content::Chars(c) = &content {
                    super::reserve_chars(&mut self.bm().chars, c.len())?;
                    self.bm().chars.extend(c);
                }
                // Characters sent without their text were deleted at the sender; they
                // arrive deleted (their delete operations follow, or have arrived).
                let run = Run {
                    id,
                    len: n as u32,
                    lamport,
                    origin_left,
                    origin_right,
                    content: if gone { 0 } else { start },
                    deleted: gone,
                    gone,
                };
                if let Err(e) = self.integrate(run) {
                    self.bm().chars.truncate(start as usize);
                    return Err(e);
                }
            }
            Op::Delete(d) => {
                let (first, n) = d.target_range();
                if first.seq >= self.next_seq(first.agent) || first.seq + u64::from(n) > self.next_seq(first.agent) {
                    return Ok(Outcome::NotReady);
                }
                // Every target must be a character: a range that spans another kind of
                // operation's ids can only come from corrupted or forged input.
                let Some(pieces) = self.target_pieces(first, n) else {
                    return Err(Error::InvalidOperation(format!(
                        "a delete by site {} targets ids of site {} that are not characters",
                        d.id.agent, first.agent
                    )));
                };
                for (start, len) in pieces {
                    let loc = self.b().seq.locate_id(start).expect("validated by target_pieces");
                    self.bm().seq.delete_in_run(loc, len);
                }
                self.push_delete(d);
            }
        }
        self.version.observe(id.agent, id.seq + len);
        self.lamport = self.lamport.max(lamport + len - 1);
        Ok(Outcome::Applied)
    }

    /// The characters `[first, first + n)` as pieces that each lie in one run, or
    /// `None` if some id in the range is not a character here.
    fn target_pieces(&self, first: Id, n: u32) -> Option<Vec<(Id, u32)>> {
        let mut pieces = Vec::new();
        let (mut cur, mut remaining) = (first, n);
        while remaining > 0 {
            let loc = self.b().seq.locate_id(cur)?;
            let r = self.b().seq.run_at(loc)?;
            let covered = (r.len - loc.offset).min(remaining);
            pieces.push((cur, covered));
            cur.seq += u64::from(covered);
            remaining -= covered;
        }
        Some(pieces)
    }

    /// Index (among all items) of an item this text has. A snapshot is loaded in the
    /// order it lists without checking every origin (that would cost every load), so an
    /// origin missing here means the snapshot was forged: an error, not a panic.
    fn index_of_id(&self, id: Id) -> Result<usize> {
        let loc = self.b().seq.locate_id(id).ok_or_else(|| {
            Error::InvalidOperation(format!(
                "the document is corrupted: character ({}, {}) is referenced but missing",
                id.agent, id.seq
            ))
        })?;
        Ok(self.b().seq.index_of(loc))
    }

    /// Places a remote run by the YjsMod rule (josephg/reference-crdts
    /// `integrateYjsMod`), deciding by its first character; the rest of the run follows
    /// it directly, since nothing here can yet refer to characters that just arrived.
    /// Nothing is changed until the place is found, so an error leaves the text as it was.
    fn integrate(&mut self, run: Run) -> Result<()> {
        let (left, start) = match run.origin_left {
            Some(ol) => {
                let loc = self.b().seq.locate_id(ol).expect("dependency present");
                (self.b().seq.index_of(loc) as isize, self.b().seq.next(loc))
            }
            None => (
                -1,
                Loc {
                    pos: 0,
                    run: 0,
                    offset: 0,
                },
            ),
        };
        let total = self.b().seq.total_len();
        let right = match run.origin_right {
            Some(o) => self.index_of_id(o)?,
            None => total,
        };
        let (mut dest, mut scanning) = (start, false);
        let (mut i_loc, mut i) = (start, (left + 1) as usize);
        loop {
            if !scanning {
                dest = i_loc;
            }
            if i >= right {
                break;
            }
            let Some((loc, other)) = self.b().seq.item_at(i_loc) else {
                break;
            };
            let r = self.b().seq.run_at(loc).expect("item_at points at a run").clone();
            let oleft = if loc.offset > 0 {
                i as isize - 1
            } else {
                match r.origin_left {
                    Some(o) => self.index_of_id(o)? as isize,
                    None => -1,
                }
            };
            let oright = match r.origin_right {
                Some(o) => self.index_of_id(o)?,
                None => total,
            };
            if oleft < left || (oleft == left && oright == right && run.id.agent < other.agent) {
                break;
            }
            if oleft == left {
                scanning = oright < right;
            }
            i_loc = self.b().seq.next(loc);
            i += 1;
        }
        self.bm().seq.insert(dest, run);
        Ok(())
    }
}
