//! A collaborative plain-text CRDT.
//!
//! Every character has an id (`site`, `seq`); concurrent inserts at the same place are
//! ordered by the YjsMod/Fugue-max rule (see [`seq`]) and deletes leave tombstones, so
//! replicas that have seen the same operations hold the same text whatever the order
//! they saw them in. Positions are Unicode code points (UTF-16 variants exist for JS
//! editors).
//!
//! ```
//! use edgesync::crdt::text::Text;
//! let mut a = Text::new(1);
//! a.insert(0, "hello").unwrap();
//! let mut b = Text::decode(&a.encode(), 2).unwrap();
//! a.insert(5, " world").unwrap();
//! b.insert(0, "¡").unwrap();
//! a.merge(&b).unwrap();
//! b.merge(&a).unwrap();
//! assert_eq!(a.to_string(), "¡hello world");
//! assert_eq!(a.to_string(), b.to_string());
//! ```

mod codec;
mod history;
mod integrate;
mod positions;
pub mod seq;

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::BTreeMap;

pub use crate::clock::VersionVector as Version;
use crate::error::{Error, Result};
use seq::{Id, Run, Seq};

/// A run of consecutive delete operations by one site. Operation `k` deletes the
/// character `target.seq + k` (or `target.seq - k` when `reversed`: backspacing).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct DelRun {
    pub id: Id,
    pub len: u32,
    pub lamport: u64,
    pub target: Id,
    pub reversed: bool,
}

impl DelRun {
    /// The deleted characters as one ascending id range `[start, start + len)`.
    pub fn target_range(&self) -> (Id, u32) {
        if self.reversed {
            (
                Id::new(self.target.agent, self.target.seq + 1 - u64::from(self.len)),
                self.len,
            )
        } else {
            (self.target, self.len)
        }
    }
}

/// Which side a cursor anchor sticks to when text is inserted exactly at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Assoc {
    /// Stays after the character before it (a caret that text typed at it pushes right).
    Before,
    /// Stays before the character after it.
    After,
}

/// A position that follows the text through concurrent edits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// The character it sticks to; `None` = the start (`Before`) or end (`After`).
    pub id: Option<Id>,
    pub assoc: Assoc,
}

/// Sizes of a [`Text`]'s internals (see [`Text::stats`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextStats {
    /// Runs of consecutive characters (live and deleted) in document order.
    pub runs: usize,
    pub deleted_runs: usize,
    /// Entries in the delete log (consecutive deletes share one).
    pub delete_log: usize,
    /// Characters held (ever inserted, less deleted ones loaded without history).
    pub chars: usize,
}

/// The text CRDT. See the module docs.
pub struct Text {
    site: u64,
    /// The sequence and the characters: built when first needed after loading a
    /// snapshot (see [`Loaded`]), so `decode` + reading the text never builds them.
    body: OnceCell<Body>,
    /// What a loaded snapshot left to build, and its visible text until the first
    /// change (reading a document right after loading it costs a copy). A `Cell` of a
    /// box: one pointer, so the `Text` held inline by the Resolver's object enum stays
    /// small.
    loaded: Cell<Option<Box<Loaded>>>,
    version: Version,
    /// Highest Lamport time seen.
    lamport: u64,
    /// Delete-log entry start id → its index in `deletes`, for extracting updates.
    /// Built on first need, so loading a snapshot does not pay for it.
    delete_index: RefCell<Option<BTreeMap<Id, usize>>>,
    /// Remote operations waiting for operations they depend on.
    pending: Vec<integrate::Op>,
}

/// The run structure, the character array and the delete log.
#[derive(Clone, Default)]
pub(crate) struct Body {
    pub seq: Seq,
    /// Every inserted character (live or deleted), addressed by `Run::content`.
    pub chars: Vec<char>,
    /// Every delete operation, in the order applied (consecutive ones share an entry).
    pub deletes: Vec<DelRun>,
}

