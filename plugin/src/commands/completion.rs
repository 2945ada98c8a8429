//! Shell completion, two ways:
//!
//! - `completion bash|zsh|fish` prints the script clap_complete generates for the
//!   `kubectl-rollout_safe` executable (subcommands, flags, flag values);
//! - kubectl's plugin completion (kubectl ≥ 1.26): for `kubectl rollout-safe …<TAB>` kubectl runs
//!   the executable `kubectl_complete-rollout_safe` with the words after the plugin name, the last
//!   one being the word under completion, and reads Cobra's `__complete` answer: one candidate a
//!   line (`candidate\tdescription`), then `:<directive>`. This binary answers it when started
//!   under that name (a symlink) or as `kubectl-rollout_safe __complete ARGS…`. It completes
//!   subcommands, flags, flag values, contexts, and namespaces and workload names (`deploy/…`,
//!   `sts/…`, `ds/…`) read from the cluster within [`CLUSTER_BUDGET`]; without an answer in time
//!   it offers no names, and still exits 0 with its directive.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Arg, Args, Command as ClapCommand, ValueEnum, ValueHint};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kube::config::KubeConfigOptions;

use crate::cluster::client::{Cluster, ConnectOptions, context_names};
use crate::error::Error;
use crate::exit::Outcome;

/// The executable kubectl looks for to complete the plugin's arguments.
pub const COMPLETE_EXECUTABLE: &str = "kubectl_complete-rollout_safe";
/// The plugin's own entry to the same protocol (Cobra's hidden command of that name).
pub const PROTOCOL_COMMAND: &str = "__complete";
/// The executable the generated scripts complete.
pub const BIN_NAME: &str = "kubectl-rollout_safe";
/// How long the cluster may take to list names before completion goes on without them.
pub const CLUSTER_BUDGET: Duration = Duration::from_secs(1);
/// Names listed per kind at most (a completion menu, not an inventory).
const LIST_LIMIT: u32 = 500;

/// Cobra's `ShellCompDirective` bits (spf13/cobra `completions.go`).
pub mod directive {
    /// The shell's default: file names when there are no candidates.
    pub const DEFAULT: u32 = 0;
    /// Completion failed; the shell offers nothing.
    pub const ERROR: u32 = 1;
    /// No space after the candidate (e.g. after `deploy/`).
    pub const NO_SPACE: u32 = 2;
    /// No file names, even when there are no candidates.
    pub const NO_FILE_COMP: u32 = 4;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionArgs {
    /// The shell to print the script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// `completion SHELL`: the script of `cli` (the plugin's parser) on stdout.
pub fn run(args: CompletionArgs, cli: ClapCommand) -> Result<Outcome, Error> {
    let script = script(args.shell, cli);
    std::io::stdout()
        .write_all(&script)
        .map_err(Error::Stdout)?;
    Ok(Outcome::Succeeded)
}

/// The completion script of `shell` for `cli` as the `kubectl-rollout_safe` executable.
pub fn script(shell: Shell, cli: ClapCommand) -> Vec<u8> {
    // Named as the executable throughout: clap_complete builds function, state and case names
    // from these, where the space of `kubectl rollout-safe` does not parse or does not match.
    let mut cmd = cli.name(BIN_NAME).bin_name(BIN_NAME).display_name(BIN_NAME);
    let mut out = Vec::new();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, BIN_NAME, &mut out);
    if shell == clap_complete::Shell::Bash {
        // clap_complete 4.6 names the root's state `kubectl__rollout_safe` ('-' → "__") but
        // its subcommands' case labels `kubectl__subcmd__rollout_safe__…` ('-' → "__subcmd__"),
        // so below the root nothing would match for a binary name with a '-'. One spelling.
        let text = String::from_utf8_lossy(&out).replace(
            &format!("{}__subcmd__", BIN_NAME.replace('-', "__subcmd__")),
            &format!("{}__subcmd__", BIN_NAME.replace('-', "__")),
        );
        out = text.into_bytes();
    }
    out
}

/// Whether this process was started for completion: under the name kubectl runs
/// (`kubectl_complete-rollout_safe`, a symlink to this binary) or as `… __complete ARGS`.
/// Returns the words to complete.
pub fn protocol_words(argv: &[std::ffi::OsString]) -> Option<Vec<String>> {
    let program = argv.first().map(Path::new)?;
    let name = program.file_name()?.to_string_lossy();
    let words = |from: usize| {
        argv.iter()
            .skip(from)
            .map(|w| w.to_string_lossy().into_owned())
            .collect()
    };
    if name.starts_with(COMPLETE_EXECUTABLE) {
        return Some(words(1));
    }
    if argv.get(1).is_some_and(|a| a == PROTOCOL_COMMAND) {
        return Some(words(2));
    }
    None
}

/// One completion candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub value: String,
    pub description: String,
}

