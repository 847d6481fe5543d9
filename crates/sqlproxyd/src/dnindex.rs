//! The write-node index file, compatible with Mycat's
//! `conf/dnindex.properties`: a Java properties file with one
//! `<data host>=<index>` line per data host (first node = 0). Written
//! atomically (temporary file, fsync, rename) so a crash mid-write leaves
//! the old file, and read at start to come back on the same node.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub const FILE_NAME: &str = "dnindex.properties";

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

/// The indexes recorded in `file`; none when it does not exist yet.
pub fn read(file: &Path) -> Result<BTreeMap<String, usize>> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(parse(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
    }
}

/// Records `index` for `data_host`, keeping the other lines' values.
pub fn write(file: &Path, data_host: &str, index: usize) -> Result<()> {
    let mut all = read(file)?;
    all.insert(data_host.to_owned(), index);
    let mut text = String::from("#update by sqlproxyd\n");
    for (k, v) in &all {
        text.push_str(&format!("{k}={v}\n"));
    }
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = file.with_extension("properties.tmp");
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mycats_own_file() {
        let m = parse("#update\n#Wed Nov 25 10:00:00 CST 2026\ndh1=1\ndh2 = 0\nbad=x\n\n");
        assert_eq!(m.get("dh1"), Some(&1));
        assert_eq!(m.get("dh2"), Some(&0));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn writes_atomically_and_keeps_other_hosts() {
        let dir = std::env::temp_dir().join(format!("dnindex-test-{}", std::process::id()));
        let f = path(&dir);
        write(&f, "dh1", 2).unwrap();
        write(&f, "dh2", 0).unwrap();
        write(&f, "dh1", 1).unwrap();
        let m = read(&f).unwrap();
        assert_eq!((m["dh1"], m["dh2"]), (1, 0));
        assert!(!f.with_extension("properties.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(read(&f).unwrap().is_empty());
    }

    #[test]
    fn an_unwritable_place_is_an_error_naming_the_file() {
        let e = write(Path::new("/proc/no-such/dnindex.properties"), "dh1", 0).unwrap_err();
        assert!(format!("{e:#}").contains("/proc/no-such"), "{e:#}");
    }
}
