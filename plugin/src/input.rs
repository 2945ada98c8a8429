//! Reading manifests and the policy file from disk or stdin.

use std::io::Read;
use std::path::{Path, PathBuf};

use rollout_safe_policy::{Document, DocumentError, RolloutPolicy, parse_documents};

use crate::error::Error;

/// Files larger than this are refused (a manifest set is kilobytes to a few megabytes).
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Loads `--policy`, or the built-in defaults. A bad file is a usage error naming file, line and column.
pub fn load_policy(path: Option<&Path>) -> Result<RolloutPolicy, Error> {
    let Some(path) = path else {
        return Ok(RolloutPolicy::default());
    };
    let text = std::fs::read_to_string(path).map_err(|source| Error::PolicyUnreadable {
        path: path.display().to_string(),
        source,
    })?;
    RolloutPolicy::from_yaml(&text).map_err(|source| Error::PolicyInvalid {
        path: path.display().to_string(),
        source,
    })
}

/// Everything read from `-f` arguments: the objects, and what could not be read.
#[derive(Debug, Default)]
pub struct Manifests {
    pub documents: Vec<Document>,
    pub errors: Vec<DocumentError>,
    pub files: usize,
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// The files named by `paths`, kubectl-style: a directory yields its .yaml/.yml/.json files
/// (recursively with `recursive`); an explicit file is read whatever its extension.
fn expand(paths: &[PathBuf], recursive: bool, errors: &mut Vec<DocumentError>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            out.push(p.clone());
            continue;
        }
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, recursive, &mut out, errors),
            Ok(_) => out.push(p.clone()),
            Err(e) => errors.push(DocumentError {
                file: p.display().to_string(),
                line: 0,
                column: None,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    out
}

fn walk(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>, errors: &mut Vec<DocumentError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            errors.push(DocumentError {
                file: dir.display().to_string(),
                line: 0,
                column: None,
                message: format!("cannot list directory: {e}"),
            });
            return;
        }
    };
    // Like kubectl, a walk does not follow links to directories (a link back up would loop).
    let mut paths: Vec<(PathBuf, bool)> = entries
        .filter_map(|e| e.ok())
        .map(|e| (e.path(), e.file_type().is_ok_and(|t| t.is_dir())))
        .collect();
    paths.sort();
    for (p, is_dir) in paths {
        if is_dir {
            if recursive {
                walk(&p, recursive, out, errors);
            }
        } else if is_manifest(&p) {
            out.push(p);
        }
    }
}

fn read_one(path: &Path) -> Result<String, String> {
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|e| format!("cannot read: {e}"))?;
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "larger than {} MiB; not read",
            MAX_FILE_BYTES >> 20
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {}); not read",
            e.utf8_error().valid_up_to()
        )
    })
}

/// Reads and splits every file; unreadable files and malformed documents become errors and
/// everything else is still returned.
pub fn read_manifests(paths: &[PathBuf], recursive: bool) -> Manifests {
    let mut m = Manifests::default();
    for path in expand(paths, recursive, &mut m.errors) {
        let name = if path.as_os_str() == "-" {
            "<stdin>".to_string()
        } else {
            path.display().to_string()
        };
        m.files += 1;
        match read_one(&path) {
            Ok(text) => {
                for d in parse_documents(&name, &text) {
                    match d {
                        Ok(doc) => m.documents.push(doc),
                        Err(e) => m.errors.push(e),
                    }
                }
            }
            Err(message) => m.errors.push(DocumentError {
                file: name,
                line: 0,
                column: None,
                message,
            }),
        }
    }
    m
}