/// What `decode` has not built yet: the structure (runs in document order and the
/// delete log) and the stored characters, taken when the body is built; the visible
/// text as the snapshot stored it and the snapshot itself, kept until the first change.
#[derive(Clone)]
pub(crate) struct Loaded {
    pub structure: Option<Structure>,
    /// The stored characters when they are not just the visible text (with history).
    pub stored: Option<String>,
    /// Visible length in code points.
    pub visible: usize,
    /// The visible text (a snapshot without history).
    pub text: Option<String>,
    /// The snapshot as given (current format only): while nothing changes, `encode`
    /// hands it back instead of encoding again.
    pub snapshot: Option<Vec<u8>>,
    /// Whether the snapshot holds deleted text too (`encode_with_history`).
    pub history: bool,
    /// Why the structure could not be built (it is checked on first need, see
    /// [`Text::validate`]); every call that needs it then returns this error.
    pub broken: Option<String>,
}

/// A loaded snapshot's runs and deletes.
#[derive(Clone)]
pub(crate) enum Structure {
    /// Checked and decoded at load (snapshots from before the split layout).
    Parsed { runs: Vec<Run>, deletes: Vec<DelRun> },
    /// Still packed: `Loaded::snapshot[range]`, decoded and checked on first need.
    Packed(codec::PackedStructure),
}

impl Text {
    /// The sequence, characters and delete log, built from a loaded snapshot on first
    /// need. Public calls that need them go through [`Self::ready`] first, so a snapshot
    /// whose structure is invalid fails those calls with its error; here such a
    /// structure leaves an empty body, never a panic.
    #[inline]
    pub(crate) fn b(&self) -> &Body {
        self.body.get_or_init(|| self.build())
    }

    /// Builds the body if needed; the loaded snapshot's error if its structure is invalid.
    pub(crate) fn ready(&self) -> Result<()> {
        self.b();
        match self.with_loaded(|l| l.and_then(|l| l.broken.clone())) {
            None => Ok(()),
            Some(reason) => Err(Error::Decode { reason, offset: 0 }),
        }
    }

    /// Checks a loaded snapshot completely, now. `decode` checks the checksum, the
    /// header and the text, and leaves the run structure and the delete log packed until
    /// the first call that needs them (an edit, a merge, an update, a position lookup):
    /// that keeps loading and reading a document as cheap as reading its text. A
    /// snapshot that is corrupted on purpose (its checksum recomputed) is caught here, or
    /// by that first call, with `DECODE_ERROR`; the document then stays readable as
    /// loaded and `encode` returns the bytes it was loaded from, unchanged.
    ///
    /// ```
    /// use edgesync::crdt::text::Text;
    /// let mut a = Text::new(1);
    /// a.insert(0, "hello").unwrap();
    /// let b = Text::decode(&a.encode(), 2).unwrap();
    /// b.validate().unwrap();
    /// assert_eq!(b.text(), "hello");
    /// ```
    pub fn validate(&self) -> Result<()> {
        self.ready()
    }

    /// [`Self::b`], mutably.
    #[inline]
    pub(crate) fn bm(&mut self) -> &mut Body {
        self.b();
        self.body.get_mut().expect("initialised just above")
    }

    #[cold]
    fn build(&self) -> Body {
        let Some(mut l) = self.loaded.take() else {
            return Body::default();
        };
        let built = match l.structure.take() {
            None => Ok((Vec::new(), Vec::new())),
            Some(Structure::Parsed { runs, deletes }) => Ok((runs, deletes)),
            Some(Structure::Packed(p)) => {
                let snapshot = l.snapshot.as_deref().unwrap_or_default();
                p.unpack(snapshot, &self.version, l.visible)
            }
        };
        let (runs, deletes) = match built {
            Ok(parts) => parts,
            Err(e) => {
                l.broken = Some(match e {
                    Error::Decode { reason, .. } => reason,
                    e => e.to_string(),
                });
                self.loaded.set(Some(l));
                return Body::default();
            }
        };
        let stored = l.stored.take();
        let chars = stored
            .as_ref()
            .or(l.text.as_ref())
            .map_or_else(Vec::new, |t| t.chars().collect());
        if l.text.is_some() || l.snapshot.is_some() {
            self.loaded.set(Some(l));
        }
        Body {
            seq: Seq::from_runs(runs),
            chars,
            deletes,
        }
    }

    /// A text whose body is built from `loaded` on first need.
    pub(crate) fn from_loaded(site: u64, loaded: Loaded, version: Version, lamport: u64) -> Text {
        Text {
            site,
            body: OnceCell::new(),
            loaded: Cell::new(Some(Box::new(loaded))),
            version,
            lamport,
            delete_index: RefCell::new(None),
            pending: Vec::new(),
        }
    }

