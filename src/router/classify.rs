//! Statement classification: is this SQL safe to read from a replica, which tables
//! does it read or write, and may its result be cached?
//!
//! The guiding rule is *conservative*: a statement we do not fully understand is a
//! write (it goes to the primary), and a write whose target we cannot name sets
//! [`Classification::writes_unknown`] (the read cache drops everything). Being wrong
//! in the other direction — reading a write from a stale replica, or keeping a cache
//! entry a write changed — is the bug this module exists to prevent.
//!
//! Schema changes (`CREATE`, `DROP`, `ALTER`) also list the pseudo-table
//! `sqlite_schema` as written, and reads of `sqlite_master`/`sqlite_schema` or of
//! `pragma_*` table-valued functions list it as read, so schema queries are
//! invalidated by DDL.
//!
//! Known limit: invalidation is by *name*. A read through a view, or a table changed
//! by a trigger, is only invalidated by the cache TTL or an unknown write.

use serde::Serialize;

use super::guard::{call, check_identifier, check_string, is_keyword, names_a_table, refused_statement};
use super::lexer::{ident_name, tokenize, Kind, Token};
use crate::{Error, Result};

/// Whether a statement may be served by a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StatementKind {
    /// Only reads: any region may answer.
    Read,
    /// Changes the database, controls a transaction, or is not understood: the
    /// primary only.
    Write,
}

/// The result of [`classify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Classification {
    /// `Write` if any statement is a write.
    pub kind: StatementKind,
    /// Number of non-empty statements.
    pub statements: usize,
    /// Tables read (after `FROM`/`JOIN`), lowercased, unquoted, without schema,
    /// CTE names excluded. Deduplicated (order unspecified).
    pub reads: Vec<String>,
    /// Tables written (the target of `INSERT`/`UPDATE`/`DELETE`/DDL).
    pub writes: Vec<String>,
    /// A write whose target cannot be named (`VACUUM`, `DROP INDEX`, a pragma
    /// assignment, transaction control, an unknown verb): invalidate everything.
    pub writes_unknown: bool,
    /// True only when every function the SQL calls is on an allow-list of
    /// deterministic, side-effect-free functions ([`super::DETERMINISTIC_FNS`]) and it uses
    /// no clock keyword (`CURRENT_TIMESTAMP`, …). Anything else — `random()`,
    /// `uuid()`, `date()`, an extension's or an application's function — makes the
    /// result uncacheable.
    pub deterministic: bool,
    /// A single deterministic `SELECT`/`VALUES` (possibly under `WITH`): its result
    /// may be cached. `PRAGMA` and `EXPLAIN` reads are never cached (their results
    /// change with writes we do not attribute to tables).
    pub cacheable: bool,
    /// Why nobody may run this SQL through the edge, if so (`router/guard.rs`): the
    /// server's file functions, raw pages, SQL run from a string, `ATTACH`,
    /// `VACUUM INTO`, a pragma that writes, or the worker's own tables. Set for the
    /// first such use found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// Classifies `sql` (one or more `;`-separated statements).
///
/// ```
/// use edgesync::router::{classify, StatementKind};
/// let c = classify("/* insert */ SELECT * FROM Users u JOIN main.\"Orders\" o ON o.uid = u.id").unwrap();
/// assert_eq!(c.kind, StatementKind::Read);
/// assert_eq!(c.reads, vec!["users", "orders"]);
/// assert!(c.cacheable);
///
/// let c = classify("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x RETURNING id").unwrap();
/// assert_eq!(c.kind, StatementKind::Write);
/// assert_eq!(c.writes, vec!["t"]);
///
/// assert_eq!(classify("select 'oops").unwrap_err().code(), "QUERY_UNPARSEABLE");
/// ```
pub fn classify(sql: &str) -> Result<Classification> {
    classify_with(sql, &mut Vec::new())
}

