//! `Text`: the collaborative text CRDT for JavaScript.

use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;

use crate::crdt::text::seq::Id;
use crate::crdt::text::{Anchor, Assoc, Text};
use crate::error::Result;
use crate::wasm::crdt::{bytes_from_js, site_from_js, u64_out, version_from_js};
use crate::wasm::error::{invalid, to_js};
use crate::wasm::values::js_string;

/// The type of `anchor()`'s result and `resolve()`'s argument.
#[wasm_bindgen(typescript_custom_section)]
const TEXT_ANCHOR: &'static str = r#"
/** A cursor position in a `Text` that follows concurrent edits: plain data, to store or send. */
export interface TextAnchor {
  /** The site and sequence number of the character it is attached to; `null` at an end of an empty text. */
  site: number | bigint | null;
  seq: number | bigint | null;
  assoc: "before" | "after";
}
"#;

type JsResult<T> = std::result::Result<T, JsValue>;

/// Collaborative plain text. Positions and lengths are Unicode code points; the
/// `…Utf16` methods take JavaScript string offsets (UTF-16 code units) for editors.
#[wasm_bindgen(js_name = Text)]
pub struct JsText {
    inner: Text,
}

fn index(v: f64, what: &str) -> Result<usize> {
    if v.fract() == 0.0 && (0.0..=9_007_199_254_740_991.0).contains(&v) {
        Ok(v as usize)
    } else {
        Err(invalid(format!("{what} must be a non-negative integer, not {v}")))
    }
}

fn string(v: &JsValue) -> Result<String> {
    js_string(v, &|| "text".into()).ok_or_else(|| invalid("text must be a string"))?
}

fn get(v: &JsValue, k: &str) -> JsValue {
    Reflect::get(v, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED)
}

/// What the per-keystroke methods return: `undefined`, or the error, which `js/crdt.ts`
/// throws. A `Result` return comes back to JavaScript as a two-element array, one
/// allocation per call: over a long editing session that garbage grew the process by
/// about 6 MB (the V8 young generation), more than the whole document.
fn status(r: Result<()>) -> JsValue {
    match r {
        Ok(()) => JsValue::UNDEFINED,
        Err(e) => to_js(e),
    }
}

fn assoc_from(v: &JsValue) -> Result<Assoc> {
    match v.as_string().as_deref() {
        None | Some("after") => Ok(Assoc::After),
        Some("before") => Ok(Assoc::Before),
        Some(other) => Err(invalid(format!("assoc must be \"before\" or \"after\", not {other:?}"))),
    }
}

