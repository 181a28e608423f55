//! `Resolver`: one replica's named CRDT objects for JavaScript (see
//! [`crate::crdt::resolver`]).
//!
//! - `getCRDT(id, type)` → `{ id, type, value }`: the value is a snapshot — a counter's
//!   number (bigint past 2^53 − 1), an ORSet's array, a register's value (`undefined`
//!   until set), a map's plain object, a text's string.
//! - `applyOperation(id, op, args?)`: `args` a plain object of named arguments; values
//!   cross as in `convert.rs`.
//! - `operationLog()` → `[{ id, op, args, site, time, counter }]` (`site` a bigint,
//!   `time` the HLC milliseconds, `counter` its logical counter).
//! - `getConflictStats()` → `{ [id]: { type, rule, remoteUpdates, concurrent,
//!   overwrittenByRemote, keptLocal } }` (the last two only for LWW types).

use js_sys::{Array, Object as JsObject, Reflect};
use wasm_bindgen::prelude::*;

use crate::crdt::resolver::{Args, CrdtType, Object, Resolver, ResolverVersion};
use crate::error::Result;
use crate::sql::Value;
use crate::wasm::convert::IntMode;
use crate::wasm::crdt::{bytes_from_js, site_from_js, u64_out};
use crate::wasm::error::{invalid, to_js};
use crate::wasm::values::{js_string, js_to_value, value_to_js};

type JsResult<T> = std::result::Result<T, JsValue>;

/// One replica's named CRDT objects, operation log and conflict stats.
#[wasm_bindgen(js_name = Resolver)]
pub struct JsResolver {
    inner: Resolver,
}

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

fn string(v: &JsValue, what: &str) -> Result<String> {
    js_string(v, &|| what.into()).ok_or_else(|| invalid(format!("{what} must be a string")))?
}

/// Sets `obj[key] = value` on a plain object we created (cannot fail).
fn set(obj: &JsValue, key: &str, value: JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), &value);
}

fn value_out(v: &Value) -> JsValue {
    value_to_js(v, IntMode::Auto)
}

fn args_from_js(v: &JsValue) -> Result<Args> {
    if v.is_undefined() || v.is_null() {
        return Ok(Args::new());
    }
    if !v.is_object() || v.is_function() || Array::is_array(v) {
        return Err(invalid("args must be a plain object of named arguments"));
    }
    JsObject::entries(v.unchecked_ref())
        .iter()
        .map(|entry| {
            let pair: Array = entry.unchecked_into();
            let name = string(&pair.get(0), "an argument name")?;
            let value = js_to_value(&pair.get(1), &|| format!("argument {name:?}"))?;
            Ok((name, value))
        })
        .collect()
}

fn args_to_js(args: &Args) -> JsValue {
    let obj: JsValue = JsObject::new().into();
    for (k, v) in args {
        set(&obj, k, value_out(v));
    }
    obj
}

fn snapshot(object: &Object) -> JsResult<JsValue> {
    Ok(match object {
        Object::GCounter(c) => u64_out(c.value().map_err(to_js)?),
        Object::PNCounter(c) => value_out(&Value::Integer(c.value().map_err(to_js)?)),
        Object::ORSet(s) => s.values().map(value_out).collect::<Array>().into(),
        Object::LWWRegister(r) => r.get().map_or(JsValue::UNDEFINED, value_out),
        Object::LWWMap(m) => {
            let obj: JsValue = JsObject::new().into();
            for (k, v) in m.entries() {
                set(&obj, k, value_out(v));
            }
            obj
        }
        Object::Text(t) => JsValue::from_str(&t.text()),
    })
}

fn version_from_js(v: &JsValue) -> Result<ResolverVersion> {
    if v.is_undefined() || v.is_null() {
        return Ok(ResolverVersion::default());
    }
    ResolverVersion::decode(&bytes_from_js(v, "version")?)
}