impl Candidate {
    fn new(value: impl Into<String>, description: impl std::fmt::Display) -> Self {
        // One line, no tab: the protocol is line- and tab-separated.
        let description = description
            .to_string()
            .lines()
            .next()
            .unwrap_or("")
            .replace('\t', " ")
            .trim()
            .to_owned();
        Candidate {
            value: value.into(),
            description,
        }
    }
}

/// What the word under completion is, once the words before it are read.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    /// Candidates known without the cluster.
    Known(Vec<Candidate>, u32),
    /// Workload names from the cluster, after the `known` candidates (subcommands).
    Workloads(Vec<Candidate>),
    /// Namespaces from the cluster.
    Namespaces,
    /// The kubeconfig's contexts.
    Contexts,
}

/// The connection flags among the words, for the cluster look-ups.
#[derive(Debug, Default, PartialEq, Eq)]
struct Connection {
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    namespace: Option<String>,
}

impl Connection {
    fn note(&mut self, arg: &Arg, value: &str) {
        match arg.get_id().as_str() {
            "kubeconfig" => self.kubeconfig = Some(value.into()),
            "context" => self.context = Some(value.to_owned()),
            "namespace" => self.namespace = Some(value.to_owned()),
            _ => {}
        }
    }

    fn options(&self) -> ConnectOptions {
        ConnectOptions {
            kubeconfig: self.kubeconfig.clone(),
            config: KubeConfigOptions {
                context: self.context.clone(),
                ..KubeConfigOptions::default()
            },
            namespace: self.namespace.clone(),
            all_namespaces: false,
        }
    }
}

/// A completion request, read: what is wanted for the word `current`.
#[derive(Debug)]
struct Request {
    current: String,
    wanted: Wanted,
    connection: Connection,
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
}

/// Whether `--flag` alone (no `=`) takes the next word as its value.
fn takes_next_word(arg: &Arg) -> bool {
    takes_value(arg)
        && !arg.is_require_equals_set()
        && arg.get_num_args().is_none_or(|n| n.min_values() > 0)
}

fn long_arg<'c>(cmd: &'c ClapCommand, long: &str) -> Option<&'c Arg> {
    cmd.get_arguments().find(|a| a.get_long() == Some(long))
}

fn short_arg(cmd: &ClapCommand, short: char) -> Option<&Arg> {
    cmd.get_arguments().find(|a| a.get_short() == Some(short))
}

/// Reads the words before the one under completion and says what that one is.
fn read_request(root: &ClapCommand, words: &[String]) -> Request {
    let (current, before) = match words.split_last() {
        Some((last, before)) => (last.clone(), before),
        None => (String::new(), &[][..]),
    };
    let mut cmd = root;
    let mut connection = Connection::default();
    let mut value_of: Option<&Arg> = None;
    let mut positionals = 0usize;
    let mut only_positionals = false;
    for word in before {
        if let Some(arg) = value_of.take() {
            connection.note(arg, word);
            continue;
        }
        if !only_positionals && word == "--" {
            only_positionals = true;
        } else if !only_positionals && let Some(flag) = word.strip_prefix("--") {
            let (name, value) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (flag, None),
            };
            if let Some(arg) = long_arg(cmd, name) {
                match value {
                    Some(v) => connection.note(arg, v),
                    None if takes_next_word(arg) => value_of = Some(arg),
                    None => {}
                }
            }
        } else if !only_positionals && word.len() > 1 && word.starts_with('-') {
            // A cluster of short flags (`-Av`), the last of which may take a value, attached
            // (`-nshop`) or as the next word (`-n shop`).
            let shorts = &word[1..];
            for (i, c) in shorts.char_indices() {
                let Some(arg) = short_arg(cmd, c) else { break };
                if takes_value(arg) {
                    let rest = &shorts[i + c.len_utf8()..];
                    if rest.is_empty() {
                        if takes_next_word(arg) {
                            value_of = Some(arg);
                        }
                    } else {
                        connection.note(arg, rest.trim_start_matches('='));
                    }
                    break;
                }
            }
        } else if positionals == 0
            && !only_positionals
            && let Some(sub) = cmd.find_subcommand(word)
        {
            cmd = sub;
        } else {
            positionals += 1;
        }
    }
    let wanted = match value_of {
        Some(arg) => value_wanted(arg, &current),
        None => word_wanted(cmd, &current, positionals, only_positionals),
    };
    Request {
        current,
        wanted,
        connection,
    }
}

