//! The service PKI of a devnet: one CA, one HTTPS leaf per service for
//! 127.0.0.1 / localhost. Production deployments bring their own
//! certificates; every service only needs a cert and key file.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

use crate::config::write_atomic;

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A CA that can issue leaves.
pub struct ServiceCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// Paths of one issued leaf.
#[derive(Clone, Debug)]
pub struct LeafFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    // Keys and certificates alike are 0600 from creation.
    write_atomic(path, bytes).map_err(|source| PkiError::Io {
        path: path.into(),
        source,
    })
}

impl ServiceCa {
    /// A fresh CA; writes its certificate to `ca_pem`.
    pub fn create(ca_pem: &Path) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "triad devnet service CA");
        let cert = p.self_signed(&key)?;
        write(ca_pem, cert.pem().as_bytes())?;
        Ok(Self { cert, key })
    }

    /// Issues a leaf for 127.0.0.1 and localhost into `dir/<name>.{pem,key}`.
    pub fn issue(&self, dir: &Path, name: &str) -> Result<LeafFiles, PkiError> {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])?;
        p.distinguished_name.push(DnType::CommonName, name);
        let cert = p.signed_by(&key, &self.cert, &self.key)?;
        let files = LeafFiles {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        };
        write(&files.key, key.serialize_pem().as_bytes())?;
        write(&files.cert, cert.pem().as_bytes())?;
        Ok(files)
    }
}
