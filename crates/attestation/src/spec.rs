//! A study's data spec and the extraction of the attested value from a JSON
//! response body. Pure functions, no I/O: the notary runs them on the
//! decrypted response, the prover on its own copy to build its opening.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use triad_crypto::{commitment, fr_from_i128, nullifier, Fr};

/// Largest accepted scale (decimal places). 10^18 < 2^62, so the scale
/// alone never overflows the bound below.
pub const MAX_SCALE: u32 = 18;

/// Values must satisfy |v| < 2^62 after scaling: every value and its
/// negation fit in i64, and a value fits the MPC engine's Z_2^64 ring with
/// two bits of headroom for sign and carries.
pub const VALUE_BOUND: i128 = 1 << 62;

/// Longest accepted JSON path, in bytes.
pub const MAX_PATH_LEN: usize = 256;

/// What a study reads from the response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// Dot-separated path of the value, e.g. `balances.ETH`; a segment of
    /// digits indexes an array (or names an object key if the value there is
    /// an object).
    pub field: String,
    /// Fixed-point scale: the value `1.25` at scale 4 is the integer 12500.
    pub scale: u32,
    /// Path of the stable account id (e.g. `uid`), input of the nullifier.
    pub account_field: String,
}

/// Why a response does not match a data spec. Always the prover's or the
/// data source's fault, never the notary's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("data spec path {0:?} is empty, too long or has an empty segment")]
    BadPath(String),
    #[error("data spec scale {0} exceeds the maximum {MAX_SCALE}")]
    BadScale(u32),
    #[error("response body is not JSON")]
    NotJson,
    #[error("response has no value at path {0:?}")]
    FieldMissing(String),
    #[error("value at {0:?} is not a decimal number")]
    NotNumeric(String),
    #[error("value at {path:?} has more than {scale} significant decimals")]
    TooManyDecimals { path: String, scale: u32 },
    #[error("value at {0:?} is out of range (|v| must be below 2^62 after scaling)")]
    OutOfRange(String),
    #[error("account id at {0:?} is not a string or an integer")]
    BadAccountId(String),
}

/// The value and account id read from a response under a data spec.
/// `Debug` redacts both.
#[derive(Clone, PartialEq, Eq)]
pub struct ExtractedClaim {
    /// The fixed-point integer (value × 10^scale).
    pub value: i64,
    /// Canonical bytes of the account id: the string itself, or the decimal
    /// digits of an integer.
    pub account_id: Vec<u8>,
}

impl std::fmt::Debug for ExtractedClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExtractedClaim(redacted)")
    }
}

impl ExtractedClaim {
    /// `Poseidon(value, blinder)`, the value embedded as a field element.
    pub fn commitment(&self, blinder: Fr) -> Fr {
        commitment(fr_from_i128(i128::from(self.value)), blinder)
    }

    /// `Poseidon(H(account id), H(study id))`.
    pub fn nullifier(&self, study_id: &str) -> Fr {
        nullifier(&self.account_id, study_id)
    }
}

impl DataSpec {
    /// Checks the spec itself (paths and scale), before any response is read.
    pub fn validate(&self) -> Result<(), SpecError> {
        for p in [&self.field, &self.account_field] {
            if p.is_empty() || p.len() > MAX_PATH_LEN || p.split('.').any(str::is_empty) {
                return Err(SpecError::BadPath(p.clone()));
            }
        }
        if self.scale > MAX_SCALE {
            return Err(SpecError::BadScale(self.scale));
        }
        Ok(())
    }
}

