//! `ezchain config show|validate`: the effective settings and where each came from.

use crate::CliError;
use clap::Subcommand;
use ezchain_wallet::AppConfig;
use std::path::Path;

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// The effective settings, each with where it came from (the file or the default).
    Show,
    /// Checks the settings file: exit 0 when it loads, the error otherwise.
    Validate,
}

/// `(dotted key, value)` for every leaf of a YAML/JSON tree.
fn leaves(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaves(&path, child, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

fn bad_config(e: impl std::fmt::Display) -> CliError {
    CliError {
        code: "bad_config",
        message: e.to_string(),
        hint: Some("fix the key it names (docs/WALLET.md §1 lists them)"),
    }
}

pub fn run(command: ConfigCommand, config_path: &Path, json: bool) -> Result<(), CliError> {
    let config = AppConfig::load(config_path).map_err(bad_config)?;
    match command {
        ConfigCommand::Validate => {
            if json {
                crate::print_json(serde_json::json!({ "ok": true, "file": config_path }));
            } else {
                println!("{}: valid", config_path.display());
            }
            Ok(())
        }
        ConfigCommand::Show => {
            // The keys the file sets; every other key has its default.
            let in_file: serde_json::Value = std::fs::read_to_string(config_path)
                .ok()
                .and_then(|text| serde_norway::from_str(&text).ok())
                .unwrap_or(serde_json::Value::Null);
            let mut set = Vec::new();
            leaves("", &in_file, &mut set);
            let effective = serde_json::to_value(&config).map_err(bad_config)?;
            let mut all = Vec::new();
            leaves("", &effective, &mut all);
            let source = |key: &str| {
                if set.iter().any(|(k, _)| k == key) {
                    "file"
                } else {
                    "default"
                }
            };
            if json {
                let rows: Vec<serde_json::Value> = all
                    .iter()
                    .map(|(key, value)| serde_json::json!({ "key": key, "value": value, "from": source(key) }))
                    .collect();
                crate::print_json(
                    serde_json::to_string_pretty(&serde_json::json!({ "file": config_path, "settings": rows }))
                        .unwrap_or_default(),
                );
            } else {
                println!("# {}", config_path.display());
                for (key, value) in &all {
                    println!("{key:<36} {:<28} ({})", value.to_string(), source(key));
                }
            }
            Ok(())
        }
    }
}
