//! Values and errors between rusqlite and the crate's own types.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::ToSql;

use crate::error::{Error, Result, SqlErrorKind};
use crate::sql::{Statement, Value};

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// Copies one column of a row out of SQLite.
pub fn read_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        // SQLite does not check that TEXT is UTF-8; never fail a read over it.
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

/// Binds positional and named arguments, with the same rules as the server: names
/// may be given with or without their `:`/`@`/`$` prefix, and every placeholder must
/// be bound.
pub(crate) fn bind(stmt: &mut rusqlite::CachedStatement<'_>, s: &Statement) -> Result<()> {
    let expected = stmt.parameter_count();
    if s.args.len() > expected {
        return Err(Error::InvalidArgument(format!(
            "the statement has {expected} placeholders but {} arguments were given",
            s.args.len()
        )));
    }
    stmt.clear_bindings();
    for (i, v) in s.args.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, v).map_err(sql_error)?;
    }
    let mut bound = s.args.len();
    for (name, v) in &s.named_args {
        let bare = name.trim_start_matches([':', '@', '$']);
        let idx = [":", "@", "$"]
            .iter()
            .find_map(|p| stmt.parameter_index(&format!("{p}{bare}")).ok().flatten())
            .ok_or_else(|| Error::InvalidArgument(format!("the statement has no parameter named {name:?}")))?;
        stmt.raw_bind_parameter(idx, v).map_err(sql_error)?;
        bound += 1;
    }
    if bound < expected && s.named_args.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "the statement has {expected} placeholders but {bound} arguments were given"
        )));
    }
    Ok(())
}

/// Classifies a local SQLite error exactly like the server's errors are classified.
pub fn sql_error(e: rusqlite::Error) -> Error {
    use rusqlite::ffi::ErrorCode;
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if f.code == ErrorCode::DiskFull {
            return Error::StorageFull(e.to_string());
        }
    }
    let (kind, code) = match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == ErrorCode::ConstraintViolation => {
            (SqlErrorKind::Constraint, Some("SQLITE_CONSTRAINT".to_string()))
        }
        rusqlite::Error::SqliteFailure(f, _) => (SqlErrorKind::Other, Some(format!("SQLITE_{:?}", f.code))),
        _ => (SqlErrorKind::Other, None),
    };
    let message = e.to_string();
    if let Some(coded) = Error::from_sql_message(&message) {
        return coded;
    }
    let lower = message.to_ascii_lowercase();
    let kind = if lower.contains("syntax error") || lower.contains("incomplete input") {
        SqlErrorKind::Syntax
    } else {
        kind
    };
    Error::Sql {
        kind,
        message,
        server_code: code,
        step: None,
    }
}
