//! Checks a recorded TLS 1.2 transcript against the disclosed server write
//! key and returns the server's application-data plaintext. Pure: no I/O.
//!
//! Steps (RFC 5246 §7.4, RFC 8422 §5.4, RFC 5288 §3):
//! 1. split both directions into records (§6.2.1);
//! 2. ClientHello → client random; ServerHello → server random, version
//!    (TLS 1.2 without `supported_versions`), cipher suite (ECDHE + AES-GCM);
//! 3. Certificate → chain to the trust roots and host name, at session time;
//! 4. ServerKeyExchange → signature over client_random || server_random ||
//!    ECDH params under the leaf key;
//! 5. after the server's ChangeCipherSpec, every record is opened with
//!    AES-GCM: nonce = salt(4, from the disclosed IV) || explicit(8, record),
//!    AAD = seq(8) || type(1) || version(2) || plaintext length(2). The first
//!    must be Finished (and must be there); application data is
//!    concatenated; close_notify ends.

use std::fmt;
use std::sync::Arc;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_256_GCM};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

const CT_CCS: u8 = 20;
const CT_ALERT: u8 = 21;
const CT_HANDSHAKE: u8 = 22;
const CT_APP_DATA: u8 = 23;
/// RFC 5246 §6.2.3: ciphertext length is at most 2^14 + 2048.
const MAX_RECORD: usize = (1 << 14) + 2048;

/// The bytes the proxy recorded, one buffer per direction.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    pub client_to_server: Vec<u8>,
    pub server_to_client: Vec<u8>,
}

impl fmt::Debug for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Transcript({} bytes up, {} bytes down)",
            self.client_to_server.len(),
            self.server_to_client.len()
        )
    }
}

impl Transcript {
    /// `SHA-256("triad/transcript/v1" || u64 len || up || u64 len || down)`.
    pub fn sha256(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"triad/transcript/v1");
        for dir in [&self.client_to_server, &self.server_to_client] {
            h.update((dir.len() as u64).to_be_bytes());
            h.update(dir);
        }
        h.finalize().into()
    }
}

/// The server→client write key and IV the prover discloses. `Debug` redacts.
#[derive(Clone)]
pub struct ServerKeyDisclosure {
    pub key: Vec<u8>,
    /// 12 bytes as exported by rustls (salt || explicit base) or just the
    /// 4-byte salt; only the salt is used.
    pub iv: Vec<u8>,
}

impl fmt::Debug for ServerKeyDisclosure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKeyDisclosure(redacted)")
    }
}

/// What a valid transcript yields. `Debug` shows the plaintext's length
/// only (it holds the provider's value and account id).
#[derive(Clone, PartialEq, Eq)]
pub struct CheckedResponse {
    /// SHA-256 over the DER certificates, each u32-length-prefixed.
    pub cert_chain_sha256: [u8; 32],
    pub cipher_suite: u16,
    /// Concatenated server application data (the HTTP response).
    pub plaintext: Vec<u8>,
}

impl fmt::Debug for CheckedResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckedResponse")
            .field("cert_chain_sha256", &hex::encode(self.cert_chain_sha256))
            .field("cipher_suite", &self.cipher_suite)
            .field(
                "plaintext",
                &format_args!("<{} bytes redacted>", self.plaintext.len()),
            )
            .finish()
    }
}

