//! Hrana over WebSocket, sans I/O: [`WsSession`] numbers requests and streams, turns them
//! into the text messages to send, and matches the server's messages back to what each
//! caller waits for. Whoever owns the socket (the wasm binding, over the JS `WebSocket`)
//! sends what it returns, feeds it what arrives, and tells it when the socket closed.
//!
//! A session is one connection: `hello` (the token) goes first, and requests may follow
//! at once — the server answers them in order per stream. Streams are connections on the
//! server; one statement runs on a stream opened for it and closed after it (pipelined:
//! `open_stream`, `execute`, `close_stream` in one go), an interactive transaction keeps
//! its stream open. When the socket closes, everything waiting fails, and the session is
//! done: the owner opens a new one for later calls (its streams are new too).

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::remote::hrana::{decode_server_msg, ClientMsg, Request, Response, ServerMsg};

/// Where a session is in its life.
#[derive(Debug, Clone, PartialEq)]
enum State {
    /// `hello` sent; requests may already follow.
    Open,
    /// The server refused `hello`, or the socket closed: every later call fails so.
    Failed(String, &'static str),
}

/// One WebSocket connection's requests. `W` is what a caller waits with (a promise's
/// resolvers in the binding; anything in tests).
pub struct WsSession<W> {
    state: State,
    next_request: i32,
    next_stream: i32,
    waiting: HashMap<i32, W>,
    /// The error a stream's requests failed with, for requests sent without a waiter
    /// (`open_stream`): it is reported by the stream's next waited-for call.
    broken_streams: HashMap<i32, Error>,
    /// Which stream each request without a waiter was on.
    stream_of: HashMap<i32, i32>,
}

/// What [`WsSession::receive`] found in a message.
pub enum Received<W> {
    /// A response for a waiter.
    Done(W, Result<Response>),
    /// Nothing to hand to anyone (`hello_ok`, a stream opened or closed).
    Nothing,
    /// The server refused the session (`hello_error`) or broke the protocol: these
    /// waiters fail with this error, and the socket should be closed.
    Failed(Vec<W>, Error),
}

fn wrap(id: i32) -> i32 {
    if id == i32::MAX {
        1
    } else {
        id + 1
    }
}

impl<W> Default for WsSession<W> {
    fn default() -> Self {
        WsSession {
            state: State::Open,
            next_request: 1,
            next_stream: 1,
            waiting: HashMap::new(),
            broken_streams: HashMap::new(),
            stream_of: HashMap::new(),
        }
    }
}

impl<W> WsSession<W> {
    /// A session and its first message, `hello` with the token.
    pub fn start(jwt: Option<&str>) -> Result<(Self, String)> {
        Ok((WsSession::default(), ClientMsg::Hello { jwt }.to_json()?))
    }

    /// Whether calls can still be made on this session.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// How many callers wait for an answer.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    fn check(&self) -> Result<()> {
        match &self.state {
            State::Open => Ok(()),
            State::Failed(message, code) => Err(failed(message, code)),
        }
    }

    /// A fresh stream id (the stream is opened by [`WsSession::open_stream`]).
    pub fn stream_id(&mut self) -> i32 {
        let id = self.next_stream;
        self.next_stream = wrap(id);
        id
    }

    /// The message for `request`; `waiter` is handed back with its response. A request
    /// without a waiter is answered to nobody, but its error is kept for its stream.
    pub fn request(&mut self, request: &Request<'_>, stream: Option<i32>, waiter: Option<W>) -> Result<String> {
        self.check()?;
        if let (Some(s), Some(_)) = (stream, &waiter) {
            if let Some(e) = self.broken_streams.remove(&s) {
                return Err(e);
            }
        }
        let request_id = self.next_request;
        self.next_request = wrap(request_id);
        let text = ClientMsg::Request { request_id, request }.to_json()?;
        match (waiter, stream) {
            (Some(w), _) => {
                self.waiting.insert(request_id, w);
            }
            (None, Some(s)) => {
                self.stream_of.insert(request_id, s);
            }
            (None, None) => {}
        }
        Ok(text)
    }

    /// The message that opens stream `id`.
    pub fn open_stream(&mut self, id: i32) -> Result<String> {
        self.request(&Request::OpenStream { stream_id: id }, Some(id), None)
    }

    /// The message that closes stream `id` (its requests already sent still run first).
    pub fn close_stream(&mut self, id: i32) -> Result<String> {
        self.broken_streams.remove(&id);
        self.request(&Request::CloseStream { stream_id: id }, None, None)
    }

    /// Reads a message from the server.
    pub fn receive(&mut self, text: &str) -> Received<W> {
        let msg = match decode_server_msg(text) {
            Ok(m) => m,
            Err(e) => return self.fail(e),
        };
        match msg {
            ServerMsg::HelloOk => Received::Nothing,
            ServerMsg::HelloError(e) => self.fail(e),
            ServerMsg::Response { request_id, result } => {
                if let Some(w) = self.waiting.remove(&request_id) {
                    return Received::Done(w, result);
                }
                if let (Some(stream), Err(e)) = (self.stream_of.remove(&request_id), result) {
                    self.broken_streams.insert(stream, e);
                }
                Received::Nothing
            }
        }
    }

