//! Targets for what a directory node and a reader accept from the network:
//! a stored envelope (`check_stored`, and `open` under the fuzz study's
//! id) and the prefix protocol's request and answer.

use triad_directory::derive::DirectoryId;
use triad_directory::envelope::{check_stored, open, ENVELOPE_SIZE};
use triad_directory::node::{PrefixAnswer, PrefixRequest};
use triad_directory::record::Kind;

/// The id the seeds are sealed for (coordinator seed `[1; 32]`, salt
/// `[7; 16]`).
pub fn fuzz_directory_id() -> DirectoryId {
    let key = triad_directory::SigningKey::from_seed([1; 32]).public_key();
    DirectoryId::derive(&key.0, &[7; 16])
}

/// An envelope as a node receives it, stored under the key it names and
/// judged at the time it carries. Invariants: an accepted envelope has
/// exactly [`ENVELOPE_SIZE`] bytes and names that key and time; changing
/// any byte of it is refused (the publisher's signature covers all of
/// them, so a node stores exactly what was signed); opening it under the
/// fuzz id never panics, and a record it yields verifies for that id.
pub fn directory_envelope(data: &[u8]) {
    let key: [u8; 32] = match data.get(3..35) {
        Some(k) => k.try_into().expect("32 bytes"),
        None => [0; 32],
    };
    let now = data
        .get(ENVELOPE_SIZE - 72..ENVELOPE_SIZE - 64)
        .map_or(0, |t| u64::from_be_bytes(t.try_into().expect("8 bytes")));
    let Ok(h) = check_stored(data, &key, now) else {
        return;
    };
    assert_eq!(data.len(), ENVELOPE_SIZE);
    assert_eq!((h.dht_key, h.timestamp), (key, now));
    for at in [
        0,
        3,
        40,
        ENVELOPE_SIZE / 2,
        ENVELOPE_SIZE - 80,
        ENVELOPE_SIZE - 1,
    ] {
        let mut t = data.to_vec();
        t[at] ^= 1;
        assert!(
            check_stored(&t, &key, now).is_err(),
            "byte {at} is not covered"
        );
    }
    let id = fuzz_directory_id();
    if let Ok(r) = open(data, &id, Kind::Study, now, None) {
        assert!(r.verify(&id, Kind::Study, now, None).is_ok());
    }
}

/// The prefix protocol: the first byte picks a request (even) or an
/// answer (odd). Invariants: whatever parses re-encodes to exactly the
/// bytes given (one encoding each).
pub fn prefix_messages(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    if sel % 2 == 0 {
        if let Some(r) = PrefixRequest::parse(body) {
            assert_eq!(r.to_bytes(), body);
            assert!((1..=32).contains(&r.bits));
        }
    } else if let Some(a) = PrefixAnswer::parse(body) {
        assert_eq!(a.to_bytes(), body);
    }
}

/// The relay of the `onion_packet` target (a fixed identity).
pub fn fuzz_onion_relay() -> triad_directory::onion::Keypair {
    triad_directory::onion::keypair_from_seed([9; 32])
}

/// An onion packet as a relay receives it (`triad_directory::onion`):
/// any bytes are peeled or refused without a panic; what a relay forwards
/// has the size it came in with, and an exit's request re-encodes to one
/// encoding.
pub fn onion_packet(data: &[u8]) {
    use triad_directory::onion::{process, sphinx_secret, Step};
    let relay = fuzz_onion_relay();
    let me = relay.public().to_peer_id();
    let secret = sphinx_secret(&relay).expect("an ed25519 relay");
    match process(data, &secret, &me) {
        Ok(Step::Forward { packet, .. }) => assert_eq!(packet.len(), data.len()),
        Ok(Step::Exit { request, .. }) => {
            assert_eq!(PrefixRequest::parse(&request.to_bytes()), Some(request));
        }
        Ok(Step::Reply { .. }) | Err(_) => {}
    }
}
