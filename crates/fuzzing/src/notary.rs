//! Targets for the notary's parsers and the attestation's: what the prover,
//! the proxied server and the notary API's clients send.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use triad_attestation::spec::{MAX_SCALE, VALUE_BOUND};
use triad_attestation::{
    extract_claim, parse_fixed_point, sign_attestation, verify_attestation, Attestation,
    AttestationClaims, AttestationError, DataSpec, FixedPointError, NotarySigningKey,
};
use triad_crypto::fr_from_hex;
use triad_notary::api::parse_attest;
use triad_notary::http::response_body;
use triad_notary::proxy::parse_preamble;
use triad_notary::{check_transcript, ServerKeyDisclosure, Transcript};

use crate::input::{encode_fields, Fields};

/// Session time used when a transcript input carries none.
const DEFAULT_SESSION_TIME: u64 = 1_800_000_000;

/// One transcript check: what [`tls_transcript`] decodes from its input.
#[derive(Clone, Debug)]
pub struct TranscriptCase {
    /// The one trusted root, DER.
    pub ca_der: Vec<u8>,
    pub server_name: String,
    pub disclosure: ServerKeyDisclosure,
    pub session_time: u64,
    pub transcript: Transcript,
}

impl TranscriptCase {
    /// Fields: CA DER, server name, key, IV, session time (u64 BE), the
    /// client→server bytes; the rest of the input is the server→client bytes.
    pub fn decode(data: &[u8]) -> Self {
        let mut f = Fields::new(data);
        let ca_der = f.next_field().to_vec();
        let server_name = String::from_utf8_lossy(f.next_field()).into_owned();
        let key = f.next_field().to_vec();
        let iv = f.next_field().to_vec();
        let session_time = <[u8; 8]>::try_from(f.next_field())
            .map(u64::from_be_bytes)
            .unwrap_or(DEFAULT_SESSION_TIME);
        let client_to_server = f.next_field().to_vec();
        let server_to_client = f.rest().to_vec();
        Self {
            ca_der,
            server_name,
            disclosure: ServerKeyDisclosure { key, iv },
            session_time,
            transcript: Transcript {
                client_to_server,
                server_to_client,
            },
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = encode_fields(&[
            &self.ca_der,
            self.server_name.as_bytes(),
            &self.disclosure.key,
            &self.disclosure.iv,
            &self.session_time.to_be_bytes(),
            &self.transcript.client_to_server,
        ]);
        out.extend_from_slice(&self.transcript.server_to_client);
        out
    }

    /// Runs `check_transcript` on `t` with this case's root, name, key and time.
    pub fn check(
        &self,
        t: &Transcript,
    ) -> Result<triad_notary::CheckedResponse, triad_notary::TranscriptError> {
        let mut roots = RootCertStore::empty();
        // A root that does not parse leaves the store empty: every chain
        // is then untrusted, which the checker must report, not panic on.
        let _ = roots.add(CertificateDer::from(self.ca_der.clone()));
        check_transcript(
            t,
            &self.server_name,
            &self.disclosure,
            Arc::new(roots),
            self.session_time,
        )
    }
}

/// `check_transcript` on a recorded session. Invariant: an accepted
/// transcript authenticated its last server record, so flipping the last
/// byte the server sent must make the check fail.
pub fn tls_transcript(data: &[u8]) {
    let case = TranscriptCase::decode(data);
    let Ok(resp) = case.check(&case.transcript) else {
        return;
    };
    assert!(resp.plaintext.len() <= case.transcript.server_to_client.len());
    let mut flipped = case.transcript.clone();
    if let Some(last) = flipped.server_to_client.last_mut() {
        *last ^= 1;
    }
    assert!(
        case.check(&flipped).is_err(),
        "accepted a transcript whose last server byte is not authenticated"
    );
}

/// `response_body` on a decrypted response. Invariants: the body is never
/// longer than the response; the body re-sent with `Content-Length` or
/// chunked parses back to itself.
pub fn http_response(data: &[u8]) {
    let Ok(body) = response_body(data) else {
        return;
    };
    assert!(body.len() <= data.len());
    let mut framed =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    framed.extend_from_slice(&body);
    assert_eq!(response_body(&framed).as_deref(), Ok(&body[..]));
    let mut chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for c in body.chunks(7) {
        chunked.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        chunked.extend_from_slice(c);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    assert_eq!(response_body(&chunked).as_deref(), Ok(&body[..]));
}

/// The spec used when a `data_spec` input's first line is not one.
fn default_spec() -> DataSpec {
    DataSpec {
        field: "balances.ETH".into(),
        scale: 4,
        account_field: "uid".into(),
    }
}

/// `value / 10^scale` as a plain decimal: the form `parse_fixed_point`
/// must read back as `value`.
pub(crate) fn format_fixed_point(value: i64, scale: u32) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let abs = value.unsigned_abs();
    let p = 10u64.pow(scale);
    if scale == 0 {
        format!("{sign}{abs}")
    } else {
        format!("{sign}{}.{:0w$}", abs / p, abs % p, w = scale as usize)
    }
}

/// Invariants of `parse_fixed_point(s, scale)`.
fn check_fixed_point(s: &str, scale: u32) {
    let r = parse_fixed_point(s, scale);
    match r {
        Ok(v) => {
            assert!(i128::from(v).abs() < VALUE_BOUND, "{s:?} at {scale}: {v}");
            assert_eq!(
                parse_fixed_point(&format_fixed_point(v, scale), scale),
                Ok(v),
                "{s:?} at {scale}"
            );
            if scale < MAX_SCALE {
                match parse_fixed_point(s, scale + 1) {
                    Ok(w) => assert_eq!(i128::from(w), i128::from(v) * 10, "{s:?}"),
                    Err(e) => assert_eq!(e, FixedPointError::OutOfRange, "{s:?}"),
                }
            }
        }
        Err(FixedPointError::NotNumeric) if scale <= MAX_SCALE => {
            for k in 0..=MAX_SCALE {
                assert_eq!(
                    parse_fixed_point(s, k),
                    Err(FixedPointError::NotNumeric),
                    "{s:?}: the form does not depend on the scale"
                );
            }
        }
        Err(_) => {}
    }
}

/// First line: a `DataSpec` as JSON (a default spec if it is not one); the
/// rest: a response body. Runs `extract_claim`, and `parse_fixed_point` on
/// the body as text. Invariants: a spec round-trips through JSON; an
/// extracted value is in range, formats and parses back to itself, and does
/// not change with whitespace around the body or, for a string value, when
/// the body is re-serialized; fixed-point parsing is consistent across
/// scales.
pub fn data_spec(data: &[u8]) {
    let (first, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let spec = match serde_json::from_slice::<DataSpec>(first) {
        Ok(s) => {
            let back: DataSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap())
                .expect("a spec's own JSON parses");
            assert_eq!(back, s);
            s
        }
        Err(_) => default_spec(),
    };
    if let Ok(text) = std::str::from_utf8(rest) {
        check_fixed_point(text, spec.scale.min(MAX_SCALE + 1));
    }
    let Ok(claim) = extract_claim(&spec, rest) else {
        return;
    };
    assert!(spec.validate().is_ok());
    check_fixed_point(&format_fixed_point(claim.value, spec.scale), spec.scale);
    let padded = [b" \n", rest, b"\r\n"].concat();
    assert_eq!(
        extract_claim(&spec, &padded).as_ref(),
        Ok(&claim),
        "the claim depends on whitespace around the JSON"
    );
    // A value written as a string survives re-serialization (a number's
    // digits may not: serde_json re-prints it from an f64).
    let json: serde_json::Value = serde_json::from_slice(rest).expect("extracted from JSON");
    let at = |path: &str| {
        path.split('.').try_fold(&json, |v, seg| match v {
            serde_json::Value::Object(m) => m.get(seg),
            serde_json::Value::Array(a) => a.get(seg.parse::<usize>().ok()?),
            _ => None,
        })
    };
    if matches!(at(&spec.field), Some(serde_json::Value::String(_))) {
        let again = extract_claim(&spec, &serde_json::to_vec_pretty(&json).unwrap());
        assert_eq!(
            again.as_ref(),
            Ok(&claim),
            "the claim depends on the JSON's formatting"
        );
    }
}

/// The key the fuzz corpus's attestations are signed with (a fixed test
/// key, so mutated attestations reach signature and freshness checks).
pub fn fuzz_notary_key() -> NotarySigningKey {
    NotarySigningKey::from_seed([0x5a; 32])
}

/// Decodes [`AttestationClaims::signing_bytes`] back into the key id and the
/// claims, rejecting trailing bytes: the encoding is injective exactly when
/// this inverts it.
fn decode_signing_bytes(b: &[u8]) -> Option<(String, AttestationClaims)> {
    struct R<'a>(&'a [u8]);
    impl<'a> R<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            (self.0.len() >= n).then(|| {
                let (h, t) = self.0.split_at(n);
                self.0 = t;
                h
            })
        }
        fn u32(&mut self) -> Option<u32> {
            Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
        }
        fn u64(&mut self) -> Option<u64> {
            Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
        }
        fn str(&mut self) -> Option<String> {
            let n = self.u32()? as usize;
            String::from_utf8(self.take(n)?.to_vec()).ok()
        }
        fn b32(&mut self) -> Option<[u8; 32]> {
            self.take(32)?.try_into().ok()
        }
        fn fr(&mut self) -> Option<triad_crypto::Fr> {
            fr_from_hex(&hex::encode(self.b32()?)).ok()
        }
    }
    let mut r = R(b);
    if r.take(21)? != b"triad/attestation/v1\0" || r.u32()? != 1 {
        return None;
    }
    let key_id = r.str()?;
    let server_name = r.str()?;
    let cert_chain_sha256 = r.b32()?;
    let session_time = r.u64()?;
    let expires_at = r.u64()?;
    let study_id = r.str()?;
    let field = r.str()?;
    let scale = r.u32()?;
    let account_field = r.str()?;
    let claims = AttestationClaims {
        server_name,
        cert_chain_sha256,
        session_time,
        expires_at,
        study_id,
        data_spec: DataSpec {
            field,
            scale,
            account_field,
        },
        commitment: r.fr()?,
        nullifier: r.fr()?,
        transcript_sha256: r.b32()?,
    };
    r.0.is_empty().then_some((key_id, claims))
}

