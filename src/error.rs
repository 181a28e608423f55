//! One error type for the whole crate.
//!
//! Every variant has a stable machine-readable [`Error::code`] string. The codes are
//! part of the public contract: the JavaScript binding copies them onto the `code`
//! property of the `Error` objects it throws, and applications branch on them, so a
//! code is never renamed once released (new variants may be added).
//!
//! ```
//! use edgesync::Error;
//! let err = Error::InvalidArgument("NaN cannot be stored".into());
//! assert_eq!(err.code(), "INVALID_ARGUMENT");
//! ```

/// What kind of failure a SQL statement reported, as classified from the server's
/// error code and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlErrorKind {
    /// The statement does not parse (`near "selec": syntax error`).
    Syntax,
    /// A PRIMARY KEY, UNIQUE, NOT NULL, CHECK or FOREIGN KEY constraint failed.
    Constraint,
    /// Anything else SQLite reported (unknown table, type mismatch, busy, ...).
    Other,
}

/// Errors returned by every edgesync operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database URL cannot be used.
    #[error("invalid database URL {url:?}: {reason}")]
    UrlInvalid { url: String, reason: String },

    /// The server demands an auth token and none was given.
    #[error("the server requires an auth token (pass `authToken`): {message}")]
    AuthRequired { message: String },

    /// The server rejected the auth token (malformed, expired or signed by another key).
    #[error("the server rejected the auth token: {message}")]
    AuthInvalid { message: String },

    /// The token is valid but does not allow this operation (e.g. a read-only token
    /// writing).
    #[error("permission denied: {message}")]
    PermissionDenied { message: String },

    /// SQLite rejected a statement. `step` is the statement's index inside a batch.
    #[error("{}{message}", step.map(|s| format!("batch step {s}: ")).unwrap_or_default())]
    Sql {
        kind: SqlErrorKind,
        message: String,
        /// The server's own code, e.g. `SQLITE_CONSTRAINT_PRIMARYKEY`.
        server_code: Option<String>,
        step: Option<usize>,
    },

    /// No connection could be made (refused, DNS failure, TLS failure, reset).
    #[error("cannot reach the server at {url}: {reason}")]
    Unreachable { url: String, reason: String },

    /// The request did not complete within the configured timeout.
    #[error("request to {url} timed out after {timeout_ms} ms")]
    Timeout { url: String, timeout_ms: u32 },

    /// The server answered with an HTTP error status that is not about auth.
    #[error("server error (HTTP {status}): {message}")]
    Server { status: u16, message: String },

    /// The server's answer is not valid Hrana (wrong endpoint, proxy page, truncated body).
    #[error("protocol error: {0}")]
    Protocol(String),

    /// The caller passed a value or option that cannot be used.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// Bytes given to a decoder are truncated, corrupted, of another kind or version,
    /// or hostile. `offset` is where in the input the problem was found.
    #[error("cannot decode: {reason} (at byte {offset})")]
    Decode { reason: String, offset: usize },

    /// A remote timestamp is further ahead of the local clock than the allowed drift.
    #[error("clock drift: remote time {remote_ms} ms is {drift_ms} ms ahead of local time (max {max_drift_ms} ms)")]
    ClockDrift {
        remote_ms: u64,
        drift_ms: u64,
        max_drift_ms: u64,
    },

    /// This machine's clock differs from the server's by more than the allowed drift
    /// (found at sync): the replica's new writes use the server's time from now on.
    #[error(
        "clock drift: this replica's clock is {} ms {} the server's (max {max_drift_ms} ms); its new writes use the server's time",
        skew_ms.unsigned_abs(),
        if *skew_ms > 0 { "ahead of" } else { "behind" }
    )]
    LocalClockSkew { skew_ms: i64, max_drift_ms: u64 },

    /// A CRDT operation that cannot apply: unknown object type or operation, a position
    /// past the end of a text, a counter overflow.
    #[error("invalid operation: {0}")]
    InvalidOperation(String),

    /// The client was closed with `close()`.
    #[error("the client is closed")]
    ClientClosed,

    /// The local database file is open elsewhere: in another client of this process,
    /// or in another process (its lock file names it).
    #[error("database locked: {0}")]
    DatabaseLocked(String),

    /// The local database's storage is full (the disk, or the browser's quota for the
    /// origin): the write was rolled back and the database is intact; writes
    /// acknowledged before are kept.
    #[error("storage full: {0}")]
    StorageFull(String),

    /// A table or column cannot be replicated as asked (unknown, no primary key,
    /// unsupported type, reserved name).
    #[error("schema error: {0}")]
    Schema(String),

    /// The server's copy of a replicated table differs from the local one.
    #[error("schema mismatch: {0}")]
    SchemaMismatch(String),

    /// The server's sync state was recreated or cannot be trusted: its change log was
    /// dropped or restored from a backup (the replica re-reads the server's state), or
    /// edgesync's tables there were changed by hand.
    #[error("server state reset: {0}")]
    ServerReset(String),

    /// A write put a value in a replicated column that the column's policy cannot
    /// hold (a BLOB in a `text` column, `1.5` in a `counter`, a non-array in a `set`):
    /// refused by the writing statement itself, which changed nothing.
    #[error("unsupported value: {0}")]
    UnsupportedValue(String),

    /// The application's conflict resolver failed or returned an unusable value.
    #[error("conflict resolver failed: {0}")]
    Resolver(String),

    /// A change to one row is larger than the server accepts (sqld: a value or a
    /// statement of 5,000,000 bytes or more). The message names the table and key; the
    /// change is set aside (not retried) and everything else goes on syncing.
    #[error("row too large for the server: {0}")]
    RowTooLarge(String),

    /// A SQL text the query router cannot classify safely (unterminated string, quoted
    /// identifier or comment; empty input). It is never sent to a replica.
    #[error("cannot classify the statement: {0}")]
    QueryUnparseable(String),

    /// Edge configuration (regions, router or session options, keys) is invalid.
    #[error("configuration error: {0}")]
    Config(String),

    /// The write primary is unreachable or its circuit is open: the write was not
    /// acknowledged.
    #[error("the primary is unavailable: {0}")]
    PrimaryUnavailable(String),

    /// Every region that could serve a read failed or has its circuit open.
    #[error("no healthy region can serve the read: {0}")]
    NoHealthyRegion(String),

    /// A distributed session does not exist (never created, destroyed or collected).
    #[error("session not found: {0}")]
    SessionNotFound(String),

    /// A distributed session's idle or absolute lifetime has passed.
    #[error("session expired: {0}")]
    SessionExpired(String),

    /// A stored session failed authentication: modified, truncated, or sealed for
    /// another session id. Its contents are never returned.
    #[error("session rejected: {0}")]
    SessionTampered(String),

    /// A stored session is sealed under a key id the worker does not have.
    #[error("session key unknown: {0}")]
    SessionKeyUnknown(String),

    /// A session changed concurrently (another isolate wrote a newer version).
    #[error("session conflict: {0}")]
    SessionConflict(String),

    /// The authenticated principal may not do this (a user token running SQL, a
    /// session of another subject, a hub channel the configuration does not grant).
    #[error("forbidden: {0}")]
    Forbidden(String),

    /// A statement uses something nobody may use through the edge, service tokens
    /// included: the server's file functions (`readfile`, `writefile`, `fsdir`, …),
    /// raw pages, SQL run from a string, `ATTACH`, `VACUUM INTO`, pragmas that write,
    /// or the worker's own tables.
    #[error("statement not allowed: {0}")]
    SqlNotAllowed(String),

    /// A hub channel that only the edge worker itself publishes on (`table:`, `sync:`).
    #[error("channel reserved: {0}")]
    ChannelReserved(String),

    /// The server failed on this statement (HTTP 500) while it answers others — e.g.
    /// a result it cannot encode, text that is not valid UTF-8: the statement's fault,
    /// not a server failure. A write may have been applied.
    #[error("the server failed on this statement: {0}")]
    StatementFailed(String),
}

