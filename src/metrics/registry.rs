//! Named, labelled metrics kept by the worker itself (HTTP requests by route and
//! status, latencies, …), rendered through [`Exposition`].
//!
//! Names must be described before use — an unknown name is an `INVALID_ARGUMENT`
//! error rather than auto-described, so that a typo in one call site shows up in
//! tests instead of as a second, undocumented family. Label sets are kept sorted by
//! label name in `BTreeMap`s, so output is deterministic whatever the call order.
//!
//! Label values often come from requests (paths, methods), so each family holds at
//! most `max_series` label sets (default 1000). Once full, observations for new
//! label sets go to one `overflow="true"` series and are counted in
//! [`Registry::overflowed`]: memory stays bounded and nothing is silently lost.

use std::collections::BTreeMap;

use super::exposition::{valid_name, Exposition, Kind};
use super::histogram::{Histogram, LATENCY_MS_BOUNDS};
use crate::{Error, Result};

/// Default cap on label sets per family.
pub const DEFAULT_MAX_SERIES: usize = 1000;

type LabelSet = Box<[(Box<str>, Box<str>)]>;

#[derive(Debug, Clone)]
enum Series {
    Value(f64),
    Hist(Histogram),
}

#[derive(Debug, Clone)]
struct Family {
    kind: Kind,
    help: String,
    /// Histogram families only.
    bounds: Vec<f64>,
    series: BTreeMap<LabelSet, Series>,
}