/// The word under completion when it is not a flag's separate value.
fn word_wanted(
    cmd: &ClapCommand,
    current: &str,
    positionals: usize,
    only_positionals: bool,
) -> Wanted {
    if !only_positionals
        && let Some(flag) = current.strip_prefix("--")
        && let Some((name, value)) = flag.split_once('=')
    {
        return match long_arg(cmd, name) {
            Some(arg) if takes_value(arg) => match value_wanted(arg, value) {
                Wanted::Known(list, d) => Wanted::Known(
                    list.into_iter()
                        .map(|c| Candidate {
                            value: format!("--{name}={}", c.value),
                            ..c
                        })
                        .collect(),
                    d,
                ),
                // Cluster look-ups for `--namespace=`: answered as a separate word would be.
                other => other,
            },
            _ => Wanted::Known(Vec::new(), directive::NO_FILE_COMP),
        };
    }
    if !only_positionals && current.starts_with('-') {
        return Wanted::Known(flags(cmd, current), directive::NO_FILE_COMP);
    }
    let mut known = Vec::new();
    if positionals == 0 && !only_positionals {
        known.extend(
            cmd.get_subcommands()
                .filter(|s| !s.is_hide_set() && s.get_name().starts_with(current))
                .map(|s| Candidate::new(s.get_name(), s.get_about().unwrap_or_default())),
        );
    }
    let positional = cmd.get_positionals().nth(positionals).or_else(|| {
        cmd.get_positionals()
            .last()
            .filter(|a| a.get_num_args().is_some_and(|n| n.max_values() > 1))
    });
    match positional {
        Some(arg) if arg.get_id() == "workload" => Wanted::Workloads(known),
        Some(arg) => match value_wanted(arg, current) {
            Wanted::Known(values, d) => {
                known.extend(values);
                Wanted::Known(known, d)
            }
            other => other,
        },
        None => Wanted::Known(known, directive::NO_FILE_COMP),
    }
}

/// The value of `arg`, starting with `prefix`.
fn value_wanted(arg: &Arg, prefix: &str) -> Wanted {
    match arg.get_id().as_str() {
        "namespace" => return Wanted::Namespaces,
        "context" => return Wanted::Contexts,
        _ => {}
    }
    let values: Vec<Candidate> = arg
        .get_possible_values()
        .into_iter()
        .filter(|v| !v.is_hide_set() && v.get_name().starts_with(prefix))
        .map(|v| Candidate::new(v.get_name(), v.get_help().unwrap_or_default()))
        .collect();
    if !values.is_empty() {
        return Wanted::Known(values, directive::NO_FILE_COMP);
    }
    let path = matches!(
        arg.get_value_hint(),
        ValueHint::AnyPath | ValueHint::FilePath | ValueHint::DirPath
    ) || arg
        .get_value_names()
        .is_some_and(|names| names.iter().any(|n| n.as_str().contains("FILE")));
    if path {
        // No candidates and the default directive: the shell completes file names.
        Wanted::Known(Vec::new(), directive::DEFAULT)
    } else {
        Wanted::Known(Vec::new(), directive::NO_FILE_COMP)
    }
}

/// The flags of `cmd` (its own and the global ones) starting with `prefix`.
fn flags(cmd: &ClapCommand, prefix: &str) -> Vec<Candidate> {
    let mut out = Vec::new();
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        if let Some(long) = arg.get_long() {
            let flag = format!("--{long}");
            if flag.starts_with(prefix) {
                out.push(Candidate::new(flag, &help));
            }
        }
        if let Some(short) = arg.get_short() {
            let flag = format!("-{short}");
            // Short forms only for `-` itself, as Cobra does: `--n…` means a long flag.
            if prefix.len() <= 1 && flag.starts_with(prefix) {
                out.push(Candidate::new(flag, &help));
            }
        }
    }
    out
}

