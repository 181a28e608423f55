//! Hub channel access: names, reserved namespaces, and the grants users get.
//!
//! A channel is 1–200 characters without control characters or commas; a
//! subscription may end in `*` to follow every channel with that prefix. Who may do
//! what ([`ChannelGrants::check`]):
//!
//! | channel | publish | subscribe |
//! |---|---|---|
//! | `table:…`, `sync:…` | the worker itself only (`CHANNEL_RESERVED`) | service; users where granted |
//! | anything else | service; users where granted | service; users where granted |
//!
//! Read-only principals (`a: "ro"`) never publish. Grants are channel patterns with
//! the placeholder `{sub}` — the principal's subject, escaped by [`escape_sub`] so that
//! no subject can reach into another's namespace (`alice:x` becomes `alice%3Ax`). A
//! pattern ending in `*` grants every channel with that prefix, and every wildcard
//! subscription inside it; any other pattern grants that one channel. The default
//! grants each user `user:{sub}:*` for both.

use serde_json::Value as Json;

use super::principal::{Access, Principal};
use crate::{Error, Result};

/// The longest channel name, in characters.
pub const MAX_CHANNEL_CHARS: usize = 200;
/// Channel prefixes only the worker publishes on: `table:<name>` after a write through
/// `/query` or `/batch`, `sync:<table>` after a verified push.
pub const RESERVED_PREFIXES: [&str; 2] = ["table:", "sync:"];

/// What a principal wants to do on a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelOp {
    Subscribe,
    Publish,
}

impl ChannelOp {
    /// `"subscribe"` or `"publish"` (for the JS binding).
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "subscribe" => Ok(ChannelOp::Subscribe),
            "publish" => Ok(ChannelOp::Publish),
            _ => Err(Error::InvalidArgument(format!(
                "channel operation must be \"subscribe\" or \"publish\", got {s:?}"
            ))),
        }
    }
}

/// Channel patterns granted to user principals, per operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelGrants {
    pub subscribe: Vec<String>,
    pub publish: Vec<String>,
}

impl Default for ChannelGrants {
    fn default() -> Self {
        ChannelGrants {
            subscribe: vec!["user:{sub}:*".into()],
            publish: vec!["user:{sub}:*".into()],
        }
    }
}

/// Why `channel` is not a usable name (`wildcard`: a trailing `*` is allowed), or
/// `None`.
///
/// ```
/// use edgesync::auth::channels::channel_problem;
/// assert_eq!(channel_problem("room:1", false), None);
/// assert_eq!(channel_problem("room:*", true), None);
/// assert!(channel_problem("room:*", false).is_some());
/// assert!(channel_problem("a,b", true).is_some());
/// ```
pub fn channel_problem(channel: &str, wildcard: bool) -> Option<String> {
    let chars = channel.chars().count();
    if chars == 0 || chars > MAX_CHANNEL_CHARS {
        return Some(format!("a channel must be 1–{MAX_CHANNEL_CHARS} characters"));
    }
    if channel.chars().any(|c| c.is_control() || c == ',') {
        return Some("a channel must not contain control characters or commas".into());
    }
    match channel.find('*') {
        Some(i) if !(wildcard && i == channel.len() - 1) => Some(if wildcard {
            "`*` is only allowed as the last character of a subscription".into()
        } else {
            "a published channel must not contain `*`".into()
        }),
        _ => None,
    }
}

/// A subject as it appears in channel names: every byte outside `A–Z a–z 0–9 - . _ ~`
/// written as `%XX` (upper-case hex), so a subject never contains `:`, `*` or `,`.
///
/// ```
/// use edgesync::auth::escape_sub;
/// assert_eq!(escape_sub("alice"), "alice");
/// assert_eq!(escape_sub("auth0|42:x*"), "auth0%7C42%3Ax%2A");
/// ```
pub fn escape_sub(sub: &str) -> String {
    let mut out = String::with_capacity(sub.len());
    for &b in sub.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn reserved(channel: &str) -> bool {
    RESERVED_PREFIXES.iter().any(|p| channel.starts_with(p))
}

/// Whether the granted `pattern` covers the requested `channel` (itself possibly a
/// `prefix*` subscription).
fn covers(pattern: &str, channel: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => channel.strip_suffix('*').unwrap_or(channel).starts_with(prefix),
        None => pattern == channel,
    }
}

