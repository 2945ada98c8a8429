//! The Kubernetes client, configured from what kubectl would honour itself (`--kubeconfig`,
//! `--context`, `-n`, `-A`: kubectl does not parse a plugin's flags for it).

use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Event, Pod, Service};
use kube::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{ApiOp, Error};

/// The field manager every write of the plugin uses.
pub const FIELD_MANAGER: &str = "kubectl-rollout-safe";

/// Where to connect, as the command line says.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    /// A kubeconfig path list (like `$KUBECONFIG`); `None`: `$KUBECONFIG` or `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// The context (and cluster/user overrides) to use.
    pub config: KubeConfigOptions,
    /// `None`: the context's namespace, else `default`.
    pub namespace: Option<String>,
    pub all_namespaces: bool,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("kubeconfig", &self.kubeconfig)
            .field("context", &self.config.context)
            .field("namespace", &self.namespace)
            .field("all_namespaces", &self.all_namespaces)
            .finish_non_exhaustive()
    }
}

/// A connected client and where it points.
#[derive(Clone)]
pub struct Cluster {
    pub client: kube::Client,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
    pub all_namespaces: bool,
    /// Who is acting, for change-causes: the kubeconfig user's `username`, else the user entry's
    /// name, else the plugin's name.
    pub username: String,
    /// The API server URL (for messages).
    pub server: String,
    /// The context in use, if named.
    pub context: Option<String>,
    /// `--context` as given (repeated in the commands the plugin suggests).
    context_flag: Option<String>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("namespace", &self.namespace)
            .field("server", &self.server)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

/// The kubeconfig as kubectl loads it. `explicit` (`--kubeconfig`, a path or a path list): every
/// file must exist. Else `$KUBECONFIG`, a path list in which missing files are skipped (kubectl
/// does the same, so a list naming a file not yet made still works), and at least one must
/// exist. Else `~/.kube/config`. Several files are merged as kubectl merges them: the first
/// file to set a value (current-context, or a cluster, user or context by name) wins.
pub fn load_kubeconfig(explicit: Option<&Path>) -> Result<Kubeconfig, Error> {
    if let Some(list) = explicit {
        return merge_kubeconfigs(&split_path_list(list.as_os_str()));
    }
    let Some(env) = std::env::var_os("KUBECONFIG") else {
        return Kubeconfig::read().map_err(Error::Kubeconfig);
    };
    let listed = split_path_list(&env);
    if listed.is_empty() {
        return Kubeconfig::read().map_err(Error::Kubeconfig);
    }
    // Only a file that is not there is skipped; one that cannot be read is still an error.
    let present: Vec<PathBuf> = listed
        .iter()
        .filter(|p| !matches!(p.try_exists(), Ok(false)))
        .cloned()
        .collect();
    if present.is_empty() {
        return Err(Error::NoKubeconfig {
            listed: std::env::join_paths(&listed)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| format!("{listed:?}")),
        });
    }
    merge_kubeconfigs(&present)
}

fn split_path_list(list: &std::ffi::OsStr) -> Vec<PathBuf> {
    std::env::split_paths(list)
        .filter(|p| !p.as_os_str().is_empty())
        .collect()
}

/// Reads and merges `paths` in order (kube's `Kubeconfig::merge`: first value wins).
fn merge_kubeconfigs(paths: &[PathBuf]) -> Result<Kubeconfig, Error> {
    let mut merged = Kubeconfig::default();
    for p in paths {
        merged = merged
            .merge(Kubeconfig::read_from(p).map_err(Error::Kubeconfig)?)
            .map_err(Error::Kubeconfig)?;
    }
    Ok(merged)
}

/// The context names of the kubeconfig `explicit` or the environment names.
pub fn context_names(explicit: Option<&Path>) -> Result<Vec<String>, Error> {
    Ok(load_kubeconfig(explicit)?
        .contexts
        .into_iter()
        .map(|c| c.name)
        .collect())
}

