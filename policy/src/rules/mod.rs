//! The rule registry. Each rule is one file in this module that declares everything about it:
//! its id, title and default action, the kinds it applies to, its typed parameters, its check,
//! its optional fix (JSON Patch operations, emitted directly), its "why" and "fix" texts, and a
//! slot for its CEL form.
//!
//! Everything else is generated from the one list of registered rules
//! (`with_registered_rules!` in `crate::rule`): the [`RuleId`] enum, the policy file's per-rule sections and their parsing ([`RulesSection`]),
//! the parameter set ([`Params`]), the dispatch the engines use, and through [`catalogue`] the
//! chart's `values.schema.json` rule section and `values.yaml` rules, the README rule table and
//! `docs/rules.md` (a test fails when one of those files is stale).
//!
//! Adding a rule: write `rsNNN_what_it_checks.rs` (copy a similar rule), add one line to the
//! list, run `UPDATE_GENERATED=1 cargo test -p rollout-safe-policy --test generated`.
//! CONTRIBUTING.md walks through it.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::change_cause::Actor;
use crate::facts::Facts;
use crate::finding::{Finding, Mutation};
use crate::rule::{Action, Severity, WorkloadKind, with_registered_rules};
use crate::server_info::ServerInfo;
use crate::view::{ServiceView, WorkloadView};

pub use crate::rule::{RuleId, UnknownRule};
use crate::workload::{ObjectRef, Workload};

pub mod catalogue;
pub mod cel;

pub use cel::{CelForm, CelMutation, CelReads, CelVariable};

pub mod rs001_skip_has_reason;
pub mod rs101_readiness_probe;
pub mod rs102_liveness_probe;
pub mod rs103_liveness_differs;
pub mod rs104_startup_time;
pub mod rs105_probe_port_named;
pub mod rs201_prestop_hook;
pub mod rs202_grace_period;
pub mod rs301_change_cause;
pub mod rs401_max_unavailable;
pub mod rs402_no_recreate;
pub mod rs403_revision_history;
pub mod rs404_progress_deadline;
pub mod rs405_replicas;
pub mod rs501_image_pinned;
pub mod rs601_pdb_covers;
pub mod rs602_selector_switch;
pub mod rs603_service_selects;
#[cfg(test)]
mod rs900_example;

// ---- what a rule declares ----------------------------------------------------------------

/// What a rule is, for the engine, the catalogue and the generated files.
#[derive(Debug, Clone, Copy)]
pub struct RuleMeta {
    pub id: RuleId,
    /// One line, for tables and SARIF rule metadata.
    pub title: &'static str,
    pub default_action: Action,
    pub applies_to: Applies,
    /// The check in one sentence, for the catalogue; parameters are named in backticks.
    pub summary: &'static str,
    /// Why the rule exists: what goes wrong without it.
    pub why: &'static str,
    /// How to satisfy it.
    pub fix: &'static str,
    /// What the mutating webhook does in `mutate` mode; `None`: the rule cannot be fixed
    /// automatically (and `mutate` is refused in a policy file).
    pub mutation: Option<&'static str>,
    /// What the rule reads beyond the object itself.
    pub input: Input,
    /// Whether `rollout-safe.dev/skip` can exempt an object from the rule.
    pub exemptable: bool,
}

/// The objects a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    Workloads(&'static [WorkloadKind]),
    Services,
}

pub const ALL_WORKLOADS: &[WorkloadKind] = &[
    WorkloadKind::Deployment,
    WorkloadKind::StatefulSet,
    WorkloadKind::DaemonSet,
];

/// What a rule needs besides the object, which decides where it can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The object alone: the audit, both webhooks and admission policies can check it.
    Object,
    /// The object and, on an update, the object before it.
    ObjectAndOld,
    /// Other objects (named here): the audit's file set or the webhook's cluster lookups.
    Surroundings(&'static str),
}

/// A rule: its metadata and parameters. Workload and Service rules add their check through
/// [`WorkloadRule`] or [`ServiceRule`].
pub trait Rule: 'static {
    const META: RuleMeta;
    /// Typed parameters, declared with `rule_params!` in the rule's file.
    type Params: RuleParams;

    /// Checks across parameters that bounds alone cannot express: `(parameter key, problem)`.
    fn validate(_params: &Self::Params) -> Result<(), (&'static str, String)> {
        Ok(())
    }

    /// The rule as CEL, for in-cluster admission policies (see [`cel`]); `None` when it
    /// cannot be one. Parameters are not baked in here: the expressions read them as
    /// `variables.<key>`, which the export defines from the policy file (per namespace when
    /// overrides change them), so one text serves every policy file and the chart's templates.
    fn cel() -> Option<CelForm> {
        None
    }
}

