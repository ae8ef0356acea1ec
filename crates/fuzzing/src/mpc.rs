//! The target for what one computation party reads from another: the
//! transport's frames and the ring and proof-field elements inside them
//! (Z_2^64, Z_2^128, bits, F_r, GF(2^128), F_{p^2}).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use triad_mpc::network::decode_exact;
use triad_mpc::ring::encode_vec;
use triad_mpc::{Bits, Fr, MpcError, NetError, PartyId, Ring, Z128, Z64};
use triad_net::read_frame;

/// Drives a future whose I/O is an in-memory slice (always ready).
fn run_ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(x) = f.as_mut().poll(&mut cx) {
            return x;
        }
    }
    panic!("reading from a slice did not complete");
}

/// Decodes a payload as elements of `T`. Invariant: an accepted payload is
/// the canonical encoding of what it decodes to; a payload that is not a
/// whole number of elements is refused.
fn decode_as<T: Ring>(payload: &[u8], from: PartyId) {
    let n = payload.len() / T::BYTES;
    match decode_exact::<T>(payload, from, n) {
        Ok(xs) => assert_eq!(encode_vec(&xs), payload, "non-canonical encoding accepted"),
        Err(MpcError::WrongLength { .. }) => assert_ne!(payload.len() % T::BYTES, 0),
        Err(_) => {}
    }
}

/// Decodes a payload as elements of the multiplication checks' field
/// (`protocols::dzkp`'s messages). Invariant: accepted exactly when it is
/// a whole number of 16-byte elements with both halves below `2^61 - 1`,
/// and then it re-encodes to itself.
fn decode_proof_field(payload: &[u8]) {
    use triad_mpc::fp61::{Fp2, P};
    let canonical = payload.len().is_multiple_of(Fp2::BYTES)
        && payload
            .chunks_exact(8)
            .all(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")) < P);
    match Fp2::decode(payload) {
        Some(xs) => {
            assert!(canonical, "non-canonical proof element accepted");
            let mut again = Vec::new();
            Fp2::encode(&xs, &mut again);
            assert_eq!(again, payload);
        }
        None => assert!(!canonical, "canonical proof elements refused"),
    }
}

/// First byte: the frame size limit in units of 16 bytes; the rest: the
/// byte stream from a peer. Reads frames with the TCP transport's
/// `read_frame` until it fails, then decodes each payload as every ring.
/// Invariants: the frames read re-encode to exactly the bytes consumed; the
/// stream ends with `Closed` only between frames (fewer than 4 bytes left),
/// with `Oversize` only for a length above the limit, and with an I/O
/// error only for a truncated frame.
pub fn mpc_frame(data: &[u8]) {
    let Some((&sel, stream)) = data.split_first() else {
        return;
    };
    let max = usize::from(sel) * 16;
    let peer = PartyId::new(1).expect("party 1 exists");
    let mut rd = stream;
    let mut consumed = Vec::new();
    let err = loop {
        let before = rd;
        match run_ready(read_frame(&mut rd, peer, max)) {
            Ok(frame) => {
                assert!(frame.len() <= max);
                consumed.extend_from_slice(&(frame.len() as u32).to_be_bytes());
                consumed.extend_from_slice(&frame);
                assert_eq!(&stream[..consumed.len()], &consumed[..]);
                assert_eq!(rd.len(), stream.len() - consumed.len());
                decode_as::<Z64>(&frame, peer);
                decode_as::<Z128>(&frame, peer);
                decode_as::<Bits>(&frame, peer);
                decode_as::<Fr>(&frame, peer);
                // The tags of the malicious shuffle and their proofs.
                decode_as::<triad_mpc::gf128::Gf128>(&frame, peer);
                decode_as::<triad_mpc::fp61::Fp2>(&frame, peer);
                decode_proof_field(&frame);
            }
            Err(e) => break (e, before),
        }
    };
    let (e, left) = err;
    let header = left
        .get(..4)
        .map(|h| u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize);
    match (e, header) {
        (NetError::Closed(_), None) => {}
        (NetError::Oversize { len, .. }, Some(h)) => assert!(h == len && len > max),
        (NetError::Io { .. }, Some(h)) => assert!(h <= max && left.len() - 4 < h),
        (e, h) => panic!("unexpected end of stream: {e:?} with header {h:?}"),
    }
}
