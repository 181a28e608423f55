//! `AccessPolicy` (src/auth/): principals from verified claims and the edge's
//! permission checks. The TypeScript wrapper is in `js/edge.ts`.
//!
//! Principals cross the boundary as three strings — `sub`, `role` ("service" |
//! "user") and `access` ("rw" | "ro") — and are rebuilt here on each call (cheap),
//! so JavaScript never holds a wasm object that would need freeing.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;

use crate::auth::{self, Access, AuthConfig, ChannelOp, Principal, Role};
use crate::router;
use crate::wasm::error::{invalid, to_js};

type JsResult<T> = std::result::Result<T, JsValue>;

fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in fields {
        // Setting a property on a fresh object cannot fail.
        let _ = Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o.into()
}

fn strings(list: &[String]) -> JsValue {
    list.iter().map(|s| JsValue::from_str(s)).collect::<Array>().into()
}

/// The principal a JS caller holds (as returned by `AccessPolicy.principal`).
pub(crate) fn principal_of(sub: &str, role: &str, access: &str) -> JsResult<Principal> {
    let role = match role {
        "service" => Role::Service,
        "user" => Role::User,
        other => {
            return Err(to_js(invalid(format!(
                "role must be \"service\" or \"user\", got {other:?}"
            ))))
        }
    };
    let access = match access {
        "rw" => Access::ReadWrite,
        "ro" => Access::ReadOnly,
        other => {
            return Err(to_js(invalid(format!(
                "access must be \"rw\" or \"ro\", got {other:?}"
            ))))
        }
    };
    Ok(Principal {
        sub: sub.to_owned(),
        role,
        access,
    })
}

/// Who a token is and what it may do, for one configuration.
#[wasm_bindgen(js_name = AccessPolicy)]
pub struct JsAccessPolicy {
    config: AuthConfig,
}

#[wasm_bindgen(js_class = AccessPolicy)]
impl JsAccessPolicy {
    /// `config`: JSON `{serviceRole?, serviceRoleClaim?, channels?: {subscribe?, publish?}}`.
    #[wasm_bindgen(constructor)]
    pub fn new(config: Option<String>) -> JsResult<JsAccessPolicy> {
        let config = match config {
            Some(c) => AuthConfig::from_json(&c).map_err(to_js)?,
            None => AuthConfig::default(),
        };
        Ok(JsAccessPolicy { config })
    }

    /// The principal of verified claims (JSON text): `{sub, role, access}`, or
    /// `AUTH_INVALID` (no `sub`, a bad `a`).
    pub fn principal(&self, claims: &str) -> JsResult<JsValue> {
        let claims: serde_json::Value =
            serde_json::from_str(claims).map_err(|e| to_js(invalid(format!("claims are not JSON: {e}"))))?;
        let p = Principal::from_claims(&claims, &self.config).map_err(to_js)?;
        Ok(object(&[
            ("sub", JsValue::from_str(&p.sub)),
            ("role", JsValue::from_str(p.role.as_str())),
            ("access", JsValue::from_str(p.access.as_str())),
        ]))
    }

    /// Throws `INVALID_ARGUMENT`, `CHANNEL_RESERVED`, `PERMISSION_DENIED` or
    /// `FORBIDDEN` unless the principal may `op` ("subscribe" | "publish") on `channel`.
    #[wasm_bindgen(js_name = checkChannel)]
    pub fn check_channel(&self, sub: &str, role: &str, access: &str, channel: &str, op: &str) -> JsResult<()> {
        let p = principal_of(sub, role, access)?;
        let op = ChannelOp::parse(op).map_err(to_js)?;
        self.config.channels.check(&p, channel, op).map_err(to_js)
    }

    /// The channel patterns the principal holds (`{sub}` filled in); service
    /// principals hold `*` for subscribing.
    pub fn channels(&self, sub: &str, role: &str, access: &str) -> JsResult<JsValue> {
        let p = principal_of(sub, role, access)?;
        let g = &self.config.channels;
        let (subscribe, publish) = if p.is_service() {
            (vec!["*".to_string()], vec!["*".to_string()])
        } else {
            (g.expanded(&p, ChannelOp::Subscribe), g.expanded(&p, ChannelOp::Publish))
        };
        let publish = if p.access == Access::ReadOnly { vec![] } else { publish };
        Ok(object(&[
            ("subscribe", strings(&subscribe)),
            ("publish", strings(&publish)),
        ]))
    }

    /// Classifies `sql` and throws unless the principal may run it (`FORBIDDEN`,
    /// `SQL_NOT_ALLOWED`, `PERMISSION_DENIED`, `QUERY_UNPARSEABLE`).
    #[wasm_bindgen(js_name = authorizeSql)]
    pub fn authorize_sql(&self, sub: &str, role: &str, access: &str, sql: &str) -> JsResult<JsValue> {
        let p = principal_of(sub, role, access)?;
        p.require_service("running SQL through /query and /batch")
            .map_err(to_js)?;
        let c = router::classify(sql).map_err(to_js)?;
        auth::authorize_sql(&p, &c).map_err(to_js)?;
        Ok(object(&[
            (
                "kind",
                JsValue::from_str(if c.kind == router::StatementKind::Write {
                    "write"
                } else {
                    "read"
                }),
            ),
            ("writes", strings(&c.writes)),
            ("writesUnknown", JsValue::from_bool(c.writes_unknown)),
        ]))
    }

    /// Whether the principal may read, change or end a session owned by `owner`.
    #[wasm_bindgen(js_name = mayUseSession)]
    pub fn may_use_session(&self, sub: &str, role: &str, access: &str, owner: &str) -> JsResult<bool> {
        Ok(principal_of(sub, role, access)?.may_use_session(owner))
    }

    /// A subject as it appears in channel names (`%XX` for every byte outside
    /// `A–Z a–z 0–9 - . _ ~`).
    #[wasm_bindgen(js_name = escapeSub)]
    pub fn escape_sub(sub: &str) -> String {
        auth::escape_sub(sub)
    }

    /// Why `channel` is not a usable name (`wildcard`: a trailing `*` allowed), or undefined.
    #[wasm_bindgen(js_name = channelProblem)]
    pub fn channel_problem(channel: &str, wildcard: bool) -> Option<String> {
        auth::channels::channel_problem(channel, wildcard)
    }
}