/// A rule about Deployments, StatefulSets and DaemonSets.
pub trait WorkloadRule: Rule {
    fn check(
        w: &WorkloadView<'_>,
        params: &Self::Params,
        cx: &WorkloadContext<'_>,
        out: &mut Report<'_>,
    );

    /// In `mutate` mode: the fix for this rule's `findings` on `w`, as JSON Patch operations
    /// added to `fixes`. Called for every rule in `mutate` mode, even without findings (a
    /// change-cause is written on creation). The default fixes nothing.
    fn fix(
        _w: &WorkloadView<'_>,
        _params: &Self::Params,
        _cx: &FixContext<'_>,
        _findings: &[Finding],
        _fixes: &mut Fixes,
    ) {
    }
}

/// A rule about Services.
pub trait ServiceRule: Rule {
    fn check(s: &ServiceView, params: &Self::Params, cx: &ServiceContext<'_>, out: &mut Report<'_>);
}

// ---- what a check reads and writes -------------------------------------------------------

/// What a workload rule may know besides the object.
#[derive(Debug, Clone, Copy)]
pub struct WorkloadContext<'a> {
    /// From the audit's other files or the cluster's caches.
    pub facts: &'a Facts,
    /// The object before an update whose pod template changed (RS301).
    pub old: Option<&'a Workload>,
    /// Seconds of the preStop hooks the mutation is adding (RS202 must cover them too).
    pub planned_prestop_seconds: Option<i64>,
}

/// How many ready pods a selector selects, when known.
pub type ReadyPodsLookup<'a> = dyn Fn(&BTreeMap<String, String>) -> Option<usize> + 'a;
/// The audited workloads a selector is checked against.
pub type WorkloadsLookup<'a> = dyn Fn(&BTreeMap<String, String>) -> WorkloadsInView + 'a;

/// What a Service rule may know besides the Service, as lookups the rule asks when it needs
/// them (cluster caches in the webhook, the file set in the audit).
#[derive(Clone, Copy, Default)]
pub struct ServiceContext<'a> {
    /// The selector before an update (RS602); `None` on creation.
    pub old_selector: Option<&'a BTreeMap<String, String>>,
    /// How many ready pods in the Service's namespace a selector selects; `None` when there
    /// are no cluster lookups or the answer is unknown.
    pub ready_pods: Option<&'a ReadyPodsLookup<'a>>,
    /// The audited workloads in the Service's namespace and whether a selector selects the
    /// pods of one; `None` outside an audit.
    pub workloads: Option<&'a WorkloadsLookup<'a>>,
}

/// The workloads in a Service's namespace that the audit has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadsInView {
    pub count: usize,
    /// Whether the Service's selector selects the pods of at least one of them.
    pub any_selected: bool,
}

/// Where a check reports its findings: the rule, its action and the object are filled in.
pub struct Report<'a> {
    rule: RuleId,
    action: Action,
    object: &'a ObjectRef,
    out: &'a mut Vec<Finding>,
}

impl<'a> Report<'a> {
    pub(crate) fn new(
        rule: RuleId,
        action: Action,
        object: &'a ObjectRef,
        out: &'a mut Vec<Finding>,
    ) -> Self {
        Report {
            rule,
            action,
            object,
            out,
        }
    }

    /// A finding about the object: `what` is the problem, `field` where it is.
    pub fn object(
        &mut self,
        field: impl Into<String>,
        what: impl fmt::Display,
        fix: impl Into<String>,
    ) {
        self.push(None, field.into(), what, fix.into());
    }

    /// A finding about one container.
    pub fn container(
        &mut self,
        container: &str,
        field: impl Into<String>,
        what: impl fmt::Display,
        fix: impl Into<String>,
    ) {
        self.push(Some(container), field.into(), what, fix.into());
    }