/// Why a transcript is rejected, split by whose fault it is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TranscriptError {
    // --- the transcript does not parse (prover, path or server fault) ---
    #[error("malformed TLS record stream: {0}")]
    MalformedRecord(&'static str),
    #[error("malformed TLS handshake message: {0}")]
    MalformedHandshake(&'static str),
    #[error("missing TLS handshake message: {0}")]
    MissingMessage(&'static str),
    #[error("unexpected TLS record: {0}")]
    UnexpectedRecord(&'static str),
    #[error("server sent a fatal alert ({0})")]
    ServerAlert(u8),
    // --- outside what v1 attests ---
    #[error("the session is not TLS 1.2")]
    UnsupportedTlsVersion,
    #[error("unsupported cipher suite 0x{0:04x} (need ECDHE with AES-GCM)")]
    UnsupportedCipherSuite(u16),
    // --- the server's identity does not check out ---
    #[error("server name {0:?} is not a valid DNS name or IP address")]
    BadServerName(String),
    #[error("certificate is not valid for server name {0:?}")]
    HostMismatch(String),
    #[error("certificate chain does not lead to a trusted root: {0}")]
    UntrustedCertificate(String),
    #[error("ServerKeyExchange signature does not verify")]
    BadKeyExchangeSignature,
    // --- the disclosure or the recorded records are wrong ---
    #[error("disclosed key has {got} bytes, the cipher suite needs {want}")]
    WrongKeyLength { got: usize, want: usize },
    #[error("disclosed IV must have 4 or 12 bytes, got {0}")]
    WrongIvLength(usize),
    #[error("server record {seq} fails its AEAD tag under the disclosed key")]
    BadRecordTag { seq: u64 },
    #[error("extra CA certificate is not valid PEM")]
    BadCaPem,
}

use TranscriptError as E;

/// Trust roots: Mozilla's (webpki-roots) if `platform`, plus every
/// certificate in `extra_ca_pem`.
pub fn root_store(extra_ca_pem: Option<&[u8]>, platform: bool) -> Result<RootCertStore, E> {
    let mut roots = RootCertStore::empty();
    if platform {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(pem) = extra_ca_pem {
        let mut n = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            roots
                .add(cert.map_err(|_| E::BadCaPem)?)
                .map_err(|_| E::BadCaPem)?;
            n += 1;
        }
        if n == 0 {
            return Err(E::BadCaPem);
        }
    }
    Ok(roots)
}

struct Record<'a> {
    typ: u8,
    version: [u8; 2],
    body: &'a [u8],
}

fn records(mut b: &[u8]) -> Result<Vec<Record<'_>>, E> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 5 {
            return Err(E::MalformedRecord("truncated record header"));
        }
        let len = usize::from(u16::from_be_bytes([b[3], b[4]]));
        if len > MAX_RECORD {
            return Err(E::MalformedRecord("record too long"));
        }
        let body = b
            .get(5..5 + len)
            .ok_or(E::MalformedRecord("truncated record"))?;
        out.push(Record {
            typ: b[0],
            version: [b[1], b[2]],
            body,
        });
        b = &b[5 + len..];
    }
    Ok(out)
}

/// Splits a handshake byte stream into (type, body) messages.
fn handshake_messages(mut b: &[u8]) -> Result<Vec<(u8, &[u8])>, E> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 4 {
            return Err(E::MalformedHandshake("truncated header"));
        }
        let len = (usize::from(b[1]) << 16) | (usize::from(b[2]) << 8) | usize::from(b[3]);
        let body = b
            .get(4..4 + len)
            .ok_or(E::MalformedHandshake("truncated body"))?;
        out.push((b[0], body));
        b = &b[4 + len..];
    }
    Ok(out)
}