#[wasm_bindgen(js_class = Text)]
impl JsText {
    /// `new Text(siteId?)`: an empty text edited as `siteId` (random when absent).
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(js_name = siteId, unchecked_optional_param_type = "number | bigint | string")] site_id: Option<
            JsValue,
        >,
    ) -> JsResult<JsText> {
        let site = site_from_js(&site_id.unwrap_or_default()).map_err(to_js)?;
        Ok(JsText { inner: Text::new(site) })
    }

    #[wasm_bindgen(getter, js_name = siteId, unchecked_return_type = "bigint")]
    pub fn site_id(&self) -> JsValue {
        JsValue::from(self.inner.site())
    }

    /// Inserts `text` before code point `index`. (Returns its error, which the
    /// package's `Text` throws; see `status`.)
    #[wasm_bindgen(unchecked_return_type = "undefined")]
    pub fn insert(&mut self, index: f64, #[wasm_bindgen(unchecked_param_type = "string")] text: JsValue) -> JsValue {
        status((|| {
            let pos = self::index(index, "index")?;
            self.inner.insert(pos, &string(&text)?)
        })())
    }

    /// Deletes `length` code points from `index`.
    #[wasm_bindgen(unchecked_return_type = "undefined")]
    pub fn delete(&mut self, index: f64, length: f64) -> JsValue {
        status((|| {
            let pos = self::index(index, "index")?;
            let len = self::index(length, "length")?;
            self.inner.delete(pos, len)
        })())
    }

    /// `insert` with a UTF-16 offset (a JavaScript string index).
    #[wasm_bindgen(js_name = insertUtf16, unchecked_return_type = "undefined")]
    pub fn insert_utf16(
        &mut self,
        index: f64,
        #[wasm_bindgen(unchecked_param_type = "string")] text: JsValue,
    ) -> JsValue {
        status((|| {
            let pos = self::index(index, "index")?;
            self.inner.insert_utf16(pos, &string(&text)?)
        })())
    }

    /// `delete` with UTF-16 offset and length.
    #[wasm_bindgen(js_name = deleteUtf16, unchecked_return_type = "undefined")]
    pub fn delete_utf16(&mut self, index: f64, length: f64) -> JsValue {
        status((|| {
            let pos = self::index(index, "index")?;
            let len = self::index(length, "length")?;
            self.inner.delete_utf16(pos, len)
        })())
    }

    #[wasm_bindgen(js_name = toString)]
    pub fn to_js_string(&self) -> String {
        self.inner.text()
    }

    /// Length in code points.
    #[wasm_bindgen(getter)]
    pub fn length(&self) -> usize {
        self.inner.len()
    }

    /// Length in UTF-16 code units (what `toString().length` gives).
    #[wasm_bindgen(getter, js_name = lengthUtf16)]
    pub fn length_utf16(&self) -> usize {
        self.inner.len_utf16()
    }

    /// The state as bytes: `encode()` leaves out the text of deleted characters (like
    /// Yjs's garbage collection; a replica loaded from it syncs and merges normally, but
    /// `textAt` / `restore` of older versions is an error there);
    /// `encode({ history: true })` keeps it.
    pub fn encode(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "{ history?: boolean }")] options: Option<JsValue>,
    ) -> JsResult<Vec<u8>> {
        let history = match options {
            None => false,
            Some(o) if o.is_undefined() || o.is_null() => false,
            Some(o) if o.is_object() => match get(&o, "history") {
                v if v.is_undefined() => false,
                v => v
                    .as_bool()
                    .ok_or_else(|| to_js(invalid("encode option history must be a boolean")))?,
            },
            Some(_) => return Err(to_js(invalid("encode options must be an object"))),
        };
        Ok(if history {
            self.inner.encode_with_history()
        } else {
            self.inner.encode()
        })
    }

    /// Loads `encode()` output; further edits are made as `siteId` (random when absent).
    pub fn decode(
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "number | bigint | string")] site_id: Option<JsValue>,
    ) -> JsResult<JsText> {
        let bytes = bytes_from_js(&bytes, "bytes").map_err(to_js)?;
        let site = site_from_js(&site_id.unwrap_or_default()).map_err(to_js)?;
        Ok(JsText {
            inner: Text::decode(&bytes, site).map_err(to_js)?,
        })
    }

    /// The operations seen, as an encoded version vector.
    pub fn version(&self) -> Vec<u8> {
        self.inner.version().encode()
    }

    /// What a replica at `version` lacks (everything when absent).
    #[wasm_bindgen(js_name = encodeUpdateSince)]
    pub fn encode_update_since(
        &self,
        #[wasm_bindgen(unchecked_optional_param_type = "Uint8Array")] version: Option<JsValue>,
    ) -> JsResult<Vec<u8>> {
        let v = version_from_js(&version.unwrap_or_default()).map_err(to_js)?;
        self.inner.validate().map_err(to_js)?;
        Ok(self.inner.encode_update_since(&v))
    }

    /// Checks a loaded document completely now (`DECODE_ERROR` if its structure is
    /// invalid). `decode` checks the checksum, the header and the text, and the run
    /// structure on first need (an edit, a merge, an update): see docs/crdts.md.
    pub fn validate(&self) -> JsResult<()> {
        self.inner.validate().map_err(to_js)
    }

    /// Applies an update; duplicates are ignored and operations whose dependencies
    /// have not arrived wait for them (see `pendingOps`).
    #[wasm_bindgen(js_name = applyUpdate)]
    pub fn apply_update(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: JsValue,
    ) -> JsResult<()> {
        let bytes = bytes_from_js(&bytes, "update").map_err(to_js)?;
        self.inner.apply_update(&bytes).map_err(to_js)
    }

    /// Brings in everything `other` has.
    pub fn merge(&mut self, other: &JsText) -> JsResult<()> {
        self.inner.merge(&other.inner).map_err(to_js)
    }

    /// Remote operations waiting for operations they depend on.
    #[wasm_bindgen(getter, js_name = pendingOps)]
    pub fn pending_ops(&self) -> usize {
        self.inner.pending_ops()
    }

    /// A cursor anchor at code point `index` that follows concurrent edits:
    /// `{ site, seq, assoc }` (plain data: store it, send it, resolve it later).
    #[wasm_bindgen(unchecked_return_type = "TextAnchor")]
    pub fn anchor(
        &self,
        index: f64,
        #[wasm_bindgen(unchecked_optional_param_type = "'before' | 'after'")] assoc: Option<JsValue>,
    ) -> JsResult<JsValue> {
        let pos = self::index(index, "index").map_err(to_js)?;
        let assoc = assoc_from(&assoc.unwrap_or_default()).map_err(to_js)?;
        let a = self.inner.anchor(pos, assoc).map_err(to_js)?;
        let out = Object::new();
        let (site, seq) = a.id.map_or((JsValue::NULL, JsValue::NULL), |id| {
            (u64_out(id.agent), u64_out(id.seq))
        });
        let _ = Reflect::set(&out, &"site".into(), &site);
        let _ = Reflect::set(&out, &"seq".into(), &seq);
        let assoc = if a.assoc == Assoc::Before { "before" } else { "after" };
        let _ = Reflect::set(&out, &"assoc".into(), &JsValue::from_str(assoc));
        Ok(out.into())
    }

    /// The anchor's current code point index.
    pub fn resolve(&self, #[wasm_bindgen(unchecked_param_type = "TextAnchor")] anchor: JsValue) -> JsResult<usize> {
        let parse = || -> Result<Anchor> {
            // Every field is required: a missing one is another object (or a typo),
            // never "the start of the text".
            let shape = || invalid("an anchor is the object anchor() returned: { site, seq, assoc }");
            if !anchor.is_object() {
                return Err(shape());
            }
            let (site, seq, assoc) = (get(&anchor, "site"), get(&anchor, "seq"), get(&anchor, "assoc"));
            if site.is_undefined() || seq.is_undefined() || assoc.is_undefined() || site.is_null() != seq.is_null() {
                return Err(shape());
            }
            let assoc = assoc_from(&assoc)?;
            let id = if site.is_null() {
                None
            } else {
                let n = |v: &JsValue, what: &str| {
                    site_from_js(v)
                        .ok()
                        .filter(|_| !v.is_string())
                        .ok_or_else(|| invalid(format!("anchor {what} must be a non-negative integer")))
                };
                Some(Id::new(n(&site, "site")?, n(&seq, "seq")?))
            };
            Ok(Anchor { id, assoc })
        };
        let a = parse().map_err(to_js)?;
        self.inner.resolve(a).map_err(to_js)
    }

    /// The text as it was at `version` (from `version()`).
    #[wasm_bindgen(js_name = textAt)]
    pub fn text_at(&self, #[wasm_bindgen(unchecked_param_type = "Uint8Array")] version: JsValue) -> JsResult<String> {
        let v = version_from_js(&version).map_err(to_js)?;
        self.inner.text_at(&v).map_err(to_js)
    }

    /// Makes the text read as it did at `version`, as a new edit that syncs like any other.
    pub fn restore(&mut self, #[wasm_bindgen(unchecked_param_type = "Uint8Array")] version: JsValue) -> JsResult<()> {
        let v = version_from_js(&version).map_err(to_js)?;
        self.inner.restore(&v).map_err(to_js)
    }
}
