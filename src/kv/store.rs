//! Where dumps, manifests and verify records live: a local file or an object in R2 (through
//! its S3 API, with the `object_store` crate).
//!
//! Owns: parsing `r2://bucket/key` locations (with the `<prefix>` and `<timestamp>`
//! placeholders), the R2 client built from `R2_ENDPOINT`, `R2_ACCESS_KEY_ID` and
//! `R2_SECRET_ACCESS_KEY`, bounded reads, atomic local writes, and the side-file names beside
//! a dump. Does not own: what the bytes mean (see [`super::record`]). Tests hand in
//! [`ObjectStores::Fixed`] with an `object_store::memory::InMemory`, so R2 and the test take
//! the same code path.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A location that is not a path nor `r2://bucket/key`.
    #[error("invalid location '{0}': expected a file path or r2://bucket/path/to/file.ndjson")]
    Location(String),
    /// R2 credentials missing from the environment.
    #[error(
        "{0} is not set: R2 needs R2_ENDPOINT (https://<account>.r2.cloudflarestorage.com), R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY"
    )]
    MissingEnv(&'static str),
    /// A local file that is not there or not readable.
    #[error("cannot read '{path}': {source}")]
    Read {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// A local file that cannot be written.
    #[error("cannot write '{path}': {source}")]
    Write {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// An object that does not exist.
    #[error("'{0}' does not exist")]
    NotFound(String),
    /// A file or object larger than what is read back.
    #[error("'{location}' is {size} bytes, more than the {limit} read back")]
    TooLarge {
        /// The location.
        location: String,
        /// Its size.
        size: u64,
        /// The cap.
        limit: u64,
    },
    /// R2 (or the S3 client) failed.
    #[error("R2 '{location}': {reason}")]
    Remote {
        /// The location.
        location: String,
        /// The error.
        reason: String,
    },
}

impl StoreError {
    /// Whether the user's input is at fault (a bad location, a missing or too large file).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            StoreError::Location(_)
                | StoreError::Read { .. }
                | StoreError::NotFound(_)
                | StoreError::TooLarge { .. }
        )
    }
}

/// A file or an R2 object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local file.
    Local(PathBuf),
    /// `r2://bucket/key`.
    R2 {
        /// Bucket.
        bucket: String,
        /// Object key.
        key: String,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::R2 { bucket, key } => write!(f, "r2://{bucket}/{key}"),
        }
    }
}

impl Location {
    /// Parse a path or `r2://bucket/key`.
    pub fn parse(s: &str) -> Result<Location, StoreError> {
        let Some(rest) = s.strip_prefix("r2://") else {
            if s.is_empty() || s.contains("://") {
                return Err(StoreError::Location(s.to_owned()));
            }
            return Ok(Location::Local(PathBuf::from(s)));
        };
        match rest.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(Location::R2 {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            }),
            _ => Err(StoreError::Location(s.to_owned())),
        }
    }

    /// A dump destination: `<prefix>` and `<timestamp>` replaced, and a trailing `/` completed
    /// with `<prefix>/<timestamp>.ndjson`.
    pub fn dump_target(s: &str, prefix: &str, timestamp: &str) -> Result<Location, StoreError> {
        let mut t = s.to_owned();
        if t.ends_with('/') {
            t.push_str("<prefix>/<timestamp>.ndjson");
        }
        let prefix = if prefix.is_empty() { "all" } else { prefix };
        let t = t
            .replace("<prefix>", prefix)
            .replace("<timestamp>", timestamp);
        Location::parse(&t)
    }

    /// The location beside this one with `suffix` appended (`d.ndjson` → `d.ndjson.manifest.json`).
    pub fn sibling(&self, suffix: &str) -> Location {
        match self {
            Location::Local(p) => {
                let mut s = p.as_os_str().to_owned();
                s.push(suffix);
                Location::Local(PathBuf::from(s))
            }
            Location::R2 { bucket, key } => Location::R2 {
                bucket: bucket.clone(),
                key: format!("{key}{suffix}"),
            },
        }
    }
}

/// How R2 buckets are reached.
#[derive(Clone)]
pub enum ObjectStores {
    /// R2 through its S3 API, credentials from the environment.
    R2Env,
    /// One store for every bucket (tests: `object_store::memory::InMemory`).
    Fixed(Arc<dyn ObjectStore>),
}

impl fmt::Debug for ObjectStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectStores::R2Env => f.write_str("R2Env"),
            ObjectStores::Fixed(_) => f.write_str("Fixed"),
        }
    }
}

