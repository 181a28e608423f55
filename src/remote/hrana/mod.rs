//! The Hrana protocol (libSQL's remote protocol, v2/v3, JSON encoding) as pure data:
//! building requests and decoding responses, over HTTP and over WebSocket. No I/O here.
//! Spec: <https://github.com/tursodatabase/libsql/blob/main/docs/HRANA_3_SPEC.md>.
//!
//! Over HTTP, one request is a *pipeline*: stream requests run in order on a server-side
//! stream (a database connection), named by a *baton* the server hands back after each
//! pipeline; a pipeline without a baton opens a fresh stream, and `close` ends it:
//!
//! ```json
//! {"baton":null,"requests":[{"type":"execute","stmt":{"sql":"select 1","want_rows":true}},{"type":"close"}]}
//! ```
//!
//! Over a WebSocket, the client says `hello` with its token, then sends numbered
//! `request`s on streams it opens and closes by id; responses come back by request id.
//!
//! A batch carries step conditions, so the server runs `BEGIN … COMMIT` and rolls back if
//! any step fails — a whole transaction in one request ([`Batch`]).

mod request;
mod response;

pub use request::{pipeline, Batch, ClientMsg, Cond, Plan, Request, StmtJson};
pub use response::{
    decode_pipeline, decode_server_msg, http_error_message, BatchResult, ErrorBody, Pipeline, Response, ServerMsg,
    StmtResult,
};

use crate::error::Result;
use crate::sql::{ResultSet, Statement, TransactionMode};

/// Body of a pipeline that executes one statement on a fresh stream and closes it.
pub fn encode_execute(stmt: &Statement) -> Result<Vec<u8>> {
    pipeline(None, &[Request::execute(None, stmt)?, Request::Close])
}

/// Body of a pipeline that runs `stmts` as one transaction ([`Batch::transaction`]) on a
/// fresh stream and closes it.
pub fn encode_batch(stmts: &[Statement], mode: TransactionMode) -> Result<Vec<u8>> {
    let batch = Batch::transaction(stmts, mode)?;
    pipeline(
        None,
        &[
            Request::Batch {
                stream_id: None,
                batch: &batch,
            },
            Request::Close,
        ],
    )
}

/// The first result of a pipeline of two requests (the second being `close`).
fn first(body: &[u8]) -> Result<Response> {
    decode_pipeline(body, 2)?
        .results
        .into_iter()
        .next()
        .expect("two results")
}

/// Decodes the response to [`encode_execute`].
pub fn decode_execute(body: &[u8]) -> Result<ResultSet> {
    first(body)?.into_result_set()
}

