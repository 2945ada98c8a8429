//! Serving: the TLS accept loop, the metrics listener, background tasks, graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use clap::Args;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rollout_safe_policy::{RolloutPolicy, ServerInfo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::app::{self, AppOptions, AppState, SharedLookups};
use crate::error::ServeError;
use crate::log::{LogArgs, LogFormat};
use crate::lookups::{ClusterArgs, ClusterCache};
use crate::metrics::Metrics;
use crate::reload::{PolicyArgs, Reloader, read_file};
use crate::tls::{self, ReloadableCert, TlsArgs};

/// Everything `serve` needs. Tests build it directly (see [`ServeArgs::new`]).
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub log: LogArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// HTTPS address for /mutate, /validate, /healthz and /readyz.
    #[arg(long, env = "ROLLOUT_SAFE_ADDR", default_value = "0.0.0.0:8443")]
    pub addr: SocketAddr,
    /// Plain-HTTP address for /metrics (and /healthz, /readyz).
    #[arg(
        long,
        env = "ROLLOUT_SAFE_METRICS_ADDR",
        default_value = "0.0.0.0:9090"
    )]
    pub metrics_addr: SocketAddr,
    /// Longest time one request may take, body read included, before a 503. Keep it below the
    /// webhook's timeoutSeconds so the log says why; the API server then applies failurePolicy.
    #[arg(long, env = "ROLLOUT_SAFE_REQUEST_TIMEOUT", default_value = "4s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
    /// After SIGTERM, how long in-flight requests may take to finish before the process exits.
    #[arg(long, env = "ROLLOUT_SAFE_DRAIN_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// How often the certificate, key and policy files are checked for changes.
    #[arg(long, env = "ROLLOUT_SAFE_RELOAD_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub reload_interval: Duration,
}

impl ServeArgs {
    /// Defaults for everything but the certificate files, as `serve --tls-cert C --tls-key K`
    /// would give with no environment.
    pub fn new(tls_cert: impl Into<PathBuf>, tls_key: impl Into<PathBuf>) -> Self {
        ServeArgs {
            tls: TlsArgs {
                tls_cert: tls_cert.into(),
                tls_key: tls_key.into(),
            },
            server: ServerArgs {
                addr: SocketAddr::from(([0, 0, 0, 0], 8443)),
                metrics_addr: SocketAddr::from(([0, 0, 0, 0], 9090)),
                request_timeout: Duration::from_secs(4),
                drain_timeout: Duration::from_secs(20),
                reload_interval: Duration::from_secs(2),
            },
            policy: PolicyArgs {
                policy: None,
                fail_open: false,
            },
            cluster: ClusterArgs {
                kubernetes_version: None,
                cluster_lookups: false,
            },
            log: LogArgs {
                log_format: LogFormat::Text,
            },
        }
    }
}

/// A TLS handshake that has not finished by then is dropped (slow or stuck clients).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/1 request headers must arrive within this (slowloris); the body is bounded by the
/// per-request timeout.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many HTTP/2 streams per connection (hyper's default is 200).
pub const MAX_CONCURRENT_STREAMS: u32 = 32;
/// At most this many open connections (HTTPS and metrics each); `accept` waits beyond it, so
/// excess clients queue in the kernel's backlog instead of costing memory here.
pub const MAX_CONNECTIONS: usize = 512;
/// HTTP/2 PINGs: a peer that vanished without a FIN is noticed and its streams freed.
const H2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const H2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// The metrics listener drains for at most this long after the HTTPS one.
const METRICS_DRAIN: Duration = Duration::from_secs(2);
/// How long version discovery may delay startup.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the API server version is asked again (clusters get upgraded under a running webhook).
const REDISCOVERY_INTERVAL: Duration = Duration::from_secs(600);

/// A bound, not yet running webhook server. [`Server::bind`] loads everything and opens the
/// sockets, so tests can read the ephemeral ports before [`Server::run`].
pub struct Server {
    args: ServeArgs,
    state: AppState,
    listener: TcpListener,
    metrics_listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    reloader: Reloader,
    tasks: JoinSet<()>,
}

