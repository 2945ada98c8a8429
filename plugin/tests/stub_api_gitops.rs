//! Living beside Argo CD and Flux, against the stand-in API server: `update`, `undo`,
//! `blue-green` and `canary` refuse a GitOps-owned Deployment (exit 2, nothing written) unless
//! `--allow-gitops-owned`, and the Deployments the plugin creates never carry the ownership
//! labels or annotations (Argo CD would adopt them, and its auto-prune delete them).

mod common;

use common::{TestResult, blue_green, canary, deployment, shop, with, writes};
use rollout_safe_standin::scenarios::NAMESPACE;
use rollout_safe_standin::{Plugin, Standin, StoreError};
use serde_json::{Value, json};

const V1: &str = "registry.example.com/team/shop:1.0.0";
const V2: &str = "registry.example.com/team/shop:2.0.0";
const TRACKING_ID: &str = "argocd.argoproj.io/tracking-id";
const INSTANCE: &str = "app.kubernetes.io/instance";

/// Adds `labels` and `annotations` to Deployment `name`'s metadata (the pod template is left
/// alone, so no controller reacts).
fn own(standin: &Standin, name: &str, labels: Value, annotations: Value) -> Result<(), StoreError> {
    own_object(standin, "deployments", name, labels, annotations)
}

/// [`own`] for an object of any namespaced `resource`.
fn own_object(
    standin: &Standin,
    resource: &'static str,
    name: &str,
    labels: Value,
    annotations: Value,
) -> Result<(), StoreError> {
    standin.modify(|s| {
        let Some(mut d) = s.get(resource, NAMESPACE, name).cloned() else {
            return Err(StoreError::NotFound {
                resource,
                namespace: NAMESPACE.into(),
                name: name.into(),
            });
        };
        for (field, add) in [("labels", labels), ("annotations", annotations)] {
            let map = d["metadata"][field]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let mut map = map;
            map.extend(add.as_object().cloned().unwrap_or_default());
            d["metadata"][field] = Value::Object(map);
        }
        s.put(resource, d).map(drop)
    })
}

fn shop_owned(
    labels: Value,
    annotations: Value,
) -> Result<(Standin, Plugin), Box<dyn std::error::Error>> {
    let (standin, plugin) = shop(2, V1)?;
    own(&standin, "shop", labels, annotations)?;
    Ok((standin, plugin))
}

