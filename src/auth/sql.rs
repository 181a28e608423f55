//! Who may run which SQL through the edge.
//!
//! The lexical checks live in the router's classifier (one pass over the tokens,
//! [`Classification::refused`]); this module is the policy on top of them.

use super::principal::{Access, Principal};
use crate::router::{classify, Classification, StatementKind};
use crate::{Error, Result};

/// Whether `principal` may run a statement classified as `c`:
///
/// - a user principal runs no SQL of its own: `FORBIDDEN` (users reach their rows
///   through the sync gateway, which checks per-user rules);
/// - SQL the classifier refused ([`Classification::refused`]): `SQL_NOT_ALLOWED`,
///   for every principal;
/// - a read-only principal writing: `PERMISSION_DENIED`.
///
/// ```
/// use edgesync::auth::{authorize_sql, AuthConfig, Principal};
/// use edgesync::router::classify;
/// let config = AuthConfig::default();
/// let svc = Principal::from_claims(&serde_json::json!({"sub": "api", "role": "service", "a": "ro"}), &config).unwrap();
/// assert!(authorize_sql(&svc, &classify("select * from t").unwrap()).is_ok());
/// assert_eq!(authorize_sql(&svc, &classify("delete from t").unwrap()).unwrap_err().code(), "PERMISSION_DENIED");
/// assert_eq!(authorize_sql(&svc, &classify("select readfile('/etc/passwd')").unwrap()).unwrap_err().code(), "SQL_NOT_ALLOWED");
/// let user = Principal::from_claims(&serde_json::json!({"sub": "alice"}), &config).unwrap();
/// assert_eq!(authorize_sql(&user, &classify("select 1").unwrap()).unwrap_err().code(), "FORBIDDEN");
/// ```
pub fn authorize_sql(principal: &Principal, c: &Classification) -> Result<()> {
    principal.require_service("running SQL through /query and /batch")?;
    if let Some(why) = &c.refused {
        return Err(Error::SqlNotAllowed(why.clone()));
    }
    if principal.access == Access::ReadOnly && c.kind == StatementKind::Write {
        return Err(Error::PermissionDenied {
            message: "a read-only token (a: \"ro\") may only read".into(),
        });
    }
    Ok(())
}

/// Classifies `sql` and refuses what nobody may run through the edge
/// (`SQL_NOT_ALLOWED`), whoever asks.
///
/// ```
/// use edgesync::auth::guard;
/// assert!(guard("select * from t where id = ?").is_ok());
/// for bad in [
///     "select writefile('/tmp/x', 'y')",
///     "SELECT \"ReadFile\"('/etc/passwd')",
///     "select name from fsdir('/etc')",
///     "update sqlite_dbpage set data = zeroblob(4096) where pgno = 1",
///     "select sha3_query('select * from t')",
///     "attach database '/tmp/x.db' as x",
///     "vacuum into '/tmp/copy.db'",
///     "pragma writable_schema = 1",
///     "select * from es_sessions",
///     "select * from pragma_table_info('es_sessions')",
/// ] {
///     assert_eq!(guard(bad).unwrap_err().code(), "SQL_NOT_ALLOWED", "{bad}");
/// }
/// ```
pub fn guard(sql: &str) -> Result<Classification> {
    let c = classify(sql)?;
    match &c.refused {
        Some(why) => Err(Error::SqlNotAllowed(why.clone())),
        None => Ok(c),
    }
}