#[wasm_bindgen(js_class = Resolver)]
impl JsResolver {
    /// `new Resolver(siteId?)`: a number, bigint or string (hashed); random when absent.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(js_name = siteId, unchecked_optional_param_type = "number | bigint | string")] site_id: Option<
            JsValue,
        >,
    ) -> JsResult<JsResolver> {
        let site = site_from_js(&site_id.unwrap_or_default()).map_err(to_js)?;
        Ok(JsResolver {
            inner: Resolver::new(site),
        })
    }

    /// This replica's site id (a bigint).
    #[wasm_bindgen(getter, js_name = siteId, unchecked_return_type = "bigint")]
    pub fn site_id(&self) -> JsValue {
        JsValue::from(self.inner.site())
    }

    /// Creates or returns the object `id` of `type`; `{ id, type, value }`.
    #[wasm_bindgen(js_name = getCRDT, unchecked_return_type = "{ id: string; type: string; value: unknown }")]
    pub fn get_crdt(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] ty: JsValue,
    ) -> JsResult<JsValue> {
        let id = string(&id, "id").map_err(to_js)?;
        let ty = string(&ty, "type").map_err(to_js)?;
        let object = self.inner.get_crdt(&id, &ty).map_err(to_js)?;
        let out: JsValue = JsObject::new().into();
        set(&out, "id", JsValue::from_str(&id));
        set(&out, "type", JsValue::from_str(object.crdt_type().name()));
        set(&out, "value", snapshot(object)?);
        Ok(out)
    }

    /// The object ids, sorted.
    #[wasm_bindgen(unchecked_return_type = "string[]")]
    pub fn ids(&self) -> Array {
        self.inner.ids().map(JsValue::from_str).collect()
    }

    /// Applies a local operation and logs it (e.g. `("likes", "increment", { amount: 2 })`).
    #[wasm_bindgen(js_name = applyOperation)]
    pub fn apply_operation(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] op: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "Record<string, unknown>")] args: Option<JsValue>,
    ) -> JsResult<()> {
        let run = || -> Result<()> {
            let id = string(&id, "id")?;
            let op = string(&op, "op")?;
            let args = args_from_js(&args.unwrap_or_default())?;
            self.inner.apply_operation(&id, &op, &args, now_ms())
        };
        run().map_err(to_js)
    }

    /// Every object's version, encoded.
    pub fn version(&self) -> Vec<u8> {
        self.inner.version().encode()
    }

    /// What a resolver at `version` (absent: nothing) lacks.
    #[wasm_bindgen(js_name = encodeUpdatesSince)]
    pub fn encode_updates_since(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "Uint8Array")] version: Option<JsValue>,
    ) -> JsResult<Vec<u8>> {
        let since = version_from_js(&version.unwrap_or_default()).map_err(to_js)?;
        Ok(self.inner.encode_updates_since(&since))
    }

    /// Applies `encodeUpdatesSince` output; duplicates and stale updates are harmless.
    #[wasm_bindgen(js_name = applyUpdates)]
    pub fn apply_updates(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: JsValue,
    ) -> JsResult<()> {
        let bytes = bytes_from_js(&bytes, "updates").map_err(to_js)?;
        self.inner.apply_updates(&bytes, now_ms()).map_err(to_js)
    }

    /// Joins every object of another resolver into this one.
    pub fn merge(&mut self, other: &JsResolver) -> JsResult<()> {
        self.inner.merge_at(&other.inner, now_ms()).map_err(to_js)
    }

    /// The whole resolver: objects, conflict stats and operation log.
    pub fn encode(&self) -> Vec<u8> {
        self.inner.encode()
    }

    /// Restores `encode()`d state, editing as `siteId` (absent: a random site).
    pub fn decode(
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: JsValue,
        #[wasm_bindgen(js_name = siteId, unchecked_optional_param_type = "number | bigint | string")] site_id: Option<
            JsValue,
        >,
    ) -> JsResult<JsResolver> {
        let run = || -> Result<JsResolver> {
            let site = site_from_js(&site_id.unwrap_or_default())?;
            let inner = Resolver::decode(&bytes_from_js(&bytes, "bytes")?, site)?;
            Ok(JsResolver { inner })
        };
        run().map_err(to_js)
    }

    /// The local operations, oldest first.
    #[wasm_bindgen(
        js_name = operationLog,
        unchecked_return_type = "Array<{ id: string; op: string; args: Record<string, unknown>; site: bigint; time: number; counter: number }>"
    )]
    pub fn operation_log(&self) -> Array {
        self.inner
            .operation_log()
            .iter()
            .map(|l| {
                let o: JsValue = JsObject::new().into();
                set(&o, "id", JsValue::from_str(&l.object));
                set(&o, "op", JsValue::from_str(&l.op));
                set(&o, "args", args_to_js(&l.args));
                set(&o, "site", JsValue::from(l.time.site));
                set(&o, "time", u64_out(l.time.ms));
                set(&o, "counter", JsValue::from_f64(f64::from(l.time.counter)));
                o
            })
            .collect()
    }

    /// Per object: `{ type, rule, remoteUpdates, concurrent, overwrittenByRemote?, keptLocal? }`.
    #[wasm_bindgen(js_name = getConflictStats, unchecked_return_type = "Record<string, Record<string, unknown>>")]
    pub fn get_conflict_stats(&self) -> JsValue {
        let out: JsValue = JsObject::new().into();
        for (id, ty, s) in self.inner.conflict_stats() {
            let o: JsValue = JsObject::new().into();
            set(&o, "type", JsValue::from_str(ty.name()));
            set(&o, "rule", JsValue::from_str(ty.rule()));
            set(&o, "remoteUpdates", u64_out(s.remote_updates));
            set(&o, "concurrent", u64_out(s.concurrent));
            if matches!(ty, CrdtType::LWWRegister | CrdtType::LWWMap) {
                set(&o, "overwrittenByRemote", u64_out(s.overwritten_by_remote));
                set(&o, "keptLocal", u64_out(s.kept_local));
            }
            set(&out, id, o);
        }
        out
    }
}
