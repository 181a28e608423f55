//! The CRDT classes: `GCounter`, `PNCounter`, `ORSet`, `LWWRegister`, `LWWMap`.
//!
//! Each wraps the Rust type of the same name. Shared conventions:
//! - `new X(siteId?)`: `siteId` is a number (safe non-negative integer), a bigint
//!   (u64), or a string (hashed with FNV-1a 64, as `site_id_from_str`); absent, a random
//!   64-bit id from `Math.random()`.
//! - `version()`, `encodeUpdateSince(version?)`, `applyUpdate(bytes)`, `encode()`,
//!   `X.decode(bytes, siteId?)` exchange `Uint8Array`s in the crate's binary format.
//! - Values cross with the same rules as SQL arguments and results (`convert.rs`);
//!   integers come back as `number` when safe, else `bigint`.
//! - LWW writes use `Date.now()`; their `applyUpdate` and `merge` reject writes more
//!   than one minute in the future (`CLOCK_DRIFT`).
//!
//! Every failure is thrown through [`to_js`], so it has a stable `code`.

use js_sys::{Array, Uint8Array};
use wasm_bindgen::prelude::*;

use crate::clock::{site_id_from_str, VersionVector};
use crate::crdt::{Crdt, GCounter, LWWMap, LWWRegister, ORSet, PNCounter};
use crate::error::Result;
use crate::sql::Value;
use crate::wasm::convert::IntMode;
use crate::wasm::error::{invalid, to_js};
use crate::wasm::values::{js_string, js_to_value, value_to_js};

type JsResult<T> = std::result::Result<T, JsValue>;

/// 2^53 − 1: the largest integer a JS number holds exactly.
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

pub(crate) fn site_from_js(v: &JsValue) -> Result<u64> {
    if v.is_undefined() || v.is_null() {
        // Two draws: Math.random() has at most 53 random bits.
        let half = || (js_sys::Math::random() * 4_294_967_296.0) as u64;
        return Ok(half() << 32 | half());
    }
    if let Some(s) = js_string(v, &|| "siteId".into()) {
        return Ok(site_id_from_str(&s?));
    }
    non_negative(v).ok_or_else(|| invalid("siteId must be a non-negative integer (number or bigint) or a string"))
}

/// A safe non-negative integer number, or a bigint in `0..2^64`.
fn non_negative(v: &JsValue) -> Option<u64> {
    if let Some(n) = v.as_f64() {
        return (n.fract() == 0.0 && (0.0..=MAX_SAFE).contains(&n)).then_some(n as u64);
    }
    if v.is_bigint() {
        return u64::try_from(v.clone()).ok();
    }
    None
}

fn amount_from_js(v: &JsValue) -> Result<u64> {
    if v.is_undefined() {
        return Ok(1);
    }
    non_negative(v).ok_or_else(|| invalid("amount must be a non-negative integer (number or bigint)"))
}

pub(crate) fn bytes_from_js(v: &JsValue, what: &str) -> Result<Vec<u8>> {
    v.dyn_ref::<Uint8Array>()
        .map(Uint8Array::to_vec)
        .ok_or_else(|| invalid(format!("{what} must be a Uint8Array")))
}

pub(crate) fn version_from_js(v: &JsValue) -> Result<VersionVector> {
    if v.is_undefined() || v.is_null() {
        return Ok(VersionVector::new());
    }
    VersionVector::decode(&bytes_from_js(v, "version")?)
}

fn value_from_js(v: &JsValue) -> Result<Value> {
    js_to_value(v, &|| "value".to_owned())
}

fn key_from_js(v: &JsValue) -> Result<String> {
    js_string(v, &|| "a map key".into()).ok_or_else(|| invalid("a map key must be a string"))?
}

