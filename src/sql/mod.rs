//! The SQL types every layer shares: [`Value`], [`Statement`], [`ResultSet`] and
//! [`TransactionMode`]. No I/O and no encoding lives here, so the local store, the
//! remote client, the CRDTs and the sync engine can all use them without depending on
//! each other (the Hrana JSON form of a value is in `remote`).
//!
//! ```
//! use edgesync::sql::{ResultSet, Statement, TransactionMode, Value};
//! let s = Statement::new("select ? + 1").arg(41);
//! assert_eq!(s.args, [Value::Integer(41)]);
//! assert_eq!(TransactionMode::parse("write"), Some(TransactionMode::Write));
//! let rs = ResultSet { columns: vec!["n".into()], rows: vec![vec![Value::Integer(42)]], ..Default::default() };
//! assert_eq!(rs.get(0, "n"), Some(&Value::Integer(42)));
//! ```

pub mod packed;
mod statement;
mod value;

pub use statement::{ResultSet, Statement, TransactionMode};
pub use value::{Value, ValueRef};
