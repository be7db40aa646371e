//! Paths, versions and atomic writes shared by the file datasets.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::CatalogError;

/// Where a file dataset reads and writes, with Kedro's versioning:
/// versioned saves go to `<filepath>/<version>/<basename>`; loads read the
/// version this dataset saved in this run, else the pinned one, else the
/// newest.
#[derive(Debug)]
pub struct FileTarget {
    /// The dataset's name (for errors).
    pub dataset: String,
    /// The resolved `filepath`.
    pub path: PathBuf,
    /// Whether saves are versioned.
    pub versioned: bool,
    /// The version saves use (the run id).
    pub save_version: String,
    /// The version loads use, when pinned.
    pub load_version: Option<String>,
    saved: Mutex<Option<String>>,
}

impl FileTarget {
    /// A target for `path` (already resolved against the project).
    pub fn new(
        dataset: &str,
        path: PathBuf,
        versioned: bool,
        save_version: &str,
        load_version: Option<String>,
    ) -> Self {
        FileTarget {
            dataset: dataset.to_string(),
            path,
            versioned,
            save_version: save_version.to_string(),
            load_version,
            saved: Mutex::new(None),
        }
    }

    fn basename(&self) -> std::ffi::OsString {
        self.path
            .file_name()
            .map(|s| s.to_os_string())
            .unwrap_or_default()
    }

    /// The newest version present under the versioned folder.
    fn newest_version(&self) -> Option<String> {
        let base = self.basename();
        let mut versions: Vec<String> = std::fs::read_dir(&self.path)
            .ok()?
            .filter_map(Result::ok)
            .filter(|e| e.path().join(&base).exists())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        versions.sort();
        versions.pop()
    }

    /// The file to read.
    pub fn load_path(&self) -> Result<PathBuf, CatalogError> {
        if !self.versioned {
            return Ok(self.path.clone());
        }
        let saved = self.saved.lock().expect("version lock").clone();
        let version = match saved.or_else(|| self.load_version.clone()) {
            Some(v) => v,
            None => self.newest_version().ok_or_else(|| CatalogError::NoVersion {
                dataset: self.dataset.clone(),
                version: None,
                path: self.path.clone(),
            })?,
        };
        let file = self.path.join(&version).join(self.basename());
        if !file.exists() {
            return Err(CatalogError::NoVersion {
                dataset: self.dataset.clone(),
                version: Some(version),
                path: self.path.clone(),
            });
        }
        Ok(file)
    }

    /// The file to write (a new version must not exist yet).
    pub fn save_path(&self) -> Result<PathBuf, CatalogError> {
        if !self.versioned {
            return Ok(self.path.clone());
        }
        let file = self.path.join(&self.save_version).join(self.basename());
        if file.exists() {
            return Err(CatalogError::VersionExists {
                dataset: self.dataset.clone(),
                version: self.save_version.clone(),
                path: file,
            });
        }
        Ok(file)
    }

    /// Records a successful versioned save.
    pub fn mark_saved(&self) {
        if self.versioned {
            *self.saved.lock().expect("version lock") = Some(self.save_version.clone());
        }
    }

    /// The version saved in this run.
    pub fn saved_version(&self) -> Option<String> {
        self.saved.lock().expect("version lock").clone()
    }

    /// Whether there is something to load.
    pub fn exists(&self) -> bool {
        if !self.versioned {
            return self.path.exists();
        }
        self.load_path().is_ok()
    }

    /// Reads the whole load file.
    pub fn read(&self) -> Result<(PathBuf, Vec<u8>), CatalogError> {
        let path = self.load_path()?;
        let bytes = std::fs::read(&path).map_err(|source| CatalogError::Io {
            dataset: self.dataset.clone(),
            path: path.clone(),
            source,
        })?;
        Ok((path, bytes))
    }

    /// Writes the save file atomically: a temporary file in the same folder,
    /// renamed into place, so a crash never leaves a half-written dataset.
    pub fn write_with(
        &self,
        write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<(), String>,
    ) -> Result<PathBuf, CatalogError> {
        let path = self.save_path()?;
        atomic_write(&self.dataset, &path, write)?;
        self.mark_saved();
        Ok(path)
    }
}

/// Writes `path` through a temporary sibling file and a rename.
pub fn atomic_write(
    dataset: &str,
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<(), String>,
) -> Result<(), CatalogError> {
    let io = |source: std::io::Error, p: &Path| CatalogError::Io {
        dataset: dataset.to_string(),
        path: p.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io(e, dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().map(|s| s.to_string_lossy()).unwrap_or_default(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    ));
    let file = std::fs::File::create(&tmp).map_err(|e| io(e, &tmp))?;
    let mut w = std::io::BufWriter::new(file);
    let result = write(&mut w).and_then(|_| {
        w.flush().map_err(|e| e.to_string())?;
        w.get_ref().sync_all().map_err(|e| e.to_string())
    });
    if let Err(message) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(CatalogError::Save {
            dataset: dataset.to_string(),
            path: Some(path.to_path_buf()),
            message,
        });
    }
    drop(w);
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e, path)
    })
}