/// A set of metric families.
///
/// ```
/// use edgesync::metrics::{Exposition, Kind, Registry};
/// let mut r = Registry::new();
/// r.describe("http_requests_total", Kind::Counter, "Requests by status.").unwrap();
/// r.inc("http_requests_total", &[("status", "200")], 1.0).unwrap();
/// r.describe("http_latency_ms", Kind::Histogram, "Request latency.").unwrap();
/// r.observe("http_latency_ms", &[], 12.5).unwrap();
/// assert_eq!(r.inc("nope", &[], 1.0).unwrap_err().code(), "INVALID_ARGUMENT");
/// let mut out = Exposition::new();
/// r.render_into(&mut out);
/// assert!(out.finish().contains("http_requests_total{status=\"200\"} 1\n"));
/// ```
#[derive(Debug, Clone)]
pub struct Registry {
    families: BTreeMap<String, Family>,
    max_series: usize,
    overflowed: u64,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::with_max_series(DEFAULT_MAX_SERIES)
    }

    /// At most `max_series` (at least 1) label sets per family, plus the overflow
    /// series.
    pub fn with_max_series(max_series: usize) -> Self {
        Registry {
            families: BTreeMap::new(),
            max_series: max_series.max(1),
            overflowed: 0,
        }
    }

    /// Declares a family. Histograms get [`LATENCY_MS_BOUNDS`]. Describing an
    /// existing name again with the same kind just updates the help text.
    pub fn describe(&mut self, name: &str, kind: Kind, help: &str) -> Result<()> {
        self.describe_with(name, kind, help, &LATENCY_MS_BOUNDS)
    }

    /// Declares a histogram family with its own bucket bounds.
    pub fn describe_histogram(&mut self, name: &str, help: &str, bounds: &[f64]) -> Result<()> {
        self.describe_with(name, Kind::Histogram, help, bounds)
    }

    fn describe_with(&mut self, name: &str, kind: Kind, help: &str, bounds: &[f64]) -> Result<()> {
        if !valid_name(name, true) {
            return Err(Error::InvalidArgument(format!("invalid metric name {name:?}")));
        }
        if !matches!(kind, Kind::Counter | Kind::Gauge | Kind::Histogram) {
            return Err(Error::InvalidArgument(
                "a registry family is a counter, gauge or histogram".into(),
            ));
        }
        if let Some(f) = self.families.get_mut(name) {
            if f.kind != kind {
                return Err(Error::InvalidArgument(format!(
                    "{name} is already a {}",
                    f.kind.as_str()
                )));
            }
            f.help = help.to_owned();
            return Ok(());
        }
        let bounds = Histogram::new(bounds).bounds().to_vec();
        self.families.insert(
            name.to_owned(),
            Family {
                kind,
                help: help.to_owned(),
                bounds,
                series: BTreeMap::new(),
            },
        );
        Ok(())
    }

    /// Adds `by` (finite, ≥ 0) to a counter, or any finite `by` to a gauge.
    pub fn inc(&mut self, name: &str, labels: &[(&str, &str)], by: f64) -> Result<()> {
        if !by.is_finite() {
            return Err(Error::InvalidArgument(format!("cannot add {by} to {name}")));
        }
        let max = self.max_series;
        let f = family(&mut self.families, name)?;
        if f.kind == Kind::Counter && by < 0.0 {
            return Err(Error::InvalidArgument(format!("counter {name} cannot decrease")));
        }
        if f.kind == Kind::Histogram {
            return Err(Error::InvalidArgument(format!("{name} is a histogram: observe it")));
        }
        if let Series::Value(v) = slot(f, labels, max, &mut self.overflowed) {
            *v += by;
        }
        Ok(())
    }

    /// Sets a gauge.
    pub fn set(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> Result<()> {
        let max = self.max_series;
        let f = family(&mut self.families, name)?;
        if f.kind != Kind::Gauge {
            return Err(Error::InvalidArgument(format!("{name} is not a gauge")));
        }
        if let Series::Value(v) = slot(f, labels, max, &mut self.overflowed) {
            *v = value;
        }
        Ok(())
    }

    /// Records one observation in a histogram.
    pub fn observe(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> Result<()> {
        let max = self.max_series;
        let f = family(&mut self.families, name)?;
        if f.kind != Kind::Histogram {
            return Err(Error::InvalidArgument(format!("{name} is not a histogram")));
        }
        if let Series::Hist(h) = slot(f, labels, max, &mut self.overflowed) {
            h.observe(value);
        }
        Ok(())
    }

    /// A counter's or gauge's current value (`None` if absent).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match self.families.get(name)?.series.get(&key(labels))? {
            Series::Value(v) => Some(*v),
            Series::Hist(_) => None,
        }
    }

    /// A histogram series (`None` if absent).
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Option<&Histogram> {
        match self.families.get(name)?.series.get(&key(labels))? {
            Series::Hist(h) => Some(h),
            Series::Value(_) => None,
        }
    }

    /// Observations routed to an `overflow="true"` series, across families.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// Writes every family (by name) and series (by label set).
    pub fn render_into(&self, out: &mut Exposition) {
        for (name, f) in &self.families {
            out.family(name, f.kind, &f.help);
            for (labels, s) in &f.series {
                let l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (&**k, &**v)).collect();
                match s {
                    Series::Value(v) => out.sample(name, &l, *v),
                    Series::Hist(h) => out.histogram(name, &l, h),
                }
            }
        }
    }
}

fn family<'a>(families: &'a mut BTreeMap<String, Family>, name: &str) -> Result<&'a mut Family> {
    families
        .get_mut(name)
        .ok_or_else(|| Error::InvalidArgument(format!("metric {name:?} is not described")))
}

/// Labels sorted by name (later duplicates win), invalid label names sanitized
/// at render time by the writer.
fn key(labels: &[(&str, &str)]) -> LabelSet {
    let mut m: BTreeMap<&str, &str> = BTreeMap::new();
    for (k, v) in labels {
        m.insert(k, v);
    }
    m.into_iter().map(|(k, v)| (k.into(), v.into())).collect()
}