/// Reads the value and account id from a JSON body. The response schema
/// check of v1 is: the body is JSON, both paths exist, the value is a
/// decimal (string or number) and the account id a string or an integer.
///
/// A number is read from its text as the data source wrote it, not through
/// `f64`: `0.10000000000000001` at scale 18 is 100000000000000010, not the
/// 10^17 its nearest double would give, and an exponent (`1e3`) is refused
/// like in a string.
pub fn extract_claim(spec: &DataSpec, body: &[u8]) -> Result<ExtractedClaim, SpecError> {
    spec.validate()?;
    let json: Value = serde_json::from_slice(body).map_err(|_| SpecError::NotJson)?;
    // Valid JSON is UTF-8; the raw text keeps each number's digits.
    let raw_body: &RawValue = std::str::from_utf8(body)
        .ok()
        .and_then(|t| serde_json::from_str(t).ok())
        .ok_or(SpecError::NotJson)?;
    let raw = lookup_raw(raw_body, &spec.field)
        .ok_or_else(|| SpecError::FieldMissing(spec.field.clone()))?;
    let text = match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::String(s)) => s,
        Ok(Value::Number(_)) => raw.get().to_string(),
        _ => return Err(SpecError::NotNumeric(spec.field.clone())),
    };
    let value = parse_fixed_point(&text, spec.scale).map_err(|e| match e {
        FixedPointError::NotNumeric => SpecError::NotNumeric(spec.field.clone()),
        FixedPointError::TooManyDecimals => SpecError::TooManyDecimals {
            path: spec.field.clone(),
            scale: spec.scale,
        },
        FixedPointError::OutOfRange => SpecError::OutOfRange(spec.field.clone()),
    })?;
    let account = lookup(&json, &spec.account_field)
        .ok_or_else(|| SpecError::FieldMissing(spec.account_field.clone()))?;
    let account_id = match account {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string().into_bytes(),
        _ => return Err(SpecError::BadAccountId(spec.account_field.clone())),
    };
    Ok(ExtractedClaim { value, account_id })
}

/// [`lookup`] over the raw text: the same path rules (and the same choice
/// among duplicate keys, the last), but the value comes back as written.
fn lookup_raw<'a>(mut v: &'a RawValue, path: &str) -> Option<&'a RawValue> {
    for seg in path.split('.') {
        let text = v.get();
        v = match text.trim_start().as_bytes().first()? {
            b'{' => {
                let m: HashMap<String, &'a RawValue> = serde_json::from_str(text).ok()?;
                *m.get(seg)?
            }
            b'[' => {
                let a: Vec<&'a RawValue> = serde_json::from_str(text).ok()?;
                *a.get(seg.parse::<usize>().ok()?)?
            }
            _ => return None,
        };
    }
    Some(v)
}

