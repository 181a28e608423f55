//! The JavaScript binding. Everything `#[wasm_bindgen]` lives here and only here; the
//! rest of the crate is plain Rust that `cargo test` checks natively.
//!
//! The TypeScript layer in `js/` wraps these exports into the public API
//! (`createClient`, `ResultSet` rows by index and by name, `EdgesyncError`).

mod auth;
mod client;
mod convert;
mod crdt;
mod edge;
mod error;
mod fast;
mod fetch;
mod gateway;
mod hostfs;
mod nodefs;
mod opfs;
mod replica;
mod resolver;
mod result;
#[cfg(feature = "opfs-sahpool")]
mod sahpool;
mod text;