/// A bounds-checked reader over a handshake body.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], E> {
        if self.0.len() < n {
            return Err(E::MalformedHandshake(what));
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Ok(h)
    }
    fn u8(&mut self, what: &'static str) -> Result<usize, E> {
        Ok(usize::from(self.take(1, what)?[0]))
    }
    fn u16(&mut self, what: &'static str) -> Result<usize, E> {
        let b = self.take(2, what)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn u24(&mut self, what: &'static str) -> Result<usize, E> {
        let b = self.take(3, what)?;
        Ok((usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }
}

/// Cipher suites v1 attests and their key lengths.
fn suite_key_len(suite: u16) -> Option<usize> {
    match suite {
        0xc02b | 0xc02f => Some(16), // ECDHE_{ECDSA,RSA}_WITH_AES_128_GCM_SHA256
        0xc02c | 0xc030 => Some(32), // ECDHE_{ECDSA,RSA}_WITH_AES_256_GCM_SHA384
        _ => None,
    }
}

/// Checks `t` (see the module comment) for a session to `server_name` at
/// `at_unix_secs`, trusting `roots`.
pub fn check_transcript(
    t: &Transcript,
    server_name: &str,
    disclosure: &ServerKeyDisclosure,
    roots: Arc<RootCertStore>,
    at_unix_secs: u64,
) -> Result<CheckedResponse, E> {
    // 1-2. ClientHello: legacy_version(2) || random(32) || ...
    let client_records = records(&t.client_to_server)?;
    let mut client_hs = Vec::new();
    for r in &client_records {
        if r.typ != CT_HANDSHAKE {
            break;
        }
        client_hs.extend_from_slice(r.body);
        // The ClientHello is complete once the stream parses.
        if handshake_messages(&client_hs).is_ok() {
            break;
        }
    }
    let (typ, ch) = *handshake_messages(&client_hs)?
        .first()
        .ok_or(E::MissingMessage("ClientHello"))?;
    if typ != 1 {
        return Err(E::MissingMessage("ClientHello"));
    }
    let mut r = Reader(ch);
    r.take(2, "ClientHello version")?;
    let client_random = r.take(32, "ClientHello random")?;

    // Server records: plaintext handshake until ChangeCipherSpec.
    let server_records = records(&t.server_to_client)?;
    let mut server_hs = Vec::new();
    let mut idx = 0;
    loop {
        let rec = server_records
            .get(idx)
            .ok_or(E::MissingMessage("ChangeCipherSpec"))?;
        idx += 1;
        match rec.typ {
            CT_HANDSHAKE => server_hs.extend_from_slice(rec.body),
            CT_CCS => break,
            CT_ALERT => return Err(E::ServerAlert(rec.body.get(1).copied().unwrap_or(0))),
            _ => {
                return Err(E::UnexpectedRecord(
                    "non-handshake record before ChangeCipherSpec",
                ))
            }
        }
    }
    let msgs = handshake_messages(&server_hs)?;
    let find = |t: u8, name: &'static str| {
        msgs.iter()
            .find(|(ty, _)| *ty == t)
            .map(|(_, b)| *b)
            .ok_or(E::MissingMessage(name))
    };

    // ServerHello: version(2) random(32) session_id<1> suite(2) comp(1) ext<2>.
    let mut r = Reader(find(2, "ServerHello")?);
    if r.take(2, "ServerHello version")? != [3, 3] {
        return Err(E::UnsupportedTlsVersion);
    }
    let server_random = r.take(32, "ServerHello random")?;
    let sid_len = r.u8("session id length")?;
    r.take(sid_len, "session id")?;
    let suite = r.u16("cipher suite")? as u16;
    r.take(1, "compression")?;
    if !r.0.is_empty() {
        let ext_len = r.u16("extensions length")?;
        let mut ext = Reader(r.take(ext_len, "extensions")?);
        while !ext.0.is_empty() {
            let typ = ext.u16("extension type")?;
            let len = ext.u16("extension length")?;
            ext.take(len, "extension body")?;
            if typ == 0x002b {
                // supported_versions: only sent when negotiating TLS 1.3.
                return Err(E::UnsupportedTlsVersion);
            }
        }
    }
    let key_len = suite_key_len(suite).ok_or(E::UnsupportedCipherSuite(suite))?;

    // 3. Certificate: certificate_list<3> of ASN.1Cert<3>.
    let mut r = Reader(find(11, "Certificate")?);
    let list_len = r.u24("certificate list length")?;
    let mut list = Reader(r.take(list_len, "certificate list")?);
    let mut chain = Vec::new();
    while !list.0.is_empty() {
        let n = list.u24("certificate length")?;
        let der = list.take(n, "certificate")?;
        chain.push(CertificateDer::from(der.to_vec()));
    }
    let chain_sha256 = triad_attestation::cert_chain_sha256(chain.iter().map(|c| c.as_ref()));
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or(E::MissingMessage("leaf certificate"))?;
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|_| E::BadServerName(server_name.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| E::UntrustedCertificate(e.to_string()))?;
    let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at_unix_secs));
    verifier
        .verify_server_cert(leaf, intermediates, &name, &[], now)
        .map_err(|e| match e {
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => E::HostMismatch(server_name.to_string()),
            other => E::UntrustedCertificate(other.to_string()),
        })?;

    // 4. ServerKeyExchange (ECDHE): curve_type(1)=3 named_curve(2) point<1>,
    //    then signature_algorithm(2) signature<2>.
    let ske = find(12, "ServerKeyExchange")?;
    let mut r = Reader(ske);
    if r.u8("curve type")? != 3 {
        return Err(E::MalformedHandshake("ECDHE params must use a named curve"));
    }
    r.take(2, "named curve")?;
    let point_len = r.u8("point length")?;
    r.take(point_len, "point")?;
    let params = &ske[..ske.len() - r.0.len()];
    let scheme = SignatureScheme::from(r.u16("signature scheme")? as u16);
    let sig_len = r.u16("signature length")?;
    let sig = r.take(sig_len, "signature")?;
    let mut signed = Vec::with_capacity(64 + params.len());
    signed.extend_from_slice(client_random);
    signed.extend_from_slice(server_random);
    signed.extend_from_slice(params);
    let ee = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| E::UntrustedCertificate(format!("{e:?}")))?;
    let algs = provider
        .signature_verification_algorithms
        .mapping
        .iter()
        .find(|(s, _)| *s == scheme)
        .map(|(_, a)| *a)
        .ok_or(E::BadKeyExchangeSignature)?;
    if !algs
        .iter()
        .any(|alg| ee.verify_signature(*alg, &signed, sig).is_ok())
    {
        return Err(E::BadKeyExchangeSignature);
    }

    // 5. Encrypted server records.
    if disclosure.key.len() != key_len {
        return Err(E::WrongKeyLength {
            got: disclosure.key.len(),
            want: key_len,
        });
    }
    if disclosure.iv.len() != 4 && disclosure.iv.len() != 12 {
        return Err(E::WrongIvLength(disclosure.iv.len()));
    }
    let alg = if key_len == 16 {
        &AES_128_GCM
    } else {
        &AES_256_GCM
    };
    let key =
        LessSafeKey::new(
            UnboundKey::new(alg, &disclosure.key).map_err(|_| E::WrongKeyLength {
                got: disclosure.key.len(),
                want: key_len,
            })?,
        );
    let mut plaintext = Vec::new();
    let mut closed = false;
    // Whether the first encrypted record, the server's Finished, was seen:
    // a stream that ends at the ChangeCipherSpec has no record whose tag
    // authenticates anything and is rejected, not read as an empty response.
    let mut finished = false;
    for (seq, rec) in server_records[idx..].iter().enumerate() {
        let seq = seq as u64;
        if closed {
            return Err(E::UnexpectedRecord("record after close_notify"));
        }
        if rec.body.len() < 8 + 16 {
            return Err(E::MalformedRecord("encrypted record too short"));
        }
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&disclosure.iv[..4]);
        nonce[4..].copy_from_slice(&rec.body[..8]);
        let plain_len = (rec.body.len() - 24) as u16;
        let mut aad = [0u8; 13];
        aad[..8].copy_from_slice(&seq.to_be_bytes());
        aad[8] = rec.typ;
        aad[9..11].copy_from_slice(&rec.version);
        aad[11..].copy_from_slice(&plain_len.to_be_bytes());
        let mut buf = rec.body[8..].to_vec();
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .map_err(|_| E::BadRecordTag { seq })?;
        match (seq, rec.typ) {
            (0, CT_HANDSHAKE) if plain.len() == 16 && plain[..4] == [20, 0, 0, 12] => {
                finished = true;
            }
            (0, _) => return Err(E::MissingMessage("server Finished")),
            (_, CT_APP_DATA) => plaintext.extend_from_slice(plain),
            (_, CT_ALERT) if plain == [1, 0] => closed = true,
            (_, CT_ALERT) => return Err(E::ServerAlert(plain.get(1).copied().unwrap_or(0))),
            _ => return Err(E::UnexpectedRecord("encrypted record of unexpected type")),
        }
    }
    if !finished {
        return Err(E::MissingMessage("server Finished"));
    }
    Ok(CheckedResponse {
        cert_chain_sha256: chain_sha256,
        cipher_suite: suite,
        plaintext,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    use rustls::pki_types::PrivateKeyDer;
    use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};
    use std::io::{Read, Write};

    const NOW: u64 = 1_800_000_000;
    const REQUEST: &[u8] = b"GET /api/v3/account HTTP/1.1\r\nX-API-KEY: sekrit-api-key-123\r\n\r\n";
    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";

    pub(crate) struct Pki {
        pub(crate) ca_pem: String,
        chain: Vec<CertificateDer<'static>>,
        key: Vec<u8>,
    }

    pub(crate) fn pki(names: &[&str]) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let leaf = CertificateParams::new(names)
            .unwrap()
            .signed_by(&leaf_key, &ca_cert, &ca_key)
            .unwrap();
        Pki {
            ca_pem: ca_cert.pem(),
            chain: vec![leaf.der().clone(), ca_cert.der().clone()],
            key: leaf_key.serialize_der(),
        }
    }

    fn pump(from: &mut dyn rustls_io::Conn, to: &mut dyn rustls_io::Conn, rec: &mut Vec<u8>) {
        while from.wants_out() {
            let mut buf = Vec::new();
            from.write_out(&mut buf).unwrap();
            rec.extend_from_slice(&buf);
            let mut slice = &buf[..];
            while !slice.is_empty() {
                to.read_in(&mut slice).unwrap();
                to.process().unwrap();
            }
        }
    }

    mod rustls_io {
        pub trait Conn {
            fn wants_out(&self) -> bool;
            fn write_out(&mut self, w: &mut dyn std::io::Write) -> std::io::Result<usize>;
            fn read_in(&mut self, r: &mut dyn std::io::Read) -> std::io::Result<usize>;
            fn process(&mut self) -> Result<(), rustls::Error>;
        }
        macro_rules! conn {
            ($t:ty) => {
                impl Conn for $t {
                    fn wants_out(&self) -> bool {
                        self.wants_write()
                    }
                    fn write_out(&mut self, w: &mut dyn std::io::Write) -> std::io::Result<usize> {
                        self.write_tls(w)
                    }
                    fn read_in(&mut self, r: &mut dyn std::io::Read) -> std::io::Result<usize> {
                        self.read_tls(r)
                    }
                    fn process(&mut self) -> Result<(), rustls::Error> {
                        self.process_new_packets().map(|_| ())
                    }
                }
            };
        }
        conn!(rustls::ClientConnection);
        conn!(rustls::ServerConnection);
    }

    /// Runs a real rustls TLS 1.2 session in memory; returns the transcript
    /// and the client's rx (server write) key disclosure.
    fn session(p: &Pki, suite: rustls::SupportedCipherSuite) -> (Transcript, ServerKeyDisclosure) {
        session_with(p, suite, RESPONSE)
    }

    pub(crate) fn session_with(
        p: &Pki,
        suite: rustls::SupportedCipherSuite,
        response: &[u8],
    ) -> (Transcript, ServerKeyDisclosure) {
        let mut provider = rustls::crypto::ring::default_provider();
        provider.cipher_suites = vec![suite];
        let provider = Arc::new(provider);
        let server_cfg = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(p.chain.clone(), PrivateKeyDer::Pkcs8(p.key.clone().into()))
            .unwrap();
        let roots = root_store(Some(p.ca_pem.as_bytes()), false).unwrap();
        let mut client_cfg = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client_cfg.enable_secret_extraction = true;
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let mut c = ClientConnection::new(Arc::new(client_cfg), name).unwrap();
        let mut s = ServerConnection::new(Arc::new(server_cfg)).unwrap();
        let mut t = Transcript::default();
        while c.is_handshaking() || s.is_handshaking() {
            pump(&mut c, &mut s, &mut t.client_to_server);
            pump(&mut s, &mut c, &mut t.server_to_client);
        }
        c.writer().write_all(REQUEST).unwrap();
        pump(&mut c, &mut s, &mut t.client_to_server);
        let mut req = vec![0u8; REQUEST.len()];
        s.reader().read_exact(&mut req).unwrap();
        s.writer().write_all(response).unwrap();
        s.send_close_notify();
        pump(&mut s, &mut c, &mut t.server_to_client);
        let mut resp = Vec::new();
        let _ = c.reader().read_to_end(&mut resp);
        assert_eq!(resp, response);
        let secrets = c.dangerous_extract_secrets().unwrap();
        let (key, iv) = match secrets.rx.1 {
            rustls::ConnectionTrafficSecrets::Aes128Gcm { key, iv }
            | rustls::ConnectionTrafficSecrets::Aes256Gcm { key, iv } => {
                (key.as_ref().to_vec(), iv.as_ref().to_vec())
            }
            _ => panic!("unexpected suite"),
        };
        (t, ServerKeyDisclosure { key, iv })
    }

    pub(crate) fn aes128() -> rustls::SupportedCipherSuite {
        rustls::crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
    }

    fn check(
        p: &Pki,
        t: &Transcript,
        name: &str,
        d: &ServerKeyDisclosure,
    ) -> Result<CheckedResponse, E> {
        let roots = Arc::new(root_store(Some(p.ca_pem.as_bytes()), true).unwrap());
        check_transcript(t, name, d, roots, NOW)
    }

    #[test]
    fn valid_sessions_decrypt_aes128_and_aes256() {
        let p = pki(&["127.0.0.1", "localhost"]);
        for suite in [
            aes128(),
            rustls::crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ] {
            let (t, d) = session(&p, suite);
            let r = check(&p, &t, "127.0.0.1", &d).unwrap();
            assert_eq!(r.plaintext, RESPONSE);
            assert_eq!(r.cipher_suite, u16::from(suite.suite()));
            // The request (and its API key) is never in the clear on the wire.
            let key = b"sekrit-api-key-123";
            assert!(!t.client_to_server.windows(key.len()).any(|w| w == key));
        }
    }

    #[test]
    fn any_flipped_server_byte_after_handshake_fails_its_tag() {
        let p = pki(&["127.0.0.1"]);
        let (t, d) = session(&p, aes128());
        // Every byte after the server's ChangeCipherSpec: flipping one in a
        // record body (explicit nonce, ciphertext, tag) fails that record's
        // tag; in a record header it either fails the tag (type and version
        // are in the AAD) or breaks the record framing.
        let s = &t.server_to_client;
        let ccs = (0..s.len() - 6)
            .find(|&i| s[i..i + 6] == [CT_CCS, 3, 3, 0, 1, 1])
            .unwrap();
        let mut headers = Vec::new();
        let mut off = ccs + 6;
        while off < s.len() {
            headers.push(off);
            off += 5 + usize::from(u16::from_be_bytes([s[off + 3], s[off + 4]]));
        }
        for i in ccs + 6..s.len() {
            let mut bad = t.clone();
            bad.server_to_client[i] ^= 1;
            let r = check(&p, &bad, "127.0.0.1", &d);
            let in_length = headers.iter().any(|&h| i == h + 3 || i == h + 4);
            if in_length {
                assert!(r.is_err(), "byte {i}");
            } else {
                assert!(matches!(r, Err(E::BadRecordTag { .. })), "byte {i}: {r:?}");
            }
        }
    }

    #[test]
    fn wrong_key_and_wrong_lengths() {
        let p = pki(&["127.0.0.1"]);
        let (t, d) = session(&p, aes128());
        let mut wrong = d.clone();
        wrong.key[0] ^= 0x80;
        assert_eq!(
            check(&p, &t, "127.0.0.1", &wrong),
            Err(E::BadRecordTag { seq: 0 })
        );
        let mut short = d.clone();
        short.key.truncate(8);
        assert_eq!(
            check(&p, &t, "127.0.0.1", &short),
            Err(E::WrongKeyLength { got: 8, want: 16 })
        );
        let mut iv = d;
        iv.iv.truncate(5);
        assert_eq!(check(&p, &t, "127.0.0.1", &iv), Err(E::WrongIvLength(5)));
    }

    #[test]
    fn foreign_ca_and_host_mismatch() {
        let p = pki(&["127.0.0.1"]);
        let (t, d) = session(&p, aes128());
        let other = pki(&["127.0.0.1"]);
        let roots = Arc::new(root_store(Some(other.ca_pem.as_bytes()), true).unwrap());
        assert!(matches!(
            check_transcript(&t, "127.0.0.1", &d, roots, NOW),
            Err(E::UntrustedCertificate(_))
        ));
        assert_eq!(
            check(&p, &t, "example.com", &d),
            Err(E::HostMismatch("example.com".into()))
        );
    }

    #[test]
    fn tampered_key_exchange_signature_is_rejected() {
        let p = pki(&["127.0.0.1"]);
        let (t, d) = session(&p, aes128());
        // Find the ServerKeyExchange message (type 12) and flip its last byte
        // (inside the signature).
        let s = &t.server_to_client;
        let mut off = 0;
        let mut target = None;
        while off + 5 <= s.len() && s[off] == CT_HANDSHAKE {
            let len = usize::from(u16::from_be_bytes([s[off + 3], s[off + 4]]));
            let body = &s[off + 5..off + 5 + len];
            let mut m = 0;
            while m + 4 <= body.len() {
                let ml = (usize::from(body[m + 1]) << 16)
                    | (usize::from(body[m + 2]) << 8)
                    | usize::from(body[m + 3]);
                if body[m] == 12 {
                    target = Some(off + 5 + m + 4 + ml - 1);
                }
                m += 4 + ml;
            }
            off += 5 + len;
        }
        let mut bad = t.clone();
        bad.server_to_client[target.unwrap()] ^= 1;
        assert_eq!(
            check(&p, &bad, "127.0.0.1", &d),
            Err(E::BadKeyExchangeSignature)
        );
    }

    #[test]
    fn session_cut_before_the_server_finished_is_rejected() {
        // Found by the fuzz target `tls_transcript`: a transcript that ends
        // right after the server's ChangeCipherSpec has no record whose tag
        // could be checked, so accepting it would attest an unauthenticated
        // (empty) stream.
        let p = pki(&["127.0.0.1"]);
        let (t, d) = session(&p, aes128());
        let s = &t.server_to_client;
        let ccs = (0..s.len() - 6)
            .find(|&i| s[i..i + 6] == [CT_CCS, 3, 3, 0, 1, 1])
            .unwrap();
        let mut cut = t.clone();
        cut.server_to_client.truncate(ccs + 6);
        assert_eq!(
            check(&p, &cut, "127.0.0.1", &d),
            Err(E::MissingMessage("server Finished"))
        );
    }

    #[test]
    fn garbage_never_panics() {
        let p = pki(&["127.0.0.1"]);
        let (t, d) = session(&p, aes128());
        let mut truncated = t.clone();
        truncated
            .server_to_client
            .truncate(t.server_to_client.len() / 2);
        assert!(check(&p, &truncated, "127.0.0.1", &d).is_err());
        for len in [0, 1, 5, 7, 100] {
            let g = Transcript {
                client_to_server: vec![22; len],
                server_to_client: vec![22; len],
            };
            assert!(check(&p, &g, "127.0.0.1", &d).is_err());
        }
        assert_ne!(t.sha256(), truncated.sha256());
    }
}
