//! The AdmissionReviews a real kube-apiserver sent, in `tests/fixtures/admission-reviews/` (copied from shared/).

use std::path::PathBuf;

use serde_json::Value;

/// `tests/fixtures/admission-reviews`.
pub fn reviews_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/admission-reviews")
}

/// One recorded review file.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// File name without `.json`, e.g. `02-create-deployment-kubectl-create.validating`.
    pub name: String,
    /// `/mutate` or `/validate`: the path it was recorded for.
    pub path: &'static str,
    pub bytes: Vec<u8>,
    pub review: Value,
}

impl Recorded {
    /// The two-digit number the file starts with.
    pub fn number(&self) -> u32 {
        self.name
            .get(..2)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{}: file name does not start with a number", self.name))
    }

    pub fn uid(&self) -> &str {
        self.review["request"]["uid"].as_str().unwrap_or_default()
    }

    pub fn is_mutating(&self) -> bool {
        self.path == "/mutate"
    }
}

/// Every `*.json` in [`reviews_dir`], sorted by name. Panics, naming the directory, when it
/// is missing or empty: these tests are meaningless without the recordings.
pub fn recorded_reviews() -> Vec<Recorded> {
    let dir = reviews_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "the recorded AdmissionReviews are missing: cannot read {} ({e}); they are committed in tests/fixtures/admission-reviews",
            dir.display()
        )
    });
    let mut out: Vec<Recorded> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let review: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{}: not JSON: {e}", p.display()));
            let path = if name.ends_with(".mutating") {
                "/mutate"
            } else if name.ends_with(".validating") {
                "/validate"
            } else {
                panic!(
                    "{}: expected NN-what.mutating.json or NN-what.validating.json",
                    p.display()
                )
            };
            Recorded {
                name,
                path,
                bytes,
                review,
            }
        })
        .collect();
    assert!(
        !out.is_empty(),
        "no recorded AdmissionReviews (*.json) in {}",
        dir.display()
    );
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The recorded review named `name` (without `.json`).
pub fn recorded(name: &str) -> Recorded {
    recorded_reviews()
        .into_iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| {
            panic!(
                "no recorded review {name}.json in {}",
                reviews_dir().display()
            )
        })
}
