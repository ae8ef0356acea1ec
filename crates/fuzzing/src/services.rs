//! Targets for the services' JSON bodies: share uploads, prepare requests
//! and every other message of `triad_wire`.

use serde::de::DeserializeOwned;
use serde::Serialize;
use triad_crypto::fr_to_hex;
use triad_party::intake::{parse_upload, token_sha256};
use triad_party::service::{validate_prepare, MAX_BATCH};
use triad_wire::https::parse_json;
use triad_wire::messages::{
    valid_study_id, BatchDecision, BatchItem, CreateStudy, PrepareBatch, PrepareResult,
    ReadyRequest, ReleaseRequest, ShareUpload, StudyInfo, StudyParams, SubmissionState,
    SubmitRequest, SubmitResponse,
};
use triad_wire::poll;
use triad_wire::receipt::{component_commitment, ShareReceipt, SignedReceipt};
use triad_wire::{Release, SignedRelease, VerifiedRelease};

/// `POST {party}/v1/shares` body through the party's own decoding, as each
/// of the three parties. Invariants: JSON round trip; an accepted upload
/// has exactly one encoding (its decoded components re-encoded are its
/// strings), is keyed by its token's hash, opens the commitments to that
/// party's two components, and gets a receipt naming exactly the uploaded
/// commitments under the digest the party keeps.
pub fn share_upload(data: &[u8]) {
    let Ok(u) = parse_json::<ShareUpload>(data) else {
        return;
    };
    let back: ShareUpload = serde_json::from_slice(&serde_json::to_vec(&u).unwrap())
        .expect("an upload's own JSON parses");
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&u).unwrap()
    );
    for party in 0..3 {
        let Ok(((id, token_hash), c, receipt)) = parse_upload(&u, party) else {
            continue;
        };
        assert_eq!(id, u.submission_id);
        assert_eq!(token_hash, token_sha256(&u.token));
        assert_eq!(c.value_bits.map(|x| format!("{x:016x}")), u.value_bits);
        assert_eq!(c.blinder.map(|b| fr_to_hex(&b)), u.blinder);
        for k in 0..2 {
            let j = (party + k) % 3;
            let got =
                component_commitment(&id, j as u8, &u.value_bits[k], &u.blinder[k], &u.salts[k]);
            assert_eq!(got, u.commitments[j]);
        }
        assert_eq!(receipt.submission_id, u.submission_id);
        assert_eq!(receipt.token_sha256, hex::encode(token_hash));
        assert_eq!(receipt.commitments, u.commitments);
        assert_eq!(hex::encode(c.digest), receipt.digest());
    }
}

/// `POST {party}/internal/batches/prepare` body through the party's own
/// checks. Invariants: JSON round trip; an accepted batch has a valid study
/// id, 1..=MAX_BATCH distinct items, one commitment per item, and per item
/// no receipts or the three parties' in order.
pub fn prepare_batch(data: &[u8]) {
    let Ok(req) = parse_json::<PrepareBatch>(data) else {
        return;
    };
    let back: PrepareBatch = serde_json::from_slice(&serde_json::to_vec(&req).unwrap())
        .expect("a batch's own JSON parses");
    assert_eq!(back, req);
    let Ok(commitments) = validate_prepare(&req) else {
        return;
    };
    assert!(valid_study_id(&req.study.id));
    assert!(!req.items.is_empty() && req.items.len() <= MAX_BATCH);
    assert_eq!(commitments.len(), req.items.len());
    let ids: std::collections::HashSet<&String> =
        req.items.iter().map(|i| &i.submission_id).collect();
    assert_eq!(ids.len(), req.items.len());
    // Receipts: none, or parties 0, 1, 2 in order.
    for it in &req.items {
        assert!(
            it.receipts.is_empty()
                || (it.receipts.len() == 3
                    && it
                        .receipts
                        .iter()
                        .enumerate()
                        .all(|(i, r)| r.party as usize == i))
        );
    }
}

/// Parses `data` as `T`; if it parses, serializing and parsing again gives
/// the same JSON value (and the same `T` where `T: PartialEq`, via `eq`).
/// Returns whether `data` parsed.
fn round_trip<T: Serialize + DeserializeOwned>(data: &[u8], eq: fn(&T, &T) -> bool) -> bool {
    let Ok(x) = serde_json::from_slice::<T>(data) else {
        return false;
    };
    let json = serde_json::to_string(&x).unwrap();
    let y: T = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("a message's own JSON does not parse: {e}: {json}"));
    assert!(eq(&x, &y), "JSON round trip changed the value: {json}");
    assert_eq!(serde_json::to_string(&y).unwrap(), json);
    true
}

