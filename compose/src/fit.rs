//! Which kvplug adapter an app links with, read from the app's imports before any link is
//! tried: `kvplug check APP.wasm`. Each key-value interface the app imports is compared, item
//! by item, with the one a kvplug adapter exports under the same name, and anything kvplug
//! does not offer is named, with the difference spelled out in WIT.

use std::collections::HashMap;
use std::fmt::Write as _;

use anyhow::{Context as _, Result};
use wac_graph::types::{
    DefinedType, DefinedTypeId, InterfaceId, ItemKind, Package, Type, Types, ValueType,
};

use crate::registry::BACKENDS;

/// What `get-many` returns in Spin's copy of `wasi:keyvalue@0.2.0-draft2`, which differs from
/// upstream's (and kvplug's) under the same package version.
const SPIN_GET_MANY: &str = "func(bucket: borrow<bucket>, keys: list<string>) -> result<list<tuple<string, option<list<u8>>>>, error>";

/// What kvplug makes of one key-value interface an app imports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Exported by every kvplug adapter with exactly this shape.
    Offered { interface: String },
    /// Exported under this name, but an item differs.
    Differs {
        interface: String,
        item: String,
        app: String,
        kvplug: String,
    },
    /// Exported under this name, without an item the app needs.
    Missing { interface: String, item: String },
    /// A key-value interface kvplug does not export at all.
    NotOffered { interface: String, what: String },
}

/// An app's key-value imports, judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fit {
    pub findings: Vec<Finding>,
    /// Whether the app was built against Spin's copy of draft2 (its `get-many` is Spin's).
    pub spin: bool,
}

impl Fit {
    /// Whether the app links with a kvplug adapter as it is: it imports at least one
    /// key-value interface, and every one it imports is offered with its shape.
    pub fn links(&self) -> bool {
        !self.findings.is_empty()
            && self
                .findings
                .iter()
                .all(|f| matches!(f, Finding::Offered { .. }))
    }

    /// Whether the app is on Spin's draft2 and differs from the adapter only there: it links
    /// once the adapter has Spin's shape (`kvplug spin`).
    pub fn needs_spin_shape(&self) -> bool {
        self.spin
            && !self.links()
            && self.findings.iter().all(|finding| match finding {
                Finding::Offered { .. } => true,
                Finding::Differs { item, app, .. } => item == "get-many" && app == SPIN_GET_MANY,
                _ => false,
            })
    }

    /// The report `kvplug check` prints.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.findings.is_empty() {
            out.push_str(
                "imports no key-value interface: there is nothing for a kvplug adapter to supply\n",
            );
            return out;
        }
        for finding in &self.findings {
            let _ = match finding {
                Finding::Offered { interface } => {
                    writeln!(
                        out,
                        "ok        {interface}: exported by every kvplug adapter"
                    )
                }
                Finding::Differs {
                    interface,
                    item,
                    app,
                    kvplug,
                } => writeln!(
                    out,
                    "differs   {interface}: `{item}` is\n            {app}\n          in the app, but kvplug exports\n            {kvplug}"
                ),
                Finding::Missing { interface, item } => writeln!(
                    out,
                    "missing   {interface}: the app needs `{item}`, which kvplug's {interface} does not have"
                ),
                Finding::NotOffered { interface, what } => {
                    writeln!(out, "no        {interface}: {what}")
                }
            };
        }
        let drafts: Vec<&str> = self
            .findings
            .iter()
            .filter_map(|f| match f {
                Finding::Offered { interface } => interface.split_once('@').map(|(_, v)| v),
                _ => None,
            })
            .collect();
        if self.links() && self.spin {
            out.push_str(
                "shape: Spin's wasi:keyvalue@0.2.0-draft2, and this adapter has it (made by \
                 `kvplug spin`). Link them with `kvplug plug` or `wac plug`\n",
            );
        } else if self.links() {
            let draft = if drafts.iter().all(|v| *v == "0.2.0-draft") {
                "upstream wasi:keyvalue@0.2.0-draft"
            } else {
                "upstream wasi:keyvalue@0.2.0-draft2"
            };
            let names: Vec<String> = BACKENDS
                .iter()
                .map(|b| b.artifact.trim_end_matches(".wasm").to_owned())
                .collect();
            let _ = writeln!(
                out,
                "shape: {draft}. Links with any kvplug adapter ({}), e.g.\n  kvplug plug APP.wasm --plug target/kvplug/kvplug-etcd.wasm -o APP.linked.wasm",
                names.join(", ")
            );
        } else if self.needs_spin_shape() {
            out.push_str(
                "shape: Spin's wasi:keyvalue@0.2.0-draft2, whose batch.get-many returns \
                 list<tuple<string, option<list<u8>>>> where upstream's returns \
                 list<option<tuple<string, list<u8>>>>; Spin ships that copy of the WIT under \
                 upstream's version. Give any adapter Spin's shape, then link with that:\n  \
                 kvplug spin target/kvplug/kvplug-etcd.wasm -o kvplug-etcd.spin.wasm\n  \
                 kvplug plug APP.wasm --plug kvplug-etcd.spin.wasm -o APP.linked.wasm\n\
                 (or compose/recipes/adapter-spin.wac with `wac compose`)\n",
            );
        } else {
            out.push_str(
                "shape: not one kvplug offers; the lines above name each interface and item \
                 that does not fit\n",
            );
        }
        out
    }
}

