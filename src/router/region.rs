//! Region configuration: where the primary and the replicas are, and how to reach
//! them.
//!
//! Configuration is validated up front (`Error::Config`) so that a typo in a
//! deployment's region list fails at startup with a message naming the region,
//! rather than as a routing oddity under load.

use serde::Serialize;
use serde_json::Value;

use crate::{Error, Result};

/// Whether a region accepts writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// The single write primary.
    Primary,
    /// A read replica that follows the primary.
    Replica,
}

/// A point on Earth, in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
}

impl Location {
    /// A validated location (latitude in [-90, 90], longitude in [-180, 180]).
    pub fn new(lat: f64, lon: f64) -> Result<Self> {
        check_lat_lon(lat, lon).map_err(Error::Config)?;
        Ok(Location { lat, lon })
    }

    /// Parses `"lat,lon"` (spaces allowed), e.g. Cloudflare's `request.cf` values
    /// joined by a comma.
    ///
    /// ```
    /// use edgesync::router::Location;
    /// let paris = Location::parse("48.85, 2.35").unwrap();
    /// let london = Location::parse("51.51,-0.13").unwrap();
    /// assert!((paris.distance_km(&london) - 343.0).abs() < 5.0);
    /// assert!(Location::parse("91,0").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::Config(format!("location {s:?} is not \"lat,lon\""));
        let (lat, lon) = s.split_once(',').ok_or_else(bad)?;
        let lat: f64 = lat.trim().parse().map_err(|_| bad())?;
        let lon: f64 = lon.trim().parse().map_err(|_| bad())?;
        Location::new(lat, lon)
    }

    /// Great-circle distance in kilometres (haversine, mean Earth radius).
    pub fn distance_km(&self, other: &Location) -> f64 {
        const R: f64 = 6371.0088;
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * R * a.sqrt().min(1.0).asin()
    }
}

fn check_lat_lon(lat: f64, lon: f64) -> std::result::Result<(), String> {
    if !(-90.0..=90.0).contains(&lat) {
        return Err(format!("latitude {lat} is not in [-90, 90]"));
    }
    if !(-180.0..=180.0).contains(&lon) {
        return Err(format!("longitude {lon} is not in [-180, 180]"));
    }
    Ok(())
}

/// One region: a libSQL endpoint the router may send statements to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionConfig {
    /// A unique name (`"fra"`, `"iad"`).
    pub id: String,
    /// `http(s)://`, `libsql://` or `ws(s)://` URL of the region's server.
    pub url: String,
    /// Lower is preferred when nothing else distinguishes regions (default 100).
    pub priority: u32,
    /// Where the region is, for the locality prior before latency samples exist.
    pub location: Option<Location>,
    pub role: Role,
}

/// The default [`RegionConfig::priority`].
pub const DEFAULT_PRIORITY: u32 = 100;