/// [`classify`] with a caller-owned token buffer, so the router's hot path does not
/// allocate one per call.
pub(crate) fn classify_with(sql: &str, toks: &mut Vec<Token>) -> Result<Classification> {
    tokenize(sql, toks)?;
    let mut c = Classification {
        kind: StatementKind::Read,
        statements: 0,
        reads: Vec::new(),
        writes: Vec::new(),
        writes_unknown: false,
        deterministic: true,
        cacheable: false,
        refused: None,
    };
    let mut select_like = false;
    let mut ctes = Vec::new();
    for range in Statements::new(sql, toks) {
        let stmt = &toks[range];
        check_parens(sql, stmt)?;
        c.statements += 1;
        select_like = classify_statement(sql, stmt, &mut c, &mut ctes);
    }
    if c.statements == 0 {
        return Err(Error::QueryUnparseable(
            "no statement (empty, comments or semicolons only)".into(),
        ));
    }
    c.cacheable = c.statements == 1 && c.kind == StatementKind::Read && c.deterministic && select_like;
    Ok(c)
}

/// Splits a token list on top-level `;`, skipping empty statements. The `;` inside a
/// `CREATE TRIGGER ... BEGIN ...; END` body do not split (SQLite's own rule).
struct Statements<'a> {
    sql: &'a str,
    toks: &'a [Token],
    pos: usize,
}

impl<'a> Statements<'a> {
    fn new(sql: &'a str, toks: &'a [Token]) -> Self {
        Statements { sql, toks, pos: 0 }
    }
}

impl Iterator for Statements<'_> {
    type Item = std::ops::Range<usize>;

    fn next(&mut self) -> Option<Self::Item> {
        let (sql, toks) = (self.sql, self.toks);
        while self.pos < toks.len() && toks[self.pos].is_punct(b';') {
            self.pos += 1;
        }
        if self.pos >= toks.len() {
            return None;
        }
        let start = self.pos;
        let trigger = is_create_trigger(sql, &toks[start..]);
        let (mut case_depth, mut trigger_done) = (0usize, false);
        let mut i = start;
        while i < toks.len() {
            let t = &toks[i];
            if t.is_punct(b';') && (!trigger || trigger_done) {
                break;
            }
            if trigger && t.kind == Kind::Word {
                if t.is_kw(sql, "case") {
                    case_depth += 1;
                } else if t.is_kw(sql, "end") {
                    if case_depth > 0 {
                        case_depth -= 1;
                    } else {
                        trigger_done = true;
                    }
                }
            }
            i += 1;
        }
        self.pos = i;
        Some(start..i)
    }
}

fn is_create_trigger(sql: &str, t: &[Token]) -> bool {
    if !t.first().is_some_and(|t| t.is_kw(sql, "create")) {
        return false;
    }
    let mut i = 1;
    if t.get(i)
        .is_some_and(|t| t.is_kw(sql, "temp") || t.is_kw(sql, "temporary"))
    {
        i += 1;
    }
    t.get(i).is_some_and(|t| t.is_kw(sql, "trigger"))
}

fn check_parens(sql: &str, stmt: &[Token]) -> Result<()> {
    let mut depth = 0usize;
    for t in stmt {
        match t.kind {
            Kind::Punct(b'(') => depth += 1,
            Kind::Punct(b')') => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| Error::QueryUnparseable(format!("unbalanced ')' at byte {}", t.start)))?
            }
            _ => {}
        }
    }
    if depth > 0 {
        let first = stmt.first().map_or("", |t| t.text(sql));
        return Err(Error::QueryUnparseable(format!(
            "unbalanced parentheses: {depth} '(' not closed in statement starting with {first:?}"
        )));
    }
    Ok(())
}

/// Read-only pragmas that may take an argument (`PRAGMA table_info(t)`).
const READ_PRAGMAS_ARG: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "integrity_check",
    "quick_check",
];

/// Pragmas that are reads only in their bare form: with an argument they set
/// (`PRAGMA user_version(5)` is `PRAGMA user_version = 5`).
const READ_PRAGMAS_BARE: &[&str] = &[
    "user_version",
    "schema_version",
    "application_id",
    "data_version",
    "page_count",
    "page_size",
    "max_page_count",
    "freelist_count",
    "database_list",
    "compile_options",
    "function_list",
    "module_list",
    "pragma_list",
    "collation_list",
    "encoding",
    "journal_mode",
    "auto_vacuum",
    "foreign_keys",
    "cache_size",
    "synchronous",
];

/// Keywords that read the clock without parentheses.
const NONDETERMINISTIC_KWS: &[&str] = &["current_date", "current_time", "current_timestamp"];

