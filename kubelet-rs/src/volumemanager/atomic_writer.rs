//! Upstream's atomic writer (`pkg/volume/util/atomic_writer.go`): a volume's files live in
//! a timestamped `..<ts>` directory, `..data` is a symlink to it that is replaced with one
//! `rename`, and the user-visible top-level entries are symlinks into `..data`. Readers
//! therefore see either the old or the new set of files, never a mix.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use rand::Rng;

const DATA_DIR: &str = "..data";
const NEW_DATA_DIR: &str = "..data_tmp";
const MAX_PATH_LENGTH: usize = 4096;
const MAX_FILE_NAME_LENGTH: usize = 255;

/// One file of a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    pub mode: u32,
    /// Owner to give the file (upstream `FsUser`: projected service-account tokens of
    /// pods whose containers all run as one user).
    pub fs_user: Option<u32>,
}

/// Relative path → file.
pub type Payload = BTreeMap<String, FileProjection>;

/// Writes payloads into one volume directory.
pub struct AtomicWriter {
    target_dir: PathBuf,
    context: String,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Upstream `validatePath`.
fn validate_path(path: &str) -> io::Result<()> {
    if path.len() > MAX_PATH_LENGTH {
        return Err(invalid(format!(
            "invalid path: must be less than or equal to {MAX_PATH_LENGTH} characters"
        )));
    }
    if Path::new(path).is_absolute() {
        return Err(invalid("invalid path: must be relative path".to_string()));
    }
    if path.starts_with("..") {
        return Err(invalid(
            "invalid path: must not start with '..'".to_string(),
        ));
    }
    for item in path.split('/') {
        if item == ".." {
            return Err(invalid("invalid path: must not contain '..'".to_string()));
        }
        if item.len() > MAX_FILE_NAME_LENGTH {
            return Err(invalid(format!(
                "invalid path: filenames must be less than or equal to {MAX_FILE_NAME_LENGTH} characters"
            )));
        }
    }
    Ok(())
}

/// `filepath.Clean` for validated relative paths: drops `.` and empty components.
fn clean(path: &str) -> String {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn validate_payload(payload: &Payload) -> io::Result<Payload> {
    let mut cleaned = Payload::new();
    for (path, file) in payload {
        validate_path(path)?;
        let path = clean(path);
        if path.is_empty() {
            return Err(invalid("invalid path: must not be empty".to_string()));
        }
        cleaned.insert(path, file.clone());
    }
    Ok(cleaned)
}

/// Every file and directory below `dir`, relative to it.
fn walk(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if entry.file_type()?.is_dir() {
            walk(&entry.path(), &rel, out)?;
        }
        out.insert(rel);
    }
    Ok(())
}

impl AtomicWriter {
    pub fn new(target_dir: impl Into<PathBuf>, context: impl Into<String>) -> Self {
        AtomicWriter {
            target_dir: target_dir.into(),
            context: context.into(),
        }
    }

