//! Onion-routed lookups (docs/directory.md, "Onion routing"): a reader's
//! prefix request travels to an exit relay through three relays as a
//! Sphinx packet (Danezis and Goldberg, "Sphinx: A Compact and Provably
//! Secure Mix Format", IEEE S&P 2009; the `sphinx-packet` crate, Nym's
//! implementation), and the answer comes back through a single-use reply
//! block (SURB) whose last hop is the reader. The exit performs the prefix
//! lookup in the DHT; no relay learns both who asks and what is asked, and
//! the exit learns only the prefix.
//!
//! Every node is a relay. Its Sphinx key is its libp2p ed25519 identity
//! mapped to X25519 (the birational map of RFC 7748 §4.1, as libsodium's
//! `crypto_sign_ed25519_*_to_curve25519`), so a relay's key follows from
//! its peer id alone and no key directory is needed. Node addresses in
//! Sphinx headers are the relays' 32-byte ed25519 keys.
//!
//! Packet sizes are fixed: [`REQUEST_PACKET_SIZE`] for requests,
//! [`REPLY_PACKET_SIZE`] for replies (a prefix answer of up to
//! [`REPLY_ENVELOPES`] envelopes, padded).

use curve25519_dalek::edwards::CompressedEdwardsY;
use libp2p::{identity, PeerId};
use sha2::{Digest, Sha512};
use sphinx_packet::header::delays::Delay;
use sphinx_packet::route::{Destination, DestinationAddressBytes, Node, NodeAddressBytes};
use sphinx_packet::surb::{SURBMaterial, SurbReplyRecovery, SURB};
use sphinx_packet::version::SINGLE_SEED_SURB_VERSION;
use sphinx_packet::{SphinxPacket, SphinxPacketBuilder};
use x25519_dalek::{PublicKey, StaticSecret};

/// A node's libp2p identity (its Sphinx key follows from it).
pub use libp2p::identity::Keypair;

use crate::envelope::ENVELOPE_SIZE;
use crate::node::{PrefixRequest, REQUEST_SIZE};

/// Sphinx payload of a request: the prefix request and the reply block.
pub const REQUEST_PAYLOAD: usize = 1024;
/// A prefix answer carried back holds at most this many envelopes; an exit
/// that finds more answers "too many" and the reader lengthens its prefix.
pub const REPLY_ENVELOPES: usize = 48;
/// Sphinx payload of a reply: a prefix answer of up to
/// [`REPLY_ENVELOPES`] envelopes, and the payload's own overhead.
pub const REPLY_PAYLOAD: usize = 3 + REPLY_ENVELOPES * ENVELOPE_SIZE + 64;
pub const REQUEST_PACKET_SIZE: usize = sphinx_packet::header::HEADER_SIZE + REQUEST_PAYLOAD;
pub const REPLY_PACKET_SIZE: usize = sphinx_packet::header::HEADER_SIZE + REPLY_PAYLOAD;
/// Relays on the way to the exit (the exit included) and back.
pub const HOPS: usize = 3;
/// The destination address that tells the last relay "you are the exit".
const EXIT: [u8; 32] = [0u8; 32];
const REQUEST_TAG: u8 = 1;

/// A relay's Sphinx secret: the X25519 scalar of its ed25519 identity
/// (`SHA-512(seed)[..32]`, clamped by X25519 itself).
pub fn sphinx_secret(key: &identity::Keypair) -> Option<StaticSecret> {
    let ed = key.clone().try_into_ed25519().ok()?;
    let h = Sha512::digest(ed.secret().as_ref());
    let mut s = [0u8; 32];
    s.copy_from_slice(&h[..32]);
    Some(StaticSecret::from(s))
}

/// An ed25519 identity from a fixed seed (tests and fuzz seeds; a node
/// keeps a random one).
pub fn keypair_from_seed(seed: [u8; 32]) -> identity::Keypair {
    let mut s = seed;
    identity::Keypair::ed25519_from_bytes(&mut s).expect("32 bytes are an ed25519 seed")
}

/// The ed25519 key inside an ed25519 peer id (identity multihash).
pub fn ed25519_of(peer: &PeerId) -> Option<[u8; 32]> {
    let pk = identity::PublicKey::try_decode_protobuf(
        libp2p::multihash::Multihash::<64>::from_bytes(&peer.to_bytes())
            .ok()?
            .digest(),
    )
    .ok()?;
    Some(pk.try_into_ed25519().ok()?.to_bytes())
}

/// A relay's Sphinx public key, from its peer id.
pub fn sphinx_public(peer: &PeerId) -> Option<PublicKey> {
    let ed = ed25519_of(peer)?;
    let point = CompressedEdwardsY(ed).decompress()?;
    Some(PublicKey::from(point.to_montgomery().to_bytes()))
}

/// The peer id named by a Sphinx node address (an ed25519 key).
pub fn peer_of(addr: &[u8; 32]) -> Option<PeerId> {
    let pk = identity::ed25519::PublicKey::try_from_bytes(addr).ok()?;
    Some(identity::PublicKey::from(pk).to_peer_id())
}

