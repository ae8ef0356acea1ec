//! Each party's own admission check of a batch, independent of the
//! coordinator's: a coordinator that invents submissions (to shrink the
//! real cohort under a release) or replays an account gets them refused by
//! every honest party.

use std::collections::HashSet;

use triad_attestation::{verify_attestation, NotaryPublicKey, MAX_CLOCK_SKEW_SECS};
use triad_mpc::PartyId;
use triad_wire::messages::{BatchItem, StudyParams};
use triad_wire::receipt::verify_receipt;

use crate::presence::CLOCK_SKEW_SECS;

/// `true` for each item this party refuses: the notary's signature or
/// validity window fails, the attestation is for another study or data
/// spec, it comes from another server than the study's data source, the
/// forwarded commitment is not the attested one, or the account
/// (nullifier) already counts (`used`) or appears earlier in the batch.
pub fn refused_items<E>(
    items: &[BatchItem],
    study: &StudyParams,
    notary_key: &NotaryPublicKey,
    now: u64,
    mut used: impl FnMut(&str) -> Result<bool, E>,
) -> Result<Vec<bool>, E> {
    let mut seen = HashSet::new();
    items
        .iter()
        .map(|it| {
            let a = &it.attestation;
            let valid = verify_attestation(a, std::slice::from_ref(notary_key), now).is_ok()
                && a.study_id == study.id
                && a.data_spec == study.data_spec
                && study
                    .source
                    .check(&a.server_name, &a.cert_chain_sha256)
                    .is_ok()
                && a.commitment == it.commitment;
            if !valid || !seen.insert(a.nullifier.as_str()) {
                return Ok(true);
            }
            used(&a.nullifier)
        })
        .collect()
}

/// What this party weighs its peers' presence claims against
/// ([`crate::presence::Evidence`]): the receipts the coordinator forwarded
/// with each item, verified lazily (only for an item a peer claims to
/// lack), and the attestations' validity windows against this party's
/// clock.
pub struct BatchEvidence<'a> {
    pub items: &'a [BatchItem],
    /// The parties' receipt-signing keys (64 hex), party 0 first.
    pub keys: [String; 3],
    /// The clock this party's vetting ([`refused_items`]) read.
    pub vetted_at: u64,
}