fn value_out(v: &Value) -> JsValue {
    value_to_js(v, IntMode::Auto)
}

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// How `applyUpdate` and `merge` apply: LWW types check the clock drift of incoming
/// writes, the same way for an update and for a whole replica's state.
trait Bound: Crdt + Sized {
    fn apply_js(&mut self, bytes: &[u8]) -> Result<()> {
        self.apply_update(bytes)
    }
    fn merge_js(&mut self, other: &Self) -> Result<()> {
        self.merge(other);
        Ok(())
    }
}
impl Bound for GCounter {}
impl Bound for PNCounter {}
impl Bound for ORSet {}
impl Bound for LWWRegister {
    fn apply_js(&mut self, bytes: &[u8]) -> Result<()> {
        self.apply_update_at(bytes, now_ms())
    }
    fn merge_js(&mut self, other: &Self) -> Result<()> {
        self.merge_at(other, now_ms())
    }
}
impl Bound for LWWMap {
    fn apply_js(&mut self, bytes: &[u8]) -> Result<()> {
        self.apply_update_at(bytes, now_ms())
    }
    fn merge_js(&mut self, other: &Self) -> Result<()> {
        self.merge_at(other, now_ms())
    }
}

/// The methods every class shares.
macro_rules! shared {
    ($js:ident, $rs:ident) => {
        #[wasm_bindgen(js_class = $js)]
        impl $rs {
            #[wasm_bindgen(constructor)]
            pub fn new(
                #[wasm_bindgen(js_name = siteId, unchecked_optional_param_type = "number | bigint | string")]
                site_id: Option<JsValue>,
            ) -> JsResult<$rs> {
                let site = site_from_js(&site_id.unwrap_or_default()).map_err(to_js)?;
                Ok($rs {
                    inner: $js::new(site),
                })
            }

            /// This replica's site id (a bigint).
            #[wasm_bindgen(getter, js_name = siteId, unchecked_return_type = "bigint")]
            pub fn site_id(&self) -> JsValue {
                JsValue::from(self.inner.site())
            }

            /// Joins another replica's whole state into this one (LWW types: writes
            /// more than the max drift ahead are refused with `CLOCK_DRIFT`).
            pub fn merge(&mut self, other: &$rs) -> JsResult<()> {
                self.inner.merge_js(&other.inner).map_err(to_js)
            }

            /// The operations seen, as an encoded version vector.
            pub fn version(&self) -> Vec<u8> {
                self.inner.version().encode()
            }

            /// What a replica at `version` (from its `version()`; absent: nothing) lacks.
            #[wasm_bindgen(js_name = encodeUpdateSince)]
            pub fn encode_update_since(
                &self,
                #[wasm_bindgen(unchecked_optional_param_type = "Uint8Array")] version: Option<JsValue>,
            ) -> JsResult<Vec<u8>> {
                let since = version_from_js(&version.unwrap_or_default()).map_err(to_js)?;
                Ok(self.inner.encode_update_since(&since))
            }

            /// Applies an update; duplicates and stale updates are harmless.
            #[wasm_bindgen(js_name = applyUpdate)]
            pub fn apply_update(
                &mut self,
                #[wasm_bindgen(unchecked_param_type = "Uint8Array")] update: JsValue,
            ) -> JsResult<()> {
                let bytes = bytes_from_js(&update, "update").map_err(to_js)?;
                self.inner.apply_js(&bytes).map_err(to_js)
            }

            /// The full state.
            pub fn encode(&self) -> Vec<u8> {
                self.inner.encode()
            }

            /// Restores `encode()`d state, editing as `siteId` (absent: a random site).
            pub fn decode(
                #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: JsValue,
                #[wasm_bindgen(js_name = siteId, unchecked_optional_param_type = "number | bigint | string")]
                site_id: Option<JsValue>,
            ) -> JsResult<$rs> {
                let run = || -> Result<$rs> {
                    let site = site_from_js(&site_id.unwrap_or_default())?;
                    let inner = $js::decode(&bytes_from_js(&bytes, "bytes")?, site)?;
                    Ok($rs { inner })
                };
                run().map_err(to_js)
            }
        }
    };
}