impl Cluster {
    /// Builds the client. Every kubeconfig problem (no file, unreadable, unknown context, no
    /// current context) is a cluster error (exit 5), as documented in the README. Nothing is
    /// sent to the server yet.
    pub async fn connect(opts: &ConnectOptions) -> Result<Cluster, Error> {
        let kubeconfig = load_kubeconfig(opts.kubeconfig.as_deref())?;
        let wanted = opts.config.context.clone();
        let context_name = wanted
            .clone()
            .or_else(|| kubeconfig.current_context.clone());
        if let Some(wanted) = &wanted
            && !kubeconfig.contexts.iter().any(|c| &c.name == wanted)
        {
            let known: Vec<&str> = kubeconfig
                .contexts
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            return Err(Error::UnknownContext {
                context: wanted.clone(),
                known: if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                },
            });
        }
        if context_name.is_none() {
            return Err(Error::NoCurrentContext);
        }
        let username = username_of(&kubeconfig, context_name.as_deref());
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &opts.config)
            .await
            .map_err(Error::Kubeconfig)?;
        let namespace = opts
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let server = config.cluster_url.to_string();
        let client = kube::Client::try_from(config).map_err(|source| Error::Client {
            server: server.clone(),
            source,
        })?;
        Ok(Cluster {
            client,
            namespace,
            all_namespaces: opts.all_namespaces,
            username,
            server,
            context: context_name,
            context_flag: wanted,
        })
    }

    /// `-A` only means something to `audit --cluster`.
    pub fn reject_all_namespaces(&self, command: &str) -> Result<(), Error> {
        if self.all_namespaces {
            return Err(Error::usage(format!(
                "{command} acts on one workload in one namespace; -A/--all-namespaces is for `audit --cluster`"
            )));
        }
        Ok(())
    }

    /// A request about to be made, for its error: `verb` on `resource` (`name`) in the
    /// namespace, at this server.
    pub fn op(&self, verb: &'static str, resource: &'static str, name: Option<&str>) -> ApiOp {
        ApiOp {
            verb,
            resource,
            name: name.map(str::to_owned),
            namespace: self.namespace.clone(),
            server: self.server.clone(),
            user_input: false,
        }
    }

    pub fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
    pub fn statefulsets(&self) -> Api<StatefulSet> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
    pub fn daemonsets(&self) -> Api<DaemonSet> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
    pub fn replicasets(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
    pub fn events(&self) -> Api<Event> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
    pub fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The flags to repeat in a suggested command: `-n shop` and `--context prod` if given.
    pub fn flags(&self) -> String {
        let mut s = format!("-n {}", self.namespace);
        if let Some(c) = &self.context_flag {
            s.push_str(&format!(" --context {c}"));
        }
        s
    }

    /// A command line to suggest: `kubectl rollout-safe status deployment/web -n shop --watch`.
    pub fn suggest(&self, command: &str, workload: &str, extra: &str) -> String {
        let mut s = format!("kubectl rollout-safe {command} {workload} {}", self.flags());
        if !extra.is_empty() {
            s.push(' ');
            s.push_str(extra);
        }
        s
    }
}

