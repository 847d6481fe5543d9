//! The write-node index file, compatible with Mycat's
//! `conf/dnindex.properties`: a Java properties file with one
//! `<data host>=<index>` line per data host (first node = 0), read at start
//! to come back on the same node.
//!
//! In Mycat mode that file is the truth, so it has exactly one writer: a
//! [`Store`] holds an exclusive lock (`flock`) on `state_dir/sqlproxyd.lock`
//! for the life of the process, and a second sqlproxyd on the same
//! directory refuses to start, naming the holder. Inside the process every
//! data host's monitor writes through the one `Store`, whose mutex makes
//! each read-modify-write whole, so no data host's value is lost to
//! another's update. Each update is one atomic replace
//! ([`hastack_rt::state_file::replace`]: a temporary file of its own name,
//! fsync, rename, fsync of the directory); a crash mid-write leaves the old
//! file.

use std::collections::BTreeMap;
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};

pub const FILE_NAME: &str = "dnindex.properties";
/// The lock file beside it; it holds the owner's pid, for the refusal.
pub const LOCK_NAME: &str = "sqlproxyd.lock";

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

/// Parses the properties; lines that are not `name=number` are skipped
/// (comments, Mycat's own `#update` header).
pub fn parse(text: &str) -> BTreeMap<String, usize> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let (k, v) = l.split_once(['=', ':'])?;
            Some((k.trim().to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

/// The file's text for `all`: a comment line, then `name=index` lines, as
/// Mycat writes it (its own `#update` header is a comment too).
pub fn render(all: &BTreeMap<String, usize>) -> String {
    let mut text = String::from("#update by sqlproxyd\n");
    for (k, v) in all {
        text.push_str(&format!("{k}={v}\n"));
    }
    text
}

/// Why a second sqlproxyd may not use `dir`; `holder` is the lock file's
/// text (the owner's pid, unless it has not written it yet).
pub fn in_use(dir: &Path, holder: &str) -> String {
    let who = match holder.trim().parse::<u32>() {
        Ok(pid) => format!("another sqlproxyd (pid {pid})"),
        Err(_) => "another sqlproxyd (pid unknown)".to_owned(),
    };
    format!(
        "state_dir {}: in use by {who}, which holds the lock on {}; \
         only one sqlproxyd may write a state_dir's {FILE_NAME}: \
         stop the other one or give this one its own state_dir",
        dir.display(),
        dir.join(LOCK_NAME).display()
    )
}

/// The indexes recorded in `file`; none when it does not exist yet.
pub fn read(file: &Path) -> Result<BTreeMap<String, usize>> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(parse(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
    }
}

/// The one writer of a state directory's index (see the module comment).
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    file: PathBuf,
    /// Open for the life of the `Store`: closing it releases the lock.
    _lock: File,
    /// Held across each whole read-modify-write.
    writing: Mutex<()>,
}

impl Store {
    /// Takes `state_dir` (creating it) for this process, or says who has
    /// it. Temporary files a crash left are removed: nobody else writes here.
    pub fn open(state_dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("state_dir {}: cannot create it", state_dir.display()))?;
        let lock_path = state_dir.join(LOCK_NAME);
        let mut lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .with_context(|| {
                format!(
                    "state_dir {}: cannot open {}",
                    state_dir.display(),
                    lock_path.display()
                )
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                anyhow::bail!(in_use(state_dir, &holder));
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| {
                    format!(
                        "state_dir {}: cannot lock {}",
                        state_dir.display(),
                        lock_path.display()
                    )
                });
            }
        }
        // Ours now: say who holds it, for a second process's refusal.
        let stamped = (|| -> std::io::Result<()> {
            lock.set_len(0)?;
            lock.rewind()?;
            writeln!(lock, "{}", std::process::id())?;
            lock.sync_all()
        })();
        stamped.with_context(|| format!("writing {}", lock_path.display()))?;
        hastack_rt::state_file::remove_leftovers(state_dir);
        Ok(Store {
            dir: state_dir.to_owned(),
            file: path(state_dir),
            _lock: lock,
            writing: Mutex::new(()),
        })
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn read(&self) -> Result<BTreeMap<String, usize>> {
        read(&self.file)
    }

    /// Records `index` for `data_host`, keeping every other data host's
    /// value; other updates of this process wait meanwhile. Blocking I/O
    /// (two fsyncs): async callers run it on a blocking thread.
    pub fn write(&self, data_host: &str, index: usize) -> Result<()> {
        // The guarded data is (): a panic elsewhere cannot leave it torn.
        let _one_at_a_time = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let mut all = read(&self.file)?;
        all.insert(data_host.to_owned(), index);
        let result = hastack_rt::state_file::replace(&self.file, render(&all).as_bytes());
        result.with_context(|| format!("writing {}", self.file.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A fresh directory of this test process's own.
    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dnindex-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| hastack_rt::state_file::is_temporary(n))
            .collect()
    }

    #[test]
    fn reads_mycats_own_file() {
        let m = parse("#update\n#Wed Nov 25 10:00:00 CST 2026\ndh1=1\ndh2 = 0\nbad=x\n\n");
        assert_eq!(m.get("dh1"), Some(&1));
        assert_eq!(m.get("dh2"), Some(&0));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn what_is_written_is_mycats_format() {
        let all = BTreeMap::from([("dh1".to_owned(), 2), ("dh2".to_owned(), 0)]);
        assert_eq!(render(&all), "#update by sqlproxyd\ndh1=2\ndh2=0\n");
        assert_eq!(parse(&render(&all)), all);
    }

    #[test]
    fn writes_atomically_and_keeps_other_hosts() {
        let dir = scratch("keeps");
        let store = Store::open(&dir).unwrap();
        store.write("dh1", 2).unwrap();
        store.write("dh2", 0).unwrap();
        store.write("dh1", 1).unwrap();
        let m = store.read().unwrap();
        assert_eq!((m["dh1"], m["dh2"]), (1, 0));
        assert_eq!(leftovers(&dir), Vec::<String>::new());
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(read(&path(&dir)).unwrap().is_empty());
    }

    #[test]
    fn concurrent_updates_of_different_hosts_all_survive() {
        let dir = scratch("concurrent");
        let store = Arc::new(Store::open(&dir).unwrap());
        let (hosts, rounds) = (12, 25);
        let threads: Vec<_> = (0..hosts)
            .map(|h| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..=rounds {
                        store.write(&format!("dh{h}"), h * 1000 + i).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let m = store.read().unwrap();
        let want: BTreeMap<String, usize> = (0..hosts)
            .map(|h| (format!("dh{h}"), h * 1000 + rounds))
            .collect();
        assert_eq!(m, want);
        assert_eq!(leftovers(&dir), Vec::<String>::new());
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_second_writer_of_the_dir_is_refused_naming_the_dir_and_the_holder() {
        let dir = scratch("second");
        let first = Store::open(&dir).unwrap();
        // flock locks belong to the open file: a second open conflicts
        // even within one process, as another sqlproxyd's would.
        let e = format!("{:#}", Store::open(&dir).unwrap_err());
        assert!(e.contains(&format!("state_dir {}", dir.display())), "{e}");
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        assert!(e.contains("give this one its own state_dir"), "{e}");
        drop(first);
        let again = Store::open(&dir).unwrap();
        again.write("dh1", 0).unwrap();
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn crash_leftovers_go_at_open() {
        let dir = scratch("leftovers");
        std::fs::create_dir_all(&dir).unwrap();
        let tmp = hastack_rt::state_file::temporary_name(FILE_NAME, 1, 3);
        std::fs::write(dir.join(tmp), "dh1=9\n").unwrap();
        std::fs::write(dir.join(FILE_NAME), "#update\ndh1=1\n").unwrap();
        let store = Store::open(&dir).unwrap();
        assert_eq!(leftovers(&dir), Vec::<String>::new());
        assert_eq!(store.read().unwrap()["dh1"], 1);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_holder_without_a_pid_yet_is_still_named() {
        let e = in_use(Path::new("/var/lib/sqlproxyd"), "");
        assert!(e.contains("pid unknown"), "{e}");
        assert!(e.contains("/var/lib/sqlproxyd/sqlproxyd.lock"), "{e}");
    }

    #[test]
    fn an_unwritable_place_is_an_error_naming_the_dir() {
        let e = Store::open(Path::new("/proc/no-such")).unwrap_err();
        assert!(
            format!("{e:#}").contains("state_dir /proc/no-such"),
            "{e:#}"
        );
    }
}