/// The series for `labels`, created if there is room, else the overflow series.
fn slot<'a>(f: &'a mut Family, labels: &[(&str, &str)], max: usize, overflowed: &mut u64) -> &'a mut Series {
    let mut k = key(labels);
    if !f.series.contains_key(&k) && f.series.len() >= max {
        *overflowed += 1;
        k = key(&[("overflow", "true")]);
    }
    let (kind, bounds) = (f.kind, &f.bounds);
    f.series.entry(k).or_insert_with(|| match kind {
        Kind::Histogram => Series::Hist(Histogram::new(bounds)),
        _ => Series::Value(0.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(r: &Registry) -> String {
        let mut e = Exposition::new();
        r.render_into(&mut e);
        e.finish()
    }

    #[test]
    fn counters_gauges_histograms() {
        let mut r = Registry::new();
        r.describe("b_total", Kind::Counter, "B.").unwrap();
        r.describe("a", Kind::Gauge, "A.").unwrap();
        r.describe_histogram("c_ms", "C.", &[1.0, 10.0]).unwrap();
        r.inc("b_total", &[("z", "1"), ("a", "2")], 2.0).unwrap();
        r.inc("b_total", &[("a", "2"), ("z", "1")], 1.0).unwrap();
        r.set("a", &[], 5.0).unwrap();
        r.inc("a", &[], -1.5).unwrap();
        r.observe("c_ms", &[], 3.0).unwrap();
        assert_eq!(r.value("b_total", &[("a", "2"), ("z", "1")]), Some(3.0));
        assert_eq!(r.histogram("c_ms", &[]).unwrap().count(), 1);
        assert_eq!(
            render(&r),
            "# HELP a A.\n# TYPE a gauge\na 3.5\n\
             # HELP b_total B.\n# TYPE b_total counter\nb_total{a=\"2\",z=\"1\"} 3\n\
             # HELP c_ms C.\n# TYPE c_ms histogram\nc_ms_bucket{le=\"1\"} 0\nc_ms_bucket{le=\"10\"} 1\n\
             c_ms_bucket{le=\"+Inf\"} 1\nc_ms_sum 3\nc_ms_count 1\n"
        );
    }

    #[test]
    fn misuse_is_an_error() {
        let mut r = Registry::new();
        r.describe("c", Kind::Counter, "C.").unwrap();
        r.describe("h", Kind::Histogram, "H.").unwrap();
        let bad = [
            r.inc("unknown", &[], 1.0),
            r.inc("c", &[], -1.0),
            r.inc("c", &[], f64::NAN),
            r.set("c", &[], 1.0),
            r.observe("c", &[], 1.0),
            r.inc("h", &[], 1.0),
            r.describe("c", Kind::Gauge, "x"),
            r.describe("bad name", Kind::Gauge, "x"),
            r.describe("s", Kind::Summary, "x"),
        ];
        for e in bad {
            assert_eq!(e.unwrap_err().code(), "INVALID_ARGUMENT");
        }
        r.describe("c", Kind::Counter, "New help.").unwrap();
        assert!(render(&r).contains("# HELP c New help."));
    }

    #[test]
    fn label_sets_are_bounded() {
        let mut r = Registry::with_max_series(10);
        r.describe("req_total", Kind::Counter, "R.").unwrap();
        r.describe("lat", Kind::Histogram, "L.").unwrap();
        for i in 0..1000 {
            let path = format!("/hostile/{i}");
            r.inc("req_total", &[("path", &path)], 1.0).unwrap();
            r.observe("lat", &[("path", &path)], 1.0).unwrap();
        }
        // Existing series keep counting after the cap.
        r.inc("req_total", &[("path", "/hostile/0")], 1.0).unwrap();
        assert_eq!(r.value("req_total", &[("path", "/hostile/0")]), Some(2.0));
        assert_eq!(r.value("req_total", &[("overflow", "true")]), Some(990.0));
        assert_eq!(r.histogram("lat", &[("overflow", "true")]).unwrap().count(), 990);
        assert_eq!(r.overflowed(), 1980);
        let text = render(&r);
        assert_eq!(text.lines().filter(|l| l.starts_with("req_total")).count(), 11);
    }
}