/// Parses and validates a JSON region list.
///
/// ```
/// use edgesync::router::{parse_regions, Role};
/// let regions = parse_regions(r#"[
///   {"id": "iad", "url": "https://iad.example.com", "role": "primary", "location": {"lat": 38.9, "lon": -77.4}},
///   {"id": "fra", "url": "libsql://fra.example.com", "role": "replica", "location": "50.1,8.7", "priority": 10}
/// ]"#).unwrap();
/// assert_eq!(regions[0].role, Role::Primary);
/// assert_eq!(regions[1].priority, 10);
/// assert_eq!(parse_regions("[]").unwrap_err().code(), "CONFIG_ERROR");
/// ```
pub fn parse_regions(json: &str) -> Result<Vec<RegionConfig>> {
    let value: Value =
        serde_json::from_str(json).map_err(|e| Error::Config(format!("regions are not valid JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(Error::Config("regions must be a JSON array".into()));
    };
    let regions = items
        .iter()
        .enumerate()
        .map(|(i, item)| parse_region(i, item))
        .collect::<Result<Vec<_>>>()?;
    validate_regions(&regions)?;
    Ok(regions)
}

fn parse_region(i: usize, item: &Value) -> Result<RegionConfig> {
    let Value::Object(obj) = item else {
        return Err(Error::Config(format!("region #{i} must be an object")));
    };
    let id = match obj.get("id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(Error::Config(format!("region #{i} has no \"id\" (a non-empty string)"))),
    };
    let ctx = |msg: String| Error::Config(format!("region {id:?}: {msg}"));
    if let Some(key) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "id" | "url" | "priority" | "location" | "role"))
    {
        return Err(ctx(format!("unknown field {key:?}")));
    }
    let url = match obj.get("url") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(ctx("\"url\" must be a string".into())),
    };
    let priority = match obj.get("priority") {
        None | Some(Value::Null) => DEFAULT_PRIORITY,
        Some(v) => v
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .ok_or_else(|| ctx(format!("\"priority\" must be a non-negative integer, got {v}")))?,
    };
    let location = match obj.get("location") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let loc = s
                .split_once(',')
                .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
            let (lat, lon) = loc.ok_or_else(|| ctx(format!("location {s:?} is not \"lat,lon\"")))?;
            check_lat_lon(lat, lon).map_err(ctx)?;
            Some(Location { lat, lon })
        }
        Some(Value::Object(o)) => {
            let lat = o.get("lat").and_then(Value::as_f64);
            let lon = o.get("lon").and_then(Value::as_f64);
            match (lat, lon) {
                (Some(lat), Some(lon)) => {
                    check_lat_lon(lat, lon).map_err(ctx)?;
                    Some(Location { lat, lon })
                }
                _ => return Err(ctx("\"location\" needs numeric \"lat\" and \"lon\"".into())),
            }
        }
        Some(_) => return Err(ctx("\"location\" must be {\"lat\",\"lon\"} or \"lat,lon\"".into())),
    };
    let role = match obj.get("role").and_then(Value::as_str) {
        Some("primary") => Role::Primary,
        Some("replica") => Role::Replica,
        _ => return Err(ctx("\"role\" must be \"primary\" or \"replica\"".into())),
    };
    Ok(RegionConfig {
        id,
        url,
        priority,
        location,
        role,
    })
}

/// Checks a region list however it was built: non-empty, unique ids, exactly one
/// primary, usable URLs and locations. Returns the primary's index.
pub(crate) fn validate_regions(regions: &[RegionConfig]) -> Result<usize> {
    if regions.is_empty() {
        return Err(Error::Config("at least one region (the primary) is required".into()));
    }
    let mut primary: Option<usize> = None;
    for (i, r) in regions.iter().enumerate() {
        if r.id.is_empty() {
            return Err(Error::Config(format!("region #{i} has an empty id")));
        }
        if regions[..i].iter().any(|o| o.id == r.id) {
            return Err(Error::Config(format!("duplicate region id {:?}", r.id)));
        }
        let scheme_ok = ["http://", "https://", "libsql://", "ws://", "wss://"]
            .iter()
            .any(|s| r.url.len() > s.len() && r.url.get(..s.len()).is_some_and(|p| p.eq_ignore_ascii_case(s)));
        if !scheme_ok {
            return Err(Error::Config(format!(
                "region {:?}: url {:?} must start with http://, https://, libsql://, ws:// or wss://",
                r.id, r.url
            )));
        }
        if let Some(loc) = r.location {
            check_lat_lon(loc.lat, loc.lon).map_err(|e| Error::Config(format!("region {:?}: {e}", r.id)))?;
        }
        if r.role == Role::Primary {
            if let Some(p) = primary {
                return Err(Error::Config(format!(
                    "more than one primary: {:?} and {:?}",
                    regions[p].id, r.id
                )));
            }
            primary = Some(i);
        }
    }
    primary.ok_or_else(|| Error::Config("no region has role \"primary\"".into()))
}
