//! Source-tree checks, as rust-analyzer's `tidy`: every Rust file of the workspace's crates
//! (`crates/*/{src,tests,examples,benches}`) starts with a `//!` comment saying what it is for.

use std::path::{Path, PathBuf};

/// The workspace root: two levels above this crate's manifest (`crates/sentio`).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/sentio has a workspace two levels up")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, skipping `target/` and `vendor/` directories.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap_or_default();
        if path.is_dir() {
            if name != "target" && name != "vendor" {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_source_file_starts_with_a_module_doc_comment() {
    let root = workspace_root();
    let mut files = Vec::new();
    for krate in std::fs::read_dir(root.join("crates")).unwrap() {
        let krate = krate.unwrap().path();
        for part in ["src", "tests", "examples", "benches"] {
            rust_files(&krate.join(part), &mut files);
        }
    }
    // The walk must have found this very file, or it checked nothing.
    assert!(
        files.iter().any(|f| f.ends_with("tests/e2e/tidy.rs")),
        "the walk from {} missed tests/e2e/tidy.rs",
        root.display()
    );
    let mut missing: Vec<String> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .map(|f| f.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    missing.sort();
    assert!(
        missing.is_empty(),
        "{} files do not start with a `//!` comment saying what they are for:\n{}",
        missing.len(),
        missing.join("\n")
    );
}
