//! The results of a workflow job's parents, handed to its program as a file named by
//! `JOB_PARENTS_FILE` (stdin stays the payload). The file is JSON, `{"<parent>": result, …}`,
//! in a directory of its own that only jobq's user can enter (0700; the file 0600, since
//! results may be private), created new for each run and removed once the program has ended.

use serde_json::{Map, Value};
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The parents' results on disk for one run; dropping it removes them.
pub struct ParentsFile {
    dir: PathBuf,
    file: PathBuf,
}

impl ParentsFile {
    /// Writes `results` into a new private directory under the temp dir (TMPDIR). The
    /// directory's name is random and must not exist yet, so nobody can have prepared it.
    pub fn write(results: &Map<String, Value>) -> std::io::Result<ParentsFile> {
        let dir =
            std::env::temp_dir().join(format!("jobq-parents-{}", uuid::Uuid::new_v4().simple()));
        DirBuilder::new().mode(0o700).create(&dir)?;
        // From here on the guard removes the directory, whatever fails next.
        let guard = ParentsFile {
            file: dir.join("parents.json"),
            dir,
        };
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&guard.file)?;
        serde_json::to_writer(&mut f, results)?;
        f.flush()?;
        Ok(guard)
    }

    /// The file's path, for `JOB_PARENTS_FILE`.
    pub fn path(&self) -> &Path {
        &self.file
    }
}

impl Drop for ParentsFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::warn!("cannot remove {}: {e}", self.dir.display());
            }
        }
    }
}
