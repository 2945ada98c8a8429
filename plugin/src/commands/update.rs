//! `kubectl rollout-safe update`: change images/env under the policy, write it guarded by a
//! resourceVersion precondition with a fresh change-cause, watch the rollout with the judge, and
//! roll back on failure.

use std::collections::BTreeMap;

use anyhow::anyhow;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, EnvVar};
use k8s_openapi::jiff::Timestamp;
use rollout_safe_policy::change_cause::{self, Actor};
use rollout_safe_policy::check::CHANGE_CAUSE_ANNOTATION;
use rollout_safe_policy::judge::{
    JudgeConfig, REVISION_ANNOTATION, equal_ignore_hash, normalized_template,
};
use rollout_safe_policy::{EffectivePolicy, Facts, Finding, Severity, Workload, check};

use crate::cli::{DryRun, KubeArgs, UpdateArgs, WatchArgs};
use crate::cluster::patch::{Written, precondition_patch, write_deployment};
use crate::cluster::revisions::{images_text, rollback_cause, template_images};
use crate::cluster::rollback::{RollbackPlan, write_rollback};
use crate::cluster::watch::{Ending, WatchOptions, watch_rollout};
use crate::cluster::{self, Cluster, FIELD_MANAGER, WorkloadRef};
use crate::display::{self, Display, failure_report, secs, ts_text};
use crate::exit::{CmdResult, Exit, Failure};
use crate::input;

/// `--image C=IMG` (`*=IMG`: every container).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    pub container: String,
    pub image: String,
}

/// `--env C:K=V` (set) or `--env C:K-` (remove).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvEdit {
    pub container: String,
    pub key: String,
    pub value: Option<String>,
}

pub fn parse_images(args: &[String]) -> Result<Vec<ImageSet>, Failure> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((c, i))
                if !c.trim().is_empty()
                    && !i.trim().is_empty()
                    && !i.contains(char::is_whitespace) =>
            {
                Ok(ImageSet {
                    container: c.trim().to_owned(),
                    image: i.trim().to_owned(),
                })
            }
            _ => Err(Failure::usage(format!(
                "--image {a:?}: expected CONTAINER=IMAGE, e.g. --image web=shop/web:1.5.0"
            ))),
        })
        .collect()
}

pub fn parse_env(args: &[String]) -> Result<Vec<EnvEdit>, Failure> {
    args.iter()
        .map(|a| {
            let bad = || {
                Failure::usage(format!(
                    "--env {a:?}: expected CONTAINER:KEY=VALUE or CONTAINER:KEY- (to remove)"
                ))
            };
            let (c, rest) = a.split_once(':').ok_or_else(bad)?;
            if c.is_empty() {
                return Err(bad());
            }
            let (key, value) = match rest.split_once('=') {
                Some((k, v)) => (k, Some(v.to_owned())),
                None => (rest.strip_suffix('-').ok_or_else(bad)?, None),
            };
            if key.is_empty() {
                return Err(bad());
            }
            Ok(EnvEdit {
                container: c.to_owned(),
                key: key.to_owned(),
                value,
            })
        })
        .collect()
}

fn container_names(d: &Deployment) -> Vec<String> {
    template_images(&d.spec.template)
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

fn unknown_container(d: &Deployment, name: &str, flag: &str) -> Failure {
    Failure::usage(format!(
        "{flag}: deployment/{} has no container {name:?} (containers: {})",
        d.metadata.name.as_deref().unwrap_or_default(),
        container_names(d).join(", ")
    ))
}

/// The Deployment with the edits applied (containers and init containers alike, as kubectl
/// set image does). An unknown container is a usage error listing the containers.
pub fn edit(
    current: &Deployment,
    images: &[ImageSet],
    env: &[EnvEdit],
) -> Result<Deployment, Failure> {
    let mut d = current.clone();
    let names = container_names(current);
    for i in images {
        if i.container != "*" && !names.contains(&i.container) {
            return Err(unknown_container(
                current,
                &i.container,
                &format!("--image {}={}", i.container, i.image),
            ));
        }
    }
    for e in env {
        if !names.contains(&e.container) {
            return Err(unknown_container(
                current,
                &e.container,
                &format!("--env {}:{}", e.container, e.key),
            ));
        }
    }
    let Some(spec) = d.spec.template.spec.as_mut() else {
        return Err(Failure::usage("the deployment's pod template has no spec"));
    };
    let all: Vec<&mut Container> = spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut())
        .collect();
    for c in all {
        for i in images
            .iter()
            .filter(|i| i.container == "*" || i.container == c.name)
        {
            c.image = Some(i.image.clone());
        }
        for e in env.iter().filter(|e| e.container == c.name) {
            let vars = c.env.get_or_insert_default();
            match &e.value {
                Some(v) => match vars.iter_mut().find(|x| x.name == e.key) {
                    Some(x) => {
                        x.value = Some(v.clone());
                        x.value_from = None;
                    }
                    None => vars.push(EnvVar {
                        name: e.key.clone(),
                        value: Some(v.clone()),
                        value_from: None,
                    }),
                },
                None => vars.retain(|x| x.name != e.key),
            }
            if vars.is_empty() {
                c.env = None;
            }
        }
    }
    Ok(d)
}

