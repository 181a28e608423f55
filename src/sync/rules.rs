//! The merge rules of counters and sets, and the metadata tables.
//!
//! Last-writer-wins, text and custom columns and the rows' presence merge in the
//! per-table row state ([`super::rows`]). Counters and sets merge per writer and per
//! tag, so they keep tables of their own: a chunk's counter and set cells are first
//! staged in `_es_cells` — on the server from the chunk's JSON by one `json_each`
//! statement, locally straight from Rust — and the rules then read plain columns.
//! Each rule is idempotent, commutative and associative — a retried or reordered chunk
//! changes nothing — which is what makes "at least once" delivery exact:
//!
//! | state table | rule |
//! |---|---|
//! | `_es_row_<table>` (row state) | per column, keep the value with the greatest version; likewise the row's presence |
//! | `_es_ctr` (counters) | per writer site, keep the greatest cumulative increments and decrements |
//! | `_es_set` (sets) | one row per (element, tag); adding a tag never revives a removed one |
//! | `_es_log` (server) | one row per record id; a duplicate is ignored |
//!
//! Afterwards the touched rows of each user table are rebuilt from the state tables
//! ([`super::rows::materialize_sql`]), so ordinary SQL readers — `@libsql/client` on
//! the server, the app locally — see plain rows.

/// The metadata tables, on the server and in every replica.
pub const STATE_DDL: &str = "
CREATE TABLE IF NOT EXISTS _es_ctr (tbl TEXT NOT NULL, pk TEXT NOT NULL, col TEXT NOT NULL, site TEXT NOT NULL,
  p INTEGER NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (tbl, pk, col, site)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _es_set (tbl TEXT NOT NULL, pk TEXT NOT NULL, col TEXT NOT NULL, elem TEXT NOT NULL,
  tag TEXT NOT NULL, alive INTEGER NOT NULL, PRIMARY KEY (tbl, pk, col, elem, tag)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _es_cells (tbl TEXT NOT NULL, pk TEXT NOT NULL, col TEXT NOT NULL, pol TEXT NOT NULL,
  jv TEXT NOT NULL, ver TEXT NOT NULL, site TEXT NOT NULL);
";

/// Only on the server: the change log that replicas pull from, the list of replicated
/// tables with their policies, and the chunk being pushed (sent once per batch, read by
/// each of its statements).
pub const SERVER_DDL: &str = "
CREATE TABLE IF NOT EXISTS _es_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, site TEXT NOT NULL, rec TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _es_tables (tbl TEXT PRIMARY KEY, pol TEXT NOT NULL, create_sql TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _es_chunk (j TEXT NOT NULL, site TEXT NOT NULL);
";

/// Creates the change log's epoch (row 0) when the log has none (see `net/schema.rs`).
pub const EPOCH_INIT: &str =
    "INSERT INTO _es_log (seq, id, site, rec) SELECT 0, 'epoch:' || lower(hex(randomblob(8))), '', '[]' \
     WHERE NOT EXISTS (SELECT 1 FROM _es_log WHERE seq = 0)";

/// Server side: stages the counter and set cells of the chunk in `_es_chunk` (`?1`
/// the column policies JSON). The local side stages from Rust instead
/// (`Replica::stage`), with the same rows.
pub const STAGE: &str = "WITH x AS MATERIALIZED (SELECT r.value ->> 1 AS tbl, json(r.value -> 2) AS pk, \
     r.value ->> 3 AS op, r.value -> 4 AS data, \
     printf('%016x', r.value ->> 0) || (SELECT site FROM _es_chunk WHERE rowid = 0) AS ver \
     FROM json_each((SELECT j FROM _es_chunk WHERE rowid = 0)) r WHERE r.value ->> 3 IN ('i', 'u')) \
   INSERT INTO _es_cells (tbl, pk, col, pol, jv, ver, site) \
   SELECT * FROM (SELECT x.tbl, x.pk, c.key, json_extract(?1, '$.' || x.tbl || '.' || c.key) AS pol, c.value, x.ver, \
     (SELECT site FROM _es_chunk WHERE rowid = 0) FROM x, json_each(x.data) c WHERE c.type IN ('object', 'array')) \
   WHERE pol IN ('counter', 'set')";

/// Empties the stage (the last statement of a chunk that staged).
pub const UNSTAGE: &str = "DELETE FROM _es_cells";

/// The merge statements for the staged counter and set cells, in order, before
/// materializing.
pub fn merge_sql() -> [&'static str; 3] {
    [
        "INSERT INTO _es_ctr (tbl, pk, col, site, p, n) SELECT s.tbl, s.pk, s.col, s.site, s.jv ->> 0, s.jv ->> 1 \
         FROM _es_cells s WHERE s.pol = 'counter' AND json_type(s.jv) = 'array' \
         ON CONFLICT DO UPDATE SET p = max(p, excluded.p), n = max(n, excluded.n)",
        "INSERT INTO _es_set (tbl, pk, col, elem, tag, alive) SELECT s.tbl, s.pk, s.col, \
         CASE WHEN e.type IN ('object', 'array') THEN json(e.value) ELSE json_quote(e.value) END, s.ver, 1 \
         FROM _es_cells s, json_each(s.jv, '$.\"+\"') e WHERE s.pol = 'set' AND json_type(s.jv) = 'object' \
         ON CONFLICT DO NOTHING",
        "INSERT INTO _es_set (tbl, pk, col, elem, tag, alive) SELECT s.tbl, s.pk, s.col, e.value -> 0, e.value ->> 1, 0 \
         FROM _es_cells s, json_each(s.jv, '$.\"-\"') e WHERE s.pol = 'set' AND json_type(s.jv) = 'object' \
         ON CONFLICT DO UPDATE SET alive = 0",
    ]
}