fn username_of(kc: &Kubeconfig, context: Option<&str>) -> String {
    let user = context
        .and_then(|name| kc.contexts.iter().find(|c| c.name == name))
        .and_then(|c| c.context.as_ref())
        .and_then(|c| c.user.clone());
    let Some(user) = user.filter(|u| !u.is_empty()) else {
        return FIELD_MANAGER.to_owned();
    };
    kc.auth_infos
        .iter()
        .find(|a| a.name == user)
        .and_then(|a| a.auth_info.as_ref())
        .and_then(|a| a.username.clone())
        .filter(|u| !u.is_empty())
        .unwrap_or(user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{Exit, exit_code};

    const KC: &str = r#"
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: c
  cluster: {server: "http://127.0.0.1:1"}
contexts:
- name: dev
  context: {cluster: c, user: alice-dev, namespace: shop}
- name: prod
  context: {cluster: c, user: bob}
users:
- name: alice-dev
  user: {username: alice, password: x}
- name: bob
  user: {token: t}
"#;

    fn opts(dir: &tempfile::TempDir, context: Option<&str>, ns: Option<&str>) -> ConnectOptions {
        let p = dir.path().join("config");
        std::fs::write(&p, KC).unwrap();
        ConnectOptions {
            kubeconfig: Some(p),
            config: KubeConfigOptions {
                context: context.map(str::to_owned),
                ..KubeConfigOptions::default()
            },
            namespace: ns.map(str::to_owned),
            all_namespaces: false,
        }
    }

    #[tokio::test]
    async fn context_namespace_and_user() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cluster::connect(&opts(&dir, None, None)).await.unwrap();
        assert_eq!(c.namespace, "shop");
        assert_eq!(c.username, "alice");
        assert_eq!(c.context.as_deref(), Some("dev"));
        let c = Cluster::connect(&opts(&dir, Some("prod"), None))
            .await
            .unwrap();
        assert_eq!(c.namespace, "default");
        assert_eq!(c.username, "bob");
        assert!(c.flags().contains("--context prod"));
        let c = Cluster::connect(&opts(&dir, Some("prod"), Some("api")))
            .await
            .unwrap();
        assert_eq!(c.namespace, "api");
        let op = c.op("get", "deployments.apps", Some("web"));
        assert_eq!(op.object(), "deployments.apps \"web\" in namespace \"api\"");
        assert_eq!(op.server, c.server);
    }

    /// Was exit 2 (usage) until issue 13 asked for one code for every kubeconfig problem.
    #[tokio::test]
    async fn unknown_context_is_a_kubeconfig_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = Cluster::connect(&opts(&dir, Some("nope"), None))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("dev, prod"), "{e}");
        assert!(e.to_string().contains("\"nope\""), "{e}");
        assert_eq!(exit_code(&Err(e)), Exit::Cluster);
    }

    /// A path list given with --kubeconfig: merged in order, the first value winning; every
    /// file must exist. (`$KUBECONFIG`, where missing files are skipped, is tested by running
    /// the binary: plugin/tests/kubeconfig_and_logs_cli.rs.)
    #[test]
    fn explicit_path_list_merges_first_value_wins() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first");
        let second = dir.path().join("second");
        std::fs::write(&first, KC).unwrap();
        std::fs::write(
            &second,
            "apiVersion: v1\nkind: Config\ncurrent-context: other\n\
             clusters:\n- name: c\n  cluster: {server: \"http://127.0.0.2:1\"}\n\
             contexts:\n- name: other\n  context: {cluster: c, user: bob}\n- name: dev\n  context: {cluster: c, user: bob}\n",
        )
        .unwrap();
        let list = std::env::join_paths([&first, &second]).unwrap();
        let kc = load_kubeconfig(Some(Path::new(&list))).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("dev"));
        let server = |name: &str| {
            kc.clusters
                .iter()
                .filter(|c| c.name == name)
                .map(|c| c.cluster.as_ref().and_then(|c| c.server.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(server("c"), vec![Some("http://127.0.0.1:1".to_owned())]);
        let names: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["dev", "prod", "other"]);
        let missing = std::env::join_paths([first, dir.path().join("missing")]).unwrap();
        let e = load_kubeconfig(Some(Path::new(&missing))).unwrap_err();
        assert!(crate::error::chain(&e).contains("missing"), "{e}");
    }

    #[tokio::test]
    async fn missing_kubeconfig_is_cluster_error() {
        let o = ConnectOptions {
            kubeconfig: Some("/nonexistent/kubeconfig".into()),
            ..ConnectOptions::default()
        };
        let e = Cluster::connect(&o).await.unwrap_err();
        let chain = crate::error::chain(&e);
        assert!(chain.contains("kubeconfig"), "{chain}");
        assert!(chain.contains("/nonexistent/kubeconfig"), "{chain}");
        assert_eq!(exit_code(&Err(e)), Exit::Cluster);
    }
}
