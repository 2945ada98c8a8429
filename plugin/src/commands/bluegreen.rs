//! `kubectl rollout-safe blue-green`: blue-green on a plain Deployment and Service.
//!
//! Design (see also `cluster::colors`): a Deployment's selector is immutable, so the original
//! Deployment `shop` (selector `app: shop`) stays what it is and becomes the **blue** colour by
//! getting `rollout-safe.dev/color: blue` in its *pod template* labels (a guarded, watched rolling
//! update, once, only if the label is missing). **Green** is its own Deployment `shop-green`,
//! selector and pod labels `{app: shop, rollout-safe.dev/color: green}`. The Service keeps its
//! base selector and gains the colour key: the first run narrows `{app: shop}` to
//! `{app: shop, rollout-safe.dev/color: blue}` after checking that exactly the same ready pods
//! stay selected, so a green pod never receives traffic before the switch.
//!
//! `blue-green deploy/shop --service shop --image app=shop:2`:
//! 0. the policy pre-flight of the new colour (as `update`'s: enforced findings refuse it, exit
//!    3, unless `--force`), before anything is written;
//! 1. (first run) label blue, narrow the Service, verify its EndpointSlices;
//! 2. record `phase=deploying` on the Service, create or update the idle colour with the live
//!    colour's template + the new images, at the live colour's replica count;
//! 3. watch it with the shared judge until complete, and on in the same watch until every new
//!    pod has stayed Ready for `--bake` (judged on every event and at the time the hold ends, so
//!    a crash or restart fails it). A new colour that fails (or times out) is scaled to 0
//!    without ever having been selected: exit 1 (4);
//! 4. switch the Service selector's colour in one merge patch guarded by its resourceVersion,
//!    with the state annotations in the same write (409 → re-read, re-check, retry);
//! 5. verify through EndpointSlices that the ready endpoints are exactly the ready new pods
//!    (else switch back, scale the new colour down, exit 1);
//! 6. keep the old colour scaled until `keep-until` (`--keep-old`), then `phase=finished` and
//!    scale it to 0 (its replica count kept in an annotation for `rollback`).
//!
//! Every step looks at the cluster before acting, so Ctrl-C (exit 4) and a re-run resume;
//! re-running a finished blue-green is a no-op, and the next one deploys into the idle colour.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::anyhow;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use rollout_safe_policy::check::CHANGE_CAUSE_ANNOTATION;
use rollout_safe_policy::judge::{equal_ignore_hash, normalized_template};
use rollout_safe_policy::selector::{map_selects, map_text};
use serde_json::{Value, json};

use crate::cli::{
    BlueGreenAction, BlueGreenActionArgs, BlueGreenArgs, BlueGreenStart, BlueGreenStatusArgs,
    DataFormat, KubeArgs, WatchArgs,
};
use crate::cluster::colors::{
    self, BgState, COLOR_LABEL, Color, Phase, ServiceChange, StartPlan, ann, annotation,
    base_selector, color_deployment_name, colored_selector, endpoints_switched, plan_start,
    pods_selected, replicas, selector_color, service_selector, template_labels, ts_add,
    wait_endpoints,
};
use crate::cluster::patch::write_deployment;
use crate::cluster::revisions::{images_text, template_images};
use crate::cluster::rollback::{RollbackPlan, write_rollback};
use crate::cluster::watch::{Ending, WatchOptions, watch_rollout};
use crate::cluster::{self, Cluster, WorkloadRef};
use crate::commands::update::{ImageSet, Preflight, as_workload, judge_config, parse_images};
use crate::display::{Display, failure_report, secs, ts_text};
use crate::exit::{CmdResult, Exit, Failure};
use crate::{input, signals};

pub async fn run(kube: &KubeArgs, args: BlueGreenArgs) -> CmdResult {
    match (args.action, args.start) {
        (Some(BlueGreenAction::Rollback(a)), _) => rollback(kube, a).await,
        (Some(BlueGreenAction::Finish(a)), _) => finish(kube, a).await,
        (Some(BlueGreenAction::Status(a)), _) => status(kube, a).await,
        (None, s) => start(kube, s).await,
    }
}

/// One blue-green: the base Deployment's name and the Service.
struct Bg {
    cluster: Cluster,
    base: String,
    service: String,
}

impl Bg {
    fn name(&self, c: Color) -> String {
        color_deployment_name(&self.base, c)
    }

    fn wref(&self, c: Color) -> WorkloadRef {
        WorkloadRef {
            kind: rollout_safe_policy::WorkloadKind::Deployment,
            name: self.name(c),
        }
    }

    /// `deployment/shop-green (green)`
    fn show(&self, c: Color) -> String {
        format!("deployment/{} ({c})", self.name(c))
    }

    fn suggest(&self, action: &str) -> String {
        self.cluster.suggest(
            &format!("blue-green {action}"),
            &format!("deployment/{}", self.base),
            "",
        )
    }

    async fn service(&self) -> Result<Service, Failure> {
        colors::get_service(&self.cluster, &self.service).await
    }

    async fn deployment(&self, c: Color) -> Result<Deployment, Failure> {
        cluster::get_deployment(&self.cluster, &self.name(c)).await
    }

    async fn try_deployment(&self, c: Color) -> Result<Option<Deployment>, Failure> {
        match self.cluster.deployments().get(&self.name(c)).await {
            Ok(d) => Ok(Some(d)),
            Err(e) if cluster::errors::is_not_found(&e) => Ok(None),
            Err(e) => Err(cluster::errors::api_failure(
                e,
                cluster::errors::Op::new(
                    "get",
                    "deployments.apps",
                    Some(&self.name(c)),
                    &self.cluster.namespace,
                ),
            )),
        }
    }
}

/// Finds the blue-green a workload belongs to: the base Deployment (the named one, or the one
/// its `blue-green-base` annotation names) and the Service (`--service`, or the annotation the
/// first run left on the base Deployment).
async fn locate(
    cluster: Cluster,
    workload: &str,
    service: Option<&str>,
    command: &str,
) -> Result<(Bg, Deployment), Failure> {
    let target = WorkloadRef::parse(workload)?;
    target.require_deployment(command)?;
    cluster.reject_all_namespaces(command)?;
    let named = cluster::get_deployment(&cluster, &target.name).await?;
    let base = annotation(&named, ann::BASE)
        .unwrap_or(&target.name)
        .to_owned();
    let base_dep = if base == target.name {
        named
    } else {
        cluster::get_deployment(&cluster, &base).await?
    };
    let recorded = annotation(&base_dep, ann::SERVICE).map(str::to_owned);
    let service = match (service, recorded) {
        (Some(s), Some(r)) if s != r => {
            return Err(Failure::usage(format!(
                "deployment/{base} is blue-green behind service/{r}, not service/{s}; pass --service {r}"
            )));
        }
        (Some(s), _) => s.to_owned(),
        (None, Some(r)) => r,
        (None, None) => {
            return Err(Failure::usage(format!(
                "deployment/{base} has no blue-green yet (start one with `blue-green deployment/{base} --service SVC --image C=IMG`)"
            )));
        }
    };
    Ok((
        Bg {
            cluster,
            base,
            service,
        },
        base_dep,
    ))
}