/// An attestation as JSON (what providers submit and parties vet).
/// Invariants: JSON round trip; decoded claims have injective, stable
/// signing bytes and exactly one accepted encoding (re-signing them
/// reproduces every field); `verify_attestation` accepts only what decodes,
/// under the right key, inside its validity window.
pub fn attestation(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(att) = Attestation::from_json(text) else {
        return;
    };
    let back = Attestation::from_json(&att.to_json()).expect("an attestation's own JSON parses");
    assert_eq!(back, att);
    let key = fuzz_notary_key();
    let pk = key.public_key();
    let verified = verify_attestation(&att, &[pk], att.session_time);
    let Ok(claims) = att.decode_claims() else {
        assert!(verified.is_err());
        return;
    };
    let bytes = claims.signing_bytes(&att.notary_key_id);
    assert_eq!(bytes, claims.signing_bytes(&att.notary_key_id));
    assert_eq!(
        decode_signing_bytes(&bytes),
        Some((att.notary_key_id.clone(), claims.clone())),
        "signing bytes do not decode back to the claims"
    );
    let resigned = sign_attestation(&key, &claims);
    let mut expected = att.clone();
    expected.notary_key_id = resigned.notary_key_id.clone();
    expected.signature = resigned.signature.clone();
    assert_eq!(resigned, expected, "a decoded field has a second encoding");
    assert!(verify_attestation(&resigned, &[pk], claims.session_time).is_ok());
    if let Ok(v) = verified {
        assert_eq!(v.claims, claims);
        assert_eq!(att.notary_key_id, pk.key_id());
        assert!(matches!(
            verify_attestation(&att, &[pk], claims.expires_at),
            Err(AttestationError::Expired { .. })
        ));
        assert!(matches!(
            verify_attestation(&att, &[], claims.session_time),
            Err(AttestationError::UnknownNotaryKey(_))
        ));
    }
}