    /// The loaded snapshot, when nothing has changed since and it is what an encoding
    /// `with_history` (or not) would produce.
    pub(crate) fn unchanged_snapshot(&self, with_history: bool) -> Option<Vec<u8>> {
        self.with_loaded(|l| {
            let l = l?;
            let usable = l.broken.is_some() || with_history || !l.history;
            if usable {
                l.snapshot.clone()
            } else {
                None
            }
        })
    }

    /// Whether the loaded snapshot's structure is not built (yet, or because it is
    /// invalid): lengths then come from what loading kept.
    fn unbuilt(&self) -> bool {
        self.body.get().is_none() || self.with_loaded(|l| l.is_some_and(|l| l.broken.is_some()))
    }

    /// Runs `f` on what loading left (`None` when nothing is left).
    fn with_loaded<R>(&self, f: impl FnOnce(Option<&Loaded>) -> R) -> R {
        let l = self.loaded.take();
        let out = f(l.as_deref());
        self.loaded.set(l);
        out
    }

    /// An empty text edited as `site`. Every replica must use its own site id.
    pub fn new(site: u64) -> Self {
        Text {
            site,
            body: OnceCell::from(Body::default()),
            loaded: Cell::new(None),
            version: Version::new(),
            lamport: 0,
            delete_index: RefCell::new(Some(BTreeMap::new())),
            pending: Vec::new(),
        }
    }

    pub fn site(&self) -> u64 {
        self.site
    }

