//! The authentik blueprint importer: arbitrary UTF-8 as one blueprint file, then the native
//! document it produces through `to_yaml` and `check` (the config validator).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Once;

static INIT: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    INIT.call_once(|| {
        let dir = std::env::temp_dir().join(format!("flowgate-fuzz-blueprint-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::env::set_current_dir(&dir);
    });
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `!File` reads what the blueprint names (capped at 1 MiB); keep it off the special trees.
    if ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p)) {
        return;
    }
    let files = vec![("fuzz.yaml".to_string(), text.to_string())];
    match flowgate::blueprint::import::import(&files, &Default::default()) {
        Ok(imported) => {
            let yaml = flowgate::blueprint::import::to_yaml(&imported.doc, &["fuzz.yaml".to_string()]);
            let _ = flowgate::blueprint::import::check(&yaml);
        }
        Err(errs) => assert!(!errs.is_empty(), "Err with no errors"),
    }
});