impl ObjectStores {
    fn bucket(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, StoreError> {
        match self {
            ObjectStores::Fixed(s) => Ok(s.clone()),
            ObjectStores::R2Env => {
                let var = |name: &'static str| {
                    std::env::var(name)
                        .ok()
                        .filter(|v| !v.is_empty())
                        .ok_or(StoreError::MissingEnv(name))
                };
                // R2 wants region "auto" and path-style requests; object_store adds no
                // checksum headers unless asked, which R2 would refuse.
                let s3 = object_store::aws::AmazonS3Builder::new()
                    .with_endpoint(var("R2_ENDPOINT")?)
                    .with_access_key_id(var("R2_ACCESS_KEY_ID")?)
                    .with_secret_access_key(var("R2_SECRET_ACCESS_KEY")?)
                    .with_region("auto")
                    .with_bucket_name(bucket)
                    .build()
                    .map_err(|e| StoreError::Remote {
                        location: format!("r2://{bucket}"),
                        reason: e.to_string(),
                    })?;
                Ok(Arc::new(s3))
            }
        }
    }

    /// Read a whole file or object of at most `limit` bytes.
    pub async fn read(&self, loc: &Location, limit: u64) -> Result<Bytes, StoreError> {
        match loc {
            Location::Local(p) => read_local(p, limit),
            Location::R2 { bucket, key } => {
                let store = self.bucket(bucket)?;
                let remote = |e: object_store::Error| match e {
                    object_store::Error::NotFound { .. } => StoreError::NotFound(loc.to_string()),
                    e => StoreError::Remote {
                        location: loc.to_string(),
                        reason: e.to_string(),
                    },
                };
                let got = store
                    .get(&object_store::path::Path::from(key.as_str()))
                    .await
                    .map_err(remote)?;
                if got.meta.size > limit {
                    return Err(StoreError::TooLarge {
                        location: loc.to_string(),
                        size: got.meta.size,
                        limit,
                    });
                }
                got.bytes().await.map_err(remote)
            }
        }
    }

    /// Whether a file or object exists (R2 errors other than not-found are errors).
    pub async fn exists(&self, loc: &Location) -> Result<bool, StoreError> {
        match self.read(loc, MAX_PROBE).await {
            Ok(_) | Err(StoreError::TooLarge { .. }) => Ok(true),
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(StoreError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Write a whole file (atomically: a temporary file renamed) or object.
    pub async fn write(&self, loc: &Location, bytes: Bytes) -> Result<(), StoreError> {
        match loc {
            Location::Local(p) => write_local(p, &bytes),
            Location::R2 { bucket, key } => {
                let store = self.bucket(bucket)?;
                store
                    .put(
                        &object_store::path::Path::from(key.as_str()),
                        PutPayload::from(bytes),
                    )
                    .await
                    .map(|_| ())
                    .map_err(|e| StoreError::Remote {
                        location: loc.to_string(),
                        reason: e.to_string(),
                    })
            }
        }
    }
}

/// `exists` reads at most this much (side files are small; a dump is only probed by its manifest).
const MAX_PROBE: u64 = 64 * 1024 * 1024;

/// Read a local file of at most `limit` bytes.
pub fn read_local(p: &Path, limit: u64) -> Result<Bytes, StoreError> {
    let err = |source| StoreError::Read {
        path: p.display().to_string(),
        source,
    };
    let size = std::fs::metadata(p).map_err(err)?.len();
    if size > limit {
        return Err(StoreError::TooLarge {
            location: p.display().to_string(),
            size,
            limit,
        });
    }
    crate::resources::read_capped(p, limit)
        .map(Bytes::from)
        .map_err(err)
}

/// Write a local file atomically: a temporary file beside it, then a rename.
pub fn write_local(p: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let err = |source| StoreError::Write {
        path: p.display().to_string(),
        source,
    };
    let mut tmp = p.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).map_err(err)?;
    std::fs::rename(&tmp, p).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_complete() {
        assert_eq!(
            Location::parse("r2://b/backups/x.ndjson").unwrap(),
            Location::R2 {
                bucket: "b".into(),
                key: "backups/x.ndjson".into()
            }
        );
        assert!(Location::parse("r2://b").is_err());
        assert!(Location::parse("s3://b/k").is_err());
        let t =
            Location::dump_target("r2://b/backups/", "master:", "2026-12-01T21-00-00Z").unwrap();
        assert_eq!(
            t.to_string(),
            "r2://b/backups/master:/2026-12-01T21-00-00Z.ndjson"
        );
        assert_eq!(
            Location::parse("d.ndjson")
                .unwrap()
                .sibling(".manifest.json"),
            Location::Local("d.ndjson.manifest.json".into())
        );
    }

    #[tokio::test]
    async fn in_memory_objects_round_trip_with_a_size_cap() {
        let stores = ObjectStores::Fixed(Arc::new(object_store::memory::InMemory::new()));
        let loc = Location::parse("r2://b/k.ndjson").unwrap();
        assert!(!stores.exists(&loc).await.unwrap());
        stores
            .write(&loc, Bytes::from_static(b"hello"))
            .await
            .unwrap();
        assert_eq!(stores.read(&loc, 5).await.unwrap(), "hello");
        assert!(matches!(
            stores.read(&loc, 4).await,
            Err(StoreError::TooLarge { .. })
        ));
        assert!(stores.exists(&loc).await.unwrap());
    }
}
