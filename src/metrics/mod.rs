//! Observability for the edge worker: fixed-bucket [`Histogram`]s, a [`Registry`]
//! of labelled counters/gauges/histograms with bounded cardinality, a writer for
//! the Prometheus text format ([`Exposition`]), and cluster health ([`evaluate`]).
//!
//! Everything is plain data with no clock or I/O, so the same code runs natively
//! and in a Cloudflare Worker; the worker decides when to render and where to send
//! it.

mod exposition;
mod health;
mod histogram;
mod registry;

pub use exposition::{format_value, sanitize_name, valid_name, Exposition, Kind};
pub use health::{evaluate, ClusterHealth, HealthStatus, HealthThresholds, RegionHealth, RegionHealthInput};
pub use histogram::{Histogram, LATENCY_MS_BOUNDS};
pub use registry::{Registry, DEFAULT_MAX_SERIES};