impl ChannelGrants {
    /// From JSON `{"subscribe": [patterns], "publish": [patterns]}` (each optional:
    /// a missing list keeps its default).
    pub(crate) fn from_value(v: Json) -> std::result::Result<Self, String> {
        let Json::Object(fields) = v else {
            return Err("channels must be an object {subscribe, publish}".into());
        };
        let mut g = ChannelGrants::default();
        for (k, v) in fields {
            let list = match v {
                Json::Array(items) => items
                    .into_iter()
                    .map(|p| match p {
                        Json::String(s) => Ok(s),
                        _ => Err(format!("channels.{k} must be an array of strings")),
                    })
                    .collect::<std::result::Result<Vec<_>, _>>()?,
                _ => return Err(format!("channels.{k} must be an array of strings")),
            };
            match k.as_str() {
                "subscribe" => g.subscribe = list,
                "publish" => g.publish = list,
                _ => return Err(format!("unknown field channels.{k:?}")),
            }
        }
        Ok(g)
    }

    /// Every pattern must be a valid subscription once `{sub}` is filled in. (Publish
    /// patterns that reach `table:` or `sync:` grant nothing there: those are refused
    /// before any grant is looked at.)
    pub fn validate(&self) -> Result<()> {
        for (op, list) in [("subscribe", &self.subscribe), ("publish", &self.publish)] {
            for p in list {
                let sample = p.replace("{sub}", "x");
                if let Some(problem) = channel_problem(&sample, true) {
                    return Err(Error::Config(format!("HUB_CHANNELS {op} pattern {p:?}: {problem}")));
                }
            }
        }
        Ok(())
    }

    /// The patterns `principal` holds for `op`, `{sub}` filled in.
    pub fn expanded(&self, principal: &Principal, op: ChannelOp) -> Vec<String> {
        let list = match op {
            ChannelOp::Subscribe => &self.subscribe,
            ChannelOp::Publish => &self.publish,
        };
        let sub = escape_sub(&principal.sub);
        list.iter().map(|p| p.replace("{sub}", &sub)).collect()
    }

    /// Whether `principal` may `op` on `channel`: `INVALID_ARGUMENT` for a malformed
    /// name, `CHANNEL_RESERVED` for a publish on `table:`/`sync:`,
    /// `PERMISSION_DENIED` for a read-only principal publishing, `FORBIDDEN` for a
    /// channel the principal is not granted.
    ///
    /// ```
    /// use edgesync::auth::{AuthConfig, ChannelOp, Principal};
    /// let config = AuthConfig::default();
    /// let alice = Principal::from_claims(&serde_json::json!({"sub": "alice"}), &config).unwrap();
    /// let g = &config.channels;
    /// assert!(g.check(&alice, "user:alice:inbox", ChannelOp::Publish).is_ok());
    /// assert!(g.check(&alice, "user:alice:*", ChannelOp::Subscribe).is_ok());
    /// assert_eq!(g.check(&alice, "user:bob:inbox", ChannelOp::Subscribe).unwrap_err().code(), "FORBIDDEN");
    /// assert_eq!(g.check(&alice, "*", ChannelOp::Subscribe).unwrap_err().code(), "FORBIDDEN");
    /// assert_eq!(g.check(&alice, "table:t", ChannelOp::Publish).unwrap_err().code(), "CHANNEL_RESERVED");
    /// ```
    pub fn check(&self, principal: &Principal, channel: &str, op: ChannelOp) -> Result<()> {
        if let Some(problem) = channel_problem(channel, op == ChannelOp::Subscribe) {
            let shown: String = channel.chars().take(60).collect();
            return Err(Error::InvalidArgument(format!("{problem}: {shown:?}")));
        }
        if op == ChannelOp::Publish {
            if reserved(channel) {
                return Err(Error::ChannelReserved(format!(
                    "{channel}: table: and sync: channels are published by the worker itself"
                )));
            }
            if principal.access == Access::ReadOnly {
                return Err(Error::PermissionDenied {
                    message: "a read-only token cannot publish".into(),
                });
            }
        }
        if principal.is_service() {
            return Ok(());
        }
        let sub = escape_sub(&principal.sub);
        let list = match op {
            ChannelOp::Subscribe => &self.subscribe,
            ChannelOp::Publish => &self.publish,
        };
        if list.iter().any(|p| covers(&p.replace("{sub}", &sub), channel)) {
            return Ok(());
        }
        let verb = match op {
            ChannelOp::Subscribe => "subscribe to",
            ChannelOp::Publish => "publish on",
        };
        Err(Error::Forbidden(format!(
            "this token may not {verb} {channel:?} (granted: {})",
            self.expanded(principal, op).join(", ")
        )))
    }
}
