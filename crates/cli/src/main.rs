//! `ezchain`: one binary, a thin layer of clap subcommands over the EZchain crates.
//!
//! Subcommand families arrive with the crates they front (`testnet`, `node`, `wallet`, `tx`,
//! `serve`, `ops`, `bench`); each maps its errors to `error[<code>]: <message>` on stderr.

use clap::Parser;

/// EZchain: a payment blockchain where recipients verify the value they receive.
#[derive(Parser, Debug)]
#[command(name = "ezchain", version, about, long_about = None, arg_required_else_help = true)]
struct Cli {
    /// Print the protocol versions this build speaks and exit.
    #[arg(long)]
    protocol_info: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.protocol_info {
        println!("bundle envelope version: {}", ezchain_protocol::bundle::BUNDLE_VERSION);
        println!("block header version:    {}", ezchain_protocol::block::BLOCK_VERSION);
        println!("sparse Merkle tree depth: {}", ezchain_protocol::smt::DEPTH);
    }
    Ok(())
}
