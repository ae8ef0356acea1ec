//! The party's endorsement of a directory record (docs/directory.md,
//! "Services"): `POST /internal/directory/endorse` (coordinator only).
//!
//! A record names the three parties (URL, MPC address, release key). The
//! coordinator signs it, but only the parties can vouch for their own
//! entries: a party endorses a record only if its own entry is exactly
//! itself, the other two are the peers it computes with, the coordinator
//! and the notary are the ones its network description names, the
//! coordinator's signature verifies under the key it trusts, the validity
//! is current and short, and the terms are those of a study or poll this
//! party pinned. [`check_endorsement`] decides, free of HTTP and storage.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use triad_directory::publish::{coordinator_signed, endorsement};
use triad_directory::record::{Kind, ServiceRecord, MAX_VALIDITY_SECS};
use triad_wire::directory::{title, Endorsement, RecordSpec};
use triad_wire::https::parse_json;
use triad_wire::messages::StudyParams;
use triad_wire::poll::PollSpec;
use triad_wire::{ApiError, NetworkConfig};

use crate::refusal::Refusal;
use crate::service::{blocking, body, FromCoordinator, PartyState, St};

/// How far in the future a record's issue time may be (clock skew).
const MAX_SKEW_SECS: u64 = 300;

/// Why a party refuses to endorse a record.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndorseRefusal {
    /// The coordinator is not one this party trusts with its name.
    #[error("this party trusts no coordinator key (its network description names none)")]
    NoTrustedCoordinator,
    #[error("the record is signed for coordinator key {0}, not the one this party trusts")]
    UntrustedCoordinator(String),
    #[error("the coordinator's signature does not verify")]
    CoordinatorSignature,
    // The record does not describe this network as this party knows it.
    #[error("the record places the coordinator at {0}, not where this party knows it")]
    CoordinatorUrl(String),
    #[error("party {index}'s {field} in the record is not this network's")]
    PartyEntry { index: usize, field: &'static str },
    #[error("the record names another notary ({0})")]
    Notary(String),
    #[error("the record's validity is not current or longer than {MAX_VALIDITY_SECS} s")]
    Validity,
    #[error("the record's spec: {0}")]
    Spec(String),
    #[error("{0} is not pinned at this party")]
    NotPinned(String),
    #[error("the record's terms of {0} differ from what this party pinned")]
    TermsChanged(String),
}

impl EndorseRefusal {
    /// Whether the refusal is about who signed (the coordinator is not
    /// trusted here), rather than about what the record says.
    pub fn is_untrusted(&self) -> bool {
        matches!(
            self,
            Self::NoTrustedCoordinator | Self::UntrustedCoordinator(_) | Self::CoordinatorSignature
        )
    }
}

/// What a party knows when it judges a record.
pub struct EndorseContext<'a> {
    /// This party's index.
    pub me: usize,
    /// This party's release key (64 hex).
    pub my_key: &'a str,
    pub network: &'a NetworkConfig,
    /// SHA-256 of the network's CA certificate (64 hex).
    pub ca_sha256: &'a str,
    pub now: u64,
}

/// What this party pinned under a record's name.
pub enum Pinned {
    Study(Option<StudyParams>),
    Poll(Option<PollSpec>),
}