/// The workload kinds completion offers, with the spellings of `cluster::refs` that select them.
const KINDS: [(&str, &str, &[&str]); 3] = [
    (
        "deploy",
        "Deployment",
        &[
            "deploy",
            "deployment",
            "deployments",
            "deployment.apps",
            "deployments.apps",
        ],
    ),
    (
        "sts",
        "StatefulSet",
        &[
            "sts",
            "statefulset",
            "statefulsets",
            "statefulset.apps",
            "statefulsets.apps",
        ],
    ),
    (
        "ds",
        "DaemonSet",
        &[
            "ds",
            "daemonset",
            "daemonsets",
            "daemonset.apps",
            "daemonsets.apps",
        ],
    ),
];

/// Workload names as `TYPE/NAME`, of the kinds the word may still become.
async fn workloads(cluster: &Cluster, current: &str) -> Vec<Candidate> {
    // `sts/we` lists StatefulSets only and keeps the user's spelling of the type.
    let typed = current.split_once('/').map(|(t, _)| t.to_ascii_lowercase());
    let wanted: Vec<(String, &str)> = KINDS
        .iter()
        .filter_map(|(short, kind, spellings)| match &typed {
            Some(t) => spellings.contains(&t.as_str()).then(|| {
                (
                    current.split_once('/').map_or("", |(t, _)| t).to_owned(),
                    *kind,
                )
            }),
            None => short
                .starts_with(current)
                .then(|| ((*short).to_owned(), *kind)),
        })
        .collect();
    let lp = ListParams::default().limit(LIST_LIMIT);
    let names = |kind: &str| {
        let cluster = cluster.clone();
        let lp = lp.clone();
        let kind = kind.to_owned();
        async move {
            let names: Vec<String> = match kind.as_str() {
                "Deployment" => cluster.deployments().list(&lp).await.map(names_of),
                "StatefulSet" => cluster.statefulsets().list(&lp).await.map(names_of),
                _ => cluster.daemonsets().list(&lp).await.map(names_of),
            }
            .unwrap_or_default();
            names
        }
    };
    let lists = futures::future::join_all(wanted.iter().map(|(_, kind)| names(kind))).await;
    let mut out = Vec::new();
    for ((token, kind), list) in wanted.iter().zip(lists) {
        for name in list {
            let value = format!("{token}/{name}");
            if value.starts_with(current) {
                out.push(Candidate::new(
                    value,
                    format_args!("{kind} in {}", cluster.namespace),
                ));
            }
        }
    }
    out
}

fn names_of<K: kube::Resource + Clone>(list: kube::core::ObjectList<K>) -> Vec<String> {
    list.items
        .iter()
        .filter_map(|o| o.meta().name.clone())
        .collect()
}

