//! `sentio user add NAME --role admin|operator|viewer [--scope site=plant-a]`: the first admin
//! (or any user, an operator or viewer optionally confined to devices by a label selector)
//! created against a data directory, with the password read from stdin or `--password-file`; there is
//! no default password. Works while the node runs (sessions and users are read from the
//! database at each request).

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use sentio_store::{AuditStore, DeviceScope, NewAudit, NewUser, Role, SqliteStore, UserStore};

/// `sentio user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. The password (at least 12 characters) is read from stdin, or from
    /// `--password-file`.
    Add(AddArgs),
}

/// What a user may do.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Everything: devices, tokens, users, retention.
    Admin,
    /// Reads, and acts on alerts.
    Operator,
    /// Reads only.
    Viewer,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Admin => Role::Admin,
            RoleArg::Operator => Role::Operator,
            RoleArg::Viewer => Role::Viewer,
        }
    }
}

/// `sentio user add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The user's name (1-64 of A-Z a-z 0-9 . _ @ -).
    name: String,
    /// Its role.
    #[arg(long, value_enum)]
    role: RoleArg,
    /// Confine an operator or viewer to the devices holding these labels
    /// (`site=plant-a,line=2`: all of them).
    #[arg(long, value_parser = parse_scope)]
    scope: Option<DeviceScope>,
    /// Read the password from this file instead of stdin (one line; a final newline is
    /// dropped).
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// The data directory.
    #[arg(long, default_value = "data", env = "SENTIO_DATA")]
    data: PathBuf,
}

fn parse_scope(text: &str) -> Result<DeviceScope, String> {
    DeviceScope::parse(text).map_err(|e| e.to_string())
}

/// The password with its final line ending dropped.
fn one_line(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

/// Runs a `sentio user` command.
pub fn run(command: UserCommand) -> anyhow::Result<()> {
    let UserCommand::Add(args) = command;
    let password = match &args.password_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading the password from {}", path.display()))?,
        None => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the password from stdin")?;
            text
        }
    };
    sentio::private::restrict_new_files();
    let store = SqliteStore::open(&args.data)
        .with_context(|| format!("opening the store in {}", args.data.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let user = rt.block_on(async {
        let user = store
            .create_user(NewUser {
                name: args.name.clone(),
                role: args.role.into(),
                password: one_line(password),
                scope: args.scope.clone().unwrap_or_default(),
            })
            .await?;
        store
            .record(NewAudit {
                actor: "cli".into(),
                action: "user.create".into(),
                subject: Some(user.name.clone()),
                detail: serde_json::json!({"role": user.role.as_str(), "scope": user.scope.selector()}),
            })
            .await?;
        anyhow::Ok(user)
    })?;
    let scope = if user.scope.is_fleet() {
        String::new()
    } else {
        format!(" (devices labelled {})", user.scope)
    };
    println!(
        "user {} created with the role {}{scope} in {}; log in with POST /api/v1/session",
        user.name,
        user.role,
        args.data.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn only_the_final_line_ending_is_dropped() {
        assert_eq!(one_line("pass word 12\n".into()), "pass word 12");
        assert_eq!(one_line("pass word 12\r\n".into()), "pass word 12");
        assert_eq!(one_line(" spaced \n\n".into()), " spaced \n");
    }
}
