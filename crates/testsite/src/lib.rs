//! A stand-in for a provider's data source, for devnets, demos, tests and
//! benchmarks: [`datasource`], an HTTPS account API with deterministic
//! accounts and its own CA. Kept out of `triad-notary` and
//! `triad-attestation` so that no service links it.
#![forbid(unsafe_code)]

pub mod datasource;

pub use datasource::{
    ground_truth, launch_datasource, Account, DatasourceConfig, DatasourceInfo, GroundTruth,
    DATASOURCE_INFO_FILE, GROUND_TRUTH_FILE,
};
