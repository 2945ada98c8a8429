//! `kubectl rollout-safe canary`: a canary by replica ratio behind the same Service.
//!
//! The canary is a second Deployment, `NAME-canary`, with the stable pod template, the new
//! images and the extra label `rollout-safe.dev/track: canary` (in its selector too, so the two
//! Deployments never fight over pods); its pods keep every label of the stable pods, so every
//! Service that selects the stable pods selects the canary pods too. With a total of T replicas,
//! step p% runs `ceil(T·p/100)` canary pods (at least 1) and the stable Deployment the rest: the
//! canary is scaled up first and the stable one down after, so capacity never drops below T.
//! Before anything is written, the stable template with the new images goes through the policy
//! pre-flight (as `update`'s: enforced findings refuse it, exit 3, unless `--force`). Each step
//! is watched with the shared judge until complete, then (in a second watch) held until every
//! canary pod has stayed Ready for `--interval` with no container restarted more than
//! `--max-restarts` times. A failing step, `--timeout`, or `canary abort` restores the stable replicas, waits for
//! them, and deletes the canary. After the last step the stable Deployment is rolled to the new
//! images through the normal safe `update` (policy pre-flight, change-cause, precondition, watch,
//! automatic rollback), scaled back to T, and the canary deleted.
//!
//! State (phase, total, last step passed, images) is kept in annotations on the stable
//! Deployment, so Ctrl-C (exit 4) and a re-run resume at the next step.

use std::time::Duration;

use anyhow::anyhow;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::DeleteParams;
use rollout_safe_policy::check::CHANGE_CAUSE_ANNOTATION;

use crate::cli::{
    CanaryAbortArgs, CanaryAction, CanaryArgs, CanaryStart, KubeArgs, UpdateArgs, WatchArgs,
    WorkloadArg,
};
use crate::cluster::colors::{
    self, BgState, CANARY_TRACK, Phase, TRACK_LABEL, ann, annotation, annotation_i32, canary_name,
    canary_split, remaining_steps, replicas, validate_steps,
};
use crate::cluster::errors::{Op, api_failure, is_not_found};
use crate::cluster::patch::write_deployment;
use crate::cluster::revisions::{images_text, template_images};
use crate::cluster::watch::{Ending, WatchOptions, watch_rollout};
use crate::cluster::{self, Cluster, WorkloadRef};
use crate::commands::update::{self, Preflight, as_workload, judge_config, parse_images};
use crate::display::{Display, failure_report, secs};
use crate::exit::{CmdResult, Exit, Failure};
use crate::{input, signals};

pub async fn run(kube: &KubeArgs, args: CanaryArgs) -> CmdResult {
    match (args.action, args.start) {
        (Some(CanaryAction::Abort(a)), _) => abort_cmd(kube, a).await,
        (None, s) => start(kube, s).await,
    }
}

/// Canary phases (`rollout-safe.dev/canary-phase` on the stable Deployment).
const RUNNING: &str = "running";
const PROMOTING: &str = "promoting";
const DONE: &str = "done";
const ABORTED: &str = "aborted";

fn dref(name: &str) -> WorkloadRef {
    WorkloadRef {
        kind: rollout_safe_policy::WorkloadKind::Deployment,
        name: name.to_owned(),
    }
}

