//! The data directory is private to the user running the node: it holds the key that digests
//! every secret, the broker's sessions and all the data. New files are created 0600 and new
//! directories 0700 (the process umask), and a directory left looser by an older version is
//! tightened at start, with a warning.

use std::path::Path;

use tracing::warn;

/// From now on, files and directories this process creates are readable by its user only:
/// the umask becomes 0o077 (the database, its WAL, the broker's state, generated TLS keys,
/// backups).
pub fn restrict_new_files() {
    #[cfg(unix)]
    {
        use rustix::fs::Mode;
        rustix::process::umask(Mode::from_raw_mode(0o077));
    }
}

/// Removes group and other permissions from `data` and everything under it, warning once
/// with the number of entries changed. Symbolic links are left alone (never followed).
pub fn tighten(data: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut changed = 0;
        tighten_tree(data, &mut changed)?;
        if changed > 0 {
            warn!(
                data = %data.display(),
                changed,
                "the data directory was readable by other users; its modes are now 0700 (directories) and 0600 (files)"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = data;
    Ok(())
}

#[cfg(unix)]
fn tighten_tree(path: &Path, changed: &mut usize) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7700))?;
        *changed += 1;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            tighten_tree(&entry?.path(), changed)?;
        }
    }
    Ok(())
}
