//! The ordered sequence of items (characters, live or deleted) behind [`super::Text`].
//!
//! Items are stored run-length encoded: a [`Run`] is a stretch of characters one site
//! typed in one go (consecutive ids, each item's left origin the previous item, one
//! shared right origin). Runs live in chunks of at most [`MAX_RUNS`]; two Fenwick trees
//! over the chunk order give, in O(log n), the chunk holding the p-th visible item and
//! the number of items before a chunk. Typing at a cursor extends the run in place,
//! so the common case touches one run and two tree paths.
//!
//! Remote items are placed with the YjsMod rule (Fugue-max equivalent, as in
//! diamond-types and josephg/reference-crdts `integrateYjsMod`): between the new item's
//! left and right origins, concurrent siblings are ordered so that interleaving of
//! concurrent runs is minimal and every replica agrees.

use std::cell::RefCell;
use std::collections::BTreeMap;

/// Identifies one operation (and, for inserts, the character it inserted):
/// the `seq`-th operation of site `agent`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Id {
    pub agent: u64,
    pub seq: u64,
}

impl Id {
    pub fn new(agent: u64, seq: u64) -> Self {
        Id { agent, seq }
    }
    fn plus(self, k: u64) -> Id {
        Id::new(self.agent, self.seq + k)
    }
}

/// Consecutive characters inserted by one site in one go.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// Id of the first character; character `k` has id `id.seq + k`.
    pub id: Id,
    pub len: u32,
    /// Lamport time of the first character (`+k` for character `k`).
    pub lamport: u64,
    /// Left origin of the first character; character `k > 0` has the previous one.
    pub origin_left: Option<Id>,
    /// Right origin, shared by every character of the run.
    pub origin_right: Option<Id>,
    /// Offset of the first character in the content arena (meaningless when `gone`).
    pub content: u32,
    pub deleted: bool,
    /// Deleted, and its characters are not held: the run came from a snapshot without
    /// history (or from a peer that loaded one). Its ids still order concurrent inserts.
    pub gone: bool,
}

impl Run {
    pub fn contains(&self, id: Id) -> bool {
        id.agent == self.id.agent && id.seq >= self.id.seq && id.seq < self.id.seq + u64::from(self.len)
    }

    pub fn visible(&self) -> usize {
        if self.deleted {
            0
        } else {
            self.len as usize
        }
    }

    pub fn last_id(&self) -> Id {
        self.id.plus(u64::from(self.len) - 1)
    }

    /// Keeps `[0, k)` and returns `[k, len)`.
    fn split(&mut self, k: u32) -> Run {
        debug_assert!(k > 0 && k < self.len);
        let right = Run {
            id: self.id.plus(u64::from(k)),
            len: self.len - k,
            lamport: self.lamport + u64::from(k),
            origin_left: Some(self.id.plus(u64::from(k) - 1)),
            origin_right: self.origin_right,
            content: if self.gone { 0 } else { self.content + k },
            deleted: self.deleted,
            gone: self.gone,
        };
        self.len = k;
        right
    }
}

/// Runs per chunk before the chunk splits in two.
const MAX_RUNS: usize = 64;

/// A position in the sequence: item `offset` of run `run` of the chunk at `pos` in
/// the chunk order. `run == runs.len()` (offset 0) is the end of that chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    pub pos: usize,
    pub run: usize,
    pub offset: u32,
}

/// A Fenwick (binary indexed) tree of chunk sizes, in chunk order.
#[derive(Default, Clone)]
struct Fenwick(Vec<i64>);

impl Fenwick {
    fn build(values: impl Iterator<Item = i64>) -> Self {
        let mut t: Vec<i64> = values.collect();
        for i in 0..t.len() {
            let j = i | (i + 1);
            if j < t.len() {
                t[j] += t[i];
            }
        }
        Fenwick(t)
    }
    /// The entries back out of the tree (the inverse of `build`), in O(n).
    fn values(&self) -> Vec<i64> {
        let mut t = self.0.clone();
        for i in (0..t.len()).rev() {
            let j = i | (i + 1);
            if j < t.len() {
                t[j] -= t[i];
            }
        }
        t
    }

