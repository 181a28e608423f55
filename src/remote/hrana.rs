//! The Hrana pipeline protocol (libSQL's remote protocol over HTTP), as pure data:
//! building request bodies and decoding response bodies. No I/O here.
//!
//! One HTTP request = one pipeline = a list of stream requests executed in order on a
//! fresh server-side stream, ending with `close`:
//!
//! ```json
//! {"baton":null,"requests":[{"type":"execute","stmt":{"sql":"select 1","want_rows":true}},{"type":"close"}]}
//! ```
//!
//! A batch is one `batch` request whose steps carry conditions, so the server runs
//! `BEGIN … COMMIT` and rolls back if any step fails — all in a single round trip. Spec:
//! <https://github.com/tursodatabase/libsql/blob/main/docs/HRANA_3_SPEC.md>.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{Error, Result, SqlErrorKind};
use crate::sql::{ResultSet, Statement, TransactionMode, Value};

#[derive(Serialize)]
struct NamedArg<'a> {
    name: &'a str,
    value: &'a Value,
}

#[derive(Serialize)]
struct StmtJson<'a> {
    sql: &'a str,
    #[serde(skip_serializing_if = "<[Value]>::is_empty")]
    args: &'a [Value],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    named_args: Vec<NamedArg<'a>>,
    want_rows: bool,
}

impl<'a> StmtJson<'a> {
    fn new(stmt: &'a Statement) -> Self {
        StmtJson {
            sql: &stmt.sql,
            args: &stmt.args,
            named_args: stmt
                .named_args
                .iter()
                .map(|(name, value)| NamedArg { name, value })
                .collect(),
            want_rows: true,
        }
    }

