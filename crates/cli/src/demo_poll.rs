//! `triad demo poll`: a devnet, a poll, N voters who attest their accounts
//! through the notary and sign up, vote as secret shares, a briber who
//! bought some voters' keys and votes with them. Half of those voters
//! change their key with a vote of their own (MACI's defence, which
//! overrides the briber's vote though nobody can tell from the log); the
//! other half deactivate the sold key and re-key anonymously, then vote
//! with the new key (docs/polls.md, "Anonymous re-keying"), while the
//! briber keeps voting with the sold one. Prints the tally the three
//! parties signed next to the plaintext oracle's, and what the briber can
//! see.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::BTreeMap;
use triad_attestation::{Attestation, DataSpec};
use triad_client::poll as client;
use triad_client::ContributeOptions;

use triad_maci::{Command, Fr, Keypair, PrivKey, PubKey};
use triad_polls::rekey::{process_poll_with_epochs, Epoch, Rekey};
use triad_polls::{Message, SignUp, Tally};
use triad_wire::poll::{LogEntry, PollMode, PollSpec, Signup, VerifiedTally};
use triad_wire::NetworkConfig;

use crate::demo::{
    datasource_ca, demo_dir, devnet_source, serve_until_signalled, start_devnet, wait_discoverable,
    DemoDevnet,
};
use triad_client::discover::{client_node, network_from_record};
use triad_directory::derive::DirectoryId;
use triad_directory::record::Kind;

#[derive(clap::Args, Debug)]
pub struct DemoPollArgs {
    /// Voters (each an account of the demo data source).
    #[arg(long, default_value_t = 200)]
    pub voters: usize,
    /// Exit after printing the results instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
    /// End with one JSON line of the results.
    #[arg(long)]
    pub json: bool,
    /// Devnet directory (default: a fresh temporary one).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Seconds from the poll's creation to its (sign-up and voting)
    /// deadline; default: enough for the voters on a slow machine.
    #[arg(long)]
    pub deadline_secs: Option<u64>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// The poll jobs' mode (`triad devnet --poll-security`): `malicious`
    /// checks every phase of the tally and the re-keying epochs.
    #[arg(long, value_enum, default_value_t = triad_party::SecurityArg::SemiHonest)]
    pub poll_security: triad_party::SecurityArg,
}

const POLL_ID: u64 = 1;
const OPTIONS: u64 = 4;
const CREDITS: u64 = 100;
/// The option the briber buys votes for.
const BRIBER_OPTION: u64 = 0;

/// Who does what, decided before anything is sent (seeded).
struct Plan {
    /// Per voter: (option, weight) of its own vote.
    choice: Vec<(u64, u64)>,
    /// Sold their key to the briber.
    sold: Vec<bool>,
    /// Sold, then changed their key with their own vote.
    resists: Vec<bool>,
    /// Sold, then deactivated the sold key and re-keyed anonymously.
    rekeys: Vec<bool>,
}

fn plan(n: usize) -> Plan {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let choice = (0..n)
        .map(|_| (rng.gen_range(0..OPTIONS), rng.gen_range(1..=10)))
        .collect();
    // About one voter in five sells; half of those resist.
    let sold: Vec<bool> = (0..n).map(|i| i % 5 == 1).collect();
    let resists = (0..n).map(|i| sold[i] && i % 10 == 1).collect();
    let rekeys = (0..n).map(|i| sold[i] && i % 10 == 6).collect();
    Plan {
        choice,
        sold,
        resists,
        rekeys,
    }
}

/// One thing a voter sends to the poll's log.
#[derive(Clone)]
enum Item {
    Vote(Message),
    Deactivate(Message),
    Rekey(Fr, PubKey),
}

async fn send_item(
    net: &NetworkConfig,
    http: &reqwest::Client,
    item: &Item,
) -> Result<LogEntry, triad_client::ClientError> {
    match item {
        Item::Vote(m) => client::send_message(net, http, POLL_ID, m).await,
        Item::Deactivate(m) => client::send_deactivation(net, http, POLL_ID, m).await,
        Item::Rekey(s, k) => client::rekey(net, http, POLL_ID, s, k).await,
    }
}

pub fn run(args: DemoPollArgs) -> anyhow::Result<()> {
    if args.voters == 0 {
        bail!("--voters must be at least 1");
    }
    let (_scratch, dir) = demo_dir(&args.data_dir, "demo-poll", !args.exit);
    tokio::runtime::Runtime::new()?.block_on(demo(args, dir))
}

