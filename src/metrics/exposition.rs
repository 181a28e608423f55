//! A writer for the Prometheus text exposition format, version 0.0.4
//! (`Content-Type: text/plain; version=0.0.4; charset=utf-8`).
//!
//! The writer, not its callers, owns the format's fiddly parts: `# HELP` / `# TYPE`
//! once per family, escaping (HELP: `\\` and `\n`; label values: also `\"`), value
//! spelling (`+Inf`, `-Inf`, `NaN`; integral values without a fraction, because
//! Rust's `Display` for `f64` prints `3` for `3.0`), and the histogram series.
//! Invalid metric or label names are sanitized (each bad character becomes `_`, a
//! leading digit gets a `_` prefix) rather than rejected: a metrics endpoint should
//! never fail over a name, and a sanitized name is easy to spot.

use std::collections::HashSet;
use std::fmt::Write as _;

use super::histogram::Histogram;

/// A metric family's type, as written on its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    /// Written by hand with [`Exposition::sample`] (`{quantile="…"}`, `_sum`,
    /// `_count`); there is no summary type in this crate.
    Summary,
    Untyped,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
            Kind::Untyped => "untyped",
        }
    }
}

/// Builds one exposition document.
///
/// ```
/// use edgesync::metrics::{Exposition, Histogram, Kind};
/// let mut out = Exposition::new();
/// out.family("http_requests_total", Kind::Counter, "Requests served.");
/// out.sample("http_requests_total", &[("path", "/a\"b")], 3.0);
/// let mut h = Histogram::new(&[10.0]);
/// h.observe(4.0);
/// out.family("latency_ms", Kind::Histogram, "Latency.");
/// out.histogram("latency_ms", &[], &h);
/// assert_eq!(out.finish(), "\
/// ## HELP http_requests_total Requests served.
/// ## TYPE http_requests_total counter
/// http_requests_total{path=\"/a\\\"b\"} 3
/// ## HELP latency_ms Latency.
/// ## TYPE latency_ms histogram
/// latency_ms_bucket{le=\"10\"} 1
/// latency_ms_bucket{le=\"+Inf\"} 1
/// latency_ms_sum 4
/// latency_ms_count 1
/// ");
/// ```
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
    families: HashSet<String>,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the `# HELP` and `# TYPE` lines, once per family name (later calls
    /// for the same name are ignored). Call before the family's samples.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let name = sanitize_name(name, true);
        if !self.families.insert(name.clone()) {
            return;
        }
        let _ = writeln!(
            self.out,
            "# HELP {name} {}\n# TYPE {name} {}",
            escape(help, false),
            kind.as_str()
        );
    }

    /// Writes one sample line: `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.line(&sanitize_name(name, true), labels, None, value);
    }

    /// Writes a histogram's `_bucket` lines (cumulative, ending with `le="+Inf"`,
    /// which equals the count), `_sum` and `_count`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let name = sanitize_name(name, true);
        let bucket = format!("{name}_bucket");
        for (le, n) in h.cumulative() {
            self.line(&bucket, labels, Some(le), n as f64);
        }
        self.line(&format!("{name}_sum"), labels, None, h.sum());
        self.line(&format!("{name}_count"), labels, None, h.count() as f64);
    }

    /// The document (every line ends with `\n`).
    pub fn finish(self) -> String {
        self.out
    }

    fn line(&mut self, name: &str, labels: &[(&str, &str)], le: Option<f64>, value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() || le.is_some() {
            self.out.push('{');
            let mut first = true;
            for (k, v) in labels {
                if !first {
                    self.out.push(',');
                }
                first = false;
                let _ = write!(self.out, "{}=\"{}\"", sanitize_name(k, false), escape(v, true));
            }
            if let Some(le) = le {
                if !first {
                    self.out.push(',');
                }
                let _ = write!(self.out, "le=\"{}\"", format_value(le));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", format_value(value));
    }
}

/// A sample value as the format spells it: `+Inf`, `-Inf`, `NaN`, or Rust's
/// shortest round-trip decimal (`3`, `0.25`, `1e-7`).
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Escapes HELP text (`\` and newline) or, with `quote`, a label value (also `"`).
fn escape(s: &str, quote: bool) -> std::borrow::Cow<'_, str> {
    if !s.contains(['\\', '\n', '"']) {
        return s.into();
    }
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '"' if quote => o.push_str("\\\""),
            c => o.push(c),
        }
    }
    o.into()
}

