//! Secrets and blobs as files in the data dir, written atomically (temp
//! file, fsync, rename, fsync of the directory).
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;

use crate::{BlobStore, PortError, Result, SecretSource};

/// Prefix of the environment variables that override secret files.
pub const SECRET_ENV_PREFIX: &str = "SWITCHYARD_SECRET_";

fn io_err(what: &str, e: std::io::Error) -> PortError {
    PortError::Unavailable(format!("{what}: {e}"))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PortError::Unavailable(format!("file task failed: {e}")))?
}

/// Write `bytes` to `path` so that a reader sees the old or the new content,
/// never a mix, and the new content survives a crash once this returns.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| PortError::Invalid(format!("no parent directory: {}", path.display())))?;
    std::fs::create_dir_all(dir).map_err(|e| io_err("create directory", e))?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let result = (|| {
        let mut f = opts.open(&tmp).map_err(|e| io_err("create temp file", e))?;
        f.write_all(bytes).map_err(|e| io_err("write", e))?;
        f.sync_all().map_err(|e| io_err("fsync", e))?;
        std::fs::rename(&tmp, path).map_err(|e| io_err("rename", e))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err("fsync directory", e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", e)),
    }
}

/// Secrets from `SWITCHYARD_SECRET_<NAME>` (name uppercased, every other
/// character than `A-Z0-9` turned into `_`), else from the file
/// `<data_dir>/secrets/<encoded name>` (mode 0600).
#[derive(Debug, Clone)]
pub struct FileSecrets {
    dir: PathBuf,
}

impl FileSecrets {
    pub fn new(dir: PathBuf) -> Self {
        FileSecrets { dir }
    }

    /// The environment variable that overrides secret `name`.
    pub fn env_var(name: &str) -> String {
        crate::secrets::env_name(SECRET_ENV_PREFIX, name)
    }

    /// File of secret `name`: every character outside `[A-Za-z0-9_-]` is
    /// written as `%XX`, so no name can leave the directory.
    fn file(&self, name: &str) -> Result<PathBuf> {
        if name.is_empty() || name.len() > 256 {
            return Err(PortError::Invalid("secret name must be 1-256 bytes".into()));
        }
        let mut file = String::with_capacity(name.len());
        for b in name.bytes() {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                file.push(char::from(b));
            } else {
                file.push_str(&format!("%{b:02X}"));
            }
        }
        Ok(self.dir.join(file))
    }
}

#[async_trait]
impl SecretSource for FileSecrets {
    async fn fetch(&self, name: &str) -> Result<Option<String>> {
        if let Ok(v) = std::env::var(Self::env_var(name)) {
            return Ok(Some(v));
        }
        let path = self.file(name)?;
        let bytes = blocking(move || read_optional(&path)).await?;
        bytes
            .map(|b| {
                String::from_utf8(b)
                    .map_err(|_| PortError::Corrupt("secret file is not UTF-8".into()))
            })
            .transpose()
    }

    async fn store(&self, name: &str, value: &str) -> Result<()> {
        let path = self.file(name)?;
        let value = value.as_bytes().to_vec();
        blocking(move || write_atomic(&path, &value, true)).await
    }

    fn location(&self, name: &str) -> String {
        match self.file(name) {
            Ok(path) => format!("{} (mode 0600)", path.display()),
            Err(_) => format!("secret {name:?}"),
        }
    }
}

/// Blobs as files `<data_dir>/blobs/<bucket>/<key>`.
#[derive(Debug, Clone)]
pub struct DirBlobs {
    dir: PathBuf,
}

impl DirBlobs {
    pub fn new(dir: PathBuf) -> Self {
        DirBlobs { dir }
    }

    fn path(&self, bucket: &str, key: &str) -> Result<PathBuf> {
        let bucket_ok = !bucket.is_empty()
            && bucket.len() <= 63
            && !bucket.starts_with('.')
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-'));
        if !bucket_ok {
            return Err(PortError::Invalid(format!(
                "bucket name must be 1-63 of [a-z0-9.-], not starting with '.': {bucket:?}"
            )));
        }
        if key.is_empty() || key.len() > 1024 || key.ends_with('/') {
            return Err(PortError::Invalid(
                "blob key must be 1-1024 bytes, not ending in '/'".into(),
            ));
        }
        let rel = Path::new(key);
        let normal = rel.components().all(
            |c| matches!(c, Component::Normal(p) if !p.to_string_lossy().starts_with(".tmp-")),
        );
        if !normal || key.contains('\\') {
            return Err(PortError::Invalid(
                "blob key must be a relative path without '.', '..' or empty parts".into(),
            ));
        }
        Ok(self.dir.join(bucket).join(rel))
    }
}

#[async_trait]
impl BlobStore for DirBlobs {
    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(bucket, key)?;
        blocking(move || read_optional(&path)).await
    }

    async fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>) -> Result<()> {
        let path = self.path(bucket, key)?;
        blocking(move || write_atomic(&path, &bytes, false)).await
    }
}
