//! `flowgate import`: authentik blueprints to native YAML, checked as a config of its own
//! (`flowgate::loader::check_import`) before anything is written.

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `flowgate import`: errors and unsupported entries to standard error; the native YAML to
/// `out` (written atomically, only when the import succeeds) or standard output.
pub(crate) fn import_cmd(files: &[PathBuf], out: Option<&Path>, strict: bool) -> anyhow::Result<ExitCode> {
    let mut texts = Vec::new();
    for f in files {
        let text = flowgate::input_limits::read_capped_string(f, flowgate::config::MAX_CONFIG_BYTES)
            .with_context(|| format!("reading {}", f.display()))?;
        texts.push((f.display().to_string(), text));
    }
    let imported = match flowgate::blueprint::import::import(&texts, &Default::default()) {
        Ok(i) => i,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return Ok(ExitCode::from(super::EXIT_USAGE));
        }
    };
    for u in &imported.unsupported {
        eprintln!("not imported: {u}");
    }
    if strict && !imported.unsupported.is_empty() {
        eprintln!(
            "--strict: {} item(s) could not be imported; nothing written",
            imported.unsupported.len()
        );
        return Ok(ExitCode::from(super::EXIT_USAGE));
    }
    let names: Vec<String> = texts.iter().map(|(n, _)| n.clone()).collect();
    let yaml = flowgate::blueprint::import::to_yaml(&imported.doc, &names);
    if let Err(e) = flowgate::loader::check_import(&yaml) {
        eprintln!("the imported flows do not form a valid config:\n{e}");
        return Ok(ExitCode::from(super::EXIT_USAGE));
    }
    let Some(out) = out else {
        print!("{yaml}");
        if imported.seed.is_some() {
            eprintln!("users and groups were found: give -o to write them to a seed file");
        }
        return Ok(ExitCode::SUCCESS);
    };
    write_atomically(out, &yaml)?;
    if let Some(seed) = &imported.seed {
        let seed_path = out.with_extension("seed.yaml");
        write_atomically(&seed_path, &serde_yaml::to_string(seed)?)?;
        eprintln!(
            "users and groups written to {} (use it as identity.seed)",
            seed_path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `text` to a temporary file beside `path`, then renames it over `path`.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