impl crate::presence::Evidence for BatchEvidence<'_> {
    fn kept_until(&self, item: usize, party: PartyId) -> Option<u64> {
        let it = self.items.get(item)?;
        let copy = it
            .receipts
            .get(party.index())
            .filter(|c| c.party as usize == party.index())?;
        let r = verify_receipt(copy, &self.keys[party.index()]).ok()?;
        (r.submission_id == it.submission_id
            && r.token_sha256 == it.token_sha256
            && r.digest() == it.shares_digest)
            .then_some(r.kept_until)
    }

    fn vetting_unsure(&self, item: usize) -> bool {
        let Some(it) = self.items.get(item) else {
            return true;
        };
        // `verify_attestation` accepts from `session_time -
        // MAX_CLOCK_SKEW_SECS` until, excluding, `expires_at`.
        let near = |t: u64| t.abs_diff(self.vetted_at) <= CLOCK_SKEW_SECS;
        let a = &it.attestation;
        near(a.session_time.saturating_sub(MAX_CLOCK_SKEW_SECS)) || near(a.expires_at)
    }

    /// Read when the claims are judged, after every peer made its claim.
    fn now(&self) -> u64 {
        triad_wire::unix_now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use triad_attestation::{sign_attestation, AttestationClaims, DataSpec, NotarySigningKey};
    use triad_crypto::Fr;
    use triad_stats::StatsSpec;

    fn spec() -> DataSpec {
        DataSpec {
            field: "balances.ETH".into(),
            scale: 4,
            account_field: "uid".into(),
        }
    }

    fn study() -> StudyParams {
        StudyParams {
            id: "s".into(),
            name: "s".into(),
            data_spec: spec(),
            source: triad_attestation::DataSource::named("127.0.0.1"),
            min_cohort: 10,
            min_new: 10,
            release_interval_secs: 1,
            stats: StatsSpec::default(),
        }
    }

    fn item(
        key: &NotarySigningKey,
        study: &str,
        account: u64,
        f: impl Fn(&mut AttestationClaims),
    ) -> BatchItem {
        let mut c = AttestationClaims {
            server_name: "127.0.0.1".into(),
            cert_chain_sha256: [1; 32],
            session_time: 1000,
            expires_at: 2000,
            study_id: study.into(),
            data_spec: spec(),
            commitment: Fr::from(7 + account),
            nullifier: Fr::from(100 + account),
            transcript_sha256: [2; 32],
        };
        f(&mut c);
        let a = sign_attestation(key, &c);
        BatchItem {
            submission_id: format!("{account:032x}"),
            token_sha256: "00".repeat(32),
            commitment: a.commitment.clone(),
            shares_digest: "00".repeat(32),
            attestation: a,
            receipts: Vec::new(),
        }
    }

    /// Vetting is unsure only where a clock difference of up to
    /// `CLOCK_SKEW_SECS` could flip `verify_attestation`'s verdict: near
    /// the start of its window (`session_time - MAX_CLOCK_SKEW_SECS`) or
    /// its end (`expires_at`), not for a fresh attestation whose session
    /// was seconds ago.
    #[test]
    fn vetting_is_unsure_only_at_the_edges_of_the_validity_window() {
        use crate::presence::Evidence;
        let notary = NotarySigningKey::from_seed([3; 32]);
        let now = 1_000_000u64;
        let at = |session_time: u64, expires_at: u64| {
            item(&notary, "s", 1, |c| {
                c.session_time = session_time;
                c.expires_at = expires_at;
            })
        };
        let cases = [
            (at(now - 1, now + 600), false),
            (at(now - 5, now + 600), false),
            (at(now + 29, now + 600), false),
            (at(now + 31, now + 600), true),
            (at(now + 60, now + 600), true),
            (at(now + 90, now + 600), true),
            (at(now + 91, now + 600), false),
            (at(now - 500, now + 30), true),
            (at(now - 500, now - 30), true),
            (at(now - 500, now + 31), false),
            (at(now - 500, now - 31), false),
        ];
        for (k, (it, unsure)) in cases.iter().enumerate() {
            let e = BatchEvidence {
                items: std::slice::from_ref(it),
                keys: Default::default(),
                vetted_at: now,
            };
            assert_eq!(e.vetting_unsure(0), *unsure, "case {k}");
            // Where vetting is sure, the verdicts at both ends of the
            // skew agree.
            if !unsure {
                let ok = |t| verify_attestation(&it.attestation, &[notary.public_key()], t).is_ok();
                assert_eq!(
                    ok(now - CLOCK_SKEW_SECS),
                    ok(now + CLOCK_SKEW_SECS),
                    "case {k}"
                );
            }
        }
    }

    #[test]
    fn only_valid_fresh_accounts_of_this_study_pass() {
        let notary = NotarySigningKey::from_seed([3; 32]);
        let other = NotarySigningKey::from_seed([4; 32]);
        let ok = |a| item(&notary, "s", a, |_| {});
        let mut forwarded_wrong = ok(6);
        forwarded_wrong.commitment = ok(7).commitment;
        let mut tampered = ok(8);
        tampered.attestation.commitment = ok(9).attestation.commitment;
        tampered.commitment = tampered.attestation.commitment.clone();
        let items = vec![
            ok(1),                                                          // passes
            item(&other, "s", 2, |_| {}),                                   // unknown notary
            item(&notary, "t", 3, |_| {}),                                  // other study
            item(&notary, "s", 4, |c| c.data_spec.scale = 2),               // other data spec
            item(&notary, "s", 5, |c| c.expires_at = 1500),                 // expired at 1600
            item(&notary, "s", 12, |c| c.server_name = "localhost".into()), // other source
            forwarded_wrong,                                                // commitment swapped
            tampered,                                                       // signature broken
            ok(1),                                                          // same account again
            ok(10),                                                         // already counted
            ok(11),                                                         // passes
        ];
        let used10 = Fr::from(110u64);
        let used10 = triad_crypto::fr_to_hex(&used10);
        let got = refused_items(&items, &study(), &notary.public_key(), 1600, |n| {
            Ok::<_, ()>(n == used10)
        })
        .unwrap();
        assert_eq!(
            got,
            vec![false, true, true, true, true, true, true, true, true, true, false]
        );
    }
}
