//! The authentik blueprint importer: arbitrary UTF-8 as one blueprint file, then the native
//! document it produces through `to_yaml` and `check` (the config validator). The file is named
//! inside an empty temporary directory so that `!File` paths resolve there, not in the corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static NAME: OnceLock<String> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let name = NAME.get_or_init(|| {
        let dir = std::env::temp_dir().join("flowgate-fuzz-empty");
        let _ = std::fs::create_dir_all(&dir);
        dir.join("fuzz.yaml").display().to_string()
    });
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `!File` reads what the blueprint names (capped at 1 MiB); keep it off the special trees.
    if ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p)) {
        return;
    }
    let files = vec![(name.clone(), text.to_string())];
    match flowgate::blueprint::import::import(&files, &Default::default()) {
        Ok(imported) => {
            let yaml = flowgate::blueprint::import::to_yaml(&imported.doc, std::slice::from_ref(name));
            let _ = flowgate::loader::check_import(&yaml);
        }
        Err(errs) => assert!(!errs.is_empty(), "Err with no errors"),
    }
});