fn sign(index: u64, key: &PrivKey, option: u64, weight: u64, new_key: Option<&Keypair>) -> Message {
    let k = key.signing_key();
    let command = Command {
        state_index: index,
        vote_option_index: option,
        new_vote_weight: weight,
        nonce: 1,
        poll_id: POLL_ID,
        new_pub_key: new_key.map_or_else(|| k.public_key(), |n| n.public),
        salt: triad_client::random_fr(&mut rand::rngs::OsRng),
    };
    Message::sign(command, &k, 0).expect("the demo's commands pack")
}

/// Sends `msgs` with at most `concurrency` in flight; returns the logged
/// ones with their receipts, and the errors.
async fn send_all(
    net: &NetworkConfig,
    http: &reqwest::Client,
    msgs: Vec<Item>,
    concurrency: usize,
) -> (Vec<(LogEntry, Item)>, Vec<String>) {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let tasks: Vec<_> = msgs
        .into_iter()
        .map(|m| {
            let (net, http, sem) = (net.clone(), http.clone(), sem.clone());
            tokio::spawn(async move {
                let _permit = sem.acquire_owned().await;
                send_item(&net, &http, &m).await.map(|e| (e, m))
            })
        })
        .collect();
    let (mut ok, mut errors) = (Vec::new(), Vec::new());
    for t in tasks {
        match t.await {
            Ok(Ok(x)) => ok.push(x),
            Ok(Err(e)) => errors.push(e.to_string()),
            Err(e) => errors.push(e.to_string()),
        }
    }
    (ok, errors)
}

async fn attest_all(
    net: &NetworkConfig,
    spec: &DataSpec,
    api_keys: &[String],
    concurrency: usize,
) -> anyhow::Result<Vec<Attestation>> {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let tasks: Vec<_> = api_keys
        .iter()
        .map(|k| {
            let (net, spec, k, sem) = (net.clone(), spec.clone(), k.clone(), sem.clone());
            tokio::spawn(async move {
                let _permit = sem.acquire_owned().await;
                client::attest_for_poll(&net, POLL_ID, &spec, &k, &ContributeOptions::default())
                    .await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await?.context("attesting a voter's account")?);
    }
    Ok(out)
}

async fn wait_tally(net: &NetworkConfig, http: &reqwest::Client) -> anyhow::Result<VerifiedTally> {
    let give_up = Instant::now() + Duration::from_secs(900);
    loop {
        match client::fetch_tally(net, http, POLL_ID).await {
            Ok(t) => return Ok(t),
            Err(e) if Instant::now() < give_up => {
                tracing::debug!(error = %e, "no tally yet");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e).context("waiting for the tally"),
        }
    }
}

/// The consumer API serves the same tally (verified there too).
async fn api_tally(net: &NetworkConfig, http: &reqwest::Client) -> anyhow::Result<VerifiedTally> {
    let url = format!("{}/v1/polls/{POLL_ID}/tally", net.api.trim_end_matches('/'));
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        let r = http.get(&url).send().await;
        match r {
            Ok(r) if r.status().is_success() => return Ok(r.json().await?),
            _ if Instant::now() < give_up => tokio::time::sleep(Duration::from_millis(300)).await,
            Ok(r) => bail!("the consumer API answered {} for the tally", r.status()),
            Err(e) => bail!("the consumer API: {e}"),
        }
    }
}

/// The voters' plan, state indexes, sign-up keys and fresh keys.
struct Voters<'a> {
    plan: &'a Plan,
    index: &'a [u64],
    keys: &'a [Keypair],
    fresh: &'a [Keypair],
}

