//! What a binary is: its version, the git commit it was built from and that commit's date. The
//! binary fills it in at build time (its build script) and hands it to the node and the service.

use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BuildInfo {
    pub version: String,
    /// The commit, abbreviated; `unknown` outside a git checkout.
    pub commit: String,
    /// The commit's date (YYYY-MM-DD), or `unknown`.
    pub date: String,
}

impl BuildInfo {
    pub fn new(version: &str, commit: &str, date: &str) -> Self {
        BuildInfo {
            version: version.into(),
            commit: commit.into(),
            date: date.into(),
        }
    }

    /// Nothing known (tests, or a library used without the binary).
    pub fn unknown() -> Self {
        BuildInfo::new(env!("CARGO_PKG_VERSION"), "unknown", "unknown")
    }

    /// `0.1.0 (commit 1a2b3c4d5e6f, 2026-12-02)`: what `ezchain --version` prints after the name.
    pub fn long_version(&self) -> String {
        format!("{} (commit {}, {})", self.version, self.commit, self.date)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_long_version_names_version_commit_and_date() {
        let build = BuildInfo::new("0.1.0", "1a2b3c4d5e6f", "2026-12-02");
        assert_eq!(build.long_version(), "0.1.0 (commit 1a2b3c4d5e6f, 2026-12-02)");
    }
}
