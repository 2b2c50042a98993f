//! Cross-field checks: keys, indexes, projections and attribute names must describe one valid
//! DynamoDB table. Each rule is one function below, and each problem is reported at the token
//! that caused it; [`check`] runs them all, so every problem is reported in one compile.
//!
//! Field *types* are not checked here: the generated code bounds them by `KeyAttribute`
//! (table keys), `IndexKeyAttribute` (index keys), `ttl_attribute` and `VersionAttribute`, so
//! the compiler reports a wrong type at the field's type. serde options the derive cannot honour
//! (`flatten`, `tag`, `with`, ...) are reported while parsing, in [`crate::attr`].

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use proc_macro2::Span;
use syn::LitStr;

use crate::ast::{Container, IndexDecl, IndexKind, KeyPart, ProjectionDecl, Role};
use crate::case::{field_handle_name, screaming_snake};
use crate::ctxt::Ctxt;
use crate::symbol::{GLOBAL_INDEX, INDEX_KEY, LOCAL_INDEX, TABLE};

/// The checked shape of the table: field positions into `Container::fields`.
pub(crate) struct Resolved {
    pub table: LitStr,
    pub partition_key: usize,
    pub sort_key: Option<usize>,
    pub indexes: Vec<ResolvedIndex>,
    pub ttl: Option<usize>,
    pub version: Option<usize>,
    pub created_at: Option<usize>,
    pub updated_at: Option<usize>,
}

pub(crate) struct ResolvedIndex {
    pub name: String,
    pub const_name: String,
    pub kind: IndexKind,
    pub partition_key: usize,
    pub sort_key: Option<usize>,
    pub projection: ResolvedProjection,
}

pub(crate) enum ResolvedProjection {
    All,
    KeysOnly,
    /// Attribute names.
    Include(Vec<String>),
}

/// Which field plays each role: positions into `Container::fields`.
#[derive(Default)]
struct Roles {
    partition_key: Option<usize>,
    sort_key: Option<usize>,
    ttl: Option<usize>,
    version: Option<usize>,
    created_at: Option<usize>,
    updated_at: Option<usize>,
    /// Per declared index, in declaration order.
    index_keys: Vec<IndexKeys>,
}

/// The fields that are one index's keys.
#[derive(Copy, Clone, Default)]
struct IndexKeys {
    partition: Option<usize>,
    sort: Option<usize>,
}

/// The declared indexes by name. A later declaration of a name already taken is marked
/// `duplicate` and left out of every later check, so it causes no further errors.
struct IndexNames {
    by_name: HashMap<String, usize>,
    duplicate: Vec<bool>,
}

/// Runs every check; `None` when the table lacks what code generation needs (errors were
/// reported). Code is generated only if `cx` holds no error at all.
pub(crate) fn check(cx: &Ctxt, cont: &Container) -> Option<Resolved> {
    check_table(cx, cont);
    check_index_names_valid(cx, cont);
    let names = index_names(cx, cont);
    check_skipped_fields_have_no_role(cx, cont);
    let roles = assign_roles(cx, cont, &names);
    check_partition_key_exists(cx, cont, &roles);
    check_primary_key_not_option(cx, cont, &roles);
    check_ttl_and_version_not_keys(cx, cont, &roles);
    check_key_parts_distinct(cx, cont, &roles);
    check_attribute_names_unique(cx, cont);
    check_attribute_names_not_empty(cx, cont);
    let indexes = resolve_indexes(cx, cont, &names, &roles);
    Some(Resolved {
        table: cont.table.clone()?,
        partition_key: roles.partition_key?,
        sort_key: roles.sort_key,
        indexes,
        ttl: roles.ttl,
        version: roles.version,
        created_at: roles.created_at,
        updated_at: roles.updated_at,
    })
}

/// The struct names its table with `#[dynamite(table = "...")]`, and the name is not empty.
fn check_table(cx: &Ctxt, cont: &Container) {
    match &cont.table {
        None => cx.error_spanned_by(
            cont.ident,
            format!("missing table name: add #[dynamite({TABLE} = \"...\")]"),
        ),
        Some(lit) if lit.value().is_empty() => {
            cx.error_spanned_by(lit, "table name must not be empty");
        }
        Some(_) => {}
    }
}

/// DynamoDB index names are 3 to 255 characters of `[a-zA-Z0-9_.-]`.
fn check_index_names_valid(cx: &Ctxt, cont: &Container) {
    for decl in &cont.indexes {
        if !is_valid_index_name(&decl.name.value()) {
            cx.error_spanned_by(
                &decl.name,
                "DynamoDB index names are 3 to 255 characters of a-z, A-Z, 0-9, '_', '-' and '.'",
            );
        }
    }
}