/// Defines [`Error::code`] and [`Error::CODES`] from one table, and the TypeScript
/// `ErrorCode` union from the same table ([`TS_ERROR_CODE`]), so the codes JS sees can
/// never differ from the codes Rust returns.
macro_rules! error_codes {
    ($($variant:pat => $code:literal,)+) => {
        impl Error {
            /// The stable code for this error, e.g. `"SQL_CONSTRAINT"`.
            pub fn code(&self) -> &'static str {
                match self {
                    $($variant => $code,)+
                }
            }

            /// Every code [`Error::code`] returns, in declaration order.
            pub const CODES: &'static [&'static str] = &[$($code),+];
        }

        /// The TypeScript declaration of every code: those of [`Error::CODES`], and
        /// `INTERNAL_ERROR`, which only the JS layer raises (a trap in the wasm module,
        /// i.e. a bug in edgesync). The wasm binding emits it into the package's type
        /// declarations (`src/wasm/error.rs`), where js/wasm-errors.ts imports it.
        pub const TS_ERROR_CODE: &str = concat!(
            "/** Stable error codes (docs/errors.md): generated from the Rust `Error` enum. */\n",
            "export type ErrorCode =",
            $("\n  | \"", $code, "\"",)+
            "\n  | \"INTERNAL_ERROR\";\n"
        );
    };
}

