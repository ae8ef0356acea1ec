//! A faulty link yields an error at the receiver, never a wrong result or a
//! hang.

use std::time::Duration;

use triad_mpc::network::MemNetwork;
use triad_mpc::protocols::{mul, open};
use triad_mpc::share::share_plain;
use triad_mpc::testing::{run3_on, test_rng, Fault, FaultyNetwork};
use triad_mpc::{Fr, MpcError, NetError, Network};

fn run_with_fault(fault: Fault) -> [Result<Vec<Fr>, MpcError>; 3] {
    let x: Vec<Fr> = (1..=20u64).map(Fr::from).collect();
    let xs = share_plain(&x, &mut test_rng());
    let [n0, n1, n2] = MemNetwork::triple(Duration::from_millis(500));
    // P1's 2nd message (after the seed exchange) is its resharing in `mul`.
    let nets: [Box<dyn Network>; 3] = [
        Box::new(n0),
        Box::new(FaultyNetwork::new(Box::new(n1), fault, 2)),
        Box::new(n2),
    ];
    run3_on(nets, |p| {
        let z = mul(p, &xs[p.id.index()], &xs[p.id.index()])?;
        open(p, &z)
    })
}

#[test]
fn truncated_message_is_a_length_error() {
    let out = run_with_fault(Fault::Truncate);
    assert!(
        matches!(
            out[0],
            Err(MpcError::WrongLength {
                expected: 640,
                got: 320,
                ..
            })
        ),
        "{:?}",
        out[0]
    );
}

#[test]
fn garbage_field_elements_are_rejected() {
    let out = run_with_fault(Fault::Garbage);
    assert!(
        matches!(out[0], Err(MpcError::MalformedElement { .. })),
        "{:?}",
        out[0]
    );
}

#[test]
fn dropped_message_is_an_error_not_a_hang() {
    let out = run_with_fault(Fault::Drop);
    // P0 either times out or sees P1 leave (P1 itself finished its part).
    assert!(
        matches!(
            out[0],
            Err(MpcError::Net(NetError::Timeout(..) | NetError::Closed(_)))
        ),
        "{:?}",
        out[0]
    );
}