fn is_valid_index_name(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// No two indexes share a name; `index_key(index = ...)` refers to the first declaration.
fn index_names(cx: &Ctxt, cont: &Container) -> IndexNames {
    let mut names = IndexNames {
        by_name: HashMap::new(),
        duplicate: vec![false; cont.indexes.len()],
    };
    for (i, decl) in cont.indexes.iter().enumerate() {
        match names.by_name.entry(decl.name.value()) {
            Entry::Vacant(slot) => {
                slot.insert(i);
            }
            Entry::Occupied(_) => {
                cx.error_spanned_by(
                    &decl.name,
                    format!("duplicate index `{}`", decl.name.value()),
                );
                names.duplicate[i] = true;
            }
        }
    }
    names
}

/// A field with `#[serde(skip)]` is not stored, so it cannot be a key, TTL or version.
fn check_skipped_fields_have_no_role(cx: &Ctxt, cont: &Container) {
    for field in &cont.fields {
        if field.skip && !field.roles.is_empty() {
            cx.error_spanned_by(
                field.ident,
                "a field with #[serde(skip)] cannot be a key, TTL, version or timestamp attribute",
            );
        }
    }
}

/// Each role belongs to at most one field: the partition key, the sort key, the TTL and version
/// attributes, and each index's partition and sort key. Reported at the second claim.
fn assign_roles(cx: &Ctxt, cont: &Container, names: &IndexNames) -> Roles {
    let mut roles = Roles {
        index_keys: vec![IndexKeys::default(); cont.indexes.len()],
        ..Roles::default()
    };
    for (i, field) in cont.fields.iter().enumerate() {
        for role in &field.roles {
            match role {
                Role::PartitionKey(span) => {
                    claim(
                        cx,
                        cont,
                        &mut roles.partition_key,
                        i,
                        *span,
                        "partition key",
                    );
                }
                Role::SortKey(span) => claim(cx, cont, &mut roles.sort_key, i, *span, "sort key"),
                Role::Ttl(span) => claim(cx, cont, &mut roles.ttl, i, *span, "TTL attribute"),
                Role::Version(span) => {
                    claim(cx, cont, &mut roles.version, i, *span, "version attribute");
                }
                Role::CreatedAt(span) => {
                    claim(
                        cx,
                        cont,
                        &mut roles.created_at,
                        i,
                        *span,
                        "created_at attribute",
                    );
                }
                Role::UpdatedAt(span) => {
                    claim(
                        cx,
                        cont,
                        &mut roles.updated_at,
                        i,
                        *span,
                        "updated_at attribute",
                    );
                }
                Role::IndexKey { index, part, span } => {
                    let key = (index, *part, *span);
                    assign_index_key(cx, cont, names, &mut roles.index_keys, i, key);
                }
            }
        }
    }
    roles
}

/// Gives the role `what` to `field` unless another field has it already.
fn claim(
    cx: &Ctxt,
    cont: &Container,
    slot: &mut Option<usize>,
    field: usize,
    span: Span,
    what: &str,
) {
    match *slot {
        Some(first) => cx.syn_error(syn::Error::new(
            span,
            format!(
                "only one field can be the {what}: field `{}` already is",
                cont.fields[first].ident
            ),
        )),
        None => *slot = Some(field),
    }
}

/// `index_key(index = "...")` names a declared index, and a local index's partition key is the
/// table's (only its sort key is marked).
fn assign_index_key(
    cx: &Ctxt,
    cont: &Container,
    names: &IndexNames,
    index_keys: &mut [IndexKeys],
    field: usize,
    (index, part, span): (&LitStr, KeyPart, Span),
) {
    let name = index.value();
    let Some(&idx) = names.by_name.get(&name) else {
        cx.error_spanned_by(
            index,
            format!("unknown index `{name}`: declare it on the struct with #[dynamite({GLOBAL_INDEX}(name = \"{name}\"))] or {LOCAL_INDEX}"),
        );
        return;
    };
    match part {
        KeyPart::Partition if cont.indexes[idx].kind == IndexKind::Local => {
            cx.syn_error(syn::Error::new(
                span,
                format!(
                    "local index `{name}` shares the table's partition key: mark only its sort key"
                ),
            ));
        }
        KeyPart::Partition => {
            let what = format!("partition key of index `{name}`");
            claim(cx, cont, &mut index_keys[idx].partition, field, span, &what);
        }
        KeyPart::Sort => {
            let what = format!("sort key of index `{name}`");
            claim(cx, cont, &mut index_keys[idx].sort, field, span, &what);
        }
    }
}

/// Exactly one field is the partition key (at most one is checked by [`assign_roles`]).
fn check_partition_key_exists(cx: &Ctxt, cont: &Container, roles: &Roles) {
    if roles.partition_key.is_none() {
        cx.error_spanned_by(
            cont.ident,
            "entity has no partition key: mark one field with #[dynamite(partition_key)]",
        );
    }
}

/// The table's keys are not `Option`s: DynamoDB rejects an item without its primary key.
/// (`Option` is for index keys, where it makes the index sparse.)
fn check_primary_key_not_option(cx: &Ctxt, cont: &Container, roles: &Roles) {
    for (slot, what) in [
        (roles.partition_key, "partition key"),
        (roles.sort_key, "sort key"),
    ] {
        let Some(i) = slot else { continue };
        let ty = cont.fields[i].ty;
        if is_option(ty) {
            cx.error_spanned_by(
                ty,
                format!("the table's {what} cannot be an `Option`: every item must have its primary key (an `Option` is allowed for index keys, which makes the index sparse)"),
            );
        }
    }
}

/// The TTL, version and timestamp attributes are not table keys (a key cannot change or
/// expire alone), and one field plays at most one of these roles.
fn check_ttl_and_version_not_keys(cx: &Ctxt, cont: &Container, roles: &Roles) {
    let specials = [roles.version, roles.ttl, roles.created_at, roles.updated_at];
    for special in specials.into_iter().flatten() {
        if Some(special) == roles.partition_key || Some(special) == roles.sort_key {
            cx.error_spanned_by(
                cont.fields[special].ident,
                "a key attribute cannot also be the TTL, version, created_at or updated_at attribute",
            );
        }
    }
    let mut seen = Vec::new();
    for special in specials.into_iter().flatten() {
        if seen.contains(&special) {
            cx.error_spanned_by(
                cont.fields[special].ident,
                "one field cannot play two of the TTL, version, created_at and updated_at roles",
            );
        }
        seen.push(special);
    }
}

/// A key's partition and sort attributes are two fields (DynamoDB refuses a key schema that
/// names one attribute twice), for the table and each index; a local index's partition key is
/// the table's.
fn check_key_parts_distinct(cx: &Ctxt, cont: &Container, roles: &Roles) {
    let table = (roles.partition_key, roles.sort_key, "the table".to_owned());
    let indexes = cont
        .indexes
        .iter()
        .zip(&roles.index_keys)
        .map(|(decl, keys)| {
            let partition = match decl.kind {
                IndexKind::Local => roles.partition_key,
                IndexKind::Global => keys.partition,
            };
            (
                partition,
                keys.sort,
                format!("index `{}`", decl.name.value()),
            )
        });
    for (partition, sort, of) in std::iter::once(table).chain(indexes) {
        if let (Some(partition), Some(sort)) = (partition, sort) {
            if partition == sort {
                cx.error_spanned_by(
                    cont.fields[sort].ident,
                    format!("one field cannot be both the partition key and the sort key of {of}"),
                );
            }
        }
    }
}

/// Stored fields have distinct attribute names, aliases included (an alias may repeat its own
/// field's name).
fn check_attribute_names_unique(cx: &Ctxt, cont: &Container) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, field) in cont.fields.iter().enumerate().filter(|(_, f)| !f.skip) {
        let name = (field.attr_name.clone(), field.name_span, "attribute name");
        let aliases = field.aliases.iter().map(|a| (a.value(), a.span(), "alias"));
        for (name, span, what) in std::iter::once(name).chain(aliases) {
            match seen.entry(name) {
                Entry::Vacant(slot) => {
                    slot.insert(i);
                }
                Entry::Occupied(other) if *other.get() != i => cx.syn_error(syn::Error::new(
                    span,
                    format!(
                        "{what} `{}` is already used by field `{}`",
                        other.key(),
                        cont.fields[*other.get()].ident
                    ),
                )),
                Entry::Occupied(_) => {}
            }
        }
    }
}

