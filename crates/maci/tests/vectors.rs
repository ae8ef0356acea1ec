//! Known-answer tests: the published vectors of the triad's MACI vector
//! set (`shared/vectors/maci/README.md`: circomlibjs, MACI docs and
//! constants, the BLAKE spec) and the end-to-end MACI v3 vote of
//! `generated.json` (copied to `tests/vectors/generated.json`), whose
//! components an independent implementation cross-checked against the
//! published ones.

use std::str::FromStr;

use ark_ff::{BigInteger, PrimeField};
use serde_json::Value;
use triad_maci::babyjub::{self, base8};
use triad_maci::hash::{blank_state_leaf_hash, pad_key_hash, poseidon};
use triad_maci::{
    chain_hash, decrypt_command, ecdh, encrypt_command, message_hash, poseidon_decrypt,
    poseidon_encrypt, sign_command, verify_command, Command, Fr, Keypair, PrivKey, PubKey, Scalar,
    SharedKey, Signature, SigningKey, NOTHING_UP_MY_SLEEVE,
};

fn fr(s: &str) -> Fr {
    match s.strip_prefix("0x") {
        Some(hex) => {
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            Fr::from_be_bytes_mod_order(&bytes)
        }
        None => Fr::from_str(s).unwrap(),
    }
}

fn j(v: &Value) -> Fr {
    fr(v.as_str().unwrap_or_else(|| panic!("not a string: {v}")))
}

fn pair(v: &Value) -> [Fr; 2] {
    [j(&v[0]), j(&v[1])]
}

fn hex_bytes<const N: usize>(hex: &str) -> [u8; N] {
    let hex = hex.strip_prefix("0x").unwrap_or(hex);
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn generated() -> Value {
    let text = include_str!("vectors/generated.json");
    serde_json::from_str(text).unwrap()
}

fn priv_key(hex: &str) -> PrivKey {
    PrivKey::from_bytes(hex_bytes(&format!("{:0>64}", hex.trim_start_matches("0x"))))
}

// ---- Published vectors ----

#[test]
fn p1_p2_poseidon() {
    assert_eq!(
        poseidon(&[Fr::from(1u64), Fr::from(2u64)]),
        fr("7853200120776062878684798364095072458815029376092732009249414926327459813530")
    );
    let four: Vec<Fr> = (1..=4u64).map(Fr::from).collect();
    assert_eq!(
        poseidon(&four),
        fr("0x299c867db6c1fdd79dcefa40e4510b9837e60ebb1ce0663dbaa525df65250465")
    );
}

const E1_SEED: &str = "0001020304050607080900010203040506070809000102030405060708090001";

#[test]
fn e1_prv2pub_raw_bytes() {
    let key = SigningKey::from_seed(&hex_bytes::<32>(E1_SEED));
    let a = key.public_key();
    assert_eq!(
        a.to_fields(),
        [
            fr("13277427435165878497778222415993513565335242147425444199013288855685581939618"),
            fr("13622229784656158136036771217484571176836296686641868549125388198837476602820"),
        ]
    );
}

#[test]
fn e2_sign_poseidon() {
    let key = SigningKey::from_seed(&hex_bytes::<32>(E1_SEED));
    let msg = fr("42649378395939397566720");
    let sig = key.sign(msg);
    assert_eq!(
        sig.to_fields(),
        [
            fr("11384336176656855268977457483345535180380036354188103142384839473266348197733"),
            fr("15383486972088797283337779941324724402501462225528836549661220478783371668959"),
            fr("1672775540645840396591609181675628451599263765380031905495115170613215233181"),
        ]
    );
    let pk = key.public_key();
    assert_eq!(pk.verify(msg, &sig), Ok(()));
    assert!(pk.verify(msg + Fr::from(1u64), &sig).is_err());
    // The packed signature circomlibjs prints: packPoint(R8) ‖ LE32(S).
    let mut packed = babyjub::pack(sig.r8()).to_vec();
    packed.extend(sig.s().into_bigint().to_bytes_le());
    let hex: String = packed.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "dfedb4315d3f2eb4de2d3c510d7a987dcab67089c8ace06308827bf5bcbe02a2\
         9d043ece562a8f82bfc0adb640c0107a7d3a27c1c7c1a6179a0da73de5c1b203"
    );
}

