//! Property tests: round trips, and forgeries / tampering that must fail.

use ark_ff::PrimeField;
use proptest::prelude::*;
use triad_maci::babyjub;
use triad_maci::{
    decrypt_command, ecdh, encrypt_command, poseidon_decrypt, poseidon_encrypt, sign_command,
    verify_command, Command, CommandError, Fr, Keypair, PrivKey, PubKey, SharedKey, SigningKey,
};

fn fr() -> impl Strategy<Value = Fr> {
    any::<[u8; 32]>().prop_map(|b| Fr::from_le_bytes_mod_order(&b))
}

fn field50() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..1 << 50, Just((1 << 50) - 1), Just(0)]
}

fn command() -> impl Strategy<Value = Command> {
    (
        field50(),
        field50(),
        field50(),
        field50(),
        field50(),
        any::<[u8; 32]>(),
        fr(),
    )
        .prop_map(|(s, o, w, n, p, sk, salt)| Command {
            state_index: s,
            vote_option_index: o,
            new_vote_weight: w,
            nonce: n,
            poll_id: p,
            new_pub_key: PrivKey::from_bytes(sk).public_key(),
            salt,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn sign_verify_round_trip(seed in any::<Vec<u8>>(), msg in fr(), other in fr(), seed2 in any::<[u8; 32]>()) {
        let key = SigningKey::from_seed(&seed);
        let sig = key.sign(msg);
        let pk = key.public_key();
        prop_assert_eq!(pk.verify(msg, &sig), Ok(()));
        if other != msg {
            prop_assert!(pk.verify(other, &sig).is_err());
        }
        let pk2 = SigningKey::from_seed(&seed2).public_key();
        if pk2 != pk {
            prop_assert!(pk2.verify(msg, &sig).is_err());
        }
        // A signature re-read from its fields is the same signature.
        let [x, y, s] = sig.to_fields();
        prop_assert_eq!(triad_maci::Signature::from_fields(x, y, s), Ok(sig));
    }

    #[test]
    fn command_sign_verify(cmd in command(), sk in any::<[u8; 32]>(), salt2 in fr()) {
        let signer = PrivKey::from_bytes(sk);
        let sig = sign_command(&signer.signing_key(), &cmd).unwrap();
        prop_assert_eq!(verify_command(&signer.public_key(), &cmd, &sig), Ok(()));
        let mut changed = cmd.clone();
        changed.salt = salt2;
        if salt2 != cmd.salt {
            prop_assert!(verify_command(&signer.public_key(), &changed, &sig).is_err());
        }
        let mut changed = cmd.clone();
        changed.new_vote_weight ^= 1;
        prop_assert!(verify_command(&signer.public_key(), &changed, &sig).is_err());
    }

    #[test]
    fn pack_unpack_round_trip(cmd in command()) {
        let fields = cmd.to_fields().unwrap();
        prop_assert_eq!(Command::from_fields(&fields).unwrap(), cmd);
    }

    #[test]
    fn encrypt_decrypt_round_trip(
        plain in prop::collection::vec(fr(), 0..12),
        k in (fr(), fr()),
        nonce in any::<u128>(),
        which in any::<prop::sample::Index>(),
        delta in fr(),
    ) {
        let key = SharedKey([k.0, k.1]);
        let c = poseidon_encrypt(&plain, &key, nonce);
        prop_assert_eq!(c.len(), plain.len().div_ceil(3) * 3 + 1);
        prop_assert_eq!(poseidon_decrypt(&c, &key, nonce, plain.len()), Ok(plain.clone()));
        // Any change to any element is caught.
        if delta != Fr::from(0u64) {
            let mut t = c.clone();
            t[which.index(c.len())] += delta;
            prop_assert!(poseidon_decrypt(&t, &key, nonce, plain.len()).is_err());
        }
        // Another nonce or key does not decrypt.
        prop_assert!(poseidon_decrypt(&c, &key, nonce.wrapping_add(1), plain.len()).is_err());
        let other = SharedKey([k.0 + Fr::from(1u64), k.1]);
        prop_assert!(poseidon_decrypt(&c, &other, nonce, plain.len()).is_err());
        // A wrong length is refused, not misread.
        prop_assert!(poseidon_decrypt(&c, &key, nonce, plain.len() + 1).is_err());
    }

    #[test]
    fn message_round_trip(cmd in command(), voter in any::<[u8; 32]>(), eph in any::<[u8; 32]>(), coord in any::<[u8; 32]>()) {
        let voter = PrivKey::from_bytes(voter);
        let eph = Keypair::from_private(PrivKey::from_bytes(eph));
        let coord = Keypair::from_private(PrivKey::from_bytes(coord));
        let sig = sign_command(&voter.signing_key(), &cmd).unwrap();
        let shared = ecdh(&eph.private, &coord.public);
        prop_assert_eq!(&shared, &ecdh(&coord.private, &eph.public));
        let msg = encrypt_command(&cmd, &sig, &shared).unwrap();
        let (got, got_sig) = decrypt_command(&msg, &shared).unwrap();
        prop_assert_eq!(&got, &cmd);
        prop_assert_eq!(verify_command(&voter.public_key(), &got, &got_sig), Ok(()));
    }

    #[test]
    fn oversized_fields_are_refused(cmd in command(), extra in 1u64 << 50..=u64::MAX, which in 0usize..5) {
        let mut c = cmd;
        match which {
            0 => c.state_index = extra,
            1 => c.vote_option_index = extra,
            2 => c.new_vote_weight = extra,
            3 => c.nonce = extra,
            _ => c.poll_id = extra,
        }
        let refused = matches!(c.params(), Err(CommandError::FieldTooLarge { value, .. }) if value == extra);
        prop_assert!(refused);
    }

    #[test]
    fn key_strings_round_trip(sk in any::<[u8; 32]>()) {
        let kp = Keypair::from_private(PrivKey::from_bytes(sk));
        let s = kp.private.to_macisk();
        prop_assert_eq!(s.len(), 7 + 64);
        prop_assert_eq!(s.parse::<PrivKey>().unwrap(), kp.private.clone());
        let p = kp.public.to_string();
        prop_assert_eq!(p.parse::<PubKey>().unwrap(), kp.public);
        prop_assert!(p.len() % 2 == 1 && p.len() <= 7 + 64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsing_arbitrary_strings_never_panics(s in any::<String>(), tail in "[0-9a-fA-F\u{e9}]{0,70}") {
        let _ = s.parse::<PrivKey>();
        let _ = s.parse::<PubKey>();
        for prefix in ["macisk.", "macipk."] {
            let with_prefix = format!("{prefix}{s}");
            let _ = with_prefix.parse::<PrivKey>();
            let _ = with_prefix.parse::<PubKey>();
            let hexish = format!("{prefix}{tail}");
            if let Ok(k) = hexish.parse::<PrivKey>() {
                prop_assert_eq!(k.to_macisk(), hexish.clone());
            }
            if let Ok(k) = hexish.parse::<PubKey>() {
                prop_assert_eq!(k.to_string(), hexish.clone());
            }
        }
    }

    #[test]
    fn unpacking_arbitrary_bytes_never_panics(b in any::<[u8; 32]>()) {
        if let Ok(p) = babyjub::unpack(&b) {
            prop_assert!(p.is_on_curve());
            prop_assert_eq!(babyjub::pack(&p), b);
        }
    }

    #[test]
    fn arbitrary_coordinates_never_panic(x in fr(), y in fr(), s in fr()) {
        let _ = PubKey::new(x, y);
        let _ = triad_maci::Signature::from_fields(x, y, s);
        let _ = Command::from_fields(&[x, y, s, x]);
    }
}