/// A grow-only counter.
#[wasm_bindgen(js_name = GCounter)]
pub struct JsGCounter {
    inner: GCounter,
}
shared!(GCounter, JsGCounter);

#[wasm_bindgen(js_class = GCounter)]
impl JsGCounter {
    /// Adds `amount` (default 1); returns the new value.
    #[wasm_bindgen(unchecked_return_type = "number | bigint")]
    pub fn increment(
        &mut self,
        #[wasm_bindgen(unchecked_optional_param_type = "number | bigint")] amount: Option<JsValue>,
    ) -> JsResult<JsValue> {
        let n = amount_from_js(&amount.unwrap_or_default()).map_err(to_js)?;
        let v = self.inner.increment(n).map_err(to_js)?;
        Ok(u64_out(v))
    }

    /// A `number`, or a `bigint` past 2^53 − 1.
    #[wasm_bindgen(unchecked_return_type = "number | bigint")]
    pub fn value(&self) -> JsResult<JsValue> {
        self.inner.value().map(u64_out).map_err(to_js)
    }
}

pub(crate) fn u64_out(v: u64) -> JsValue {
    if v as f64 <= MAX_SAFE {
        JsValue::from_f64(v as f64)
    } else {
        JsValue::from(v)
    }
}

/// A counter that goes up and down.
#[wasm_bindgen(js_name = PNCounter)]
pub struct JsPNCounter {
    inner: PNCounter,
}
shared!(PNCounter, JsPNCounter);

#[wasm_bindgen(js_class = PNCounter)]
impl JsPNCounter {
    /// Adds `amount` (default 1); returns the new value.
    #[wasm_bindgen(unchecked_return_type = "number | bigint")]
    pub fn increment(
        &mut self,
        #[wasm_bindgen(unchecked_optional_param_type = "number | bigint")] amount: Option<JsValue>,
    ) -> JsResult<JsValue> {
        let n = amount_from_js(&amount.unwrap_or_default()).map_err(to_js)?;
        self.inner.increment(n).map(i64_out).map_err(to_js)
    }

    /// Subtracts `amount` (default 1); returns the new value.
    #[wasm_bindgen(unchecked_return_type = "number | bigint")]
    pub fn decrement(
        &mut self,
        #[wasm_bindgen(unchecked_optional_param_type = "number | bigint")] amount: Option<JsValue>,
    ) -> JsResult<JsValue> {
        let n = amount_from_js(&amount.unwrap_or_default()).map_err(to_js)?;
        self.inner.decrement(n).map(i64_out).map_err(to_js)
    }

    /// A `number`, or a `bigint` beyond ±(2^53 − 1).
    #[wasm_bindgen(unchecked_return_type = "number | bigint")]
    pub fn value(&self) -> JsResult<JsValue> {
        self.inner.value().map(i64_out).map_err(to_js)
    }
}

fn i64_out(v: i64) -> JsValue {
    value_out(&Value::Integer(v))
}

/// An add-wins set.
#[wasm_bindgen(js_name = ORSet)]
pub struct JsORSet {
    inner: ORSet,
}
shared!(ORSet, JsORSet);

#[wasm_bindgen(js_class = ORSet)]
impl JsORSet {
    pub fn add(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "null | boolean | number | bigint | string | Uint8Array | Date")]
        value: JsValue,
    ) -> JsResult<()> {
        let v = value_from_js(&value).map_err(to_js)?;
        self.inner.add(v).map_err(to_js)
    }

    /// Whether the value was present.
    pub fn remove(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "null | boolean | number | bigint | string | Uint8Array | Date")]
        value: JsValue,
    ) -> JsResult<bool> {
        let v = value_from_js(&value).map_err(to_js)?;
        self.inner.remove(&v).map_err(to_js)
    }

    pub fn has(
        &self,
        #[wasm_bindgen(unchecked_param_type = "null | boolean | number | bigint | string | Uint8Array | Date")]
        value: JsValue,
    ) -> JsResult<bool> {
        let v = value_from_js(&value).map_err(to_js)?;
        Ok(self.inner.has(&v))
    }

    /// The elements, in the order of their encodings.
    #[wasm_bindgen(unchecked_return_type = "Array<null | number | bigint | string | Uint8Array>")]
    pub fn values(&self) -> Array {
        self.inner.values().map(value_out).collect()
    }

    #[wasm_bindgen(getter)]
    pub fn size(&self) -> usize {
        self.inner.len()
    }
}

