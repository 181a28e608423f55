//! Delete runs as snapshots and updates write them.

use super::cursor::Src;
use super::sites::Sites;
use super::{bad, check_seq, read_len, unzig, zig};
use crate::codec::Writer;
use crate::crdt::text::seq::Id;
use crate::crdt::text::DelRun;
use crate::error::Result;

/// Deletes are written relative to the previous one: the same sites, the next
/// operation ids and nearby targets cost a flag bit or a one-byte delta.
#[derive(Default)]
pub(super) struct DelContext {
    prev: Option<DelRun>,
}

// Delete flags.
const DEL_REVERSED: u8 = 1;
const DEL_LAMPORT_IS_SEQ: u8 = 2;
const DEL_SAME_SITE: u8 = 4;
const DEL_TARGET_SAME_SITE: u8 = 8;

impl DelContext {
    pub(super) fn write(&mut self, w: &mut Writer, sites: &Sites, d: &DelRun) {
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

    pub(super) fn read(&mut self, r: &mut impl Src, sites: &Sites) -> Result<DelRun> {
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
