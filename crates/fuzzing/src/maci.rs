//! MACI key strings: `macisk.` and `macipk.` (`triad_maci::{PrivKey,
//! PubKey}`), which users paste into the CLI and voters send.

use triad_maci::{PrivKey, PubKey};

/// Any bytes as a key string, through both parsers. Invariants: an accepted
/// string is the canonical form of its key (it re-serializes to itself, so
/// each key has one string); an accepted public key is in the prime-order
/// subgroup; a private key's public key string parses back to that key.
pub fn maci_keys(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(sk) = s.parse::<PrivKey>() {
        assert_eq!(sk.to_macisk(), s);
        let pk = sk.public_key();
        assert_eq!(pk.to_string().parse::<PubKey>(), Ok(pk));
    }
    if let Ok(pk) = s.parse::<PubKey>() {
        assert_eq!(pk.to_string(), s);
        assert!(triad_maci::babyjub::in_prime_subgroup(pk.point()));
    }
}
