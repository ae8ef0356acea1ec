//! What the services need around a node (docs/directory.md, "Services"):
//! node identities from a key file's seed, the `<multiaddr>/p2p/<peer id>`
//! form in which devnets and operators hand node addresses around, a
//! client node bootstrapped to such a list, and the per-record publisher
//! key a coordinator seals envelopes with.
//!
//! The libp2p types the services name are re-exported here, so they need
//! no libp2p dependency of their own.

use std::net::SocketAddr;
use std::sync::Arc;

pub use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
pub use libp2p::{Multiaddr, PeerId};
use sha2::{Digest, Sha256};

use crate::derive::DirectoryId;
use crate::node::{spawn_node, Clock, Listen, NodeHandle};
use crate::record::ServiceRecord;
use crate::SigningKey;

/// Domain of the publisher key's derivation.
const PUBLISHER_DOMAIN: &[u8] = b"triad/dir/publisher/v1\0";
/// Domain of the coordinator's signature ([`crate::record`]'s; the test
/// below keeps the two equal).
const RECORD_DOMAIN: &[u8] = b"triad/dir/record/v1\0";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("{0:?} is not a multiaddr")]
    NotMultiaddr(String),
    #[error("{0:?} does not end in /p2p/<peer id>")]
    NoPeerId(String),
    #[error("{0:?} names no address before /p2p/<peer id>")]
    NoTransport(String),
}

/// A node's libp2p identity from a 32-byte ed25519 seed (a service's key
/// file, as `triad-wire`'s `keyfile` keeps them).
pub fn keypair_from_seed(seed: [u8; 32]) -> Keypair {
    let mut seed = seed;
    Keypair::ed25519_from_bytes(&mut seed).expect("every 32-byte seed is an ed25519 key")
}

/// `<multiaddr>/p2p/<peer id>`: how a node is named to others.
pub fn node_address(addr: &Multiaddr, peer: &PeerId) -> String {
    addr.clone().with(Protocol::P2p(*peer)).to_string()
}

/// The address of a running node, as [`node_address`].
pub fn handle_address(node: &NodeHandle) -> String {
    node_address(&node.addr, &node.peer_id)
}

/// Parses `<multiaddr>/p2p/<peer id>` into the peer and its address.
pub fn parse_node_address(s: &str) -> Result<(PeerId, Multiaddr), AddressError> {
    let mut addr: Multiaddr = s
        .trim()
        .parse()
        .map_err(|_| AddressError::NotMultiaddr(s.into()))?;
    let Some(Protocol::P2p(peer)) = addr.pop() else {
        return Err(AddressError::NoPeerId(s.into()));
    };
    if addr.is_empty() {
        return Err(AddressError::NoTransport(s.into()));
    }
    Ok((peer, addr))
}

/// Parses every address of a bootstrap list.
pub fn parse_bootstrap(list: &[String]) -> Result<Vec<(PeerId, Multiaddr)>, AddressError> {
    list.iter().map(|s| parse_node_address(s)).collect()
}

/// Unix seconds from the system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ClientNodeError {
    #[error(transparent)]
    Address(#[from] AddressError),
    #[error("no directory node to bootstrap from")]
    NoBootstrap,
    #[error("starting the directory node: {0}")]
    Start(String),
}

/// Starts a node with a fresh identity on `listen` (TCP), knowing the
/// nodes of `bootstrap` (`<multiaddr>/p2p/<peer id>` each): what a client
/// or a coordinator looks up and publishes through.
pub async fn start_client(
    listen: SocketAddr,
    bootstrap: &[String],
    clock: Clock,
) -> Result<NodeHandle, ClientNodeError> {
    let peers = parse_bootstrap(bootstrap)?;
    if peers.is_empty() {
        return Err(ClientNodeError::NoBootstrap);
    }
    let node = spawn_node(Listen::Tcp(listen), Keypair::generate_ed25519(), clock)
        .await
        .map_err(ClientNodeError::Start)?;
    node.add_peers(peers)
        .await
        .map_err(ClientNodeError::Start)?;
    Ok(node)
}

