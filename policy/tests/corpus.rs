//! Every manifest under ../shared/corpus (real-world files) is read and audited without a
//! crash, and the findings are pinned: a change to any rule's verdict on real manifests shows
//! up here as a diff to review (`UPDATE_SNAPSHOTS=1` rewrites the snapshot after review).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rollout_safe_policy::{RolloutPolicy, audit, parse_documents};

fn corpus_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    assert!(
        dir.is_dir(),
        "corpus missing: {} (it lives in ../shared beside the repo)",
        dir.display()
    );
    dir
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(p);
        }
    }
}

fn render() -> (String, usize, usize) {
    let root = corpus_dir();
    let mut paths = Vec::new();
    files(&root, &mut paths);
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for p in &paths {
        let name = p.strip_prefix(&root).unwrap().display().to_string();
        for d in parse_documents(&name, &std::fs::read_to_string(p).unwrap()) {
            match d {
                Ok(d) => docs.push(d),
                Err(e) => errors.push(e),
            }
        }
    }
    let report = audit(&RolloutPolicy::default(), &docs, errors);
    let mut s = String::new();
    for e in &report.errors {
        writeln!(s, "ERROR {e}").unwrap();
    }
    for n in &report.notices {
        writeln!(s, "NOTE {}:{} {}", n.file, n.line, n.message).unwrap();
    }
    for f in &report.findings {
        let x = &f.finding;
        writeln!(
            s,
            "{}:{} {} {} {}{} {}",
            f.file,
            f.line,
            x.rule,
            x.severity,
            x.object,
            x.container
                .as_deref()
                .map(|c| format!(" [{c}]"))
                .unwrap_or_default(),
            x.field
        )
        .unwrap();
    }
    (s, paths.len(), report.workloads)
}

#[test]
fn corpus_findings_are_pinned() {
    let (actual, files, workloads) = render();
    assert!(files >= 50, "expected the whole corpus, read {files} files");
    assert!(
        workloads >= 60,
        "expected the corpus' workloads, audited {workloads}"
    );
    let snap = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/corpus.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&snap, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&snap).unwrap_or_default();
    if expected != actual {
        let exp: Vec<&str> = expected.lines().collect();
        let act: Vec<&str> = actual.lines().collect();
        let gone: Vec<&&str> = exp.iter().filter(|l| !act.contains(l)).collect();
        let new: Vec<&&str> = act.iter().filter(|l| !exp.contains(l)).collect();
        panic!(
            "corpus findings changed (review, then UPDATE_SNAPSHOTS=1 cargo test -p rollout-safe-policy --test corpus)\n-- gone:\n{gone:#?}\n-- new:\n{new:#?}"
        );
    }
}

/// Spot checks a person can verify by opening the file.
#[test]
fn corpus_spot_checks() {
    let (s, _, _) = render();
    // The guestbook frontend has no probes at all.
    assert!(
        s.contains(
            "web/guestbook/frontend-deployment.yaml:1 RS101 error Deployment frontend [php-redis]"
        ),
        "{s}"
    );
    // microservices-demo sets liveness = readiness (same grpc probe, same timing) on several services.
    assert!(s.contains("RS103 warning Deployment emailservice [server]"));
    // Three openshift-origin files repeat the `selector` key: reported with file and line, not guessed.
    assert_eq!(s.matches("duplicate mapping key: selector").count(), 3);
    // extensions/v1beta1 DaemonSets cannot be applied to any current cluster.
    assert!(s.contains("NOTE kubernetes-examples/_archived/volumes/flexvolume/deploy/ds.yaml:1 DaemonSet flex-ds uses extensions/v1beta1"));
    // The loadgenerator's main image is left for skaffold to tag (`image: loadgenerator`): unpinned;
    // its busybox init container is pinned by digest.
    assert!(s.contains(
        "kubernetes-manifests/loadgenerator.yaml:14 RS501 warning Deployment loadgenerator [main]"
    ));
    assert!(!s.contains(
        "Deployment loadgenerator [frontend-check] spec.template.spec.initContainers[0].image"
    ));
}