pub fn as_workload(d: &Deployment) -> Workload {
    Workload::Deployment(Box::new(d.clone()))
}

fn print_findings(findings: &[Finding]) {
    for f in findings {
        let level = if f.severity == Severity::Error {
            "error"
        } else {
            "warning"
        };
        eprintln!("{level}: {}", f.one_line());
    }
}

/// The policy pre-flight of a spec about to be written (SPEC: the plugin "checks the spec before
/// it applies it"). `update`, `blue-green` (the new colour) and `canary` (what it will promote)
/// all go through [`Preflight::check`], before they write anything.
pub struct Preflight {
    policy: EffectivePolicy,
    facts: Facts,
    force: bool,
    /// The findings last printed, so a re-check (after a conflict) prints only what changed.
    shown: Option<Vec<Finding>>,
}

impl Preflight {
    /// `facts`: the workload's surroundings (`cluster::facts_for`); `force`: apply despite
    /// enforced findings (`--force`).
    pub fn new(policy: EffectivePolicy, facts: Facts, force: bool) -> Self {
        Preflight {
            policy,
            facts,
            force,
            shown: None,
        }
    }

    /// Checks `new` against the policy (`old`: the object it replaces, for RS301), prints the
    /// findings (again only when they changed), and refuses enforced ones — exit 3 — unless
    /// `--force`. `action` says what is refused: `update deployment/web`.
    pub fn check(
        &mut self,
        action: &str,
        new: &Workload,
        old: Option<&Workload>,
    ) -> Result<(), Failure> {
        let findings = check(new, old, &self.policy, &self.facts);
        if self.shown.as_ref() != Some(&findings) {
            print_findings(&findings);
        }
        let enforced = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
        self.shown = Some(findings);
        if enforced == 0 {
            return Ok(());
        }
        if !self.force {
            return Err(Failure::new(
                Exit::Violations,
                anyhow!(
                    "refusing to {action}: the resulting spec violates {enforced} enforced rule(s) \
                     (listed above); fix them, or pass --force to apply anyway"
                ),
            ));
        }
        eprintln!("warning: --force: going ahead despite {enforced} enforced finding(s)");
        Ok(())
    }
}

/// The judge's tunables from the watch flags.
pub fn judge_config(w: &WatchArgs) -> JudgeConfig {
    JudgeConfig {
        max_restarts: w.max_restarts,
        readiness_budget: Some(w.readiness_budget),
        fail_fast: true,
        wait_for_old_pods: false,
    }
}

pub fn watch_options(w: &WatchArgs) -> WatchOptions {
    WatchOptions {
        timeout: w.timeout,
        judge: judge_config(w),
        stop_when_paused: true,
        hold: None,
    }
}