/// Words that end a table reference rather than alias it.
const CLAUSE_KWS: &[&str] = &[
    "where",
    "join",
    "left",
    "right",
    "full",
    "inner",
    "cross",
    "natural",
    "outer",
    "on",
    "using",
    "group",
    "order",
    "limit",
    "having",
    "window",
    "union",
    "except",
    "intersect",
    "returning",
    "indexed",
    "not",
    "as",
    "set",
    "do",
    "values",
    "select",
    "offset",
    "then",
    "else",
    "end",
    "when",
    "from",
];

#[inline]
pub(super) fn any_kw(word: &str, list: &[&str]) -> bool {
    list.iter()
        .any(|k| k.len() == word.len() && k.eq_ignore_ascii_case(word))
}

#[inline]
fn is_name(t: Option<&Token>) -> bool {
    t.is_some_and(|t| matches!(t.kind, Kind::Word | Kind::Quoted))
}

/// `name` or `schema.name` at `i`: the (lowercased) name, whether it was
/// schema-qualified, and the index after it.
pub(super) fn qualified_name(sql: &str, t: &[Token], i: usize) -> Option<(String, bool, usize)> {
    if !is_name(t.get(i)) {
        return None;
    }
    if t.get(i + 1).is_some_and(|d| d.is_punct(b'.')) && is_name(t.get(i + 2)) {
        return Some((ident_name(&t[i + 2], sql), true, i + 3));
    }
    Some((ident_name(&t[i], sql), false, i + 1))
}

