//! [`Principal`]: who a verified token is. [`AuthConfig`]: how tokens are read.

use serde_json::Value as Json;

use super::channels::ChannelGrants;
use crate::{Error, Result};

/// The longest accepted `sub` claim, in bytes.
pub const MAX_SUB_BYTES: usize = 255;

/// What kind of caller a principal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A trusted backend: runs SQL, manages any session, subscribes to any channel.
    Service,
    /// An end user: their own sessions and granted channels; no SQL of their own.
    User,
}

impl Role {
    /// `"service"` or `"user"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Service => "service",
            Role::User => "user",
        }
    }
}

/// Whether a principal may change data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    ReadOnly,
}

impl Access {
    /// `"rw"` or `"ro"` (sqld's `a` claim values).
    pub fn as_str(self) -> &'static str {
        match self {
            Access::ReadWrite => "rw",
            Access::ReadOnly => "ro",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's subject (`sub`).
    pub sub: String,
    pub role: Role,
    pub access: Access,
}

/// How claims become principals, and which hub channels users get. From JSON
/// (camelCase), every field optional:
/// `{"serviceRole": "service", "serviceRoleClaim": "role", "channels": {…}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthConfig {
    /// The value of the role claim that makes a token a service token.
    pub service_role: String,
    /// The claim holding the role: a string, or an array of strings.
    pub service_role_claim: String,
    /// Hub channels granted to user principals.
    pub channels: ChannelGrants,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            service_role: "service".into(),
            service_role_claim: "role".into(),
            channels: ChannelGrants::default(),
        }
    }
}

impl AuthConfig {
    /// Parses and validates the configuration.
    ///
    /// ```
    /// use edgesync::auth::AuthConfig;
    /// let c = AuthConfig::from_json(r#"{"serviceRole": "backend"}"#).unwrap();
    /// assert_eq!(c.service_role, "backend");
    /// assert_eq!(c.service_role_claim, "role");
    /// assert_eq!(AuthConfig::from_json(r#"{"serviceRole": ""}"#).unwrap_err().code(), "CONFIG_ERROR");
    /// ```
    pub fn from_json(json: &str) -> Result<Self> {
        let bad = |m: String| Error::Config(format!("auth configuration: {m}"));
        let v: Json = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        let Json::Object(fields) = v else {
            return Err(bad("not a JSON object".into()));
        };
        let mut c = AuthConfig::default();
        for (k, v) in fields {
            match (k.as_str(), v) {
                ("serviceRole", Json::String(s)) => c.service_role = s,
                ("serviceRoleClaim", Json::String(s)) => c.service_role_claim = s,
                ("channels", v) => c.channels = ChannelGrants::from_value(v).map_err(bad)?,
                (k @ ("serviceRole" | "serviceRoleClaim"), _) => return Err(bad(format!("{k} must be a string"))),
                (k, _) => return Err(bad(format!("unknown field {k:?}"))),
            }
        }
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<()> {
        if self.service_role.is_empty() || self.service_role_claim.is_empty() {
            return Err(Error::Config(
                "SERVICE_ROLE and SERVICE_ROLE_CLAIM must not be empty".into(),
            ));
        }
        self.channels.validate()
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::AuthInvalid {
        message: message.into(),
    }
}

impl Principal {
    /// The principal of a token whose signature, times, issuer and audience the
    /// caller has verified. Fails with `AUTH_INVALID` when `sub` is missing, empty,
    /// longer than [`MAX_SUB_BYTES`] or holds control characters, or when `a` is
    /// neither `"rw"` nor `"ro"`.
    ///
    /// ```
    /// use edgesync::auth::{Access, AuthConfig, Principal, Role};
    /// let config = AuthConfig::default();
    /// let claims = serde_json::json!({"sub": "api", "role": ["service"], "a": "ro"});
    /// let p = Principal::from_claims(&claims, &config).unwrap();
    /// assert_eq!((p.role, p.access), (Role::Service, Access::ReadOnly));
    /// let user = Principal::from_claims(&serde_json::json!({"sub": "alice", "role": "read-only"}), &config).unwrap();
    /// assert_eq!(user.role, Role::User);
    /// assert_eq!(Principal::from_claims(&serde_json::json!({"a": "rw"}), &config).unwrap_err().code(), "AUTH_INVALID");
    /// ```
    pub fn from_claims(claims: &Json, config: &AuthConfig) -> Result<Principal> {
        let Some(obj) = claims.as_object() else {
            return Err(invalid("the token payload is not a JSON object"));
        };
        let sub = match obj.get("sub") {
            Some(Json::String(s)) => s,
            Some(_) => return Err(invalid("the token's sub claim must be a string")),
            None => return Err(invalid("the token has no sub claim: every token must name its subject")),
        };
        check_sub(sub)?;
        let role = match obj.get(&config.service_role_claim) {
            Some(Json::String(r)) if *r == config.service_role => Role::Service,
            Some(Json::Array(list)) if list.iter().any(|r| r.as_str() == Some(&config.service_role)) => Role::Service,
            _ => Role::User,
        };
        let access = match obj.get("a") {
            None => Access::ReadWrite,
            Some(Json::String(a)) if a == "rw" => Access::ReadWrite,
            Some(Json::String(a)) if a == "ro" || a == "roa" => Access::ReadOnly,
            Some(other) => {
                let shown: String = other.to_string().chars().take(20).collect();
                return Err(invalid(format!(
                    "the token's access claim a is {shown}: \"rw\" or \"ro\" expected"
                )));
            }
        };
        Ok(Principal {
            sub: sub.clone(),
            role,
            access,
        })
    }

    pub fn is_service(&self) -> bool {
        self.role == Role::Service
    }

    /// Whether this principal may read, change or end a session owned by `owner`.
    pub fn may_use_session(&self, owner: &str) -> bool {
        self.is_service() || self.sub == owner
    }

    /// `FORBIDDEN` unless this is a service principal; `what` completes "… needs a
    /// service token".
    pub fn require_service(&self, what: &str) -> Result<()> {
        if self.is_service() {
            Ok(())
        } else {
            Err(Error::Forbidden(format!("{what} needs a service token")))
        }
    }

    /// The read cache's scope for this principal: results cached for one scope are
    /// never served to another. Service principals see every row, so they share one.
    pub fn cache_scope(&self) -> String {
        match self.role {
            Role::Service => "service".into(),
            Role::User => format!("user:{}", self.sub),
        }
    }
}

/// A usable subject: 1–255 bytes, no control characters.
fn check_sub(sub: &str) -> Result<()> {
    if sub.is_empty() {
        return Err(invalid("the token's sub claim is empty"));
    }
    if sub.len() > MAX_SUB_BYTES {
        return Err(invalid(format!(
            "the token's sub claim is longer than {MAX_SUB_BYTES} bytes"
        )));
    }
    if sub.chars().any(char::is_control) {
        return Err(invalid("the token's sub claim contains control characters"));
    }
    Ok(())
}
