//! Where a wallet password comes from: `--password`, `--password-file`, `EZCHAIN_PASSWORD`, or a
//! prompt without echo on a terminal — so it need not sit in `ps` or the shell's history.

use crate::CliError;
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;

/// The environment variable read when neither flag is given.
pub const PASSWORD_ENV: &str = "EZCHAIN_PASSWORD";

#[derive(Args, Debug, Clone, Default)]
pub struct PasswordArgs {
    /// The wallet's password (visible to other users in `ps`; prefer the prompt, a file or
    /// the EZCHAIN_PASSWORD environment variable).
    #[arg(long)]
    pub password: Option<String>,
    /// A file holding the password (its first line).
    #[arg(long, value_name = "FILE", conflicts_with = "password")]
    pub password_file: Option<PathBuf>,
}

/// Whether the password opens an existing wallet or protects a new one (asked twice).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Unlock,
    NewWallet,
}

impl PasswordArgs {
    /// The password given by flag, file or environment (in that order), if any; never prompts.
    pub fn given(&self) -> Result<Option<String>, CliError> {
        if let Some(password) = &self.password {
            return Ok(Some(password.clone()));
        }
        let Some(path) = &self.password_file else {
            return Ok(std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty()));
        };
        let text = std::fs::read_to_string(path).map_err(|e| CliError {
            code: "password_file_unreadable",
            message: format!("{}: {e}", path.display()),
            hint: Some("give a readable file whose first line is the password"),
        })?;
        Ok(Some(text.lines().next().unwrap_or("").to_string()))
    }

    /// The password, asked for on the terminal when none was given.
    pub fn required(&self, purpose: Purpose) -> Result<String, CliError> {
        if let Some(password) = self.given()? {
            return Ok(password);
        }
        if !std::io::stdin().is_terminal() {
            return Err(CliError {
                code: "password_required",
                message: "this command needs the wallet's password".into(),
                hint: Some("run it on a terminal to be asked, or give --password-file FILE or EZCHAIN_PASSWORD"),
            });
        }
        let prompt_failed = |e: std::io::Error| CliError {
            code: "password_required",
            message: format!("cannot read the password from the terminal: {e}"),
            hint: Some("give --password-file FILE or EZCHAIN_PASSWORD"),
        };
        let first = rpassword::prompt_password("Password: ").map_err(prompt_failed)?;
        if purpose == Purpose::NewWallet {
            let again = rpassword::prompt_password("Repeat the password: ").map_err(prompt_failed)?;
            if again != first {
                return Err(CliError {
                    code: "passwords_differ",
                    message: "the two passwords differ; nothing was written".into(),
                    hint: None,
                });
            }
        }
        Ok(first)
    }
}
