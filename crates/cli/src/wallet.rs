//! `ezchain wallet …` and `ezchain tx …`: the account node from the command line.

use crate::CliError;
use crate::password::{PasswordArgs, Purpose};
use clap::{ArgGroup, Args, Subcommand};
use ezchain_protocol::Address;
use ezchain_wallet::history::{TxRecord, TxStatus};
use ezchain_wallet::keystore::KeystoreError;
use ezchain_wallet::wallet_file::{self, WalletFileError};
use ezchain_wallet::{AppConfig, OpenError, Wallet, WalletError, WalletOpener};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum WalletCommand {
    /// Create a wallet: prints its address and its 12-word mnemonic, once.
    Create {
        #[command(flatten)]
        password: PasswordArgs,
        /// A label for the wallet, kept in its keystore file.
        #[arg(long, default_value = "default")]
        name: String,
        /// Replace an existing wallet (its mnemonic is the only way back to it).
        #[arg(long)]
        force: bool,
    },
    /// Restore a wallet from its mnemonic or import a Web3 v3 keystore file.
    #[command(group(ArgGroup::new("source").required(true).args(["mnemonic", "keystore"])))]
    Import {
        /// The 12 recovery words, in order, in one quoted argument.
        #[arg(long)]
        mnemonic: Option<String>,
        /// A Web3 v3 keystore file (another wallet's export) to import as is.
        #[arg(long)]
        keystore: Option<PathBuf>,
        #[command(flatten)]
        password: PasswordArgs,
        /// A label for the wallet, kept in its keystore file.
        #[arg(long, default_value = "default")]
        name: String,
        /// Replace an existing wallet (back up its mnemonic first: it is the only way back).
        #[arg(long)]
        force: bool,
    },
    /// Address and name of the wallet (no password needed).
    Show,
    /// Balance; with --password also receives incoming payments and finishes pending sends.
    Balance {
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// The exact-range checkpoints this wallet holds.
    Checkpoints,
}

#[derive(Subcommand, Debug)]
pub enum TxCommand {
    /// Ask the testnet faucet for coins; they arrive as a verified transfer.
    Faucet {
        /// Units to move (at most security.max_tx_amount).
        #[arg(long)]
        amount: u64,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Pay an address and wait for finality and delivery.
    Send(SendArgs),
    /// Fetch, verify and store incoming payments from the mailbox.
    Receive {
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Every send, receipt and rejected package.
    History,
    /// Sends not yet delivered.
    Pending,
    /// Receipts of this wallet's finalized bundles.
    Receipts,
}

#[derive(Args, Debug)]
pub struct SendArgs {
    /// The address paid: 0x + 40 hex digits (mixed case must match its EIP-55 checksum).
    #[arg(long)]
    recipient: String,
    /// Units to move (at most security.max_tx_amount).
    #[arg(long)]
    amount: u64,
    #[command(flatten)]
    password: PasswordArgs,
    /// Your id for this payment: repeating a send with the same id never pays twice.
    #[arg(long)]
    client_tx_id: Option<String>,
    /// Seconds to wait for finality and delivery (default: wallet.send_wait_seconds).
    #[arg(long)]
    wait: Option<u64>,
}

fn wallet_error(error: WalletError) -> CliError {
    let hint = match &error {
        _ if error.code() == "faucet_refused" => {
            Some("the faucet's limits (the message says which): ask for less, or wait until the hour has passed")
        }
        WalletError::Node(ezchain_wallet::client::ClientError::Unreachable { .. }) => {
            Some("check network.bootstrap_nodes in ezchain.yaml and that the node runs")
        }
        WalletError::Node(_) => Some("the node refused or garbled the request; the message says why"),
        WalletError::InsufficientFunds { .. } => Some("see `ezchain wallet balance`; ask the faucet on a testnet"),
        WalletError::WrongChain { .. } => Some("the wallet and the node must use the same genesis.json"),
        WalletError::Ownership(_) => Some("finish the pending send first: `ezchain tx pending`"),
        WalletError::BehindChain { .. } => Some("see docs/RUNBOOK.md §5 (restoring a wallet)"),
        WalletError::DuplicateTransaction { .. } => Some("`ezchain tx history` shows what the id paid"),
        _ => None,
    };
    CliError {
        code: error.code(),
        message: error.to_string(),
        hint,
    }
}

fn file_error(error: WalletFileError) -> CliError {
    let (code, hint) = match &error {
        WalletFileError::Exists(_) => ("wallet_exists", Some("pass --force to replace it")),
        WalletFileError::Missing(_) => (
            "wallet_not_found",
            Some("run `ezchain wallet create` (it asks for a password)"),
        ),
        WalletFileError::Keystore(KeystoreError::WrongPassword) => ("wrong_password", None),
        WalletFileError::Keystore(KeystoreError::BadMnemonic(_)) => (
            "invalid_mnemonic",
            Some("check the words and their order; the last word carries a checksum"),
        ),
        WalletFileError::Keystore(_) => ("bad_keystore", None),
        WalletFileError::PasswordTooShort { .. } => ("password_too_short", Some("choose a longer password")),
        WalletFileError::Io { .. } => ("io_error", None),
    };
    CliError {
        code,
        message: error.to_string(),
        hint,
    }
}

fn config_error(message: String) -> CliError {
    CliError {
        code: "bad_config",
        message,
        hint: Some("check ezchain.yaml (or the file given with --config)"),
    }
}

struct Context {
    config: AppConfig,
    data_dir: PathBuf,
}

impl Context {
    fn load(config_path: &Path) -> Result<Self, CliError> {
        let config = AppConfig::load(config_path).map_err(|e| config_error(e.to_string()))?;
        let data_dir = config.data_dir();
        Ok(Context { config, data_dir })
    }

    /// Opens the wallet; with a password it can send and receive.
    fn open(&self, password: Option<&str>) -> Result<Wallet, CliError> {
        let file = wallet_file::load(&self.data_dir).map_err(file_error)?;
        let key = match password {
            Some(password) => Some(
                file.decrypt(password)
                    .map_err(|e| file_error(WalletFileError::Keystore(e)))?,
            ),
            None => None,
        };
        WalletOpener::new(self.config.clone())
            .open(key)
            .map_err(|error| match error {
                OpenError::File(e) => file_error(e),
                OpenError::Config(message) => CliError {
                    code: "bad_genesis",
                    message,
                    hint: Some("`ezchain node start` runs a local devnet here; `ezchain network join --bootstrap HOST:PORT --genesis-hash 0x…` joins a hosted testnet (or set network.genesis_file)"),
                },
                OpenError::Wallet(e) => wallet_error(e),
            })
    }
}

/// The command's answer: `value` as JSON with `--json`, else the text.
pub(crate) fn print(json_output: bool, value: serde_json::Value, text: impl FnOnce() -> String) {
    if json_output {
        crate::print_json(serde_json::to_string_pretty(&value).unwrap_or_default());
    } else {
        println!("{}", text());
    }
}

pub fn run_wallet(command: WalletCommand, config_path: &Path, json_output: bool) -> Result<(), CliError> {
    let context = Context::load(config_path)?;
    let log_n = context.config.wallet.scrypt_log_n;
    match command {
        WalletCommand::Create { password, name, force } => {
            let password = password.required(Purpose::NewWallet)?;
            let (address, mnemonic) =
                wallet_file::create(&context.data_dir, &name, &password, log_n, force).map_err(file_error)?;
            print(json_output, json!({ "address": address, "mnemonic": mnemonic }), || {
                format!(
                    "address   {address}\nmnemonic  {mnemonic}\n\nWrite the mnemonic down and keep it offline: it is shown only \
                     this once, is not stored anywhere, and is the only way to restore this wallet."
                )
            });
        }
        WalletCommand::Import {
            mnemonic,
            keystore,
            password,
            name,
            force,
        } => {
            // A mnemonic makes a new keystore (asked twice); a keystore is opened with its own.
            let purpose = if mnemonic.is_some() {
                Purpose::NewWallet
            } else {
                Purpose::Unlock
            };
            let password = password.required(purpose)?;
            let address = match (mnemonic, keystore) {
                (Some(words), _) => {
                    wallet_file::import_mnemonic(&context.data_dir, &name, &words, &password, log_n, force)
                }
                (None, Some(path)) => wallet_file::import_keystore(&context.data_dir, &name, &path, &password, force),
                (None, None) => unreachable!("clap requires --mnemonic or --keystore"),
            }
            .map_err(file_error)?;
            print(json_output, json!({ "address": address }), || {
                format!("address   {address}")
            });
        }
        WalletCommand::Show => {
            let file = wallet_file::load(&context.data_dir).map_err(file_error)?;
            let address = file.address().map_err(|e| file_error(WalletFileError::Keystore(e)))?;
            let value = json!({
                "address": address,
                "name": file.name,
                "created_at": file.created_at,
                "data_dir": context.data_dir,
            });
            print(json_output, value, || {
                format!(
                    "address   {address}\nname      {}\ndata dir  {}",
                    file.name.as_deref().unwrap_or("-"),
                    context.data_dir.display()
                )
            });
        }
        WalletCommand::Balance { password } => {
            let password = password.given()?;
            let mut wallet = context.open(password.as_deref())?;
            let mut received = None;
            if password.is_some() {
                wallet.resume(Duration::from_secs(0)).map_err(wallet_error)?;
                received = Some(wallet.receive().map_err(wallet_error)?);
            }
            let balance = wallet.balance();
            let mut value = json!(balance);
            value["synced_height"] = json!(wallet.synced_height());
            if let Some(report) = &received {
                value["received"] = json!(report);
            }
            print(json_output, value, || {
                let mut text = format!(
                    "address            {}\navailable balance  {}\npending outgoing   {}\npending change     {}\ntotal              {}\nsynced height      {}",
                    balance.address,
                    balance.available_balance,
                    balance.pending_outgoing,
                    balance.pending_change,
                    balance.total_balance,
                    wallet.synced_height()
                );
                if let Some(report) = &received {
                    text.push_str(&receive_summary(report));
                }
                text
            });
        }
        WalletCommand::Checkpoints => {
            let wallet = context.open(None)?;
            let held = wallet.checkpoints();
            let checkpoints: Vec<_> = held.iter().map(ezchain_wallet::history::checkpoint_json).collect();
            print_list(
                json_output,
                json!({ "checkpoints": checkpoints }),
                held,
                "no checkpoints yet (one is made for every value that leaves this wallet)",
                |c| {
                    format!(
                        "units {}  last held by {} up to its bundle {} at height {}",
                        c.value, c.owner, c.unit.seq, c.unit.height
                    )
                },
            );
        }
    }
    Ok(())
}

fn receive_summary(report: &ezchain_wallet::wallet::ReceiveReport) -> String {
    let mut text = String::new();
    for record in &report.accepted {
        text.push_str(&format!(
            "\nreceived {} from {} (verified)",
            record.amount, record.counterparty
        ));
    }
    for record in &report.rejected {
        text.push_str(&format!(
            "\nREJECTED package {}: {}",
            record.tx_ref(),
            record.reason.as_deref().unwrap_or("")
        ));
    }
    if report.deferred > 0 {
        text.push_str(&format!(
            "\n{} package(s) wait for their block; run again shortly",
            report.deferred
        ));
    }
    text
}

fn record_text(record: &TxRecord) -> String {
    let mut text = format!(
        "{}  {:<9} {:<10} {:>12}  {}  tx {}",
        ezchain_wallet::history::rfc3339(record.created_at_ms),
        format!("{:?}", record.kind).to_lowercase(),
        format!("{:?}", record.status).to_lowercase(),
        record.amount,
        record.counterparty,
        record.tx_ref()
    );
    if let Some(height) = record.height {
        text.push_str(&format!("  height {height}"));
    }
    if let Some(delay) = record.confirmation_delay_ms() {
        text.push_str(&format!("  confirmed in {delay} ms"));
    }
    if let Some(reason) = &record.reason {
        text.push_str(&format!("  ({reason})"));
    }
    text
}

fn records_output(json_output: bool, records: &[TxRecord], empty: &str) {
    let values: Vec<_> = records.iter().map(TxRecord::to_json).collect();
    print_list(json_output, json!(values), records, empty, record_text);
}

/// `document` as JSON, or one text line per item (`empty` when there are none).
fn print_list<T>(
    json_output: bool,
    document: serde_json::Value,
    items: &[T],
    empty: &str,
    line: impl Fn(&T) -> String,
) {
    print(json_output, document, || {
        if items.is_empty() {
            empty.to_string()
        } else {
            items.iter().map(line).collect::<Vec<_>>().join("\n")
        }
    });
}

/// The code of a send that is on its way but not delivered when the wait ended: exit 3.
pub const SEND_PENDING: &str = "send_pending";

pub fn run_tx(command: TxCommand, config_path: &Path, json_output: bool) -> Result<(), CliError> {
    let context = Context::load(config_path)?;
    match command {
        TxCommand::Faucet { amount, password } => {
            let password = password.required(Purpose::Unlock)?;
            let mut wallet = context.open(Some(&password))?;
            let address = wallet.address();
            let grant = wallet
                .client()
                .faucet(&address, amount)
                .map_err(|e| wallet_error(e.into()))?;
            let report = wallet.receive().map_err(wallet_error)?;
            let balance = wallet.balance();
            let value = json!({
                "address": address,
                "faucet_amount": grant.amount,
                "height": grant.height,
                "received": report,
                "available_balance": balance.available_balance,
                "total_balance": balance.total_balance,
            });
            print(json_output, value, || {
                format!(
                    "faucet paid {} in block {}{}\navailable balance  {}",
                    grant.amount,
                    grant.height,
                    receive_summary(&report),
                    balance.available_balance
                )
            });
        }
        TxCommand::Send(args) => {
            let recipient: Address = args.recipient.parse().map_err(|e| CliError {
                code: "invalid_recipient",
                message: format!("{}: {e}", args.recipient),
                hint: Some("an address is 0x + 40 hex digits (EIP-55 checksum if mixed case)"),
            })?;
            let password = args.password.required(Purpose::Unlock)?;
            let mut wallet = context.open(Some(&password))?;
            let wait = Duration::from_secs(args.wait.unwrap_or(context.config.wallet.send_wait_seconds));
            // Incoming values may be needed to pay; pick them up first (best effort).
            if let Err(e) = wallet.receive() {
                tracing::warn!(error = %e, "could not check the mailbox before sending");
            }
            let progress = crate::progress::Progress::spinner(format!(
                "paying {} to {recipient}: waiting for its block and the delivery",
                args.amount
            ));
            let outcome = wallet.send(recipient, args.amount, args.client_tx_id, wait);
            drop(progress);
            let outcome = outcome.map_err(wallet_error)?;
            let record = &outcome.record;
            let mut value = record.to_json();
            if let Some(stalled) = &outcome.stalled {
                value["stalled"] = json!({ "code": stalled.code(), "message": stalled.to_string() });
            }
            print(json_output, value, || {
                let mut text = format!(
                    "tx        {}\nstatus    {}\namount    {} to {}",
                    record.tx_ref(),
                    format!("{:?}", record.status).to_lowercase(),
                    record.amount,
                    record.counterparty
                );
                if let Some(height) = record.height {
                    text.push_str(&format!("\nheight    {height}"));
                }
                if let Some(delay) = record.confirmation_delay_ms() {
                    text.push_str(&format!("\nconfirmed in {delay} ms"));
                }
                if let Some(stalled) = &outcome.stalled {
                    text.push_str(&format!("\nstalled   {}: {stalled}", stalled.code()));
                }
                text
            });
            if matches!(
                record.status,
                TxStatus::Signed | TxStatus::Submitted | TxStatus::Finalized
            ) {
                return Err(CliError {
                    code: SEND_PENDING,
                    message: format!(
                        "payment {} is {}, not delivered within {} s; it is not lost and continues on its own",
                        record.tx_ref(),
                        format!("{:?}", record.status).to_lowercase(),
                        wait.as_secs()
                    ),
                    hint: Some(
                        "follow it with `ezchain tx pending`; `tx send` with the same --client-tx-id, `tx receive` or `wallet balance --password` finishes it",
                    ),
                });
            }
        }
        TxCommand::Receive { password } => {
            let password = password.required(Purpose::Unlock)?;
            let mut wallet = context.open(Some(&password))?;
            wallet.resume(Duration::from_secs(0)).map_err(wallet_error)?;
            let report = wallet.receive().map_err(wallet_error)?;
            let balance = wallet.balance();
            let mut value = json!(report);
            value["available_balance"] = json!(balance.available_balance);
            print(json_output, value, || {
                let summary = receive_summary(&report);
                format!(
                    "{}\navailable balance  {}",
                    if summary.is_empty() {
                        "nothing new in the mailbox"
                    } else {
                        summary.trim_start()
                    },
                    balance.available_balance
                )
            });
        }
        TxCommand::History => {
            let wallet = context.open(None)?;
            records_output(
                json_output,
                &wallet.history().map_err(wallet_error)?,
                "no transactions yet",
            );
        }
        TxCommand::Pending => {
            let wallet = context.open(None)?;
            records_output(json_output, &wallet.pending().map_err(wallet_error)?, "nothing pending");
        }
        TxCommand::Receipts => {
            let wallet = context.open(None)?;
            let receipts: Vec<_> = wallet
                .receipts()
                .iter()
                .map(|r| ezchain_wallet::history::receipt_json(r))
                .collect();
            print_list(json_output, json!(receipts), &receipts, "no receipts yet", |r| {
                format!("seq {}  height {}  block {}", r["seq"], r["height"], r["header_hash"])
            });
        }
    }
    Ok(())
}
