//! Hrana responses: statement results, batch results read back through their
//! [`Plan`], server errors, HTTP pipeline bodies and WebSocket server messages.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::request::Plan;
use crate::error::{Error, Result};
use crate::sql::{ResultSet, Value};

/// An error object as the server sends it.
#[derive(Deserialize, Debug, Clone)]
pub struct ErrorBody {
    pub message: String,
    #[serde(default)]
    pub code: Option<String>,
}

impl ErrorBody {
    /// The error, with the server's code as its code (as in the official client).
    /// An UNSUPPORTED_VALUE raised by edgesync's triggers on the server keeps its code.
    pub fn into_error(self) -> Error {
        if let Some(coded) = Error::from_sql_message(&self.message) {
            return coded;
        }
        Error::from_server(self.code, self.message)
    }
}

#[derive(Deserialize, Debug)]
struct Col {
    name: Option<String>,
    decltype: Option<String>,
}

/// A statement's result as the server sends it.
#[derive(Deserialize, Debug)]
pub struct StmtResult {
    cols: Vec<Col>,
    rows: Vec<Vec<Value>>,
    affected_row_count: u64,
    last_insert_rowid: Option<String>,
    #[serde(default)]
    replication_index: Option<String>,
}

fn protocol<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::Protocol(format!("{what}: {e}"))
}

impl StmtResult {
    pub fn into_result_set(self) -> Result<ResultSet> {
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

/// A batch's result as the server sends it: per step a result, an error, or neither
/// (the step's condition was false).
#[derive(Deserialize, Debug)]
pub struct BatchResult {
    step_results: Vec<Option<StmtResult>>,
    step_errors: Vec<Option<ErrorBody>>,
}

impl Plan {
    /// The caller's results, or the error that failed the batch: `BEGIN`'s, the first
    /// failing statement's (with its index), or `COMMIT`'s.
    pub fn decode(&self, r: BatchResult) -> Result<Vec<ResultSet>> {
        let BatchResult {
            step_results,
            mut step_errors,
        } = r;
        let n = step_results.len();
        let last = self.commit.unwrap_or(self.first + self.count);
        if step_errors.len() != n || n < last.max(self.first + self.count) {
            return Err(Error::Protocol(format!(
                "a batch of at least {} steps answered with {n} results",
                last.max(self.first + self.count)
            )));
        }
        if let Some(e) = self.begin.and_then(|b| step_errors[b].take()) {
            return Err(e.into_error());
        }
        let mut out = Vec::with_capacity(self.count);
        let mut results = step_results.into_iter().skip(self.first);
        for i in 0..self.count {
            let step = self.first + i;
            if let Some(e) = step_errors[step].take() {
                return Err(e.into_error().at_statement(i));
            }
            match results.next().flatten() {
                Some(r) => out.push(r.into_result_set()?),
                None => return Err(Error::TransactionClosed {
                    message:
                        "Statement in a batch was not executed, probably because the transaction has been rolled back"
                            .into(),
                    statement_index: Some(i),
                }),
            }
        }
        if let Some(c) = self.commit {
            if let Some(e) = step_errors[c].take() {
                return Err(e.into_error());
            }
            if results.nth(c - self.first - self.count).flatten().is_none() {
                return Err(Error::Protocol("the server did not run the batch's COMMIT".into()));
            }
        }
        Ok(out)
    }
}

/// A stream request's response.
#[derive(Debug)]
pub enum Response {
    Execute(ResultSet),
    Batch(BatchResult),
    /// `sequence`, `close`, `open_stream`, `close_stream`: nothing to read.
    Done,
}

#[derive(Deserialize)]
struct ResponseJson<'a> {
    #[serde(rename = "type")]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
}

fn decode_response(raw: &RawValue) -> Result<Response> {
    let r: ResponseJson = serde_json::from_str(raw.get()).map_err(protocol("invalid response"))?;
    let result = || {
        r.result
            .ok_or_else(|| Error::Protocol(format!("a {} response without a result", r.kind)))
    };
    Ok(match r.kind.as_ref() {
        "execute" => {
            let s: StmtResult = serde_json::from_str(result()?.get()).map_err(protocol("invalid execute result"))?;
            Response::Execute(s.into_result_set()?)
        }
        "batch" => Response::Batch(serde_json::from_str(result()?.get()).map_err(protocol("invalid batch result"))?),
        _ => Response::Done,
    })
}

impl Response {
    pub fn into_result_set(self) -> Result<ResultSet> {
        match self {
            Response::Execute(rs) => Ok(rs),
            _ => Err(Error::Protocol("expected an execute response".into())),
        }
    }

