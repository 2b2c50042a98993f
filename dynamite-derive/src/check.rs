//! Cross-field checks: keys, indexes, projections and attribute names must describe one valid
//! DynamoDB table. Each problem is reported at the token that caused it.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use proc_macro2::Span;
use syn::LitStr;

use crate::ast::{Container, IndexKind, KeyPart, ProjectionDecl, Role};
use crate::case::screaming_snake;
use crate::ctxt::Ctxt;

/// The checked shape of the table: field positions into `Container::fields`.
pub struct Resolved {
    pub table: LitStr,
    pub partition_key: usize,
    pub sort_key: Option<usize>,
    pub indexes: Vec<ResolvedIndex>,
    pub ttl: Option<usize>,
    pub version: Option<usize>,
}

pub struct ResolvedIndex {
    pub name: String,
    pub const_name: String,
    pub kind: IndexKind,
    pub partition_key: usize,
    pub sort_key: Option<usize>,
    pub projection: ResolvedProjection,
}

pub enum ResolvedProjection {
    All,
    KeysOnly,
    /// Attribute names.
    Include(Vec<String>),
}

pub fn check(cx: &Ctxt, cont: &Container) -> Option<Resolved> {
    let mut partition_key: Option<usize> = None;
    let mut sort_key: Option<usize> = None;
    let mut ttl: Option<usize> = None;
    let mut version: Option<usize> = None;
    let mut failed = false;

    // Per declared index: (partition, sort) fields.
    let mut index_keys: Vec<(Option<usize>, Option<usize>)> =
        vec![(None, None); cont.indexes.len()];
    // `index_key(index = ...)` resolves to the first declaration of a name; a later duplicate
    // is reported here and left out of the checks below, so it causes no further errors.
    let mut index_by_name: HashMap<String, usize> = HashMap::new();
    let mut duplicate_index = vec![false; cont.indexes.len()];
    for (i, index) in cont.indexes.iter().enumerate() {
        match index_by_name.entry(index.name.value()) {
            Entry::Vacant(slot) => {
                slot.insert(i);
            }
            Entry::Occupied(_) => {
                cx.error_spanned_by(
                    &index.name,
                    format!("duplicate index `{}`", index.name.value()),
                );
                duplicate_index[i] = true;
                failed = true;
            }
        }
    }

    let set_once = |slot: &mut Option<usize>, field: usize, span: Span, what: &str| {
        if let Some(first) = *slot {
            cx.syn_error(syn::Error::new(
                span,
                format!(
                    "only one field can be the {what}: field `{}` already is",
                    cont.fields[first].ident
                ),
            ));
            false
        } else {
            *slot = Some(field);
            true
        }
    };

    for (i, field) in cont.fields.iter().enumerate() {
        if field.skip && !field.roles.is_empty() {
            cx.error_spanned_by(
                field.ident,
                "a field with #[serde(skip)] cannot be a key, TTL or version attribute",
            );
            failed = true;
        }
        for role in &field.roles {
            let ok = match role {
                Role::PartitionKey(span) => set_once(&mut partition_key, i, *span, "partition key"),
                Role::SortKey(span) => set_once(&mut sort_key, i, *span, "sort key"),
                Role::Ttl(span) => set_once(&mut ttl, i, *span, "TTL attribute"),
                Role::Version(span) => set_once(&mut version, i, *span, "version attribute"),
                Role::IndexKey { index, part, span } => match index_by_name.get(&index.value()) {
                    None => {
                        cx.error_spanned_by(
                            index,
                            format!(
                                "unknown index `{}`: declare it on the struct with #[dynamite(global_index(name = \"{}\"))] or local_index",
                                index.value(),
                                index.value()
                            ),
                        );
                        false
                    }
                    Some(&idx) => {
                        let decl = &cont.indexes[idx];
                        let slot = match part {
                            KeyPart::Partition => &mut index_keys[idx].0,
                            KeyPart::Sort => &mut index_keys[idx].1,
                        };
                        if decl.kind == IndexKind::Local && *part == KeyPart::Partition {
                            cx.syn_error(syn::Error::new(
                                *span,
                                format!("local index `{}` shares the table's partition key: mark only its sort key", index.value()),
                            ));
                            false
                        } else {
                            let what = match part {
                                KeyPart::Partition => {
                                    format!("partition key of index `{}`", index.value())
                                }
                                KeyPart::Sort => format!("sort key of index `{}`", index.value()),
                            };
                            set_once(slot, i, *span, &what)
                        }
                    }
                },
            };
            failed |= !ok;
        }
    }

    if cont.table.is_none() {
        cx.error_spanned_by(
            cont.ident,
            "missing table name: add #[dynamite(table = \"...\")]",
        );
        failed = true;
    }
    if partition_key.is_none() {
        cx.error_spanned_by(
            cont.ident,
            "entity has no partition key: mark one field with #[dynamite(partition_key)]",
        );
        failed = true;
    }
    // `Option` is for sparse index keys; DynamoDB rejects an item without its primary key.
    for (slot, what) in [(partition_key, "partition key"), (sort_key, "sort key")] {
        if let Some(i) = slot {
            let ty = cont.fields[i].ty;
            if is_option(ty) {
                cx.error_spanned_by(
                    ty,
                    format!("the table's {what} cannot be an `Option`: every item must have its primary key (an `Option` is allowed for index keys, which makes the index sparse)"),
                );
                failed = true;
            }
        }
    }
    for special in [version, ttl].into_iter().flatten() {
        if Some(special) == partition_key || Some(special) == sort_key {
            cx.error_spanned_by(
                cont.fields[special].ident,
                "a key attribute cannot also be the TTL or version attribute",
            );
            failed = true;
        }
    }

    // Attribute names must be unique, aliases included.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, field) in cont.fields.iter().enumerate() {
        if field.skip {
            continue;
        }
        let aliases = field
            .aliases
            .iter()
            .map(|alias| (alias.value(), alias.span(), "alias"));
        for (name, span, what) in
            std::iter::once((field.attr_name.clone(), field.name_span, "attribute name"))
                .chain(aliases)
        {
            if let Some(&other) = seen.get(&name) {
                if other != i {
                    cx.syn_error(syn::Error::new(
                        span,
                        format!(
                            "{what} `{name}` is already used by field `{}`",
                            cont.fields[other].ident
                        ),
                    ));
                    failed = true;
                }
            } else {
                seen.insert(name, i);
            }
        }
        if field.attr_name.is_empty() {
            cx.syn_error(syn::Error::new(
                field.name_span,
                "attribute names must not be empty",
            ));
            failed = true;
        }
    }

    // Indexes: keys present, projections resolvable, handle names free.
    let field_consts: HashMap<String, &syn::Ident> = cont
        .fields
        .iter()
        .map(|f| {
            (
                f.ident
                    .to_string()
                    .trim_start_matches("r#")
                    .to_ascii_uppercase(),
                f.ident,
            )
        })
        .collect();
    let mut index_consts: HashMap<String, &LitStr> = HashMap::new();
    let mut indexes = Vec::new();
    for (idx, decl) in cont.indexes.iter().enumerate() {
        if duplicate_index[idx] {
            continue;
        }
        let (pk, sk) = index_keys[idx];
        let name = decl.name.value();
        let partition = match decl.kind {
            IndexKind::Global => match pk {
                Some(pk) => Some(pk),
                None => {
                    cx.syn_error(syn::Error::new(
                        decl.span,
                        format!("index `{name}` has no partition key: mark a field with #[dynamite(index_key(index = \"{name}\", partition))]"),
                    ));
                    None
                }
            },
            IndexKind::Local => {
                if sk.is_none() {
                    cx.syn_error(syn::Error::new(
                        decl.span,
                        format!("local index `{name}` has no sort key: mark a field with #[dynamite(index_key(index = \"{name}\", sort))]"),
                    ));
                }
                partition_key
            }
        };
        let projection = match &decl.projection {
            ProjectionDecl::All => ResolvedProjection::All,
            ProjectionDecl::KeysOnly => ResolvedProjection::KeysOnly,
            ProjectionDecl::Include(idents) => {
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
        };
        let const_name = screaming_snake(&name);
        if let Some(field) = field_consts.get(&const_name) {
            cx.error_spanned_by(
                &decl.name,
                format!("index handle `{const_name}` would clash with the attribute handle of field `{field}`; rename the index"),
            );
        } else if let Some(other) = index_consts.get(&const_name) {
            cx.error_spanned_by(
                &decl.name,
                format!("index handle `{const_name}` would clash with the handle of index `{}`; rename one of them", other.value()),
            );
        } else {
            index_consts.insert(const_name.clone(), &decl.name);
        }
        if let Some(pk) = partition {
            indexes.push(ResolvedIndex {
                name,
                const_name,
                kind: decl.kind,
                partition_key: pk,
                sort_key: sk,
                projection,
            });
        } else {
            failed = true;
        }
    }

    if failed {
        return None;
    }
    Some(Resolved {
        table: cont.table.clone()?,
        partition_key: partition_key?,
        sort_key,
        indexes,
        ttl,
        version,
    })
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
