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

impl SqlCode {
    /// The code for SQLite's primary result code `rc` (the low byte of an extended code).
    pub fn from_sqlite(rc: i32) -> SqlCode {
        use SqlCode::*;
        const BY_RC: [SqlCode; 29] = [
            Unknown,
            SqliteError,
            SqliteInternal,
            SqlitePerm,
            SqliteAbort,
            SqliteBusy,
            SqliteLocked,
            SqliteNomem,
            SqliteReadonly,
            SqliteInterrupt,
            SqliteIoerr,
            SqliteCorrupt,
            SqliteNotfound,
            SqliteFull,
            SqliteCantopen,
            SqliteProtocol,
            SqliteEmpty,
            SqliteSchema,
            SqliteToobig,
            SqliteConstraint,
            SqliteMismatch,
            SqliteMisuse,
            SqliteNolfs,
            SqliteAuth,
            SqliteFormat,
            SqliteRange,
            SqliteNotadb,
            SqliteNotice,
            SqliteWarning,
        ];
        BY_RC.get((rc & 0xff) as usize).copied().unwrap_or(Unknown)
    }

    /// Whether the statement broke a PRIMARY KEY, UNIQUE, NOT NULL, CHECK or FOREIGN KEY
    /// constraint (the server's and the local database's code alike).
    pub fn is_constraint(self) -> bool {
        self == SqlCode::SqliteConstraint
    }
}

/// SQLite's extended result code of a local failure, as the official client reports it
/// (`extendedCode: "SQLITE_CONSTRAINT_PRIMARYKEY"`, `rawCode: 1555`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extended {
    pub name: &'static str,
    pub raw: i32,
}

/// Errors returned by every edgesync operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database URL cannot be used. `reason` is the whole message.
    #[error("{reason}")]
    UrlInvalid { url: String, reason: String },

    /// The URL's scheme is not one this client speaks.
    #[error("{reason}")]
    UrlSchemeNotSupported { url: String, reason: String },

    /// The config asks for encryption (`encryptionKey`, `remoteEncryptionKey`), which
    /// edgesync does not implement.
    #[error("{0}")]
    EncryptionKeyNotSupported(String),

    /// The URL has a query parameter this client does not know.
    #[error("Unsupported URL query parameter {param:?}")]
    UrlParamNotSupported { url: String, param: String },

    /// The edge rejected a verified token's claims (no `sub`, an unknown access claim).
    /// A libSQL server's own 401 is [`Error::Server`] with status 401 (`SERVER_ERROR`,
    /// as from the official client).
    #[error("the server rejected the auth token: {message}")]
    AuthInvalid { message: String },

    /// The edge's principal may not do this (a read-only token writing or publishing).
    /// A libSQL server's own 403 is [`Error::Server`] with status 403.
    #[error("permission denied: {message}")]
    PermissionDenied { message: String },

    /// The database refused a statement or request: a libSQL server's error response, or
    /// a local SQLite error. `statement_index` is the statement's index inside a batch.
    #[error("{message}")]
    Sql {
        code: SqlCode,
        message: String,
        /// The server's code as it sent it (`code` is [`SqlCode::Unknown`] when it is not
        /// one of ours).
        server_code: Option<String>,
        /// A local SQLite error's extended result code.
        extended: Option<Extended>,
        statement_index: Option<usize>,
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

    /// The WebSocket failed: it could not connect, or it closed while requests were in
    /// flight.
    #[error("{0}")]
    WebSocket(String),

    /// This runtime has no `WebSocket` for a `ws://` or `wss://` URL.
    #[error("{0}")]
    WebSocketsNotSupported(String),

    /// A number that cannot be stored (NaN, ±infinity, a bigint beyond 64 bits), or an
    /// integer result that a `number` cannot hold exactly: a JS `RangeError`, as from the
    /// official client.
    #[error("{0}")]
    Range(String),

    /// A value of a type that cannot be bound (`undefined`, a function, a symbol), or a
    /// config that is not an object: a JS `TypeError`, as from the official client.
    #[error("{0}")]
    Type(String),

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
    #[error("The client is closed")]
    ClientClosed,

    /// The interactive transaction was committed, rolled back or closed; or a batch's
    /// statement did not run because the transaction was rolled back inside the batch.
    #[error("{message}")]
    TransactionClosed {
        message: String,
        statement_index: Option<usize>,
    },

    /// The local database's one connection is held by an open interactive transaction.
    #[error("{0}")]
    TransactionActive(String),

    /// `sync()` on a client that is not an embedded replica.
    #[error("sync not supported in {0} mode")]
    SyncNotSupported(&'static str),

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

/// Defines [`Error::code`], [`Error::CODES`] and [`SqlCode`] from one table, and the
/// TypeScript `ErrorCode` union from the same table ([`TS_ERROR_CODE`]), so the codes JS
/// sees can never differ from the codes Rust returns.
///
/// `sql` lists the codes a database reports for a failed statement or request, as the
/// official `@libsql/client` reports them in `code`: a libSQL server's own code (Hrana
/// `Error.code`, e.g. `SQL_PARSE_ERROR`) or, for a local database, SQLite's primary
/// result code (`SQLITE_CONSTRAINT`).
macro_rules! error_codes {
    (errors { $($variant:pat => $code:literal,)+ } sql { $($sql:ident => $sql_code:literal,)+ }) => {
        /// The code of an [`Error::Sql`]: what the database said, in the official client's
        /// words. A server code this table does not know is [`SqlCode::Unknown`] (its text
        /// stays in `server_code`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum SqlCode {
            $(#[doc = $sql_code] $sql,)+
        }

        impl SqlCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [SqlCode] = &[$(SqlCode::$sql),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(SqlCode::$sql => $sql_code,)+
                }
            }

            /// A server's code as it sent it; `None` when it is not one of ours.
            pub fn parse(code: &str) -> Option<SqlCode> {
                match code {
                    $($sql_code => Some(SqlCode::$sql),)+
                    _ => None,
                }
            }
        }

        impl Error {
            /// The stable code for this error, e.g. `"SQLITE_CONSTRAINT"`.
            pub fn code(&self) -> &'static str {
                match self {
                    Error::Sql { code, .. } => code.as_str(),
                    $($variant => $code,)+
                }
            }

            /// Every code [`Error::code`] returns, in declaration order (the codes of
            /// [`SqlCode`] last).
            pub const CODES: &'static [&'static str] = &[$($code,)+ $($sql_code),+];
        }

        /// The TypeScript declaration of every code: those of [`Error::CODES`], and
        /// `INTERNAL_ERROR`, which only the JS layer raises (a trap in the wasm module,
        /// i.e. a bug in edgesync). The wasm binding emits it into the package's type
        /// declarations (`src/wasm/error.rs`), where js/wasm-errors.ts imports it.
        pub const TS_ERROR_CODE: &str = concat!(
            "/** Stable error codes (docs/errors.md): generated from the Rust `Error` enum. */\n",
            "export type ErrorCode =",
            $("\n  | \"", $code, "\"",)+
            $("\n  | \"", $sql_code, "\"",)+
            "\n  | \"INTERNAL_ERROR\";\n"
        );
    };
}