fn same_key(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn same_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// THE endorsement rule (see the module docs). `pinned` is what this party
/// holds under the record's kind and name.
pub fn check_endorsement(
    record: &ServiceRecord,
    ctx: &EndorseContext<'_>,
    pinned: Pinned,
) -> Result<(), EndorseRefusal> {
    use EndorseRefusal as E;
    let b = &record.body;
    let net = ctx.network;
    // 1. Who signed: the coordinator this party trusts, and only it.
    let trusted = net
        .coordinator_key
        .as_deref()
        .ok_or(E::NoTrustedCoordinator)?;
    if !same_key(&b.coordinator.key, trusted) {
        return Err(E::UntrustedCoordinator(b.coordinator.key.clone()));
    }
    if !coordinator_signed(record) {
        return Err(E::CoordinatorSignature);
    }
    // 2. Where: the coordinator, the three parties and the notary as this
    // party's network description names them. Its own entry is the point
    // of the endorsement; the other two are the peers it computes with.
    if !same_url(&b.coordinator.url, &net.coordinator) {
        return Err(E::CoordinatorUrl(b.coordinator.url.clone()));
    }
    for (index, (got, want)) in b.parties.iter().zip(&net.parties).enumerate() {
        let want_key = if index == ctx.me {
            ctx.my_key
        } else {
            want.sign_key.as_str()
        };
        if !same_key(&got.key, want_key) {
            return Err(E::PartyEntry {
                index,
                field: "key",
            });
        }
        if !same_url(&got.url, &want.url) {
            return Err(E::PartyEntry {
                index,
                field: "url",
            });
        }
        if got.mpc_addr.parse::<std::net::SocketAddr>().ok() != Some(want.mpc_addr) {
            return Err(E::PartyEntry {
                index,
                field: "mpc_addr",
            });
        }
    }
    if !same_key(&b.notary_key, &net.notary_key) {
        return Err(E::Notary(b.notary_key.clone()));
    }
    // 3. When: issued now (give or take the clock skew), valid for a
    // bounded time.
    if b.issued_at > ctx.now + MAX_SKEW_SECS
        || b.expires_at <= ctx.now
        || b.expires_at <= b.issued_at
        || b.expires_at - b.issued_at > MAX_VALIDITY_SECS
    {
        return Err(E::Validity);
    }
    // 4. What: the spec names this network's notary and CA, and the terms
    // are those this party pinned.
    let spec: RecordSpec =
        serde_json::from_value(b.spec.clone()).map_err(|e| E::Spec(e.to_string()))?;
    if !same_url(&spec.notary, &net.notary) {
        return Err(E::Notary(spec.notary));
    }
    if !same_key(&spec.ca_sha256, ctx.ca_sha256) {
        return Err(E::Spec("the CA digest is not this network's".into()));
    }
    match (b.kind, pinned) {
        (Kind::Study, Pinned::Study(p)) => {
            let p = p.ok_or_else(|| E::NotPinned(format!("study {:?}", b.name)))?;
            let terms = spec
                .study
                .ok_or_else(|| E::Spec("a study record without study terms".into()))?;
            if spec.poll.is_some() {
                return Err(E::Spec("a study record with poll terms".into()));
            }
            if p.id != b.name
                || terms.data_spec != p.data_spec
                || terms.source != p.source
                || terms.min_cohort != p.min_cohort
            {
                return Err(E::TermsChanged(format!("study {:?}", b.name)));
            }
        }
        (Kind::Poll, Pinned::Poll(p)) => {
            let p = p.ok_or_else(|| E::NotPinned(format!("poll {:?}", b.name)))?;
            let stated = spec
                .poll
                .ok_or_else(|| E::Spec("a poll record without its spec".into()))?;
            if spec.study.is_some() {
                return Err(E::Spec("a poll record with study terms".into()));
            }
            let mut want = p;
            want.name = title(&want.name);
            if b.name != want.id.to_string() || stated != want {
                return Err(E::TermsChanged(format!("poll {:?}", b.name)));
            }
        }
        _ => {
            return Err(E::Spec(
                "the record's kind is not what was looked up".into(),
            ))
        }
    }
    Ok(())
}

/// `POST /internal/directory/endorse`: the body is the record as the
/// coordinator signed it; the answer is this party's endorsement.
pub(crate) async fn endorse(
    _: FromCoordinator,
    State(s): St,
    b: Result<Bytes, BytesRejection>,
) -> Result<Json<Endorsement>, ApiError> {
    let record: ServiceRecord = parse_json(&body(b)?)?;
    let signature = blocking(&s, move |s| endorse_checked(s, &record)).await?;
    Ok(Json(Endorsement {
        party: s.index,
        signature,
    }))
}

fn endorse_checked(s: &PartyState, record: &ServiceRecord) -> Result<String, Refusal> {
    let pinned = match record.body.kind {
        Kind::Study => Pinned::Study(s.store.pinned_study(&record.body.name)?),
        Kind::Poll => Pinned::Poll(match record.body.name.parse::<u64>() {
            Ok(id) => s.store.poll(id)?,
            Err(_) => None,
        }),
    };
    let ca = s.network.ca_pem().map_err(Refusal::internal)?;
    let ca_sha256 = triad_wire::directory::ca_sha256(&ca)
        .ok_or_else(|| Refusal::internal("the network's CA file holds no certificate"))?;
    let my_key = s.key.public_key().to_hex();
    let ctx = EndorseContext {
        me: s.index,
        my_key: &my_key,
        network: &s.network,
        ca_sha256: &ca_sha256,
        now: triad_wire::unix_now(),
    };
    check_endorsement(record, &ctx, pinned).map_err(|e| {
        tracing::warn!(error = %e, kind = ?record.body.kind, name = %record.body.name,
            "refused to endorse a directory record");
        Refusal::NotEndorsed(e)
    })?;
    Ok(endorsement(record, s.index, &s.key))
}

/// The routes of this module.
pub(crate) fn internal_routes() -> axum::Router<Arc<PartyState>> {
    axum::Router::new().route("/internal/directory/endorse", axum::routing::post(endorse))
}

#[cfg(test)]
mod tests {
    use super::*;
    use triad_attestation::{DataSource, DataSpec};
    use triad_directory::record::{PartyEntry, RecordBody, Service};
    use triad_directory::SigningKey;
    use triad_stats::StatsSpec;
    use triad_wire::directory::StudyTerms;
    use triad_wire::PartyEndpoint;

    const NOW: u64 = 1_800_000_000;
    const CA: &str = "cacacacacacacacacacacacacacacacacacacacacacacacacacacacacacacaca";

    struct World {
        coordinator: SigningKey,
        parties: [SigningKey; 3],
        network: NetworkConfig,
        study: StudyParams,
    }

    fn world() -> World {
        let coordinator = SigningKey::from_seed([1; 32]);
        let parties = [2u8, 3, 4].map(|s| SigningKey::from_seed([s; 32]));
        let network = NetworkConfig {
            mpc_latency_us: 0,
            ca_cert: "/nonexistent/ca.pem".into(),
            coordinator: "https://127.0.0.1:8443".into(),
            coordinator_key: Some(coordinator.public_key().to_hex()),
            parties: std::array::from_fn(|i| PartyEndpoint {
                url: format!("https://127.0.0.1:{}", 9001 + i),
                mpc_addr: format!("127.0.0.1:{}", 9101 + i).parse().unwrap(),
                mpc_cert: String::new(),
                sign_key: parties[i].public_key().to_hex(),
            }),
            notary: "https://127.0.0.1:7000".into(),
            notary_key: "ab".repeat(32),
            api: "https://127.0.0.1:7001".into(),
            datasource: None,
        };
        let study = StudyParams {
            id: "eth".into(),
            name: "ETH balances".into(),
            data_spec: DataSpec {
                field: "balances.ETH".into(),
                scale: 4,
                account_field: "uid".into(),
            },
            source: DataSource::named("127.0.0.1"),
            min_cohort: 10,
            min_new: 10,
            release_interval_secs: 60,
            stats: StatsSpec::default(),
        };
        World {
            coordinator,
            parties,
            network,
            study,
        }
    }

    fn body(w: &World) -> RecordBody {
        let n = &w.network;
        RecordBody {
            v: 1,
            kind: Kind::Study,
            name: w.study.id.clone(),
            id_salt: "11".repeat(16),
            seq: 1,
            issued_at: NOW,
            expires_at: NOW + 24 * 3600,
            coordinator: Service {
                url: n.coordinator.clone(),
                key: w.coordinator.public_key().to_hex(),
            },
            parties: std::array::from_fn(|i| PartyEntry {
                url: n.parties[i].url.clone(),
                mpc_addr: n.parties[i].mpc_addr.to_string(),
                key: n.parties[i].sign_key.clone(),
            }),
            notary_key: n.notary_key.clone(),
            spec: serde_json::to_value(RecordSpec {
                notary: n.notary.clone(),
                ca_sha256: CA.into(),
                source_url: None,
                study: Some(StudyTerms {
                    title: w.study.name.clone(),
                    data_spec: w.study.data_spec.clone(),
                    source: w.study.source.clone(),
                    min_cohort: w.study.min_cohort,
                }),
                poll: None,
            })
            .unwrap(),
        }
    }

    /// Party `me` judges `body` signed by `signer`.
    fn judge(
        w: &World,
        me: usize,
        body: RecordBody,
        signer: &SigningKey,
    ) -> Result<(), EndorseRefusal> {
        let record = ServiceRecord::sign(body, signer);
        let my_key = w.parties[me].public_key().to_hex();
        let ctx = EndorseContext {
            me,
            my_key: &my_key,
            network: &w.network,
            ca_sha256: CA,
            now: NOW,
        };
        check_endorsement(&record, &ctx, Pinned::Study(Some(w.study.clone())))
    }

    #[test]
    fn a_record_of_this_network_is_endorsed_by_every_party() {
        let w = world();
        for me in 0..3 {
            judge(&w, me, body(&w), &w.coordinator).unwrap();
        }
        // The endorsements make a record that verifies.
        let b = body(&w);
        let id = b.id().unwrap();
        let mut r = ServiceRecord::sign(b, &w.coordinator);
        for i in 0..3 {
            r.party_sigs[i] = endorsement(&r, i, &w.parties[i]);
        }
        let pins = std::array::from_fn(|i| w.parties[i].public_key().to_hex());
        r.verify(&id, Kind::Study, NOW, Some(&pins)).unwrap();
    }

    #[test]
    fn a_record_naming_another_key_or_url_for_the_party_is_refused() {
        let w = world();
        let evil = SigningKey::from_seed([66; 32]);
        // Party 1's entry with another key: party 1 refuses (its own
        // entry), and so do the others (their peer is not that key).
        let mut b = body(&w);
        b.parties[1].key = evil.public_key().to_hex();
        for me in 0..3 {
            assert_eq!(
                judge(&w, me, b.clone(), &w.coordinator),
                Err(EndorseRefusal::PartyEntry {
                    index: 1,
                    field: "key"
                })
            );
        }
        // Party 0's key swapped with party 2's.
        let mut b = body(&w);
        b.parties.swap(0, 2);
        assert_eq!(
            judge(&w, 0, b, &w.coordinator),
            Err(EndorseRefusal::PartyEntry {
                index: 0,
                field: "key"
            })
        );
        // Party 0's URL or MPC address pointing elsewhere.
        let mut b = body(&w);
        b.parties[0].url = "https://evil.example".into();
        assert_eq!(
            judge(&w, 0, b, &w.coordinator),
            Err(EndorseRefusal::PartyEntry {
                index: 0,
                field: "url"
            })
        );
        let mut b = body(&w);
        b.parties[0].mpc_addr = "10.0.0.1:9101".into();
        assert_eq!(
            judge(&w, 0, b, &w.coordinator),
            Err(EndorseRefusal::PartyEntry {
                index: 0,
                field: "mpc_addr"
            })
        );
        // The coordinator placed elsewhere, another notary.
        let mut b = body(&w);
        b.coordinator.url = "https://evil.example".into();
        assert!(matches!(
            judge(&w, 2, b, &w.coordinator),
            Err(EndorseRefusal::CoordinatorUrl(_))
        ));
        let mut b = body(&w);
        b.notary_key = "cd".repeat(32);
        assert!(matches!(
            judge(&w, 2, b, &w.coordinator),
            Err(EndorseRefusal::Notary(_))
        ));
    }

    #[test]
    fn a_record_of_another_coordinator_is_refused() {
        let w = world();
        let other = SigningKey::from_seed([77; 32]);
        // Signed by another coordinator that names itself.
        let mut b = body(&w);
        b.coordinator.key = other.public_key().to_hex();
        let e = judge(&w, 0, b, &other).unwrap_err();
        assert!(matches!(e, EndorseRefusal::UntrustedCoordinator(_)));
        assert!(e.is_untrusted());
        // Signed by another key while naming the trusted one.
        assert_eq!(
            judge(&w, 0, body(&w), &other),
            Err(EndorseRefusal::CoordinatorSignature)
        );
        // A party that trusts no coordinator key endorses nothing.
        let mut w2 = world();
        w2.network.coordinator_key = None;
        assert_eq!(
            judge(&w2, 0, body(&w2), &w2.coordinator),
            Err(EndorseRefusal::NoTrustedCoordinator)
        );
    }

    #[test]
    fn stale_long_lived_unpinned_or_changed_records_are_refused() {
        let w = world();
        let mut b = body(&w);
        b.expires_at = NOW + MAX_VALIDITY_SECS + 1;
        assert_eq!(
            judge(&w, 0, b, &w.coordinator),
            Err(EndorseRefusal::Validity)
        );
        let mut b = body(&w);
        b.issued_at = NOW + 3600;
        b.expires_at = NOW + 7200;
        assert_eq!(
            judge(&w, 0, b, &w.coordinator),
            Err(EndorseRefusal::Validity)
        );
        // Terms that differ from the pinned study.
        let mut b = body(&w);
        let mut spec: RecordSpec = serde_json::from_value(b.spec.clone()).unwrap();
        spec.study.as_mut().unwrap().data_spec.field = "balances.BTC".into();
        b.spec = serde_json::to_value(spec).unwrap();
        assert!(matches!(
            judge(&w, 0, b, &w.coordinator),
            Err(EndorseRefusal::TermsChanged(_))
        ));
        // Another CA.
        let mut b = body(&w);
        b.spec["ca_sha256"] = "00".repeat(32).into();
        assert!(matches!(
            judge(&w, 0, b, &w.coordinator),
            Err(EndorseRefusal::Spec(_))
        ));
        // A study this party never pinned.
        let record = ServiceRecord::sign(body(&w), &w.coordinator);
        let my_key = w.parties[0].public_key().to_hex();
        let ctx = EndorseContext {
            me: 0,
            my_key: &my_key,
            network: &w.network,
            ca_sha256: CA,
            now: NOW,
        };
        assert!(matches!(
            check_endorsement(&record, &ctx, Pinned::Study(None)),
            Err(EndorseRefusal::NotPinned(_))
        ));
    }
}