    fn add(&mut self, mut i: usize, delta: i64) {
        while i < self.0.len() {
            self.0[i] += delta;
            i |= i + 1;
        }
    }
    /// Sum of the first `i` entries.
    fn prefix(&self, i: usize) -> usize {
        let (mut i, mut s) = (i, 0i64);
        while i > 0 {
            s += self.0[i - 1];
            i &= i - 1;
        }
        s as usize
    }
    /// The first index whose inclusive prefix sum exceeds `target`, with the sum before it.
    fn find(&self, target: usize) -> (usize, usize) {
        let n = self.0.len();
        let (mut pos, mut rem) = (0usize, target as i64);
        let mut step = n.next_power_of_two();
        while step > 0 {
            let next = pos + step;
            if next <= n && self.0[next - 1] <= rem {
                pos = next;
                rem -= self.0[next - 1];
            }
            step >>= 1;
        }
        (pos, target - rem as usize)
    }
}

/// The sequence: chunks in a slab, their order, and the two Fenwick trees.
#[derive(Clone)]
pub struct Seq {
    chunks: Vec<Vec<Run>>,
    order: Vec<u32>,
    pos_of: Vec<u32>,
    visible: Fenwick,
    total: Fenwick,
    /// Run start id → chunk id. Built on first need (merges, anchors, updates), behind
    /// a RefCell so reads can build it; local typing alone never pays for it.
    index: RefCell<Option<BTreeMap<Id, u32>>>,
}

impl Default for Seq {
    fn default() -> Self {
        Seq::from_runs(Vec::new())
    }
}

impl Seq {
    /// Builds a sequence from runs in document order (decoding a snapshot).
    pub fn from_runs(runs: Vec<Run>) -> Self {
        let mut chunks: Vec<Vec<Run>> = Vec::new();
        let mut it = runs.into_iter().peekable();
        while it.peek().is_some() {
            // Full chunks: half as many allocations as half-full ones; the first edit
            // in a chunk splits it, which is cheap.
            let mut chunk = Vec::with_capacity(MAX_RUNS + 1);
            chunk.extend(it.by_ref().take(MAX_RUNS));
            chunks.push(chunk);
        }
        if chunks.is_empty() {
            chunks.push(Vec::new());
        }
        let mut s = Seq {
            order: (0..chunks.len() as u32).collect(),
            pos_of: (0..chunks.len() as u32).collect(),
            chunks,
            visible: Fenwick::default(),
            total: Fenwick::default(),
            index: RefCell::new(None),
        };
        s.rebuild_trees();
        s
    }

    fn rebuild_trees(&mut self) {
        let chunks = &self.chunks;
        self.visible = Fenwick::build(
            self.order
                .iter()
                .map(|&c| chunks[c as usize].iter().map(Run::visible).sum::<usize>() as i64),
        );
        self.total = Fenwick::build(
            self.order
                .iter()
                .map(|&c| chunks[c as usize].iter().map(|r| r.len as usize).sum::<usize>() as i64),
        );
    }

    pub fn visible_len(&self) -> usize {
        self.visible.prefix(self.order.len())
    }

    pub fn total_len(&self) -> usize {
        self.total.prefix(self.order.len())
    }

    pub fn runs(&self) -> impl Iterator<Item = &Run> {
        self.order.iter().flat_map(|&c| self.chunks[c as usize].iter())
    }

    fn chunk(&self, pos: usize) -> &Vec<Run> {
        &self.chunks[self.order[pos] as usize]
    }

    fn chunk_mut(&mut self, pos: usize) -> &mut Vec<Run> {
        &mut self.chunks[self.order[pos] as usize]
    }

    pub fn run_at(&self, loc: Loc) -> Option<&Run> {
        self.chunk(loc.pos).get(loc.run)
    }

    /// The end of the sequence.
    pub fn end(&self) -> Loc {
        let pos = self.order.len() - 1;
        Loc {
            pos,
            run: self.chunk(pos).len(),
            offset: 0,
        }
    }

