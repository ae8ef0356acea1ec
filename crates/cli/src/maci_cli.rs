//! CLI edge of MACI keys: `triad keygen` and `triad key public`.
//!
//! Thin wrappers over `triad_maci`: key pairs in MACI's `macisk.` /
//! `macipk.` string forms (MACI ≥ v2 derivation), so keys made here work
//! with MACI's own tools and the other way round.

use std::io::Read;

use anyhow::Context;
use clap::{Args, Subcommand};
use triad_maci::{Keypair, PrivKey, PubKey};

#[derive(Args)]
pub struct KeygenArgs {
    /// Print JSON (`private_key`, `public_key`, `public_key_xy`).
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Print the public key (`macipk.…`) of a private key.
    Public {
        /// The private key, `macisk.` + 64 hex digits; `-` reads it from
        /// standard input (keeps it out of the shell history and `ps`).
        macisk: String,
        /// Print JSON (`public_key`, `public_key_xy`).
        #[arg(long)]
        json: bool,
    },
}

/// `triad keygen`: a fresh key pair from the operating system's randomness.
pub fn keygen(args: KeygenArgs) -> anyhow::Result<()> {
    println!("{}", keygen_output(&Keypair::generate(), args.json));
    Ok(())
}

pub fn run(cmd: KeyCommand) -> anyhow::Result<()> {
    match cmd {
        KeyCommand::Public { macisk, json } => {
            let text = if macisk == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("reading the private key from standard input")?;
                s
            } else {
                macisk
            };
            println!("{}", public_output(text.trim(), json)?);
            Ok(())
        }
    }
}

fn keygen_output(kp: &Keypair, json: bool) -> String {
    if json {
        serde_json::json!({
            "private_key": kp.private.to_macisk(),
            "public_key": kp.public.to_string(),
            "public_key_xy": xy(&kp.public),
        })
        .to_string()
    } else {
        format!(
            "Private key: {}\nPublic key:  {}",
            kp.private.to_macisk(),
            kp.public
        )
    }
}

/// The public key of a `macisk.` string. The error names what is wrong
/// with the string but never repeats it (it is a secret).
fn public_output(macisk: &str, json: bool) -> anyhow::Result<String> {
    let sk: PrivKey = macisk.parse().context("invalid MACI private key")?;
    let pk = sk.public_key();
    Ok(if json {
        serde_json::json!({ "public_key": pk.to_string(), "public_key_xy": xy(&pk) }).to_string()
    } else {
        pk.to_string()
    })
}

/// The coordinates as decimal strings, as MACI's circuit inputs print them.
fn xy(pk: &PubKey) -> [String; 2] {
    pk.to_fields().map(|c| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1_SK: &str = "macisk.08a06aef74c7f6a6f73704e30677418731bc738500f4e6c63dbfe41af8d6719c";
    const K1_PK: &str = "macipk.946c756cb8588f7169d37e23a98b92051359d64321cf7372a75757b5e9d5590d";

    #[test]
    fn public_key_of_the_maci_docs_example() {
        assert_eq!(public_output(K1_SK, false).unwrap(), K1_PK);
        let v: serde_json::Value =
            serde_json::from_str(&public_output(K1_SK, true).unwrap()).unwrap();
        assert_eq!(v["public_key"], K1_PK);
        assert_eq!(
            v["public_key_xy"][0],
            "17456353532800481554317002948437556321379544913243190510526179400586854677287"
        );
    }

    #[test]
    fn bad_keys_are_clear_errors_without_the_key() {
        for (bad, why) in [
            ("", "starting with `macisk.`"),
            (K1_PK, "starting with `macisk.`"),
            ("macisk.08a0", "64 hex digits, got 4"),
            (
                &K1_SK.to_uppercase().replace("MACISK", "macisk"),
                "lowercase hex",
            ),
        ] {
            let err = format!("{:#}", public_output(bad, false).unwrap_err());
            assert!(err.starts_with("invalid MACI private key: "), "{err}");
            assert!(err.contains(why), "{bad:?}: {err}");
            if bad.len() > 12 {
                assert!(!err.contains(&bad[7..]), "error repeats the key: {err}");
            }
        }
    }

    #[test]
    fn keygen_prints_a_matching_pair() {
        let kp = Keypair::generate();
        let v: serde_json::Value = serde_json::from_str(&keygen_output(&kp, true)).unwrap();
        let sk = v["private_key"].as_str().unwrap();
        assert_eq!(
            public_output(sk, false).unwrap(),
            v["public_key"].as_str().unwrap()
        );
        let text = keygen_output(&kp, false);
        assert!(text.contains(&kp.private.to_macisk()));
        assert!(text.contains(&kp.public.to_string()));
        assert_ne!(Keypair::generate().private, kp.private);
    }
}
