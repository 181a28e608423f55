//! Client configuration: parsing and validating the database URL, by the rules of the
//! official `@libsql/client` (its `expandConfig` and URI parser), with the same error
//! codes: `URL_INVALID`, `URL_SCHEME_NOT_SUPPORTED`, `URL_PARAM_NOT_SUPPORTED`.
//!
//! | URL                              | requests go to                |
//! |----------------------------------|-------------------------------|
//! | `libsql://db-org.turso.io`       | `https://db-org.turso.io` (HTTP, as the official client) |
//! | `libsql://127.0.0.1:8080?tls=0`  | `http://127.0.0.1:8080` (`?tls=0` needs a port) |
//! | `https://host[:port][/prefix]`   | as written                    |
//! | `http://host[:port][/prefix]`    | as written                    |
//! | `wss://…`, `ws://…`              | Hrana over WebSocket ([`RemoteConfig::websocket`]); the HTTP client uses `https://…`, `http://…` |
//!
//! Query parameters: `tls=0|1` and `authToken`. The JS package checks URLs with the same
//! rules in TypeScript (js/url.ts), so that `createClient` throws at once even before
//! the wasm module is loaded; `tests/data/urls.json` holds the cases both must agree on.
//!
//! ```
//! use edgesync::remote::RemoteConfig;
//! let c = RemoteConfig::parse("libsql://db.example.com?authToken=abc", None).unwrap();
//! assert_eq!(c.base_url, "https://db.example.com");
//! assert_eq!(c.auth_token.as_deref(), Some("abc"));
//! assert_eq!(RemoteConfig::parse("ftp://x", None).unwrap_err().code(), "URL_SCHEME_NOT_SUPPORTED");
//! ```

use crate::error::{Error, Result};

/// Default request timeout: long enough for a large batch over a slow link, short
/// enough that a server which accepts connections but never answers is reported.
pub const DEFAULT_TIMEOUT_MS: u32 = 30_000;

/// A validated remote configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteConfig {
    /// `http(s)://host[:port][/prefix]`, without a trailing slash.
    pub base_url: String,
    pub auth_token: Option<String>,
    pub timeout_ms: u32,
    /// The URL asked for Hrana over WebSocket (`ws://`, `wss://`); the WebSocket URL is
    /// `base_url` with `ws`/`wss` for `http`/`https`.
    pub websocket: bool,
}

const SUPPORTED: &str = "https://github.com/libsql/libsql-client-ts#supported-urls";

/// The parts of a URL, as the official client's RFC 3986 parser splits them.
struct Parts<'a> {
    scheme: &'a str,
    authority: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

fn split(url: &str) -> Option<Parts<'_>> {
    let colon = url.find(':')?;
    let scheme = &url[..colon];
    let mut chars = scheme.chars();
    if !chars.next()?.is_ascii_alphabetic() || !chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
        return None;
    }
    let rest = &url[colon + 1..];
    let (rest, fragment) = rest.split_once('#').map_or((rest, None), |(a, b)| (a, Some(b)));
    let (rest, query) = rest.split_once('?').map_or((rest, None), |(a, b)| (a, Some(b)));
    let (authority, path) = match rest.strip_prefix("//") {
        Some(r) => {
            let end = r.find('/').unwrap_or(r.len());
            (Some(&r[..end]), &r[end..])
        }
        None => (None, rest),
    };
    Some(Parts {
        scheme,
        authority,
        path,
        query,
        fragment,
    })
}

