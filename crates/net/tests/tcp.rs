//! Three real endpoints on 127.0.0.1 (OS-assigned ports), mutual TLS.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::num::Wrapping;
use std::time::Duration;

use triad_mpc::protocols::{mul, open, shuffle, sort_order};
use triad_mpc::share::share_plain;
use triad_mpc::testing::test_rng;
use triad_mpc::{Bits, MpcError, Party, PartyId, Z64};
use triad_net::{Identity, TcpConfig, TcpNetwork};

struct Setup {
    ids: Vec<Identity>,
    listeners: Vec<TcpListener>,
    addrs: [SocketAddr; 3],
}

fn setup() -> Setup {
    let ids: Vec<Identity> = (0..3)
        .map(|i| Identity::generate(&format!("party-{i}")).unwrap())
        .collect();
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs = std::array::from_fn(|i| listeners[i].local_addr().unwrap());
    Setup {
        ids,
        listeners,
        addrs,
    }
}

/// Runs `f` at each party; `addr_of(i, j)` is where party `i` dials `j`.
fn run<R: Send>(
    s: Setup,
    addrs_for: impl Fn(usize) -> [SocketAddr; 3],
    timeout: Duration,
    f: impl Fn(&mut Party) -> Result<R, MpcError> + Sync,
) -> Vec<Result<R, String>> {
    let certs: [Vec<u8>; 3] = std::array::from_fn(|i| s.ids[i].cert_der.clone());
    std::thread::scope(|sc| {
        let hs: Vec<_> = s
            .listeners
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let mut cfg = TcpConfig::new(
                    PartyId::new(i).unwrap(),
                    s.ids[i].clone(),
                    certs.clone(),
                    addrs_for(i),
                );
                cfg.timeout = timeout;
                let f = &f;
                sc.spawn(move || -> Result<R, String> {
                    let net = TcpNetwork::establish(cfg, l).map_err(|e| e.to_string())?;
                    let mut p = Party::setup(Box::new(net)).map_err(|e| e.to_string())?;
                    f(&mut p).map_err(|e| e.to_string())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn protocols_over_mutual_tls_match_plaintext() {
    let s = setup();
    let addrs = s.addrs;
    let x: Vec<Z64> = (0..5000u64)
        .map(|i| Wrapping(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
        .collect();
    let y: Vec<Z64> = (0..5000u64).map(|i| Wrapping(u64::MAX - i)).collect();
    let keys: Vec<Bits> = (0..300u64)
        .map(|i| Bits(((i * 7919) % 300) << 9 | i))
        .collect();
    let mut rng = test_rng();
    let (xs, ys, ks) = (
        share_plain(&x, &mut rng),
        share_plain(&y, &mut rng),
        share_plain(&keys, &mut rng),
    );
    let out = run(
        s,
        |_| addrs,
        Duration::from_secs(30),
        |p| {
            let i = p.id.index();
            let z = mul(p, &xs[i], &ys[i])?;
            let z = open(p, &z)?;
            let sh = shuffle(p, &[ks[i].clone()])?;
            let order = sort_order(p, &sh, 18)?;
            let sh = sh[0].clone();
            let sorted = open(p, &sh.gather(&order))?;
            Ok((z, sorted, p.net.stats().bytes_sent))
        },
    );
    let mut want_sorted = keys.clone();
    want_sorted.sort_by_key(|k| k.0);
    for r in out {
        let (z, sorted, sent) = r.unwrap();
        assert_eq!(z, x.iter().zip(&y).map(|(a, b)| a * b).collect::<Vec<_>>());
        assert_eq!(sorted, want_sorted);
        assert!(sent > 0);
    }
}

/// A man in the middle on the P1 -> P0 link that forwards `pass` bytes
/// from P1, then either flips one byte or cuts the connection.
fn tamper_proxy(target: SocketAddr, pass: usize, flip: bool) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut client, _) = l.accept().unwrap();
        let mut server = TcpStream::connect(target).unwrap();
        let mut s2 = server.try_clone().unwrap();
        let mut c2 = client.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut s2, &mut c2);
        });
        let mut seen = 0usize;
        let mut buf = [0u8; 4096];
        loop {
            let n = match client.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if seen + n > pass {
                if !flip {
                    let keep = pass.saturating_sub(seen);
                    let _ = server.write_all(&buf[..keep]);
                    let _ = server.shutdown(std::net::Shutdown::Both);
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    break;
                }
                let at = pass.saturating_sub(seen).min(n - 1);
                buf[at] ^= 0x40;
                seen = usize::MAX / 2; // flip once
            } else {
                seen += n;
            }
            if server.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    addr
}

fn tampered(flip: bool) {
    let s = setup();
    let addrs = s.addrs;
    // Past the handshake (~1-2 KB) and into the first large frame.
    let proxy = tamper_proxy(addrs[0], 60_000, flip);
    let x: Vec<Z64> = (0..40_000u64).map(Wrapping).collect();
    let xs = share_plain(&x, &mut test_rng());
    let out = run(
        s,
        |i| {
            if i == 1 {
                [proxy, addrs[1], addrs[2]]
            } else {
                addrs
            }
        },
        Duration::from_secs(5),
        |p| {
            let i = p.id.index();
            let mut last = Vec::new();
            for _ in 0..3 {
                let z = mul(p, &xs[i], &xs[i])?;
                last = open(p, &z)?;
            }
            Ok(last)
        },
    );
    let want: Vec<Z64> = x.iter().map(|a| a * a).collect();
    // Nobody computes a wrong answer; at least P0 (behind the proxy) fails.
    for v in out.iter().flatten() {
        assert_eq!(v, &want);
    }
    let err = out[0].as_ref().expect_err("P0 must detect the tampering");
    assert!(!err.is_empty());
}

#[test]
fn corrupted_stream_is_an_error_not_a_wrong_answer() {
    tampered(true);
}

#[test]
fn truncated_stream_is_an_error_not_a_hang() {
    tampered(false);
}

#[test]
fn unpinned_certificate_is_refused() {
    let mut s = setup();
    // P2 presents a certificate nobody pinned.
    let rogue = Identity::generate("party-2").unwrap();
    let certs: [Vec<u8>; 3] = std::array::from_fn(|i| s.ids[i].cert_der.clone());
    let l2 = s.listeners.pop().unwrap();
    let _l1 = s.listeners.pop().unwrap();
    let l0 = s.listeners.pop().unwrap();
    let mut cfg0 = TcpConfig::new(
        PartyId::new(0).unwrap(),
        s.ids[0].clone(),
        certs.clone(),
        s.addrs,
    );
    cfg0.setup_timeout = Duration::from_secs(3);
    let p0 =
        std::thread::spawn(move || TcpNetwork::establish(cfg0, l0).err().map(|e| e.to_string()));
    let mut cfg = TcpConfig::new(PartyId::new(2).unwrap(), rogue, certs, s.addrs);
    cfg.setup_timeout = Duration::from_secs(3);
    let err = TcpNetwork::establish(cfg, l2)
        .err()
        .expect("rogue P2 must not connect");
    assert!(err.to_string().contains("TLS"), "{err}");
    // P0 keeps waiting for a legitimate P1 and P2, then gives up cleanly.
    assert!(p0.join().unwrap().unwrap().contains("not connected"));
}

#[test]
fn a_silent_stranger_does_not_block_setup() {
    let s = setup();
    let addrs = s.addrs;
    // Connects to P0 first and never says anything.
    let _stranger = TcpStream::connect(addrs[0]).unwrap();
    let out = run(
        s,
        |_| addrs,
        Duration::from_secs(10),
        |p| {
            let x = triad_mpc::Shares::<Z64>::zeros(3);
            open(p, &x)
        },
    );
    for r in out {
        assert_eq!(r.unwrap(), vec![Wrapping(0u64); 3]);
    }
}

#[test]
fn sending_to_a_peer_that_stopped_reading_times_out() {
    let s = setup();
    let addrs = s.addrs;
    let out = run(
        s,
        |_| addrs,
        Duration::from_secs(1),
        |p| {
            if p.id.index() == 1 {
                // P1 floods P0, which never reads.
                for _ in 0..400 {
                    p.net.send(PartyId::new(0).unwrap(), vec![7u8; 4 << 20])?;
                }
                Ok("sent everything")
            } else {
                std::thread::sleep(Duration::from_secs(4));
                Ok("idle")
            }
        },
    );
    let err = out[1].as_ref().expect_err("P1 must not block forever");
    assert!(err.contains("timed out"), "{err}");
}