    pub fn into_batch(self, plan: &Plan) -> Result<Vec<ResultSet>> {
        match self {
            Response::Batch(b) => plan.decode(b),
            _ => Err(Error::Protocol("expected a batch response".into())),
        }
    }
}

#[derive(Deserialize)]
struct StreamResultJson<'a> {
    #[serde(rename = "type")]
    kind: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    response: Option<&'a RawValue>,
    error: Option<ErrorBody>,
}

fn decode_stream_result(raw: &RawValue) -> Result<Result<Response>> {
    let r: StreamResultJson = serde_json::from_str(raw.get()).map_err(protocol("invalid stream result"))?;
    match (r.kind.as_ref(), r.response, r.error) {
        ("ok", Some(resp), _) => Ok(decode_response(resp)),
        ("error", _, Some(e)) => Ok(Err(e.into_error())),
        (k, _, _) => Err(Error::Protocol(format!("unexpected stream result {k:?}"))),
    }
}

/// An HTTP pipeline response.
pub struct Pipeline {
    /// The stream's baton for the next request (`None` once the stream is closed).
    pub baton: Option<String>,
    /// Where later requests of this stream go, if the server says.
    pub base_url: Option<String>,
    /// Per request: its response, or the error the server reported for it.
    pub results: Vec<Result<Response>>,
}

#[derive(Deserialize)]
struct PipelineJson<'a> {
    #[serde(default)]
    baton: Option<String>,
    #[serde(default)]
    base_url: Option<String>,
    #[serde(borrow)]
    results: Vec<&'a RawValue>,
}

/// Decodes a pipeline response body with `expected` results.
pub fn decode_pipeline(body: &[u8], expected: usize) -> Result<Pipeline> {
    let p: PipelineJson = serde_json::from_slice(body).map_err(protocol("invalid pipeline response"))?;
    if p.results.len() != expected {
        return Err(Error::Protocol(format!(
            "{} requests answered with {} results",
            expected,
            p.results.len()
        )));
    }
    let results = p.results.into_iter().map(decode_stream_result).collect::<Result<_>>()?;
    Ok(Pipeline {
        baton: p.baton,
        base_url: p.base_url,
        results,
    })
}

/// A WebSocket server message.
pub enum ServerMsg {
    HelloOk,
    HelloError(Error),
    Response { request_id: i32, result: Result<Response> },
}

#[derive(Deserialize)]
struct ServerMsgJson<'a> {
    #[serde(rename = "type")]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    request_id: Option<i32>,
    #[serde(borrow)]
    response: Option<&'a RawValue>,
    error: Option<ErrorBody>,
}

/// Decodes a WebSocket text message from the server.
pub fn decode_server_msg(text: &str) -> Result<ServerMsg> {
    let m: ServerMsgJson = serde_json::from_str(text).map_err(protocol("invalid server message"))?;
    let id = || {
        m.request_id
            .ok_or_else(|| Error::Protocol("a response without a request_id".into()))
    };
    match (m.kind.as_ref(), m.response, m.error) {
        ("hello_ok", _, _) => Ok(ServerMsg::HelloOk),
        ("hello_error", _, Some(e)) => Ok(ServerMsg::HelloError(e.into_error())),
        ("response_ok", Some(r), _) => Ok(ServerMsg::Response {
            request_id: id()?,
            result: decode_response(r),
        }),
        ("response_error", _, Some(e)) => Ok(ServerMsg::Response {
            request_id: id()?,
            result: Err(e.into_error()),
        }),
        (k, _, _) => Err(Error::Protocol(format!("unexpected server message {k:?}"))),
    }
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