/// `%XX` decoding, as `decodeURIComponent`; `None` for a malformed escape or bytes that
/// are not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl RemoteConfig {
    /// Parses `url`; `auth_token` (if given) wins over one in the URL.
    pub fn parse(url: &str, auth_token: Option<&str>) -> Result<Self> {
        let invalid = |reason: String| Error::UrlInvalid {
            url: url.to_owned(),
            reason,
        };
        let p = split(url).ok_or_else(|| invalid(format!("The URL '{url}' is not in a valid format")))?;
        let decode =
            |s: &str| percent_decode(s).ok_or_else(|| invalid("URL component has invalid percent encoding".into()));
        let mut tls: Option<bool> = None;
        let mut token_in_url: Option<String> = None;
        for pair in p.query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (decode(&k.replace('+', " "))?, decode(&v.replace('+', " "))?);
            match k.as_str() {
                "tls" => {
                    tls = Some(match v.as_str() {
                        "0" => false,
                        "1" => true,
                        _ => {
                            return Err(invalid(format!(
                            "Unknown value for the \"tls\" query argument: {v:?}. Supported values are: [\"0\", \"1\"]"
                        )))
                        }
                    })
                }
                "authToken" => token_in_url = Some(v),
                _ => {
                    return Err(Error::UrlParamNotSupported {
                        url: url.to_owned(),
                        param: k,
                    })
                }
            }
        }
        let scheme = p.scheme.to_ascii_lowercase();
        let (host, port) = match p.authority {
            Some(a) => split_authority(a).map_err(invalid)?,
            None => ("", None),
        };
        let supported = matches!(scheme.as_str(), "libsql" | "http" | "https" | "ws" | "wss");
        if let (true, Some(f)) = (supported, p.fragment) {
            return Err(invalid(format!(
                "URL fragments are not supported: {:?}",
                format!("#{f}")
            )));
        }
        let (scheme, websocket) = match scheme.as_str() {
            "libsql" if tls == Some(false) => {
                if port.is_none() {
                    return Err(invalid("A \"libsql:\" URL with ?tls=0 must specify an explicit port".into()));
                }
                ("http", false)
            }
            "libsql" => ("https", false),
            "http" | "https" | "ws" | "wss" => {
                let secure = matches!(scheme.as_str(), "https" | "wss");
                if tls == Some(!secure) {
                    return Err(invalid(if secure {
                        format!("A \"{scheme}:\" URL cannot opt out of TLS by using ?tls=0")
                    } else {
                        format!("A \"{scheme}:\" URL cannot opt into TLS by using ?tls=1")
                    }));
                }
                (if secure { "https" } else { "http" }, scheme.starts_with("ws"))
            }
            _ => {
                return Err(Error::UrlSchemeNotSupported {
                    url: url.to_owned(),
                    reason: format!(
                        "The client supports only \"libsql:\", \"wss:\", \"ws:\", \"https:\" and \"http:\" URLs, got {:?}. For more information, please read {SUPPORTED}",
                        format!("{}:", p.scheme)
                    ),
                })
            }
        };
        if p.authority.is_none() {
            return Err(invalid(format!(
                "URL with scheme {:?} requires authority (the \"//\" part)",
                format!("{}:", p.scheme)
            )));
        }
        if p.authority.is_some_and(|a| a.contains('@')) {
            return Err(invalid(
                "user info in the URL is not supported; pass the token as `authToken`".into(),
            ));
        }
        let host = decode(host)?.to_ascii_lowercase();
        let host_ok = !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || "-._:".contains(c));
        if !host_ok {
            return Err(invalid(format!("invalid host {host:?}")));
        }
        let host = if host.contains(':') { format!("[{host}]") } else { host };
        decode(p.path)?;
        let path = p.path.trim_end_matches('/');
        let base_url = match port {
            Some(port) => format!("{scheme}://{host}:{port}{path}"),
            None => format!("{scheme}://{host}{path}"),
        };
        let auth_token = auth_token.map(str::to_owned).or(token_in_url).filter(|t| !t.is_empty());
        if let Some(t) = &auth_token {
            if !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(Error::InvalidArgument(
                    "authToken contains characters that cannot be sent in an HTTP header".into(),
                ));
            }
        }
        Ok(RemoteConfig {
            base_url,
            auth_token,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            websocket,
        })
    }

    /// The WebSocket URL for [`RemoteConfig::base_url`].
    pub fn websocket_url(&self) -> String {
        match self.base_url.strip_prefix("http") {
            Some(rest) => format!("ws{rest}"),
            None => self.base_url.clone(),
        }
    }

    /// Sets the per-request timeout; 0 is refused (it would mean "fail at once").
    pub fn with_timeout_ms(mut self, ms: u32) -> Result<Self> {
        if ms == 0 {
            return Err(Error::InvalidArgument("timeout must be at least 1 ms".into()));
        }
        self.timeout_ms = ms;
        Ok(self)
    }
}

