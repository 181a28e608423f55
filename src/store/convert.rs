//! Values and errors between rusqlite and the crate's own types.

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::ToSql;

use crate::error::{Error, Extended, Result, SqlCode};
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

/// rusqlite's borrowed value as the crate's.
pub fn value_ref(v: ValueRef<'_>) -> crate::sql::ValueRef<'_> {
    match v {
        ValueRef::Null => crate::sql::ValueRef::Null,
        ValueRef::Integer(i) => crate::sql::ValueRef::Integer(i),
        ValueRef::Real(f) => crate::sql::ValueRef::Real(f),
        ValueRef::Text(t) => crate::sql::ValueRef::Text(t),
        ValueRef::Blob(b) => crate::sql::ValueRef::Blob(b),
    }
}

/// Copies one column of a row out of SQLite.
pub fn read_value(v: ValueRef<'_>) -> Value {
    Value::from(value_ref(v))
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

/// A local SQLite error as the official client reports one: `code` the primary result
/// code's name, the extended code in `extended`, and SQLite's own message.
pub fn sql_error(e: rusqlite::Error) -> Error {
    // Out of space (the disk, or the browser's quota for the origin): the issue-16 code,
    // which tells an app the write was rolled back and the database is intact.
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        if f.code == rusqlite::ffi::ErrorCode::DiskFull {
            return Error::StorageFull(e.to_string());
        }
    }
    let (rc, message) = match e {
        rusqlite::Error::SqliteFailure(f, msg) => (f.extended_code, msg.unwrap_or_else(|| f.to_string())),
        rusqlite::Error::SqlInputError { error, msg, .. } => (error.extended_code, msg),
        rusqlite::Error::MultipleStatement => {
            return Error::Sql {
                code: SqlCode::SqlManyStatements,
                message: "SQL string contains more than one statement".into(),
                server_code: None,
                extended: None,
                statement_index: None,
            }
        }
        other => (1, other.to_string()),
    };
    if let Some(coded) = Error::from_sql_message(&message) {
        return coded;
    };
    Error::Sql {
        code: SqlCode::from_sqlite(rc),
        message,
        server_code: None,
        extended: super::codes::name(rc).map(|name| Extended { name, raw: rc }),
        statement_index: None,
    }
}