async fn try_get(cluster: &Cluster, name: &str) -> Result<Option<Deployment>, Failure> {
    match cluster.deployments().get(name).await {
        Ok(d) => Ok(Some(d)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(api_failure(
            e,
            Op::new("get", "deployments.apps", Some(name), &cluster.namespace),
        )),
    }
}

/// Sets (`Some`) or removes (`None`) canary annotations on the stable Deployment, guarded.
async fn annotate_stable(
    cluster: &Cluster,
    stable: &str,
    set: &[(&str, Option<String>)],
) -> Result<(), Failure> {
    let current = cluster::get_deployment(cluster, stable).await?;
    write_deployment(cluster, current, false, false, |cur, _| {
        let mut d = cur.clone();
        let a = d.metadata.annotations.get_or_insert_default();
        for (k, v) in set {
            match v {
                Some(v) => {
                    a.insert((*k).to_owned(), v.clone());
                }
                None => {
                    a.remove(*k);
                }
            }
        }
        Ok((d != *cur).then_some(d))
    })
    .await?;
    Ok(())
}

/// Sets a Deployment's replicas (guarded), nothing else.
async fn set_replicas(cluster: &Cluster, name: &str, to: i32) -> Result<(), Failure> {
    let current = cluster::get_deployment(cluster, name).await?;
    write_deployment(cluster, current, false, false, |cur, _| {
        if cur.spec.replicas == Some(to) {
            return Ok(None);
        }
        let mut d = cur.clone();
        d.spec.replicas = Some(to);
        Ok(Some(d))
    })
    .await?;
    Ok(())
}

/// Watching until `deadline`; `hold`: and until the new pods stayed Ready that long.
fn opts(w: &WatchArgs, deadline: tokio::time::Instant, hold: Option<Duration>) -> WatchOptions {
    WatchOptions {
        timeout: deadline.saturating_duration_since(tokio::time::Instant::now()),
        judge: judge_config(w),
        stop_when_paused: true,
        hold,
    }
}

/// Refuses a canary on a Deployment that is not the live side of a blue-green, or while a
/// blue-green is under way.
async fn blue_green_guard(cluster: &Cluster, stable: &Deployment) -> Result<(), Failure> {
    let name = stable.metadata.name.clone().unwrap_or_default();
    let Some(service) = annotation(stable, ann::SERVICE) else {
        return Ok(());
    };
    let svc = match colors::services(cluster).get(service).await {
        Ok(s) => s,
        Err(_) => return Ok(()),
    };
    let state = BgState::of(&svc);
    if matches!(
        state.phase,
        Some(Phase::Deploying | Phase::Switched | Phase::RollingBack)
    ) {
        return Err(Failure::usage(format!(
            "a blue-green behind service/{service} is under way (phase {}); finish it before a canary",
            state.phase.map_or("?", Phase::as_str)
        )));
    }
    let live = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .and_then(colors::selector_color);
    let mine = annotation(stable, ann::COLOR).and_then(colors::Color::parse);
    if let (Some(live), Some(mine)) = (live, mine)
        && live != mine
    {
        return Err(Failure::usage(format!(
            "deployment/{name} is the idle {mine} colour (service/{service} sends traffic to {live}); run the canary on the live colour's Deployment"
        )));
    }
    Ok(())
}

async fn start(kube: &KubeArgs, a: CanaryStart) -> CmdResult {
    let workload = a.workload.clone().ok_or_else(|| {
        Failure::usage("canary needs WORKLOAD --image C=IMG --steps …, or `canary abort WORKLOAD`")
    })?;
    let target = WorkloadRef::parse(&workload)?;
    target.require_deployment("canary")?;
    validate_steps(&a.steps).map_err(Failure::usage)?;
    let images = parse_images(&a.images)?;
    let key = colors::images_key(&images);
    let policy = input::load_policy(a.policy.policy.as_deref())?;
    let cluster = Cluster::connect(kube).await?;
    cluster.reject_all_namespaces("canary")?;
    let stable_name = target.name.clone();
    let stable = cluster::get_deployment(&cluster, &stable_name).await?;
    if let Some(of) = annotation(&stable, ann::CANARY_OF) {
        return Err(Failure::usage(format!(
            "deployment/{stable_name} is the canary of deployment/{of}; name the stable Deployment"
        )));
    }
    blue_green_guard(&cluster, &stable).await?;
    let phase = annotation(&stable, ann::CANARY_PHASE)
        .unwrap_or_default()
        .to_owned();
    let under_way = phase == RUNNING || phase == PROMOTING;
    if under_way && annotation(&stable, ann::CANARY_IMAGES) != Some(key.as_str()) {
        return Err(Failure::usage(format!(
            "a canary of deployment/{stable_name} with {} is under way; re-run it with the same images, or abort it first ({})",
            annotation(&stable, ann::CANARY_IMAGES).unwrap_or("?"),
            cluster.suggest("canary abort", &format!("deployment/{stable_name}"), "")
        )));
    }
    if !under_way && colors::runs_images(&stable.spec.template, &images) {
        println!(
            "deployment/{stable_name} already runs {}: nothing to canary",
            images_text(&template_images(&stable.spec.template))
        );
        return Ok(Exit::Success);
    }
    let total = if under_way {
        annotation_i32(&stable, ann::CANARY_TOTAL)
    } else {
        None
    }
    .unwrap_or_else(|| replicas(&stable));
    if total < 1 {
        return Err(Failure::usage(format!(
            "deployment/{stable_name} has no replicas to share with a canary"
        )));
    }
    let reached = if phase == RUNNING {
        annotation_i32(&stable, ann::CANARY_STEP).and_then(|s| u32::try_from(s).ok())
    } else {
        None
    };
    let cname = canary_name(&stable_name);
    let deadline = tokio::time::Instant::now() + a.watch.timeout;
    // The policy pre-flight, before anything is written: the canary pods run the stable template
    // with the new images, which is also what the promotion writes (and checks again).
    let promoted = {
        let mut d = update::edit(&stable, &images, &[])?;
        d.metadata.annotations.get_or_insert_default().insert(
            CHANGE_CAUSE_ANNOTATION.to_owned(),
            format!(
                "{}: canary of deployment/{stable_name} with {key}",
                cluster.username
            ),
        );
        as_workload(&d)
    };
    Preflight::new(
        policy.for_namespace(Some(&cluster.namespace)),
        cluster::facts_for(&cluster, &as_workload(&stable)).await,
        a.force,
    )
    .check(
        &format!("start a canary of deployment/{stable_name}"),
        &promoted,
        Some(&as_workload(&stable)),
    )?;
    if !under_way {
        annotate_stable(
            &cluster,
            &stable_name,
            &[
                (ann::CANARY_PHASE, Some(RUNNING.to_owned())),
                (ann::CANARY_TOTAL, Some(total.to_string())),
                (ann::CANARY_IMAGES, Some(key.clone())),
                (ann::CANARY_STEP, None),
            ],
        )
        .await?;
    } else {
        eprintln!(
            "resuming the canary of deployment/{stable_name} ({phase}{})",
            reached
                .map(|r| format!(", step {r}% passed"))
                .unwrap_or_default()
        );
    }

    if phase != PROMOTING {
        let template = colors::derived_template(&stable, &images, TRACK_LABEL, CANARY_TRACK)?;
        let cause = format!(
            "{}: canary of deployment/{stable_name} with {}",
            cluster.username,
            images_text(&template_images(&template))
        );
        for p in remaining_steps(&a.steps, reached) {
            if signals::interrupted() {
                return Ok(interrupted(&cluster, &stable_name));
            }
            let (c, s) = canary_split(total, p);
            eprintln!("step {p}%: canary {c}, stable {s} (of {total})");
            let wanted = colors::sibling_deployment(
                &stable,
                &cname,
                template.clone(),
                TRACK_LABEL,
                CANARY_TRACK,
                c,
                &[
                    (ann::CANARY_OF, &stable_name),
                    (CHANGE_CAUSE_ANNOTATION, &cause),
                ],
            );
            // Canary up first, stable down after: never below the total.
            colors::create_or_refresh(&cluster, wanted, |cur| {
                colors::refreshed_deployment(
                    cur,
                    &template,
                    c,
                    &[(ann::CANARY_OF, Some(&stable_name))],
                    &cause,
                )
            })
            .await?;
            let step = Step {
                cluster: &cluster,
                stable: &stable_name,
                percent: p,
                watch: &a.watch,
            };
            if let Some(exit) = step
                .watch(
                    format!("deployment/{cname} ({p}%)"),
                    opts(&a.watch, deadline, None),
                )
                .await?
            {
                return Ok(exit);
            }
            set_replicas(&cluster, &stable_name, s).await?;
            eprintln!(
                "step {p}%: {c} canary pod(s) ready; holding for {} (at most {} restarts)",
                secs(a.interval),
                a.watch.max_restarts
            );
            if let Some(exit) = step
                .watch(
                    format!("deployment/{cname} ({p}%, holding)"),
                    opts(&a.watch, deadline, Some(a.interval)),
                )
                .await?
            {
                return Ok(exit);
            }
            annotate_stable(
                &cluster,
                &stable_name,
                &[(ann::CANARY_STEP, Some(p.to_string()))],
            )
            .await?;
            eprintln!("step {p}% passed");
        }
        annotate_stable(
            &cluster,
            &stable_name,
            &[(ann::CANARY_PHASE, Some(PROMOTING.to_owned()))],
        )
        .await?;
    }

    if signals::interrupted() {
        return Ok(interrupted(&cluster, &stable_name));
    }
    // Promote: the normal safe update of the stable Deployment, then back to full strength.
    eprintln!("promoting: rolling deployment/{stable_name} to {key} with the safe update");
    let update_args = UpdateArgs {
        target: WorkloadArg {
            workload: format!("deployment/{stable_name}"),
        },
        images: a.images.clone(),
        env: Vec::new(),
        cause: Some(format!(
            "{}: canary promoted after steps {}: {}",
            cluster.username,
            a.steps
                .iter()
                .map(|s| format!("{s}%"))
                .collect::<Vec<_>>()
                .join(","),
            key
        )),
        no_rollback: false,
        force: a.force,
        dry_run: None,
        watch: WatchArgs {
            timeout: deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .max(Duration::from_secs(1)),
            ..a.watch.clone()
        },
        policy: a.policy.clone(),
        debug_pause_before_write: false,
    };
    // `update` ends with exit 4 both on a timeout (after rolling back) and on Ctrl-C (leaving the
    // rollout going): the command-wide Ctrl-C listener tells them apart.
    let result = update::run(kube, update_args).await;
    match result {
        Ok(Exit::Success) => {}
        _ if signals::interrupted() => return Ok(interrupted(&cluster, &stable_name)),
        Ok(exit) => {
            return failed(
                &cluster,
                &stable_name,
                "the update of the stable Deployment did not complete",
                exit,
                &a.watch,
            )
            .await;
        }
        Err(f) => {
            eprintln!("error: {f}");
            return failed(
                &cluster,
                &stable_name,
                "the update of the stable Deployment was refused",
                f.exit,
                &a.watch,
            )
            .await;
        }
    }
    set_replicas(&cluster, &stable_name, total).await?;
    let mut view = Display::new(format!("deployment/{stable_name} (back to {total})"));
    let ending = watch_rollout(
        &cluster,
        &dref(&stable_name),
        &opts(
            &a.watch,
            deadline.max(tokio::time::Instant::now() + Duration::from_secs(60)),
            None,
        ),
        &mut view,
    )
    .await?;
    view.finish();
    drop(view);
    if !matches!(ending, Ending::Complete(_)) {
        eprintln!(
            "deployment/{stable_name} did not come back to {total} ready replicas ({}); the canary is kept for capacity",
            ending
                .progress()
                .map(|p| p.message.clone())
                .unwrap_or_default()
        );
        return Ok(if matches!(ending, Ending::Failed { .. }) {
            Exit::RolloutFailed
        } else {
            Exit::Timeout
        });
    }
    delete_canary(&cluster, &cname).await?;
    annotate_stable(
        &cluster,
        &stable_name,
        &[
            (ann::CANARY_PHASE, Some(DONE.to_owned())),
            (ann::CANARY_TOTAL, None),
            (ann::CANARY_STEP, None),
        ],
    )
    .await?;
    println!(
        "canary promoted: deployment/{stable_name} runs {key} on {total} replica(s); deployment/{cname} deleted"
    );
    Ok(Exit::Success)
}

/// One watch of a step: the canary until complete, or (with a hold) until its pods stayed Ready
/// for `--interval`. `Some(exit)`: the canary ends there (aborted on failure).
struct Step<'a> {
    cluster: &'a Cluster,
    stable: &'a str,
    percent: u32,
    watch: &'a WatchArgs,
}

