//! A poll through the real services in one process (coordinator and three
//! parties over HTTPS and mutual-TLS MPC): sign-ups gated by attestation
//! nullifiers, votes sent as share sets and logged only once every party
//! holds them, a bribed key overridden by the voter's key change, refusals
//! that store nothing, a party killed and restarted before the deadline,
//! the tally the three parties signed against the plaintext oracle, and a
//! party holding another copy of a voter's component stopping the tally
//! (reported as cheating) instead of dropping the vote.

use std::time::{Duration, Instant};

use serde_json::Value;
use triad_client::poll::{self as client, Vote};
use triad_maci::{Command, Keypair, PrivKey};
use triad_polls::{process_poll, Message, SignUp};
use triad_wire::poll::{poll_study_id, PollMode, PollSpec, Signup};
use triad_world::World;

fn spec(id: u64, signup_secs: u64, voting_secs: u64) -> PollSpec {
    let now = triad_wire::unix_now();
    PollSpec {
        id,
        name: format!("poll {id}"),
        vote_options: 3,
        mode: PollMode::Quadratic,
        signup_deadline: now + signup_secs,
        voting_deadline: now + voting_secs,
        window: 32,
        voice_credits: 100,
        data_spec: triad_world::spec(),
        source: triad_attestation::DataSource::named("127.0.0.1"),
        rekey_epoch_secs: 1000,
    }
}

async fn status_of(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (status, v["error"].as_str().unwrap_or_default().to_string())
}

/// `POST /v1/polls` with the operator token: (status, error code).
async fn create_as_admin(w: &World, spec: &PollSpec) -> (u16, String) {
    let url = format!("{}/v1/polls", w.net.coordinator);
    let r = w
        .http
        .post(url)
        .header("x-triad-admin", w.admin_token())
        .json(spec);
    status_of(r.send().await.unwrap()).await
}

async fn post(w: &World, url: &str, body: &impl serde::Serialize) -> (u16, String) {
    status_of(w.http.post(url).json(body).send().await.unwrap()).await
}

