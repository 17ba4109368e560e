//! Embedded store: one JSON file per object under the data root, written atomically
//! (temp file, fsync, rename, fsync of the directory) so that a `kill -9` at any moment leaves
//! either the old or the new version of each object, never a torn one.

use serde::{de::DeserializeOwned, Serialize};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store: cannot create {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store: cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store: cannot remove {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store: cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store: cannot encode {kind} {id}: {source}")]
    Encode {
        kind: &'static str,
        id: String,
        source: serde_json::Error,
    },
}

/// The kinds of objects kept, each in its own directory.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Network,
    Sandbox,
    /// Endpoints made through the Docker remote driver (their TAP and SandboxKey).
    DockerEndpoint,
}

impl Kind {
    fn dir(self) -> &'static str {
        match self {
            Kind::Network => "networks",
            Kind::Sandbox => "sandboxes",
            Kind::DockerEndpoint => "docker-endpoints",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Kind::Network => "network",
            Kind::Sandbox => "sandbox",
            Kind::DockerEndpoint => "docker endpoint",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// What a load found: the objects, and files that could not be decoded (reported, not fatal).
pub struct Loaded<T> {
    pub items: Vec<T>,
    pub errors: Vec<String>,
}

impl Store {
    pub fn open(data_root: &Path) -> Result<Self, StoreError> {
        let root = data_root.join("state");
        for kind in [Kind::Network, Kind::Sandbox, Kind::DockerEndpoint] {
            let dir = root.join(kind.dir());
            fs::create_dir_all(&dir).map_err(|source| StoreError::CreateDir {
                path: dir.clone(),
                source,
            })?;
        }
        Ok(Store { root })
    }

    fn path(&self, kind: Kind, id: &str) -> PathBuf {
        self.root.join(kind.dir()).join(format!("{id}.json"))
    }

    pub fn save<T: Serialize>(&self, kind: Kind, id: &str, value: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|source| StoreError::Encode {
            kind: kind.name(),
            id: id.to_string(),
            source,
        })?;
        let path = self.path(kind, id);
        let tmp = self.root.join(kind.dir()).join(format!(".{id}.tmp"));
        let write = |p: &Path| -> std::io::Result<()> {
            let mut f = File::create(p)?;
            f.write_all(&bytes)?;
            f.sync_all()
        };
        let wrap = |source| StoreError::Write {
            path: path.clone(),
            source,
        };
        write(&tmp).map_err(wrap)?;
        fs::rename(&tmp, &path).map_err(wrap)?;
        sync_dir(&self.root.join(kind.dir())).map_err(wrap)
    }

    pub fn delete(&self, kind: Kind, id: &str) -> Result<(), StoreError> {
        let path = self.path(kind, id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(StoreError::Remove { path, source }),
        }
        sync_dir(&self.root.join(kind.dir())).map_err(|source| StoreError::Remove { path, source })
    }

    pub fn load<T: DeserializeOwned>(&self, kind: Kind) -> Result<Loaded<T>, StoreError> {
        let dir = self.root.join(kind.dir());
        let rd = fs::read_dir(&dir).map_err(|source| StoreError::Read {
            path: dir.clone(),
            source,
        })?;
        let mut names: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        let mut out = Loaded {
            items: Vec::new(),
            errors: Vec::new(),
        };
        for p in names {
            let bytes = fs::read(&p).map_err(|source| StoreError::Read {
                path: p.clone(),
                source,
            })?;
            match serde_json::from_slice(&bytes) {
                Ok(v) => out.items.push(v),
                Err(e) => out.errors.push(format!("{}: {e}", p.display())),
            }
        }
        Ok(out)
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_delete_roundtrip() {
        let dir = std::env::temp_dir().join(format!("vswitch-store-{}", std::process::id()));
        let store = Store::open(&dir).unwrap();
        store
            .save(Kind::Network, "abc", &serde_json::json!({"a": 1}))
            .unwrap();
        // A leftover temp file from a crash is ignored.
        fs::write(dir.join("state/networks/.def.tmp"), b"{garbage").unwrap();
        let l: Loaded<serde_json::Value> = store.load(Kind::Network).unwrap();
        assert_eq!(l.items, vec![serde_json::json!({"a": 1})]);
        assert!(l.errors.is_empty());
        store.delete(Kind::Network, "abc").unwrap();
        store.delete(Kind::Network, "abc").unwrap();
        let l: Loaded<serde_json::Value> = store.load(Kind::Network).unwrap();
        assert!(l.items.is_empty());
        fs::remove_dir_all(dir).unwrap();
    }
}