/// The index just past the `)` matching the `(` at `i` (or the end).
fn skip_parens(t: &[Token], i: usize) -> usize {
    let mut depth = 0usize;
    let mut j = i;
    while j < t.len() {
        match t[j].kind {
            Kind::Punct(b'(') => depth += 1,
            Kind::Punct(b')') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
        j += 1;
    }
    t.len()
}

fn push_unique(list: &mut Vec<String>, name: String) {
    let name = match name.as_str() {
        "sqlite_master" | "sqlite_temp_master" | "sqlite_temp_schema" => "sqlite_schema".to_owned(),
        _ => name,
    };
    if !list.contains(&name) {
        list.push(name);
    }
}

/// Parses the CTE list after `WITH` at `i` (pointing just past `WITH`), collecting
/// CTE names; returns the index of the main statement's verb.
fn skip_ctes(sql: &str, t: &[Token], mut i: usize, names: &mut Vec<String>) -> Option<usize> {
    if t.get(i).is_some_and(|t| t.is_kw(sql, "recursive")) {
        i += 1;
    }
    loop {
        if !is_name(t.get(i)) {
            return None;
        }
        names.push(ident_name(&t[i], sql));
        i += 1;
        if t.get(i)?.is_punct(b'(') {
            i = skip_parens(t, i);
        }
        if !t.get(i)?.is_kw(sql, "as") {
            return None;
        }
        i += 1;
        if t.get(i)?.is_kw(sql, "not") {
            i += 1;
        }
        if t.get(i)?.is_kw(sql, "materialized") {
            i += 1;
        }
        if !t.get(i)?.is_punct(b'(') {
            return None;
        }
        i = skip_parens(t, i);
        if t.get(i)?.is_punct(b',') {
            i += 1;
            continue;
        }
        return Some(i);
    }
}

/// Table references after `FROM`/`JOIN` at `i`: `t [AS a]`, `s.t`, `(subquery) a`,
/// `fn(args)`, joined by commas. Subqueries are skipped here; the statement scan
/// visits their own `FROM`s.
fn table_refs(sql: &str, t: &[Token], mut i: usize, out: &mut Vec<(String, bool)>) {
    loop {
        match t.get(i) {
            Some(tok) if tok.is_punct(b'(') => i = skip_parens(t, i),
            _ => {
                let Some((name, qualified, next)) = qualified_name(sql, t, i) else {
                    return;
                };
                if t.get(next).is_some_and(|n| n.is_punct(b'(')) {
                    // A table-valued function: pragma_* ones read the schema.
                    if name.starts_with("pragma_") {
                        out.push(("sqlite_schema".to_owned(), true));
                    }
                    i = skip_parens(t, next);
                } else {
                    out.push((name, qualified));
                    i = next;
                }
            }
        }
        match t.get(i) {
            Some(a) if a.is_kw(sql, "as") => i += 2,
            Some(a) if a.kind == Kind::Quoted => i += 1,
            Some(a) if a.kind == Kind::Word && !any_kw(a.text(sql), CLAUSE_KWS) => i += 1,
            _ => {}
        }
        if t.get(i).is_some_and(|a| a.is_kw(sql, "indexed")) {
            i += 3;
        } else if t.get(i).is_some_and(|a| a.is_kw(sql, "not")) && t.get(i + 1).is_some_and(|a| a.is_kw(sql, "indexed"))
        {
            i += 2;
        }
        if t.get(i).is_some_and(|a| a.is_punct(b',')) {
            i += 1;
        } else {
            return;
        }
    }
}

/// Classifies one statement into `c`; returns whether it is a `SELECT`/`VALUES`
/// (the only cacheable shape).
fn classify_statement(sql: &str, t: &[Token], c: &mut Classification, ctes: &mut Vec<String>) -> bool {
    ctes.clear();
    let mut main = 0;
    let mut understood = true;
    if t[0].is_kw(sql, "with") {
        match skip_ctes(sql, t, 1, ctes) {
            Some(m) => main = m,
            None => understood = false,
        }
    }
    let verb = if understood { t[main].text(sql) } else { "" };
    let verb_is = |kw: &str| t[main].kind == Kind::Word && verb.eq_ignore_ascii_case(kw);

    let mut write = true;
    let mut select_like = false;
    let mut targets: Vec<String> = Vec::new();
    let mut unknown = false;
    // A `FROM` that names a write target, not a read (`DELETE FROM t`).
    let mut skip_from = usize::MAX;

    if !understood {
        unknown = true;
    } else if verb_is("select") || verb_is("values") {
        write = false;
        select_like = true;
    } else if verb_is("explain") {
        write = false;
    } else if verb_is("pragma") {
        write = !pragma_is_read(sql, t, main + 1);
        unknown = write;
    } else if verb_is("insert") || verb_is("replace") {
        // INSERT [OR x] INTO name / REPLACE INTO name
        let into = (main + 1..t.len().min(main + 4)).find(|&j| t[j].is_kw(sql, "into"));
        match into.and_then(|j| qualified_name(sql, t, j + 1)) {
            Some((name, _, _)) => targets.push(name),
            None => unknown = true,
        }
    } else if verb_is("update") {
        let mut j = main + 1;
        if t.get(j).is_some_and(|x| x.is_kw(sql, "or")) {
            j += 2;
        }
        match qualified_name(sql, t, j) {
            Some((name, _, _)) => targets.push(name),
            None => unknown = true,
        }
    } else if verb_is("delete") {
        if t.get(main + 1).is_some_and(|x| x.is_kw(sql, "from")) {
            skip_from = main + 1;
        }
        match qualified_name(sql, t, main + 2) {
            Some((name, _, _)) if skip_from != usize::MAX => targets.push(name),
            _ => unknown = true,
        }
    } else if verb_is("create") || verb_is("drop") || verb_is("alter") {
        unknown = !ddl_targets(sql, t, main, &mut targets);
        targets.push("sqlite_schema".to_owned());
    } else {
        // Transaction control, maintenance, ATTACH/DETACH, or a verb we do not
        // know: the primary, and nothing in the cache can be trusted after it.
        unknown = true;
    }

    // One pass over every token: reads after FROM/JOIN, nested CTE names, and calls
    // to non-deterministic functions.
    let mut reads: Vec<(String, bool)> = Vec::new();
    for i in 0..t.len() {
        let tok = &t[i];
        match tok.kind {
            Kind::Word => {
                let w = tok.text(sql);
                let next_is_paren = t.get(i + 1).is_some_and(|n| n.is_punct(b'('));
                if w.eq_ignore_ascii_case("from") {
                    if i != skip_from && !is_distinct_from(sql, t, i) {
                        table_refs(sql, t, i + 1, &mut reads);
                    }
                } else if w.eq_ignore_ascii_case("join") {
                    table_refs(sql, t, i + 1, &mut reads);
                } else if w.eq_ignore_ascii_case("with") && i > 0 {
                    skip_ctes(sql, t, i + 1, ctes);
                } else if any_kw(w, NONDETERMINISTIC_KWS) {
                    c.deterministic = false;
                } else if next_is_paren && !is_keyword(w) {
                    call(c, w, ctes, names_a_table(sql, t, i, verb_is("create")));
                }
                check_identifier(c, w);
            }
            Kind::Quoted => {
                let name = ident_name(tok, sql);
                if t.get(i + 1).is_some_and(|n| n.is_punct(b'(')) {
                    call(c, &name, ctes, names_a_table(sql, t, i, verb_is("create")));
                }
                check_identifier(c, &name);
            }
            Kind::Str if c.refused.is_none() => check_string(c, tok, sql),
            _ => {}
        }
    }
    if understood && c.refused.is_none() {
        if let Some(why) = refused_statement(sql, t, main, verb) {
            c.refused = Some(why);
        }
    }
    for (name, qualified) in reads {
        if qualified || !ctes.contains(&name) {
            push_unique(&mut c.reads, name);
        }
    }

    if write {
        c.kind = StatementKind::Write;
        if targets.is_empty() {
            unknown = true;
        }
        c.writes_unknown |= unknown;
        for name in targets {
            push_unique(&mut c.writes, name);
        }
    }
    select_like && !write
}

/// `a IS [NOT] DISTINCT FROM b`: that `FROM` is an operator, not a table list.
fn is_distinct_from(sql: &str, t: &[Token], i: usize) -> bool {
    i >= 2 && t[i - 1].is_kw(sql, "distinct") && (t[i - 2].is_kw(sql, "is") || t[i - 2].is_kw(sql, "not"))
}

/// `PRAGMA [schema.]name [(arg)]` is a read only for known read-only pragmas, and an
/// argument only for those that take one; `= value` is always a write.
pub(super) fn pragma_is_read(sql: &str, t: &[Token], i: usize) -> bool {
    let Some((name, _, next)) = qualified_name(sql, t, i) else {
        return false;
    };
    match t.get(next) {
        None => any_kw(&name, READ_PRAGMAS_ARG) || any_kw(&name, READ_PRAGMAS_BARE),
        Some(p) if p.is_punct(b'(') => any_kw(&name, READ_PRAGMAS_ARG) && skip_parens(t, next) == t.len(),
        Some(_) => false,
    }
}

/// Targets of `CREATE`/`DROP`/`ALTER` at `main`; false if they cannot be named.
fn ddl_targets(sql: &str, t: &[Token], main: usize, targets: &mut Vec<String>) -> bool {
    let verb = t[main].text(sql).to_ascii_lowercase();
    let mut i = main + 1;
    while t.get(i).is_some_and(|x| {
        x.is_kw(sql, "temp") || x.is_kw(sql, "temporary") || x.is_kw(sql, "unique") || x.is_kw(sql, "virtual")
    }) {
        i += 1;
    }
    let Some(object) = t
        .get(i)
        .filter(|x| x.kind == Kind::Word)
        .map(|x| x.text(sql).to_ascii_lowercase())
    else {
        return false;
    };
    i += 1;
    // IF [NOT] EXISTS
    if t.get(i).is_some_and(|x| x.is_kw(sql, "if")) {
        i += 1;
        if t.get(i).is_some_and(|x| x.is_kw(sql, "not")) {
            i += 1;
        }
        i += 1;
    }
    let Some((name, _, after)) = qualified_name(sql, t, i) else {
        return false;
    };
    match (verb.as_str(), object.as_str()) {
        ("create", "table" | "view") | ("drop", "table" | "view") => {
            targets.push(name);
            true
        }
        ("alter", "table") => {
            targets.push(name);
            // ALTER TABLE a RENAME TO b: b is changed too.
            if let Some(to) = (after..t.len()).find(|&j| t[j].is_kw(sql, "to") && t[j - 1].is_kw(sql, "rename")) {
                if let Some((new, _, _)) = qualified_name(sql, t, to + 1) {
                    targets.push(new);
                }
            }
            true
        }
        ("create", "index") => {
            let on = (after..t.len()).find(|&j| t[j].is_kw(sql, "on"));
            match on.and_then(|j| qualified_name(sql, t, j + 1)) {
                Some((table, _, _)) => {
                    targets.push(table);
                    true
                }
                None => false,
            }
        }
        // A trigger changes no rows when created; only the schema.
        ("create", "trigger") => true,
        _ => false,
    }
}