error_codes! {
    errors {
        Error::UrlInvalid { .. } => "URL_INVALID",
        Error::UrlSchemeNotSupported { .. } => "URL_SCHEME_NOT_SUPPORTED",
        Error::UrlParamNotSupported { .. } => "URL_PARAM_NOT_SUPPORTED",
        Error::EncryptionKeyNotSupported(_) => "ENCRYPTION_KEY_NOT_SUPPORTED",
        Error::AuthInvalid { .. } => "AUTH_INVALID",
        Error::PermissionDenied { .. } => "PERMISSION_DENIED",
        Error::Server { .. } => "SERVER_ERROR",
        Error::Unreachable { .. } => "SERVER_UNREACHABLE",
        Error::Timeout { .. } => "TIMEOUT",
        Error::Protocol(_) => "HRANA_PROTO_ERROR",
        Error::WebSocket(_) => "HRANA_WEBSOCKET_ERROR",
        Error::WebSocketsNotSupported(_) => "WEBSOCKETS_NOT_SUPPORTED",
        Error::InvalidArgument(_) | Error::Range(_) | Error::Type(_) => "INVALID_ARGUMENT",
        Error::Decode { .. } => "DECODE_ERROR",
        Error::ClockDrift { .. } | Error::LocalClockSkew { .. } => "CLOCK_DRIFT",
        Error::InvalidOperation(_) => "INVALID_OPERATION",
        Error::ClientClosed => "CLIENT_CLOSED",
        Error::TransactionClosed { .. } => "TRANSACTION_CLOSED",
        Error::TransactionActive(_) => "TRANSACTION_ACTIVE",
        Error::SyncNotSupported(_) => "SYNC_NOT_SUPPORTED",
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
    sql {
        // Statement errors of a libSQL server (sqld's `StmtError::code`).
        SqlParseError => "SQL_PARSE_ERROR",
        SqlNoStatement => "SQL_NO_STATEMENT",
        SqlManyStatements => "SQL_MANY_STATEMENTS",
        ArgsInvalid => "ARGS_INVALID",
        ArgsBothPositionalAndNamed => "ARGS_BOTH_POSITIONAL_AND_NAMED",
        TransactionTimeout => "TRANSACTION_TIMEOUT",
        TransactionBusy => "TRANSACTION_BUSY",
        SqlInputError => "SQL_INPUT_ERROR",
        Blocked => "BLOCKED",
        ResponseTooLarge => "RESPONSE_TOO_LARGE",
        ProxyError => "PROXY_ERROR",
        // Request errors of a libSQL server (streams, stored SQL, cursors, auth).
        SqlStoreTooMany => "SQL_STORE_TOO_MANY",
        StreamNotOpen => "STREAM_NOT_OPEN",
        CursorNotOpen => "CURSOR_NOT_OPEN",
        StreamExpired => "STREAM_EXPIRED",
        StreamTooMany => "STREAM_TOO_MANY",
        StreamUnknown => "STREAM_UNKNOWN",
        AuthJwtInvalid => "AUTH_JWT_INVALID",
        AuthJwtExpired => "AUTH_JWT_EXPIRED",
        AuthJwtRequired => "AUTH_JWT_REQUIRED",
        AuthHeaderNotFound => "AUTH_HEADER_NOT_FOUND",
        AuthHeaderMalformed => "AUTH_HEADER_MALFORMED",
        AuthUnauthorized => "AUTH_UNAUTHORIZED",
        // SQLite's primary result codes: the server's names for a SQLite failure, and the
        // official client's `code` for a local database (its `extendedCode` has the detail).
        SqliteError => "SQLITE_ERROR",
        SqliteInternal => "SQLITE_INTERNAL",
        SqlitePerm => "SQLITE_PERM",
        SqliteAbort => "SQLITE_ABORT",
        SqliteBusy => "SQLITE_BUSY",
        SqliteLocked => "SQLITE_LOCKED",
        SqliteNomem => "SQLITE_NOMEM",
        SqliteReadonly => "SQLITE_READONLY",
        SqliteInterrupt => "SQLITE_INTERRUPT",
        SqliteIoerr => "SQLITE_IOERR",
        SqliteCorrupt => "SQLITE_CORRUPT",
        SqliteNotfound => "SQLITE_NOTFOUND",
        SqliteFull => "SQLITE_FULL",
        SqliteCantopen => "SQLITE_CANTOPEN",
        SqliteProtocol => "SQLITE_PROTOCOL",
        SqliteEmpty => "SQLITE_EMPTY",
        SqliteSchema => "SQLITE_SCHEMA",
        SqliteToobig => "SQLITE_TOOBIG",
        SqliteConstraint => "SQLITE_CONSTRAINT",
        SqliteMismatch => "SQLITE_MISMATCH",
        SqliteMisuse => "SQLITE_MISUSE",
        SqliteNolfs => "SQLITE_NOLFS",
        SqliteAuth => "SQLITE_AUTH",
        SqliteFormat => "SQLITE_FORMAT",
        SqliteRange => "SQLITE_RANGE",
        SqliteNotadb => "SQLITE_NOTADB",
        SqliteNotice => "SQLITE_NOTICE",
        SqliteWarning => "SQLITE_WARNING",
        // A libSQL server's name for SQLITE_ERROR (and any code it has no name for).
        SqliteUnknown => "SQLITE_UNKNOWN",
        // A server code this version of edgesync does not know (see `server_code`).
        Unknown => "UNKNOWN",
    }
}

impl Error {
    /// Whether retrying the same request later may succeed (the server was not reached
    /// or was temporarily failing). SQL and auth errors are never retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unreachable { .. } | Error::Timeout { .. } | Error::WebSocket(_) => true,
            Error::Server { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// How the message of an edgesync trigger's `RAISE` starts when it refuses a value
/// (see [`Error::from_sql_message`]).
pub const UNSUPPORTED_VALUE_PREFIX: &str = "edgesync UNSUPPORTED_VALUE: ";

impl Error {
    /// An [`Error::Sql`] a server reported: `code` is its code if we know it.
    pub fn from_server(code: Option<String>, message: String) -> Error {
        let parsed = code.as_deref().map(|c| SqlCode::parse(c).unwrap_or(SqlCode::Unknown));
        Error::Sql {
            code: parsed.unwrap_or(SqlCode::Unknown),
            message,
            server_code: code,
            extended: None,
            statement_index: None,
        }
    }

    /// The same error, as the failure of statement `i` of a batch (an error that already
    /// names its statement, or is not about a statement, is kept as it is).
    pub fn at_statement(self, i: usize) -> Error {
        match self {
            Error::Sql {
                code,
                message,
                server_code,
                extended,
                statement_index: None,
            } => Error::Sql {
                code,
                message,
                server_code,
                extended,
                statement_index: Some(i),
            },
            Error::TransactionClosed {
                message,
                statement_index: None,
            } => Error::TransactionClosed {
                message,
                statement_index: Some(i),
            },
            e => e,
        }
    }

    /// The index of the batch statement that failed, if this error is about one.
    pub fn statement_index(&self) -> Option<usize> {
        match self {
            Error::Sql { statement_index, .. } | Error::TransactionClosed { statement_index, .. } => *statement_index,
            _ => None,
        }
    }

    /// The HTTP status this error came with, if any (`SERVER_ERROR`).
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Server { status, .. } => Some(*status),
            _ => None,
        }
    }

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
#[path = "error_tests.rs"]
mod tests;
