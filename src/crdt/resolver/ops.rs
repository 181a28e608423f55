//! Operations by name, as JS apps call them (`applyOperation(id, op, args)`): the
//! argument parsing and the dispatch to each type's methods. See the table in the
//! resolver's module docs.

use super::object::Object;
use crate::error::{Error, Result};
use crate::sql::Value;

/// Named operation arguments, in the order given.
pub type Args = Vec<(String, Value)>;

/// Applies `op` with `args` to `object` at wall-clock time `wall_ms`. Unknown, missing
/// and wrongly typed arguments are `INVALID_ARGUMENT`; an operation the type does not
/// have is `INVALID_OPERATION`. On error the object is unchanged.
pub(super) fn apply(object: &mut Object, op: &str, args: &[(String, Value)], wall_ms: u64) -> Result<()> {
    let ty = object.crdt_type();
    let unknown = || {
        Error::InvalidOperation(format!(
            "a {} has no operation {op:?} (it has: {})",
            ty.name(),
            ty.operations()
        ))
    };
    match (object, op) {
        (Object::GCounter(c), "increment") => {
            c.increment(amount(args, op)?)?;
        }
        (Object::PNCounter(c), "increment") => {
            c.increment(amount(args, op)?)?;
        }
        (Object::PNCounter(c), "decrement") => {
            c.decrement(amount(args, op)?)?;
        }
        (Object::ORSet(s), "add" | "remove") => {
            only(args, op, &["value"])?;
            let v = required(args, op, "value")?;
            if op == "add" {
                s.add(v.clone())?;
            } else {
                s.remove(v)?;
            }
        }
        (Object::LWWRegister(r), "set") => {
            only(args, op, &["value"])?;
            r.set(required(args, op, "value")?.clone(), wall_ms)?;
        }
        (Object::LWWMap(m), "set") => {
            only(args, op, &["key", "value"])?;
            let key = string(required(args, op, "key")?, op, "key")?;
            m.set(key, required(args, op, "value")?.clone(), wall_ms)?;
        }
        (Object::LWWMap(m), "delete") => {
            only(args, op, &["key"])?;
            let key = string(required(args, op, "key")?, op, "key")?;
            m.delete(key, wall_ms)?;
        }
        (Object::Text(t), "insert") => {
            only(args, op, &["index", "text"])?;
            let index = non_negative(required(args, op, "index")?, op, "index")?;
            let text = string(required(args, op, "text")?, op, "text")?;
            t.insert(to_usize(index)?, text)?;
        }
        (Object::Text(t), "deleteText") => {
            only(args, op, &["index", "length"])?;
            let index = non_negative(required(args, op, "index")?, op, "index")?;
            let length = non_negative(required(args, op, "length")?, op, "length")?;
            t.delete(to_usize(index)?, to_usize(length)?)?;
        }
        _ => return Err(unknown()),
    }
    Ok(())
}

fn arg<'a>(args: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
    args.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn required<'a>(args: &'a [(String, Value)], op: &str, name: &str) -> Result<&'a Value> {
    arg(args, name).ok_or_else(|| Error::InvalidArgument(format!("{op}: argument `{name}` is required")))
}

fn non_negative(v: &Value, op: &str, name: &str) -> Result<u64> {
    match v {
        Value::Integer(i) if *i >= 0 => Ok(*i as u64),
        other => Err(Error::InvalidArgument(format!(
            "{op}: `{name}` must be a non-negative integer, not {other:?}"
        ))),
    }
}

fn string<'a>(v: &'a Value, op: &str, name: &str) -> Result<&'a str> {
    match v {
        Value::Text(s) => Ok(s),
        other => Err(Error::InvalidArgument(format!(
            "{op}: `{name}` must be a string, not {other:?}"
        ))),
    }
}

/// Rejects arguments the operation does not take (typos must not pass silently).
fn only(args: &[(String, Value)], op: &str, allowed: &[&str]) -> Result<()> {
    for (k, _) in args {
        if !allowed.contains(&k.as_str()) {
            return Err(Error::InvalidArgument(format!(
                "{op}: unknown argument `{k}` (takes {})",
                if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                }
            )));
        }
    }
    let mut seen: Vec<&str> = args.iter().map(|(k, _)| k.as_str()).collect();
    seen.sort_unstable();
    if seen.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::InvalidArgument(format!("{op}: an argument is given twice")));
    }
    Ok(())
}

fn amount(args: &[(String, Value)], op: &str) -> Result<u64> {
    only(args, op, &["amount", "nodeId"])?;
    if let Some(n) = arg(args, "nodeId") {
        if !matches!(n, Value::Text(_) | Value::Integer(_) | Value::Null) {
            return Err(Error::InvalidArgument(format!(
                "{op}: `nodeId` must be a string or an integer, not {n:?}"
            )));
        }
    }
    arg(args, "amount").map_or(Ok(1), |v| non_negative(v, op, "amount"))
}

fn to_usize(n: u64) -> Result<usize> {
    usize::try_from(n).map_err(|_| Error::InvalidArgument(format!("{n} is too large a position")))
}
