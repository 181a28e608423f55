//! The site table of an encoding (each site id written once) and ids written
//! against it.

use super::bad;
use super::cursor::Src;
use crate::codec::{Reader, Writer};
use crate::crdt::text::seq::Id;
use crate::error::Result;

/// Site ids used by an encoding, each written once.
#[derive(Clone)]
pub(super) struct Sites(pub(super) Vec<u64>);

impl Sites {
    pub(super) fn collect(ids: impl Iterator<Item = u64>) -> Self {
        let mut v: Vec<u64> = ids.collect();
        crate::sort::sort(&mut v);
        v.dedup();
        Sites(v)
    }
    pub(super) fn idx(&self, site: u64) -> u64 {
        self.0.binary_search(&site).expect("collected") as u64
    }
    pub(super) fn write(&self, w: &mut Writer) {
        w.uvar(self.0.len() as u64);
        for s in &self.0 {
            w.uvar(*s);
        }
    }
    pub(super) fn read(r: &mut Reader) -> Result<Self> {
        let n = r.count(1)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(r.uvar()?);
        }
        Ok(Sites(v))
    }
    pub(super) fn get(&self, r: &mut impl Src) -> Result<u64> {
        Ok(self.0[self.index(r)?])
    }
    /// A site's index in the table.
    #[inline]
    pub(super) fn index(&self, r: &mut impl Src) -> Result<usize> {
        let i = r.uvar()?;
        match usize::try_from(i) {
            Ok(i) if i < self.0.len() => Ok(i),
            _ => Err(bad(&format!("site index {i} out of range"))),
        }
    }
    pub(super) fn id(&self, r: &mut impl Src) -> Result<Id> {
        Ok(Id::new(self.get(r)?, r.uvar()?))
    }
}

pub(super) fn write_id(w: &mut Writer, sites: &Sites, id: Id) {
    w.uvar(sites.idx(id.agent));
    w.uvar(id.seq);
}

pub(super) fn write_opt_id(w: &mut Writer, sites: &Sites, id: Option<Id>) {
    match id {
        None => w.u8(0),
        Some(id) => {
            w.u8(1);
            write_id(w, sites, id);
        }
    }
}

pub(super) fn read_opt_id(r: &mut Reader, sites: &Sites) -> Result<Option<Id>> {
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(sites.id(r)?)),
        _ => Err(bad("bad origin tag")),
    }
}
