//! Paths, versions and safe atomic writes shared by the file datasets.
//!
//! * Versioned layout: `<filepath>/<version>/<basename>`. The transcoded
//!   entries of one logical dataset (`cars@csv`, `cars@parquet`) share one
//!   [`VersionGroup`]: the version saved in this run, the pinned load
//!   version and the newest version are resolved for the logical dataset
//!   (the base name), across every side's folder; each side keeps its own
//!   `filepath`, so the versioned path shows the format.
//! * Writes go to a locked temporary sibling (`.<basename>.tmp-<8 hex>`)
//!   renamed into place. A temporary file left by a killed save (its lock
//!   is gone with the process) is removed by the next save of that file.
//! * A save follows symlinks and writes through to the target; it never
//!   replaces a directory, FIFO, socket or device node with a regular file.
//! * Every read, write, listing and existence check goes through the
//!   target's [`Storage`] (the local file system unless the `filepath` is an
//!   object-store URL: see [`crate::storage`]); the layout, the version
//!   resolution, `load_versions` pinning and run scoping are the same on both.

use std::ffi::OsString;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::CatalogError;
use crate::storage::{LocalStorage, Storage};

/// The base name of a transcoded dataset name (`cars@csv` → `cars`).
pub fn base_name(name: &str) -> &str {
    name.split_once('@').map_or(name, |(base, _)| base)
}

/// The version state of one logical dataset (a name and all its
/// transcoded `name@fmt` entries) in one run.
#[derive(Debug)]
pub struct VersionGroup {
    base: String,
    load_version: Option<String>,
    sides: Vec<(PathBuf, Arc<dyn Storage>)>,
    saved: Mutex<Option<String>>,
}

impl VersionGroup {
    /// A group for the logical dataset `base`, pinned to `load_version` if
    /// given, whose versioned entries live at `sides` (each a resolved
    /// `filepath`; versions are `<side>/<version>/<basename of side>`).
    pub fn new(base: &str, load_version: Option<String>, sides: Vec<PathBuf>) -> Arc<Self> {
        let sides = sides.into_iter().map(|p| (p, LocalStorage::shared())).collect();
        Self::with_sides(base, load_version, sides)
    }

    /// Like [`VersionGroup::new`], each side with the storage it lives on
    /// (the local file system or an object store).
    pub fn with_sides(
        base: &str,
        load_version: Option<String>,
        sides: Vec<(PathBuf, Arc<dyn Storage>)>,
    ) -> Arc<Self> {
        Arc::new(VersionGroup {
            base: base.to_string(),
            load_version,
            sides,
            saved: Mutex::new(None),
        })
    }

    /// The logical dataset's name.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The pinned load version, if any.
    pub fn load_version(&self) -> Option<&str> {
        self.load_version.as_deref()
    }

    fn saved(&self) -> Option<String> {
        self.saved.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set_saved(&self, version: &str) {
        *self.saved.lock().unwrap_or_else(PoisonError::into_inner) = Some(version.to_string());
    }

    /// The newest version present under any side. On disk a folder that
    /// cannot be read has none (as always); an object-store listing that
    /// fails is an error, not "no version".
    fn newest(&self) -> Result<Option<String>, CatalogError> {
        let mut newest: Option<String> = None;
        for (side, storage) in &self.sides {
            let base = side
                .file_name()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            let found = storage.versions(&self.base, side, &base)?.into_iter().max();
            newest = newest.max(found);
        }
        Ok(newest)
    }

    /// A side other than `except` that holds `version`.
    fn found_as(&self, version: &str, except: &Path) -> Option<PathBuf> {
        self.sides
            .iter()
            .filter(|(s, _)| s.as_path() != except)
            .map(|(s, storage)| (s.join(version).join(s.file_name().unwrap_or_default()), storage))
            .find(|(f, storage)| storage.exists(&self.base, f).unwrap_or(false))
            .map(|(f, _)| f)
    }
}

/// Where a file dataset reads and writes, with Kedro's versioning:
/// versioned saves go to `<filepath>/<version>/<basename>`; loads read the
/// version saved in this run (by any transcoding of the dataset), else the
/// pinned one, else the newest.
#[derive(Debug)]
pub struct FileTarget {
    /// The dataset's name (for errors).
    pub dataset: String,
    /// The resolved `filepath` (run-scoped when the run scopes it).
    pub path: PathBuf,
    /// Whether saves are versioned.
    pub versioned: bool,
    /// The version saves use (the run id).
    pub save_version: String,
    storage: Arc<dyn Storage>,
    group: Arc<VersionGroup>,
    saved: Mutex<Option<String>>,
    loaded: Mutex<Option<String>>,
}

impl FileTarget {
    /// A target for `path` (already resolved against the project), alone in
    /// its version group.
    pub fn new(
        dataset: &str,
        path: PathBuf,
        versioned: bool,
        save_version: &str,
        load_version: Option<String>,
    ) -> Self {
        let group = VersionGroup::new(base_name(dataset), load_version, vec![path.clone()]);
        Self::with_group(dataset, path, versioned, save_version, group)
    }