fn same<T: PartialEq>(a: &T, b: &T) -> bool {
    a == b
}

fn same_json<T: Serialize>(a: &T, b: &T) -> bool {
    serde_json::to_value(a).unwrap() == serde_json::to_value(b).unwrap()
}

/// The messages [`wire_messages`] selects from with its first byte.
pub const WIRE_TYPES: &[&str] = &[
    "StudyParams",
    "CreateStudy",
    "StudyInfo",
    "SubmitRequest",
    "SubmitResponse",
    "ReadyRequest",
    "SubmissionState",
    "ShareUpload",
    "BatchItem",
    "PrepareBatch",
    "PrepareResult",
    "BatchDecision",
    "ReleaseRequest",
    "Release",
    "SignedRelease",
    "VerifiedRelease",
    "PollSpec",
    "PollInfo",
    "SignupRequest",
    "Signup",
    "MessageRequest",
    "MessageTicket",
    "MessageShares",
    "MessageReady",
    "LogEntry",
    "ConfirmMessage",
    "TallyRequest",
    "TallyProgress",
    "PollTally",
    "SignedTally",
    "VerifiedTally",
    "ShareReceipt",
    "SignedReceipt",
];

/// First byte: which message ([`WIRE_TYPES`], modulo their number); the
/// rest: its JSON. Invariant: JSON round trip.
pub fn wire_messages(data: &[u8]) {
    wire_message_parses(data);
}

/// [`wire_messages`], returning whether the message parsed.
pub fn wire_message_parses(data: &[u8]) -> bool {
    let Some((&sel, json)) = data.split_first() else {
        return false;
    };
    match usize::from(sel) % WIRE_TYPES.len() {
        0 => round_trip::<StudyParams>(json, same),
        1 => round_trip::<CreateStudy>(json, same_json),
        2 => round_trip::<StudyInfo>(json, same),
        3 => round_trip::<SubmitRequest>(json, same_json),
        4 => round_trip::<SubmitResponse>(json, same_json),
        5 => round_trip::<ReadyRequest>(json, same_json),
        6 => round_trip::<SubmissionState>(json, same),
        7 => round_trip::<ShareUpload>(json, same_json),
        8 => round_trip::<BatchItem>(json, same),
        9 => round_trip::<PrepareBatch>(json, same),
        10 => round_trip::<PrepareResult>(json, same),
        11 => round_trip::<BatchDecision>(json, same),
        12 => round_trip::<ReleaseRequest>(json, same),
        13 => round_trip::<Release>(json, same),
        14 => round_trip::<SignedRelease>(json, same),
        15 => round_trip::<VerifiedRelease>(json, same),
        16 => round_trip::<poll::PollSpec>(json, same),
        17 => round_trip::<poll::PollInfo>(json, same),
        18 => round_trip::<poll::SignupRequest>(json, same_json),
        19 => round_trip::<poll::Signup>(json, same_json),
        20 => round_trip::<poll::MessageRequest>(json, same_json),
        21 => round_trip::<poll::MessageTicket>(json, same_json),
        22 => round_trip::<poll::MessageShares>(json, same_json),
        23 => round_trip::<poll::MessageReady>(json, same_json),
        24 => round_trip::<poll::LogEntry>(json, same),
        25 => round_trip::<poll::ConfirmMessage>(json, same_json),
        26 => round_trip::<poll::TallyRequest>(json, same_json),
        27 => round_trip::<poll::TallyProgress>(json, same),
        28 => round_trip::<poll::PollTally>(json, same),
        29 => round_trip::<poll::SignedTally>(json, same),
        30 => round_trip::<poll::VerifiedTally>(json, same),
        31 => round_trip::<ShareReceipt>(json, same),
        _ => round_trip::<SignedReceipt>(json, same),
    }
}

/// `triad ui`'s `POST /api/contributions` body through the page server's
/// own parser. Invariants: an accepted body names a valid study id and a
/// non-empty key of at most 4096 bytes, trimmed, without control
/// characters.
pub fn ui_start(data: &[u8]) {
    let Ok((study, key)) = triad_client::ui::parse_start(data) else {
        return;
    };
    assert!(valid_study_id(&study));
    assert!(!key.is_empty() && key.len() <= 4096);
    assert_eq!(key.trim(), key);
    assert!(!key.chars().any(char::is_control));
}