/// The proxy's preamble line (without its `\n`). Invariant: an accepted
/// preamble re-formatted parses to the same session, host and port.
pub fn proxy_preamble(data: &[u8]) {
    let Some((sid, host, port)) = parse_preamble(data) else {
        return;
    };
    assert!(port != 0 && !host.is_empty() && sid.len() == 32);
    let line = format!("TRIAD-PROXY/1 {sid} {host} {port}");
    assert_eq!(parse_preamble(line.as_bytes()), Some((sid, host, port)));
}

/// A `POST /v1/attest` body, the notary API's one parser of its own (hyper
/// and axum frame the request before it). Runs `parse_attest`. Invariants:
/// an accepted body re-serialized parses to the same request; the
/// disclosure is the hex it was given, the blinder the scalar.
pub fn attest_request(data: &[u8]) {
    let Ok((req, disclosure, ar)) = parse_attest(data) else {
        return;
    };
    assert_eq!(
        hex::decode(&req.server_key).ok(),
        Some(disclosure.key.clone())
    );
    assert_eq!(
        hex::decode(&req.server_iv).ok(),
        Some(disclosure.iv.clone())
    );
    assert_eq!(fr_from_hex(&req.blinder).ok(), Some(ar.blinder));
    let json = serde_json::to_vec(&req).unwrap();
    let (req2, d2, ar2) = parse_attest(&json).expect("a request's own JSON parses");
    assert_eq!(
        serde_json::to_value(&req2).unwrap(),
        serde_json::to_value(&req).unwrap()
    );
    assert_eq!((d2.key, d2.iv), (disclosure.key, disclosure.iv));
    assert_eq!(ar2.blinder, ar.blinder);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point_formatting_round_trips() {
        for (v, k, s) in [
            (12500, 4, "1.2500"),
            (-1, 2, "-0.01"),
            (7, 0, "7"),
            ((1 << 62) - 1, 0, "4611686018427387903"),
        ] {
            assert_eq!(format_fixed_point(v, k), s);
            assert_eq!(parse_fixed_point(s, k), Ok(v));
        }
    }

    #[test]
    fn signing_bytes_decoder_rejects_trailing_bytes() {
        let claims = AttestationClaims {
            server_name: "127.0.0.1".into(),
            cert_chain_sha256: [1; 32],
            session_time: 5,
            expires_at: 6,
            study_id: "s".into(),
            data_spec: default_spec(),
            commitment: triad_crypto::Fr::from(3u64),
            nullifier: triad_crypto::Fr::from(4u64),
            transcript_sha256: [2; 32],
        };
        let mut b = claims.signing_bytes("k");
        assert_eq!(decode_signing_bytes(&b), Some(("k".into(), claims)));
        b.push(0);
        assert_eq!(decode_signing_bytes(&b), None);
    }
}