/// Watching a colour until `deadline`; `hold`: and until its new pods stayed Ready that long.
fn watch_opts(
    w: &WatchArgs,
    deadline: tokio::time::Instant,
    hold: Option<Duration>,
) -> WatchOptions {
    WatchOptions {
        timeout: deadline.saturating_duration_since(tokio::time::Instant::now()),
        judge: judge_config(w),
        stop_when_paused: true,
        hold,
    }
}

fn interrupted(bg: &Bg, what: &str) -> Exit {
    eprintln!("interrupted: {what}");
    eprintln!(
        "  the state is kept on service/{}; re-run the same command to resume, or:",
        bg.service
    );
    eprintln!("  status:   {}", bg.suggest("status"));
    eprintln!("  rollback: {}", bg.suggest("rollback"));
    Exit::Timeout
}

// ---------------------------------------------------------------------------
// blue-green WORKLOAD --service SVC --image …
// ---------------------------------------------------------------------------

async fn start(kube: &KubeArgs, a: BlueGreenStart) -> CmdResult {
    let usage = || {
        Failure::usage(
            "blue-green needs WORKLOAD --service SVC --image C=IMG, or one of rollback|finish|status WORKLOAD",
        )
    };
    let workload = a.workload.clone().ok_or_else(usage)?;
    let service = a.service.clone().ok_or_else(usage)?;
    let images = parse_images(&a.images)?;
    let key = colors::images_key(&images);
    let policy = input::load_policy(a.policy.policy.as_deref())?;
    let cluster = Cluster::connect(kube).await?;
    let (bg, base_dep) = locate(cluster, &workload, Some(&service), "blue-green").await?;
    refuse_during_canary(&bg, &base_dep)?;
    let svc = bg.service().await?;
    let sel = service_selector(&svc)?;
    let state = BgState::of(&svc);
    if let Some(w) = state.workload.as_deref().filter(|w| *w != bg.base) {
        return Err(Failure::usage(format!(
            "service/{} is switched between the colours of deployment/{w}, not deployment/{}",
            bg.service, bg.base
        )));
    }
    let live = selector_color(&sel);
    let live_dep = bg.deployment(live.unwrap_or(Color::Blue)).await?;
    refuse_during_canary(&bg, &live_dep)?;
    let live_labels = template_labels(&live_dep.spec.template);
    if !map_selects(&base_selector(&sel), &live_labels) {
        return Err(Failure::usage(format!(
            "service/{} (selector {}) does not select the pods of deployment/{} (labels {})",
            bg.service,
            map_text(&sel),
            bg.name(live.unwrap_or(Color::Blue)),
            map_text(&live_labels)
        )));
    }
    let plan = plan_start(
        &state,
        live,
        &key,
        colors::runs_images(&live_dep.spec.template, &images),
    )
    .map_err(Failure::usage)?;
    let deadline = tokio::time::Instant::now() + a.watch.timeout;
    match plan {
        StartPlan::AlreadyLive { active } => {
            println!(
                "service/{} already sends traffic to {}, which runs {}: nothing to do",
                bg.service,
                bg.show(active),
                images_text(&template_images(&live_dep.spec.template))
            );
            Ok(Exit::Success)
        }
        StartPlan::AfterSwitch { active, previous } => {
            eprintln!(
                "resuming: service/{} was already switched to {} (from {previous})",
                bg.service,
                bg.show(active)
            );
            after_switch(&bg, &a, active, previous, false).await
        }
        StartPlan::Deploy {
            active,
            target,
            first,
        } => {
            // The policy pre-flight of the new colour, before anything is written (the first
            // run's labelling and narrowing included). `deploy` checks it again, on the template
            // derived from the active colour as it is then.
            let wanted = new_colour(&bg, &live_dep, &images, active, target)?;
            let facts = cluster::facts_for(&bg.cluster, &as_workload(&wanted)).await;
            let mut preflight = Preflight::new(
                policy.for_namespace(Some(&bg.cluster.namespace)),
                facts,
                a.force,
            );
            preflight.check(
                &format!("bring up {}", bg.show(target)),
                &as_workload(&wanted),
                None,
            )?;
            if state.phase == Some(Phase::Deploying) {
                eprintln!(
                    "resuming: {} was being brought up beside {} (images {})",
                    bg.show(target),
                    bg.show(active),
                    state.images.as_deref().unwrap_or("?")
                );
            }
            if first {
                if let Some(exit) = adopt_blue(&bg, live_dep, &a.watch, deadline).await? {
                    return Ok(exit);
                }
                if let Some(exit) = narrow(&bg, target, &key, a.verify_timeout).await? {
                    return Ok(exit);
                }
            } else {
                mark_deploying(&bg, active, target, &key).await?;
            }
            if signals::interrupted() {
                return Ok(interrupted(&bg, "before the new colour was brought up"));
            }
            let colours = Colours { active, target };
            deploy(&bg, &a, &mut preflight, &images, &key, colours, deadline).await
        }
    }
}

/// A canary of either colour must end before a blue-green starts.
fn refuse_during_canary(bg: &Bg, d: &Deployment) -> Result<(), Failure> {
    if matches!(
        annotation(d, ann::CANARY_PHASE),
        Some("running" | "promoting")
    ) {
        let name = d.metadata.name.as_deref().unwrap_or_default();
        return Err(Failure::usage(format!(
            "deployment/{name} has a canary under way; finish or abort it first ({})",
            bg.cluster
                .suggest("canary abort", &format!("deployment/{name}"), "")
        )));
    }
    Ok(())
}