    /// The `p`-th visible item (after any deleted items before it), or the end when
    /// `p == visible_len()`. The caller checks `p <= visible_len()`.
    pub fn locate_visible(&self, p: usize) -> Loc {
        if p >= self.visible_len() {
            return self.end();
        }
        let (pos, before) = self.visible.find(p);
        let mut rem = (p - before) as u32;
        for (i, r) in self.chunk(pos).iter().enumerate() {
            if !r.deleted {
                if rem < r.len {
                    return Loc {
                        pos,
                        run: i,
                        offset: rem,
                    };
                }
                rem -= r.len;
            }
        }
        unreachable!("Fenwick tree and chunk disagree")
    }

    /// Number of items (live and deleted) before `loc`.
    pub fn index_of(&self, loc: Loc) -> usize {
        self.total.prefix(loc.pos)
            + self.chunk(loc.pos)[..loc.run]
                .iter()
                .map(|r| r.len as usize)
                .sum::<usize>()
            + loc.offset as usize
    }

    /// Number of visible items before `loc`.
    pub fn visible_index_of(&self, loc: Loc) -> usize {
        let chunk = self.chunk(loc.pos);
        let in_run = chunk
            .get(loc.run)
            .map_or(0, |r| if r.deleted { 0 } else { loc.offset as usize });
        self.visible.prefix(loc.pos) + chunk[..loc.run].iter().map(Run::visible).sum::<usize>() + in_run
    }

    /// The item just before `loc`, if any.
    pub fn prev_item(&self, loc: Loc) -> Option<Id> {
        if loc.offset > 0 {
            return Some(self.chunk(loc.pos)[loc.run].id.plus(u64::from(loc.offset) - 1));
        }
        let (mut pos, mut run) = (loc.pos, loc.run);
        loop {
            if run > 0 {
                return Some(self.chunk(pos)[run - 1].last_id());
            }
            if pos == 0 {
                return None;
            }
            pos -= 1;
            run = self.chunk(pos).len();
        }
    }

    /// Normalizes `loc` so it points at an item (skipping chunk ends); `None` at the end.
    pub fn item_at(&self, loc: Loc) -> Option<(Loc, Id)> {
        let (mut pos, mut run) = (loc.pos, loc.run);
        let mut offset = loc.offset;
        loop {
            if let Some(r) = self.chunk(pos).get(run) {
                return Some((Loc { pos, run, offset }, r.id.plus(u64::from(offset))));
            }
            if pos + 1 == self.order.len() {
                return None;
            }
            pos += 1;
            run = 0;
            offset = 0;
        }
    }

    /// The location after item `loc` (which must point at an item).
    pub fn next(&self, loc: Loc) -> Loc {
        let r = &self.chunk(loc.pos)[loc.run];
        if loc.offset + 1 < r.len {
            Loc {
                offset: loc.offset + 1,
                ..loc
            }
        } else {
            Loc {
                pos: loc.pos,
                run: loc.run + 1,
                offset: 0,
            }
        }
    }

    /// Runs `f` on the id index, building it first if needed.
    fn with_index<R>(&self, f: impl FnOnce(&BTreeMap<Id, u32>) -> R) -> R {
        let mut slot = self.index.borrow_mut();
        let idx = slot.get_or_insert_with(|| {
            let mut idx = BTreeMap::new();
            for (cid, runs) in self.chunks.iter().enumerate() {
                for r in runs {
                    idx.insert(r.id, cid as u32);
                }
            }
            idx
        });
        f(idx)
    }

    /// Where the item `id` is, if this sequence has it.
    pub fn locate_id(&self, id: Id) -> Option<Loc> {
        let cid = self.with_index(|idx| idx.range(..=id).next_back().map(|(_, c)| *c))?;
        let runs = &self.chunks[cid as usize];
        let run = runs.iter().position(|r| r.contains(id))?;
        Some(Loc {
            pos: self.pos_of[cid as usize] as usize,
            run,
            offset: (id.seq - runs[run].id.seq) as u32,
        })
    }