#[test]
fn k1_maci_key_strings() {
    let sk: PrivKey = "macisk.08a06aef74c7f6a6f73704e30677418731bc738500f4e6c63dbfe41af8d6719c"
        .parse()
        .unwrap();
    let pk = sk.public_key();
    assert_eq!(
        pk.to_string(),
        "macipk.946c756cb8588f7169d37e23a98b92051359d64321cf7372a75757b5e9d5590d"
    );
    assert_eq!(
        "macipk.946c756cb8588f7169d37e23a98b92051359d64321cf7372a75757b5e9d5590d"
            .parse::<PubKey>()
            .unwrap(),
        pk
    );
    // The research notes' intermediate values for K1.
    assert_eq!(
        sk.signing_key().secret_scalar(),
        Scalar::from_str(
            "765426309690267092518757331942876273505290049020127065578214956349503488758"
        )
        .unwrap()
    );
    assert_eq!(
        pk.to_fields(),
        [
            fr("17456353532800481554317002948437556321379544913243190510526179400586854677287"),
            fr("9237886890072101094616970531923314248199625934059364666248379449694867511565"),
        ]
    );
}

#[test]
fn c1_constants() {
    assert_eq!(
        pad_key_hash(),
        fr("1309255631273308531193241901289907343161346846555918942743921933037802809814")
    );
    assert_eq!(
        blank_state_leaf_hash(),
        fr("11672248758340751985123309654953904206381780234474872690580702076708041504880")
    );
}