pub async fn run(kube: &KubeArgs, args: UpdateArgs) -> CmdResult {
    let target = WorkloadRef::parse(&args.target.workload)?;
    target.require_deployment("update")?;
    let images = parse_images(&args.images)?;
    let env = parse_env(&args.env)?;
    let policy = input::load_policy(args.policy.policy.as_deref())?;
    let cluster = Cluster::connect(kube).await?;
    cluster.reject_all_namespaces("update")?;
    let current = cluster::get_deployment(&cluster, &target.name).await?;
    let facts = cluster::facts_for(&cluster, &as_workload(&current)).await;
    let mut preflight = Preflight::new(
        policy.for_namespace(Some(&cluster.namespace)),
        facts,
        args.force,
    );
    let actor = Actor {
        username: cluster.username.clone(),
        field_manager: Some(FIELD_MANAGER.to_owned()),
    };
    let first_images: BTreeMap<String, String> = template_images(&current.spec.template)
        .into_iter()
        .collect();
    let mut cause_used = String::new();
    let action = format!("update deployment/{}", target.name);

    let mut build = |cur: &Deployment, attempt: usize| -> Result<Option<Deployment>, Failure> {
        let mut new = edit(cur, &images, &env)?;
        if equal_ignore_hash(&new.spec.template, &cur.spec.template) {
            return Ok(None);
        }
        if attempt > 1 {
            for (c, img) in template_images(&cur.spec.template) {
                if let Some(before) = first_images.get(&c).filter(|b| **b != img)
                    && images
                        .iter()
                        .any(|i| i.container == c || i.container == "*")
                {
                    eprintln!(
                        "note: container {c}'s image was changed meanwhile from {before} to {img}; setting it as asked"
                    );
                }
            }
        }
        let cause = match &args.cause {
            Some(c) => c.clone(),
            None => change_cause::describe(Some(&as_workload(cur)), &as_workload(&new), &actor),
        };
        new.metadata
            .annotations
            .get_or_insert_default()
            .insert(CHANGE_CAUSE_ANNOTATION.to_owned(), cause.clone());
        cause_used = cause;
        preflight.check(&action, &as_workload(&new), Some(&as_workload(cur)))?;
        Ok(Some(new))
    };

    if args.dry_run == Some(DryRun::Client) {
        let Some(new) = build(&current, 1)? else {
            println!(
                "deployment/{}: nothing to change (the pod template already has these images and env)",
                target.name
            );
            return Ok(Exit::Success);
        };
        let patch = precondition_patch(&current, &new)?.unwrap_or_default();
        eprintln!(
            "deployment/{} (dry run, client side, nothing sent): JSON Patch guarded by resourceVersion {}\n  change-cause: {cause_used}\n  {} → {}",
            target.name,
            current.metadata.resource_version.as_deref().unwrap_or("?"),
            images_text(&template_images(&current.spec.template)),
            images_text(&template_images(&new.spec.template)),
        );
        println!(
            "{}",
            serde_json::to_string_pretty(&patch).map_err(anyhow::Error::from)?
        );
        return Ok(Exit::Success);
    }

    let server_dry_run = args.dry_run == Some(DryRun::Server);
    if args.debug_pause_before_write {
        pause_before_write(&current).await;
    }
    let Some(written) =
        write_deployment(&cluster, current, server_dry_run, true, &mut build).await?
    else {
        println!(
            "deployment/{}: nothing to change (the pod template already has these images and env)",
            target.name
        );
        return Ok(Exit::Success);
    };
    if server_dry_run {
        // What the server (and any mutating webhook) would store, against what is stored.
        let result = precondition_patch(&written.before, &written.after)?.unwrap_or_default();
        eprintln!(
            "deployment/{}: the API server accepted the change (dry run: nothing stored){}",
            target.name,
            if written.attempts > 1 {
                format!(" after {} attempts", written.attempts)
            } else {
                String::new()
            }
        );
        eprintln!("  change-cause: {cause_used}");
        println!(
            "{}",
            serde_json::to_string_pretty(&result).map_err(anyhow::Error::from)?
        );
        return Ok(Exit::Success);
    }
    eprintln!(
        "deployment/{} updated (resourceVersion {} → {}{}): {cause_used}",
        target.name,
        written
            .before
            .metadata
            .resource_version
            .as_deref()
            .unwrap_or("?"),
        written
            .after
            .metadata
            .resource_version
            .as_deref()
            .unwrap_or("?"),
        if written.attempts > 1 {
            format!(", after {} attempts", written.attempts)
        } else {
            String::new()
        }
    );
    follow(&cluster, &target, &written, &args.watch, args.no_rollback).await
}

/// `--debug-pause-before-write` (hidden; for the e2e conflict test): says what was read, then
/// waits for a line on stdin (or its end) before the first write, so a test can change the
/// Deployment in between and see the precondition catch it.
async fn pause_before_write(read: &Deployment) {
    eprintln!(
        "debug: read deployment/{} at resourceVersion {}; paused before writing until stdin has a line",
        read.metadata.name.as_deref().unwrap_or_default(),
        read.metadata.resource_version.as_deref().unwrap_or("?")
    );
    let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new())).await;
}