/// Once sign-up has closed: each re-keying voter adds its fresh key with
/// its deactivation's secret, learns the new key's state index from the
/// receipt and votes with it; the briber votes again with each sold key.
/// Returns what was logged and the refusals.
async fn rekey_and_vote(
    net: &NetworkConfig,
    http: &reqwest::Client,
    v: &Voters<'_>,
    secrets: &[Fr],
    concurrency: usize,
) -> anyhow::Result<(Vec<(LogEntry, Item)>, Vec<String>)> {
    let n = v.index.len();
    let rekeying: Vec<Item> = (0..n)
        .filter(|&i| v.plan.rekeys[i])
        .map(|i| Item::Rekey(secrets[i], v.fresh[i].public))
        .collect();
    eprintln!("triad demo poll: sending {} re-keys", rekeying.len());
    let (mut logged, mut errors) = send_all(net, http, rekeying, concurrency).await;
    let mut after = Vec::new();
    for (e, item) in &logged {
        let (Item::Rekey(_, key), Some(new_index)) = (item, e.state_index) else {
            continue;
        };
        let i = (0..n)
            .find(|&i| v.plan.rekeys[i] && v.fresh[i].public == *key)
            .context("a re-key of the plan")?;
        let (o, w) = v.plan.choice[i];
        after.push(Item::Vote(sign(new_index, &v.fresh[i].private, o, w, None)));
        after.push(Item::Vote(sign(
            v.index[i],
            &v.keys[i].private,
            BRIBER_OPTION,
            9,
            None,
        )));
    }
    eprintln!(
        "triad demo poll: sending {} votes with the new keys and the briber's",
        after.len()
    );
    let (ok, err) = send_all(net, http, after, concurrency).await;
    logged.extend(ok);
    errors.extend(err);
    Ok((logged, errors))
}

