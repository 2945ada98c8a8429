//! The repository's own manifests (`tests/fixtures/manifests/`, written for these tests): every
//! rule the offline audit can report fires on them, the safe one passes clean, and the findings
//! are pinned like the corpus' (`UPDATE_SNAPSHOTS=1` rewrites the snapshot after review). This
//! is what exercises every rule on a plain clone, where the corpus is absent.

mod common;

use std::collections::BTreeSet;

use common::{assert_snapshot, render};
use rollout_safe_policy::RuleId;
use rollout_safe_testkit::fixture;

fn rendered() -> String {
    let (s, files, workloads) = render(&fixture("manifests"));
    assert!(files >= 8, "read {files} files");
    assert!(workloads >= 19, "audited {workloads} workloads");
    s
}

#[test]
fn own_manifests_findings_are_pinned() {
    assert_snapshot("own-manifests.txt", &rendered());
}

#[test]
fn every_auditable_rule_fires() {
    let s = rendered();
    let fired: BTreeSet<&str> = s
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    // RS301 needs the object before an update, RS602 a cluster: the admission tests cover them.
    let missing: Vec<&str> = RuleId::ALL
        .iter()
        .filter(|r| !matches!(r, RuleId::RS301 | RuleId::RS602))
        .map(|r| r.as_str())
        .filter(|r| !fired.contains(r))
        .collect();
    assert!(
        missing.is_empty(),
        "rules that never fired: {missing:?}\n{s}"
    );
}

#[test]
fn spot_checks() {
    let s = rendered();
    let has = |needle: &str| assert!(s.contains(needle), "missing {needle:?} in\n{s}");
    let lacks = |needle: &str| assert!(!s.contains(needle), "unexpected {needle:?} in\n{s}");
    // Nothing at all for the safe workload, its PDB or its Service.
    lacks("safe.yaml");
    // Sidecars need probes; plain init containers do not, but their images must be pinned.
    has(
        "RS101 error Deployment probes/api [proxy] spec.template.spec.initContainers[1].readinessProbe",
    );
    lacks("[migrate] spec.template.spec.initContainers[0].readinessProbe");
    has(
        "RS501 warning Deployment images/images [fetch] spec.template.spec.initContainers[0].image",
    );
    lacks("[digest]");
    lacks("[port-and-tag]");
    has("RS501 warning Deployment images/images [port-no-tag]");
    // Probe timing, named ports and identical probes.
    has("RS104 warning Deployment probes/api [api]");
    has(
        "RS105 error Deployment probes/api [api] spec.template.spec.containers[0].readinessProbe.httpGet.port",
    );
    has(
        "RS105 error Deployment probes/api [worker] spec.template.spec.containers[2].startupProbe.tcpSocket.port",
    );
    has("RS103 warning Deployment probes/api [cache]");
    // Shutdown: 2m of preStop needs 130s; `sleep infinity` asks only for the margin.
    has(
        "RS202 warning Deployment shutdown/slow-drain spec.template.spec.terminationGracePeriodSeconds",
    );
    has("RS202 warning Deployment shutdown/hang spec.template.spec.terminationGracePeriodSeconds");
    has("RS201 warning Deployment shutdown/hang [no-hook]");
    lacks("[http-hook] spec.template.spec.containers[2].lifecycle.preStop");
    // Strategies on every kind.
    has("RS401 error Deployment strategies/all-at-once spec.strategy.rollingUpdate.maxUnavailable");
    has("RS401 error Deployment strategies/typo spec.strategy.rollingUpdate.maxSurge");
    has(
        "RS401 error StatefulSet strategies/ledger spec.updateStrategy.rollingUpdate.maxUnavailable",
    );
    has(
        "RS401 error DaemonSet strategies/node-agent spec.updateStrategy.rollingUpdate.maxUnavailable",
    );
    lacks("strategies/cautious spec.strategy");
    has("RS402 warning Deployment strategies/recreate");
    has("RS404 warning Deployment strategies/cautious");
    // History and replicas, from a JSON List.
    has("RS403 warning Deployment history/single");
    has("RS403 warning StatefulSet history/queue");
    has("RS403 warning DaemonSet history/logs");
    has("RS405 warning Deployment history/single");
    lacks("RS405 warning Deployment history/parked");
    has("RS405 warning StatefulSet history/queue"); // replicas left out: the default, 1
    // Across objects.
    has("RS601 warning Deployment surroundings/uncovered");
    lacks("RS601 warning Deployment surroundings/autoscaled");
    lacks("RS405 warning Deployment surroundings/autoscaled");
    has("RS603 warning Service surroundings/typo");
    lacks("Service surroundings/web");
    lacks("Service surroundings/external");
    lacks("Service surroundings/headless");
    // Skips: without a reason nothing is exempt; with one, only unknown IDs are reported.
    has("RS001 warning Deployment skips/no-reason");
    has("RS405 warning Deployment skips/no-reason");
    has("RS001 warning Deployment skips/with-reason");
    lacks("RS405 warning Deployment skips/with-reason");
    lacks("RS501 warning Deployment skips/with-reason");
}
