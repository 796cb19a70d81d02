//! `-f` / `Logging.LogPath`: the log file, rotated as the official daemon rotates it while `Logging.LogRotation` is
//! on (the default): once it passes 50 MB it becomes `<path>.1` (replacing the previous one) and a new file starts.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};

use crate::DaemonError;

/// Size at which the log file is rotated, as the official daemon.
pub const ROTATION_BYTES: usize = 50 * 1024 * 1024;

/// Opens (creates or appends to) the log file.
pub fn open(path: &Path, rotation: bool) -> Result<Box<dyn Write + Send>, DaemonError> {
    // Opened here first so that a path that cannot be written is an error naming it at start-up.
    let file = OpenOptions::new().create(true).append(true).open(path).map_err(|source| DaemonError::Io {
        context: format!("opening the log file {} (-f)", path.display()),
        source,
    })?;
    if !rotation {
        return Ok(Box::new(file));
    }
    let rotated = FileRotate::new(
        path,
        AppendCount::new(1),
        ContentLimit::BytesSurpassed(ROTATION_BYTES),
        Compression::None,
        None,
    );
    Ok(Box::new(rotated))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes one and a half times the rotation size, in log-line-sized pieces.
    fn fill(log: &mut dyn Write) {
        let line = format!("{}\n", "x".repeat(1023));
        for _ in 0..3 * ROTATION_BYTES / 2 / line.len() {
            log.write_all(line.as_bytes()).unwrap();
        }
        log.flush().unwrap();
    }

    fn size(path: &Path) -> u64 {
        std::fs::metadata(path).map(|metadata| metadata.len()).unwrap_or(0)
    }

    #[test]
    fn with_rotation_the_log_keeps_one_rotated_file_of_50_mb() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("xray.log");
        fill(&mut *open(&path, true).unwrap());
        let rotated = directory.path().join("xray.log.1");
        assert!(size(&rotated) >= ROTATION_BYTES as u64, "{} bytes rotated", size(&rotated));
        assert!(size(&path) < ROTATION_BYTES as u64, "{} bytes current", size(&path));
        assert!(!directory.path().join("xray.log.2").exists(), "only one rotated file is kept");
    }

    #[test]
    fn without_rotation_the_log_grows_in_one_file() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("xray.log");
        fill(&mut *open(&path, false).unwrap());
        assert!(size(&path) > ROTATION_BYTES as u64);
        assert_eq!(std::fs::read_dir(directory.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_log_file_that_cannot_be_created_is_an_error_naming_it() {
        let error = open(Path::new("/nonexistent-directory/xray.log"), true).err().expect("an error").to_string();
        assert!(error.contains("/nonexistent-directory/xray.log") && error.contains("-f"), "{error}");
    }
}