impl Step<'_> {
    async fn watch(&self, title: String, opts: WatchOptions) -> Result<Option<Exit>, Failure> {
        let (cluster, stable, p) = (self.cluster, self.stable, self.percent);
        let cname = canary_name(stable);
        let mut view = Display::new(title);
        let ending = watch_rollout(cluster, &dref(&cname), &opts, &mut view).await?;
        view.finish();
        drop(view);
        let (why, exit) = match ending {
            Ending::Complete(_) => return Ok(None),
            Ending::Interrupted(_) => return Ok(Some(interrupted(cluster, stable))),
            Ending::Failed { failure, .. } => {
                eprintln!("{}", failure_report(&failure));
                (
                    format!("step {p}% failed: {}", failure.message),
                    Exit::RolloutFailed,
                )
            }
            Ending::TimedOut(v) | Ending::Paused(v) | Ending::Unsupported(v) => {
                eprintln!("deployment/{cname}: {}", v.progress().message);
                (format!("step {p}% timed out"), Exit::Timeout)
            }
            Ending::Deleted => {
                return Err(Failure::new(
                    Exit::RolloutFailed,
                    anyhow!("deployment/{cname} was deleted (aborted elsewhere?)"),
                ));
            }
        };
        failed(cluster, stable, &why, exit, self.watch)
            .await
            .map(Some)
    }
}

