//! The JavaScript binding. Everything `#[wasm_bindgen]` lives here and only here; the
//! rest of the crate is plain Rust that `cargo test` checks natively.
//!
//! The TypeScript layer in `js/` wraps these exports into the public API
//! (`createClient`, `ResultSet` rows by index and by name, `EdgesyncError`).

//! Which bindings a build has follows the crate's `js-*` features (Cargo.toml): the
//! remote client with `js-client`, the CRDT classes with `js-crdt`, embedded replicas
//! with `js-replica`, the edge classes with `js-edge` — one wasm flavour per export of
//! the package.

#[cfg(feature = "js-edge")]
mod auth;
#[cfg(feature = "js-client")]
mod client;
mod convert;
#[cfg(feature = "js-crdt")]
mod crdt;
#[cfg(feature = "js-edge")]
mod edge;
mod error;
#[cfg(feature = "js-replica")]
mod fast;
#[cfg(feature = "js-client")]
mod fetch;
#[cfg(all(feature = "js-replica", feature = "js-edge"))]
mod gateway;
#[cfg(feature = "js-replica")]
mod hostfs;
#[cfg(feature = "js-replica")]
mod nodefs;
#[cfg(feature = "js-replica")]
mod opfs;
#[cfg(feature = "js-replica")]
mod replica;
#[cfg(feature = "js-crdt")]
mod resolver;
#[cfg(feature = "js-client")]
mod result;
#[cfg(all(feature = "js-replica", feature = "opfs-sahpool"))]
mod sahpool;
#[cfg(feature = "js-crdt")]
mod text;
#[cfg(any(feature = "js-crdt", feature = "js-replica", feature = "js-edge"))]
mod values;
#[cfg(feature = "js-client")]
mod ws;