/// Watches the update to its end; on failure or timeout rolls back (unless `no_rollback`).
async fn follow(
    cluster: &Cluster,
    target: &WorkloadRef,
    written: &Written<Deployment>,
    watch: &WatchArgs,
    no_rollback: bool,
) -> CmdResult {
    let opts = watch_options(watch);
    let mut view = Display::new(target.to_string());
    let ending = watch_rollout(cluster, target, &opts, &mut view).await?;
    let elapsed = view.elapsed();
    view.finish();
    drop(view);
    let wl = target.to_string();
    match ending {
        Ending::Complete(v) => {
            eprintln!(
                "{wl} rolled out in {}: {}",
                secs(elapsed),
                v.progress().message
            );
            Ok(Exit::Success)
        }
        Ending::Paused(_) => {
            eprintln!(
                "{wl} is paused: the change is recorded and rolls out when it is resumed ({})",
                cluster.suggest("resume", &wl, "")
            );
            Ok(Exit::Success)
        }
        Ending::Unsupported(v) => {
            eprintln!("{wl}: {}", v.progress().message);
            Ok(Exit::Success)
        }
        Ending::Deleted => Err(Failure::new(
            Exit::Cluster,
            anyhow!("{wl} was deleted while its rollout was watched"),
        )),
        Ending::Interrupted(_) => {
            interrupted(cluster, &wl, false);
            Ok(Exit::Timeout)
        }
        Ending::Failed {
            failure: f,
            detected,
        } => {
            eprintln!("{}", failure_report(&f));
            if no_rollback {
                eprintln!(
                    "--no-rollback: {wl} is left as it is. To roll back: {}",
                    cluster.suggest("undo", &wl, "")
                );
                return Ok(Exit::RolloutFailed);
            }
            let first = f.first_seen.unwrap_or(detected);
            roll_back(
                cluster,
                target,
                written,
                watch,
                Some((first, detected)),
                f.reason.as_str(),
                Exit::RolloutFailed,
            )
            .await
        }
        Ending::TimedOut(v) => {
            eprintln!(
                "{wl}: timed out after {} waiting for the rollout: {}",
                secs(watch.timeout),
                v.progress().message
            );
            eprintln!("{}", display::verdict_text(&wl, &v));
            if no_rollback {
                eprintln!(
                    "--no-rollback: {wl} is left as it is. To roll back: {}",
                    cluster.suggest("undo", &wl, "")
                );
                return Ok(Exit::Timeout);
            }
            roll_back(
                cluster,
                target,
                written,
                watch,
                None,
                "timeout",
                Exit::Timeout,
            )
            .await
        }
    }
}

fn interrupted(cluster: &Cluster, wl: &str, rollback_written: bool) {
    if rollback_written {
        eprintln!(
            "interrupted: stopped watching {wl}; the rollback was written and goes on in the cluster."
        );
    } else {
        eprintln!(
            "interrupted: stopped watching {wl}; the rollout goes on in the cluster and nothing was rolled back."
        );
    }
    eprintln!(
        "  watch it again: {}",
        cluster.suggest("status", wl, "--watch")
    );
    if !rollback_written {
        eprintln!("  roll it back:   {}", cluster.suggest("undo", wl, ""));
    }
}