    /// A target sharing the version state of `group` (transcoded entries).
    pub fn with_group(
        dataset: &str,
        path: PathBuf,
        versioned: bool,
        save_version: &str,
        group: Arc<VersionGroup>,
    ) -> Self {
        FileTarget {
            dataset: dataset.to_string(),
            path,
            versioned,
            save_version: save_version.to_string(),
            storage: LocalStorage::shared(),
            group,
            saved: Mutex::new(None),
            loaded: Mutex::new(None),
        }
    }

    /// The same target on another storage (an object store: `path` then
    /// holds the object URL). A target alone in its version group moves its
    /// group's side along.
    pub fn with_storage(mut self, storage: Arc<dyn Storage>) -> Self {
        if Arc::strong_count(&self.group) == 1
            && let Some(group) = Arc::get_mut(&mut self.group)
        {
            for side in &mut group.sides {
                if side.0 == self.path {
                    side.1 = Arc::clone(&storage);
                }
            }
        }
        self.storage = storage;
        self
    }

    /// The storage this target reads and writes.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// Whether `path` exists. On disk an error reads as "no" (as
    /// `Path::exists` does); an object-store request that fails is an error.
    fn exists_at(&self, path: &Path) -> Result<bool, CatalogError> {
        match self.storage.exists(&self.dataset, path) {
            Err(CatalogError::Io { .. }) => Ok(false),
            other => other,
        }
    }

