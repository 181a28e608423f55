//! The resolver's binary format ([`Kind::Resolver`]): a sub-kind byte — a whole
//! resolver (objects with their stats, and the operation log), the updates a peer
//! lacks, or a [`ResolverVersion`] — then the payload. Encodings do not contain the
//! site: `decode(bytes, site)` says which site the restored resolver edits as.

use std::collections::BTreeMap;

use super::object::{type_mismatch, CrdtType, Object};
use super::stats::{record, ConflictStats};
use super::{Entry, LogEntry, Resolver};
use crate::clock::{Timestamp, VersionVector};
use crate::codec::{Kind, Reader, Writer};
use crate::crdt::{corrupt, read_value, write_value};
use crate::error::Result;

// Sub-kinds inside `Kind::Resolver`: part of the format, never reuse one.
pub(super) const STATE: u8 = 0;
const UPDATES: u8 = 1;
const VERSION: u8 = 2;

/// Each object's version vector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolverVersion(pub BTreeMap<String, VersionVector>);

impl ResolverVersion {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::Resolver);
        w.u8(VERSION);
        w.uvar(self.0.len() as u64);
        for (id, vv) in &self.0 {
            w.str(id);
            vv.write(&mut w);
        }
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<ResolverVersion> {
        let mut r = Reader::new(bytes, Kind::Resolver)?;
        sub_kind(&mut r, VERSION)?;
        let n = r.count(2)?;
        let mut map = BTreeMap::new();
        for _ in 0..n {
            let id = r.str()?.to_owned();
            let vv = VersionVector::read(&mut r)?;
            if map.insert(id, vv).is_some() {
                return Err(corrupt("an object id appears twice"));
            }
        }
        r.end()?;
        Ok(ResolverVersion(map))
    }
}

pub(super) fn sub_kind(r: &mut Reader, want: u8) -> Result<()> {
    let got = r.u8()?;
    if got == want {
        return Ok(());
    }
    let name = |k| match k {
        STATE => "a resolver state",
        UPDATES => "resolver updates",
        VERSION => "a resolver version",
        _ => "unknown resolver data",
    };
    Err(corrupt(&format!(
        "expected {}, found {} (sub-kind {got})",
        name(want),
        name(got)
    )))
}

impl Resolver {
    /// What a resolver at `since` lacks: objects it does not know, and for the others
    /// the operations not in its vector.
    pub fn encode_updates_since(&self, since: &ResolverVersion) -> Vec<u8> {
        let mut w = Writer::new(Kind::Resolver);
        w.u8(UPDATES);
        let parts: Vec<(&String, &Entry, VersionVector)> = self
            .objects
            .iter()
            .filter_map(|(id, e)| {
                let mine = e.object.version();
                match since.0.get(id) {
                    Some(theirs) if theirs.includes_all(&mine) => None,
                    _ => Some((id, e, mine)),
                }
            })
            .collect();
        w.uvar(parts.len() as u64);
        let empty = VersionVector::new();
        for (id, e, mine) in parts {
            w.str(id);
            w.u8(e.object.crdt_type() as u8);
            mine.write(&mut w);
            w.bytes(&e.object.encode_update_since(since.0.get(id).unwrap_or(&empty)));
        }
        w.finish()
    }

    /// Applies [`Resolver::encode_updates_since`] output; LWW writes more than the max
    /// drift ahead of `wall_ms` are refused (`CLOCK_DRIFT`).
    pub fn apply_updates(&mut self, bytes: &[u8], wall_ms: u64) -> Result<()> {
        let mut r = Reader::new(bytes, Kind::Resolver)?;
        sub_kind(&mut r, UPDATES)?;
        let n = r.count(4)?;
        let mut parts = Vec::with_capacity(n);
        for _ in 0..n {
            let id = r.str()?;
            let ty = read_type(&mut r)?;
            let vv = VersionVector::read(&mut r)?;
            let update = r.bytes()?;
            if Reader::peek_kind(update)? != ty.update_kind() {
                return Err(corrupt(&format!("object {id:?}: not a {} update", ty.name())));
            }
            if let Some(e) = self.objects.get(id) {
                let have = e.object.crdt_type();
                if have != ty {
                    return Err(type_mismatch(id, have, ty));
                }
            }
            parts.push((id, ty, vv, update));
        }
        r.end()?;
        for (id, ty, vv, update) in parts {
            let site = self.site;
            let entry = self.objects.entry(id.to_owned()).or_insert_with(|| Entry {
                object: Object::new(ty, site),
                stats: ConflictStats::default(),
            });
            let before = entry.object.version();
            let causality = before.compare(&vv);
            let lww = ty.is_lww().then(|| entry.object.lww_fingerprint());
            entry.object.apply_update(update, wall_ms)?;
            record(&mut entry.stats, causality, lww, &entry.object);
        }
        Ok(())
    }

    /// The whole resolver: objects (with their stats) and the operation log.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(Kind::Resolver);
        w.u8(STATE);
        w.uvar(self.objects.len() as u64);
        for (id, e) in &self.objects {
            w.str(id);
            w.u8(e.object.crdt_type() as u8);
            w.bytes(&e.object.encode());
            let s = e.stats;
            for n in [s.remote_updates, s.concurrent, s.overwritten_by_remote, s.kept_local] {
                w.uvar(n);
            }
        }
        w.uvar(self.log.len() as u64);
        for l in &self.log {
            w.str(&l.object);
            w.str(&l.op);
            w.uvar(l.args.len() as u64);
            for (k, v) in &l.args {
                w.str(k);
                write_value(&mut w, v);
            }
            l.time.write(&mut w);
        }
        w.finish()
    }

    /// Restores [`Resolver::encode`] output as a resolver editing as `site`.
    pub fn decode(bytes: &[u8], site: u64) -> Result<Resolver> {
        let mut r = Reader::new(bytes, Kind::Resolver)?;
        sub_kind(&mut r, STATE)?;
        let mut res = Resolver::new(site);
        let n = r.count(8)?;
        for _ in 0..n {
            let id = r.str()?.to_owned();
            let ty = read_type(&mut r)?;
            let object = Object::decode(ty, r.bytes()?, site)?;
            let mut s = [0u64; 4];
            for x in &mut s {
                *x = r.uvar()?;
            }
            let stats = ConflictStats {
                remote_updates: s[0],
                concurrent: s[1],
                overwritten_by_remote: s[2],
                kept_local: s[3],
            };
            if res.objects.insert(id, Entry { object, stats }).is_some() {
                return Err(corrupt("an object id appears twice"));
            }
        }
        let n = r.count(6)?;
        res.log.reserve(n);
        for _ in 0..n {
            let object = r.str()?.to_owned();
            let op = r.str()?.to_owned();
            let k = r.count(2)?;
            let mut args = Vec::with_capacity(k);
            for _ in 0..k {
                let name = r.str()?.to_owned();
                args.push((name, read_value(&mut r)?));
            }
            let time = Timestamp::read(&mut r)?;
            // The next local operation must be logged after every one restored.
            res.hlc.witness(time);
            res.log.push(LogEntry { object, op, args, time });
        }
        r.end()?;
        Ok(res)
    }
}

fn read_type(r: &mut Reader) -> Result<CrdtType> {
    let b = r.u8()?;
    CrdtType::from_byte(b).ok_or_else(|| corrupt(&format!("unknown object type {b}")))
}