/// First run: give the original Deployment's pods `rollout-safe.dev/color: blue` (a rolling
/// update of the template labels, guarded, watched, rolled back on failure) and record the
/// Service on it. `Some(exit)`: stop there.
async fn adopt_blue(
    bg: &Bg,
    base_dep: Deployment,
    watch: &WatchArgs,
    deadline: tokio::time::Instant,
) -> Result<Option<Exit>, Failure> {
    match template_labels(&base_dep.spec.template)
        .get(COLOR_LABEL)
        .map(String::as_str)
    {
        None | Some("blue") => {}
        Some(other) => {
            return Err(Failure::usage(format!(
                "deployment/{}'s pods are labelled {COLOR_LABEL}={other}, but the original Deployment is the blue colour",
                bg.base
            )));
        }
    }
    let user = bg.cluster.username.clone();
    let service = bg.service.clone();
    let base = bg.base.clone();
    let written = write_deployment(&bg.cluster, base_dep, false, false, |cur, _| {
        let mut d = cur.clone();
        let labels = d.spec.template.metadata.get_or_insert_default().labels.get_or_insert_default();
        let relabel = labels.get(COLOR_LABEL).map(String::as_str) != Some("blue");
        labels.insert(COLOR_LABEL.to_owned(), "blue".to_owned());
        let a = d.metadata.annotations.get_or_insert_default();
        a.insert(ann::SERVICE.to_owned(), service.clone());
        a.insert(ann::COLOR.to_owned(), "blue".to_owned());
        a.insert(ann::BASE.to_owned(), base.clone());
        if relabel {
            a.insert(
                CHANGE_CAUSE_ANNOTATION.to_owned(),
                format!("{user}: label pods {COLOR_LABEL}=blue for blue-green behind service/{service} (no image change)"),
            );
        }
        Ok((d != *cur).then_some(d))
    })
    .await?;
    let Some(w) = written else { return Ok(None) };
    if equal_ignore_hash(&w.before.spec.template, &w.after.spec.template) {
        return Ok(None);
    }
    eprintln!(
        "deployment/{}: labelling its pods {COLOR_LABEL}=blue (a rolling update; the Service still selects them all)",
        bg.base
    );
    let target = bg.wref(Color::Blue);
    let mut view = Display::new(format!("{} (labelling blue)", bg.show(Color::Blue)));
    let ending = watch_rollout(
        &bg.cluster,
        &target,
        &watch_opts(watch, deadline, None),
        &mut view,
    )
    .await?;
    view.finish();
    drop(view);
    let (why, exit) = match ending {
        Ending::Complete(_) | Ending::Paused(_) | Ending::Unsupported(_) => return Ok(None),
        Ending::Interrupted(_) => {
            return Ok(Some(interrupted(
                bg,
                "while the blue pods were being labelled",
            )));
        }
        Ending::Deleted => {
            return Err(Failure::new(
                Exit::Cluster,
                anyhow!("deployment/{} was deleted", bg.base),
            ));
        }
        Ending::Failed { failure, .. } => {
            eprintln!("{}", failure_report(&failure));
            ("the labelling rollout failed", Exit::RolloutFailed)
        }
        Ending::TimedOut(v) => {
            eprintln!("timed out: {}", v.progress().message);
            ("the labelling rollout timed out", Exit::Timeout)
        }
    };
    let plan = RollbackPlan {
        template: normalized_template(&w.before.spec.template),
        cause: format!(
            "{} : rollback of the blue label ({why})",
            bg.cluster.username
        ),
        only_if_template: Some(w.after.spec.template.clone()),
    };
    let current = bg.deployment(Color::Blue).await?;
    write_rollback(&bg.cluster, current, &plan, false).await?;
    eprintln!(
        "{why}; deployment/{} rolled back to its unlabelled template; the Service was not touched",
        bg.base
    );
    Ok(Some(exit))
}

