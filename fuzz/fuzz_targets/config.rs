//! The config loader: arbitrary UTF-8 as the main file, through parsing and validation.
//!
//! This is `Config::from_yaml_str(text, name)` with one change: the file's base directory is an
//! empty temporary directory instead of the working directory. The loader reads the disk by
//! design (`include:` globs, `blueprints:`, `*_file` secrets), so relative paths must not reach
//! the fuzzer's own corpus; inputs naming the device/proc trees or a recursive glob are skipped
//! (see docs/performance.md, "Fuzzing", for what review found there).
#![no_main]

use flowgate::config::{Config, Source};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

static BASE: OnceLock<PathBuf> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let base = BASE.get_or_init(|| {
        let dir = std::env::temp_dir().join("flowgate-fuzz-empty");
        let _ = std::fs::create_dir_all(&dir);
        dir
    });
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if ["/dev", "/proc", "/sys", "**"].iter().any(|p| text.contains(p)) {
        return;
    }
    let source = Source {
        name: "fuzz.yaml".into(),
        text: text.into(),
        base_dir: base.clone(),
    };
    match Config::from_sources(vec![source]) {
        Ok(_) => {}
        Err(errs) => {
            // Error rendering must not panic either (it locates paths in the text).
            assert!(!errs.0.is_empty(), "Err with no errors");
            let _ = errs.to_string();
        }
    }
});