#[test]
fn h1_blake512() {
    let want = "a8cfbbd73726062df0c6864dda65defe58ef0cc52a5625090fa17601e1eecd1b\
                628e94f396ae402a00acc9eab77b4d4c2e852aaaa25a636d80af3fc7913ef5b8";
    let got: String = triad_maci::eddsa::blake512(b"")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn curve_constants() {
    let b = base8();
    assert_eq!(
        b.x,
        fr("5299619240641551281634865583518297030282874472190772894086521144482721001553")
    );
    assert_eq!(
        b.y,
        fr("16950150798460657717958625567821834550301663161624707787222815936182638968203")
    );
    assert_eq!(
        Scalar::MODULUS.to_string(),
        "2736030358979909402780800718157159386076813972158567259200215660948447373041"
    );
}

// ---- generated.json ----

#[test]
fn generated_keys() {
    let g = generated();
    let k = &g["keys"];
    let user = priv_key(k["user_sk_hex"].as_str().unwrap());
    assert_eq!(user.to_macisk(), k["macisk"].as_str().unwrap());
    assert_eq!(
        k["macisk"].as_str().unwrap().parse::<PrivKey>().unwrap(),
        user
    );
    assert_eq!(
        user.signing_key().secret_scalar(),
        Scalar::from_str(k["user_secret_scalar"].as_str().unwrap()).unwrap()
    );
    let pk = user.public_key();
    assert_eq!(pk.to_fields(), pair(&k["user_pub"]));
    let mut packed = pk.pack();
    packed.reverse();
    assert_eq!(
        packed,
        hex_bytes::<32>(k["user_pub_packed_hex"].as_str().unwrap())
    );
    assert_eq!(pk.to_string(), k["macipk"].as_str().unwrap());
    assert_eq!(k["macipk"].as_str().unwrap().parse::<PubKey>().unwrap(), pk);
    for (sk, pk) in [
        ("coord_sk_hex", "coord_pub"),
        ("eph_sk_hex", "eph_pub"),
        ("new_sk_hex", "new_pub"),
    ] {
        let kp = Keypair::from_private(priv_key(k[sk].as_str().unwrap()));
        assert_eq!(kp.public.to_fields(), pair(&k[pk]), "{pk}");
    }
}

#[test]
fn generated_ecdh() {
    let g = generated();
    let e = &g["ecdh"];
    let eph = priv_key(e["eph_sk_hex"].as_str().unwrap());
    let [x, y] = pair(&e["coord_pub"]);
    let coord_pub = PubKey::new(x, y).unwrap();
    let want = SharedKey(pair(&e["shared_key"]));
    assert_eq!(ecdh(&eph, &coord_pub), want);
    // The coordinator's side.
    let coord = priv_key(g["keys"]["coord_sk_hex"].as_str().unwrap());
    assert_eq!(ecdh(&coord, &eph.public_key()), want);
}

#[test]
fn generated_vote_command() {
    let g = generated();
    let v = &g["vote_command"];
    let f = &v["fields"];
    let [nx, ny] = pair(&f["newPubKey"]);
    let command = Command {
        state_index: f["stateIndex"].as_u64().unwrap(),
        vote_option_index: f["voteOptionIndex"].as_u64().unwrap(),
        new_vote_weight: f["newVoteWeight"].as_u64().unwrap(),
        nonce: f["nonce"].as_u64().unwrap(),
        poll_id: f["pollId"].as_u64().unwrap(),
        new_pub_key: PubKey::new(nx, ny).unwrap(),
        salt: j(&f["salt"]),
    };
    assert_eq!(command.params().unwrap(), j(&v["packed_params"]));
    let fields = command.to_fields().unwrap();
    let want_fields: Vec<Fr> = v["command_array"]
        .as_array()
        .unwrap()
        .iter()
        .map(j)
        .collect();
    assert_eq!(fields.to_vec(), want_fields);
    assert_eq!(Command::from_fields(&fields).unwrap(), command);
    assert_eq!(command.hash().unwrap(), j(&v["command_hash_poseidon4"]));

    // Signed by the user's key (deterministic EdDSA).
    let user = priv_key(g["keys"]["user_sk_hex"].as_str().unwrap());
    let sig = sign_command(&user.signing_key(), &command).unwrap();
    let [r8x, r8y] = pair(&v["signature"]["R8"]);
    let want_sig = Signature::from_fields(r8x, r8y, j(&v["signature"]["S"])).unwrap();
    assert_eq!(sig, want_sig);
    assert_eq!(verify_command(&user.public_key(), &command, &sig), Ok(()));
    // Under the new key (not the signer) it does not verify.
    assert!(verify_command(&command.new_pub_key, &command, &sig).is_err());

    let plaintext: Vec<Fr> = v["plaintext_7"].as_array().unwrap().iter().map(j).collect();
    assert_eq!(
        triad_maci::command::command_plaintext(&command, &sig)
            .unwrap()
            .to_vec(),
        plaintext
    );

    let shared = SharedKey(pair(&g["ecdh"]["shared_key"]));
    let message = encrypt_command(&command, &sig, &shared).unwrap();
    let want_ct: Vec<Fr> = v["ciphertext_10_nonce0"]
        .as_array()
        .unwrap()
        .iter()
        .map(j)
        .collect();
    assert_eq!(message.to_vec(), want_ct);
    assert_eq!(
        poseidon_decrypt(&message, &shared, 0, 7).unwrap(),
        plaintext
    );
    assert_eq!(decrypt_command(&message, &shared).unwrap(), (command, sig));

    let eph = priv_key(g["keys"]["eph_sk_hex"].as_str().unwrap());
    let h = message_hash(&message, &eph.public_key());
    assert_eq!(h, j(&v["message_hash_hash12_with_encPubKey"]));
    assert_eq!(
        chain_hash(NOTHING_UP_MY_SLEEVE, h),
        j(&v["chain_hash_after_1_msg"])
    );
}

#[test]
fn generated_poseidon_encrypt_small() {
    let g = generated();
    let p = &g["poseidon_encrypt_small"];
    let key = SharedKey(pair(&p["key"]));
    let nonce: u128 = p["nonce"].as_str().unwrap().parse().unwrap();
    let plain: Vec<Fr> = p["plaintext"].as_array().unwrap().iter().map(j).collect();
    let want: Vec<Fr> = p["ciphertext"].as_array().unwrap().iter().map(j).collect();
    assert_eq!(poseidon_encrypt(&plain, &key, nonce), want);
    assert_eq!(
        poseidon_decrypt(&want, &key, nonce, plain.len()).unwrap(),
        plain
    );
}

#[test]
fn generated_anon_commitments() {
    let g = generated();
    let a = &g["anon_commitments_example"];
    let s = j(&a["s"]);
    assert_eq!(poseidon(&[s + Fr::from(1u64)]), j(&a["commitment_H(s+1)"]));
    assert_eq!(poseidon(&[s + Fr::from(2u64)]), j(&a["nullifier_H(s+2)"]));
}
