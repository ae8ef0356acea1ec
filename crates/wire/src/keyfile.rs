//! Signing keys on disk: the notary's attestation key and each party's
//! release key are ed25519 seeds, one per file, 64 hex digits, private to
//! the service's user (0600). The key type itself is pure
//! (`triad_attestation::NotarySigningKey`); the file is this module's.

use std::path::{Path, PathBuf};

use triad_attestation::{KeyError, NotarySigningKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Key { path: PathBuf, source: KeyError },
}

/// Loads the key from `path`, or creates a fresh one there (mode 0600) if
/// the file does not exist.
pub fn load_or_create_signing_key(path: &Path) -> Result<NotarySigningKey, KeyFileError> {
    let key_err = |source| KeyFileError::Key {
        path: path.into(),
        source,
    };
    let io_err = |source| KeyFileError::Io {
        path: path.into(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => NotarySigningKey::from_key_file(&text).map_err(key_err),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = NotarySigningKey::generate().map_err(key_err)?;
            triad_files::write_private(path, key.to_key_file().as_bytes()).map_err(io_err)?;
            Ok(key)
        }
        Err(e) => Err(io_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notary.key");
        let a = load_or_create_signing_key(&path).unwrap();
        let b = load_or_create_signing_key(&path).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(
            load_or_create_signing_key(&path),
            Err(KeyFileError::Key { .. })
        ));
    }
}
