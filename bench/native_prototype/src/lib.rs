//! A measurement prototype, not product code: the ingest agent's per-event work (validate,
//! dedup, anonymise, encode) as one native call per lane batch, to measure what a compiled
//! inner loop would take off the worker's CPU (issue #16). Written to give byte-identical
//! clean events to Hito's Python stages on the simulator's valid events (checked by the
//! measuring script). Simplifications, each noted where it is: dedup keeps only the last
//! seq per device (Hito keeps a window with holes), duplicate JSON keys are not detected,
//! rejections carry a reason code only (no detail text, no DLQ record).

use std::collections::HashMap;
use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use serde_json::{Map, Value};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;
const MAX_SAFE: i64 = (1i64 << 53) - 1;

struct Dev {
    index: usize,
    key: Vec<u8>,
    site: String,
    kind: u8, // 0 checkpoint, 1 sensor, 2 drone
    revoked: bool,
}

#[pyclass]
struct NativeIngest {
    devices: HashMap<String, Dev>,
    last_seq: Vec<i64>,
    max_bytes: usize,
    max_future_s: f64,
    max_age_s: f64,
    policy_version: String,
    resolution_s: i64,
    vocabulary: Vec<String>,
    geohash_len: usize,
    purposes: Vec<(String, i64)>, // (name, epoch_s) linking document_number
    keys: HashMap<(String, i64), Vec<u8>>,
}

// Outcome codes (the Python side maps them to names).
const ACCEPTED: u8 = 0;
const DUPLICATE: u8 = 1;
const OVERSIZED: u8 = 2;
const MALFORMED: u8 = 3;
const SCHEMA: u8 = 4;
const UNKNOWN_SCHEMA: u8 = 5;
const UNKNOWN_DEVICE: u8 = 6;
const BAD_SIG: u8 = 7;
const SKEW: u8 = 8;
const LATE: u8 = 9;