    /// Makes the volume contain exactly `payload`. Returns whether new data was written.
    pub fn write(&self, payload: &Payload) -> io::Result<bool> {
        let payload = validate_payload(payload)?;
        let old_ts = match std::fs::read_link(self.target_dir.join(DATA_DIR)) {
            Ok(p) => Some(p),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let (to_remove, must_write) = match &old_ts {
            None => (BTreeSet::new(), true),
            Some(old) => {
                let old_path = self.target_dir.join(old);
                (
                    self.paths_to_remove(&payload, &old_path)?,
                    self.differs(&payload, &old_path)?,
                )
            }
        };
        let wrote = must_write || !to_remove.is_empty();
        if wrote {
            let ts_dir = self.new_timestamp_dir()?;
            let swap = self.fill_and_swap(&payload, &ts_dir);
            if let Err(e) = swap {
                let _ = std::fs::remove_dir_all(&ts_dir);
                return Err(e);
            }
            tracing::debug!(context = %self.context, dir = %ts_dir.display(), "wrote new volume data");
        }
        // Also on no-op writes: user-visible links may be missing (upstream #121472).
        self.create_user_visible_links(&payload)?;
        for path in to_remove.iter().filter(|p| !p.contains('/')) {
            if let Err(e) = std::fs::remove_file(self.target_dir.join(path)) {
                tracing::warn!(context = %self.context, path, error = %e, "cannot prune old user-visible path");
            }
        }
        if wrote && let Some(old) = old_ts {
            std::fs::remove_dir_all(self.target_dir.join(old))?;
        }
        Ok(wrote)
    }

    fn fill_and_swap(&self, payload: &Payload, ts_dir: &Path) -> io::Result<()> {
        for (path, file) in payload {
            let full = ts_dir.join(path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent)?;
                std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))?;
            }
            std::fs::write(&full, &file.data)?;
            // Explicit chmod: the umask applies to the create mode.
            std::fs::set_permissions(&full, std::fs::Permissions::from_mode(file.mode))?;
            if let Some(uid) = file.fs_user {
                std::os::unix::fs::chown(&full, Some(uid), None)?;
            }
        }
        let ts_name = ts_dir
            .file_name()
            .ok_or_else(|| invalid("timestamp directory has no name".to_string()))?;
        let new_link = self.target_dir.join(NEW_DATA_DIR);
        let _ = std::fs::remove_file(&new_link);
        std::os::unix::fs::symlink(ts_name, &new_link)?;
        if let Err(e) = std::fs::rename(&new_link, self.target_dir.join(DATA_DIR)) {
            let _ = std::fs::remove_file(&new_link);
            return Err(e);
        }
        Ok(())
    }

    /// `..2006_01_02_15_04_05.<random>` like Go's `MkdirTemp` with upstream's pattern.
    fn new_timestamp_dir(&self) -> io::Result<PathBuf> {
        let prefix = jiff::Timestamp::now()
            .strftime("..%Y_%m_%d_%H_%M_%S.")
            .to_string();
        for _ in 0..100 {
            let dir = self
                .target_dir
                .join(format!("{prefix}{}", rand::rng().random::<u32>()));
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
                    return Ok(dir);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "cannot create a unique timestamp directory",
        ))
    }

    /// Paths in the old data directory that the new payload no longer has.
    fn paths_to_remove(&self, payload: &Payload, old_ts: &Path) -> io::Result<BTreeSet<String>> {
        let mut old = BTreeSet::new();
        match walk(old_ts, "", &mut old) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
            Err(e) => return Err(e),
        }
        let mut keep = BTreeSet::new();
        for path in payload.keys() {
            let mut prefix = String::new();
            for part in path.split('/') {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(part);
                keep.insert(prefix.clone());
            }
        }
        Ok(old.difference(&keep).cloned().collect())
    }

    /// Whether any payload file is missing or has different content in the old data dir.
    fn differs(&self, payload: &Payload, old_ts: &Path) -> io::Result<bool> {
        for (path, file) in payload {
            match std::fs::read(old_ts.join(path)) {
                Ok(data) if data == file.data => {}
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    fn create_user_visible_links(&self, payload: &Payload) -> io::Result<()> {
        let top: BTreeSet<&str> = payload.keys().filter_map(|p| p.split('/').next()).collect();
        for name in top {
            let visible = self.target_dir.join(name);
            match std::fs::read_link(&visible) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    std::os::unix::fs::symlink(Path::new(DATA_DIR).join(name), &visible)?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_paths_like_upstream() {
        let cases = [
            ("a", true),
            ("a/b/c", true),
            ("./a", true),
            ("..a", false),
            ("/abs", false),
            ("a/../b", false),
            (&*"x".repeat(256), false),
        ];
        for (path, ok) in cases {
            assert_eq!(validate_path(path).is_ok(), ok, "{path}");
        }
        assert_eq!(clean("./a//b/"), "a/b");
    }
}
