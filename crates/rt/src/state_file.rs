//! Files a daemon keeps in its state dir (sqlproxyd's dnindex.properties,
//! its failover journal): replaced atomically, so a crash mid-write leaves
//! the old content or the new, never a mix.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Replaces `file` with `bytes`: a temporary file of a name no other
/// writer uses (pid and a counter), fsync, rename over `file`, fsync of
/// the directory. The directory is created when missing.
pub fn replace(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("state");
    let tmp = dir.join(temporary_name(
        name,
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The temporary file of update `n` of process `pid` to `file_name`.
pub fn temporary_name(file_name: &str, pid: u32, n: u64) -> String {
    format!(".{file_name}.{pid}.{n}.tmp")
}

/// Whether `name` is a [`temporary_name`] (left behind by a crash).
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Removes the temporary files a crash left in `dir`; call it while no
/// other process writes there (with the state dir's lock held).
pub fn remove_leftovers(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_str().is_some_and(is_temporary) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Removes `file` (and makes that durable); a missing file is no error.
pub fn remove(file: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_removes_leaving_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sub/state.json");
        replace(&f, b"one").unwrap();
        replace(&f, b"two").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(f.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["state.json"]);
        remove(&f).unwrap();
        remove(&f).unwrap();
        assert!(!f.exists());
    }

    #[test]
    fn concurrent_writers_never_share_a_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let f = dir.path().join(format!("f{}", i % 2));
                std::thread::spawn(move || {
                    for k in 0..50 {
                        replace(&f, format!("{i}-{k}").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        for i in 0..2 {
            let text = std::fs::read_to_string(dir.path().join(format!("f{i}"))).unwrap();
            assert!(text.ends_with("-49"), "{text}");
        }
    }
}
