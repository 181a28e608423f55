//! Tests of the error table (src/error.rs): codes, messages, classification.
use super::*;

#[test]
fn codes_are_stable() {
    let sql = |code| Error::Sql {
        code,
        message: "m".into(),
        server_code: None,
        extended: None,
        statement_index: None,
    };
    assert_eq!(sql(SqlCode::SqlParseError).code(), "SQL_PARSE_ERROR");
    assert_eq!(sql(SqlCode::SqliteConstraint).code(), "SQLITE_CONSTRAINT");
    assert_eq!(
        Error::from_server(Some("SQL_INPUT_ERROR".into()), "m".into()).code(),
        "SQL_INPUT_ERROR"
    );
    let odd = Error::from_server(Some("NEW_SERVER_CODE".into()), "m".into());
    assert_eq!(odd.code(), "UNKNOWN");
    assert!(matches!(odd, Error::Sql { server_code: Some(ref c), .. } if c == "NEW_SERVER_CODE"));
    assert_eq!(SqlCode::from_sqlite(1555), SqlCode::SqliteConstraint);
    assert_eq!(SqlCode::from_sqlite(1), SqlCode::SqliteError);
    assert_eq!(SqlCode::from_sqlite(4000), SqlCode::Unknown);
    assert_eq!(Error::ClientClosed.code(), "CLIENT_CLOSED");
    let auth = Error::Server {
        status: 401,
        message: "m".into(),
    };
    assert_eq!((auth.code(), auth.status()), ("SERVER_ERROR", Some(401)));
    let t = Error::Timeout {
        url: "u".into(),
        timeout_ms: 5,
    };
    assert_eq!(t.code(), "TIMEOUT");
    assert!(t.is_retryable());
    for c in SqlCode::ALL {
        assert_eq!(SqlCode::parse(c.as_str()), Some(*c));
    }
}

#[test]
fn every_code_is_listed_once_and_declared_for_typescript() {
    let mut seen = std::collections::BTreeSet::new();
    for code in Error::CODES {
        assert!(seen.insert(code), "{code} twice");
        assert!(!code.is_empty());
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
fn a_batch_error_names_its_statement() {
    let e = Error::from_server(
        Some("SQLITE_CONSTRAINT".into()),
        "UNIQUE constraint failed: t.id".into(),
    );
    let e = e.at_statement(2).at_statement(5);
    assert!(matches!(
        e,
        Error::Sql {
            statement_index: Some(2),
            ..
        }
    ));
    assert_eq!(e.to_string(), "UNIQUE constraint failed: t.id");
    assert!(matches!(Error::ClientClosed.at_statement(1), Error::ClientClosed));
}
