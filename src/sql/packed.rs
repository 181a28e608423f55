//! The packed argument layout that `encodeStatement` / `encodeArgs` (js/args.ts) write,
//! read without copying: a local point read takes a few microseconds, so its
//! arguments cross from JS as bytes rather than as JS values converted one by one.
//!
//! Layout (little endian): `u8 kind` (0 none, 1 positional, 2 named), `u32 count`,
//! then per argument (named: its name as `u32 length + UTF-8` first) a tag byte —
//! 0 NULL, 1 INTEGER from a float64, 2 REAL (float64), 3 TEXT (`u32 length + UTF-8`),
//! 4 BLOB (`u32 length + bytes`), 5 INTEGER (int64).

use crate::error::{Error, Result};
use crate::sql::ValueRef;

/// Whether the arguments are positional or named (a statement has one kind or none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgsKind {
    None,
    Positional,
    Named,
}

/// A cursor over packed arguments; [`Packed::next`] yields them in order.
pub struct Packed<'a> {
    bytes: &'a [u8],
    at: usize,
    left: usize,
    kind: ArgsKind,
    count: usize,
}

fn bad() -> Error {
    Error::InvalidArgument("malformed packed arguments".into())
}

impl<'a> Packed<'a> {
    /// Reads the kind and count; the arguments are read by [`Packed::next`].
    pub fn new(bytes: &'a [u8]) -> Result<Self> {
        let mut p = Packed {
            bytes,
            at: 0,
            left: 0,
            kind: ArgsKind::None,
            count: 0,
        };
        p.kind = match p.take(1)?[0] {
            0 => ArgsKind::None,
            1 => ArgsKind::Positional,
            2 => ArgsKind::Named,
            _ => return Err(bad()),
        };
        let n = p.u32()? as usize;
        // Every argument takes at least one byte: a larger count is malformed, and
        // must not make a caller reserve room for billions of values.
        if n > bytes.len() {
            return Err(bad());
        }
        p.count = if p.kind == ArgsKind::None { 0 } else { n };
        p.left = p.count;
        Ok(p)
    }

    /// How many bytes have been read: after the last argument, where the arguments end.
    pub fn position(&self) -> usize {
        self.at
    }

    pub fn kind(&self) -> ArgsKind {
        self.kind
    }

    /// How many arguments there are (all of one kind).
    pub fn count(&self) -> usize {
        self.count
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(bad)?;
        let b = &self.bytes[self.at..end];
        self.at = end;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn eight(&mut self) -> Result<[u8; 8]> {
        self.take(8)?.try_into().map_err(|_| bad())
    }

    fn str(&mut self) -> Result<&'a str> {
        let len = self.u32()? as usize;
        std::str::from_utf8(self.take(len)?).map_err(|_| bad())
    }

    /// The next argument: its name (named arguments, as written, prefix and all) and
    /// value. `None` after the last one.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<(Option<&'a str>, ValueRef<'a>)>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let name = match self.kind {
            ArgsKind::Named => Some(self.str()?),
            _ => None,
        };
        let v = match self.take(1)?[0] {
            0 => ValueRef::Null,
            1 => ValueRef::Integer(f64::from_le_bytes(self.eight()?) as i64),
            2 => {
                let f = f64::from_le_bytes(self.eight()?);
                if !f.is_finite() {
                    // The same refusal as `Value::check_sendable`.
                    return Err(Error::InvalidArgument(format!(
                        "{f} cannot be stored: SQLite has no NaN and the remote protocol has no infinities"
                    )));
                }
                ValueRef::Real(f)
            }
            5 => ValueRef::Integer(i64::from_le_bytes(self.eight()?)),
            3 => ValueRef::Text(self.str()?.as_bytes()),
            4 => {
                let len = self.u32()? as usize;
                ValueRef::Blob(self.take(len)?)
            }
            _ => return Err(bad()),
        };
        Ok(Some((name, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(kind: u8, args: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = vec![kind];
        b.extend_from_slice(&(args.len() as u32).to_le_bytes());
        for (name, v) in args {
            if kind == 2 {
                b.extend_from_slice(&(name.len() as u32).to_le_bytes());
                b.extend_from_slice(name.as_bytes());
            }
            b.extend_from_slice(v);
        }
        b
    }

    fn tagged(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn reads_every_tag() {
        let text = tagged(3, &[&2u32.to_le_bytes()[..], "é".as_bytes()].concat());
        let blob = tagged(4, &[&2u32.to_le_bytes()[..], &[0, 255]].concat());
        let int_f = tagged(1, &42f64.to_le_bytes());
        let real = tagged(2, &1.5f64.to_le_bytes());
        let int_i = tagged(5, &i64::MIN.to_le_bytes());
        let bytes = packed(
            1,
            &[
                ("", &[0]),
                ("", &int_f),
                ("", &real),
                ("", &text),
                ("", &blob),
                ("", &int_i),
            ],
        );
        let mut p = Packed::new(&bytes).unwrap();
        assert_eq!((p.kind(), p.count()), (ArgsKind::Positional, 6));
        let mut got = Vec::new();
        while let Some((name, v)) = p.next().unwrap() {
            assert_eq!(name, None);
            got.push(v);
        }
        assert_eq!(
            got,
            [
                ValueRef::Null,
                ValueRef::Integer(42),
                ValueRef::Real(1.5),
                ValueRef::Text("é".as_bytes()),
                ValueRef::Blob(&[0, 255]),
                ValueRef::Integer(i64::MIN),
            ]
        );
    }

    #[test]
    fn named_and_none() {
        let bytes = packed(2, &[(":id", &tagged(1, &7f64.to_le_bytes()))]);
        let mut p = Packed::new(&bytes).unwrap();
        assert_eq!(p.kind(), ArgsKind::Named);
        assert_eq!(p.next().unwrap(), Some((Some(":id"), ValueRef::Integer(7))));
        assert_eq!(p.next().unwrap(), None);
        let none = packed(0, &[]);
        let p = Packed::new(&none).unwrap();
        assert_eq!((p.kind(), p.count()), (ArgsKind::None, 0));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![1, 1, 0],
            vec![9, 0, 0, 0, 0],
            packed(1, &[("", &[7])]),
            packed(1, &[("", &[1, 0, 0])]),
            packed(1, &[("", &tagged(3, &[255, 255, 255, 255]))]),
            packed(1, &[("", &tagged(3, &[&1u32.to_le_bytes()[..], &[0xff]].concat()))]),
            packed(1, &[("", &tagged(2, &f64::NAN.to_le_bytes()))]),
            vec![1, 255, 255, 255, 255, 0],
        ];
        for bytes in cases {
            let res = Packed::new(&bytes).and_then(|mut p| {
                while p.next()?.is_some() {}
                Ok(())
            });
            assert_eq!(res.unwrap_err().code(), "INVALID_ARGUMENT", "{bytes:?}");
        }
    }
}