    fn push(
        &mut self,
        container: Option<&str>,
        field: String,
        what: impl fmt::Display,
        fix: String,
    ) {
        let object = self.object;
        let message = match container {
            Some(c) => format!("{object}: container {c:?} {what} ({field})"),
            None => format!("{object}: {what} ({field})"),
        };
        self.out.push(Finding {
            rule: self.rule,
            action: self.action,
            severity: self.action.severity().unwrap_or(Severity::Warning),
            object: object.clone(),
            container: container.map(str::to_string),
            field,
            message,
            fix,
        });
    }
}

// ---- fixes -------------------------------------------------------------------------------

/// What a fix may know.
#[derive(Debug, Clone, Copy)]
pub struct FixContext<'a> {
    pub server: ServerInfo,
    pub actor: &'a Actor,
    /// The object before an update whose pod template changed.
    pub old: Option<&'a Workload>,
    /// The request is an update (an unchanged template leaves `old` empty).
    pub is_update: bool,
}

/// The fixes made so far for one object: JSON Patch operations against the submitted object,
/// what they fix, and what could not be fixed.
#[derive(Debug, Clone, Default)]
pub struct Fixes {
    pub ops: Vec<json_patch::PatchOperation>,
    pub mutations: Vec<Mutation>,
    /// Fixes that were wanted but could not be made, as messages for `response.warnings`.
    pub warnings: Vec<String>,
    /// The longest preStop hook added, in seconds (RS202 covers it).
    pub planned_prestop_seconds: Option<i64>,
}

impl Fixes {
    /// `add` `value` at `path` (JSON Pointer tokens, unescaped): creates the member or, per
    /// RFC 6902, replaces it when it exists.
    pub fn add(&mut self, path: &[&str], value: Value) {
        self.ops
            .push(json_patch::PatchOperation::Add(json_patch::AddOperation {
                path: pointer(path),
                value,
            }));
    }

    /// `replace` the existing member at `path` (the patch fails if it is gone: a precondition).
    pub fn replace(&mut self, path: &[&str], value: Value) {
        self.ops.push(json_patch::PatchOperation::Replace(
            json_patch::ReplaceOperation {
                path: pointer(path),
                value,
            },
        ));
    }

    /// Sets a member whose parent object is known to exist: `replace` when `present`, else `add`.
    pub fn set(&mut self, path: &[&str], present: bool, value: Value) {
        if present {
            self.replace(path, value);
        } else {
            self.add(path, value);
        }
    }
}

fn pointer(tokens: &[&str]) -> json_patch::jsonptr::PointerBuf {
    json_patch::jsonptr::PointerBuf::from_tokens(tokens.iter().copied())
}

// ---- parameters ----------------------------------------------------------------------------

/// A rule's parameters: what the checks read, with defaults, plus the partial form a policy
/// file or namespace override writes ([`RuleParams::Set`]). Implemented by `rule_params!`.
pub trait RuleParams:
    Default + Clone + PartialEq + Eq + fmt::Debug + Serialize + Send + Sync + 'static
{
    /// The entry as written in a policy file: an action and any parameters, all optional.
    type Set: for<'de> Deserialize<'de> + HasAction + Clone + PartialEq + fmt::Debug;
    /// Overlays what `set` names.
    fn apply(&mut self, set: &Self::Set);
    /// The parameters `set` names, by key, with their values as JSON.
    fn set_values(set: &Self::Set) -> Vec<(&'static str, Value)>;
    /// Each parameter's bounds: `(parameter key, problem)` for the first one out of bounds.
    fn check_bounds(&self) -> Result<(), (&'static str, String)>;
    /// Each parameter's key, type, bounds, default and description.
    fn docs() -> Vec<ParamDoc>;
}

/// A policy-file entry's action.
pub trait HasAction: Default {
    fn action(&self) -> Option<Action>;
    fn with_action(action: Action) -> Self;
}

/// One parameter, for the catalogue and the chart's schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDoc {
    /// The key in the policy file, e.g. `minStartupSeconds`.
    pub key: &'static str,
    pub doc: &'static str,
    pub kind: ParamKind,
    /// The least value, for integers.
    pub min: Option<i64>,
    pub default: Value,
}

/// A parameter's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Integer,
    Boolean,
    Choice(&'static [&'static str]),
}

/// The types a parameter can have.
pub trait ParamType {
    const KIND: ParamKind;
    /// The value as an integer, for bounds.
    fn as_i64(&self) -> Option<i64> {
        None
    }
}

impl ParamType for i32 {
    const KIND: ParamKind = ParamKind::Integer;
    fn as_i64(&self) -> Option<i64> {
        Some(i64::from(*self))
    }
}

