//! Documentation that states facts about the code is checked against the code.

use std::collections::BTreeMap;
use std::path::Path;

fn workspace_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// `crate -> its ezchain dependencies` (normal ones: what the crate compiles), from cargo.
fn crate_graph() -> BTreeMap<String, Vec<String>> {
    let output = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let mut graph = BTreeMap::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let name = package["name"].as_str().expect("name").to_string();
        let mut deps: Vec<String> = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str())
            .filter(|d| d.starts_with("ezchain-"))
            .map(String::from)
            .collect();
        deps.sort();
        graph.insert(name, deps);
    }
    graph
}

#[test]
fn the_crate_graph_in_architecture_md_is_cargo_metadata() {
    let text = std::fs::read_to_string(workspace_root().join("docs/ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let start = text.find("<!-- crate-graph:start -->").expect("graph start marker");
    let end = text.find("<!-- crate-graph:end -->").expect("graph end marker");
    let documented: BTreeMap<String, Vec<String>> = text[start..end]
        .lines()
        .filter(|line| line.starts_with("ezchain-"))
        .filter_map(|line| line.split_once("->"))
        .map(|(name, deps)| {
            let mut deps: Vec<String> = deps.split_whitespace().map(String::from).collect();
            deps.sort();
            (name.trim().to_string(), deps)
        })
        .collect();
    assert_eq!(documented, crate_graph(), "docs/ARCHITECTURE.md § Crate graph");
}

#[test]
fn the_wallet_service_never_compiles_the_consensus_engine() {
    let graph = crate_graph();
    let mut seen = vec!["ezchain-service".to_string()];
    let mut next = 0;
    while next < seen.len() {
        for dep in graph.get(&seen[next]).cloned().unwrap_or_default() {
            if !seen.contains(&dep) {
                seen.push(dep);
            }
        }
        next += 1;
    }
    assert!(
        !seen.iter().any(|c| c == "ezchain-node" || c == "ezchain-ops"),
        "the service reaches {seen:?}"
    );
}
