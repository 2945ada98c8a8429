//! Reading manifests and the policy file from disk or stdin.

use std::io::Read;
use std::path::{Path, PathBuf};

use rollout_safe_policy::{Document, DocumentError, Notice, RolloutPolicy, read_documents};
use wildmatch::WildMatch;

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

/// How paths are expanded into files.
#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    /// Recurse into directories.
    pub recursive: bool,
    /// Paths to leave out (`--exclude`), matched against each path as walked.
    pub exclude: Vec<WildMatch>,
}

impl WalkOptions {
    fn excluded(&self, path: &Path) -> bool {
        if self.exclude.is_empty() {
            return false;
        }
        let text = path.to_string_lossy();
        let text = text.strip_prefix("./").unwrap_or(&text);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        self.exclude
            .iter()
            .any(|g| g.matches(text) || g.matches(&name))
    }
}

/// The files named by the arguments, in order, and what the walk has to say about them.
#[derive(Debug, Default)]
pub struct FileList {
    /// `-` stands for stdin.
    pub files: Vec<PathBuf>,
    /// Paths that could not be read or listed.
    pub errors: Vec<DocumentError>,
    /// What was left out and why.
    pub notices: Vec<Notice>,
    /// Helm charts left out (each noted once).
    skipped_charts: Vec<PathBuf>,
}

/// The Helm chart `file` belongs to: the nearest directory above it with a `Chart.yaml`.
fn chart_of(file: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(file).ok()?;
    let mut relative = file.parent();
    for dir in absolute.ancestors().skip(1) {
        if dir.join("Chart.yaml").is_file() {
            // Named as the user named the file, when it is below what they gave.
            return Some(match relative {
                Some(r) if !r.as_os_str().is_empty() => r.to_path_buf(),
                _ => dir.to_path_buf(),
            });
        }
        relative = relative.and_then(Path::parent);
    }
    None
}

fn chart_notice(dir: &Path) -> Notice {
    note(
        dir,
        format!(
            "a Helm chart (Chart.yaml): its templates are not manifests until rendered, so the chart is not audited; audit the rendered output instead: helm template {} | kubectl rollout-safe audit -f -",
            dir.display()
        ),
    )
}

fn kustomization_notice(file: &Path) -> Notice {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    note(
        file,
        format!(
            "a kustomization, not an object: not audited; audit the built output instead: kubectl kustomize {} | kubectl rollout-safe audit -f -",
            dir.display()
        ),
    )
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// kustomize's file names: a kustomization is a build recipe, not an object to apply.
fn is_kustomization(path: &Path) -> bool {
    matches!(
        path.file_name().and_then(|n| n.to_str()),
        Some("kustomization.yaml" | "kustomization.yml" | "Kustomization")
    )
}

fn note(file: &Path, message: String) -> Notice {
    Notice {
        file: file.display().to_string(),
        line: 0,
        message,
    }
}

/// The files named by `paths`, kubectl-style: a directory yields its .yaml/.yml/.json files
/// (recursively with `recursive`); an explicit file is read whatever its extension. Helm
/// charts (a directory with a `Chart.yaml`) and kustomizations are skipped with a notice: they
/// are not manifests until rendered.
pub fn list_files(paths: &[PathBuf], options: &WalkOptions) -> FileList {
    let mut out = FileList::default();
    for p in paths {
        if p.as_os_str() == "-" {
            out.files.push(p.clone());
            continue;
        }
        if options.excluded(p) {
            continue;
        }
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, options, &mut out),
            // Named one by one (as pre-commit does): chart files and kustomizations are still
            // not manifests.
            Ok(_) => match chart_of(p) {
                Some(chart) => {
                    if !out.skipped_charts.contains(&chart) {
                        out.notices.push(chart_notice(&chart));
                        out.skipped_charts.push(chart);
                    }
                }
                None if is_kustomization(p) => out.notices.push(kustomization_notice(p)),
                None => out.files.push(p.clone()),
            },
            Err(e) => out.errors.push(DocumentError {
                file: p.display().to_string(),
                line: 0,
                column: None,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    out
}

fn walk(dir: &Path, options: &WalkOptions, out: &mut FileList) {
    let entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) => {
            out.errors.push(DocumentError {
                file: dir.display().to_string(),
                line: 0,
                column: None,
                message: format!("cannot list directory: {e}"),
            });
            return;
        }
    };
    if dir.join("Chart.yaml").is_file() {
        out.notices.push(chart_notice(dir));
        return;
    }
    // Like kubectl, a walk does not follow links to directories (a link back up would loop).
    let mut paths: Vec<(PathBuf, bool)> = entries
        .filter_map(|e| e.ok())
        .map(|e| (e.path(), e.file_type().is_ok_and(|t| t.is_dir())))
        .collect();
    paths.sort();
    let mut skipped_dirs = Vec::new();
    for (p, is_dir) in paths {
        if options.excluded(&p) {
            continue;
        }
        if is_dir {
            if options.recursive {
                walk(&p, options, out);
            } else if !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                skipped_dirs.push(p);
            }
        } else if is_kustomization(&p) {
            out.notices.push(kustomization_notice(&p));
        } else if is_manifest(&p) {
            out.files.push(p);
        }
    }
    if !skipped_dirs.is_empty() {
        let names: Vec<String> = skipped_dirs
            .iter()
            .filter_map(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        out.notices.push(note(
            dir,
            format!(
                "{} subdirector{} not read without -R: {}",
                names.len(),
                if names.len() == 1 { "y" } else { "ies" },
                names.join(", ")
            ),
        ));
    }
}

/// The name a file goes by in reports: `<stdin>` for `-`.
pub fn source_name(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "<stdin>".to_string()
    } else {
        path.display().to_string()
    }
}

/// The text of `path` (`-`: stdin), refused when too large or not UTF-8.
pub fn read_text(path: &Path) -> Result<String, String> {
    let mut bytes = Vec::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| {
                // Sized up front: one read for the text and one to see the end.
                let size = f.metadata().map_or(0, |m| m.len()).min(MAX_FILE_BYTES);
                bytes.reserve_exact(size as usize + 1);
                f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)
            })
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
    let list = list_files(
        paths,
        &WalkOptions {
            recursive,
            ..WalkOptions::default()
        },
    );
    let mut m = Manifests {
        errors: list.errors,
        ..Manifests::default()
    };
    for path in list.files {
        let name = source_name(&path);
        m.files += 1;
        match read_text(&path) {
            Ok(text) => {
                for d in read_documents(&name, &text) {
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
