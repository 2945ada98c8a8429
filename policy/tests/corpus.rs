//! Every manifest under ../shared/corpus (real-world files) is read and audited without a
//! crash, and the findings are pinned: a change to any rule's verdict on real manifests shows
//! up here as a diff to review (`UPDATE_SNAPSHOTS=1` rewrites the snapshot after review).
//!
//! The corpus is other projects' files and is not committed: without it these tests say they
//! are skipped (`own_manifests.rs` covers every rule on a plain clone).

mod common;
use common::{assert_snapshot, render};

use rollout_safe_testkit::corpus_or_skip;

#[test]
fn corpus_findings_are_pinned() {
    let Some(root) = corpus_or_skip("policy/tests/corpus.rs corpus_findings_are_pinned") else {
        return;
    };
    let (actual, files, workloads) = render(&root);
    assert!(files >= 50, "expected the whole corpus, read {files} files");
    assert!(
        workloads >= 60,
        "expected the corpus' workloads, audited {workloads}"
    );
    assert_snapshot("corpus.txt", &actual);
}

/// Spot checks a person can verify by opening the file.
#[test]
fn corpus_spot_checks() {
    let Some(root) = corpus_or_skip("policy/tests/corpus.rs corpus_spot_checks") else {
        return;
    };
    let (s, _, _) = render(&root);
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
