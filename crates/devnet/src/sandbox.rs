//! A throwaway installation for the gates and the drill: an `ezchain.yaml` in a folder of its
//! own, the `ezchain` binary run against it as child processes, and its wallet service's API.
//!
//! Everything runs on loopback ports the caller picks, so a sandbox never touches the
//! operator's own testnet or service.

use crate::launcher::{self, Attachment};
use ezchain_wallet::AppConfig;
use serde_json::{Value, json};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use thiserror::Error;

#[derive(Debug, Error)]
#[error("{step}: {reason}")]
pub struct StepError {
    pub step: String,
    pub reason: String,
}

pub fn step_error(step: impl Into<String>, reason: impl std::fmt::Display) -> StepError {
    StepError {
        step: step.into(),
        reason: reason.to_string(),
    }
}

/// The `ezchain` binary bound to one config file.
#[derive(Clone, Debug)]
pub struct Ezchain {
    pub binary: PathBuf,
    pub config: PathBuf,
    /// Print each command line to stderr before running it (the drill's transcript).
    pub echo: bool,
}

impl Ezchain {
    /// Runs `ezchain [--json] --config <config> <args>` to completion.
    fn output(&self, args: &[&str], json: bool) -> Result<std::process::Output, StepError> {
        if self.echo {
            eprintln!("$ ezchain --config {} {}", self.config.display(), args.join(" "));
        }
        let mut command = Command::new(&self.binary);
        if json {
            command.arg("--json");
        }
        command
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| step_error(args.join(" "), format!("cannot run {}: {e}", self.binary.display())))
    }

    /// Runs `ezchain --json … <args>`; the parsed JSON it printed, or the error it reported.
    pub fn json(&self, args: &[&str]) -> Result<Value, StepError> {
        let output = self.output(args, true)?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(step_error(
                args.join(" "),
                format!("exit {}: {}{}", output.status, stderr.trim(), stdout.trim()),
            ));
        }
        Ok(serde_json::from_str(stdout.trim()).unwrap_or(Value::String(stdout.trim().to_string())))
    }

    /// Runs `ezchain --json …` and returns whether it succeeded with the JSON it printed (a
    /// failing `node status` still prints every node's state).
    pub fn json_any(&self, args: &[&str]) -> Result<(bool, Value), StepError> {
        let output = self.output(args, true)?;
        let value = serde_json::from_slice(&output.stdout).map_err(|_| {
            step_error(
                args.join(" "),
                format!(
                    "printed no JSON (exit {}): {}",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
            )
        })?;
        Ok((output.status.success(), value))
    }

    /// Runs it (text output) and returns whether it succeeded, with its stdout and stderr.
    pub fn status(&self, args: &[&str]) -> Result<(bool, String), StepError> {
        let output = self.output(args, false)?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Ok((output.status.success(), text))
    }
}

/// A folder with an `ezchain.yaml` for a local testnet on `start_port…` and a service on
/// `api_port`, keystores at test cost.
pub struct Sandbox {
    pub dir: PathBuf,
    pub exe: Ezchain,
}

/// Keystore cost of sandbox wallets (far below production: these wallets hold test coins).
pub const SANDBOX_SCRYPT_LOG_N: u8 = 10;

impl Sandbox {
    pub fn create(
        binary: &Path,
        dir: &Path,
        start_port: u16,
        api_port: u16,
        consensus: u32,
    ) -> Result<Self, StepError> {
        std::fs::create_dir_all(dir).map_err(|e| step_error("sandbox", format!("{}: {e}", dir.display())))?;
        let mut config = AppConfig::default();
        config.network.start_port = start_port;
        config.network.consensus_nodes = consensus;
        config.network.account_nodes = 0;
        config.app.api_port = api_port;
        config.wallet.scrypt_log_n = SANDBOX_SCRYPT_LOG_N;
        config.wallet.send_wait_seconds = 30;
        let path = dir.join("ezchain.yaml");
        config.save(&path).map_err(|e| step_error("sandbox", e))?;
        Ok(Sandbox {
            dir: dir.to_path_buf(),
            exe: Ezchain {
                binary: binary.to_path_buf(),
                config: path,
                echo: false,
            },
        })
    }

    /// A second wallet beside the first: the same network (read after `node start` wrote it),
    /// its own data folder and API port.
    pub fn second_wallet(&self, name: &str, api_port: u16) -> Result<Ezchain, StepError> {
        let mut config = AppConfig::load(&self.exe.config).map_err(|e| step_error("sandbox", e))?;
        config.app.data_dir = PathBuf::from(format!(".{name}"));
        config.app.log_dir = PathBuf::from(format!(".{name}/logs"));
        config.app.api_token_file = PathBuf::from(format!(".{name}/api.token"));
        config.app.api_port = api_port;
        let path = self.dir.join(format!("{name}.yaml"));
        config.save(&path).map_err(|e| step_error("sandbox", e))?;
        Ok(Ezchain {
            binary: self.exe.binary.clone(),
            config: path,
            echo: self.exe.echo,
        })
    }
}

/// A running `ezchain serve` and a client of its API.
pub struct Service {
    exe: Ezchain,
    child: Option<Child>,
    /// Stops the child on a SIGINT/SIGTERM of this process (drops do not run then).
    exit_guard: Option<crate::cleanup::Cleanup>,
    pub base: String,
    http: reqwest::blocking::Client,
}

