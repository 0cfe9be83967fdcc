//! Bounds on files flowgate reads from disk (configs, blueprints, seeds, templates, secrets):
//! only regular files, never more than a byte cap, and YAML nesting checked in linear time
//! before serde_yaml sees the text.
//!
//! serde_yaml (libyaml) loads a whole document into events before its own depth limit applies,
//! and its scanner walks every open flow level for every token, so `[[[[…` of a few MiB takes
//! hours to reject. yaml-rust2's parser is driven here one event at a time and stopped at the
//! first level past [`MAX_YAML_DEPTH`], so its per-token work never exceeds that depth.

use std::io::Read;
use std::path::Path;
use yaml_rust2::parser::{Event, Parser};

/// Deepest YAML nesting accepted, as serde_yaml's own limit.
pub const MAX_YAML_DEPTH: usize = 128;

/// Largest template file read from `ui.templates` (pages and mail).
pub const MAX_TEMPLATE_BYTES: u64 = 1 << 20;

/// Why a YAML text was refused before parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NestingError {
    /// 1-based line of the first node past the limit (or of the syntax error).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// Checks that `text` nests no deeper than [`MAX_YAML_DEPTH`]. Syntax errors are left to the
/// real parser (which words them better; it stops at the same place), except yaml-rust2's own
/// flow-level limit (255), which its scanner can reach while looking ahead for a simple key
/// before the parser has reported level 129.
pub fn check_yaml_nesting(text: &str) -> Result<(), NestingError> {
    let mut parser = Parser::new_from_str(text);
    let mut depth = 0usize;
    loop {
        match parser.next_token() {
            Ok((Event::StreamEnd, _)) => return Ok(()),
            Err(e) if e.info() == "recursion limit exceeded" => {
                return Err(NestingError {
                    line: e.marker().line(),
                    column: e.marker().col() + 1,
                    message: format!("nested deeper than {MAX_YAML_DEPTH} levels"),
                })
            }
            Err(_) => return Ok(()),
            Ok((Event::SequenceStart(..) | Event::MappingStart(..), mark)) => {
                depth += 1;
                if depth > MAX_YAML_DEPTH {
                    return Err(NestingError {
                        line: mark.line(),
                        column: mark.col() + 1,
                        message: format!("nested deeper than {MAX_YAML_DEPTH} levels"),
                    });
                }
            }
            Ok((Event::SequenceEnd | Event::MappingEnd, _)) => depth = depth.saturating_sub(1),
            Ok(_) => {}
        }
    }
}

/// Reads a regular file of at most `max` bytes. Directories, FIFOs, devices and sockets are
/// refused before opening (opening a FIFO would block), and the open file is checked again so a
/// swapped path cannot slip a device in; the read itself stops one byte past `max`.
pub fn read_capped(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind};
    let not_regular = || Error::new(ErrorKind::InvalidInput, "not a regular file");
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(not_regular());
    }
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(Error::new(ErrorKind::InvalidData, format!("larger than {max} bytes")));
    }
    Ok(bytes)
}

/// [`read_capped`] for UTF-8 text.
pub fn read_capped_string(path: &Path, max: u64) -> std::io::Result<String> {
    String::from_utf8(read_capped(path, max)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_nesting_passes_and_deep_nesting_names_its_place() {
        let ok = format!(
            "a: {}1{}\n",
            "[".repeat(MAX_YAML_DEPTH - 1),
            "]".repeat(MAX_YAML_DEPTH - 1)
        );
        assert_eq!(check_yaml_nesting(&ok), Ok(()));
        let deep = format!("a:\n  b: {}1{}\n", "[".repeat(200), "]".repeat(200));
        let e = check_yaml_nesting(&deep).expect_err("200 levels accepted");
        assert_eq!((e.line, e.message.as_str()), (2, "nested deeper than 128 levels"));
        let deeper = format!("a: {}1{}\n", "[".repeat(20_000), "]".repeat(20_000));
        let e = check_yaml_nesting(&deeper).expect_err("20,000 levels accepted");
        assert_eq!((e.line, e.message.as_str()), (1, "nested deeper than 128 levels"));
        // Unclosed or broken input is left to the real parser.
        assert_eq!(check_yaml_nesting("a: [1, 2\n"), Ok(()));
        assert_eq!(check_yaml_nesting("a: {{{"), Ok(()));
    }

    #[test]
    fn reads_are_capped_and_only_regular_files() {
        let dir = std::env::temp_dir().join(format!("flowgate-input-limits-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("f.txt");
        std::fs::write(&f, "12345").unwrap();
        assert_eq!(read_capped(&f, 5).unwrap(), b"12345");
        assert!(read_capped(&f, 4)
            .unwrap_err()
            .to_string()
            .contains("larger than 4 bytes"));
        assert!(read_capped(&dir, 10)
            .unwrap_err()
            .to_string()
            .contains("not a regular file"));
        assert!(read_capped(Path::new("/dev/zero"), 10)
            .unwrap_err()
            .to_string()
            .contains("not a regular file"));
        std::fs::write(&f, [0xff, 0xfe]).unwrap();
        assert!(read_capped_string(&f, 10).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