/// `host[:port]` or `[v6][:port]` (user info is checked by the caller): the host as
/// written and the port, or why not.
fn split_authority(a: &str) -> std::result::Result<(&str, Option<u16>), String> {
    let malformed = || "The authority part of the URL is not in a valid format".to_string();
    let a = a.rsplit_once('@').map_or(a, |(_, h)| h);
    let (host, port) = match a.strip_prefix('[') {
        Some(rest) => {
            let (h, after) = rest.split_once(']').ok_or_else(malformed)?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(malformed()),
            }
        }
        None => a.split_once(':').map_or((a, None), |(h, p)| (h, Some(p))),
    };
    if host.contains(['[', ']']) {
        return Err(malformed());
    }
    let port = match port {
        None | Some("") => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("invalid port {p:?}: a port is a number from 1 to 65535")),
        },
        Some(_) => return Err(malformed()),
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_schemes() {
        let p = |u| RemoteConfig::parse(u, None).map(|c| (c.base_url, c.websocket));
        assert_eq!(p("libsql://a.b").unwrap(), ("https://a.b".into(), false));
        assert_eq!(
            p("libsql://127.0.0.1:8080?tls=0").unwrap(),
            ("http://127.0.0.1:8080".into(), false)
        );
        assert_eq!(
            p("http://127.0.0.1:8080/").unwrap(),
            ("http://127.0.0.1:8080".into(), false)
        );
        assert_eq!(p("https://h/prefix/").unwrap(), ("https://h/prefix".into(), false));
        assert_eq!(p("ws://[::1]:9000").unwrap(), ("http://[::1]:9000".into(), true));
        assert_eq!(p("WSS://h").unwrap(), ("https://h".into(), true));
        assert_eq!(p("http://ex%41mple.com").unwrap().0, "http://example.com");
        let ws = RemoteConfig::parse("wss://h:1/x", None).unwrap();
        assert_eq!(ws.websocket_url(), "wss://h:1/x");
    }

    /// The cases the TypeScript parser (js/url.ts) is checked against too.
    #[test]
    fn agrees_with_the_shared_url_fixture() {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/urls.json")).unwrap();
        let cases: serde_json::Value = serde_json::from_str(&text).unwrap();
        for case in cases["remote"].as_array().unwrap() {
            let url = case["url"].as_str().unwrap();
            match (RemoteConfig::parse(url, None), case.get("error")) {
                (Ok(c), None) => {
                    assert_eq!(c.base_url, case["base"].as_str().unwrap(), "{url}");
                    assert_eq!(c.websocket, case["ws"].as_bool().unwrap(), "{url}");
                }
                (Err(e), Some(code)) => assert_eq!(e.code(), code.as_str().unwrap(), "{url}: {e}"),
                (got, want) => panic!("{url}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn token_precedence_and_validation() {
        let c = RemoteConfig::parse("http://h?authToken=url", Some("arg")).unwrap();
        assert_eq!(c.auth_token.as_deref(), Some("arg"));
        let c = RemoteConfig::parse("http://h?authToken=url", None).unwrap();
        assert_eq!(c.auth_token.as_deref(), Some("url"));
        let c = RemoteConfig::parse("http://h", Some("")).unwrap();
        assert_eq!(c.auth_token, None);
        let e = RemoteConfig::parse("http://h", Some("a\nb")).unwrap_err();
        assert_eq!(e.code(), "INVALID_ARGUMENT");
        assert!(RemoteConfig::parse("http://h", None)
            .unwrap()
            .with_timeout_ms(0)
            .is_err());
    }

    proptest::proptest! {
        /// Any string either parses to an http(s) base URL or is a typed error.
        #[test]
        fn parse_never_panics(s in "(libsql|https?|wss?|file|x)?(://)?[a-z0-9.:@\\[\\]/?=&#% -]{0,40}") {
            match RemoteConfig::parse(&s, None) {
                Ok(c) => proptest::prop_assert!(c.base_url.starts_with("http://") || c.base_url.starts_with("https://")),
                Err(e) => proptest::prop_assert!(matches!(e.code(), "URL_INVALID" | "URL_SCHEME_NOT_SUPPORTED" | "URL_PARAM_NOT_SUPPORTED" | "INVALID_ARGUMENT")),
            }
        }
    }
}