fn lookup<'a>(mut v: &'a Value, path: &str) -> Option<&'a Value> {
    for seg in path.split('.') {
        v = match v {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Why a decimal string is not a fixed-point value.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum FixedPointError {
    #[error("not a plain decimal number")]
    NotNumeric,
    #[error("more significant decimals than the scale")]
    TooManyDecimals,
    #[error("out of range")]
    OutOfRange,
}

/// Parses `-?digits(.digits)?` into `value × 10^scale`. Decimals beyond the
/// scale are accepted only if they are zeros (`"1.2500"` at scale 2 is 125);
/// exponents, signs other than a leading `-`, spaces and empty parts are
/// rejected. |result| must be below 2^62.
pub fn parse_fixed_point(s: &str, scale: u32) -> Result<i64, FixedPointError> {
    if scale > MAX_SCALE {
        return Err(FixedPointError::OutOfRange);
    }
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
        return Err(FixedPointError::NotNumeric);
    }
    let frac = frac.unwrap_or("");
    let scale_us = scale as usize;
    if frac.len() > scale_us && frac.as_bytes()[scale_us..].iter().any(|&b| b != b'0') {
        return Err(FixedPointError::TooManyDecimals);
    }
    let mut acc: i128 = 0;
    let push = |acc: i128, d: u8| -> Result<i128, FixedPointError> {
        let next = acc * 10 + i128::from(d - b'0');
        if next >= VALUE_BOUND {
            Err(FixedPointError::OutOfRange)
        } else {
            Ok(next)
        }
    };
    for &d in int.as_bytes() {
        acc = push(acc, d)?;
    }
    for i in 0..scale_us {
        acc = push(acc, *frac.as_bytes().get(i).unwrap_or(&b'0'))?;
    }
    let v = if neg { -acc } else { acc };
    i64::try_from(v).map_err(|_| FixedPointError::OutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(field: &str, scale: u32) -> DataSpec {
        DataSpec {
            field: field.into(),
            scale,
            account_field: "uid".into(),
        }
    }

    #[test]
    fn fixed_point_accepts_plain_decimals() {
        assert_eq!(parse_fixed_point("1.25", 4), Ok(12500));
        assert_eq!(parse_fixed_point("1.2500", 2), Ok(125));
        assert_eq!(parse_fixed_point("-0.01", 2), Ok(-1));
        assert_eq!(parse_fixed_point("7", 0), Ok(7));
        assert_eq!(parse_fixed_point("007.5", 1), Ok(75));
    }

    #[test]
    fn fixed_point_rejects_bad_input() {
        for s in [
            "", "-", ".5", "5.", "1e3", "+1", " 1", "1,5", "0x10", "1.2.3", "--1", "NaN",
        ] {
            assert_eq!(
                parse_fixed_point(s, 2),
                Err(FixedPointError::NotNumeric),
                "{s:?}"
            );
        }
        assert_eq!(
            parse_fixed_point("1.255", 2),
            Err(FixedPointError::TooManyDecimals)
        );
        let big = (1u64 << 62).to_string();
        assert_eq!(parse_fixed_point(&big, 0), Err(FixedPointError::OutOfRange));
        let below = ((1u64 << 62) - 1).to_string();
        assert_eq!(parse_fixed_point(&below, 0), Ok((1i64 << 62) - 1));
        assert_eq!(parse_fixed_point("5", 19), Err(FixedPointError::OutOfRange));
        assert_eq!(
            parse_fixed_point(&"9".repeat(400), 2),
            Err(FixedPointError::OutOfRange)
        );
    }

    #[test]
    fn extracts_value_and_account() {
        let body = br#"{"uid": 123, "balances": {"ETH": "1.2500", "BTC": 0.5}, "list": ["3.5"]}"#;
        let c = extract_claim(&spec("balances.ETH", 4), body).unwrap();
        assert_eq!(c.value, 12500);
        assert_eq!(c.account_id, b"123");
        assert_eq!(
            extract_claim(&spec("balances.BTC", 2), body).unwrap().value,
            50
        );
        assert_eq!(extract_claim(&spec("list.0", 1), body).unwrap().value, 35);
    }

    #[test]
    fn numbers_are_read_from_their_text_not_through_f64() {
        // Found reviewing the parsers for the fuzz targets: a JSON number
        // went through f64, so digits beyond a double's precision were
        // silently rounded and exponents slipped past the decimal rule.
        let body = br#"{"uid": 1, "v": 0.10000000000000001, "w": 1e3, "x": [-2.50, 7]}"#;
        assert_eq!(
            extract_claim(&spec("v", 18), body).unwrap().value,
            100_000_000_000_000_010
        );
        assert!(matches!(
            extract_claim(&spec("w", 0), body),
            Err(SpecError::NotNumeric(_))
        ));
        assert_eq!(extract_claim(&spec("x.0", 2), body).unwrap().value, -250);
        assert_eq!(extract_claim(&spec("x.1", 0), body).unwrap().value, 7);
        // Duplicate keys: the last one counts, as for the account id.
        let dup = br#"{"uid": 1, "v": "1", "v": 2}"#;
        assert_eq!(extract_claim(&spec("v", 0), dup).unwrap().value, 2);
    }

    #[test]
    fn extraction_errors_are_specific() {
        let body = br#"{"uid": [1], "balances": {"ETH": "lots", "X": {"a": 1}}}"#;
        let s = spec("balances.ETH", 4);
        assert_eq!(extract_claim(&s, b"<html>"), Err(SpecError::NotJson));
        assert!(matches!(
            extract_claim(&s, body),
            Err(SpecError::NotNumeric(_))
        ));
        assert!(matches!(
            extract_claim(&spec("balances.X", 0), body),
            Err(SpecError::NotNumeric(_))
        ));
        assert!(matches!(
            extract_claim(&spec("balances.DOGE", 0), body),
            Err(SpecError::FieldMissing(_))
        ));
        let ok_value = br#"{"uid": [1], "v": "1"}"#;
        assert!(matches!(
            extract_claim(&spec("v", 0), ok_value),
            Err(SpecError::BadAccountId(_))
        ));
        assert!(matches!(
            extract_claim(&spec("a..b", 0), body),
            Err(SpecError::BadPath(_))
        ));
        assert_eq!(
            extract_claim(&spec("v", 19), ok_value),
            Err(SpecError::BadScale(19))
        );
    }

    #[test]
    fn commitment_and_nullifier_use_shared_crypto() {
        let c = ExtractedClaim {
            value: -5,
            account_id: b"123".to_vec(),
        };
        let b = Fr::from(9u64);
        assert_eq!(c.commitment(b), commitment(fr_from_i128(-5), b));
        assert_eq!(c.nullifier("s"), nullifier(b"123", "s"));
        assert_ne!(c.nullifier("s"), c.nullifier("t"));
    }
}
