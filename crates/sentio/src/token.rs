//! The admin token: configured, or generated on first start into `<data>/admin.token` (0600).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::config::check_admin_token;

/// File name of the generated admin token inside the data directory.
pub const TOKEN_FILE: &str = "admin.token";

/// Where the token came from, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// Given on the command line, in the environment or in the configuration file.
    Configured,
    /// Read from the configured token file, or from (or just written to) `<data>/admin.token`.
    File(PathBuf),
}

/// The configured token, or the one in the configured file, or the one in
/// `<data>/admin.token`, or a new random one written there with mode 0600. Never a default.
pub fn load_or_create(
    data: &Path,
    configured: Option<&str>,
    configured_file: Option<&Path>,
) -> anyhow::Result<(String, TokenSource)> {
    if let Some(t) = configured {
        if let Err(why) = check_admin_token(t) {
            bail!("http.admin_token: {why}");
        }
        return Ok((t.to_string(), TokenSource::Configured));
    }
    if let Some(path) = configured_file {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "http.admin_token_file: reading the admin token from {}",
                path.display()
            )
        })?;
        let t = text.trim_end();
        if let Err(why) = check_admin_token(t) {
            bail!("http.admin_token_file: {}: {why}", path.display());
        }
        return Ok((t.to_string(), TokenSource::File(path.to_path_buf())));
    }
    let path = data.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => {
            return Ok((t.trim().to_string(), TokenSource::File(path)));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let token = sentio_store::secret::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(token.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok((token, TokenSource::File(path)))
}
