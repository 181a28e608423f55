//! Hrana requests as JSON: statements, batches (with the step conditions that make a
//! batch a transaction) and the stream requests that carry them, over HTTP (a pipeline
//! body) and over WebSocket (a `request` message with a stream id).

use serde::Serialize;

use crate::error::{Error, Result};
use crate::sql::{Statement, TransactionMode, Value};

#[derive(Serialize)]
struct NamedArg<'a> {
    name: &'a str,
    value: &'a Value,
}

/// A statement as Hrana sends it.
#[derive(Serialize)]
pub struct StmtJson<'a> {
    sql: &'a str,
    #[serde(skip_serializing_if = "<[Value]>::is_empty")]
    args: &'a [Value],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    named_args: Vec<NamedArg<'a>>,
    want_rows: bool,
}

impl<'a> StmtJson<'a> {
    /// A statement whose rows are wanted.
    pub fn new(stmt: &'a Statement) -> Self {
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

    /// Transaction control (`BEGIN`, `COMMIT`, a pragma): no arguments, no rows.
    pub fn plain(sql: &'a str) -> Self {
        StmtJson {
            sql,
            args: &[],
            named_args: Vec::new(),
            want_rows: false,
        }
    }
}

/// A batch step's condition.
#[derive(Serialize, Clone)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Cond {
    /// Step `step` ran and succeeded.
    Ok {
        step: usize,
    },
    Not {
        cond: Box<Cond>,
    },
}

impl Cond {
    fn not(c: Cond) -> Cond {
        Cond::Not { cond: Box::new(c) }
    }
}

#[derive(Serialize)]
struct BatchStep<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    condition: Option<Cond>,
    stmt: StmtJson<'a>,
}

/// A Hrana batch and where the caller's statements are in it: the steps that make it a
/// transaction (`BEGIN`, `COMMIT`, `ROLLBACK`, pragmas) around them.
#[derive(Serialize)]
pub struct Batch<'a> {
    steps: Vec<BatchStep<'a>>,
    #[serde(skip)]
    pub(crate) plan: Plan,
}

/// Step indices of a [`Batch`], for reading its result back ([`super::response`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// The `BEGIN` step, whose failure fails the whole batch.
    pub begin: Option<usize>,
    /// The step of the caller's first statement; the others follow it.
    pub first: usize,
    /// How many statements the caller gave.
    pub count: usize,
    /// The `COMMIT` step.
    pub commit: Option<usize>,
}

impl<'a> Batch<'a> {
    /// Where the caller's statements are among the steps.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    fn step(&mut self, condition: Option<Cond>, stmt: StmtJson<'a>) -> usize {
        self.steps.push(BatchStep { condition, stmt });
        self.steps.len() - 1
    }

    /// Each statement runs only if the step before it succeeded.
    fn chain(&mut self, stmts: &'a [Statement], mut last: Option<usize>) -> Option<usize> {
        self.plan.first = self.steps.len();
        self.plan.count = stmts.len();
        for s in stmts {
            last = Some(self.step(last.map(|step| Cond::Ok { step }), StmtJson::new(s)));
        }
        last
    }

    /// `BEGIN <mode>`, the statements, `COMMIT` if the last one succeeded and `ROLLBACK`
    /// if the commit did not run or failed: `batch()` in one round trip, all or nothing.
    pub fn transaction(stmts: &'a [Statement], mode: TransactionMode) -> Result<Self> {
        Self::atomic(stmts, mode, false)
    }

    /// As [`Batch::transaction`] (deferred), between `PRAGMA foreign_keys=off` and
    /// `=on`: `migrate()`.
    pub fn migration(stmts: &'a [Statement]) -> Result<Self> {
        Self::atomic(stmts, TransactionMode::Deferred, true)
    }

    fn atomic(stmts: &'a [Statement], mode: TransactionMode, migration: bool) -> Result<Self> {
        stmts.iter().try_for_each(Statement::check)?;
        let mut b = Batch {
            steps: Vec::with_capacity(stmts.len() + 5),
            plan: Plan::default(),
        };
        if migration {
            b.step(None, StmtJson::plain("PRAGMA foreign_keys=off"));
        }
        let begin = b.step(None, StmtJson::plain(mode.begin_sql()));
        b.plan.begin = Some(begin);
        let last = b.chain(stmts, Some(begin));
        let commit = b.step(last.map(|step| Cond::Ok { step }), StmtJson::plain("COMMIT"));
        b.plan.commit = Some(commit);
        b.step(Some(Cond::not(Cond::Ok { step: commit })), StmtJson::plain("ROLLBACK"));
        if migration {
            b.step(None, StmtJson::plain("PRAGMA foreign_keys=on"));
        }
        Ok(b)
    }

    /// The statements of an interactive transaction's `batch()`, each only if the one
    /// before succeeded; with the transaction's `BEGIN` first when it has not begun yet.
    pub fn in_transaction(stmts: &'a [Statement], begin: Option<TransactionMode>) -> Result<Self> {
        stmts.iter().try_for_each(Statement::check)?;
        let mut b = Batch {
            steps: Vec::with_capacity(stmts.len() + 1),
            plan: Plan::default(),
        };
        let begin = begin.map(|mode| b.step(None, StmtJson::plain(mode.begin_sql())));
        b.plan.begin = begin;
        b.chain(stmts, begin);
        Ok(b)
    }
}