/// Puts back the template the update replaced, guarded so that a later change by someone else
/// is never undone, then waits until the Deployment is healthy again. `signal`: when the first
/// failing signal appeared and when this process saw the failure (for the latency report).
async fn roll_back(
    cluster: &Cluster,
    target: &WorkloadRef,
    written: &Written<Deployment>,
    watch: &WatchArgs,
    signal: Option<(Timestamp, Timestamp)>,
    why: &str,
    exit: Exit,
) -> CmdResult {
    let wl = target.to_string();
    let before = &written.before;
    let revision = before
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION_ANNOTATION))
        .and_then(|r| r.parse::<i64>().ok());
    let what = before
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CHANGE_CAUSE_ANNOTATION))
        .filter(|c| !c.trim().is_empty())
        .cloned()
        .unwrap_or_else(|| images_text(&template_images(&before.spec.template)));
    let head = match revision {
        Some(n) => rollback_cause(n, &what),
        None => format!("rollback to the previous template ({what})"),
    };
    let plan = RollbackPlan {
        template: normalized_template(&before.spec.template),
        cause: format!(
            "{head} by {}: automatic, after the update failed ({why})",
            cluster.username
        ),
        only_if_template: Some(written.after.spec.template.clone()),
    };
    let current = cluster::get_deployment(cluster, &target.name).await?;
    let started = Timestamp::now();
    let result = write_rollback(cluster, current, &plan, false).await;
    if let Some((first, detected)) = signal {
        let to_start = started
            .duration_since(first)
            .max(k8s_openapi::jiff::SignedDuration::ZERO);
        let detect = detected
            .duration_since(first)
            .max(k8s_openapi::jiff::SignedDuration::ZERO);
        let react = started
            .duration_since(detected)
            .max(k8s_openapi::jiff::SignedDuration::ZERO);
        eprintln!(
            "failure → rollback: {:.1}s (first failing signal at {}, seen by the watch {:.1}s later, rollback sent {:.1}s after that; target ≤ 10s)",
            to_start.as_secs_f64(),
            ts_text(first),
            detect.as_secs_f64(),
            react.as_secs_f64()
        );
    }
    match result? {
        None => eprintln!("{wl} already runs the previous template; nothing to roll back"),
        Some(_) => eprintln!("rolling back {wl}: {}", plan.cause),
    }
    let mut view = Display::new(format!("{wl} (rollback)"));
    let ending = watch_rollout(cluster, target, &watch_options(watch), &mut view).await?;
    let elapsed = view.elapsed();
    view.finish();
    drop(view);
    match ending {
        Ending::Complete(_) => {
            eprintln!(
                "{wl} rolled back{} and healthy again after {}; the update failed ({why})",
                revision
                    .map(|n| format!(" to revision {n}"))
                    .unwrap_or_default(),
                secs(elapsed)
            );
        }
        Ending::Failed { failure, .. } => {
            eprintln!(
                "the rollback did not recover {wl} either:\n{}",
                failure_report(&failure)
            );
        }
        Ending::TimedOut(v) => {
            eprintln!(
                "the rollback of {wl} had not completed after {}: {}",
                secs(watch.timeout),
                v.progress().message
            );
        }
        Ending::Interrupted(_) => interrupted(cluster, &wl, true),
        Ending::Paused(_) | Ending::Unsupported(_) => {
            eprintln!("{wl} is paused; the rollback rolls out when it is resumed")
        }
        Ending::Deleted => eprintln!("{wl} was deleted during the rollback"),
    }
    Ok(exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep() -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"initContainers": [{"name": "init", "image": "busybox:1"}],
                        "containers": [{"name": "app", "image": "web:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
                                       {"name": "side", "image": "side:1"}]}}}
        }))
        .unwrap()
    }

    #[test]
    fn parse_flags() {
        assert_eq!(
            parse_images(&["app=web:2".into()]).unwrap()[0].image,
            "web:2"
        );
        for bad in ["app", "=web:2", "app=", "app=a b"] {
            assert_eq!(
                parse_images(&[bad.into()]).unwrap_err().exit,
                Exit::Usage,
                "{bad}"
            );
        }
        let e = parse_env(&["app:K=V".into(), "app:X-".into(), "app:E=".into()]).unwrap();
        assert_eq!(e[0].value.as_deref(), Some("V"));
        assert_eq!(e[1].value, None);
        assert_eq!(e[2].value.as_deref(), Some(""));
        for bad in ["app", "app:K", ":K=V", "app:=V", "app:-"] {
            assert_eq!(
                parse_env(&[bad.into()]).unwrap_err().exit,
                Exit::Usage,
                "{bad}"
            );
        }
    }

    #[test]
    fn edits() {
        let d = dep();
        let imgs = parse_images(&["app=web:2".into()]).unwrap();
        let env = parse_env(&[
            "app:A=9".into(),
            "app:B=x".into(),
            "app:C=3".into(),
            "side:Z-".into(),
        ])
        .unwrap();
        let n = edit(&d, &imgs, &env).unwrap();
        let s = n.spec.template.spec.as_ref().unwrap();
        assert_eq!(s.containers[0].image.as_deref(), Some("web:2"));
        assert_eq!(s.containers[1].image.as_deref(), Some("side:1"));
        let env = s.containers[0].env.as_ref().unwrap();
        assert_eq!(
            env.iter()
                .map(|e| (e.name.as_str(), e.value.as_deref()))
                .collect::<Vec<_>>(),
            [("A", Some("9")), ("B", Some("x")), ("C", Some("3"))]
        );
        assert!(env[1].value_from.is_none());
        let n = edit(
            &d,
            &parse_images(&["*=x:1".into()]).unwrap(),
            &parse_env(&["app:A-".into(), "app:B-".into()]).unwrap(),
        )
        .unwrap();
        let s = n.spec.template.spec.as_ref().unwrap();
        assert!(
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
                .all(|c| c.image.as_deref() == Some("x:1"))
        );
        assert!(s.containers[0].env.is_none());
        let e = edit(&d, &parse_images(&["nope=x:1".into()]).unwrap(), &[]).unwrap_err();
        assert_eq!(e.exit, Exit::Usage);
        assert!(e.to_string().contains("init, app, side"), "{e}");
    }
}