fn interrupted(cluster: &Cluster, stable: &str) -> Exit {
    eprintln!(
        "interrupted: the canary of deployment/{stable} stays as it is (state kept in its annotations)"
    );
    eprintln!("  resume: re-run the same command");
    eprintln!(
        "  abort:  {}",
        cluster.suggest("canary abort", &format!("deployment/{stable}"), "")
    );
    Exit::Timeout
}

/// A failed canary: abort it (stable back to its total, canary deleted) and end with `exit`.
async fn failed(
    cluster: &Cluster,
    stable: &str,
    why: &str,
    exit: Exit,
    watch: &WatchArgs,
) -> CmdResult {
    eprintln!("canary failed: {why}; aborting");
    abort(cluster, stable, watch.timeout.max(Duration::from_secs(60))).await?;
    Ok(exit)
}

/// How an abort ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aborted {
    /// The stable Deployment is back to its total; the canary is gone.
    Restored,
    /// The stable Deployment did not come back in time; the canary was deleted anyway.
    NotRestored,
    /// Ctrl-C while the stable replicas came back: the canary is kept (for capacity).
    Interrupted,
}

async fn delete_canary(cluster: &Cluster, cname: &str) -> Result<bool, Failure> {
    match cluster
        .deployments()
        .delete(cname, &DeleteParams::background())
        .await
    {
        Ok(_) => {
            eprintln!("deployment/{cname} deleted");
            Ok(true)
        }
        Err(e) if is_not_found(&e) => Ok(false),
        Err(e) => Err(api_failure(
            e,
            Op::new(
                "delete",
                "deployments.apps",
                Some(cname),
                &cluster.namespace,
            ),
        )),
    }
}