/// Decodes the response to [`encode_batch`] of `n` statements: one result per statement,
/// or the error that failed the batch (a statement's error names its index).
pub fn decode_batch(body: &[u8], n: usize) -> Result<Vec<ResultSet>> {
    let plan = Plan {
        begin: Some(0),
        first: 1,
        count: n,
        commit: Some(n + 1),
    };
    first(body)?.into_batch(&plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::sql::Value;

    #[test]
    fn execute_body_shape() {
        let s = Statement::new("select ?, :n").arg(1).named(":n", Value::Blob(vec![1]));
        let body = String::from_utf8(encode_execute(&s).unwrap()).unwrap();
        assert_eq!(
            body,
            r#"{"baton":null,"requests":[{"type":"execute","stmt":{"sql":"select ?, :n","args":[{"type":"integer","value":"1"}],"named_args":[{"name":":n","value":{"type":"blob","base64":"AQ=="}}],"want_rows":true}},{"type":"close"}]}"#
        );
    }

    #[test]
    fn batch_body_has_begin_commit_rollback() {
        let body = encode_batch(&["insert into t values(1)".into()], TransactionMode::Write).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let steps = v["requests"][0]["batch"]["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 4);
        assert_eq!(steps[0]["stmt"]["sql"], "BEGIN IMMEDIATE");
        assert_eq!(steps[1]["condition"], serde_json::json!({"type":"ok","step":0}));
        assert_eq!(steps[2]["stmt"]["sql"], "COMMIT");
        assert_eq!(
            steps[3]["condition"],
            serde_json::json!({"type":"not","cond":{"type":"ok","step":2}})
        );
    }

    #[test]
    fn migration_and_transaction_batches() {
        let stmts: Vec<Statement> = vec!["create table a(x)".into(), "insert into a values (1)".into()];
        let m = Batch::migration(&stmts).unwrap();
        assert_eq!(
            m.plan,
            Plan {
                begin: Some(1),
                first: 2,
                count: 2,
                commit: Some(4)
            }
        );
        let v = serde_json::to_value(&m).unwrap();
        let sqls: Vec<&str> = v["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["stmt"]["sql"].as_str().unwrap())
            .collect();
        assert_eq!(
            sqls,
            [
                "PRAGMA foreign_keys=off",
                "BEGIN DEFERRED",
                "create table a(x)",
                "insert into a values (1)",
                "COMMIT",
                "ROLLBACK",
                "PRAGMA foreign_keys=on"
            ]
        );
        let t = Batch::in_transaction(&stmts, Some(TransactionMode::Read)).unwrap();
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["steps"][0]["stmt"]["sql"], "BEGIN TRANSACTION READONLY");
        assert_eq!(v["steps"][2]["condition"], serde_json::json!({"type":"ok","step":1}));
        let t = Batch::in_transaction(&stmts, None).unwrap();
        let v = serde_json::to_value(&t).unwrap();
        assert!(v["steps"][0].get("condition").is_none());
        assert_eq!(t.plan.first, 0);
    }

    #[test]
    fn ws_messages() {
        let s = Statement::new("select 1");
        let req = Request::execute(Some(3), &s).unwrap();
        let msg = ClientMsg::Request {
            request_id: 7,
            request: &req,
        };
        assert_eq!(
            msg.to_json().unwrap(),
            r#"{"type":"request","request_id":7,"request":{"type":"execute","stream_id":3,"stmt":{"sql":"select 1","want_rows":true}}}"#
        );
        assert_eq!(
            ClientMsg::Hello { jwt: None }.to_json().unwrap(),
            r#"{"type":"hello","jwt":null}"#
        );
        let open = Request::OpenStream { stream_id: 1 };
        assert_eq!(
            serde_json::to_string(&open).unwrap(),
            r#"{"type":"open_stream","stream_id":1}"#
        );
        let ok = r#"{"type":"response_ok","request_id":7,"response":{"type":"execute","result":{"cols":[{"name":"1","decltype":null}],"rows":[[{"type":"integer","value":"1"}]],"affected_row_count":0,"last_insert_rowid":null}}}"#;
        match decode_server_msg(ok).unwrap() {
            ServerMsg::Response { request_id: 7, result } => {
                assert_eq!(
                    result.unwrap().into_result_set().unwrap().rows,
                    vec![vec![Value::Integer(1)]]
                )
            }
            _ => panic!("a response"),
        }
        let err = r#"{"type":"hello_error","error":{"message":"Authentication failed: The JWT is invalid","code":"AUTH_JWT_INVALID"}}"#;
        assert!(matches!(decode_server_msg(err).unwrap(), ServerMsg::HelloError(e) if e.code() == "AUTH_JWT_INVALID"));
        assert!(matches!(
            decode_server_msg(r#"{"type":"hello_ok"}"#).unwrap(),
            ServerMsg::HelloOk
        ));
        assert_eq!(decode_server_msg("{}").err().unwrap().code(), "HRANA_PROTO_ERROR");
    }

    #[test]
    fn rejects_nan_args() {
        let s = Statement::new("select ?").arg(f64::NAN);
        assert_eq!(encode_execute(&s).unwrap_err().code(), "INVALID_ARGUMENT");
    }

    #[test]
    fn decodes_execute() {
        let body = br#"{"baton":null,"base_url":null,"results":[{"type":"ok","response":{"type":"execute","result":{"cols":[{"name":"a","decltype":null}],"rows":[[{"type":"integer","value":"7"}]],"affected_row_count":0,"last_insert_rowid":"3","replication_index":null}}},{"type":"ok","response":{"type":"close"}}]}"#;
        let rs = decode_execute(body).unwrap();
        assert_eq!(rs.columns, vec!["a"]);
        assert_eq!(rs.rows, vec![vec![Value::Integer(7)]]);
        assert_eq!(rs.last_insert_rowid, Some(3));
    }

    #[test]
    fn server_codes_are_the_error_codes() {
        let body = br#"{"results":[{"type":"error","error":{"message":"SQLite error: UNIQUE constraint failed: t.id","code":"SQLITE_CONSTRAINT"}},{"type":"ok","response":{"type":"close"}}]}"#;
        assert_eq!(decode_execute(body).unwrap_err().code(), "SQLITE_CONSTRAINT");
        let body = br#"{"results":[{"type":"error","error":{"message":"SQL string could not be parsed: near \"selec\"","code":"SQL_PARSE_ERROR"}},{"type":"ok","response":{"type":"close"}}]}"#;
        let e = decode_execute(body).unwrap_err();
        assert_eq!(e.code(), "SQL_PARSE_ERROR");
        assert_eq!(e.to_string(), "SQL string could not be parsed: near \"selec\"");
    }

    #[test]
    fn batch_error_reports_the_statement_index() {
        let ok = r#"{"cols":[],"rows":[],"affected_row_count":1,"last_insert_rowid":null}"#;
        let err = r#"{"message":"NOT NULL constraint failed: t.x","code":"SQLITE_CONSTRAINT"}"#;
        let body = format!(
            r#"{{"results":[{{"type":"ok","response":{{"type":"batch","result":{{"step_results":[{ok},{ok},null,null,{ok}],"step_errors":[null,null,{err},null,null]}}}}}},{{"type":"ok","response":{{"type":"close"}}}}]}}"#
        );
        let e = decode_batch(body.as_bytes(), 2).unwrap_err();
        assert_eq!(e.code(), "SQLITE_CONSTRAINT");
        assert!(matches!(
            e,
            Error::Sql {
                statement_index: Some(1),
                ..
            }
        ));
        // A statement skipped without an error: the transaction was rolled back inside.
        let body = format!(
            r#"{{"results":[{{"type":"ok","response":{{"type":"batch","result":{{"step_results":[{ok},{ok},null,null,{ok}],"step_errors":[null,null,null,null,null]}}}}}},{{"type":"ok","response":{{"type":"close"}}}}]}}"#
        );
        let e = decode_batch(body.as_bytes(), 2).unwrap_err();
        assert_eq!((e.code(), e.statement_index()), ("TRANSACTION_CLOSED", Some(1)));
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        for b in [
            &b""[..],
            b"<html>",
            b"{}",
            br#"{"results":[]}"#,
            br#"{"results":[{"type":"ok"},{"type":"ok"}]}"#,
        ] {
            assert_eq!(decode_execute(b).unwrap_err().code(), "HRANA_PROTO_ERROR");
        }
        let short = br#"{"results":[{"type":"ok","response":{"type":"execute","result":{"cols":[{"name":"a"}],"rows":[[]],"affected_row_count":0,"last_insert_rowid":null}}},{"type":"ok","response":{"type":"close"}}]}"#;
        assert_eq!(decode_execute(short).unwrap_err().code(), "HRANA_PROTO_ERROR");
    }

    proptest::proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = decode_execute(&bytes);
            let _ = decode_batch(&bytes, 3);
            let _ = http_error_message(&bytes);
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let _ = decode_server_msg(text);
            }
        }
    }
}
