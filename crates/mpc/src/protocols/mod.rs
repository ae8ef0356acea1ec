//! Interactive protocols: free functions over a [`Party`](crate::Party) and
//! vectors of shares. Each doc comment states its rounds; a batch of any size
//! costs the rounds of one element.
//!
//! References: Araki, Furukawa, Lindell, Nof, Ohara, "High-throughput
//! semi-honest secure three-party computation with an honest majority"
//! (CCS 2016) for multiplication; Mohassel, Rindal, "ABY3" (CCS 2018) for the
//! share conversions; Hamada, Kikuchi, Ikarashi, Chida, "Practically
//! efficient multi-party sorting protocols from comparison sort algorithms"
//! (ICISC 2012) for shuffle-then-sort.

pub mod arithmetic;
pub mod binary;
pub mod binary_compare;
pub mod compare;
pub mod conversion;
pub mod dzkp;
pub mod field_compare;
pub mod input;
pub mod mulcheck;
pub mod poseidon;
pub mod shuffle;
pub mod sort;
pub(crate) mod sumcheck;

pub use arithmetic::{
    dot, mul, mul_into, open, open_to, random_shares, reshare, square, zero_share,
};
pub use binary::{and, bitslice, msb};
pub use compare::{eq, in_range, lt, lt_public, select};
pub use conversion::{a2b, b2a, b2a_fr, b2a_z128, bit_inject};
pub use dzkp::verify;
pub use field_compare::{is_negative_fr, is_zero_fr};
pub use input::check_client_input;
pub use poseidon::{open_is_zero, poseidon, poseidon2};
pub use shuffle::{shuffle, shuffle_bits, shuffle_mixed};
pub use sort::{sort_order, sort_order_arith};

/// Edge-heavy 64-bit inputs shared by the protocol tests: 0, 1, the
/// maximum, the top bit, the 48-bit maximum, and arbitrary values.
#[cfg(test)]
pub(crate) fn edge_u64() -> impl proptest::strategy::Strategy<Value = u64> {
    use proptest::prelude::*;
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(1 << 63),
        Just((1 << 48) - 1),
        any::<u64>()
    ]
}
