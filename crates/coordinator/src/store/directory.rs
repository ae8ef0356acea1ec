//! The directory entries of studies and polls (docs/directory.md,
//! "Services"): the salt each id derives from, and the publication
//! counter. An entry is written in the same transaction as its study or
//! poll ([`crate::store::CoordinatorStore::create_study`],
//! [`crate::store::PollStore::create_poll`]), so a study never exists
//! without its id; studies and polls from before the directory get theirs
//! from [`DirectoryStore::ensure_directory_entry`].
//!
//! Guarantees: an entry's salt (hence its id) never changes once stored;
//! [`DirectoryStore::next_directory_seq`] never returns a number twice,
//! also across restarts (a record's `seq` only grows).

pub use triad_directory::record::Kind;

use super::StoreError;

/// A study's or poll's directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryEntry {
    pub kind: Kind,
    /// The study id, or the poll id in decimal.
    pub name: String,
    pub id_salt: [u8; 16],
    /// The directory id (64 hex) the coordinator key and the salt derive.
    pub directory_id: String,
    /// The last sequence number taken (0: none yet).
    pub seq: u64,
    /// When a record was last published (unix seconds), if ever.
    pub published_at: Option<u64>,
}

/// `"study"` or `"poll"`, as stored.
pub fn kind_str(k: Kind) -> &'static str {
    match k {
        Kind::Study => "study",
        Kind::Poll => "poll",
    }
}

pub fn parse_kind(s: &str) -> Result<Kind, StoreError> {
    match s {
        "study" => Ok(Kind::Study),
        "poll" => Ok(Kind::Poll),
        _ => Err(StoreError::Corrupt(format!("directory kind {s:?}"))),
    }
}

pub trait DirectoryStore: Send + Sync + 'static {
    /// Stores `e` unless its (kind, name) has an entry; returns the stored
    /// entry either way.
    fn ensure_directory_entry(&self, e: &DirectoryEntry) -> Result<DirectoryEntry, StoreError>;

    fn directory_entry(&self, kind: Kind, name: &str)
        -> Result<Option<DirectoryEntry>, StoreError>;

    /// Every entry, studies first, in name order.
    fn directory_entries(&self) -> Result<Vec<DirectoryEntry>, StoreError>;

    /// Takes the entry's next sequence number, durably.
    fn next_directory_seq(&self, kind: Kind, name: &str) -> Result<u64, StoreError>;

    /// Records a publication at `at`.
    fn directory_published(&self, kind: Kind, name: &str, at: u64) -> Result<(), StoreError>;
}