impl Service {
    /// A client of a service some other process runs (a local account node's).
    pub fn attach(exe: &Ezchain) -> Result<Self, StepError> {
        let config = AppConfig::load(&exe.config).map_err(|e| step_error("attach", e))?;
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| step_error("attach", e))?;
        Ok(Service {
            exe: exe.clone(),
            child: None,
            exit_guard: None,
            base: format!("http://{}:{}", config.app.api_host, config.app.api_port),
            http,
        })
    }

    /// Starts `ezchain serve` for `exe`'s config and waits until `/health` answers.
    pub fn start(exe: &Ezchain) -> Result<Self, StepError> {
        let config = AppConfig::load(&exe.config).map_err(|e| step_error("serve", e))?;
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| step_error("serve", e))?;
        let mut service = Service {
            exe: exe.clone(),
            child: None,
            exit_guard: None,
            base: format!("http://{}:{}", config.app.api_host, config.app.api_port),
            http,
        };
        service.restart()?;
        Ok(service)
    }

    /// (Re)starts the process and waits for `/health`.
    pub fn restart(&mut self) -> Result<(), StepError> {
        self.stop();
        if self.exe.echo {
            eprintln!("$ ezchain --config {} serve &", self.exe.config.display());
        }
        let log = self.exe.config.with_extension("serve.log");
        let child = launcher::spawn(
            &self.exe.binary,
            [OsStr::new("--config"), self.exe.config.as_os_str(), OsStr::new("serve")],
            &log,
            Attachment::Child,
        )
        .map_err(|e| step_error("serve", format!("cannot start {}: {e}", self.exe.binary.display())))?;
        if let Ok(pid) = i32::try_from(child.id()) {
            self.exit_guard = Some(crate::cleanup::on_exit(move || {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
            }));
        }
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.health() {
                return Ok(());
            }
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(step_error(
                    "serve",
                    format!("exited with {status}; see {}", log.display()),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(step_error(
            "serve",
            format!("no /health answer within 30 s; see {}", log.display()),
        ))
    }

    /// SIGTERM, then SIGKILL after 8 s.
    pub fn stop(&mut self) {
        if let Some(guard) = self.exit_guard.take() {
            guard.disarm();
        }
        if let Some(mut child) = self.child.take() {
            launcher::stop_child(&mut child, Duration::from_secs(8));
        }
    }

    pub fn health(&self) -> bool {
        self.http
            .get(format!("{}/health", self.base))
            .timeout(Duration::from_secs(5))
            .send()
            .ok()
            .and_then(|r| r.json::<Value>().ok())
            .is_some_and(|body| body["ok"] == true)
    }

    fn token(&self) -> Result<String, StepError> {
        let config = AppConfig::load(&self.exe.config).map_err(|e| step_error("token", e))?;
        ezchain_host::secret::read_token(&config.token_file()).map_err(|e| step_error("token", e))
    }

    pub fn get(&self, path: &str) -> Result<(u16, Value), StepError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("x-ez-token", self.token()?)
            .send()
            .map_err(|e| step_error(path, e))?;
        let status = response.status().as_u16();
        Ok((status, response.json().unwrap_or(Value::Null)))
    }

    /// The raw text of a GET (for `/metrics`).
    pub fn text(&self, path: &str) -> Result<String, StepError> {
        if self.exe.echo {
            eprintln!("$ curl {}{path}", self.base);
        }
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .and_then(|r| r.text())
            .map_err(|e| step_error(path, e))
    }

    /// POST with a fresh nonce.
    pub fn post(&self, path: &str, body: Value) -> Result<(u16, Value), StepError> {
        self.post_with_nonce(path, &fresh_nonce(), body)
    }

    pub fn post_with_nonce(&self, path: &str, nonce: &str, body: Value) -> Result<(u16, Value), StepError> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("x-ez-token", self.token()?)
            .header("x-ez-nonce", nonce)
            .json(&body)
            .send()
            .map_err(|e| step_error(path, e))?;
        let status = response.status().as_u16();
        Ok((status, response.json().unwrap_or(Value::Null)))
    }

    /// Pays `amount` to `recipient`, waiting up to `wait_seconds` for delivery.
    pub fn send(&self, recipient: &str, amount: u64, wait_seconds: u64) -> Result<Value, StepError> {
        let (status, body) = self.post(
            "/tx/send",
            json!({ "recipient": recipient, "amount": amount, "wait_seconds": wait_seconds }),
        )?;
        if status != 200 {
            return Err(step_error("/tx/send", format!("{status}: {}", body["error"])));
        }
        Ok(body["data"].clone())
    }

    pub fn metrics_url(&self) -> String {
        format!("{}/metrics", self.base)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn fresh_nonce() -> String {
    let mut bytes = [0u8; 16];
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}

/// Stops the sandbox's local testnet (best effort, for clean-up paths).
pub fn stop_testnet(exe: &Ezchain) {
    let _ = exe.status(&["node", "stop"]);
}

/// The wallet's `available_balance` as its local state holds it (no network).
pub fn local_balance(exe: &Ezchain) -> Result<u64, StepError> {
    let value = exe.json(&["wallet", "balance"])?;
    value["available_balance"]
        .as_u64()
        .ok_or_else(|| step_error("wallet balance", format!("no available_balance in {value}")))
}

/// The wallet's address.
pub fn address(exe: &Ezchain) -> Result<String, StepError> {
    let value = exe.json(&["wallet", "show"])?;
    value["address"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| step_error("wallet show", format!("no address in {value}")))
}