    /// Copies of the runs (whole, untrimmed) holding site `agent`'s items with
    /// sequence numbers in `[lo, hi)`, found through the id index.
    pub fn runs_in(&self, agent: u64, lo: u64, hi: u64) -> Vec<Run> {
        let starts: Vec<(Id, u32)> = self.with_index(|idx| {
            let first = idx
                .range(..=Id::new(agent, lo))
                .next_back()
                .filter(|(id, _)| id.agent == agent);
            first
                .into_iter()
                .chain(idx.range(Id::new(agent, lo + 1)..Id::new(agent, hi)))
                .map(|(id, c)| (*id, *c))
                .collect()
        });
        let mut out = Vec::with_capacity(starts.len());
        for (id, cid) in starts {
            if let Some(r) = self.chunks[cid as usize].iter().find(|r| r.id == id) {
                if r.id.seq + u64::from(r.len) > lo {
                    out.push(r.clone());
                }
            }
        }
        out
    }

    pub fn contains_id(&self, id: Id) -> bool {
        self.locate_id(id).is_some()
    }

    /// Splits the run at `loc` so that `loc` starts a run; returns the adjusted location.
    fn split_at(&mut self, loc: Loc) -> Loc {
        if loc.offset == 0 {
            return loc;
        }
        let cid = self.order[loc.pos];
        let right = self.chunks[cid as usize][loc.run].split(loc.offset);
        if let Some(idx) = self.index.get_mut() {
            idx.insert(right.id, cid);
        }
        self.chunk_mut(loc.pos).insert(loc.run + 1, right);
        let at = Loc {
            pos: loc.pos,
            run: loc.run + 1,
            offset: 0,
        };
        self.maybe_split_chunk(at)
    }

    /// Splits an over-full chunk; returns where `keep` is afterwards.
    fn maybe_split_chunk(&mut self, keep: Loc) -> Loc {
        if self.chunk(keep.pos).len() <= MAX_RUNS {
            return keep;
        }
        let cid = self.order[keep.pos];
        let mut tail = self.chunks[cid as usize].split_off(MAX_RUNS / 2);
        // Both halves get room for exactly one chunk's worth of runs: a chunk that had
        // doubled its capacity to hold MAX_RUNS + 1 would otherwise keep 4× what it uses.
        self.chunks[cid as usize].shrink_to(MAX_RUNS + 1);
        tail.reserve_exact(MAX_RUNS + 1 - tail.len());
        let new_cid = self.chunks.len() as u32;
        if let Some(idx) = self.index.get_mut() {
            for r in &tail {
                idx.insert(r.id, new_cid);
            }
        }
        // Re-derive only the two halves' sizes; every other chunk keeps its entry.
        let sums = |runs: &[Run]| {
            runs.iter()
                .fold((0i64, 0i64), |(v, t), r| (v + r.visible() as i64, t + i64::from(r.len)))
        };
        let (tail_vis, tail_tot) = sums(&tail);
        let mut vis = self.visible.values();
        let mut tot = self.total.values();
        vis[keep.pos] -= tail_vis;
        tot[keep.pos] -= tail_tot;
        vis.insert(keep.pos + 1, tail_vis);
        tot.insert(keep.pos + 1, tail_tot);
        self.visible = Fenwick::build(vis.into_iter());
        self.total = Fenwick::build(tot.into_iter());
        self.chunks.push(tail);
        self.order.insert(keep.pos + 1, new_cid);
        self.pos_of.push(0);
        for (p, &c) in self.order.iter().enumerate().skip(keep.pos) {
            self.pos_of[c as usize] = p as u32;
        }
        if keep.run >= MAX_RUNS / 2 {
            Loc {
                pos: keep.pos + 1,
                run: keep.run - MAX_RUNS / 2,
                offset: keep.offset,
            }
        } else {
            keep
        }
    }

    /// Inserts `run` so that its first item lands at `loc` (before the item there).
    pub fn insert(&mut self, loc: Loc, run: Run) {
        let loc = self.split_at(loc);
        let (vis, len) = (run.visible() as i64, i64::from(run.len));
        let cid = self.order[loc.pos];
        if let Some(idx) = self.index.get_mut() {
            idx.insert(run.id, cid);
        }
        self.chunk_mut(loc.pos).insert(loc.run, run);
        self.visible.add(loc.pos, vis);
        self.total.add(loc.pos, len);
        self.maybe_split_chunk(loc);
    }