/// Restores the stable replicas (and waits for them), then deletes the canary.
async fn abort(
    cluster: &Cluster,
    stable_name: &str,
    timeout: Duration,
) -> Result<Aborted, Failure> {
    let stable = cluster::get_deployment(cluster, stable_name).await?;
    let cname = canary_name(stable_name);
    let canary = try_get(cluster, &cname).await?;
    let total = annotation_i32(&stable, ann::CANARY_TOTAL)
        .unwrap_or_else(|| replicas(&stable) + canary.as_ref().map_or(0, replicas))
        .max(1);
    let restored = if replicas(&stable) != total {
        eprintln!("deployment/{stable_name}: restoring {total} replica(s)");
        set_replicas(cluster, stable_name, total).await?;
        let mut view = Display::new(format!("deployment/{stable_name} (restoring {total})"));
        let opts = WatchOptions {
            timeout,
            judge: Default::default(),
            stop_when_paused: true,
            hold: None,
        };
        let ending = watch_rollout(cluster, &dref(stable_name), &opts, &mut view).await?;
        view.finish();
        drop(view);
        match ending {
            Ending::Complete(_) => Aborted::Restored,
            Ending::Interrupted(_) => {
                eprintln!(
                    "interrupted while deployment/{stable_name} comes back to {total} replica(s); deployment/{cname} is kept for capacity"
                );
                eprintln!(
                    "  finish the abort: {}",
                    cluster.suggest("canary abort", &format!("deployment/{stable_name}"), "")
                );
                return Ok(Aborted::Interrupted);
            }
            other => {
                eprintln!(
                    "deployment/{stable_name} is not back to {total} ready replicas ({}); deleting the canary anyway",
                    other
                        .into_verdict()
                        .map(|v| v.to_string())
                        .unwrap_or_default()
                );
                Aborted::NotRestored
            }
        }
    } else {
        Aborted::Restored
    };
    let deleted = delete_canary(cluster, &cname).await?;
    annotate_stable(
        cluster,
        stable_name,
        &[
            (ann::CANARY_PHASE, Some(ABORTED.to_owned())),
            (ann::CANARY_TOTAL, None),
            (ann::CANARY_STEP, None),
        ],
    )
    .await?;
    eprintln!(
        "canary aborted: deployment/{stable_name} back to {total} replica(s){}",
        if deleted {
            format!(", deployment/{cname} deleted")
        } else {
            String::new()
        }
    );
    Ok(restored)
}