/// Stored fields have a non-empty attribute name (`#[serde(rename = "")]` is not one).
fn check_attribute_names_not_empty(cx: &Ctxt, cont: &Container) {
    for field in cont.fields.iter().filter(|f| !f.skip) {
        if field.attr_name.is_empty() {
            cx.syn_error(syn::Error::new(
                field.name_span,
                "attribute names must not be empty",
            ));
        }
    }
}

/// Resolves every (non-duplicate) index: its keys, projection and handle name.
fn resolve_indexes(
    cx: &Ctxt,
    cont: &Container,
    names: &IndexNames,
    roles: &Roles,
) -> Vec<ResolvedIndex> {
    let mut handles = HandleNames::new(cont);
    let mut indexes = Vec::new();
    for (idx, decl) in cont.indexes.iter().enumerate() {
        if names.duplicate[idx] {
            continue;
        }
        let partition_key = index_partition_key(cx, decl, roles.index_keys[idx], roles);
        let projection = resolve_projection(cx, cont, decl);
        let const_name = screaming_snake(&decl.name.value());
        handles.check_index_handle(cx, decl, &const_name);
        if let Some(partition_key) = partition_key {
            indexes.push(ResolvedIndex {
                name: decl.name.value(),
                const_name,
                kind: decl.kind,
                partition_key,
                sort_key: roles.index_keys[idx].sort,
                projection,
            });
        }
    }
    indexes
}