impl Server {
    /// Loads the certificate and policy (a bad one fails startup: a pod that cannot serve
    /// should crash visibly, not become ready), resolves the target Kubernetes version, starts
    /// the cluster caches if asked, and binds both listeners.
    pub async fn bind(args: ServeArgs) -> Result<Server, ServeError> {
        let provider = tls::provider();
        let cert_pem = read_file(&args.tls.tls_cert).await?;
        let key_pem = read_file(&args.tls.tls_key).await?;
        let cert =
            tls::load_pem(&cert_pem, &key_pem, &provider).map_err(|source| ServeError::Tls {
                cert: args.tls.tls_cert.clone(),
                key: args.tls.tls_key.clone(),
                source,
            })?;
        tracing::info!(serial = %cert.info.serial_hex(), not_after = cert.info.not_after, "serving certificate loaded");

        let (policy, policy_bytes) = match &args.policy.policy {
            Some(path) => {
                let bytes = read_file(path).await?;
                let text = String::from_utf8_lossy(&bytes);
                let policy =
                    RolloutPolicy::from_yaml(&text).map_err(|source| ServeError::Policy {
                        path: path.clone(),
                        source,
                    })?;
                tracing::info!(path = %path.display(), name = %policy.name, "policy loaded");
                (policy, Some(bytes))
            }
            None => {
                tracing::info!("no --policy: using the built-in default policy");
                (RolloutPolicy::default(), None)
            }
        };

        let metrics = Metrics::new();
        metrics.set_certificate_expiry(cert.info.not_after);
        let mut tasks = JoinSet::new();

        // A client is needed for the cluster caches, and for version discovery whenever no
        // --kubernetes-version is given and any kubeconfig or in-cluster config is usable.
        let want_discovery = args.cluster.kubernetes_version.is_none();
        let client = if args.cluster.cluster_lookups || want_discovery {
            match kube_client().await {
                Ok(c) => Some(c),
                Err(e) if args.cluster.cluster_lookups => return Err(ServeError::Kube(e)),
                Err(e) => {
                    tracing::warn!(error = %e, "no Kubernetes client configuration (in-cluster or kubeconfig) to learn the API server's version");
                    None
                }
            }
        } else {
            None
        };

        let lookups: Option<SharedLookups> = match (&client, args.cluster.cluster_lookups) {
            (Some(c), true) => {
                tracing::info!(
                    "cluster lookups on: watching PodDisruptionBudgets, HorizontalPodAutoscalers and Pods"
                );
                Some(Arc::new(ClusterCache::start(
                    c.clone(),
                    &metrics,
                    &mut tasks,
                )))
            }
            _ => None,
        };

        let server_info = match &args.cluster.kubernetes_version {
            Some(v) => {
                let info = ServerInfo::from_version(v);
                if info.version.is_none() {
                    return Err(ServeError::Version(v.clone()));
                }
                tracing::info!(version = %v, native_sleep = ?info.native_sleep(), "target Kubernetes version from --kubernetes-version");
                info
            }
            None => match &client {
                Some(c) => discover(c).await.unwrap_or(ServerInfo::UNKNOWN),
                None => ServerInfo::UNKNOWN,
            },
        };
        if server_info.version.is_none() {
            // Until the version is known (rediscovery keeps trying), nothing is injected that
            // a server before 1.30 would reject: RS201 warns instead of adding `preStop.sleep`.
            tracing::warn!(
                "the API server's Kubernetes version is unknown: RS201 will only warn (not inject preStop.sleep) unless allowExec is set; pass --kubernetes-version or give the webhook API access"
            );
        }

        let state = AppState::new(
            policy,
            lookups,
            metrics,
            AppOptions {
                server: server_info,
                fail_open: args.policy.fail_open,
                request_timeout: args.server.request_timeout,
                max_in_flight: app::MAX_IN_FLIGHT,
            },
        );
        if let (Some(c), true) = (client, want_discovery) {
            // Keep asking: a cluster gets upgraded under a running webhook, and an unknown
            // version becomes known once the API server answers.
            let state = state.clone();
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(REDISCOVERY_INTERVAL);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if let Some(info) = discover(&c).await {
                        state.set_server_info(info);
                    }
                }
            });
        }

        let resolver = Arc::new(ReloadableCert::new(cert));
        let tls_config = tls::server_config(resolver.clone(), provider.clone())?;
        let reloader = Reloader::new(
            state.clone(),
            resolver,
            args.tls.tls_cert.clone(),
            args.tls.tls_key.clone(),
            args.policy.policy.clone(),
            provider,
            (&cert_pem, &key_pem),
            policy_bytes.as_deref(),
        );

        let listener = bind(args.server.addr).await?;
        let metrics_listener = bind(args.server.metrics_addr).await?;
        Ok(Server {
            args,
            state,
            listener,
            metrics_listener,
            tls: tls_config,
            reloader,
            tasks,
        })
    }

    /// The HTTPS address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.args.server.addr)
    }

    /// The metrics address actually bound.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_listener
            .local_addr()
            .unwrap_or(self.args.server.metrics_addr)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests finish
    /// (up to `--drain-timeout`) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServeError> {
        let Server {
            args,
            state,
            listener,
            metrics_listener,
            tls,
            reloader,
            mut tasks,
        } = self;
        tracing::info!(
            addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            metrics_addr = %metrics_listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            "rollout-safe-webhook serving"
        );
        tasks.spawn(reloader.run(args.server.reload_interval));

        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let metrics_app = app::metrics_router(state.clone());
        // The same hyper stack as HTTPS (header-read timeout, connection cap), without TLS.
        let metrics_server = tokio::spawn(serve_connections(
            metrics_listener,
            None,
            metrics_app,
            async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            },
            METRICS_DRAIN,
        ));

        let shutdown_state = state.clone();
        let shutdown = async move {
            shutdown.await;
            tracing::info!("shutdown requested: no new connections, draining in-flight requests");
            shutdown_state.set_ready(false);
        };
        serve_https(
            listener,
            tls,
            app::router(state),
            shutdown,
            args.server.drain_timeout,
        )
        .await;

        let _ = stop_tx.send(true);
        tasks.shutdown().await;
        if let Err(e) = metrics_server.await {
            tracing::warn!(error = %e, "metrics server task failed");
        }
        tracing::info!("rollout-safe-webhook stopped");
        Ok(())
    }
}