/// The oracle over the public log, with the deactivations' and re-keys'
/// secrets (which only the voters hold): each epoch's deactivations and
/// re-keys, then the votes.
fn oracle(
    spec: &PollSpec,
    signups: &[Signup],
    logged: &[(LogEntry, Item)],
) -> anyhow::Result<Tally> {
    let params = spec.params()?;
    let signups: Vec<SignUp> = signups
        .iter()
        .map(|s| {
            Ok(SignUp {
                pub_key: s.pub_key.parse().map_err(|e| anyhow::anyhow!("{e}"))?,
                voice_credits: s.voice_credits,
                timestamp: s.timestamp,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let mut logged: Vec<&(LogEntry, Item)> = logged.iter().collect();
    logged.sort_by_key(|(e, _)| e.position);
    let mut epochs: BTreeMap<u64, Epoch> = BTreeMap::new();
    let mut messages = Vec::new();
    for (e, item) in logged {
        let at = |m: &Message| Message {
            timestamp: e.timestamp,
            ..m.clone()
        };
        let epoch = || spec.epoch_of(e.timestamp);
        match item {
            Item::Vote(m) => messages.push(at(m)),
            Item::Deactivate(m) => epochs.entry(epoch()).or_default().deactivations.push(at(m)),
            Item::Rekey(secret, new_key) => epochs.entry(epoch()).or_default().rekeys.push(Rekey {
                secret: *secret,
                new_key: *new_key,
                timestamp: e.timestamp,
            }),
        }
    }
    let epochs: Vec<Epoch> = epochs.into_values().collect();
    Ok(
        process_poll_with_epochs(&params, &signups, &epochs, &messages)
            .0
            .tally,
    )
}

fn tally_json(t: &Tally) -> serde_json::Value {
    json!({ "votes": t.votes, "spent": t.spent, "spent_per_option": t.spent_per_option })
}

async fn demo(args: DemoPollArgs, dir: PathBuf) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let n = args.voters;
    let DemoDevnet {
        mut devnet,
        net,
        http,
        admin,
        truth,
    } = start_devnet(
        &dir,
        n,
        "triad demo poll",
        triad_party::SecurityArg::default(),
        args.poll_security,
        None,
    )
    .await?;
    let api_keys: Vec<String> = truth
        .accounts
        .iter()
        .take(n)
        .map(|a| a.api_key.clone())
        .collect();
    let data_spec = DataSpec {
        field: "balances.ETH".into(),
        scale: 4,
        account_field: "uid".into(),
    };

    // Attestations first (the notary flow is the slow part), then the poll
    // with one deadline for sign-ups and votes, sized for this run.
    eprintln!("triad demo poll: {n} voters attest their accounts through the notary");
    let t_attest = Instant::now();
    let atts = attest_all(&net, &data_spec, &api_keys, args.concurrency).await?;
    let attest_secs = t_attest.elapsed().as_secs_f64();
    let p = plan(n);
    let n_rekeying = p.rekeys.iter().filter(|&&r| r).count();
    let messages = n + p.resists.iter().filter(|&&r| r).count() + 3 * n_rekeying;
    // Sign-ups, deactivations and the first votes before the sign-up
    // deadline; re-keying opens then, and the re-keyed votes follow.
    // (10 s more by default: the voters first find the poll in the
    // directory, once it is published.)
    let window = args
        .deadline_secs
        .unwrap_or(15 + (n as u64 + messages as u64) / 60);
    let signup_deadline = triad_wire::unix_now() + window;
    let deadline = signup_deadline + (window / 2).max(5) + 2 * n_rekeying as u64 / 30;
    let spec = PollSpec {
        id: POLL_ID,
        name: "Which proposal should the DAO fund?".into(),
        vote_options: OPTIONS,
        mode: PollMode::Quadratic,
        signup_deadline,
        voting_deadline: deadline,
        window: triad_polls::DEFAULT_WINDOW,
        voice_credits: CREDITS,
        data_spec,
        source: devnet_source(&net)?,
        rekey_epoch_secs: triad_wire::poll::DEFAULT_REKEY_EPOCH_SECS,
    };
    let info = client::create_poll(&net, &http, admin.trim(), &spec)
        .await
        .context("creating the demo poll")?;
    // The voters are handed the poll's directory id, nothing else: they
    // find its coordinator and parties in the directory, in the record the
    // coordinator signed and the three parties endorsed.
    let id_hex = info
        .directory_id
        .context("the coordinator gave the poll no directory id")?;
    let id = DirectoryId::from_hex(&id_hex).context("the poll's directory id")?;
    devnet.list_directory_id("poll", &POLL_ID.to_string(), &id_hex)?;
    let node = client_node(&devnet.directory()).await?;
    let (record, found_secs) = wait_discoverable(&node, &id, Kind::Poll).await?;
    let vnet = network_from_record(&record, &net.ca_cert, datasource_ca(&net).as_deref())?;
    eprintln!(
        "triad demo poll: the voters found poll {} by its directory id {id_hex} ({found_secs:.1} s \
         after its creation, private lookup); they sign up and vote with the services its \
         verified record names, not from the network description",
        record.body.name
    );

    eprintln!("triad demo poll: sign-ups (deadline in {window} s)");
    let keys: Vec<Keypair> = (0..n).map(|_| Keypair::generate()).collect();
    let mut index = vec![0u64; n];
    for (i, (att, kp)) in atts.into_iter().zip(&keys).enumerate() {
        index[i] = client::signup_attested(&vnet, &http, POLL_ID, att, &kp.public)
            .await
            .with_context(|| format!("signing up voter {i}"))?
            .state_index;
    }

    // Honest votes; the briber's votes with the keys it bought; the voters
    // who resist MACI's way change their key with their own vote; those
    // who re-key deactivate the sold key (keeping a secret each).
    let t_vote = Instant::now();
    let honest: Vec<Item> = (0..n)
        .filter(|&i| !p.sold[i])
        .map(|i| {
            Item::Vote(sign(
                index[i],
                &keys[i].private,
                p.choice[i].0,
                p.choice[i].1,
                None,
            ))
        })
        .collect();
    let bribed: Vec<Item> = (0..n)
        .filter(|&i| p.sold[i])
        .map(|i| Item::Vote(sign(index[i], &keys[i].private, BRIBER_OPTION, 10, None)))
        .collect();
    let fresh: Vec<Keypair> = (0..n).map(|_| Keypair::generate()).collect();
    let resisting: Vec<Item> = (0..n)
        .filter(|&i| p.resists[i])
        .map(|i| {
            let (o, w) = p.choice[i];
            Item::Vote(sign(index[i], &keys[i].private, o, w, Some(&fresh[i])))
        })
        .collect();
    let secrets: Vec<Fr> = (0..n)
        .map(|_| triad_client::random_fr(&mut rand::rngs::OsRng))
        .collect();
    let deactivating: Vec<Item> = (0..n)
        .filter(|&i| p.rekeys[i])
        .map(|i| {
            client::deactivation_message(POLL_ID, index[i], &keys[i].private, &secrets[i])
                .map(Item::Deactivate)
        })
        .collect::<Result<_, _>>()?;
    let (n_bribed, n_resisting) = (bribed.len(), resisting.len());
    let mut logged = Vec::new();
    let mut errors = Vec::new();
    let mut briber_receipts = 0;
    for (phase, msgs) in [
        ("votes", honest),
        ("briber", bribed),
        ("key changes", resisting),
        ("deactivations", deactivating),
    ] {
        eprintln!("triad demo poll: sending {} {phase}", msgs.len());
        let (ok, err) = send_all(&vnet, &http, msgs, args.concurrency).await;
        if phase == "briber" {
            briber_receipts = ok.len();
        }
        logged.extend(ok);
        errors.extend(err);
    }

    eprintln!("triad demo poll: waiting for sign-up to close, then re-keys");
    while triad_wire::unix_now() < signup_deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let voters = Voters {
        plan: &p,
        index: &index,
        keys: &keys,
        fresh: &fresh,
    };
    let (ok, err) = rekey_and_vote(&vnet, &http, &voters, &secrets, args.concurrency).await?;
    let n_rekeyed = ok
        .iter()
        .filter(|(_, item)| matches!(item, Item::Rekey(..)))
        .count();
    logged.extend(ok);
    errors.extend(err);
    let vote_secs = t_vote.elapsed().as_secs_f64();
    for e in errors.iter().take(5) {
        eprintln!("  refused: {e}");
    }

    eprintln!("triad demo poll: waiting for the deadline, then the three parties' tally");
    while triad_wire::unix_now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // From the deadline to the verified tally at the coordinator.
    let t_tally = Instant::now();
    let tally = wait_tally(&net, &http).await?;
    let tally_secs = t_tally.elapsed().as_secs_f64();
    let signups: Vec<Signup> = http
        .get(format!("{}/v1/polls/{POLL_ID}/signups", net.coordinator))
        .send()
        .await?
        .json()
        .await?;
    let expected = oracle(&spec, &signups, &logged)?;
    let got = tally.tally.tally();
    let matches = got == expected;
    let api = api_tally(&net, &http).await?;
    let api_matches = api.tally == tally.tally;

    println!("option  tally (signed by all three)  oracle");
    for o in 0..OPTIONS as usize {
        println!(
            "{o:>6}  {:>10} votes {:>6} cr  {:>6} votes {:>6} cr",
            got.votes[o], got.spent_per_option[o], expected.votes[o], expected.spent_per_option[o]
        );
    }
    println!("credits spent: {} (oracle {})", got.spent, expected.spent);
    // The tally signs the mode its jobs ran in.
    println!(
        "processed {} (docs/security.md)",
        triad_wire::release::SecurityMode::describe(tally.tally.security),
    );
    println!(
        "the briber bought {n_bribed} keys and voted for option {BRIBER_OPTION} with each: all \
         {briber_receipts} of its messages were logged (its receipts); {n_resisting} of those voters \
         then changed their key with their own vote, and {n_rekeyed} deactivated the sold key and \
         re-keyed anonymously (the briber voted again with those keys). The public log shows {} \
         messages as commitments to secret shares: nothing in it, nor in any single party's view, \
         says which of the briber's votes count, which deactivation was valid, or which re-key \
         carries credits.",
        logged.len()
    );
    println!(
        "the voters found the poll by its directory id {id_hex} (its record signed by the \
         coordinator and endorsed by the three parties, verified locally)"
    );
    println!(
        "{} voters, {} messages logged, {} refused; tally {} the oracle; the consumer API serves {}",
        n,
        logged.len(),
        errors.len(),
        if matches { "equals" } else { "DIFFERS FROM" },
        if api_matches { "the same tally" } else { "A DIFFERENT TALLY" }
    );
    if args.json {
        println!(
            "{}",
            json!({
                "voters": n,
                "messages": logged.len(),
                "refused": errors.len(),
                "bribed": n_bribed,
                "resisted": n_resisting,
                "deactivations": tally.tally.deactivations,
                "rekeys": tally.tally.rekeys,
                "tally": tally_json(&got),
                "oracle_tally": tally_json(&expected),
                "match": matches,
                "api_match": api_matches,
                "security": tally.tally.security,
                "seconds": t0.elapsed().as_secs_f64(),
                "attest_seconds": attest_secs,
                "vote_seconds": vote_secs,
                "tally_seconds": tally_secs,
                "directory_id": id_hex,
                "discovered": true,
                "data_dir": dir,
            })
        );
    }
    serve_until_signalled(&mut devnet, args.exit).await?;
    if !matches || !api_matches {
        bail!("the tally does not match the oracle");
    }
    Ok(())
}
