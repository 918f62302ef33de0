//! Files only the server's user may read: the database, the audit trail, the root key.
//! New ones are created 0600 (directories 0700) whatever the umask; ones left by an older
//! version with wider modes are narrowed at start.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const FILE_MODE: u32 = 0o600;
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` (and missing parents) with mode 0700, or narrows an existing one to 0700.
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    narrow(dir, DIR_MODE)
}

/// Options that create a file with mode 0600.
pub fn options() -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

/// Narrows `path` to `mode` if it is wider (a missing file is fine).
pub fn narrow(path: &Path, mode: u32) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o777 & !mode != 0 => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A SQLite database file made private before SQLite opens it: created empty with 0600 if
/// missing (SQLite gives its `-wal`, `-shm` and `-journal` files the database file's mode),
/// or narrowed to 0600 with those companions if they exist.
pub fn prepare_sqlite(db: &Path) -> Result<(), String> {
    let what = |e: std::io::Error| {
        format!(
            "cannot prepare the database file {}: {e} (check that the data dir is writable by this user)",
            db.display()
        )
    };
    if !db.exists() {
        if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(what)?;
        }
        match options().write(true).create_new(true).open(db) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(what(e)),
        }
    }
    let name = db.as_os_str().to_os_string();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = name.clone();
        p.push(suffix);
        narrow(Path::new(&p), FILE_MODE).map_err(what)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_dirs_are_private_whatever_the_umask() {
        let dir = std::env::temp_dir().join(format!("kms-private-{}", uuid::Uuid::new_v4()));
        create_dir(&dir.join("a/b")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("a/b")), 0o700);
        let db = dir.join("kms.db");
        std::fs::write(dir.join("kms.db-wal"), b"").unwrap();
        std::fs::set_permissions(
            dir.join("kms.db-wal"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        prepare_sqlite(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&dir.join("kms.db-wal")), 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
