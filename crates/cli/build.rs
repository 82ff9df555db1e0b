//! Build information for `ezchain --version`, `/status` and `ezchain_build_info`: the git commit
//! and its date when built from a checkout, `unknown` otherwise (a source archive). The commit's
//! date, not the clock's, so the same commit builds the same binary. Only the binary has this
//! script, so a new commit rebuilds the binary alone; it hands the values to the node and the
//! service as an `ezchain_host::build::BuildInfo`.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
        .filter(|text| !text.is_empty())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let date = git(&["log", "-1", "--format=%cs"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=EZCHAIN_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=EZCHAIN_BUILD_DATE={date}");
    // Rebuilt when the checked-out commit moves (HEAD, or the branch it names).
    let git_dir = git(&["rev-parse", "--git-dir"]).unwrap_or_default();
    if !git_dir.is_empty() {
        let head = Path::new(&git_dir).join("HEAD");
        println!("cargo:rerun-if-changed={}", head.display());
        if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!(
                "cargo:rerun-if-changed={}",
                Path::new(&git_dir).join(reference).display()
            );
        }
    }
}
