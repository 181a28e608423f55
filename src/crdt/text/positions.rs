//! Positions other than code-point offsets: UTF-16 offsets (JavaScript strings and
//! editors) and cursor anchors that follow the text through concurrent edits.

use super::seq::Loc;
use super::{Anchor, Assoc, Text};
use crate::error::{Error, Result};

impl Text {
    /// Code-point position of UTF-16 offset `pos16`; an offset inside a surrogate
    /// pair is an error.
    pub fn utf16_to_pos(&self, pos16: usize) -> Result<usize> {
        let (mut units, mut cps) = (0usize, 0usize);
        if pos16 == 0 {
            return Ok(0);
        }
        self.ready()?;
        for r in self.b().seq.runs().filter(|r| !r.deleted) {
            for c in &self.b().chars[r.content as usize..(r.content + r.len) as usize] {
                units += c.len_utf16();
                cps += 1;
                if units == pos16 {
                    return Ok(cps);
                }
                if units > pos16 {
                    return Err(Error::InvalidOperation(format!(
                        "UTF-16 offset {pos16} splits a surrogate pair"
                    )));
                }
            }
        }
        Err(Error::InvalidOperation(format!(
            "UTF-16 offset {pos16} is outside the text (length {units})"
        )))
    }

    /// Length in UTF-16 code units (JavaScript's `string.length`).
    pub fn len_utf16(&self) -> usize {
        if self.unbuilt() {
            if let Some(n) = self.with_loaded(|l| l.and_then(|l| l.text.as_ref()).map(|t| t.encode_utf16().count())) {
                return n;
            }
        }
        self.b()
            .seq
            .runs()
            .filter(|r| !r.deleted)
            .flat_map(|r| &self.b().chars[r.content as usize..(r.content + r.len) as usize])
            .map(|c| c.len_utf16())
            .sum()
    }

    pub fn insert_utf16(&mut self, pos16: usize, s: &str) -> Result<()> {
        let pos = self.utf16_to_pos(pos16)?;
        self.insert(pos, s)
    }

    pub fn delete_utf16(&mut self, pos16: usize, len16: usize) -> Result<()> {
        let start = self.utf16_to_pos(pos16)?;
        let end = self.utf16_to_pos(pos16.saturating_add(len16))?;
        self.delete(start, end - start)
    }

    /// An anchor at code-point position `pos`.
    pub fn anchor(&self, pos: usize, assoc: Assoc) -> Result<Anchor> {
        self.check_range(pos, 0)?;
        self.ready()?;
        let id = match assoc {
            Assoc::After => self.b().seq.item_at(self.b().seq.locate_visible(pos)).map(|(_, id)| id),
            Assoc::Before if pos == 0 => None,
            Assoc::Before => self
                .b()
                .seq
                .item_at(self.b().seq.locate_visible(pos - 1))
                .map(|(_, id)| id),
        };
        Ok(Anchor { id, assoc })
    }

    /// Where `anchor` is now. An anchor on a deleted character resolves to where that
    /// character was. An anchor from a replica whose edits have not arrived yet is an error.
    pub fn resolve(&self, anchor: Anchor) -> Result<usize> {
        let Some(id) = anchor.id else {
            return Ok(match anchor.assoc {
                Assoc::Before => 0,
                Assoc::After => self.len(),
            });
        };
        self.ready()?;
        let loc: Loc = self
            .b()
            .seq
            .locate_id(id)
            .ok_or_else(|| Error::InvalidOperation("the anchor's character is not in this text yet".into()))?;
        let before = self.b().seq.visible_index_of(loc);
        let live = self.b().seq.run_at(loc).is_some_and(|r| !r.deleted);
        Ok(match anchor.assoc {
            Assoc::Before if live => before + 1,
            _ => before,
        })
    }
}