/// The key that signs `id`'s envelopes for the DHT nodes: derived from the
/// coordinator's key and the id (the seed is SHA-256 of the coordinator's
/// deterministic ed25519 signature over the id), so it is the same at
/// every republication and on every restart, and the envelopes of one
/// coordinator's records carry unrelated publisher keys: a DHT node
/// cannot group the records it stores by coordinator.
pub fn publisher_key(coordinator: &SigningKey, id: &DirectoryId) -> SigningKey {
    let sig = coordinator.sign(&[PUBLISHER_DOMAIN, &id.0].concat());
    SigningKey::from_seed(Sha256::digest(sig).into())
}

/// Whether the coordinator's signature on `record` verifies under the key
/// the record names (what a party checks before it endorses; the full
/// check with the endorsements is [`ServiceRecord::verify`]).
pub fn coordinator_signed(record: &ServiceRecord) -> bool {
    let mut key = [0u8; 32];
    let mut sig = [0u8; 64];
    hex::decode_to_slice(&record.body.coordinator.key, &mut key).is_ok()
        && hex::decode_to_slice(&record.coordinator_sig, &mut sig).is_ok()
        && crate::verify_ed25519(
            &key,
            &[RECORD_DOMAIN, &record.body.signing_bytes()].concat(),
            &sig,
        )
}

/// Party `i`'s endorsement of `record`'s body with `key`, 128 hex (as
/// [`ServiceRecord::endorse`] makes it).
pub fn endorsement(record: &ServiceRecord, i: usize, key: &SigningKey) -> String {
    let mut r = ServiceRecord {
        body: record.body.clone(),
        coordinator_sig: String::new(),
        party_sigs: Default::default(),
    };
    r.endorse(i, key);
    std::mem::take(&mut r.party_sigs[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses_round_trip_and_bad_ones_are_refused() {
        let key = keypair_from_seed([7; 32]);
        let peer = key.public().to_peer_id();
        assert_eq!(keypair_from_seed([7; 32]).public().to_peer_id(), peer);
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let s = node_address(&addr, &peer);
        assert!(s.starts_with("/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW"), "{s}");
        assert_eq!(parse_node_address(&s), Ok((peer, addr)));
        assert!(matches!(
            parse_node_address("/ip4/127.0.0.1/tcp/4001"),
            Err(AddressError::NoPeerId(_))
        ));
        assert!(matches!(
            parse_node_address("127.0.0.1:4001"),
            Err(AddressError::NotMultiaddr(_))
        ));
        assert!(matches!(
            parse_node_address(&format!("/p2p/{peer}")),
            Err(AddressError::NoTransport(_))
        ));
    }

    #[test]
    fn publisher_keys_are_per_record_and_stable() {
        let c = SigningKey::from_seed([1; 32]);
        let a = DirectoryId::derive(&c.public_key().0, &[1; 16]);
        let b = DirectoryId::derive(&c.public_key().0, &[2; 16]);
        let ka = publisher_key(&c, &a).public_key();
        assert_eq!(ka, publisher_key(&c, &a).public_key());
        assert_ne!(ka, publisher_key(&c, &b).public_key());
        assert_ne!(ka, c.public_key());
    }

    #[test]
    fn coordinator_signatures_and_endorsements_match_the_record_module() {
        let c = SigningKey::from_seed([1; 32]);
        let p = [2u8, 3, 4].map(|s| SigningKey::from_seed([s; 32]));
        let body = crate::record::example_body(&c, &p, [5; 16], 1000);
        let id = body.id().unwrap();
        let mut r = ServiceRecord::sign(body, &c);
        assert!(coordinator_signed(&r));
        for (i, k) in p.iter().enumerate() {
            r.party_sigs[i] = endorsement(&r, i, k);
        }
        r.verify(&id, crate::record::Kind::Study, 1000, None)
            .unwrap();
        let mut t = r.clone();
        t.body.name = "other".into();
        assert!(!coordinator_signed(&t));
        t = r.clone();
        t.coordinator_sig = "zz".into();
        assert!(!coordinator_signed(&t));
    }
}