fn is_pattern(s: &str, min: usize, max: usize, ok: impl Fn(u8) -> bool) -> bool {
    s.len() >= min && s.len() <= max && s.bytes().all(ok)
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64().filter(|f| f.is_finite()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn in_range(v: Option<&Value>, lo: f64, hi: f64) -> bool {
    v.and_then(num).is_some_and(|f| f >= lo && f <= hi)
}

fn literal(v: Option<&Value>, allowed: &[&str]) -> bool {
    matches!(v, Some(Value::String(s)) if allowed.contains(&s.as_str()))
}

fn only(obj: &Map<String, Value>, fields: &[&str]) -> bool {
    obj.keys().all(|k| fields.contains(&k.as_str()))
}

fn checkpoint_ok(p: &Map<String, Value>) -> bool {
    const F: &[&str] = &[
        "direction", "mode", "lane", "document_type", "document_number", "nationality",
        "birth_year", "vehicle_plate", "outcome", "processing_seconds",
    ];
    let upper_digit = |b: u8| b.is_ascii_uppercase() || b.is_ascii_digit();
    only(p, F)
        && literal(p.get("direction"), &["entry", "exit"])
        && literal(p.get("mode"), &["pedestrian", "car", "bus", "truck"])
        && matches!(p.get("lane"), Some(Value::String(s)) if s.len() >= 2 && s.len() <= 3
            && s.starts_with('L') && s[1..].bytes().all(|b| b.is_ascii_digit()))
        && literal(p.get("document_type"), &["passport", "national_id", "tvf", "other"])
        && matches!(p.get("document_number"), Some(Value::String(s))
            if is_pattern(s, 4, 20, |b| upper_digit(b) || b == b'<'))
        && matches!(p.get("nationality"), Some(Value::String(s))
            if is_pattern(s, 3, 3, |b| b.is_ascii_uppercase()))
        && p.get("birth_year").and_then(int).is_some_and(|y| (1900..=2100).contains(&y))
        && match p.get("vehicle_plate") {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => is_pattern(s, 2, 12, |b| upper_digit(b) || b == b'-'),
            _ => false,
        }
        && literal(p.get("outcome"), &["admitted", "refused", "secondary"])
        && in_range(p.get("processing_seconds"), 0.0, 86_400.0)
}

fn sensor_ok(p: &Map<String, Value>) -> bool {
    const F: &[&str] = &["sensor_type", "lat", "lon", "detections", "value", "unit", "battery_pct"];
    const UNITS: &[&str] = &["degC", "percent", "hPa", "mm", "m", "m/s", "lux", "W/m2", "dB", "ppm", "V"];
    only(p, F)
        && literal(p.get("sensor_type"), &["ground", "infrared", "camera", "environment"])
        && in_range(p.get("lat"), -90.0, 90.0)
        && in_range(p.get("lon"), -180.0, 180.0)
        && p.get("detections").and_then(int).is_some_and(|d| (0..=1_000_000).contains(&d))
        && match p.get("value") { None | Some(Value::Null) => true, v => v.and_then(num).is_some() }
        && match p.get("unit") { None | Some(Value::Null) => true, v => literal(v, UNITS) }
        && in_range(p.get("battery_pct"), 0.0, 100.0)
}

fn drone_ok(p: &Map<String, Value>) -> bool {
    const F: &[&str] = &[
        "flight_id", "lat", "lon", "alt_m", "speed_mps", "heading_deg", "battery_pct",
        "detections", "operator_id",
    ];
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'-';
    only(p, F)
        && matches!(p.get("flight_id"), Some(Value::String(s)) if is_pattern(s, 1, 64, word))
        && in_range(p.get("lat"), -90.0, 90.0)
        && in_range(p.get("lon"), -180.0, 180.0)
        && in_range(p.get("alt_m"), -500.0, 10_000.0)
        && in_range(p.get("speed_mps"), 0.0, 150.0)
        && p.get("heading_deg").and_then(num).is_some_and(|h| (0.0..360.0).contains(&h))
        && in_range(p.get("battery_pct"), 0.0, 100.0)
        && p.get("detections").and_then(int).is_some_and(|d| (0..=1_000_000).contains(&d))
        && matches!(p.get("operator_id"), Some(Value::String(s)) if is_pattern(s, 1, 64, word))
}

/// RFC 8785 bytes of a value (serde_json's Map is a BTreeMap: keys in code-point order, which
/// is JCS's for the ASCII keys of these schemas; ryu-js writes ECMAScript's numbers).
fn jcs(v: &Value, out: &mut Vec<u8>, skip_sig: bool) {
    match v {
        Value::Object(m) => jcs_object(m, out, skip_sig),
        Value::Array(a) => {
            out.push(b'[');
            for (i, val) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                jcs(val, out, false);
            }
            out.push(b']');
        }
        Value::Number(n) => {
            if let Some(i) = n.as_i64().filter(|i| i.abs() <= MAX_SAFE) {
                out.extend_from_slice(i.to_string().as_bytes());
            } else {
                let f = n.as_f64().unwrap();
                out.extend_from_slice(ryu_js::Buffer::new().format_finite(f).as_bytes());
            }
        }
        other => serde_json::to_writer(&mut *out, other).unwrap(),
    }
}

fn jcs_object(m: &Map<String, Value>, out: &mut Vec<u8>, skip_sig: bool) {
    out.push(b'{');
    let mut first = true;
    for (k, val) in m {
        if skip_sig && k == "sig" {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        serde_json::to_writer(&mut *out, k).unwrap();
        out.push(b':');
        jcs(val, out, false);
    }
    out.push(b'}');
}

/// A float as orjson writes it (shortest round trip, ".0" on integral values).
fn orjson_float(f: f64, out: &mut String) {
    out.push_str(ryu::Buffer::new().format_finite(f));
}

/// A float field's value (an integer in the JSON is a float once validated).
fn push_float(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        _ => orjson_float(num(v).unwrap(), out),
    }
}

fn push_value(v: &Value, out: &mut String) {
    match v {
        Value::Number(n) if n.is_f64() => orjson_float(n.as_f64().unwrap(), out),
        other => out.push_str(&serde_json::to_string(other).unwrap()),
    }
}

fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).unwrap();
    for p in parts {
        mac.update(p);
    }
    hex::encode(mac.finalize().into_bytes())
}