    fn plain(sql: &'a str) -> Self {
        StmtJson {
            sql,
            args: &[],
            named_args: Vec::new(),
            want_rows: false,
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Condition {
    Ok { step: usize },
    Not { cond: Box<Condition> },
}

#[derive(Serialize)]
struct BatchStep<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    condition: Option<Condition>,
    stmt: StmtJson<'a>,
}

#[derive(Serialize)]
struct BatchJson<'a> {
    steps: Vec<BatchStep<'a>>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamRequest<'a> {
    Execute { stmt: StmtJson<'a> },
    Batch { batch: BatchJson<'a> },
    Close,
}

#[derive(Serialize)]
struct PipelineRequest<'a> {
    baton: Option<&'a str>,
    requests: [StreamRequest<'a>; 2],
}

fn encode(req: StreamRequest<'_>) -> Result<Vec<u8>> {
    serde_json::to_vec(&PipelineRequest {
        baton: None,
        requests: [req, StreamRequest::Close],
    })
    .map_err(|e| Error::InvalidArgument(format!("cannot encode request: {e}")))
}

/// Body of a pipeline that executes one statement.
pub fn encode_execute(stmt: &Statement) -> Result<Vec<u8>> {
    stmt.check()?;
    encode(StreamRequest::Execute {
        stmt: StmtJson::new(stmt),
    })
}

/// Body of a pipeline that runs `stmts` atomically: `BEGIN <mode>`, each statement
/// only if the previous step succeeded, `COMMIT` only if the last one did, and
/// `ROLLBACK` if the commit did not run or failed.
///
/// Step `i + 1` of the batch is statement `i`; [`decode_batch`] maps them back.
pub fn encode_batch(stmts: &[Statement], mode: TransactionMode) -> Result<Vec<u8>> {
    stmts.iter().try_for_each(Statement::check)?;
    let n = stmts.len();
    let mut steps = Vec::with_capacity(n + 3);
    steps.push(BatchStep {
        condition: None,
        stmt: StmtJson::plain(mode.begin_sql()),
    });
    for (i, s) in stmts.iter().enumerate() {
        steps.push(BatchStep {
            condition: Some(Condition::Ok { step: i }),
            stmt: StmtJson::new(s),
        });
    }
    steps.push(BatchStep {
        condition: Some(Condition::Ok { step: n }),
        stmt: StmtJson::plain("COMMIT"),
    });
    steps.push(BatchStep {
        condition: Some(Condition::Not {
            cond: Box::new(Condition::Ok { step: n + 1 }),
        }),
        stmt: StmtJson::plain("ROLLBACK"),
    });
    encode(StreamRequest::Batch {
        batch: BatchJson { steps },
    })
}

#[derive(Deserialize)]
struct PipelineResponse<'a> {
    #[serde(borrow)]
    results: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct StreamResult<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(borrow)]
    response: Option<&'a RawValue>,
    error: Option<ErrorBody>,
}

/// An error object as the server sends it.
#[derive(Deserialize, Debug, Clone)]
pub struct ErrorBody {
    pub message: String,
    #[serde(default)]
    pub code: Option<String>,
}

#[derive(Deserialize)]
struct ExecuteResponse {
    result: StmtResult,
}

#[derive(Deserialize)]
struct BatchResponse {
    result: BatchResult,
}

#[derive(Deserialize)]
struct Col {
    name: Option<String>,
    decltype: Option<String>,
}

#[derive(Deserialize)]
struct StmtResult {
    cols: Vec<Col>,
    rows: Vec<Vec<Value>>,
    affected_row_count: u64,
    last_insert_rowid: Option<String>,
    #[serde(default)]
    replication_index: Option<String>,
}

#[derive(Deserialize)]
struct BatchResult {
    step_results: Vec<Option<StmtResult>>,
    step_errors: Vec<Option<ErrorBody>>,
}

fn protocol<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::Protocol(format!("{what}: {e}"))
}

impl StmtResult {
    fn into_result_set(self) -> Result<ResultSet> {
        let width = self.cols.len();
        if let Some(bad) = self.rows.iter().find(|r| r.len() != width) {
            return Err(Error::Protocol(format!(
                "row has {} values but the result has {width} columns",
                bad.len()
            )));
        }
        let last_insert_rowid = match self.last_insert_rowid {
            None => None,
            Some(s) => Some(s.parse::<i64>().map_err(protocol("bad last_insert_rowid"))?),
        };
        let replication_index = match self.replication_index {
            None => None,
            Some(s) => Some(s.parse::<u64>().map_err(protocol("bad replication_index"))?),
        };
        let (columns, column_types) = self
            .cols
            .into_iter()
            .map(|c| (c.name.unwrap_or_default(), c.decltype.unwrap_or_default()))
            .unzip();
        Ok(ResultSet {
            columns,
            column_types,
            rows: self.rows,
            rows_affected: self.affected_row_count,
            last_insert_rowid,
            replication_index,
        })
    }
}

/// Turns a server error object into a typed error.
pub fn classify_error(body: ErrorBody, step: Option<usize>) -> Error {
    if let Some(coded) = Error::from_sql_message(&body.message) {
        return coded;
    }
    let code = body.code.as_deref().unwrap_or("");
    let msg = body.message.to_ascii_lowercase();
    if code.contains("AUTH") || code == "PERMISSION_DENIED" || msg.contains("authorization forbidden") {
        return Error::PermissionDenied { message: body.message };
    }
    let kind = if code == "SQL_PARSE_ERROR" || msg.contains("syntax error") || msg.contains("incomplete input") {
        SqlErrorKind::Syntax
    } else if code.starts_with("SQLITE_CONSTRAINT") || msg.contains("constraint failed") {
        SqlErrorKind::Constraint
    } else {
        SqlErrorKind::Other
    };
    Error::Sql {
        kind,
        message: body.message,
        server_code: body.code,
        step,
    }
}

/// Decodes the first stream result of a pipeline body: the response JSON on success,
/// the typed error otherwise.
fn first_result(body: &[u8]) -> Result<&RawValue> {
    let resp: PipelineResponse = serde_json::from_slice(body).map_err(protocol("invalid pipeline response"))?;
    let first = resp
        .results
        .first()
        .ok_or_else(|| Error::Protocol("pipeline response has no results".into()))?;
    let res: StreamResult = serde_json::from_str(first.get()).map_err(protocol("invalid stream result"))?;
    match (res.kind, res.response, res.error) {
        ("ok", Some(r), _) => Ok(r),
        ("error", _, Some(e)) => Err(classify_error(e, None)),
        (k, _, _) => Err(Error::Protocol(format!("unexpected stream result {k:?}"))),
    }
}

/// Decodes the response to [`encode_execute`].
pub fn decode_execute(body: &[u8]) -> Result<ResultSet> {
    let raw = first_result(body)?;
    let r: ExecuteResponse = serde_json::from_str(raw.get()).map_err(protocol("invalid execute result"))?;
    r.result.into_result_set()
}

/// Decodes the response to [`encode_batch`] with `n` statements: one result per
/// statement, or the first failing statement's error (index relative to `stmts`).
pub fn decode_batch(body: &[u8], n: usize) -> Result<Vec<ResultSet>> {
    let raw = first_result(body)?;
    let r: BatchResponse = serde_json::from_str(raw.get()).map_err(protocol("invalid batch result"))?;
    let BatchResult {
        step_results,
        mut step_errors,
    } = r.result;
    if step_results.len() != n + 3 || step_errors.len() != n + 3 {
        return Err(Error::Protocol(format!(
            "batch of {} steps answered with {} results",
            n + 3,
            step_results.len()
        )));
    }
    // BEGIN, then the statements, then COMMIT: report the first error in that order.
    if let Some((step, e)) = step_errors
        .iter_mut()
        .take(n + 2)
        .enumerate()
        .find_map(|(i, e)| e.take().map(|e| (i, e)))
    {
        let user_step = (1..=n).contains(&step).then(|| step - 1);
        return Err(classify_error(e, user_step));
    }
    if step_results[n + 1].is_none() {
        return Err(Error::Protocol("the server did not run the batch's COMMIT".into()));
    }
    let mut out = Vec::with_capacity(n);
    for (i, r) in step_results.into_iter().skip(1).take(n).enumerate() {
        let r = r.ok_or_else(|| Error::Protocol(format!("batch step {i} has neither result nor error")))?;
        out.push(r.into_result_set()?);
    }
    Ok(out)
}

/// Extracts a readable message from an HTTP error body (JSON `{"error": …}` or text).
pub fn http_error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct E {
        error: Option<String>,
        message: Option<String>,
    }
    if let Ok(E { error, message }) = serde_json::from_slice::<E>(body) {
        if let Some(m) = error.or(message) {
            return m;
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut cut: String = text.chars().take(300).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    if cut.is_empty() {
        "(empty response)".into()
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn decodes_errors() {
        let body = br#"{"results":[{"type":"error","error":{"message":"UNIQUE constraint failed: t.id","code":"SQLITE_CONSTRAINT_UNIQUE"}}]}"#;
        assert_eq!(decode_execute(body).unwrap_err().code(), "SQL_CONSTRAINT");
        let body = br#"{"results":[{"type":"error","error":{"message":"near \"selec\": syntax error","code":"SQL_PARSE_ERROR"}}]}"#;
        assert_eq!(decode_execute(body).unwrap_err().code(), "SQL_SYNTAX_ERROR");
    }

    #[test]
    fn batch_error_reports_user_step() {
        let ok = r#"{"cols":[],"rows":[],"affected_row_count":1,"last_insert_rowid":null}"#;
        let err = r#"{"message":"NOT NULL constraint failed: t.x","code":"SQLITE_CONSTRAINT_NOTNULL"}"#;
        let body = format!(
            r#"{{"results":[{{"type":"ok","response":{{"type":"batch","result":{{"step_results":[{ok},{ok},null,null,{ok}],"step_errors":[null,null,{err},null,null]}}}}}}]}}"#
        );
        let e = decode_batch(body.as_bytes(), 2).unwrap_err();
        assert_eq!(e.code(), "SQL_CONSTRAINT");
        assert!(matches!(e, Error::Sql { step: Some(1), .. }));
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        for b in [
            &b""[..],
            b"<html>",
            b"{}",
            br#"{"results":[]}"#,
            br#"{"results":[{"type":"ok"}]}"#,
        ] {
            assert_eq!(decode_execute(b).unwrap_err().code(), "PROTOCOL_ERROR");
        }
        let short = br#"{"results":[{"type":"ok","response":{"type":"execute","result":{"cols":[{"name":"a"}],"rows":[[]],"affected_row_count":0,"last_insert_rowid":null}}}]}"#;
        assert_eq!(decode_execute(short).unwrap_err().code(), "PROTOCOL_ERROR");
    }

    proptest::proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = decode_execute(&bytes);
            let _ = decode_batch(&bytes, 3);
            let _ = http_error_message(&bytes);
        }
    }
}