    /// Tries to append `n` items to the run ending just before `loc`: true when the run
    /// belongs to `id.agent`, ends at `id.seq - 1` with content ending at `content` and
    /// Lamport time `lamport - 1`, is live, and has the same right origin.
    pub fn try_extend(
        &mut self,
        loc: Loc,
        id: Id,
        origin_right: Option<Id>,
        content: u32,
        lamport: u64,
        n: u32,
    ) -> bool {
        if loc.offset != 0 || loc.run == 0 {
            return false;
        }
        let r = &mut self.chunks[self.order[loc.pos] as usize][loc.run - 1];
        let fits = !r.deleted
            && r.id.agent == id.agent
            && r.id.seq + u64::from(r.len) == id.seq
            && r.content + r.len == content
            && r.lamport + u64::from(r.len) == lamport
            && r.origin_right == origin_right;
        if fits {
            r.len += n;
            self.visible.add(loc.pos, i64::from(n));
            self.total.add(loc.pos, i64::from(n));
        }
        fits
    }

    /// Marks up to `max` items starting at `loc` deleted, within one run; returns the
    /// first id and how many items the range covered.
    pub fn delete_in_run(&mut self, loc: Loc, max: u32) -> (Id, u32) {
        let mut loc = self.split_at(loc);
        if max < self.chunk(loc.pos)[loc.run].len {
            let after = self.split_at(Loc { offset: max, ..loc });
            loc = self.prev_run(after);
        }
        let r = &mut self.chunks[self.order[loc.pos] as usize][loc.run];
        let (id, n) = (r.id, r.len);
        if !r.deleted {
            r.deleted = true;
            self.visible.add(loc.pos, -i64::from(n));
            self.coalesce(loc);
        }
        (id, n)
    }

    /// Whether `b` continues `a` exactly as if they had never been split.
    fn continues(a: &Run, b: &Run) -> bool {
        a.deleted == b.deleted
            && a.gone == b.gone
            && a.id.agent == b.id.agent
            && a.id.seq + u64::from(a.len) == b.id.seq
            && (a.gone || a.content + a.len == b.content)
            && a.lamport + u64::from(a.len) == b.lamport
            && b.origin_left == Some(a.last_id())
            && a.origin_right == b.origin_right
    }

    /// Joins the run at `loc` with its neighbours in the same chunk where they continue
    /// each other, so deleting typed text (backspacing, selecting and deleting) leaves
    /// one tombstone run instead of one per character.
    fn coalesce(&mut self, loc: Loc) {
        let cid = self.order[loc.pos] as usize;
        let mut at = loc.run;
        let runs = &mut self.chunks[cid];
        if at + 1 < runs.len() && Self::continues(&runs[at], &runs[at + 1]) {
            let gone = runs.remove(at + 1);
            runs[at].len += gone.len;
            if let Some(idx) = self.index.get_mut() {
                idx.remove(&gone.id);
            }
        }
        let runs = &mut self.chunks[cid];
        if at > 0 && Self::continues(&runs[at - 1], &runs[at]) {
            let gone = runs.remove(at);
            at -= 1;
            runs[at].len += gone.len;
            if let Some(idx) = self.index.get_mut() {
                idx.remove(&gone.id);
            }
        }
    }

    /// The run before the run starting at `loc`.
    fn prev_run(&self, loc: Loc) -> Loc {
        if loc.run > 0 {
            Loc {
                run: loc.run - 1,
                offset: 0,
                ..loc
            }
        } else {
            let pos = loc.pos - 1;
            Loc {
                pos,
                run: self.chunk(pos).len() - 1,
                offset: 0,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fenwick_finds_prefixes() {
        let f = Fenwick::build([3i64, 0, 5, 2].into_iter());
        assert_eq!(f.values(), vec![3, 0, 5, 2]);
        assert_eq!(f.prefix(0), 0);
        assert_eq!(f.prefix(3), 8);
        assert_eq!(f.find(0), (0, 0));
        assert_eq!(f.find(2), (0, 0));
        assert_eq!(f.find(3), (2, 3));
        assert_eq!(f.find(8), (3, 8));
    }
}
