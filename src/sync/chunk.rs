//! The server's merge of one pushed chunk, as the statements of one Hrana batch.
//!
//! A replica syncing straight to sqld sends these itself ([`super::Replica::sync`]); the
//! edge gateway ([`crate::gateway`]) sends the very same statements for the records it
//! accepted from an untrusted replica, so there is one merge, written once.
//!
//! The batch: the chunk is stored once in `_es_chunk` ([`ChunkMerge::store`]); then
//! ([`ChunkMerge::merge`]) counter and set cells are staged and merged ([`rules`]);
//! custom values go through compare-and-set; every record is logged once; the row
//! state of each table is merged and its touched rows rebuilt ([`rows`]); the custom
//! values that lost are read back (at [`ChunkMerge::conflict_steps`]); the stage and
//! the chunk are emptied. Statements between `store` and `merge` may still rewrite
//! `_es_chunk` (the gateway drops the records its rules refuse there).

use serde_json::Value as Json;

use super::policy::TableSpec;
use super::{rows, rules};
use crate::sql::Statement;

/// The statements of a chunk's server-side merge.
#[derive(Debug, Clone)]
pub struct ChunkMerge {
    /// `INSERT INTO _es_chunk`: the chunk's JSON and the writer's site.
    pub store: Statement,
    /// The merge proper, ending with the chunk emptied.
    pub merge: Vec<Statement>,
    /// Indexes into `merge` of the statements that read back lost custom values
    /// (`hlc, tbl, pk, col, val, ver`).
    pub conflict_steps: Vec<usize>,
    /// The index into `merge` of the first statement rebuilding the tables' rows (the
    /// shadow is merged before it: the gateway sets merged texts there).
    pub rebuild_at: usize,
}

/// The merge of `chunk` (a JSON array of records, see [`super::record`]) written by
/// `site`, for the tables `specs` (those the chunk's records name). `deletes(table)`
/// tells whether the chunk deletes rows of `table` (only then is the row-removing
/// statement needed).
pub fn server_merge(specs: &[&TableSpec], chunk: String, site: &str, deletes: &dyn Fn(&str) -> bool) -> ChunkMerge {
    let store = Statement::new(rows::STORE_CHUNK).arg(chunk).arg(site);
    let mut merge = Vec::new();
    let staged = specs.iter().any(|s| super::replica::has_cells(s));
    if staged {
        // Inserted one by one: `collect()` would compile a sort of its own (src/sort.rs).
        let mut pol = serde_json::Map::new();
        for s in specs {
            pol.insert(s.name.clone(), s.policies_json());
        }
        let pol = Json::Object(pol);
        merge.push(Statement::new(rules::STAGE).arg(pol.to_string()));
        merge.extend(rules::merge_sql().into_iter().map(Statement::new));
    }
    for spec in specs {
        merge.extend(rows::custom_sql(spec).into_iter().map(Statement::new));
    }
    merge.push(Statement::new(rows::log_sql()));
    for spec in specs {
        merge.push(Statement::new(rows::upsert_sql(spec, rows::SERVER, true)));
    }
    let rebuild_at = merge.len();
    for spec in specs {
        let [upsert, delete] = rows::materialize_sql(spec, rows::SERVER);
        merge.push(Statement::new(upsert));
        // Only a delete record can remove a row (an insert older than a tombstone is
        // simply not inserted).
        if deletes(&spec.name) {
            merge.push(Statement::new(delete));
        }
    }
    let mut conflict_steps = Vec::new();
    for spec in specs {
        if let Some(sql) = rows::conflicts_sql(spec) {
            conflict_steps.push(merge.len());
            merge.push(Statement::new(sql));
        }
    }
    if staged {
        merge.push(Statement::new(rules::UNSTAGE));
    }
    merge.push(Statement::new(rows::DROP_CHUNK));
    ChunkMerge {
        store,
        merge,
        conflict_steps,
        rebuild_at,
    }
}