impl ParamType for bool {
    const KIND: ParamKind = ParamKind::Boolean;
}

/// The problem with `value` below `min`, worded as the policy file's errors are.
pub fn below_min(value: i64, min: i64) -> String {
    if min == 0 {
        format!("must not be negative, found {value}")
    } else {
        format!("must be at least {min}, found {value}")
    }
}

/// Declares a rule's parameters in its file: `Params` (what the check reads), `ParamsSet` (the
/// policy file's entry: an optional action and optional parameters, unknown keys refused) and
/// their [`RuleParams`] implementation.
///
/// ```text
/// rule_params! {
///     /// Seconds liveness must leave before the first restart.
///     min_startup_seconds: i32 = 30 => "minStartupSeconds", min 0;
/// }
/// ```
macro_rules! rule_params {
    ($( #[doc = $doc:literal] $field:ident : $ty:ty = $default:expr => $key:literal $(, min $min:literal)? ; )*) => {
        /// This rule's parameters, with their defaults.
        #[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
        pub struct Params {
            $( #[doc = $doc] #[serde(rename = $key)] pub $field: $ty, )*
        }

        impl Default for Params {
            fn default() -> Self {
                Params { $( $field: $default, )* }
            }
        }

        /// This rule's entry in a policy file.
        #[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct ParamsSet {
            #[serde(default)]
            pub action: Option<$crate::rule::Action>,
            $( #[serde(default, rename = $key)] pub $field: Option<$ty>, )*
        }

        impl $crate::rules::HasAction for ParamsSet {
            fn action(&self) -> Option<$crate::rule::Action> {
                self.action
            }
            fn with_action(action: $crate::rule::Action) -> Self {
                ParamsSet { action: Some(action), $( $field: None, )* }
            }
        }

        impl $crate::rules::RuleParams for Params {
            type Set = ParamsSet;

            #[allow(unused_variables)]
            fn apply(&mut self, set: &ParamsSet) {
                $( if let Some(v) = &set.$field { self.$field = v.clone(); } )*
            }

            #[allow(unused_variables, unused_mut)]
            fn set_values(set: &ParamsSet) -> Vec<(&'static str, serde_json::Value)> {
                let mut out = Vec::new();
                $( if let Some(v) = &set.$field {
                    out.push(($key, serde_json::to_value(v).unwrap_or_default()));
                } )*
                out
            }

            fn check_bounds(&self) -> Result<(), (&'static str, String)> {
                $( $(
                    if let Some(v) = $crate::rules::ParamType::as_i64(&self.$field)
                        && v < $min
                    {
                        return Err(($key, $crate::rules::below_min(v, $min)));
                    }
                )? )*
                Ok(())
            }

            fn docs() -> Vec<$crate::rules::ParamDoc> {
                #[allow(unused_variables)]
                let defaults = Params::default();
                vec![ $( $crate::rules::ParamDoc {
                    key: $key,
                    doc: $doc.trim(),
                    kind: <$ty as $crate::rules::ParamType>::KIND,
                    min: None $( .or(Some($min)) )?,
                    default: serde_json::to_value(&defaults.$field).unwrap_or_default(),
                } ),* ]
            }
        }
    };
}
pub(crate) use rule_params;

/// A rule entry in a policy file: either just an action (`RS101: warn`) or a map with the
/// action and the rule's own parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<S>(pub S);

impl<'de, S: Deserialize<'de> + HasAction> Deserialize<'de> for Entry<S> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<S>(std::marker::PhantomData<S>);
        impl<'de, S: Deserialize<'de> + HasAction> Visitor<'de> for V<S> {
            type Value = Entry<S>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an action (enforce, warn, mutate, off) or a map with `action` and the rule's parameters")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Entry<S>, E> {
                let action = Action::deserialize(de::value::StrDeserializer::<E>::new(s))?;
                Ok(Entry(S::with_action(action)))
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Entry<S>, E> {
                let action = Action::deserialize(de::value::BoolDeserializer::<E>::new(b))?;
                Ok(Entry(S::with_action(action)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Entry<S>, A::Error> {
                S::deserialize(de::value::MapAccessDeserializer::new(map)).map(Entry)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

// ---- the registry --------------------------------------------------------------------------

macro_rules! registry {
    (
        workload { $( $wid:ident => $wty:ty, )* }
        service { $( $sid:ident => $sty:ty, )* }
    ) => {
        impl RuleId {
            /// Everything the rule declares about itself.
            pub fn meta(self) -> &'static RuleMeta {
                match self {
                    $( RuleId::$wid => &<$wty as Rule>::META, )*
                    $( RuleId::$sid => &<$sty as Rule>::META, )*
                }
            }

            /// The rule's parameters: key, type, bounds, default, description.
            pub fn param_docs(self) -> Vec<ParamDoc> {
                match self {
                    $( RuleId::$wid => <<$wty as Rule>::Params as RuleParams>::docs(), )*
                    $( RuleId::$sid => <<$sty as Rule>::Params as RuleParams>::docs(), )*
                }
            }

            /// The rule as CEL, when it has a CEL form (its parameters are `variables.<key>`).
            pub fn cel(self) -> Option<CelForm> {
                match self {
                    $( RuleId::$wid => <$wty as Rule>::cel(), )*
                    $( RuleId::$sid => <$sty as Rule>::cel(), )*
                }
            }
        }

        /// Every rule's parameters, resolved for one namespace. A field per rule, named by its id.
        #[allow(non_snake_case)]
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
        pub struct Params {
            $( pub $wid: <$wty as Rule>::Params, )*
            $( pub $sid: <$sty as Rule>::Params, )*
        }

        impl Params {
            /// Bounds and cross-parameter checks, as `(field, problem)`; `field` is
            /// `<prefix>.<id>.<key>`.
            pub(crate) fn check(&self, prefix: &str) -> Result<(), (String, String)> {
                let named = |id: RuleId, (key, problem): (&str, String)| {
                    (format!("{prefix}.{id}.{key}"), problem)
                };
                $(
                    self.$wid.check_bounds().map_err(|e| named(RuleId::$wid, e))?;
                    <$wty as Rule>::validate(&self.$wid).map_err(|e| named(RuleId::$wid, e))?;
                )*
                $(
                    self.$sid.check_bounds().map_err(|e| named(RuleId::$sid, e))?;
                    <$sty as Rule>::validate(&self.$sid).map_err(|e| named(RuleId::$sid, e))?;
                )*
                Ok(())
            }
        }

        /// `spec.rules` (or an override's `rules`) as written: an entry per rule, each typed by
        /// the rule's own parameters, so a misspelt or misplaced parameter is a parse error
        /// with its line and column.
        #[allow(non_snake_case)]
        #[derive(Debug, Clone, Default, PartialEq, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct RulesSection {
            $( #[serde(default)] $wid: Option<Entry<<<$wty as Rule>::Params as RuleParams>::Set>>, )*
            $( #[serde(default)] $sid: Option<Entry<<<$sty as Rule>::Params as RuleParams>::Set>>, )*
        }

        impl RulesSection {
            /// The action each entry names, in catalogue order.
            pub(crate) fn actions(&self) -> Vec<(RuleId, Action)> {
                let mut out = Vec::new();
                $( if let Some(a) = self.$wid.as_ref().and_then(|e| e.0.action()) { out.push((RuleId::$wid, a)); } )*
                $( if let Some(a) = self.$sid.as_ref().and_then(|e| e.0.action()) { out.push((RuleId::$sid, a)); } )*
                out
            }

            /// The action this section gives `rule`, if it names one.
            pub(crate) fn action_of(&self, rule: RuleId) -> Option<Action> {
                self.actions().into_iter().find(|(r, _)| *r == rule).map(|(_, a)| a)
            }

            /// The parameters this section sets for `rule`, by key, with their values.
            pub(crate) fn params_of(&self, rule: RuleId) -> Vec<(&'static str, Value)> {
                match rule {
                    $( RuleId::$wid => self.$wid.as_ref().map(|Entry(e)| <<$wty as Rule>::Params as RuleParams>::set_values(e)).unwrap_or_default(), )*
                    $( RuleId::$sid => self.$sid.as_ref().map(|Entry(e)| <<$sty as Rule>::Params as RuleParams>::set_values(e)).unwrap_or_default(), )*
                }
            }

            /// Overlays the parameters each entry names.
            pub(crate) fn apply_params(&self, params: &mut Params) {
                $( if let Some(Entry(e)) = &self.$wid { params.$wid.apply(e); } )*
                $( if let Some(Entry(e)) = &self.$sid { params.$sid.apply(e); } )*
            }
        }

        /// Runs one workload rule's check.
        pub(crate) fn check_workload(
            id: RuleId,
            w: &WorkloadView<'_>,
            params: &Params,
            cx: &WorkloadContext<'_>,
            out: &mut Report<'_>,
        ) {
            match id {
                $( RuleId::$wid => <$wty as WorkloadRule>::check(w, &params.$wid, cx, out), )*
                _ => {}
            }
        }

        /// Runs one workload rule's fix.
        pub(crate) fn fix_workload(
            id: RuleId,
            w: &WorkloadView<'_>,
            params: &Params,
            cx: &FixContext<'_>,
            findings: &[Finding],
            fixes: &mut Fixes,
        ) {
            match id {
                $( RuleId::$wid => <$wty as WorkloadRule>::fix(w, &params.$wid, cx, findings, fixes), )*
                _ => {}
            }
        }

        /// Runs one Service rule's check.
        pub(crate) fn check_service(
            id: RuleId,
            s: &ServiceView,
            params: &Params,
            cx: &ServiceContext<'_>,
            out: &mut Report<'_>,
        ) {
            match id {
                $( RuleId::$sid => <$sty as ServiceRule>::check(s, &params.$sid, cx, out), )*
                _ => {}
            }
        }
    };
}

#[cfg(not(test))]
with_registered_rules!(registry);
#[cfg(test)]
with_registered_rules!(registry RS900 => rs900_example::NameLength,);

impl RuleId {
    /// The one-line title shown in tables and SARIF rule metadata.
    pub fn title(self) -> &'static str {
        self.meta().title
    }

    /// The action a rule has when the policy does not name it.
    pub fn default_action(self) -> Action {
        self.meta().default_action
    }

    /// Whether the rule has anything to say about this workload kind.
    pub fn applies_to(self, kind: WorkloadKind) -> bool {
        matches!(self.meta().applies_to, Applies::Workloads(kinds) if kinds.contains(&kind))
    }

    /// Rules that the mutating webhook knows how to fix.
    pub fn can_mutate(self) -> bool {
        self.meta().mutation.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_every_rule_describes_itself() {
        for id in RuleId::ALL {
            assert_eq!(id.as_str().parse::<RuleId>().unwrap(), *id);
            let m = id.meta();
            assert_eq!(m.id, *id);
            for text in [m.title, m.summary, m.why, m.fix] {
                assert!(!text.trim().is_empty(), "{id}: empty text");
            }
            if m.default_action == Action::Mutate {
                assert!(
                    m.mutation.is_some(),
                    "{id}: mutate by default without a fix"
                );
            }
        }
        assert_eq!("rs101".parse::<RuleId>().unwrap(), RuleId::RS101);
        let e = "RS999".parse::<RuleId>().unwrap_err().to_string();
        assert!(e.contains("RS999") && e.contains("RS603"), "{e}");
    }

    #[test]
    fn defaults_follow_the_spec() {
        assert_eq!(RuleId::RS101.default_action(), Action::Enforce);
        assert_eq!(RuleId::RS102.default_action(), Action::Warn);
        assert_eq!(RuleId::RS201.default_action(), Action::Mutate);
        assert_eq!(RuleId::RS401.default_action(), Action::Enforce);
        assert_eq!(RuleId::RS602.default_action(), Action::Enforce);
        assert!(!RuleId::RS404.applies_to(WorkloadKind::DaemonSet));
        assert!(RuleId::RS201.can_mutate() && !RuleId::RS101.can_mutate());
        let mutable: Vec<RuleId> = RuleId::ALL
            .iter()
            .copied()
            .filter(|r| r.can_mutate())
            .collect();
        assert_eq!(
            mutable,
            [RuleId::RS201, RuleId::RS202, RuleId::RS301, RuleId::RS403]
        );
    }

    #[test]
    fn params_know_their_keys_defaults_and_bounds() {
        let docs = RuleId::RS104.param_docs();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].key, "minStartupSeconds");
        assert_eq!(docs[0].default, serde_json::json!(30));
        assert_eq!(docs[0].min, Some(0));
        assert!(RuleId::RS101.param_docs().is_empty());
        let mut p = Params::default();
        p.RS202.margin_seconds = -1;
        let e = p.check("spec.rules").unwrap_err();
        assert_eq!(e.0, "spec.rules.RS202.marginSeconds");
        assert!(e.1.contains("negative"), "{e:?}");
    }
}
