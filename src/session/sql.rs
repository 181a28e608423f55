//! The SQL a [`super::Sessions`] hands the worker, every value a bound parameter. The
//! ledger (`es_session_ledger`) is kept by triggers in the same transaction as each
//! write to `es_sessions`: per id, the highest version stored, whether the session was
//! destroyed, and until when to remember it.

pub(super) const INSERT: &str = "INSERT INTO es_sessions(id, home, created_ms, expires_ms, absolute_ms, version, body) VALUES (?, ?, ?, ?, ?, ?, ?)";
/// A touch reseals the body with the slid idle expiry (same version); it only ever
/// moves the expiry forward.
pub(super) const TOUCH: &str =
    "UPDATE es_sessions SET body = ?, home = ?, expires_ms = ? WHERE id = ? AND version = ? AND expires_ms < ?";
pub(super) const MOVE_HOME: &str = "UPDATE es_sessions SET home = ? WHERE id = ?";
pub(super) const UPDATE: &str =
    "UPDATE es_sessions SET body = ?, version = ?, home = ?, expires_ms = ? WHERE id = ? AND version = ?";
pub(super) const DELETE: &str = "DELETE FROM es_sessions WHERE id = ?";
pub(super) const DELETE_EXPIRED: &str =
    "DELETE FROM es_sessions WHERE id = ? AND (expires_ms <= ? OR absolute_ms <= ?)";
pub(super) const GC: &str = "DELETE FROM es_sessions WHERE expires_ms <= ? OR absolute_ms <= ?";
pub(super) const GC_LEDGER: &str = "DELETE FROM es_session_ledger WHERE until_ms <= ?";

/// The tables, indexes and ledger triggers, one statement each (idempotent).
pub(super) const SCHEMA_STATEMENTS: [&str; 8] = [
    "CREATE TABLE IF NOT EXISTS es_sessions(id TEXT PRIMARY KEY, home TEXT NOT NULL, created_ms REAL NOT NULL, expires_ms REAL NOT NULL, absolute_ms REAL NOT NULL, version INTEGER NOT NULL, body BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS es_sessions_expires ON es_sessions(expires_ms)",
    "CREATE INDEX IF NOT EXISTS es_sessions_absolute ON es_sessions(absolute_ms)",
    "CREATE TABLE IF NOT EXISTS es_session_ledger(id TEXT PRIMARY KEY, version INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0, until_ms REAL NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS es_session_ledger_until ON es_session_ledger(until_ms)",
    "CREATE TRIGGER IF NOT EXISTS es_sessions_ledger_insert AFTER INSERT ON es_sessions BEGIN INSERT INTO es_session_ledger(id, version, revoked, until_ms) VALUES (new.id, new.version, 0, new.absolute_ms) ON CONFLICT(id) DO UPDATE SET version = max(version, excluded.version); END",
    "CREATE TRIGGER IF NOT EXISTS es_sessions_ledger_update AFTER UPDATE OF version ON es_sessions BEGIN UPDATE es_session_ledger SET version = max(version, new.version) WHERE id = new.id; END",
    "CREATE TRIGGER IF NOT EXISTS es_sessions_ledger_delete AFTER DELETE ON es_sessions BEGIN UPDATE es_session_ledger SET revoked = 1 WHERE id = old.id; END",
];
/// Reads one session with its ledger entry; one argument, the id. Columns in
/// [`super::StoredRow`] order.
pub(super) const SELECT: &str = "SELECT s.home, s.created_ms, s.expires_ms, s.absolute_ms, s.version, s.body, l.version, l.revoked FROM es_sessions s LEFT JOIN es_session_ledger l ON l.id = s.id WHERE s.id = ?";
/// Confirms a cached copy: the ledger's version and revocation for one id (run
/// on the primary; pass the answer to [`super::Sessions::validated`]).
pub(super) const VALIDATE: &str = "SELECT version, revoked FROM es_session_ledger WHERE id = ?";