/// Metric names: `[a-zA-Z_:][a-zA-Z0-9_:]*`; label names the same without `:`.
/// Whether `name` is valid as is.
pub fn valid_name(name: &str, metric: bool) -> bool {
    let ok = |c: char, first: bool| {
        c.is_ascii_alphabetic() || c == '_' || (metric && c == ':') || (!first && c.is_ascii_digit())
    };
    let mut chars = name.chars();
    chars.next().is_some_and(|c| ok(c, true)) && chars.all(|c| ok(c, false))
}

/// `name` with every invalid character replaced by `_` (and `_` prepended if it
/// starts with a digit or is empty).
pub fn sanitize_name(name: &str, metric: bool) -> String {
    if valid_name(name, metric) {
        return name.to_owned();
    }
    let mut o = String::with_capacity(name.len() + 1);
    if name.chars().next().is_none_or(|c| c.is_ascii_digit()) {
        o.push('_');
    }
    for c in name.chars() {
        let keep = c.is_ascii_alphanumeric() || c == '_' || (metric && c == ':');
        o.push(if keep { c } else { '_' });
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_by_line() {
        let mut e = Exposition::new();
        e.family("req_total", Kind::Counter, "Requests\\by path\nand code.");
        e.sample("req_total", &[("path", "C:\\x\n\"y\""), ("code", "200")], 7.0);
        e.family("req_total", Kind::Counter, "ignored: already written");
        e.sample("req_total", &[("path", "/"), ("code", "500")], 1.5);
        e.family("temp", Kind::Gauge, "A gauge.");
        e.sample("temp", &[], -0.25);
        e.sample("temp", &[("k", "inf")], f64::INFINITY);
        e.sample("temp", &[("k", "-inf")], f64::NEG_INFINITY);
        e.sample("temp", &[("k", "nan")], f64::NAN);
        let mut h = Histogram::new(&[0.5, 1.0]);
        for v in [0.1, 0.7, 0.9, 3.0] {
            h.observe(v);
        }
        e.family("lat", Kind::Histogram, "Latency.");
        e.histogram("lat", &[("r", "ams")], &h);
        let text = e.finish();
        let want = [
            r"# HELP req_total Requests\\by path\nand code.",
            "# TYPE req_total counter",
            r#"req_total{path="C:\\x\n\"y\"",code="200"} 7"#,
            r#"req_total{path="/",code="500"} 1.5"#,
            "# HELP temp A gauge.",
            "# TYPE temp gauge",
            "temp -0.25",
            r#"temp{k="inf"} +Inf"#,
            r#"temp{k="-inf"} -Inf"#,
            r#"temp{k="nan"} NaN"#,
            "# HELP lat Latency.",
            "# TYPE lat histogram",
            r#"lat_bucket{r="ams",le="0.5"} 1"#,
            r#"lat_bucket{r="ams",le="1"} 3"#,
            r#"lat_bucket{r="ams",le="+Inf"} 4"#,
            r#"lat_sum{r="ams"} 4.7"#,
            r#"lat_count{r="ams"} 4"#,
        ];
        let got: Vec<&str> = text.lines().collect();
        assert_eq!(got, want);
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn names_are_sanitized() {
        assert!(valid_name("a:b_c9", true));
        assert!(!valid_name("a:b", false));
        assert_eq!(sanitize_name("http.requests-total", true), "http_requests_total");
        assert_eq!(sanitize_name("9lives", true), "_9lives");
        assert_eq!(sanitize_name("", false), "_");
        assert_eq!(sanitize_name("a:b", false), "a_b");
        assert_eq!(sanitize_name("é", true), "_");
        let mut e = Exposition::new();
        e.sample("bad name", &[("bad-label", "v")], 1.0);
        assert_eq!(e.finish(), "bad_name{bad_label=\"v\"} 1\n");
    }

    #[test]
    fn values() {
        assert_eq!(format_value(3.0), "3");
        assert_eq!(format_value(1e-7), "0.0000001");
        assert_eq!(format_value(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(format_value(-0.0), "-0");
    }
}
