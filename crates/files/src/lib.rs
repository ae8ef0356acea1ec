//! Private files and directories, the one place every triad crate goes
//! through to write a secret or a database: key files, tokens, shares,
//! ground truth, API keys.
//!
//! - [`restrict_umask`]: a process-wide umask of 077, set first thing by
//!   every service, so files other libraries create (SQLite's database,
//!   WAL and shared-memory files) are 0600 from the start;
//! - [`private_dir`]: a directory created 0700 (and an existing one
//!   tightened to 0700);
//! - [`write_private`]: a file written atomically (temporary file created
//!   0600, fsync, rename, fsync of the directory): a crash leaves the old
//!   contents or the new, never a half-written or world-readable file;
//! - [`check_private`]: the start-up check that nothing in a data directory
//!   is readable by other users.
#![forbid(unsafe_code)]

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a data directory is refused.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is accessible to other users (mode {mode:04o}); \
         run `chmod go-rwx {path}` (data directories are 0700, files 0600)"
    )]
    NotPrivate { path: PathBuf, mode: u32 },
    #[error("{path} is owned by uid {owner}, not by this process's uid {uid}")]
    WrongOwner { path: PathBuf, owner: u32, uid: u32 },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FilesError + '_ {
    move |source| FilesError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl From<FilesError> for std::io::Error {
    fn from(e: FilesError) -> Self {
        let kind = match &e {
            FilesError::Io { source, .. } => source.kind(),
            _ => std::io::ErrorKind::PermissionDenied,
        };
        std::io::Error::new(kind, e.to_string())
    }
}

/// Sets the process umask to 077: every file created afterwards, by any
/// library, is at most 0600 and every directory at most 0700.
pub fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Creates `dir` (and missing parents) with mode 0700; an existing `dir`
/// owned by this user is tightened to 0700. Errors name the path.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    Ok(private_dir_inner(dir)?)
}

fn private_dir_inner(dir: &Path) -> Result<(), FilesError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    let meta = std::fs::metadata(dir).map_err(io(dir))?;
    if meta.permissions().mode() & 0o077 != 0 {
        check_owner(dir, &meta)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    Ok(())
}

fn check_owner(path: &Path, meta: &std::fs::Metadata) -> Result<(), FilesError> {
    let uid = rustix::process::getuid().as_raw();
    if meta.uid() != uid {
        return Err(FilesError::WrongOwner {
            path: path.to_path_buf(),
            owner: meta.uid(),
            uid,
        });
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically with mode 0600 (see the module
/// docs). Errors name the path.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    Ok(write_private_inner(path, bytes)?)
}

fn write_private_inner(path: &Path, bytes: &[u8]) -> Result<(), FilesError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        // A leftover temporary file of a crashed run may have other bits.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates `path` empty with mode 0600 unless it exists: call it before a
/// library (SQLite) opens a file it would otherwise create world-readable.
/// SQLite gives its `-wal` and `-shm` files the database file's mode.
pub fn private_file(path: &Path) -> std::io::Result<()> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io(path)(e).into()),
    }
}

/// Opens `path` for appending (a log), creating it 0600.
pub fn append_private(path: &Path) -> std::io::Result<std::fs::File> {
    Ok(std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?)
}

/// Refuses a data directory in which anything (the directory itself, a
/// file, a subdirectory, to `max_depth` levels) is accessible to other
/// users, or not owned by this user. Symbolic links are not followed.
pub fn check_private(dir: &Path, max_depth: usize) -> Result<(), FilesError> {
    let meta = std::fs::symlink_metadata(dir).map_err(io(dir))?;
    check_owner(dir, &meta)?;
    let mode = meta.permissions().mode();
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    if mode & 0o077 != 0 {
        return Err(FilesError::NotPrivate {
            path: dir.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    if meta.is_dir() && max_depth > 0 {
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            check_private(&entry.path(), max_depth - 1)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("triad-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_files_and_dirs_are_private_from_the_start() {
        let d = scratch("create");
        private_dir(&d.join("a/b")).unwrap();
        assert_eq!(mode(&d.join("a/b")), 0o700);
        let f = d.join("a/b/secret");
        write_private(&f, b"one").unwrap();
        assert_eq!(mode(&f), 0o600);
        write_private(&f, b"two").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(d.join("a/b")).unwrap().count(), 1);
        private_file(&d.join("a/b/db")).unwrap();
        assert_eq!(mode(&d.join("a/b/db")), 0o600);
        let log = append_private(&d.join("a/b/log")).unwrap();
        drop(log);
        assert_eq!(mode(&d.join("a/b/log")), 0o600);
        // An existing loose directory is tightened.
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_start_up_check_names_what_others_can_read() {
        let d = scratch("check");
        private_dir(&d.join("sub")).unwrap();
        write_private(&d.join("sub/db"), b"x").unwrap();
        check_private(&d, 4).unwrap();
        std::fs::set_permissions(d.join("sub/db"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = check_private(&d, 4).unwrap_err();
        assert!(
            matches!(&e, FilesError::NotPrivate { path, mode: 0o644 } if path.ends_with("sub/db")),
            "{e}"
        );
        // Beyond the depth limit nothing is looked at.
        check_private(&d, 1).unwrap();
        std::fs::set_permissions(d.join("sub/db"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(d.join("sub"), std::fs::Permissions::from_mode(0o750)).unwrap();
        assert!(check_private(&d, 4).is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
