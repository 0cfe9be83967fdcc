//! The config loader: arbitrary UTF-8 as the main file, through parsing and validation.
//!
//! The loader reads the disk by design (`include:` globs, `blueprints:`, `*_file` secrets,
//! template dirs). To keep runs deterministic and fast the target runs from an empty temporary
//! directory and skips inputs that name the device/proc trees or a recursive glob; those paths
//! are covered by review (see docs/performance.md, "Fuzzing").
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Once;

static INIT: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    INIT.call_once(|| {
        let dir = std::env::temp_dir().join(format!("flowgate-fuzz-config-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::env::set_current_dir(&dir);
    });
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if ["/dev", "/proc", "/sys", "**", "/run", "/tmp"].iter().any(|p| text.contains(p)) {
        return;
    }
    match flowgate::Config::from_yaml_str(text, "fuzz.yaml") {
        Ok(_) => {}
        Err(errs) => {
            // Error rendering must not panic either (it locates paths in the text).
            assert!(!errs.0.is_empty(), "Err with no errors");
            let _ = errs.to_string();
        }
    }
});