async fn abort_cmd(kube: &KubeArgs, a: CanaryAbortArgs) -> CmdResult {
    let target = WorkloadRef::parse(&a.target.workload)?;
    target.require_deployment("canary abort")?;
    let cluster = Cluster::connect(kube).await?;
    cluster.reject_all_namespaces("canary abort")?;
    let mut stable_name = target.name.clone();
    let named = cluster::get_deployment(&cluster, &stable_name).await?;
    if let Some(of) = annotation(&named, ann::CANARY_OF) {
        stable_name = of.to_owned();
    }
    let stable = cluster::get_deployment(&cluster, &stable_name).await?;
    let phase = annotation(&stable, ann::CANARY_PHASE).unwrap_or_default();
    let canary_exists = try_get(&cluster, &canary_name(&stable_name))
        .await?
        .is_some();
    if !canary_exists && phase != RUNNING && phase != PROMOTING {
        println!("no canary of deployment/{stable_name} to abort");
        return Ok(Exit::Success);
    }
    Ok(match abort(&cluster, &stable_name, a.timeout).await? {
        Aborted::Restored => {
            println!("canary of deployment/{stable_name} aborted");
            Exit::Success
        }
        Aborted::NotRestored => {
            println!("canary of deployment/{stable_name} aborted");
            Exit::RolloutFailed
        }
        Aborted::Interrupted => Exit::Timeout,
    })
}

#[cfg(test)]
mod tests {
    use crate::cli::{CanaryAction, Cli, Command};
    use clap::Parser;

    #[test]
    fn command_lines() {
        let c = Cli::try_parse_from([
            "x",
            "canary",
            "deploy/shop",
            "--image",
            "app=shop:2",
            "--steps",
            "10,50,100",
            "--interval",
            "2s",
            "--max-restarts",
            "1",
        ])
        .unwrap();
        let Command::Canary(cn) = c.command else {
            panic!()
        };
        let s = cn.start;
        assert_eq!(s.workload.as_deref(), Some("deploy/shop"));
        assert_eq!(s.steps, [10, 50, 100]);
        assert_eq!(s.watch.max_restarts, 1);
        let c = Cli::try_parse_from(["x", "canary", "abort", "deploy/shop"]).unwrap();
        let Command::Canary(cn) = c.command else {
            panic!()
        };
        assert!(matches!(cn.action, Some(CanaryAction::Abort(_))));
    }
}
