//! Client configuration: parsing and validating the database URL.
//!
//! Accepted URLs, as `@libsql/client` users write them:
//!
//! | URL                              | requests go to                |
//! |----------------------------------|-------------------------------|
//! | `libsql://db-org.turso.io`       | `https://db-org.turso.io`     |
//! | `libsql://127.0.0.1:8080?tls=0`  | `http://127.0.0.1:8080`       |
//! | `https://host[:port][/prefix]`   | as written                    |
//! | `http://host[:port][/prefix]`    | as written                    |
//! | `wss://…`, `ws://…`              | `https://…`, `http://…` (same host; edgesync speaks Hrana over HTTP) |
//!
//! An `authToken` query parameter is taken as the token. Anything else (another scheme,
//! user info, a bad port, spaces, an unknown query parameter) is a `URL_INVALID` error
//! at `createClient` time, not a confusing network failure later.
//!
//! ```
//! use edgesync::remote::RemoteConfig;
//! let c = RemoteConfig::parse("libsql://db.example.com?authToken=abc", None).unwrap();
//! assert_eq!(c.base_url, "https://db.example.com");
//! assert_eq!(c.auth_token.as_deref(), Some("abc"));
//! assert_eq!(RemoteConfig::parse("ftp://x", None).unwrap_err().code(), "URL_INVALID");
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
}

impl RemoteConfig {
    /// Parses `url`; `auth_token` (if given) wins over one in the URL.
    pub fn parse(url: &str, auth_token: Option<&str>) -> Result<Self> {
        let bad = |reason: &str| Error::UrlInvalid {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        if url.is_empty() {
            return Err(bad("the URL is empty"));
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("the URL contains spaces or control characters"));
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad("expected scheme://host, e.g. libsql://my-db.turso.io"))?;
        let (rest, fragment) = rest.split_once('#').map_or((rest, None), |(a, b)| (a, Some(b)));
        if fragment.is_some() {
            return Err(bad("a URL fragment (#…) is not allowed"));
        }
        let (rest, query) = rest.split_once('?').map_or((rest, None), |(a, b)| (a, Some(b)));
        let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));

        let mut tls: Option<bool> = None;
        let mut token_in_url: Option<String> = None;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "tls" => {
                    tls = Some(match v {
                        "0" => false,
                        "1" => true,
                        _ => return Err(bad("`tls` must be 0 or 1")),
                    })
                }
                "authToken" => token_in_url = Some(v.to_owned()),
                _ => return Err(bad(&format!("unknown query parameter {k:?}"))),
            }
        }

        let secure =
            match scheme.to_ascii_lowercase().as_str() {
                "libsql" => tls.unwrap_or(true),
                "https" | "wss" => true,
                "http" | "ws" => false,
                "file" => return Err(bad(
                    "file: URLs (local replicas) are not supported by the remote client; use http(s):// or libsql://",
                )),
                _ => {
                    return Err(bad(&format!(
                        "unsupported scheme {scheme:?}; use libsql://, https:// or http://"
                    )))
                }
            };
        if tls.is_some() && !scheme.eq_ignore_ascii_case("libsql") {
            return Err(bad("`tls` is only meaningful with libsql:// URLs"));
        }

        if authority.contains('@') {
            return Err(bad(
                "user info in the URL is not supported; pass the token as `authToken`",
            ));
        }
        let (host, port) = split_host_port(authority).map_err(|r| bad(&r))?;
        if host.is_empty() {
            return Err(bad("the host is missing"));
        }
        let host_ok = if host.starts_with('[') {
            host.ends_with(']')
                && host[1..host.len() - 1]
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        } else {
            host.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        };
        if !host_ok {
            return Err(bad(&format!("invalid host {host:?}")));
        }

        let path = path.trim_end_matches('/');
        let scheme = if secure { "https" } else { "http" };
        let base_url = match port {
            Some(p) => format!("{scheme}://{host}:{p}{path}"),
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
        })
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

fn split_host_port(authority: &str) -> std::result::Result<(&str, Option<u16>), String> {
    // IPv6 literal: [::1]:8080
    let (host, port) = if authority.starts_with('[') {
        match authority.find(']') {
            Some(i) => {
                let (h, rest) = authority.split_at(i + 1);
                match rest.strip_prefix(':') {
                    Some(p) => (h, Some(p)),
                    None if rest.is_empty() => (h, None),
                    None => return Err("garbage after the IPv6 address".into()),
                }
            }
            None => return Err("unterminated IPv6 address".into()),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("invalid port {p:?}")),
        },
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_schemes() {
        let p = |u| RemoteConfig::parse(u, None).map(|c| c.base_url);
        assert_eq!(p("libsql://a.b").unwrap(), "https://a.b");
        assert_eq!(p("libsql://127.0.0.1:8080?tls=0").unwrap(), "http://127.0.0.1:8080");
        assert_eq!(p("http://127.0.0.1:8080/").unwrap(), "http://127.0.0.1:8080");
        assert_eq!(p("https://h/prefix/").unwrap(), "https://h/prefix");
        assert_eq!(p("ws://[::1]:9000").unwrap(), "http://[::1]:9000");
        assert_eq!(p("WSS://h").unwrap(), "https://h");
    }

    #[test]
    fn rejects_bad_urls() {
        for u in [
            "",
            "localhost:8080",
            "ftp://h",
            "file:local.db",
            "file:///tmp/x.db",
            "http://",
            "http://h:0",
            "http://h:70000",
            "http://h:port",
            "http://u:p@h",
            "http://h h",
            "http://h/#frag",
            "http://h?tls=1",
            "libsql://h?tls=yes",
            "http://h?foo=1",
            "http://[::1",
            "http://ex%41mple.com",
        ] {
            let e = RemoteConfig::parse(u, None).unwrap_err();
            assert_eq!(e.code(), "URL_INVALID", "{u}: {e}");
        }
    }

    #[test]
    fn token_precedence_and_validation() {
        let c = RemoteConfig::parse("http://h?authToken=url", Some("arg")).unwrap();
        assert_eq!(c.auth_token.as_deref(), Some("arg"));
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
                Err(e) => proptest::prop_assert!(matches!(e.code(), "URL_INVALID" | "INVALID_ARGUMENT")),
            }
        }
    }
}