/// A global index has a field marked as its partition key; a local index has one marked as its
/// sort key, and uses the table's partition key.
fn index_partition_key(
    cx: &Ctxt,
    decl: &IndexDecl,
    keys: IndexKeys,
    roles: &Roles,
) -> Option<usize> {
    let name = decl.name.value();
    let (missing, part) = match decl.kind {
        IndexKind::Global => (keys.partition.is_none(), "partition"),
        IndexKind::Local => (keys.sort.is_none(), "sort"),
    };
    if missing {
        let prefix = if decl.kind == IndexKind::Local {
            "local index"
        } else {
            "index"
        };
        cx.syn_error(syn::Error::new(
            decl.span,
            format!("{prefix} `{name}` has no {part} key: mark a field with #[dynamite({INDEX_KEY}(index = \"{name}\", {part}))]"),
        ));
    }
    match decl.kind {
        IndexKind::Global => keys.partition,
        IndexKind::Local => roles.partition_key,
    }
}

/// `projection = include(...)` names fields of the struct that are stored (not
/// `#[serde(skip)]`); they become attribute names.
fn resolve_projection(cx: &Ctxt, cont: &Container, decl: &IndexDecl) -> ResolvedProjection {
    let idents = match &decl.projection {
        ProjectionDecl::All => return ResolvedProjection::All,
        ProjectionDecl::KeysOnly => return ResolvedProjection::KeysOnly,
        ProjectionDecl::Include(idents) => idents,
    };
    let name = decl.name.value();
    let mut names = Vec::new();
    for ident in idents {
        match cont.fields.iter().find(|f| f.ident == ident) {
            Some(f) if f.skip => cx.error_spanned_by(
                ident,
                format!("index `{name}` projects `{ident}`, but that field has #[serde(skip)] and is not stored"),
            ),
            Some(f) => names.push(f.attr_name.clone()),
            None => cx.error_spanned_by(
                ident,
                format!("index `{name}` projects `{ident}`, but the struct has no such field"),
            ),
        }
    }
    ResolvedProjection::Include(names)
}

/// The associated constants generated on the entity: one per stored field and one per index.
struct HandleNames<'a> {
    /// Field handle name -> field.
    fields: HashMap<String, &'a syn::Ident>,
    /// Index handle name -> index name, for the indexes checked so far.
    indexes: HashMap<String, &'a LitStr>,
}

impl<'a> HandleNames<'a> {
    fn new(cont: &Container<'a>) -> Self {
        let fields = cont
            .fields
            .iter()
            .map(|f| (field_handle_name(f.ident), f.ident))
            .collect();
        HandleNames {
            fields,
            indexes: HashMap::new(),
        }
    }

    /// An index's handle constant clashes with no field's handle and no other index's handle.
    fn check_index_handle(&mut self, cx: &Ctxt, decl: &'a IndexDecl, const_name: &str) {
        if let Some(field) = self.fields.get(const_name) {
            cx.error_spanned_by(
                &decl.name,
                format!("index handle `{const_name}` would clash with the attribute handle of field `{field}`; rename the index"),
            );
        } else if let Some(other) = self.indexes.get(const_name) {
            cx.error_spanned_by(
                &decl.name,
                format!("index handle `{const_name}` would clash with the handle of index `{}`; rename one of them", other.value()),
            );
        } else {
            self.indexes.insert(const_name.to_owned(), &decl.name);
        }
    }
}

/// `Option<..>` as written (`Option`, `std::option::Option`, ...); an alias is caught later by
/// the `KeyAttribute` bound instead.
fn is_option(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Path(p) if p.qself.is_none() => p.path.segments.last().is_some_and(|s| {
            s.ident == "Option" && matches!(s.arguments, syn::PathArguments::AngleBracketed(_))
        }),
        syn::Type::Group(g) => is_option(&g.elem),
        syn::Type::Paren(p) => is_option(&p.elem),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names() {
        for good in ["abc", "Status-Index_v1.2", &"x".repeat(255)] {
            assert!(is_valid_index_name(good), "{good:?}");
        }
        for bad in ["", "ab", "by status", "héllo", &"x".repeat(256)] {
            assert!(!is_valid_index_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn option_types() {
        let ty = |text: &str| syn::parse_str::<syn::Type>(text).expect("a type");
        assert!(is_option(&ty("Option<String>")));
        assert!(is_option(&ty("std::option::Option<i64>")));
        assert!(is_option(&ty("(Option<u8>)")));
        assert!(!is_option(&ty("String")));
        assert!(!is_option(&ty("Option")));
        assert!(!is_option(&ty("Vec<Option<u8>>")));
    }
}