error_codes! {
    Error::UrlInvalid { .. } => "URL_INVALID",
    Error::AuthRequired { .. } => "AUTH_REQUIRED",
    Error::AuthInvalid { .. } => "AUTH_INVALID",
    Error::PermissionDenied { .. } => "PERMISSION_DENIED",
    Error::Sql { kind: SqlErrorKind::Syntax, .. } => "SQL_SYNTAX_ERROR",
    Error::Sql { kind: SqlErrorKind::Constraint, .. } => "SQL_CONSTRAINT",
    Error::Sql { kind: SqlErrorKind::Other, .. } => "SQL_ERROR",
    Error::Unreachable { .. } => "SERVER_UNREACHABLE",
    Error::Timeout { .. } => "TIMEOUT",
    Error::Server { .. } => "SERVER_ERROR",
    Error::Protocol(_) => "PROTOCOL_ERROR",
    Error::InvalidArgument(_) => "INVALID_ARGUMENT",
    Error::Decode { .. } => "DECODE_ERROR",
    Error::ClockDrift { .. } | Error::LocalClockSkew { .. } => "CLOCK_DRIFT",
    Error::InvalidOperation(_) => "INVALID_OPERATION",
    Error::ClientClosed => "CLIENT_CLOSED",
    Error::DatabaseLocked(_) => "DATABASE_LOCKED",
    Error::StorageFull(_) => "STORAGE_FULL",
    Error::Schema(_) => "SCHEMA_ERROR",
    Error::SchemaMismatch(_) => "SCHEMA_MISMATCH",
    Error::UnsupportedValue(_) => "UNSUPPORTED_VALUE",
    Error::ServerReset(_) => "SERVER_RESET",
    Error::Resolver(_) => "RESOLVER_ERROR",
    Error::RowTooLarge(_) => "ROW_TOO_LARGE",
    Error::QueryUnparseable(_) => "QUERY_UNPARSEABLE",
    Error::Config(_) => "CONFIG_ERROR",
    Error::PrimaryUnavailable(_) => "PRIMARY_UNAVAILABLE",
    Error::NoHealthyRegion(_) => "NO_HEALTHY_REGION",
    Error::SessionNotFound(_) => "SESSION_NOT_FOUND",
    Error::SessionExpired(_) => "SESSION_EXPIRED",
    Error::SessionTampered(_) => "SESSION_TAMPERED",
    Error::SessionKeyUnknown(_) => "SESSION_KEY_UNKNOWN",
    Error::SessionConflict(_) => "SESSION_CONFLICT",
    Error::Forbidden(_) => "FORBIDDEN",
    Error::SqlNotAllowed(_) => "SQL_NOT_ALLOWED",
    Error::ChannelReserved(_) => "CHANNEL_RESERVED",
    Error::StatementFailed(_) => "STATEMENT_FAILED",
}

impl Error {
    /// Whether retrying the same request later may succeed (the server was not reached
    /// or was temporarily failing). SQL and auth errors are never retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unreachable { .. } | Error::Timeout { .. } => true,
            Error::Server { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// How the message of an edgesync trigger's `RAISE` starts when it refuses a value
/// (see [`Error::from_sql_message`]).
pub const UNSUPPORTED_VALUE_PREFIX: &str = "edgesync UNSUPPORTED_VALUE: ";

impl Error {
    /// The coded error a SQL error message stands for, when it was raised by one of
    /// edgesync's own triggers or SQL functions (locally, or on the server for another
    /// client's write) rather than by SQLite.
    pub fn from_sql_message(message: &str) -> Option<Error> {
        let at = message.find(UNSUPPORTED_VALUE_PREFIX)?;
        Some(Error::UnsupportedValue(
            message[at + UNSUPPORTED_VALUE_PREFIX.len()..].to_string(),
        ))
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let sql = |kind| Error::Sql {
            kind,
            message: "m".into(),
            server_code: None,
            step: None,
        };
        assert_eq!(sql(SqlErrorKind::Syntax).code(), "SQL_SYNTAX_ERROR");
        assert_eq!(sql(SqlErrorKind::Constraint).code(), "SQL_CONSTRAINT");
        assert_eq!(sql(SqlErrorKind::Other).code(), "SQL_ERROR");
        assert_eq!(Error::ClientClosed.code(), "CLIENT_CLOSED");
        let t = Error::Timeout {
            url: "u".into(),
            timeout_ms: 5,
        };
        assert_eq!(t.code(), "TIMEOUT");
        assert!(t.is_retryable());
    }

    #[test]
    fn every_code_is_listed_once_and_declared_for_typescript() {
        let mut seen = std::collections::BTreeSet::new();
        for code in Error::CODES {
            assert!(seen.insert(code), "{code} twice");
            assert!(code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'), "{code}");
            assert!(
                TS_ERROR_CODE.contains(&format!("| \"{code}\"")),
                "{code} not in the TypeScript union"
            );
        }
        assert!(TS_ERROR_CODE.contains("| \"INTERNAL_ERROR\";"));
        assert!(
            !Error::CODES.contains(&"INTERNAL_ERROR"),
            "INTERNAL_ERROR is the JS layer's own"
        );
    }

    /// docs/errors.md documents every code (a row `| `CODE` | …` of its tables).
    #[test]
    fn every_code_is_documented() {
        let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/errors.md")).unwrap();
        for code in Error::CODES.iter().chain(&["INTERNAL_ERROR"]) {
            assert!(
                docs.contains(&format!("| `{code}` |")),
                "docs/errors.md has no row for {code}"
            );
        }
    }

    #[test]
    fn batch_step_is_in_the_message() {
        let e = Error::Sql {
            kind: SqlErrorKind::Constraint,
            message: "UNIQUE constraint failed: t.id".into(),
            server_code: None,
            step: Some(2),
        };
        assert_eq!(e.to_string(), "batch step 2: UNIQUE constraint failed: t.id");
    }
}