/// Opens a message ticket for the component commitments `c` (202
/// expected): (submission id, token).
async fn open_ticket(w: &World, id: u64, c: &[String; 3]) -> (String, String) {
    let r = w
        .http
        .post(format!("{}/v1/polls/{id}/messages", w.net.coordinator))
        .json(&serde_json::json!({ "commitments": c }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let ticket: Value = r.json().await.unwrap();
    let field = |k: &str| ticket[k].as_str().unwrap().to_string();
    (field("submission_id"), field("token"))
}

/// Accounts 1..=n attest and sign up with fresh keys (state indexes 1..=n,
/// the spec's 100 credits each); returns their private keys.
async fn sign_up(w: &World, id: u64, n: u64) -> Vec<PrivKey> {
    let mut keys = Vec::new();
    for account in 1..=n {
        let kp = Keypair::generate();
        let att = w.attestation(&poll_study_id(id), account);
        let s = client::signup_attested(&w.net, &w.http, id, att, &kp.public)
            .await
            .unwrap();
        assert_eq!((s.state_index, s.voice_credits), (account, 100));
        keys.push(kp.private);
    }
    keys
}

/// The verified tally, once the three parties signed it.
async fn wait_tally(w: &World, id: u64) -> triad_wire::poll::VerifiedTally {
    let start = Instant::now();
    loop {
        match client::fetch_tally(&w.net, &w.http, id).await {
            Ok(t) => return t,
            Err(e) => {
                assert!(start.elapsed() < Duration::from_secs(180), "no tally: {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
}

/// The public sign-ups as the oracle takes them.
fn oracle_signups(signups: &[Signup]) -> Vec<SignUp> {
    signups
        .iter()
        .map(|s| SignUp {
            pub_key: s.pub_key.parse().unwrap(),
            voice_credits: s.voice_credits,
            timestamp: s.timestamp,
        })
        .collect()
}

struct Voter {
    key: PrivKey,
}

fn sign(voter_index: u64, key: &PrivKey, vote: &Vote, poll: u64) -> Message {
    let k = key.signing_key();
    let command = Command {
        state_index: voter_index,
        vote_option_index: vote.option,
        new_vote_weight: vote.weight,
        nonce: vote.nonce,
        poll_id: poll,
        new_pub_key: vote.new_key.unwrap_or_else(|| k.public_key()),
        salt: triad_client::random_fr(&mut rand::rngs::OsRng),
    };
    Message::sign(command, &k, 0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poll_through_the_services_matches_the_oracle() {
    let mut w = World::start().await;
    let id = 7;
    let voting_secs = 25;
    let info = client::create_poll(&w.net, &w.http, w.admin_token(), &spec(id, 20, voting_secs))
        .await
        .unwrap();
    assert_eq!((info.signups, info.messages, info.tallied), (0, 0, false));
    let coord = w.net.coordinator.clone();

    // Creation refusals.
    assert_eq!(
        create_as_admin(&w, &spec(id, 20, 30)).await,
        (409, "poll_exists".into())
    );
    let mut bad = spec(8, 20, 30);
    bad.vote_options = 0;
    assert_eq!(
        create_as_admin(&w, &bad).await,
        (400, "invalid_poll".into())
    );
    let r = w
        .http
        .post(format!("{coord}/v1/polls"))
        .json(&spec(9, 20, 30))
        .send()
        .await
        .unwrap();
    assert_eq!(status_of(r).await.0, 401);

    // Sign-ups: four accounts.
    let voters: Vec<Voter> = sign_up(&w, id, 4)
        .await
        .into_iter()
        .map(|key| Voter { key })
        .collect();
    // Sign-up refusals change nothing.
    let signup_url = format!("{coord}/v1/polls/{id}/signups");
    let pk = Keypair::generate().public.to_string();
    let dup =
        serde_json::json!({"attestation": w.attestation(&poll_study_id(id), 2), "pub_key": pk});
    assert_eq!(
        post(&w, &signup_url, &dup).await,
        (409, "already_signed_up".into())
    );
    let other = serde_json::json!({"attestation": w.attestation("a-study", 5), "pub_key": pk});
    assert_eq!(
        post(&w, &signup_url, &other).await,
        (422, "study_mismatch".into())
    );
    let badkey = serde_json::json!({"attestation": w.attestation(&poll_study_id(id), 6), "pub_key": "macipk.zz"});
    assert_eq!(
        post(&w, &signup_url, &badkey).await,
        (400, "bad_key".into())
    );
    let unknown =
        serde_json::json!({"attestation": w.attestation(&poll_study_id(99), 6), "pub_key": pk});
    assert_eq!(
        post(&w, &format!("{coord}/v1/polls/99/signups"), &unknown).await,
        (404, "unknown_poll".into())
    );
    let signups: Vec<Signup> = w
        .http
        .get(&signup_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(signups.len(), 4);

    // Votes. Voter 2 sold its key: the briber votes with it; then voter 2
    // changes its key with a vote of its own, which the briber cannot see.
    let briber = voters[1].key.clone();
    let new2 = Keypair::generate();
    let forger = Keypair::generate();
    let plan: Vec<Message> = vec![
        sign(
            1,
            &voters[0].key,
            &Vote {
                option: 0,
                weight: 3,
                nonce: 1,
                new_key: None,
            },
            id,
        ),
        sign(
            2,
            &briber,
            &Vote {
                option: 1,
                weight: 9,
                nonce: 1,
                new_key: None,
            },
            id,
        ),
        sign(
            3,
            &forger.private,
            &Vote {
                option: 1,
                weight: 9,
                nonce: 1,
                new_key: None,
            },
            id,
        ),
        sign(
            4,
            &voters[3].key,
            &Vote {
                option: 2,
                weight: 1,
                nonce: 1,
                new_key: None,
            },
            id,
        ),
        sign(
            2,
            &voters[1].key,
            &Vote {
                option: 2,
                weight: 2,
                nonce: 1,
                new_key: Some(new2.public),
            },
            id,
        ),
        sign(
            4,
            &voters[3].key,
            &Vote {
                option: 0,
                weight: 4,
                nonce: 1,
                new_key: None,
            },
            id,
        ),
        sign(
            3,
            &voters[2].key,
            &Vote {
                option: 0,
                weight: 11,
                nonce: 1,
                new_key: None,
            },
            id,
        ),
        sign(
            3,
            &voters[2].key,
            &Vote {
                option: 1,
                weight: 1,
                nonce: 1,
                new_key: None,
            },
            8,
        ),
    ];
    let mut logged = Vec::new();
    for (k, m) in plan.iter().enumerate() {
        let e = client::send_message(&w.net, &w.http, id, m).await.unwrap();
        assert_eq!(e.position, k as u64);
        logged.push(e);
        if k == 3 {
            // A party killed -9 and restarted mid-poll keeps what it
            // acknowledged (its shares are confirmed, on disk).
            w.kill_party(1).await;
            w.restart_party(1).await;
        }
    }
    // The public log is what the voters were told.
    let log: Vec<triad_wire::poll::LogEntry> = w
        .http
        .get(format!("{coord}/v1/polls/{id}/log"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log, logged);

    // A share set that does not open its commitment is never logged.
    let r = w
        .http
        .post(format!("{coord}/v1/polls/{id}/messages"))
        .json(&serde_json::json!({"commitments": ["ab".repeat(32), "cd".repeat(32), "ef".repeat(32)]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let ticket: Value = r.json().await.unwrap();
    let sid = ticket["submission_id"].as_str().unwrap();
    let token = ticket["token"].as_str().unwrap();
    let r = w
        .http
        .post(format!("{coord}/v1/poll-messages/{sid}/ready"))
        .json(&serde_json::json!({"token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(status_of(r).await, (422, "bad_shares".into()));
    let r = w
        .http
        .post(format!("{coord}/v1/poll-messages/{sid}/ready"))
        .json(&serde_json::json!({"token": "00".repeat(32)}))
        .send()
        .await
        .unwrap();
    assert_eq!(status_of(r).await, (403, "wrong_token".into()));
    let info = client::poll_info(&w.net, &w.http, id).await.unwrap();
    assert_eq!(info.messages, plan.len() as u64);

    // No tally while the poll is open.
    let r = w
        .http
        .get(format!("{coord}/v1/polls/{id}/tally"))
        .send()
        .await
        .unwrap();
    assert_eq!(status_of(r).await, (404, "no_tally".into()));

    // After the deadline: votes are refused, and the tally appears.
    let deadline = info.spec.voting_deadline;
    while triad_wire::unix_now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let late = sign(
        1,
        &voters[0].key,
        &Vote {
            option: 1,
            weight: 1,
            nonce: 2,
            new_key: None,
        },
        id,
    );
    let err = client::send_message(&w.net, &w.http, id, &late)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("closed"), "{err}");

    let tally = wait_tally(&w, id).await;

    // The oracle over the same public log and sign-ups.
    let params = info.spec.params().unwrap();
    let oracle_signups = oracle_signups(&signups);
    let messages: Vec<Message> = plan
        .iter()
        .zip(&logged)
        .map(|(m, e)| Message {
            timestamp: e.timestamp,
            ..m.clone()
        })
        .collect();
    let oracle = process_poll(&params, &oracle_signups, &messages);
    assert_eq!(tally.tally.tally(), oracle.tally);
    // The parties run malicious (World::start's default), polls too
    // (`poll_security`): every phase of the tally ran checked, and the
    // tally says so.
    assert_eq!(w.security(), triad_mpc::Security::Malicious);
    assert_eq!(
        tally.tally.security,
        Some(triad_wire::release::SecurityMode::Malicious)
    );
    // The story: voter 1 votes 3 for option 0; the briber's vote with the
    // sold key is overridden by voter 2's key change (2 for option 2);
    // voter 4's second vote (nonce 1 again: processing runs from the last
    // message back) replaces its first; voter 3's forged vote and
    // its other-poll message count nothing, its own vote does (11² = 121
    // credits > 100: unaffordable, so nothing).
    assert_eq!(tally.tally.votes, vec![3 + 4, 0, 2]);
    assert_eq!(tally.tally.spent, 9 + 16 + 4);
    assert_eq!((tally.tally.signups, tally.tally.messages), (4, 8));

    // Each party serves its own signed copy; the coordinator marks it.
    for p in &w.net.parties {
        let r = w
            .http
            .get(format!("{}/v1/polls/{id}/tally", p.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert!(
        client::poll_info(&w.net, &w.http, id)
            .await
            .unwrap()
            .tallied
    );
}

/// Parameters at their limits are served without overflow or panic, and
/// out-of-range ones are refused with a clear error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parameters_at_their_limits() {
    let w = World::start().await;
    let coord = w.net.coordinator.clone();
    let id = (1u64 << 50) - 1;
    let mut far = spec(id, 20, 30);
    far.signup_deadline = u64::MAX;
    far.voting_deadline = u64::MAX;
    far.voice_credits = u64::MAX;
    far.window = 1;
    client::create_poll(&w.net, &w.http, w.admin_token(), &far)
        .await
        .unwrap();
    let kp = Keypair::generate();
    let s = client::signup_attested(
        &w.net,
        &w.http,
        id,
        w.attestation(&poll_study_id(id), 1),
        &kp.public,
    )
    .await
    .unwrap();
    assert_eq!(s.voice_credits, u64::MAX);
    // The largest packable weight: logged (whether it counts is secret).
    let m = sign(
        1,
        &kp.private,
        &Vote {
            option: 2,
            weight: (1 << 50) - 1,
            nonce: 1,
            new_key: None,
        },
        id,
    );
    assert_eq!(
        client::send_message(&w.net, &w.http, id, &m)
            .await
            .unwrap()
            .position,
        0
    );
    let mut big = spec(1 << 50, 20, 30);
    big.name = "too big".into();
    assert_eq!(
        create_as_admin(&w, &big).await,
        (400, "invalid_poll".into())
    );
    for bad in ["abc", "18446744073709551616", "-1"] {
        let r = w
            .http
            .get(format!("{coord}/v1/polls/{bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(status_of(r).await, (400, "malformed_body".into()), "{bad}");
    }
    let r = w
        .http
        .get(format!("{coord}/v1/polls/{}", u64::MAX))
        .send()
        .await
        .unwrap();
    assert_eq!(status_of(r).await, (404, "unknown_poll".into()));
}

/// The receipt with what differs between any two messages (their log
/// position, random submission id, time and commitments to random shares)
/// blanked: what is left is all a voter learns from the coordinator.
fn shape(e: &triad_wire::poll::LogEntry) -> Value {
    let mut v = serde_json::to_value(e).unwrap();
    for k in ["position", "submission_id", "timestamp", "commitments"] {
        v[k] = Value::Null;
    }
    if let Some(kind) = v.get_mut("kind") {
        if kind.get("new_key").is_some() {
            kind["new_key"] = Value::Null;
            kind["nullifier"] = Value::Null;
        }
    }
    if v.get("state_index").is_some() {
        v["state_index"] = Value::Null;
    }
    v
}

/// Anonymous re-keying through the services: a bribed voter deactivates
/// its sold key and re-keys, another voter's deactivation is invalid
/// (signed with a key that is not its registered one) and its re-key
/// therefore adds a key that never counts; the receipts do not differ;
/// re-keys before sign-up closes and a reused secret are refused with
/// nothing logged; the tally equals the oracle over the public log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deactivation_and_rekeying_through_the_services_match_the_oracle() {
    use triad_polls::rekey::{process_poll_with_epochs, Epoch, Rekey};
    let w = World::start().await;
    let id = 11;
    let info = client::create_poll(&w.net, &w.http, w.admin_token(), &spec(id, 8, 22))
        .await
        .unwrap();
    let keys = sign_up(&w, id, 3).await;
    // Before sign-up closes, re-keying is refused and nothing is logged.
    let fresh = Keypair::generate();
    let err = client::rekey(
        &w.net,
        &w.http,
        id,
        &triad_maci::Fr::from(5u64),
        &fresh.public,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("signup_open"), "{err}");

    // Voter 2 sold its key; it deactivates it (valid). Voter 3's
    // deactivation is signed with a key that is not its registered one
    // (invalid, secretly). Both get a receipt of the same shape.
    let (d2, s2) = client::deactivate(&w.net, &w.http, id, 2, &keys[1])
        .await
        .unwrap();
    let s3 = triad_client::random_fr(&mut rand::rngs::OsRng);
    let wrong = Keypair::generate().private;
    let m3 = client::deactivation_message(id, 3, &wrong, &s3).unwrap();
    let d3 = client::send_deactivation(&w.net, &w.http, id, &m3)
        .await
        .unwrap();
    assert_eq!(shape(&d2), shape(&d3));
    assert_eq!((d2.position, d3.position), (0, 1));

    // Two voters the parties do not confirm, so nothing is logged. One
    // whose ticket says "vote" but whose share sets say "deactivate" (so
    // that the log and the parties would disagree, and every tally be
    // refused). One whose share set at party 1 carries a copy of
    // component 2 other than party 2's: each component is bound to one
    // logged commitment that both its holders check, so no voter can make
    // the parties' copies of a logged message disagree (which would abort
    // a malicious-secure tally).
    for case in ["kind", "copies"] {
        use triad_wire::poll::{component_commitment, MessageKind, MessageShares, ShareSet};
        let kind = match case {
            "kind" => MessageKind::Deactivate,
            _ => MessageKind::Vote,
        };
        let mut sets = [0, 1, 2].map(|_| ShareSet::zero(kind.clone()));
        let salt = [3u8; 32];
        let c: [String; 3] =
            std::array::from_fn(|j| component_commitment(id, j, &salt, &sets[j], 0));
        if case == "copies" {
            sets[1].words[1][0] = 1;
        }
        let (sid, token) = open_ticket(&w, id, &c).await;
        let (sid, token) = (sid.as_str(), token.as_str());
        for (p, set) in w.net.parties.iter().zip(&sets) {
            let up = MessageShares::new(sid, token, [salt; 2], set);
            let url = format!("{}/v1/polls/{id}/shares", p.url);
            assert_eq!(
                w.http.post(url).json(&up).send().await.unwrap().status(),
                200
            );
        }
        let url = format!("{}/v1/poll-messages/{sid}/ready", w.net.coordinator);
        assert_eq!(
            post(&w, &url, &serde_json::json!({ "token": token })).await,
            (422, "bad_shares".into()),
            "{case}"
        );
        let info = client::poll_info(&w.net, &w.http, id).await.unwrap();
        assert_eq!(info.messages, 2, "{case}: nothing logged");
    }

    while triad_wire::unix_now() < info.spec.signup_deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let new2 = Keypair::generate();
    let new3 = Keypair::generate();
    let r2 = client::rekey(&w.net, &w.http, id, &s2, &new2.public)
        .await
        .unwrap();
    let r3 = client::rekey(&w.net, &w.http, id, &s3, &new3.public)
        .await
        .unwrap();
    // The next state indexes, whatever will come of them.
    assert_eq!((r2.state_index, r3.state_index), (Some(4), Some(5)));
    assert_eq!(shape(&r2), shape(&r3));
    // The same secret again: refused publicly, nothing logged.
    let err = client::rekey(&w.net, &w.http, id, &s2, &fresh.public)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nullifier_used"), "{err}");

    // Votes: the briber with the sold key; voter 2 with its new key;
    // voter 3 with its new key (never counts) and its old one (counts: its
    // deactivation was invalid); voter 1.
    let v = |option, weight| Vote {
        option,
        weight,
        nonce: 1,
        new_key: None,
    };
    let plan = [
        sign(2, &keys[1], &v(1, 9), id),
        sign(4, &new2.private, &v(2, 5), id),
        sign(5, &new3.private, &v(1, 3), id),
        sign(3, &keys[2], &v(0, 2), id),
        sign(1, &keys[0], &v(0, 3), id),
    ];
    let mut logged = Vec::new();
    for m in &plan {
        logged.push(client::send_message(&w.net, &w.http, id, m).await.unwrap());
    }
    while triad_wire::unix_now() < info.spec.voting_deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let tally = wait_tally(&w, id).await;
    let t = &tally.tally;
    assert_eq!(t.votes, vec![3 + 2, 0, 5]);
    assert_eq!((t.deactivations, t.rekeys, t.messages), (2, 2, 9));
    // (The mislabelled message above was never logged, so it is not here.)

    // The oracle over the public log (one epoch), with the secrets.
    let params = info.spec.params().unwrap();
    let signups: Vec<Signup> = w
        .http
        .get(format!("{}/v1/polls/{id}/signups", w.net.coordinator))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let oracle_signups = oracle_signups(&signups);
    let m2 = client::deactivation_message(id, 2, &keys[1], &s2).unwrap();
    let at = |m: &Message, t: u64| Message {
        timestamp: t,
        ..m.clone()
    };
    let epoch = Epoch {
        deactivations: vec![at(&m2, d2.timestamp), at(&m3, d3.timestamp)],
        rekeys: vec![
            Rekey {
                secret: s2,
                new_key: new2.public,
                timestamp: r2.timestamp,
            },
            Rekey {
                secret: s3,
                new_key: new3.public,
                timestamp: r3.timestamp,
            },
        ],
    };
    let votes: Vec<Message> = plan
        .iter()
        .zip(&logged)
        .map(|(m, e)| at(m, e.timestamp))
        .collect();
    let (oracle, epochs, _) = process_poll_with_epochs(&params, &oracle_signups, &[epoch], &votes);
    assert_eq!(epochs[0].deactivations, vec![true, false]);
    assert_eq!(epochs[0].rekeys, vec![Ok((4, true)), Ok((5, false))]);
    assert_eq!(t.tally(), oracle.tally);
}

/// A party that keeps, under the logged commitments, a copy of a voter's
/// component other than the one the voter sent (what a party that lies
/// about its components holds): with the parties' poll jobs malicious,
/// the tally's share-set check aborts instead of dropping the vote. The
/// honest parties report the cheating, the coordinator lists it for the
/// poll, and no tally is signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_party_holding_another_copy_stops_the_tally_instead_of_dropping_the_vote() {
    use rand::RngCore;
    use triad_wire::poll::{component_commitment, holder_key, MessageShares, ShareSet};
    let w = World::start().await;
    assert_eq!(w.security(), triad_mpc::Security::Malicious);
    let id = 21;
    client::create_poll(&w.net, &w.http, w.admin_token(), &spec(id, 4, 9))
        .await
        .unwrap();
    let keys = sign_up(&w, id, 1).await;
    let vote = Vote {
        option: 1,
        weight: 3,
        nonce: 1,
        new_key: None,
    };
    let plain = triad_polls::mpc::encode(&sign(1, &keys[0], &vote, id)).unwrap();
    let views = triad_polls::mpc::share_messages(&[plain], &mut rand::rngs::OsRng);
    let sets = views.map(|v| ShareSet::vote(&v));
    let salts: [[u8; 32]; 3] = std::array::from_fn(|_| {
        let mut s = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut s);
        s
    });
    let c: [String; 3] =
        std::array::from_fn(|j| component_commitment(id, j, &salts[j], &sets[j], 0));
    let (sid, token) = open_ticket(&w, id, &c).await;
    let (sid, token) = (sid.as_str(), token.as_str());
    // Parties 0 and 2 get the voter's sets; party 1 stores another copy of
    // component 2 under the commitments the coordinator will log.
    for i in [0, 2] {
        let up = MessageShares::new(sid, token, [salts[i], salts[(i + 1) % 3]], &sets[i]);
        let url = format!("{}/v1/polls/{id}/shares", w.net.parties[i].url);
        assert_eq!(
            w.http.post(url).json(&up).send().await.unwrap().status(),
            200
        );
    }
    let mut other = sets[1].clone();
    other.words[1][0] ^= 1;
    w.party_state(1)
        .store
        .put_message_shares(
            id,
            sid,
            &triad_party::service::hash_token(token),
            &holder_key(&c, 1),
            &other,
            3_600_000,
            1000,
        )
        .unwrap();
    let url = format!("{}/v1/poll-messages/{sid}/ready", w.net.coordinator);
    assert_eq!(
        post(&w, &url, &serde_json::json!({ "token": token }))
            .await
            .0,
        200,
        "logged: every party confirms"
    );
    // After the deadline: the tally aborts, reported by an honest party.
    let start = Instant::now();
    let report = loop {
        let st = w.coordinator_status().await;
        let found = st["cheating_detected"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["poll_id"] == id).cloned());
        if let Some(r) = found {
            break r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "no report: {st}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        report["what"]
            .as_str()
            .unwrap_or_default()
            .contains("input consistency"),
        "{report}"
    );
    assert!(client::fetch_tally(&w.net, &w.http, id).await.is_err());
}