/// A last-writer-wins register.
#[wasm_bindgen(js_name = LWWRegister)]
pub struct JsLWWRegister {
    inner: LWWRegister,
}
shared!(LWWRegister, JsLWWRegister);

#[wasm_bindgen(js_class = LWWRegister)]
impl JsLWWRegister {
    pub fn set(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "null | boolean | number | bigint | string | Uint8Array | Date")]
        value: JsValue,
    ) -> JsResult<()> {
        let v = value_from_js(&value).map_err(to_js)?;
        self.inner.set(v, now_ms()).map(|_| ()).map_err(to_js)
    }

    /// The value; `undefined` if never set.
    #[wasm_bindgen(unchecked_return_type = "null | number | bigint | string | Uint8Array | undefined")]
    pub fn get(&self) -> JsValue {
        self.inner.get().map_or(JsValue::UNDEFINED, value_out)
    }
}

/// A map of last-writer-wins registers; deletes are timestamped too.
#[wasm_bindgen(js_name = LWWMap)]
pub struct JsLWWMap {
    inner: LWWMap,
}
shared!(LWWMap, JsLWWMap);

#[wasm_bindgen(js_class = LWWMap)]
impl JsLWWMap {
    pub fn set(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue,
        #[wasm_bindgen(unchecked_param_type = "null | boolean | number | bigint | string | Uint8Array | Date")]
        value: JsValue,
    ) -> JsResult<()> {
        let k = key_from_js(&key).map_err(to_js)?;
        let v = value_from_js(&value).map_err(to_js)?;
        self.inner.set(&k, v, now_ms()).map(|_| ()).map_err(to_js)
    }

    /// The value; `undefined` if absent or deleted.
    #[wasm_bindgen(unchecked_return_type = "null | number | bigint | string | Uint8Array | undefined")]
    pub fn get(&self, #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue) -> JsResult<JsValue> {
        let k = key_from_js(&key).map_err(to_js)?;
        Ok(self.inner.get(&k).map_or(JsValue::UNDEFINED, value_out))
    }

    pub fn has(&self, #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue) -> JsResult<bool> {
        let k = key_from_js(&key).map_err(to_js)?;
        Ok(self.inner.contains_key(&k))
    }

    /// Whether the key was present.
    pub fn delete(&mut self, #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue) -> JsResult<bool> {
        let k = key_from_js(&key).map_err(to_js)?;
        self.inner.delete(&k, now_ms()).map_err(to_js)
    }

    /// Live keys, sorted.
    #[wasm_bindgen(unchecked_return_type = "string[]")]
    pub fn keys(&self) -> Array {
        self.inner.keys().map(JsValue::from_str).collect()
    }

    /// `[key, value]` pairs, sorted by key.
    #[wasm_bindgen(unchecked_return_type = "Array<[string, null | number | bigint | string | Uint8Array]>")]
    pub fn entries(&self) -> Array {
        self.inner
            .entries()
            .map(|(k, v)| -> JsValue {
                [JsValue::from_str(k), value_out(v)]
                    .into_iter()
                    .collect::<Array>()
                    .into()
            })
            .collect()
    }

    #[wasm_bindgen(getter)]
    pub fn size(&self) -> usize {
        self.inner.len()
    }
}