/// Judges `app`'s key-value imports against the exports of `adapter` (any kvplug adapter:
/// all export the same interfaces).
pub fn check(app: &[u8], adapter: &[u8]) -> Result<Fit> {
    let mut types = Types::default();
    let app = Package::from_bytes("app", None, app.to_vec(), &mut types)
        .context("the application is not a valid component")?;
    let adapter = Package::from_bytes("adapter", None, adapter.to_vec(), &mut types)
        .context("the adapter is not a valid component")?;
    let offered = &types[adapter.ty()].exports;
    let mut findings = Vec::new();
    let mut spin = false;
    for (name, item) in &types[app.ty()].imports {
        let ItemKind::Instance(wanted) = item else {
            continue;
        };
        if name == crate::spin::BATCH {
            let batch = &types[*wanted];
            let names = names(&types, batch);
            spin = batch
                .exports
                .get("get-many")
                .is_some_and(|f| Wit::new(&types, &names).item(f) == SPIN_GET_MANY);
        }
        match offered.get(name) {
            Some(ItemKind::Instance(have)) => {
                findings.extend(compare(&types, name, *wanted, *have));
            }
            _ => {
                if let Some(what) = not_offered(name) {
                    findings.push(Finding::NotOffered {
                        interface: name.clone(),
                        what,
                    });
                }
            }
        }
    }
    Ok(Fit { findings, spin })
}

/// For a failed link: what `check` says of `app` against each of `plugs` that exports a
/// `wasi:keyvalue` interface (an adapter), when it does not fit; empty when none can be read.
pub fn explain(app: &std::path::Path, plugs: &[&std::path::Path]) -> String {
    let Ok(app) = std::fs::read(app) else {
        return String::new();
    };
    let mut out = String::new();
    for plug in plugs {
        let Ok(bytes) = std::fs::read(plug) else {
            continue;
        };
        let adapter = crate::surface::surface(&bytes)
            .is_ok_and(|s| s.exports.iter().any(|e| e.starts_with("wasi:keyvalue/")));
        if let (true, Ok(fit)) = (adapter, check(&app, &bytes))
            && !fit.links()
        {
            let _ = write!(out, "\nagainst `{}`:\n{}", plug.display(), fit.render());
        }
    }
    out
}

/// Why kvplug does not offer `name`, if it is a key-value interface.
fn not_offered(name: &str) -> Option<String> {
    let (path, version) = name.split_once('@').unwrap_or((name, ""));
    let what = if path.starts_with("wasi:keyvalue/") {
        format!(
            "kvplug exports wasi:keyvalue 0.2.0-draft and 0.2.0-draft2 (store, atomics, batch), \
             not {path} at version {version}"
        )
    } else if path.starts_with("spin:key-value/") || path.starts_with("fermyon:spin/key-value") {
        String::from(
            "Spin's own key-value interface; kvplug exports wasi:keyvalue only (Spin apps \
             written against wasi:keyvalue@0.2.0-draft2 are the ones kvplug can serve)",
        )
    } else if path.starts_with("wasmcloud:keyvalue/") {
        String::from("wasmCloud's own key-value interface; kvplug exports wasi:keyvalue only")
    } else if path.contains("keyvalue") || path.contains("key-value") {
        String::from("a key-value interface kvplug does not know; it exports wasi:keyvalue only")
    } else {
        return None;
    };
    Some(what)
}

/// Compares every item `wanted` (the app's import) names with the same item of `have`.
fn compare(types: &Types, interface: &str, wanted: InterfaceId, have: InterfaceId) -> Vec<Finding> {
    let (wanted, have) = (&types[wanted], &types[have]);
    let (app_names, kvplug_names) = (names(types, wanted), names(types, have));
    let mut findings = Vec::new();
    for (item, kind) in &wanted.exports {
        let Some(theirs) = have.exports.get(item) else {
            findings.push(Finding::Missing {
                interface: interface.to_owned(),
                item: item.clone(),
            });
            continue;
        };
        let app = Wit::new(types, &app_names).item(kind);
        let kvplug = Wit::new(types, &kvplug_names).item(theirs);
        if app != kvplug {
            findings.push(Finding::Differs {
                interface: interface.to_owned(),
                item: item.clone(),
                app,
                kvplug,
            });
        }
    }
    if findings.is_empty() {
        findings.push(Finding::Offered {
            interface: interface.to_owned(),
        });
    }
    findings
}