/// First run: narrow the Service from its base selector to the blue colour, once every ready
/// endpoint is a blue pod (so the narrowing drops nothing), and verify it.
async fn narrow(
    bg: &Bg,
    target: Color,
    key: &str,
    verify: Duration,
) -> Result<Option<Exit>, Failure> {
    let svc = bg.service().await?;
    let sel = service_selector(&svc)?;
    let blue_sel = colored_selector(&sel, Color::Blue);
    if selector_color(&sel).is_none() {
        let (report, ok) = wait_endpoints(
            &bg.cluster,
            &bg.service,
            &blue_sel,
            verify,
            endpoints_switched,
        )
        .await?;
        if !ok {
            return Err(Failure::new(
                Exit::RolloutFailed,
                anyhow!(
                    "not narrowing service/{} to the blue pods: its ready endpoints are not all blue pods after {} \
                     ({}); nothing was switched",
                    bg.service,
                    secs(verify),
                    report.summary("blue")
                ),
            ));
        }
    }
    let base = bg.base.clone();
    let key = key.to_owned();
    let written = colors::write_service(&bg.cluster, svc, |cur, _| {
        let sel = service_selector(cur)?;
        match selector_color(&sel) {
            None | Some(Color::Blue) => {}
            Some(c) => {
                return Err(Failure::new(
                    Exit::RolloutFailed,
                    anyhow!(
                        "service/{} now selects {c}; someone else is switching it",
                        cur.metadata.name.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
        let state = BgState {
            phase: Some(Phase::Deploying),
            active: Some(Color::Blue),
            target: Some(target),
            images: Some(key.clone()),
            workload: Some(base.clone()),
            ..BgState::default()
        };
        Ok(Some(ServiceChange {
            selector: Some(colored_selector(&sel, Color::Blue)),
            annotations: state.annotations(),
        }))
    })
    .await?;
    if let Some(w) = &written
        && selector_color(&service_selector(&w.before)?).is_none()
    {
        eprintln!(
            "service/{}: selector narrowed from {} to {} (the same pods)",
            bg.service,
            map_text(&service_selector(&w.before)?),
            map_text(&blue_sel)
        );
    }
    let (report, ok) = wait_endpoints(
        &bg.cluster,
        &bg.service,
        &blue_sel,
        verify,
        endpoints_switched,
    )
    .await?;
    if ok {
        return Ok(None);
    }
    eprintln!(
        "service/{}: endpoints after narrowing: {}",
        bg.service,
        report.summary("blue")
    );
    Err(Failure::new(
        Exit::RolloutFailed,
        anyhow!(
            "service/{}'s endpoints did not settle on the blue pods after narrowing; check `kubectl get endpointslices -l kubernetes.io/service-name={}`",
            bg.service,
            bg.service
        ),
    ))
}

/// Records on the Service that `target` is being brought up beside `active`.
async fn mark_deploying(bg: &Bg, active: Color, target: Color, key: &str) -> Result<(), Failure> {
    let svc = bg.service().await?;
    let base = bg.base.clone();
    colors::write_service(&bg.cluster, svc, |cur, _| {
        let sel = service_selector(cur)?;
        if selector_color(&sel) != Some(active) {
            return Err(Failure::new(
                Exit::RolloutFailed,
                anyhow!(
                    "service/{} no longer selects {active}; someone else is switching it",
                    cur.metadata.name.as_deref().unwrap_or_default()
                ),
            ));
        }
        let state = BgState {
            phase: Some(Phase::Deploying),
            active: Some(active),
            target: Some(target),
            images: Some(key.to_owned()),
            workload: Some(base.clone()),
            ..BgState::default()
        };
        Ok(Some(ServiceChange {
            selector: None,
            annotations: state.annotations(),
        }))
    })
    .await?;
    Ok(())
}

/// The colour with traffic and the one being brought up beside it.
#[derive(Debug, Clone, Copy)]
struct Colours {
    active: Color,
    target: Color,
}

/// The change-cause of the new colour.
fn colour_cause(bg: &Bg, template_images_text: &str, active: Color, target: Color) -> String {
    format!(
        "{}: blue-green {target} with {template_images_text} beside {active}",
        bg.cluster.username
    )
}

/// The new colour's Deployment as it should be: the active colour's spec with the new images and
/// `target`'s colour label, at the active colour's replica count.
fn new_colour(
    bg: &Bg,
    active_dep: &Deployment,
    images: &[ImageSet],
    active: Color,
    target: Color,
) -> Result<Deployment, Failure> {
    let template = colors::derived_template(active_dep, images, COLOR_LABEL, target.as_str())?;
    let cause = colour_cause(
        bg,
        &images_text(&template_images(&template)),
        active,
        target,
    );
    Ok(colors::sibling_deployment(
        active_dep,
        &bg.name(target),
        template,
        COLOR_LABEL,
        target.as_str(),
        replicas(active_dep),
        &[
            (ann::BASE, &bg.base),
            (ann::COLOR, target.as_str()),
            (ann::SERVICE, &bg.service),
            (CHANGE_CAUSE_ANNOTATION, &cause),
        ],
    ))
}

async fn deploy(
    bg: &Bg,
    a: &BlueGreenStart,
    preflight: &mut Preflight,
    images: &[ImageSet],
    key: &str,
    Colours { active, target }: Colours,
    deadline: tokio::time::Instant,
) -> CmdResult {
    let active_dep = bg.deployment(active).await?;
    let n = replicas(&active_dep);
    let tname = bg.name(target);
    let wanted = new_colour(bg, &active_dep, images, active, target)?;
    preflight.check(
        &format!("bring up {}", bg.show(target)),
        &as_workload(&wanted),
        None,
    )?;
    let template = wanted.spec.template.clone();
    let shown_images = images_text(&template_images(&template));
    let cause = colour_cause(bg, &shown_images, active, target);
    let (base, service) = (bg.base.clone(), bg.service.clone());
    eprintln!(
        "{}: bringing up {n} pod(s) with {shown_images} beside {} (no traffic until the switch)",
        bg.show(target),
        bg.show(active)
    );
    colors::create_or_refresh(&bg.cluster, wanted, |cur| {
        let mut fresh = colors::refreshed_deployment(
            cur,
            &template,
            n,
            &[
                (ann::BASE, Some(&base)),
                (ann::COLOR, Some(target.as_str())),
                (ann::SERVICE, Some(&service)),
                (ann::RESTORE_REPLICAS, None),
            ],
            &cause,
        )?;
        if cur.spec.paused == Some(true) {
            let d = fresh.get_or_insert_with(|| cur.clone());
            d.spec.paused = None;
        }
        Ok(fresh)
    })
    .await?;

    // One watch: the judge until the new colour is complete, then the hold until every new pod
    // has stayed Ready for --bake (a crash or restart meanwhile fails it); then a last look at the
    // pods right before the write.
    let tref = bg.wref(target);
    loop {
        let mut view = Display::new(bg.show(target));
        let ending = watch_rollout(
            &bg.cluster,
            &tref,
            &watch_opts(&a.watch, deadline, Some(a.bake)),
            &mut view,
        )
        .await?;
        view.finish();
        drop(view);
        let stage = |v: &rollout_safe_policy::judge::Verdict| {
            if v.is_complete() {
                "baking"
            } else {
                "coming up"
            }
        };
        match ending {
            Ending::Complete(_) => {}
            Ending::Interrupted(v) => {
                return Ok(interrupted(
                    bg,
                    &format!(
                        "while {} was {} (it has no traffic)",
                        bg.show(target),
                        stage(&v)
                    ),
                ));
            }
            Ending::Deleted => {
                return Err(Failure::new(
                    Exit::Cluster,
                    anyhow!("deployment/{tname} was deleted before the switch"),
                ));
            }
            Ending::Failed { failure, .. } => {
                eprintln!("{}", failure_report(&failure));
                return abandon(
                    bg,
                    active,
                    target,
                    &format!("it failed before the switch: {}", failure.message),
                    Exit::RolloutFailed,
                )
                .await;
            }
            Ending::TimedOut(v) | Ending::Paused(v) | Ending::Unsupported(v) => {
                eprintln!("{}: {}", bg.show(target), v.progress().message);
                let why = if v.is_complete() {
                    format!(
                        "its pods did not stay ready for --bake {} within --timeout {}",
                        secs(a.bake),
                        secs(a.watch.timeout)
                    )
                } else {
                    format!(
                        "it was not ready within --timeout {}",
                        secs(a.watch.timeout)
                    )
                };
                return abandon(bg, active, target, &why, Exit::Timeout).await;
            }
        }
        let svc = bg.service().await?;
        let new_sel = colored_selector(&service_selector(&svc)?, target);
        let pods = pods_selected(&bg.cluster, &new_sel).await?;
        let ready = pods.iter().filter(|p| colors::pod_ready(p)).count();
        if ready as i64 >= i64::from(n.max(1)) {
            break;
        }
        eprintln!(
            "{}: only {ready} of {n} pods ready right before the switch; holding again",
            bg.show(target)
        );
        if tokio::time::Instant::now() >= deadline {
            return abandon(
                bg,
                active,
                target,
                "its pods did not stay ready",
                Exit::Timeout,
            )
            .await;
        }
    }

    if signals::interrupted() {
        return Ok(interrupted(
            bg,
            &format!(
                "before the switch ({} is ready, with no traffic)",
                bg.show(target)
            ),
        ));
    }
    if let Some(exit) = switch(bg, active, target, key, a.keep_old, a.verify_timeout).await? {
        return Ok(exit);
    }
    after_switch(bg, a, target, active, true).await
}

/// Scales the never-switched-to colour down and records it; it never had traffic.
async fn abandon(bg: &Bg, active: Color, target: Color, why: &str, exit: Exit) -> CmdResult {
    let svc = bg.service().await?;
    colors::write_service(&bg.cluster, svc, |cur, _| {
        let sel = service_selector(cur)?;
        if selector_color(&sel) == Some(target) {
            return Err(Failure::new(
                Exit::RolloutFailed,
                anyhow!("service/{} selects {target} already; not abandoning it (use `blue-green rollback`)", bg.service),
            ));
        }
        let mut state = BgState::of(cur);
        state.phase = Some(Phase::Abandoned);
        state.active = Some(active);
        state.target = Some(target);
        Ok(Some(ServiceChange {
            selector: None,
            annotations: state.annotations(),
        }))
    })
    .await?;
    colors::scale(&bg.cluster, &bg.name(target), 0).await?;
    eprintln!(
        "blue-green abandoned: {}: {why}; it was scaled to 0 and never received traffic; service/{} still selects {}",
        bg.show(target),
        bg.service,
        bg.show(active)
    );
    Ok(exit)
}

/// Switches the Service from `from` to `to` in one guarded write, re-checked on every conflict,
/// then verifies the endpoints; on a failed verification switches back and scales `to` down.
/// `Some(exit)`: stop there.
async fn switch(
    bg: &Bg,
    from: Color,
    to: Color,
    key: &str,
    keep_old: Duration,
    verify: Duration,
) -> Result<Option<Exit>, Failure> {
    let svc = bg.service().await?;
    let base = bg.base.clone();
    let key = key.to_owned();
    let written = colors::write_service(&bg.cluster, svc, |cur, _| {
        let sel = service_selector(cur)?;
        let state = BgState::of(cur);
        let switched = BgState {
            phase: Some(Phase::Switched),
            active: Some(to),
            previous: Some(from),
            target: None,
            images: Some(key.clone()),
            switched_at: Some(Timestamp::now()),
            keep_until: Some(ts_add(Timestamp::now(), keep_old)),
            workload: Some(base.clone()),
        };
        match selector_color(&sel) {
            Some(c) if c == to => {
                // Our earlier attempt went through (or a previous run's).
                if state.phase == Some(Phase::Switched) && state.active == Some(to) {
                    return Ok(None);
                }
                return Ok(Some(ServiceChange {
                    selector: None,
                    annotations: switched.annotations(),
                }));
            }
            Some(c) if c == from => {}
            other => {
                return Err(Failure::new(
                    Exit::RolloutFailed,
                    anyhow!(
                        "not switching: service/{} now selects {} (expected {from}); someone else changed it",
                        cur.metadata.name.as_deref().unwrap_or_default(),
                        other.map_or("no colour", Color::as_str)
                    ),
                ));
            }
        }
        if state.phase != Some(Phase::Deploying) || state.target != Some(to) {
            return Err(Failure::new(
                Exit::RolloutFailed,
                anyhow!(
                    "not switching: the blue-green state on service/{} changed meanwhile (phase {}); someone ran rollback or another blue-green",
                    cur.metadata.name.as_deref().unwrap_or_default(),
                    state.phase.map_or("none", Phase::as_str)
                ),
            ));
        }
        Ok(Some(ServiceChange {
            selector: Some(colored_selector(&sel, to)),
            annotations: switched.annotations(),
        }))
    })
    .await?;
    if let Some(w) = &written {
        eprintln!(
            "service/{}: switched {} → {} (one write guarded by resourceVersion {}{}): selector {}",
            bg.service,
            bg.show(from),
            bg.show(to),
            w.before.metadata.resource_version.as_deref().unwrap_or("?"),
            if w.attempts > 1 {
                format!(", after {} attempts", w.attempts)
            } else {
                String::new()
            },
            map_text(&service_selector(&w.after)?)
        );
    }
    verify_or_revert(bg, from, to, verify).await
}

/// After a switch to `to`: the Service's ready endpoints must be exactly `to`'s ready pods.
/// Otherwise the selector goes back to `from` and `to` is scaled down (exit 1).
async fn verify_or_revert(
    bg: &Bg,
    from: Color,
    to: Color,
    verify: Duration,
) -> Result<Option<Exit>, Failure> {
    let svc = bg.service().await?;
    let to_sel = colored_selector(&service_selector(&svc)?, to);
    let (report, ok) = wait_endpoints(
        &bg.cluster,
        &bg.service,
        &to_sel,
        verify,
        endpoints_switched,
    )
    .await?;
    if ok {
        eprintln!(
            "service/{}: endpoints verified: {}",
            bg.service,
            report.summary(to.as_str())
        );
        return Ok(None);
    }
    eprintln!(
        "service/{}: after {} its endpoints are still not only {to} pods: {}; switching back to {from}",
        bg.service,
        secs(verify),
        report.summary(to.as_str())
    );
    let svc = bg.service().await?;
    colors::write_service(&bg.cluster, svc, |cur, _| {
        let sel = service_selector(cur)?;
        if selector_color(&sel) != Some(to) {
            return Ok(None);
        }
        let mut state = BgState::of(cur);
        state.phase = Some(Phase::Abandoned);
        state.active = Some(from);
        state.previous = None;
        state.target = Some(to);
        state.keep_until = None;
        Ok(Some(ServiceChange {
            selector: Some(colored_selector(&sel, from)),
            annotations: state.annotations(),
        }))
    })
    .await?;
    colors::scale(&bg.cluster, &bg.name(to), 0).await?;
    eprintln!(
        "service/{} is back on {}; {} was scaled to 0",
        bg.service,
        bg.show(from),
        bg.show(to)
    );
    Ok(Some(Exit::RolloutFailed))
}

/// After the switch: verify the endpoints (unless just done), keep `previous` for the rollback window, then
/// scale it down. Returns early if someone ends the window meanwhile (rollback, finish).
async fn after_switch(
    bg: &Bg,
    a: &BlueGreenStart,
    active: Color,
    previous: Color,
    verified: bool,
) -> CmdResult {
    if !verified
        && let Some(exit) = verify_or_revert(bg, previous, active, a.verify_timeout).await?
    {
        return Ok(exit);
    }
    let svc = bg.service().await?;
    let state = BgState::of(&svc);
    let keep_until = state.keep_until.unwrap_or_else(Timestamp::now);
    if keep_until > Timestamp::now() {
        eprintln!(
            "keeping {} scaled for a rollback until {}; Ctrl-C leaves it so: `blue-green finish` scales it down, `blue-green rollback` switches back",
            bg.show(previous),
            ts_text(keep_until)
        );
    }
    loop {
        let now = Timestamp::now();
        if keep_until <= now {
            break;
        }
        let left =
            std::time::Duration::try_from(keep_until.duration_since(now)).unwrap_or_default();
        tokio::select! {
            biased;
            () = signals::interrupt() => {
                eprintln!("interrupted: traffic is on {}; {} stays scaled until `blue-green finish` (or re-run this command)", bg.show(active), bg.show(previous));
                eprintln!("  finish:   {}", bg.suggest("finish"));
                eprintln!("  rollback: {}", bg.suggest("rollback"));
                return Ok(Exit::Timeout);
            },
            _ = tokio::time::sleep(left.min(Duration::from_secs(5))) => {}
        }
        let st = BgState::of(&bg.service().await?);
        if st.phase != Some(Phase::Switched) || st.active != Some(active) {
            println!(
                "service/{}: the blue-green was ended meanwhile (phase {}); nothing more to do here",
                bg.service,
                st.phase.map_or("none", Phase::as_str)
            );
            return Ok(Exit::Success);
        }
    }
    finish_window(bg).await?;
    println!(
        "blue-green done: service/{} sends traffic to {}; {} scaled to 0 (rollback: {})",
        bg.service,
        bg.show(active),
        bg.show(previous),
        bg.suggest("rollback")
    );
    Ok(Exit::Success)
}

/// Ends the rollback window: `phase=finished` (guarded, so a concurrent rollback wins or loses
/// cleanly), then the previous colour scaled to 0. Idempotent.
async fn finish_window(bg: &Bg) -> Result<(Option<Color>, Phase), Failure> {
    let svc = bg.service().await?;
    let mut outcome = (None, Phase::Finished);
    colors::write_service(&bg.cluster, svc, |cur, _| {
        let state = BgState::of(cur);
        let live = selector_color(&service_selector(cur)?);
        match state.phase {
            Some(Phase::Switched | Phase::RollingBack) => {
                // From rolling-back: the rollback could not bring the old colour back; keep the live one.
                let previous = state.previous.or(live.map(Color::other));
                outcome = (previous, Phase::Finished);
                let next = BgState {
                    phase: Some(Phase::Finished),
                    active: live.or(state.active),
                    ..state
                };
                Ok(Some(ServiceChange {
                    selector: None,
                    annotations: next.annotations(),
                }))
            }
            Some(p @ (Phase::Finished | Phase::RolledBack)) => {
                outcome = (state.previous, p);
                Ok(None)
            }
            Some(Phase::Abandoned) => {
                outcome = (state.target, Phase::Abandoned);
                Ok(None)
            }
            Some(Phase::Deploying) => Err(Failure::usage(format!(
                "nothing was switched yet ({} is still coming up); `blue-green rollback` abandons it",
                state.target.map_or("the new colour", Color::as_str)
            ))),
            None => Err(Failure::usage(format!("service/{} has no blue-green state", bg.service))),
        }
    })
    .await?;
    if let Some(prev) = outcome.0
        && selector_color(&service_selector(&bg.service().await?)?) != Some(prev)
        && bg.try_deployment(prev).await?.is_some()
    {
        colors::scale(&bg.cluster, &bg.name(prev), 0).await?;
    }
    Ok(outcome)
}

// ---------------------------------------------------------------------------
// blue-green finish | rollback | status
// ---------------------------------------------------------------------------

async fn finish(kube: &KubeArgs, a: BlueGreenActionArgs) -> CmdResult {
    let cluster = Cluster::connect(kube).await?;
    let (bg, _) = locate(cluster, &a.target.workload, None, "blue-green finish").await?;
    let (prev, phase) = finish_window(&bg).await?;
    let live = selector_color(&service_selector(&bg.service().await?)?);
    match (phase, prev) {
        (Phase::Abandoned, _) => println!(
            "nothing to finish: the last blue-green was abandoned; service/{} selects {}",
            bg.service,
            live.map_or("no colour".to_owned(), |c| bg.show(c))
        ),
        (_, Some(p)) => println!(
            "blue-green finished: service/{} sends traffic to {}; {} is scaled to 0",
            bg.service,
            live.map_or("no colour".to_owned(), |c| bg.show(c)),
            bg.show(p)
        ),
        (_, None) => println!("blue-green finished: service/{}", bg.service),
    }
    Ok(Exit::Success)
}

async fn rollback(kube: &KubeArgs, a: BlueGreenActionArgs) -> CmdResult {
    let cluster = Cluster::connect(kube).await?;
    let (bg, _) = locate(cluster, &a.target.workload, None, "blue-green rollback").await?;
    let deadline = tokio::time::Instant::now() + a.timeout;
    let svc = bg.service().await?;
    let state = BgState::of(&svc);
    let Some(live) = selector_color(&service_selector(&svc)?) else {
        return Err(Failure::usage(format!(
            "service/{} does not select a colour: nothing to roll back",
            bg.service
        )));
    };
    match state.phase {
        Some(Phase::Deploying) => {
            let target = state.target.unwrap_or(live.other());
            return abandon(
                &bg,
                live,
                target,
                "the rollback abandoned it before the switch",
                Exit::Success,
            )
            .await;
        }
        Some(Phase::RolledBack) => {
            let bad = state.previous.unwrap_or(live.other());
            if bg
                .try_deployment(bad)
                .await?
                .is_some_and(|d| replicas(&d) > 0)
            {
                colors::scale(&bg.cluster, &bg.name(bad), 0).await?;
            }
            println!(
                "already rolled back: service/{} sends traffic to {}",
                bg.service,
                bg.show(live)
            );
            return Ok(Exit::Success);
        }
        Some(Phase::Abandoned) | None => {
            println!(
                "nothing to roll back: no switch happened{}; service/{} sends traffic to {}",
                if state.phase.is_some() {
                    " (the last blue-green was abandoned)"
                } else {
                    ""
                },
                bg.service,
                bg.show(live)
            );
            return Ok(Exit::Success);
        }
        Some(Phase::Switched | Phase::Finished | Phase::RollingBack) => {}
    }
    let back = state
        .previous
        .filter(|p| *p != live)
        .unwrap_or(live.other());
    let Some(back_dep) = bg.try_deployment(back).await? else {
        return Err(Failure::usage(format!(
            "cannot roll back: {} no longer exists; service/{} stays on {}",
            bg.show(back),
            bg.service,
            bg.show(live)
        )));
    };

    // 1. Claim the rollback (a concurrent finish loses, or we see it won).
    colors::write_service(&bg.cluster, svc, |cur, _| {
        let st = BgState::of(cur);
        if selector_color(&service_selector(cur)?) != Some(live)
            || !matches!(
                st.phase,
                Some(Phase::Switched | Phase::Finished | Phase::RollingBack)
            )
        {
            return Err(Failure::new(
                Exit::RolloutFailed,
                anyhow!(
                    "service/{} changed meanwhile (phase {}); not rolling back",
                    bg.service,
                    st.phase.map_or("none", Phase::as_str)
                ),
            ));
        }
        Ok(Some(ServiceChange {
            selector: None,
            annotations: BgState {
                phase: Some(Phase::RollingBack),
                ..st
            }
            .annotations(),
        }))
    })
    .await?;

    // 2. Bring the old colour back to strength.
    let live_dep = bg.deployment(live).await?;
    let want = colors::annotation_i32(&back_dep, ann::RESTORE_REPLICAS)
        .filter(|n| *n > 0)
        .unwrap_or_else(|| replicas(&live_dep).max(1));
    if replicas(&back_dep) < want {
        eprintln!("{}: scaling back up to {want}", bg.show(back));
        colors::scale(&bg.cluster, &bg.name(back), want).await?;
    }
    let watch = WatchArgs {
        timeout: a.timeout,
        max_restarts: 3,
        readiness_budget: Duration::from_secs(120),
    };
    // Until the judge calls it complete and every one of its pods is Ready.
    let mut view = Display::new(format!("{} (rollback)", bg.show(back)));
    let ending = watch_rollout(
        &bg.cluster,
        &bg.wref(back),
        &watch_opts(&watch, deadline, Some(Duration::ZERO)),
        &mut view,
    )
    .await?;
    view.finish();
    drop(view);
    match ending {
        Ending::Complete(_) => {}
        Ending::Interrupted(_) => {
            return Ok(interrupted(
                &bg,
                &format!(
                    "while {} was scaling back up; traffic is still on {live}",
                    bg.show(back)
                ),
            ));
        }
        Ending::Failed { failure, .. } => {
            eprintln!("{}", failure_report(&failure));
            eprintln!(
                "cannot roll back: {} does not come back healthy; service/{} stays on {}",
                bg.show(back),
                bg.service,
                bg.show(live)
            );
            return Ok(Exit::RolloutFailed);
        }
        Ending::TimedOut(v) | Ending::Paused(v) | Ending::Unsupported(v) => {
            eprintln!(
                "cannot roll back yet: {} not ready within {} ({}); service/{} stays on {}",
                bg.show(back),
                secs(a.timeout),
                v.progress().message,
                bg.service,
                bg.show(live)
            );
            return Ok(Exit::Timeout);
        }
        Ending::Deleted => {
            return Err(Failure::new(
                Exit::Cluster,
                anyhow!("{} was deleted", bg.show(back)),
            ));
        }
    }

    // 3. Switch back, in one guarded write.
    let svc = bg.service().await?;
    let written = colors::write_service(&bg.cluster, svc, |cur, _| {
        let sel = service_selector(cur)?;
        let st = BgState::of(cur);
        if selector_color(&sel) == Some(back) {
            return Ok(None);
        }
        if selector_color(&sel) != Some(live) || st.phase != Some(Phase::RollingBack) {
            return Err(Failure::new(
                Exit::RolloutFailed,
                anyhow!(
                    "service/{} changed meanwhile (phase {}); not switching back",
                    bg.service,
                    st.phase.map_or("none", Phase::as_str)
                ),
            ));
        }
        Ok(Some(ServiceChange {
            selector: Some(colored_selector(&sel, back)),
            annotations: BgState {
                phase: Some(Phase::RolledBack),
                active: Some(back),
                previous: Some(live),
                target: None,
                switched_at: Some(Timestamp::now()),
                keep_until: None,
                ..st
            }
            .annotations(),
        }))
    })
    .await?;
    if let Some(w) = &written {
        eprintln!(
            "service/{}: switched back {} → {} (one write guarded by resourceVersion {}): selector {}",
            bg.service,
            bg.show(live),
            bg.show(back),
            w.before.metadata.resource_version.as_deref().unwrap_or("?"),
            map_text(&service_selector(&w.after)?)
        );
    }

    // 4. Verify, then scale the bad colour down.
    let back_sel = colored_selector(&service_selector(&bg.service().await?)?, back);
    let (report, ok) = wait_endpoints(
        &bg.cluster,
        &bg.service,
        &back_sel,
        a.verify_timeout,
        endpoints_switched,
    )
    .await?;
    if !ok {
        eprintln!(
            "service/{}: endpoints after the rollback: {}",
            bg.service,
            report.summary(back.as_str())
        );
        eprintln!(
            "{} is left scaled so that nothing is lost; check the Service's EndpointSlices",
            bg.show(live)
        );
        return Ok(Exit::RolloutFailed);
    }
    eprintln!(
        "service/{}: endpoints verified: {}",
        bg.service,
        report.summary(back.as_str())
    );
    colors::scale(&bg.cluster, &bg.name(live), 0).await?;
    println!(
        "rolled back: service/{} sends traffic to {}; {} scaled to 0",
        bg.service,
        bg.show(back),
        bg.show(live)
    );
    Ok(Exit::Success)
}

fn color_json(bg: &Bg, c: Color, d: Option<&Deployment>, live: Option<Color>) -> Value {
    match d {
        None => json!({"color": c.as_str(), "deployment": bg.name(c), "exists": false}),
        Some(d) => {
            let st = d.status.clone().unwrap_or_default();
            json!({
                "color": c.as_str(),
                "deployment": bg.name(c),
                "exists": true,
                "live": live == Some(c),
                "replicas": replicas(d),
                "readyReplicas": st.ready_replicas.unwrap_or(0),
                "updatedReplicas": st.updated_replicas.unwrap_or(0),
                "images": template_images(&d.spec.template).into_iter().map(|(c, i)| format!("{c}={i}")).collect::<Vec<_>>(),
                "restoreReplicas": colors::annotation_i32(d, ann::RESTORE_REPLICAS),
            })
        }
    }
}

async fn status(kube: &KubeArgs, a: BlueGreenStatusArgs) -> CmdResult {
    let cluster = Cluster::connect(kube).await?;
    let (bg, _) = locate(cluster, &a.target.workload, None, "blue-green status").await?;
    let svc = bg.service().await?;
    let sel = service_selector(&svc)?;
    let state = BgState::of(&svc);
    let live = selector_color(&sel);
    let blue = bg.try_deployment(Color::Blue).await?;
    let green = bg.try_deployment(Color::Green).await?;
    let slices = colors::endpoint_slices(&bg.cluster, &bg.service).await?;
    let live_pods: std::collections::BTreeSet<String> = match live {
        Some(c) => pods_selected(&bg.cluster, &colored_selector(&sel, c))
            .await?
            .iter()
            .map(colors::pod_name)
            .collect(),
        None => Default::default(),
    };
    let report = colors::endpoint_report(&slices, &live_pods);
    let now = Timestamp::now();
    let data = json!({
        "workload": format!("deployment/{}", bg.base),
        "namespace": bg.cluster.namespace,
        "service": bg.service,
        "selector": sel,
        "live": live.map(Color::as_str),
        "phase": state.phase.map(Phase::as_str),
        "active": state.active.map(Color::as_str),
        "previous": state.previous.map(Color::as_str),
        "target": state.target.map(Color::as_str),
        "images": state.images,
        "switchedAt": state.switched_at.map(ts_text),
        "keepUntil": state.keep_until.map(ts_text),
        "colors": [color_json(&bg, Color::Blue, blue.as_ref(), live), color_json(&bg, Color::Green, green.as_ref(), live)],
        "endpoints": {"ready": report.ready.len(), "readyLive": report.ready_wanted.len(),
            "readyOther": report.ready_other.iter().collect::<Vec<_>>(), "notReady": report.not_ready.len()},
    });
    match a.output {
        DataFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&data).map_err(anyhow::Error::from)?
        ),
        DataFormat::Yaml => print!(
            "{}",
            serde_saphyr::to_string(&data).map_err(|e| anyhow!("{e}"))?
        ),
        DataFormat::Table => {
            println!(
                "blue-green of deployment/{} behind service/{} (namespace {})",
                bg.base, bg.service, bg.cluster.namespace
            );
            let phase = state.phase.map_or("none", Phase::as_str);
            let detail = match state.phase {
                Some(Phase::Switched) => format!(
                    " — traffic on {} since {}, {} kept until {}{}",
                    state.active.map_or("?", Color::as_str),
                    state.switched_at.map_or("?".into(), ts_text),
                    state.previous.map_or("?", Color::as_str),
                    state.keep_until.map_or("?".into(), ts_text),
                    match state.keep_until {
                        Some(t) if t > now => format!(" (in {}s)", t.duration_since(now).as_secs()),
                        Some(_) =>
                            " (window over: `blue-green finish` or a re-run scales it down)".into(),
                        None => String::new(),
                    }
                ),
                Some(Phase::Deploying) => format!(
                    " — {} coming up beside {} (no traffic yet), images {}",
                    state.target.map_or("?", Color::as_str),
                    state.active.map_or("?", Color::as_str),
                    state.images.as_deref().unwrap_or("?")
                ),
                Some(Phase::Finished) => format!(
                    " — traffic on {} since {}, {} scaled down",
                    state.active.map_or("?", Color::as_str),
                    state.switched_at.map_or("?".into(), ts_text),
                    state.previous.map_or("?", Color::as_str)
                ),
                Some(Phase::Abandoned) => format!(
                    " — {} was abandoned before any switch",
                    state.target.map_or("?", Color::as_str)
                ),
                Some(Phase::RolledBack) => format!(
                    " — back on {} since {}",
                    state.active.map_or("?", Color::as_str),
                    state.switched_at.map_or("?".into(), ts_text)
                ),
                _ => String::new(),
            };
            println!("  phase:     {phase}{detail}");
            println!("  selector:  {}", map_text(&sel));
            for (c, d) in [(Color::Blue, &blue), (Color::Green, &green)] {
                let mark = if live == Some(c) { "  ← live" } else { "" };
                let label = format!("{c}:");
                match d {
                    None => println!(
                        "  {label:<10} deployment/{} (not created){mark}",
                        bg.name(c)
                    ),
                    Some(d) => {
                        let st = d.status.clone().unwrap_or_default();
                        println!(
                            "  {label:<10} deployment/{}: {}/{} ready, {}{mark}",
                            bg.name(c),
                            st.ready_replicas.unwrap_or(0),
                            replicas(d),
                            images_text(&template_images(&d.spec.template))
                        );
                    }
                }
            }
            println!(
                "  endpoints: {}",
                report.summary(live.map_or("live", Color::as_str))
            );
            match state.phase {
                Some(Phase::Switched) => {
                    println!("  finish:    {}", bg.suggest("finish"));
                    println!("  rollback:  {}", bg.suggest("rollback"));
                }
                Some(Phase::Deploying) => println!("  abandon:   {}", bg.suggest("rollback")),
                _ => {}
            }
        }
    }
    Ok(Exit::Success)
}

/// The state annotations as a map (used by the tests).
pub fn state_annotations(s: &BgState) -> BTreeMap<String, String> {
    s.annotations()
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    #[test]
    fn command_lines() {
        let c = Cli::try_parse_from([
            "x",
            "blue-green",
            "deploy/shop",
            "--service",
            "shop",
            "--image",
            "app=shop:2",
            "--bake",
            "5s",
            "--keep-old",
            "0",
        ])
        .unwrap();
        let Command::BlueGreen(b) = c.command else {
            panic!()
        };
        let s = b.start;
        assert_eq!(s.workload.as_deref(), Some("deploy/shop"));
        assert_eq!(s.bake, Duration::from_secs(5));
        assert_eq!(s.keep_old, Duration::ZERO);
        for action in ["rollback", "finish", "status"] {
            let c = Cli::try_parse_from(["x", "blue-green", action, "deploy/shop", "-n", "shop"])
                .unwrap();
            let Command::BlueGreen(b) = c.command else {
                panic!()
            };
            assert!(b.start.workload.is_none() && b.action.is_some(), "{action}");
        }
        assert!(
            Cli::try_parse_from(["x", "blue-green", "deploy/shop", "--image", "app=x:1"]).is_err()
        );
        let c = Cli::try_parse_from(["x", "blue-green", "status", "deploy/shop", "-o", "json"])
            .unwrap();
        let Command::BlueGreen(b) = c.command else {
            panic!()
        };
        assert!(matches!(
            b.action,
            Some(BlueGreenAction::Status(BlueGreenStatusArgs {
                output: DataFormat::Json,
                ..
            }))
        ));
    }

    #[test]
    fn state_annotations_skip_unset() {
        let s = BgState {
            phase: Some(Phase::Deploying),
            target: Some(Color::Green),
            ..BgState::default()
        };
        let a = state_annotations(&s);
        assert_eq!(a.len(), 2);
        assert_eq!(a[ann::PHASE], "deploying");
    }
}