/// `bind` + `run`: what the binary does.
pub async fn serve(
    args: ServeArgs,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    Server::bind(args).await?.run(shutdown).await
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

async fn kube_client() -> Result<kube::Client, String> {
    let config = kube::Config::infer().await.map_err(|e| e.to_string())?;
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

/// Asks the API server for its version. `None` (logged) when it cannot be reached in time: the
/// version is then unknown, and nothing an older server would reject is injected.
async fn discover(client: &kube::Client) -> Option<ServerInfo> {
    match tokio::time::timeout(DISCOVERY_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(v)) => {
            let info = ServerInfo::from_version(&v.git_version);
            tracing::info!(version = %v.git_version, native_sleep = ?info.native_sleep(), "discovered the API server version");
            Some(info)
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "API server version discovery failed");
            None
        }
        Err(_) => {
            tracing::warn!("API server version discovery timed out");
            None
        }
    }
}

/// Serves `app` over TLS on `listener` until `shutdown` completes, then drains: each
/// connection finishes its in-flight requests (HTTP/2 gets a GOAWAY, HTTP/1 closes after the
/// current response) for at most `drain`. The same stack serves the webhook and the
/// benchmark's no-op floor server, so their numbers compare like for like.
pub async fn serve_https(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send,
    drain: Duration,
) {
    serve_connections(listener, Some(TlsAcceptor::from(tls)), app, shutdown, drain).await;
}

/// The hyper builder both listeners use: HTTP/1 header-read timeout, HTTP/2 stream cap and
/// keep-alive PINGs.
fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .keep_alive_interval(H2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEP_ALIVE_TIMEOUT);
    builder
}

/// The accept loop behind both listeners: TLS when `tls` is given, plain HTTP otherwise.
/// At most [`MAX_CONNECTIONS`] connections are open at once.
async fn serve_connections(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let builder = http_builder();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    futures::pin_mut!(shutdown);
    loop {
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break, // never closed
            },
        };
        let (tcp, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning; the listener stays usable.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let tls = tls.clone();
        let builder = builder.clone();
        let app = app.clone();
        // Taken before the handshake, so shutdown also waits for connections still in it.
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            let service = TowerToHyperService::new(app);
            let result = match tls {
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn.into_owned()).await
                }
                None => {
                    let conn = builder.serve_connection(TokioIo::new(tcp), service);
                    watcher.watch(conn.into_owned()).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let open = graceful.count();
    tokio::select! {
        () = graceful.shutdown() => tracing::info!(connections = open, "drained"),
        () = tokio::time::sleep(drain) => tracing::warn!(?drain, "drain deadline reached; closing the remaining connections"),
    }
}

/// Completes on SIGTERM (what the kubelet sends) or SIGINT (Ctrl-C).
///
/// The handlers are installed when this is *called* (inside a runtime), not when the future is
/// first polled: call it before [`Server::bind`] so a SIGTERM during startup (version
/// discovery can take seconds) is not fatal but makes the server stop cleanly once bound.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let streams = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Some((term, int)),
            _ => {
                tracing::warn!("cannot install signal handlers; falling back to Ctrl-C only");
                None
            }
        };
        async move {
            match streams {
                Some((mut term, mut int)) => {
                    tokio::select! {
                        _ = term.recv() => tracing::info!("SIGTERM received"),
                        _ = int.recv() => tracing::info!("SIGINT received"),
                    }
                }
                None => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
