//! Versions of the text: what it read at an earlier version, restoring that, and
//! whether this replica holds the text that needs (a snapshot without history keeps
//! no deleted characters).

use super::seq::Id;
use super::{DelRun, Text, Version};
use crate::error::{Error, Result};

impl Text {
    /// Ascending id ranges of the characters deleted as of `version` (by the deletes
    /// it includes).
    pub(super) fn deleted_at(&self, version: &Version) -> Vec<(Id, u32)> {
        let mut gone: Vec<(Id, u32)> = Vec::new();
        for d in &self.b().deletes {
            let n_seen = version.get(d.id.agent).saturating_sub(d.id.seq).min(u64::from(d.len));
            if n_seen == 0 {
                continue;
            }
            let part = DelRun {
                len: n_seen as u32,
                ..d.clone()
            };
            gone.push(part.target_range());
        }
        crate::sort::sort(&mut gone);
        gone
    }

    /// Whether `id` lies in one of the ascending ranges `deleted` (from [`Self::deleted_at`]).
    pub(super) fn in_ranges(deleted: &[(Id, u32)], id: Id) -> bool {
        let i = deleted.partition_point(|(s, _)| *s <= id);
        deleted[..i]
            .iter()
            .rev()
            .take_while(|(s, _)| s.agent == id.agent)
            .any(|(s, l)| id.seq < s.seq + u64::from(*l))
    }

    /// The error for history this replica does not hold.
    pub(super) fn no_history() -> Error {
        Error::InvalidOperation(
            "that version's text is not available: this document was loaded from a snapshot \
             without history (encode it with history to keep old versions)"
                .into(),
        )
    }

    /// Whether this replica holds the text of every character, deleted ones included
    /// (false after loading a snapshot encoded without history).
    pub fn has_full_history(&self) -> bool {
        self.ready().is_ok() && !self.b().seq.runs().any(|r| r.gone)
    }

    /// The text as it was at `version` (a version this replica has fully seen). An error
    /// when that text includes characters this replica does not hold (see
    /// [`Text::encode`]: a snapshot without history keeps no deleted text).
    pub fn text_at(&self, version: &Version) -> Result<String> {
        self.ready()?;
        for (site, n) in version.iter() {
            if n > self.next_seq(site) {
                return Err(Error::InvalidOperation(format!(
                    "version has {n} operations of site {site}, this text only {}",
                    self.next_seq(site)
                )));
            }
        }
        let seen = |id: Id| id.seq < version.get(id.agent);
        let gone = self.deleted_at(version);
        let mut out = String::new();
        for r in self.b().seq.runs() {
            for k in 0..r.len {
                let id = Id::new(r.id.agent, r.id.seq + u64::from(k));
                if seen(id) && !Self::in_ranges(&gone, id) {
                    if r.gone {
                        return Err(Self::no_history());
                    }
                    out.push(self.b().chars[(r.content + k) as usize]);
                }
            }
        }
        Ok(out)
    }

    /// Makes the text read as it did at `version`, as a new edit (history is kept and
    /// the change syncs like any other): the smallest delete + insert between now and then.
    pub fn restore(&mut self, version: &Version) -> Result<()> {
        let old: Vec<char> = self.text_at(version)?.chars().collect();
        let cur: Vec<char> = self.text().chars().collect();
        let prefix = old.iter().zip(&cur).take_while(|(a, b)| a == b).count();
        let suffix = old[prefix..]
            .iter()
            .rev()
            .zip(cur[prefix..].iter().rev())
            .take_while(|(a, b)| a == b)
            .count();
        self.delete(prefix, cur.len() - prefix - suffix)?;
        let middle: String = old[prefix..old.len() - suffix].iter().collect();
        self.insert(prefix, &middle)
    }
}