impl NativeIngest {
    fn one(&mut self, raw: &[u8], now: f64, expected: i32) -> (u8, Option<(u8, String, String)>) {
        if raw.len() > self.max_bytes {
            return (OVERSIZED, None);
        }
        let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(raw) else {
            return (MALFORMED, None); // (a JSON non-object is a schema violation in Hito)
        };
        let kind = match obj.get("schema").and_then(Value::as_str) {
            Some("checkpoint.crossing/1") => 0u8,
            Some("sensor.reading/1") => 1,
            Some("drone.telemetry/1") => 2,
            Some(_) => return (UNKNOWN_SCHEMA, None),
            None => return (SCHEMA, None),
        };
        const ENV: &[&str] = &["event_id", "schema", "device_id", "site", "seq", "event_time", "payload", "sig"];
        let lower_digit = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
        let ok_envelope = only(&obj, ENV)
            && matches!(obj.get("event_id"), Some(Value::String(s)) if uuid::Uuid::parse_str(s).is_ok())
            && matches!(obj.get("device_id"), Some(Value::String(s)) if is_pattern(s, 3, 64, lower_digit))
            && matches!(obj.get("site"), Some(Value::String(s)) if is_pattern(s, 2, 64, lower_digit))
            && obj.get("seq").and_then(int).is_some_and(|s| (0..=MAX_SAFE).contains(&s))
            && matches!(obj.get("sig"), Some(Value::String(s))
                if s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        let Some(Value::Object(payload)) = obj.get("payload") else { return (SCHEMA, None) };
        let ok_payload = match kind {
            0 => checkpoint_ok(payload),
            1 => sensor_ok(payload),
            _ => drone_ok(payload),
        };
        let time = obj.get("event_time").and_then(Value::as_str)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
        let (true, true, Some(time)) = (ok_envelope, ok_payload, time) else { return (SCHEMA, None) };
        if expected >= 0 && expected as u8 != kind {
            return (SCHEMA, None);
        }
        let device_id = obj["device_id"].as_str().unwrap();
        let Some(dev) = self.devices.get(device_id) else { return (UNKNOWN_DEVICE, None) };
        if dev.revoked || dev.kind != kind || dev.site != obj["site"].as_str().unwrap() {
            return (UNKNOWN_DEVICE, None);
        }
        let mut canonical = Vec::with_capacity(raw.len());
        jcs_object(&obj, &mut canonical, true);
        let given = obj["sig"].as_str().unwrap();
        if hmac_hex(&dev.key, &[&canonical]) != given {
            return (BAD_SIG, None);
        }
        let at = time.timestamp() as f64 + f64::from(time.timestamp_subsec_micros()) / 1e6;
        if at - now > self.max_future_s {
            return (SKEW, None);
        }
        if now - at > self.max_age_s {
            return (LATE, None);
        }
        let seq = obj["seq"].as_i64().unwrap();
        let last = &mut self.last_seq[dev.index];
        if seq <= *last {
            return (DUPLICATE, None); // simplified dedup: Hito keeps a window with holes
        }
        *last = seq;
        // anonymise + encode, as Hito's orjson.dumps(doc) writes it
        let p = obj["payload"].as_object().unwrap();
        let mut out = String::with_capacity(320);
        let source = ["checkpoint", "sensor", "drone"][kind as usize];
        let floored = (at as i64).div_euclid(self.resolution_s) * self.resolution_s;
        let when = chrono::DateTime::from_timestamp(floored, 0).unwrap();
        write!(
            out,
            "{{\"schema\":{},\"source\":\"{}\",\"policy\":{},\"device_id\":\"{}\",\"site\":\"{}\",\"seq\":{},\"event_time\":\"{}+00:00\",\"payload\":{{",
            obj["schema"], source, Value::String(self.policy_version.clone()), device_id,
            dev.site, seq, when.format("%Y-%m-%dT%H:%M:%S")
        ).unwrap();
        let mut pseudonyms = String::new();
        match kind {
            0 => {
                for name in ["direction", "mode"] {
                    write!(out, "\"{name}\":").unwrap();
                    push_value(&p[name], &mut out);
                    out.push(',');
                }
                let nat = p["nationality"].as_str().unwrap();
                let nat = if self.vocabulary.iter().any(|v| v == nat) { nat } else { "other" };
                write!(out, "\"nationality\":\"{nat}\",\"outcome\":").unwrap();
                push_value(&p["outcome"], &mut out);
                out.push_str(",\"processing_seconds\":");
                push_float(&p["processing_seconds"], &mut out);
                let doc = p["document_number"].as_str().unwrap();
                for (purpose, epoch_s) in &self.purposes {
                    let epoch = (at as i64).div_euclid(*epoch_s);
                    if let Some(key) = self.keys.get(&(purpose.clone(), epoch)) {
                        let mac = hmac_hex(key, &[purpose.as_bytes(), b"\0document_number\0", doc.as_bytes()]);
                        write!(pseudonyms, "\"{purpose}\":{{\"document_number\":\"e{epoch}:{}\"}}", &mac[..32]).unwrap();
                    }
                }
            }
            1 => {
                write!(out, "\"sensor_type\":").unwrap();
                push_value(&p["sensor_type"], &mut out);
                let cell = geohash::encode(
                    geohash::Coord { x: num(&p["lon"]).unwrap(), y: num(&p["lat"]).unwrap() },
                    self.geohash_len,
                ).unwrap();
                write!(out, ",\"geohash\":\"{cell}\",\"detections\":").unwrap();
                push_value(&p["detections"], &mut out);
                out.push_str(",\"value\":");
                push_float(p.get("value").unwrap_or(&Value::Null), &mut out);
            }
            _ => {
                let cell = geohash::encode(
                    geohash::Coord { x: num(&p["lon"]).unwrap(), y: num(&p["lat"]).unwrap() },
                    self.geohash_len,
                ).unwrap();
                write!(out, "\"geohash\":\"{cell}\",\"alt_m\":").unwrap();
                push_float(&p["alt_m"], &mut out);
                out.push_str(",\"battery_pct\":");
                push_float(&p["battery_pct"], &mut out);
                out.push_str(",\"detections\":");
                push_value(&p["detections"], &mut out);
            }
        }
        out.push('}');
        if !pseudonyms.is_empty() {
            write!(out, ",\"pseudonyms\":{{{pseudonyms}}}").unwrap();
        }
        out.push('}');
        (ACCEPTED, Some((kind, dev.site.clone(), out)))
    }
}

#[pymethods]
impl NativeIngest {
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        devices: Vec<(String, Vec<u8>, String, u8, bool)>,
        max_bytes: usize,
        max_future_s: f64,
        max_age_s: f64,
        policy_version: String,
        resolution_s: i64,
        vocabulary: Vec<String>,
        geohash_len: usize,
        purposes: Vec<(String, i64)>,
        keys: HashMap<(String, i64), Vec<u8>>,
    ) -> Self {
        let n = devices.len();
        let devices = devices
            .into_iter()
            .enumerate()
            .map(|(index, (id, key, site, kind, revoked))| (id, Dev { index, key, site, kind, revoked }))
            .collect();
        NativeIngest {
            devices, last_seq: vec![-1; n], max_bytes, max_future_s, max_age_s, policy_version,
            resolution_s, vocabulary, geohash_len, purposes, keys,
        }
    }

    /// One lane batch: the records' values in, (outcome codes, [(source, site, clean bytes)]).
    fn batch<'py>(
        &mut self,
        py: Python<'py>,
        values: &Bound<'py, PyList>,
        now: f64,
        expected: i32,
    ) -> PyResult<(Vec<u8>, Vec<(u8, String, Bound<'py, PyBytes>)>)> {
        let mut outcomes = Vec::with_capacity(values.len());
        let mut clean = Vec::with_capacity(values.len());
        for v in values.iter() {
            let raw = v.downcast::<PyBytes>()?.as_bytes();
            let (code, made) = self.one(raw, now, expected);
            outcomes.push(code);
            if let Some((kind, site, body)) = made {
                clean.push((kind, site, PyBytes::new(py, body.as_bytes())));
            }
        }
        Ok((outcomes, clean))
    }
}

#[pymodule]
fn hito_native_proto(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeIngest>()
}