    /// The version the last load of this run read, if versioned.
    pub fn loaded_version(&self) -> Option<String> {
        self.loaded.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The pinned load version, if any.
    pub fn load_version(&self) -> Option<&str> {
        self.group.load_version()
    }

    fn basename(&self) -> OsString {
        self.path
            .file_name()
            .map(|s| s.to_os_string())
            .unwrap_or_default()
    }

    /// The file to read.
    pub fn load_path(&self) -> Result<PathBuf, CatalogError> {
        if !self.versioned {
            return Ok(self.path.clone());
        }
        let version = match self.group.saved().or_else(|| self.group.load_version.clone()) {
            Some(v) => v,
            None => self.group.newest()?.ok_or_else(|| CatalogError::NoVersion {
                dataset: self.dataset.clone(),
                version: None,
                path: self.path.clone(),
                found_as: None,
            })?,
        };
        let file = self.path.join(&version).join(self.basename());
        if !self.exists_at(&file)? {
            return Err(CatalogError::NoVersion {
                dataset: self.dataset.clone(),
                found_as: self.group.found_as(&version, &self.path),
                version: Some(version),
                path: file,
            });
        }
        Ok(file)
    }

    /// The file a save writes (without checking anything).
    pub fn save_file(&self) -> PathBuf {
        if self.versioned {
            self.path.join(&self.save_version).join(self.basename())
        } else {
            self.path.clone()
        }
    }

    /// The file to write (a new version must not exist yet).
    pub fn save_path(&self) -> Result<PathBuf, CatalogError> {
        let file = self.save_file();
        if self.versioned && self.exists_at(&file)? {
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
            self.group.set_saved(&self.save_version);
            *self.saved.lock().unwrap_or_else(PoisonError::into_inner) = Some(self.save_version.clone());
        }
    }

    /// The version this target saved in this run.
    pub fn saved_version(&self) -> Option<String> {
        self.saved.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Whether there is something to load (`false` when the check fails;
    /// see [`FileTarget::try_exists`]).
    pub fn exists(&self) -> bool {
        self.try_exists().unwrap_or(false)
    }

    /// Whether there is something to load; a failed object-store request
    /// is an error (on disk, as [`FileTarget::exists`]).
    pub fn try_exists(&self) -> Result<bool, CatalogError> {
        if !self.versioned {
            return self.exists_at(&self.path);
        }
        match self.load_path() {
            Ok(_) => Ok(true),
            Err(CatalogError::NoVersion { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Why a load would find nothing, if it would not (one stat for
    /// unversioned files and pinned versions; a folder listing for the
    /// newest version): the path looked at and the reason.
    pub fn unavailable(&self) -> Option<(PathBuf, String)> {
        if !self.versioned {
            return match self.storage.exists(&self.dataset, &self.path) {
                Ok(true) => None,
                Ok(false) => Some((self.path.clone(), "the file does not exist".to_string())),
                Err(CatalogError::Io { source, .. }) => Some((self.path.clone(), source.to_string())),
                Err(e) => Some((self.path.clone(), e.to_string())),
            };
        }
        match self.load_path() {
            Ok(_) => None,
            Err(CatalogError::NoVersion {
                version,
                path,
                found_as,
                ..
            }) => {
                let reason = match (version, found_as) {
                    (Some(v), Some(other)) => format!(
                        "version {v} does not exist in this format (it exists as {})",
                        other.display()
                    ),
                    (Some(v), None) if self.group.load_version.as_deref() == Some(v.as_str()) => {
                        format!("the pinned version {v} does not exist")
                    }
                    (Some(v), None) => format!("version {v} does not exist"),
                    (None, _) => "no version has been saved yet".to_string(),
                };
                Some((path, reason))
            }
            Err(e) => Some((self.path.clone(), e.to_string())),
        }
    }

    /// The file a load reads, recorded as this run's loaded version like a
    /// [`FileTarget::read`] (for programs that read the file themselves).
    pub fn open_for_reading(&self) -> Result<PathBuf, CatalogError> {
        let path = self.load_path()?;
        if self.versioned
            && let Some(version) = path.parent().and_then(|d| d.file_name()).and_then(|v| v.to_str())
        {
            *self.loaded.lock().unwrap_or_else(PoisonError::into_inner) = Some(version.to_string());
        }
        Ok(path)
    }

    /// Reads the whole load file.
    pub fn read(&self) -> Result<(PathBuf, Vec<u8>), CatalogError> {
        let path = self.load_path()?;
        if self.versioned
            && let Some(version) = path.parent().and_then(|d| d.file_name()).and_then(|v| v.to_str())
        {
            *self.loaded.lock().unwrap_or_else(PoisonError::into_inner) = Some(version.to_string());
        }
        let bytes = self.storage.read(&self.dataset, &path)?;
        Ok((path, bytes))
    }

    /// Writes the save file atomically through the target's storage (on
    /// disk see [`atomic_write`]; on an object store, one PUT).
    pub fn write_with(
        &self,
        write: impl FnOnce(&mut (dyn Write + Send)) -> Result<(), String>,
    ) -> Result<PathBuf, CatalogError> {
        let path = self.save_path()?;
        if self.versioned {
            self.storage
                .remove_stale_temps(&self.path, &self.basename().to_string_lossy());
        }
        self.storage.write(&self.dataset, &path, Box::new(write))?;
        self.mark_saved();
        Ok(path)
    }
}

/// A killed versioned save leaves its temporary file in its own version
/// folder under `versions_dir`: remove those. The folder stays (another run
/// may be about to write into a folder it just created; an empty version
/// folder is never taken for a version).
pub(crate) fn remove_stale_version_temps(versions_dir: &Path, basename: &str) {
    let Ok(entries) = std::fs::read_dir(versions_dir) else {
        return;
    };
    for dir in entries.filter_map(Result::ok).map(|e| e.path()) {
        if dir.is_dir() && !dir.join(basename).exists() {
            remove_stale_temps(&dir, basename);
        }
    }
}

/// Deepest symlink chain a save follows.
const MAX_SYMLINKS: usize = 40;
/// Age after which an unlocked, not-yet-named temporary file is stale.
const STALE_NEW: Duration = Duration::from_secs(60);

/// Follows `path` through symlinks to the file a save really writes.
fn follow_symlinks(path: &Path) -> std::io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_SYMLINKS {
        match std::fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&current)?;
                current = if target.is_absolute() {
                    target
                } else {
                    current.parent().unwrap_or(Path::new(".")).join(target)
                };
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(format!(
        "more than {MAX_SYMLINKS} levels of symbolic links"
    )))
}

/// What a non-regular file system entry is, for errors.
fn kind_of(meta: &std::fs::Metadata) -> String {
    let ft = meta.file_type();
    if ft.is_dir() {
        return "a directory".into();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO".into();
        }
        if ft.is_socket() {
            return "a socket".into();
        }
        if ft.is_block_device() || ft.is_char_device() {
            return "a device node".into();
        }
    }
    "not a regular file".into()
}

/// Removes temporary files a killed save of `basename` left in `dir`:
/// `.tmp-` files whose writer's lock is gone, and stale `.new-` files.
fn remove_stale_temps(dir: &Path, basename: &str) {
    let tmp_prefix = format!(".{basename}.tmp-");
    let new_prefix = format!(".{basename}.new-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().to_string();
        let path = entry.path();
        if name.strip_prefix(&tmp_prefix).is_some_and(is_temp_suffix) {
            // A live writer holds an exclusive lock on its temporary file.
            if let Ok(f) = File::open(&path)
                && f.try_lock().is_ok()
            {
                let _ = std::fs::remove_file(&path);
            }
        } else if name.strip_prefix(&new_prefix).is_some_and(is_temp_suffix) {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age > STALE_NEW);
            if old {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

fn is_temp_suffix(s: &str) -> bool {
    s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Writes `path` safely: follows symlinks to the real target (refusing to
/// replace anything but a regular file), removes temporary files a killed
/// save left, writes a locked temporary sibling, syncs it and renames it
/// into place, so a crash never leaves a half-written dataset.
pub fn atomic_write(
    dataset: &str,
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<File>) -> Result<(), String>,
) -> Result<(), CatalogError> {
    let io = |source: std::io::Error, p: &Path| CatalogError::SaveIo {
        dataset: dataset.to_string(),
        path: p.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| io(e, path))?;
    let target = follow_symlinks(path).map_err(|e| io(e, path))?;
    match std::fs::symlink_metadata(&target) {
        Ok(m) if m.is_file() => {}
        Ok(m) => {
            return Err(CatalogError::NotAFile {
                dataset: dataset.to_string(),
                path: target,
                kind: kind_of(&m),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e, &target)),
    }
    let dir = target.parent().unwrap_or(Path::new("."));
    if target != path {
        std::fs::create_dir_all(dir).map_err(|e| io(e, &target))?;
    }
    let basename = target
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    remove_stale_temps(dir, &basename);
    let hex = uuid::Uuid::new_v4().simple().to_string();
    let hex = &hex[..8];
    // Created under a name cleaners leave alone until it is locked, then
    // renamed (keeping the lock) to the name cleaners check.
    let fresh = dir.join(format!(".{basename}.new-{hex}"));
    let tmp = dir.join(format!(".{basename}.tmp-{hex}"));
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(&fresh)
        .map_err(|e| io(e, &target))?;
    let locked = file.lock().and_then(|_| std::fs::rename(&fresh, &tmp));
    if let Err(e) = locked {
        let _ = std::fs::remove_file(&fresh);
        return Err(io(e, &target));
    }
    let mut w = std::io::BufWriter::new(file);
    let result = write(&mut w).and_then(|_| {
        w.flush().map_err(|e| e.to_string())?;
        w.get_ref().sync_all().map_err(|e| e.to_string())
    });
    if let Err(message) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(CatalogError::Save {
            dataset: dataset.to_string(),
            path: Some(target),
            message,
        });
    }
    let renamed = std::fs::rename(&tmp, &target);
    drop(w);
    renamed.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e, &target)
    })
}

/// Removes `.` and resolves `..` lexically (no file system access).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Where a run-scoped dataset really lives: `path` (already resolved
/// against `project_dir`) relative to the project, under `scope_dir`; a path
/// outside the project maps to `scope_dir/_abs/<path without its root>`.
///
/// ```
/// use std::path::Path;
/// use weft_catalog::file::scoped_path;
/// let p = scoped_path(Path::new("/proj"), Path::new("/runs/r1"), Path::new("/proj/data/x.json"));
/// assert_eq!(p, Path::new("/runs/r1/data/x.json"));
/// let p = scoped_path(Path::new("/proj"), Path::new("/runs/r1"), Path::new("/tmp/../srv/y.csv"));
/// assert_eq!(p, Path::new("/runs/r1/_abs/srv/y.csv"));
/// ```
pub fn scoped_path(project_dir: &Path, scope_dir: &Path, path: &Path) -> PathBuf {
    use std::path::Component;
    let path = normalize(path);
    let project = normalize(project_dir);
    if let Ok(rel) = path.strip_prefix(&project)
        && !rel.as_os_str().is_empty()
        && !rel.starts_with("..")
    {
        return scope_dir.join(rel);
    }
    let mut out = scope_dir.join("_abs");
    for c in path.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => {}
            // Never climb out of the scope folder.
            Component::ParentDir => out.push("_parent"),
            other => out.push(other.as_os_str()),
        }
    }
    out
}