/// The names an interface gives its value types, so that they print by name where used.
fn names(types: &Types, interface: &wac_graph::types::Interface) -> HashMap<DefinedTypeId, String> {
    let mut names = HashMap::new();
    for (name, kind) in &interface.exports {
        if let ItemKind::Type(Type::Value(ValueType::Defined(id))) = kind {
            names.insert(*id, name.clone());
            // A `use`d type is an alias of the one it names.
            if let DefinedType::Alias(ValueType::Defined(target)) = &types[*id] {
                names.insert(*target, name.clone());
            }
        }
    }
    names
}

/// Prints items and types as WIT, value types by name where the interface names them.
struct Wit<'a> {
    types: &'a Types,
    names: &'a HashMap<DefinedTypeId, String>,
}

impl<'a> Wit<'a> {
    fn new(types: &'a Types, names: &'a HashMap<DefinedTypeId, String>) -> Self {
        Wit { types, names }
    }

    fn item(&self, kind: &ItemKind) -> String {
        match kind {
            ItemKind::Func(id) => {
                let func = &self.types[*id];
                let params: Vec<String> = func
                    .params
                    .iter()
                    .map(|(name, ty)| format!("{name}: {}", self.value(ty)))
                    .collect();
                let result = func
                    .result
                    .as_ref()
                    .map(|ty| format!(" -> {}", self.value(ty)))
                    .unwrap_or_default();
                format!("func({}){result}", params.join(", "))
            }
            ItemKind::Type(Type::Value(ValueType::Defined(id))) => self.definition(*id),
            ItemKind::Type(Type::Value(ty)) | ItemKind::Value(ty) => self.value(ty),
            ItemKind::Type(Type::Resource(id)) => format!("resource {}", self.types[*id].name),
            ItemKind::Type(other) => other.desc(self.types).to_owned(),
            other => other.desc(self.types).to_owned(),
        }
    }

    /// A named type's own definition (a variant's cases, a record's fields).
    fn definition(&self, id: DefinedTypeId) -> String {
        let list = |items: Vec<String>| items.join(", ");
        match &self.types[id] {
            DefinedType::Alias(ValueType::Defined(target)) => self.definition(*target),
            DefinedType::Variant(v) => format!(
                "variant {{ {} }}",
                list(
                    v.cases
                        .iter()
                        .map(|(case, ty)| match ty {
                            Some(ty) => format!("{case}({})", self.value(ty)),
                            None => case.clone(),
                        })
                        .collect()
                )
            ),
            DefinedType::Record(r) => format!(
                "record {{ {} }}",
                list(
                    r.fields
                        .iter()
                        .map(|(field, ty)| format!("{field}: {}", self.value(ty)))
                        .collect()
                )
            ),
            DefinedType::Enum(e) => format!("enum {{ {} }}", list(e.0.iter().cloned().collect())),
            DefinedType::Flags(f) => format!("flags {{ {} }}", list(f.0.iter().cloned().collect())),
            other => self.shape(other),
        }
    }

    fn value(&self, ty: &ValueType) -> String {
        match ty {
            ValueType::Primitive(p) => p.desc().to_owned(),
            ValueType::Borrow(id) => format!("borrow<{}>", self.types[*id].name),
            ValueType::Own(id) => self.types[*id].name.clone(),
            ValueType::Defined(id) => match self.names.get(id) {
                Some(name) => name.clone(),
                None => self.shape(&self.types[*id]),
            },
        }
    }

    /// An anonymous type, written out.
    fn shape(&self, ty: &DefinedType) -> String {
        let opt =
            |ty: &Option<ValueType>| ty.as_ref().map_or_else(|| "_".into(), |t| self.value(t));
        match ty {
            DefinedType::Tuple(items) => format!(
                "tuple<{}>",
                items
                    .iter()
                    .map(|t| self.value(t))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            DefinedType::List(t) => format!("list<{}>", self.value(t)),
            DefinedType::FixedSizeList(t, n) => format!("list<{}, {n}>", self.value(t)),
            DefinedType::Map(k, v) => format!("map<{}, {}>", self.value(k), self.value(v)),
            DefinedType::Option(t) => format!("option<{}>", self.value(t)),
            DefinedType::Result { ok, err } => format!("result<{}, {}>", opt(ok), opt(err)),
            DefinedType::Alias(t) => self.value(t),
            DefinedType::Stream(t) => format!("stream<{}>", opt(t)),
            DefinedType::Future(t) => format!("future<{}>", opt(t)),
            DefinedType::Variant(_)
            | DefinedType::Record(_)
            | DefinedType::Enum(_)
            | DefinedType::Flags(_) => String::from("an unnamed variant, record, enum or flags"),
        }
    }
}