    /// Length in Unicode code points.
    pub fn len(&self) -> usize {
        if self.unbuilt() {
            if let Some(v) = self.with_loaded(|l| l.map(|l| l.visible)) {
                return v;
            }
        }
        self.b().seq.visible_len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Operations seen per site.
    pub fn version(&self) -> &Version {
        &self.version
    }

    /// Internal sizes, for diagnostics and benchmarks.
    pub fn stats(&self) -> Result<TextStats> {
        self.ready()?;
        Ok(TextStats {
            runs: self.b().seq.runs().count(),
            deleted_runs: self.b().seq.runs().filter(|r| r.deleted).count(),
            delete_log: self.b().deletes.len(),
            chars: self.b().chars.len(),
        })
    }

    /// Number of remote operations held back until what they depend on arrives.
    pub fn pending_ops(&self) -> usize {
        self.pending.len()
    }

    fn next_seq(&self, site: u64) -> u64 {
        self.version.get(site)
    }

    fn check_range(&self, pos: usize, len: usize) -> Result<()> {
        let n = self.len();
        if pos > n || len > n - pos {
            return Err(Error::InvalidOperation(format!(
                "range {pos}..{} is outside the text (length {n})",
                pos.saturating_add(len)
            )));
        }
        Ok(())
    }

    /// Inserts `s` before the character at code-point position `pos`.
    pub fn insert(&mut self, pos: usize, s: &str) -> Result<()> {
        self.check_range(pos, 0)?;
        self.changed()?;
        let start = self.b().chars.len();
        // Grown fallibly: a text that would outgrow the memory is an error, not a trap
        // that leaves the object unusable (wasm32 has 4 GiB in all).
        reserve_chars(&mut self.bm().chars, s.chars().count())?;
        self.bm().chars.extend(s.chars());
        let n = self.b().chars.len() - start;
        if n == 0 {
            return Ok(());
        }
        if self.b().chars.len() > u32::MAX as usize {
            self.bm().chars.truncate(start);
            return Err(Error::InvalidOperation("text too large".into()));
        }
        let n = n as u32;
        let loc = self.b().seq.locate_visible(pos);
        let id = Id::new(self.site, self.next_seq(self.site));
        let lamport = self.lamport + 1;
        let origin_right = self.b().seq.item_at(loc).map(|(_, id)| id);
        if !self
            .bm()
            .seq
            .try_extend(loc, id, origin_right, start as u32, lamport, n)
        {
            let run = Run {
                id,
                len: n,
                lamport,
                origin_left: self.b().seq.prev_item(loc),
                origin_right,
                content: start as u32,
                deleted: false,
                gone: false,
            };
            self.bm().seq.insert(loc, run);
        }
        self.lamport += u64::from(n);
        self.version.observe(self.site, id.seq + u64::from(n));
        Ok(())
    }

    /// Deletes `len` code points starting at `pos`.
    pub fn delete(&mut self, pos: usize, len: usize) -> Result<()> {
        self.check_range(pos, len)?;
        self.changed()?;
        let mut remaining = len;
        while remaining > 0 {
            let loc = self.b().seq.locate_visible(pos);
            let (target, n) = self
                .bm()
                .seq
                .delete_in_run(loc, remaining.min(u32::MAX as usize) as u32);
            let id = Id::new(self.site, self.next_seq(self.site));
            self.push_delete(DelRun {
                id,
                len: n,
                lamport: self.lamport + 1,
                target,
                reversed: false,
            });
            self.lamport += u64::from(n);
            self.version.observe(self.site, id.seq + u64::from(n));
            remaining -= n as usize;
        }
        Ok(())
    }

    /// Appends to the delete log, extending the last entry when this continues it
    /// (typing forward-delete, or backspacing one character at a time).
    pub(crate) fn push_delete(&mut self, d: DelRun) {
        let len = self.b().deletes.len();
        if let Some(last) = self.bm().deletes.last_mut() {
            let follows = last.id.agent == d.id.agent
                && last.id.seq + u64::from(last.len) == d.id.seq
                && last.lamport + u64::from(last.len) == d.lamport
                && last.target.agent == d.target.agent;
            let forward = !last.reversed && last.target.seq + u64::from(last.len) == d.target.seq;
            let backward =
                d.len == 1 && (last.reversed || last.len == 1) && d.target.seq + u64::from(last.len) == last.target.seq;
            if follows && forward {
                last.len += d.len;
                return;
            }
            if follows && backward {
                last.reversed = true;
                last.len += 1;
                return;
            }
        }
        if let Some(idx) = self.delete_index.get_mut() {
            idx.insert(d.id, len);
        }
        self.bm().deletes.push(d);
    }

    /// Runs `f` on the delete-log index, building it first if needed.
    pub(crate) fn with_delete_index<R>(&self, f: impl FnOnce(&BTreeMap<Id, usize>) -> R) -> R {
        let mut slot = self.delete_index.borrow_mut();
        // Inserted one by one: `collect()` would compile a sort of its own (src/sort.rs).
        let idx = slot.get_or_insert_with(|| {
            let mut idx = BTreeMap::new();
            for (i, d) in self.b().deletes.iter().enumerate() {
                idx.insert(d.id, i);
            }
            idx
        });
        f(idx)
    }

    /// Called before any change to the sequence (an error when the loaded structure is
    /// invalid). Builds the body first: it may need the cached text.
    pub(crate) fn changed(&mut self) -> Result<()> {
        self.ready()?;
        self.loaded.set(None);
        Ok(())
    }

    /// The text as a `String`.
    pub fn text(&self) -> String {
        if let Some(s) = self.with_loaded(|l| l.and_then(|l| l.text.clone())) {
            return s;
        }
        let mut out = String::with_capacity(self.len());
        for r in self.b().seq.runs().filter(|r| !r.deleted) {
            out.extend(&self.b().chars[r.content as usize..(r.content + r.len) as usize]);
        }
        out
    }
}

impl Clone for Text {
    fn clone(&self) -> Self {
        let copy = self.with_loaded(|l| l.cloned().map(Box::new));
        Text {
            site: self.site,
            body: self.body.clone(),
            loaded: Cell::new(copy),
            version: self.version.clone(),
            lamport: self.lamport,
            delete_index: self.delete_index.clone(),
            pending: self.pending.clone(),
        }
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text())
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Text")
            .field("site", &self.site)
            .field("text", &self.text())
            .field("version", &self.version)
            .finish()
    }
}

#[cfg(test)]
mod tests;

/// Makes room for `n` more characters, or fails with `INVALID_OPERATION` when the memory
/// cannot hold them (instead of aborting, as an infallible allocation does).
pub(crate) fn reserve_chars(chars: &mut Vec<char>, n: usize) -> Result<()> {
    if chars.try_reserve(n).is_ok() || chars.try_reserve_exact(n).is_ok() {
        return Ok(());
    }
    Err(Error::InvalidOperation(format!(
        "out of memory: the text ({} characters) cannot grow by {n} more",
        chars.len()
    )))
}