/// A request on a stream. Over HTTP the stream is the pipeline's (its baton); over a
/// WebSocket `stream_id` names it, and streams are opened and closed explicitly.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request<'a> {
    Execute {
        #[serde(skip_serializing_if = "Option::is_none")]
        stream_id: Option<i32>,
        stmt: StmtJson<'a>,
    },
    Batch {
        #[serde(skip_serializing_if = "Option::is_none")]
        stream_id: Option<i32>,
        batch: &'a Batch<'a>,
    },
    /// Statements separated by semicolons, run one after the other; results ignored.
    Sequence {
        #[serde(skip_serializing_if = "Option::is_none")]
        stream_id: Option<i32>,
        sql: &'a str,
    },
    /// HTTP: close the pipeline's stream.
    Close,
    /// WebSocket: open stream `stream_id`.
    OpenStream { stream_id: i32 },
    /// WebSocket: close stream `stream_id`.
    CloseStream { stream_id: i32 },
}

impl<'a> Request<'a> {
    /// `execute` of `stmt`, after checking its arguments can be sent.
    pub fn execute(stream_id: Option<i32>, stmt: &'a Statement) -> Result<Self> {
        stmt.check()?;
        Ok(Request::Execute {
            stream_id,
            stmt: StmtJson::new(stmt),
        })
    }

    /// A statement that returns no rows (`COMMIT`, `ROLLBACK`).
    pub fn run(stream_id: Option<i32>, sql: &'a str) -> Self {
        Request::Execute {
            stream_id,
            stmt: StmtJson::plain(sql),
        }
    }
}

#[derive(Serialize)]
struct PipelineBody<'a, 'r> {
    baton: Option<&'a str>,
    requests: &'r [Request<'a>],
}

/// An HTTP pipeline body: `requests` run in order on the stream `baton` names (a new
/// stream when `None`).
pub fn pipeline(baton: Option<&str>, requests: &[Request<'_>]) -> Result<Vec<u8>> {
    serde_json::to_vec(&PipelineBody { baton, requests }).map_err(cannot_encode)
}

pub(crate) fn cannot_encode(e: serde_json::Error) -> Error {
    Error::InvalidArgument(format!("cannot encode request: {e}"))
}

/// A WebSocket client message: `hello` with the token, or a numbered `request`.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg<'a> {
    Hello { jwt: Option<&'a str> },
    Request { request_id: i32, request: &'a Request<'a> },
}

impl ClientMsg<'_> {
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(cannot_encode)
    }
}