    fn fail(&mut self, e: Error) -> Received<W> {
        self.state = State::Failed(e.to_string(), e.code());
        Received::Failed(self.waiting.drain().map(|(_, w)| w).collect(), e)
    }

    /// The socket closed (`code`, `reason` as the close event gives them, or an error
    /// message): every waiter fails, and so does every later call on this session.
    pub fn closed(&mut self, reason: &str) -> (Vec<W>, Error) {
        if let State::Failed(message, code) = &self.state {
            let e = failed(message, code);
            return (self.waiting.drain().map(|(_, w)| w).collect(), e);
        }
        let e = Error::WebSocket(reason.to_string());
        self.state = State::Failed(e.to_string(), e.code());
        (self.waiting.drain().map(|(_, w)| w).collect(), e)
    }
}

/// The error every call on a failed session gets: the one that failed it.
fn failed(message: &str, code: &str) -> Error {
    match crate::error::SqlCode::parse(code) {
        Some(_) => Error::from_server(Some(code.to_string()), message.to_string()),
        None => Error::WebSocket(message.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::Statement;

    fn response(id: i32) -> String {
        format!(
            r#"{{"type":"response_ok","request_id":{id},"response":{{"type":"execute","result":{{"cols":[],"rows":[],"affected_row_count":1,"last_insert_rowid":null}}}}}}"#
        )
    }

    #[test]
    fn numbers_requests_and_matches_responses() {
        let (mut s, hello) = WsSession::<&str>::start(Some("tok")).unwrap();
        assert_eq!(hello, r#"{"type":"hello","jwt":"tok"}"#);
        let stream = s.stream_id();
        let open = s.open_stream(stream).unwrap();
        assert!(open.contains(r#""request_id":1"#) && open.contains(r#""open_stream""#));
        let stmt = Statement::new("insert into t values (1)");
        let exec = s
            .request(&Request::execute(Some(stream), &stmt).unwrap(), Some(stream), Some("a"))
            .unwrap();
        assert!(exec.contains(r#""request_id":2"#));
        s.close_stream(stream).unwrap();
        assert_eq!(s.waiting(), 1);
        assert!(matches!(s.receive(r#"{"type":"hello_ok"}"#), Received::Nothing));
        assert!(matches!(
            s.receive(r#"{"type":"response_ok","request_id":1,"response":{"type":"open_stream"}}"#),
            Received::Nothing
        ));
        match s.receive(&response(2)) {
            Received::Done("a", Ok(r)) => assert_eq!(r.into_result_set().unwrap().rows_affected, 1),
            _ => panic!("a's response"),
        }
        assert_eq!(s.waiting(), 0);
    }

    #[test]
    fn a_failed_open_is_reported_by_the_streams_next_call() {
        let (mut s, _) = WsSession::<u8>::start(None).unwrap();
        let id = s.stream_id();
        s.open_stream(id).unwrap();
        let err = r#"{"type":"response_error","request_id":1,"error":{"message":"no","code":"STREAM_TOO_MANY"}}"#;
        assert!(matches!(s.receive(err), Received::Nothing));
        let stmt = Statement::new("select 1");
        let e = s
            .request(&Request::execute(Some(id), &stmt).unwrap(), Some(id), Some(1))
            .unwrap_err();
        assert_eq!(e.code(), "STREAM_TOO_MANY");
    }

    #[test]
    fn hello_error_and_close_fail_every_waiter_and_later_call() {
        let (mut s, _) = WsSession::<u8>::start(Some("bad")).unwrap();
        let stmt = Statement::new("select 1");
        s.request(&Request::execute(Some(1), &stmt).unwrap(), Some(1), Some(7))
            .unwrap();
        match s.receive(r#"{"type":"hello_error","error":{"message":"Authentication failed: The JWT is invalid","code":"AUTH_JWT_INVALID"}}"#) {
            Received::Failed(w, e) => {
                assert_eq!(w, [7]);
                assert_eq!(e.code(), "AUTH_JWT_INVALID");
            }
            _ => panic!("failed"),
        }
        assert!(!s.is_open());
        let e = s
            .request(&Request::execute(Some(1), &stmt).unwrap(), Some(1), Some(8))
            .unwrap_err();
        assert_eq!(e.code(), "AUTH_JWT_INVALID");

        let (mut s, _) = WsSession::<u8>::start(None).unwrap();
        s.request(&Request::execute(Some(1), &stmt).unwrap(), Some(1), Some(1))
            .unwrap();
        let (w, e) = s.closed("WebSocket was closed with code 1006");
        assert_eq!((w, e.code()), (vec![1], "HRANA_WEBSOCKET_ERROR"));
        assert!(e.is_retryable());
        assert_eq!(s.open_stream(2).unwrap_err().code(), "HRANA_WEBSOCKET_ERROR");
    }

    #[test]
    fn garbage_fails_the_session() {
        let (mut s, _) = WsSession::<u8>::start(None).unwrap();
        assert!(matches!(s.receive("not json"), Received::Failed(_, e) if e.code() == "HRANA_PROTO_ERROR"));
        assert!(!s.is_open());
    }
}