fn sphinx_node(peer: &PeerId) -> Option<Node> {
    Some(Node::new(
        NodeAddressBytes::from_bytes(ed25519_of(peer)?),
        sphinx_public(peer)?,
    ))
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OnionError {
    #[error("a relay's peer id carries no ed25519 key")]
    NotEd25519,
    #[error("sphinx: {0}")]
    Sphinx(String),
    #[error("malformed onion payload")]
    Malformed,
}

fn sphinx(e: sphinx_packet::Error) -> OnionError {
    OnionError::Sphinx(e.to_string())
}

/// What the reader keeps to read the reply: the SURB's recovery material.
pub struct PendingReply {
    pub recovery: SurbReplyRecovery,
}

/// A request ready to send: the packet, the first relay, and what reads
/// the reply (filed under `identifier`).
pub struct BuiltRequest {
    pub packet: Vec<u8>,
    pub first_hop: PeerId,
    pub identifier: [u8; 16],
    pub pending: PendingReply,
}

/// Builds the onion for `request` over `route` (the last relay is the
/// exit), with a reply block back through `reply_route` to `reader`.
/// `delays` are the per-hop delays of both ways (none: zero).
pub fn build_request(
    request: &PrefixRequest,
    route: &[PeerId; HOPS],
    reply_route: &[PeerId],
    reader: &PeerId,
    delays: Option<std::time::Duration>,
) -> Result<BuiltRequest, OnionError> {
    let nodes: Vec<Node> = route
        .iter()
        .map(sphinx_node)
        .collect::<Option<_>>()
        .ok_or(OnionError::NotEd25519)?;
    let mut back: Vec<Node> = reply_route
        .iter()
        .map(sphinx_node)
        .collect::<Option<_>>()
        .ok_or(OnionError::NotEd25519)?;
    back.push(sphinx_node(reader).ok_or(OnionError::NotEd25519)?);
    let identifier: [u8; 16] = rand_bytes();
    let me = ed25519_of(reader).ok_or(OnionError::NotEd25519)?;
    let delay_list = |n: usize| match delays {
        Some(d) => sphinx_packet::header::delays::generate_from_average_duration(n, d),
        None => vec![Delay::new_from_nanos(0); n],
    };
    let material = SURBMaterial::new(
        back.clone(),
        delay_list(back.len()),
        Destination::new(DestinationAddressBytes::from_bytes(me), identifier),
        SINGLE_SEED_SURB_VERSION,
    );
    let (surb, recovery) = material.construct_recoverable_SURB().map_err(sphinx)?;
    let mut payload = vec![REQUEST_TAG];
    payload.extend_from_slice(&request.to_bytes());
    payload.extend_from_slice(&surb.to_bytes());
    let packet = SphinxPacketBuilder::new()
        .with_version(SINGLE_SEED_SURB_VERSION)
        .with_payload_size(REQUEST_PAYLOAD)
        .build_packet(
            payload,
            &nodes,
            &Destination::new(DestinationAddressBytes::from_bytes(EXIT), rand_bytes()),
            &delay_list(HOPS),
        )
        .map_err(sphinx)?;
    Ok(BuiltRequest {
        packet: packet.to_bytes(),
        first_hop: route[0],
        identifier,
        pending: PendingReply { recovery },
    })
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut b = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("system randomness");
    b
}

/// What a relay does with a packet it was sent.
pub enum Step {
    /// Forward `packet` to `next` after `delay`.
    Forward {
        next: PeerId,
        packet: Vec<u8>,
        delay: std::time::Duration,
    },
    /// This relay is the exit: perform `request` and answer through `surb`.
    Exit { request: PrefixRequest, surb: SURB },
    /// A reply to one of this node's own lookups, still sealed.
    Reply {
        identifier: [u8; 16],
        payload: sphinx_packet::payload::Payload,
    },
}

/// The replay tag of a packet (its group element, unique per packet):
/// a relay processes each packet once.
pub fn replay_tag(packet: &[u8]) -> Option<[u8; 32]> {
    packet.get(..32)?.try_into().ok()
}

/// Peels one layer of `packet` with this relay's secret.
pub fn process(packet: &[u8], secret: &StaticSecret, me: &PeerId) -> Result<Step, OnionError> {
    if packet.len() != REQUEST_PACKET_SIZE && packet.len() != REPLY_PACKET_SIZE {
        return Err(OnionError::Malformed);
    }
    let p = SphinxPacket::from_bytes(packet).map_err(sphinx)?;
    let processed = p.process(secret).map_err(sphinx)?;
    match processed.data {
        sphinx_packet::ProcessedPacketData::ForwardHop {
            next_hop_packet,
            next_hop_address,
            delay,
        } => Ok(Step::Forward {
            next: peer_of(next_hop_address.as_bytes()).ok_or(OnionError::Malformed)?,
            packet: next_hop_packet.to_bytes(),
            delay: delay.to_duration(),
        }),
        sphinx_packet::ProcessedPacketData::FinalHop {
            destination,
            identifier,
            payload,
        } => {
            let dest = destination.as_bytes();
            if dest == EXIT {
                let plain = payload.recover_plaintext().map_err(sphinx)?;
                if plain.len() < 1 + REQUEST_SIZE || plain[0] != REQUEST_TAG {
                    return Err(OnionError::Malformed);
                }
                let request = PrefixRequest::parse(&plain[1..1 + REQUEST_SIZE])
                    .ok_or(OnionError::Malformed)?;
                let surb = SURB::from_bytes(&plain[1 + REQUEST_SIZE..]).map_err(sphinx)?;
                Ok(Step::Exit { request, surb })
            } else if Some(dest) == ed25519_of(me) {
                Ok(Step::Reply {
                    identifier,
                    payload,
                })
            } else {
                Err(OnionError::Malformed)
            }
        }
    }
}

/// The exit's answer, sealed into the reply block: returns the packet and
/// the peer to send it to.
pub fn answer(surb: SURB, answer: &[u8]) -> Result<(Vec<u8>, PeerId), OnionError> {
    let (packet, first) = surb.use_surb(answer, REPLY_PAYLOAD).map_err(sphinx)?;
    let next = peer_of(first.as_bytes()).ok_or(OnionError::Malformed)?;
    Ok((packet.to_bytes(), next))
}

/// The reader opens a reply with what it kept.
pub fn open_reply(
    pending: &PendingReply,
    payload: sphinx_packet::payload::Payload,
) -> Result<Vec<u8>, OnionError> {
    pending.recovery.recover_plaintext(payload).map_err(sphinx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::derive::kad_position;

    fn relay() -> (identity::Keypair, PeerId) {
        let k = identity::Keypair::generate_ed25519();
        let p = k.public().to_peer_id();
        (k, p)
    }

    #[test]
    fn the_sphinx_key_of_a_peer_id_matches_its_secret() {
        for _ in 0..8 {
            let (k, p) = relay();
            let s = sphinx_secret(&k).unwrap();
            assert_eq!(PublicKey::from(&s), sphinx_public(&p).unwrap());
            assert_eq!(peer_of(&ed25519_of(&p).unwrap()), Some(p));
        }
    }

    /// A request through three relays reaches the exit with the prefix
    /// alone; the exit's answer comes back through the reply block to the
    /// reader and nobody else can open it. Every packet on the way has the
    /// same size, and the reply packets too.
    #[test]
    fn a_request_and_its_reply_cross_three_relays_each_way() {
        let relays: Vec<_> = (0..3).map(|_| relay()).collect();
        let (reader_key, reader) = relay();
        let route = [relays[0].1, relays[1].1, relays[2].1];
        let reply_route = [relays[1].1, relays[0].1];
        let request = PrefixRequest::of(&kad_position(&[7u8; 32]), 6);
        let built = build_request(&request, &route, &reply_route, &reader, None).unwrap();
        assert_eq!(built.first_hop, route[0]);
        let mut packet = built.packet;
        let secret = |i: usize| sphinx_secret(&relays[i].0).unwrap();
        for (i, relay) in route.iter().enumerate().take(2) {
            assert_eq!(packet.len(), REQUEST_PACKET_SIZE);
            match process(&packet, &secret(i), relay).unwrap() {
                Step::Forward {
                    next, packet: p, ..
                } => {
                    assert_eq!(next, route[i + 1]);
                    packet = p;
                }
                _ => panic!("relay {i} must forward"),
            }
        }
        // A relay off the route cannot peel the packet.
        assert!(process(&packet, &secret(0), &route[0]).is_err());
        let Step::Exit { request: got, surb } = process(&packet, &secret(2), &route[2]).unwrap()
        else {
            panic!("the last relay is the exit")
        };
        assert_eq!(got, request);
        let message = b"the answer".to_vec();
        let (mut packet, mut next) = answer(surb, &message).unwrap();
        assert_eq!(next, reply_route[0]);
        for (hop, idx) in [(reply_route[0], 1usize), (reply_route[1], 0)] {
            assert_eq!(packet.len(), REPLY_PACKET_SIZE);
            assert_eq!(next, hop);
            match process(&packet, &secret(idx), &hop).unwrap() {
                Step::Forward {
                    next: n, packet: p, ..
                } => {
                    next = n;
                    packet = p;
                }
                _ => panic!("reply relays forward"),
            }
        }
        assert_eq!(next, reader);
        let reader_secret = sphinx_secret(&reader_key).unwrap();
        let Step::Reply {
            identifier,
            payload,
        } = process(&packet, &reader_secret, &reader).unwrap()
        else {
            panic!("the reader receives the reply")
        };
        assert_eq!(identifier, built.identifier);
        assert_eq!(open_reply(&built.pending, payload).unwrap(), message);
    }

    #[test]
    fn garbage_and_wrong_sizes_are_refused() {
        let (k, p) = relay();
        let s = sphinx_secret(&k).unwrap();
        for len in [
            0,
            31,
            100,
            REQUEST_PACKET_SIZE - 1,
            REQUEST_PACKET_SIZE,
            REPLY_PACKET_SIZE,
        ] {
            assert!(process(&vec![0x5a; len], &s, &p).is_err(), "len {len}");
        }
    }
}