async fn namespaces(cluster: &Cluster, current: &str) -> Vec<Candidate> {
    let api: Api<Namespace> = Api::all(cluster.client.clone());
    match api.list(&ListParams::default().limit(LIST_LIMIT)).await {
        Ok(list) => names_of(list)
            .into_iter()
            .filter(|n| n.starts_with(current))
            .map(|n| Candidate::new(n, "namespace"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Connects and asks the cluster, giving up after `budget` (no names then).
async fn from_cluster(request: &Request, budget: Duration) -> Vec<Candidate> {
    let ask = async {
        let Ok(cluster) = Cluster::connect(&request.connection.options()).await else {
            return Vec::new();
        };
        match request.wanted {
            Wanted::Namespaces => {
                let prefix = request
                    .current
                    .split_once('=')
                    .map_or(request.current.as_str(), |(_, v)| v);
                namespaces(&cluster, prefix).await
            }
            _ => workloads(&cluster, &request.current).await,
        }
    };
    tokio::time::timeout(budget, ask).await.unwrap_or_default()
}

/// The answer to a completion request on `cli` (the plugin's parser): candidates and Cobra's
/// directive.
pub async fn answer(cli: ClapCommand, words: &[String], budget: Duration) -> (Vec<Candidate>, u32) {
    let mut root = cli;
    root.build();
    let request = read_request(&root, words);
    match &request.wanted {
        Wanted::Known(list, d) => (list.clone(), *d),
        Wanted::Workloads(known) => {
            let mut list = known.clone();
            list.extend(from_cluster(&request, budget).await);
            (list, directive::NO_FILE_COMP)
        }
        Wanted::Namespaces => {
            let mut list = from_cluster(&request, budget).await;
            if let Some((flag, _)) = request.current.split_once('=') {
                for c in &mut list {
                    c.value = format!("{flag}={}", c.value);
                }
            }
            (list, directive::NO_FILE_COMP)
        }
        Wanted::Contexts => {
            let (flag, prefix) = match request.current.split_once('=') {
                Some((flag, v)) => (Some(flag), v),
                None => (None, request.current.as_str()),
            };
            let list = context_names(request.connection.kubeconfig.as_deref())
                .unwrap_or_default()
                .into_iter()
                .filter(|n| n.starts_with(prefix))
                .map(|n| match flag {
                    Some(flag) => Candidate::new(format!("{flag}={n}"), "context"),
                    None => Candidate::new(n, "context"),
                })
                .collect();
            (list, directive::NO_FILE_COMP)
        }
    }
}

/// The answer as Cobra prints it: `value\tdescription` lines, then `:<directive>`.
pub fn render(candidates: &[Candidate], directive: u32) -> String {
    let mut out = String::new();
    for c in candidates {
        out.push_str(&c.value);
        if !c.description.is_empty() {
            out.push('\t');
            out.push_str(&c.description);
        }
        out.push('\n');
    }
    out.push_str(&format!(":{directive}\n"));
    out
}

/// Answers a completion request on stdout. Nothing goes to stderr: kubectl passes it to the
/// terminal in the middle of the user's command line. A failure to start is answered with the
/// error directive, still exit 0.
pub fn serve(cli: ClapCommand, words: &[String]) -> std::process::ExitCode {
    let text = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => {
            let (candidates, directive) = runtime.block_on(answer(cli, words, CLUSTER_BUDGET));
            // A stalled connection must not hold the process past the budget.
            runtime.shutdown_timeout(Duration::from_millis(50));
            render(&candidates, directive)
        }
        Err(_) => render(&[], directive::ERROR),
    };
    let _ = std::io::stdout().write_all(text.as_bytes());
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::app::App;
    use clap::CommandFactory;

    fn request(words: &[&str]) -> Request {
        let mut root = App::command();
        root.build();
        let words: Vec<String> = words.iter().map(|w| (*w).to_owned()).collect();
        read_request(&root, &words)
    }

    fn values(w: &Wanted) -> (Vec<String>, u32) {
        match w {
            Wanted::Known(list, d) => (list.iter().map(|c| c.value.clone()).collect(), *d),
            other => panic!("expected known candidates, got {other:?}"),
        }
    }

    #[test]
    fn subcommands_with_descriptions() {
        let r = request(&[""]);
        let Wanted::Known(list, d) = &r.wanted else {
            panic!("{:?}", r.wanted)
        };
        assert_eq!(*d, directive::NO_FILE_COMP);
        let names: Vec<&str> = list.iter().map(|c| c.value.as_str()).collect();
        for sub in [
            "audit",
            "update",
            "status",
            "blue-green",
            "canary",
            "completion",
        ] {
            assert!(names.contains(&sub), "{sub} missing from {names:?}");
        }
        let update = list.iter().find(|c| c.value == "update").unwrap();
        assert!(
            update.description.starts_with("Update images"),
            "{update:?}"
        );
        assert_eq!(values(&request(&["st"]).wanted).0, vec!["status"]);
        // Nested subcommands, plus the optional workload of `blue-green` itself.
        match request(&["blue-green", ""]).wanted {
            Wanted::Workloads(known) => {
                assert!(known.iter().any(|c| c.value == "finish"), "{known:?}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_of_the_subcommand_and_the_global_ones() {
        let (list, d) = values(&request(&["update", "deploy/web", "--im"]).wanted);
        assert_eq!(
            (list, d),
            (vec!["--image".to_owned()], directive::NO_FILE_COMP)
        );
        let (list, _) = values(&request(&["status", "--"]).wanted);
        for flag in [
            "--watch",
            "--namespace",
            "--context",
            "--kubeconfig",
            "--help",
        ] {
            assert!(
                list.iter().any(|f| f == flag),
                "{flag} missing from {list:?}"
            );
        }
        assert!(
            !list.iter().any(|f| f == "-n"),
            "short flags only for '-': {list:?}"
        );
        let (list, _) = values(&request(&["status", "-"]).wanted);
        assert!(
            list.iter().any(|f| f == "-n") && list.iter().any(|f| f == "-A"),
            "{list:?}"
        );
    }

    #[test]
    fn flag_values() {
        // A value_enum.
        let (list, d) = values(&request(&["history", "deploy/web", "-o", ""]).wanted);
        assert_eq!(d, directive::NO_FILE_COMP);
        assert_eq!(list, vec!["table", "json", "yaml"]);
        let (list, _) = values(&request(&["history", "deploy/web", "--output=j"]).wanted);
        assert_eq!(list, vec!["--output=json"]);
        // Files: the shell's own completion.
        let (list, d) = values(&request(&["audit", "-f", ""]).wanted);
        assert_eq!((list.len(), d), (0, directive::DEFAULT));
        let (list, d) = values(&request(&["update", "deploy/web", "--policy", ""]).wanted);
        assert_eq!((list.len(), d), (0, directive::DEFAULT));
        // Free text: nothing, and no file names either.
        let (list, d) = values(&request(&["update", "deploy/web", "--timeout", ""]).wanted);
        assert_eq!((list.len(), d), (0, directive::NO_FILE_COMP));
        assert_eq!(request(&["status", "-n", ""]).wanted, Wanted::Namespaces);
        assert_eq!(
            request(&["status", "--context", "p"]).wanted,
            Wanted::Contexts
        );
        // The shell of `completion`.
        let (list, _) = values(&request(&["completion", ""]).wanted);
        assert_eq!(list, vec!["bash", "zsh", "fish"]);
    }

    #[test]
    fn workload_position_and_connection_flags() {
        let r = request(&[
            "-n",
            "shop",
            "--context=prod",
            "status",
            "--kubeconfig",
            "/k",
            "deploy/w",
        ]);
        assert_eq!(r.wanted, Wanted::Workloads(Vec::new()));
        assert_eq!(
            r.connection,
            Connection {
                kubeconfig: Some("/k".into()),
                context: Some("prod".into()),
                namespace: Some("shop".into()),
            }
        );
        assert_eq!(r.current, "deploy/w");
        assert_eq!(
            request(&["-nshop", "undo", ""])
                .connection
                .namespace
                .as_deref(),
            Some("shop")
        );
        // A flag's value is not a positional: the workload is still wanted after `--timeout 5m`.
        assert!(matches!(
            request(&["update", "--timeout", "5m", ""]).wanted,
            Wanted::Workloads(_)
        ));
        // Once the workload is given, nothing more is positional.
        let (list, _) = values(&request(&["update", "deploy/web", ""]).wanted);
        assert!(list.is_empty(), "{list:?}");
    }

    #[test]
    fn protocol_entry_points_and_rendering() {
        let argv = |a: &[&str]| a.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert_eq!(
            protocol_words(&argv(&[
                "/usr/local/bin/kubectl_complete-rollout_safe",
                "st"
            ])),
            Some(vec!["st".to_owned()])
        );
        assert_eq!(
            protocol_words(&argv(&["kubectl-rollout_safe", "__complete", "update", ""])),
            Some(vec!["update".to_owned(), String::new()])
        );
        assert_eq!(
            protocol_words(&argv(&["kubectl-rollout_safe", "status"])),
            None
        );
        let text = render(
            &[
                Candidate::new("deploy/web", "Deployment\tin shop\nsecond line"),
                Candidate::new("sts/db", ""),
            ],
            directive::NO_FILE_COMP,
        );
        assert_eq!(text, "deploy/web\tDeployment in shop\nsts/db\n:4\n");
    }

    #[test]
    fn scripts_name_the_executable() {
        for (shell, needle) in [
            (Shell::Bash, "complete -F _kubectl__rollout_safe"),
            (Shell::Zsh, "#compdef kubectl-rollout_safe"),
            (Shell::Fish, "complete -c kubectl-rollout_safe"),
        ] {
            let text = String::from_utf8(script(shell, App::command())).unwrap();
            assert!(text.contains(needle), "{shell:?}: {needle} missing");
            assert!(text.contains("blue-green"), "{shell:?}");
        }
    }
}
