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

#[test]
fn the_node_error_codes_in_node_md_are_the_rpc_crates() {
    use ezchain_rpc::ErrorCode;
    let path = workspace_root().join("docs/NODE.md");
    let text = std::fs::read_to_string(&path).expect("NODE.md");
    let (start_marker, end_marker) = ("<!-- node-error-codes:start -->\n", "<!-- node-error-codes:end -->");
    let start = text.find(start_marker).expect("start marker") + start_marker.len();
    let end = text.find(end_marker).expect("end marker");
    let mut table = String::from("| Code | Meaning |\n|---|---|\n");
    for code in ErrorCode::ALL {
        table.push_str(&format!("| `{}` | {} |\n", code.as_str(), code.meaning()));
    }
    if text[start..end] != table {
        if std::env::var_os("EZ_UPDATE_DOCS").is_some() {
            let updated = format!("{}{table}{}", &text[..start], &text[end..]);
            std::fs::write(&path, updated).expect("write NODE.md");
        } else {
            panic!(
                "docs/NODE.md's error-code table differs from ezchain_rpc::ErrorCode; run with EZ_UPDATE_DOCS=1, or paste:\n{table}"
            );
        }
    }
}