#[test]
fn stub_api_gitops_each_writing_command_refuses_an_owned_deployment() -> TestResult {
    let cases: [(Value, Value, &str); 3] = [
        (
            json!({}),
            json!({TRACKING_ID: "shop-prod:apps/Deployment:api/shop"}),
            "managed by Argo CD application \"shop-prod\" (annotation argocd.argoproj.io/tracking-id=shop-prod:apps/Deployment:api/shop)",
        ),
        (
            json!({INSTANCE: "shop-prod"}),
            json!({}),
            "managed by Argo CD application \"shop-prod\" (label app.kubernetes.io/instance=shop-prod)",
        ),
        (
            json!({"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}),
            json!({}),
            "managed by Flux Kustomization \"flux-system/apps\" (labels kustomize.toolkit.fluxcd.io/name=apps, kustomize.toolkit.fluxcd.io/namespace=flux-system)",
        ),
    ];
    for (labels, annotations, owner) in cases {
        let (standin, plugin) = shop_owned(labels, annotations)?;
        let commands: [(&str, Vec<String>); 4] = [
            (
                "update",
                common::update_workload("deploy/shop", "app", V2, &["--force"]),
            ),
            ("undo", with(&["undo", "deploy/shop"], &[])),
            ("blue-green", blue_green(V2, "0s", "0s", &["--force"])),
            ("canary", canary("deploy/shop", V2, "0s", &["--force"])),
        ];
        for (command, args) in commands {
            let r = plugin.run(&args)?;
            r.assert_code(2)
                .assert_stderr_has(&format!(
                    "refusing to {command} deployment/shop: it is {owner}"
                ))
                .assert_stderr_has(&format!(
                    "or pass --allow-gitops-owned to {command} it anyway"
                ));
        }
        // `--force` (the policy's override) does not let it through: nothing was written.
        assert_eq!(writes(&standin), Vec::<String>::new());
    }
    Ok(())
}

#[test]
fn stub_api_gitops_read_only_commands_and_plain_helm_go_ahead() -> TestResult {
    // A plain Helm release: Helm does not revert drift.
    let (standin, plugin) = shop_owned(
        json!({INSTANCE: "shop", "app.kubernetes.io/managed-by": "Helm"}),
        json!({"meta.helm.sh/release-name": "shop", "meta.helm.sh/release-namespace": NAMESPACE}),
    )?;
    plugin
        .run(&common::update_workload(
            "deploy/shop",
            "app",
            V2,
            &["--timeout", "30s"],
        ))?
        .assert_code(0);
    assert_eq!(common::image(&deployment(&standin, "shop")), V2);

    // Argo CD-owned: status and plan read it as usual.
    let (_standin, plugin) = shop_owned(
        json!({}),
        json!({TRACKING_ID: "shop:apps/Deployment:api/shop"}),
    )?;
    plugin.run(&["status", "deploy/shop"])?.assert_code(0);

    // Label tracking off (Argo CD 3 tracks by annotation): the instance label is just a label.
    let (standin, plugin) = shop_owned(json!({INSTANCE: "shop-prod"}), json!({}))?;
    plugin
        .run(&common::update_workload(
            "deploy/shop",
            "app",
            V2,
            &["--argocd-tracking-label=", "--timeout", "30s"],
        ))?
        .assert_code(0);
    assert_eq!(common::image(&deployment(&standin, "shop")), V2);
    // Another key configured: that one counts.
    let (standin, plugin) = shop_owned(json!({"team.example/app": "shop"}), json!({}))?;
    plugin
        .run(&common::update_workload(
            "deploy/shop",
            "app",
            V2,
            &["--argocd-tracking-label", "team.example/app"],
        ))?
        .assert_code(2)
        .assert_stderr_has("(label team.example/app=shop)");
    assert_eq!(writes(&standin), Vec::<String>::new());
    Ok(())
}

fn assert_unowned(d: &Value) {
    let name = d["metadata"]["name"].as_str().unwrap_or_default();
    let labels = &d["metadata"]["labels"];
    for key in [
        INSTANCE,
        "kustomize.toolkit.fluxcd.io/name",
        "kustomize.toolkit.fluxcd.io/namespace",
        "helm.toolkit.fluxcd.io/name",
        "helm.toolkit.fluxcd.io/namespace",
    ] {
        assert!(
            labels.get(key).is_none(),
            "{name} carries label {key}: {labels}"
        );
    }
    assert!(
        d["metadata"]["annotations"].get(TRACKING_ID).is_none(),
        "{name} carries annotation {TRACKING_ID}"
    );
}

#[test]
fn stub_api_gitops_allowed_blue_green_and_canary_create_unowned_deployments() -> TestResult {
    let ownership = || {
        (
            json!({
                INSTANCE: "shop-prod", "team": "payments",
                "helm.toolkit.fluxcd.io/name": "shop", "helm.toolkit.fluxcd.io/namespace": "apps",
            }),
            json!({TRACKING_ID: "shop-prod:apps/Deployment:api/shop"}),
        )
    };
    let (labels, annotations) = ownership();
    let (standin, plugin) = shop_owned(labels, annotations)?;
    plugin
        .run(&blue_green(V2, "0s", "0s", &["--allow-gitops-owned"]))?
        .assert_code(0)
        .assert_stderr_has(
            "warning: deployment/shop is managed by Argo CD application \"shop-prod\"",
        );
    let green = deployment(&standin, "shop-green");
    assert_unowned(&green);
    // The other labels are copied; the original keeps its own.
    assert_eq!(green["metadata"]["labels"]["team"], "payments");
    assert_eq!(
        deployment(&standin, "shop")["metadata"]["labels"][INSTANCE],
        "shop-prod"
    );

    let (labels, annotations) = ownership();
    let (standin, plugin) = shop_owned(labels, annotations)?;
    let running = plugin.spawn(&canary(
        "deploy/shop",
        V2,
        "30s",
        &["--steps", "50,100", "--allow-gitops-owned"],
    ))?;
    running.wait_stderr("step 50%", std::time::Duration::from_secs(30))?;
    standin.wait_until(
        std::time::Duration::from_secs(30),
        "deployment/shop-canary",
        |s| s.get("deployments", NAMESPACE, "shop-canary").is_some(),
    )?;
    assert_unowned(&deployment(&standin, "shop-canary"));
    drop(running);
    Ok(())
}

/// The StatefulSet and DaemonSet operations refuse a GitOps-owned workload the same way, before
/// any write.
#[test]
fn stub_api_gitops_statefulset_and_daemonset_operations_refuse_an_owned_workload() -> TestResult {
    use rollout_safe_standin::scenarios::recorded_sets;
    let standin = recorded_sets(Standin::builder(NAMESPACE).kubernetes_controllers())?.start()?;
    let plugin = standin.plugin(common::PLUGIN);
    own_object(
        &standin,
        "statefulsets",
        "db",
        json!({"helm.toolkit.fluxcd.io/name": "db", "helm.toolkit.fluxcd.io/namespace": "flux-system"}),
        json!({}),
    )?;
    own_object(
        &standin,
        "daemonsets",
        "agent",
        json!({}),
        json!({TRACKING_ID: "infra:apps/DaemonSet:shop/agent"}),
    )?;
    let image = "db=registry.example.com/team/db:16.0";
    let cases: [(&str, &str, Vec<&str>); 4] = [
        (
            "update",
            "statefulset/db",
            vec!["update", "sts/db", "--image", image, "--force"],
        ),
        (
            "canary",
            "statefulset/db",
            vec![
                "canary", "sts/db", "--image", image, "--steps", "1,100%", "--force",
            ],
        ),
        ("undo", "statefulset/db", vec!["undo", "sts/db"]),
        (
            "undo",
            "daemonset/agent",
            vec!["undo", "ds/agent", "--to-revision", "1"],
        ),
    ];
    for (command, workload, args) in cases {
        plugin
            .run(&args)?
            .assert_code(2)
            .assert_stderr_has(&format!(
                "refusing to {command} {workload}: it is managed by"
            ))
            .assert_stderr_has("--allow-gitops-owned");
    }
    assert_eq!(writes(&standin), Vec::<String>::new());
    // With the flag, the undo goes ahead (and says whose sync may revert it).
    plugin
        .run(&[
            "undo",
            "ds/agent",
            "--to-revision",
            "1",
            "--allow-gitops-owned",
        ])?
        .assert_code(0)
        .assert_stderr_has("is managed by Argo CD application \"infra\"");
    assert!(!writes(&standin).is_empty());
    Ok(())
}
