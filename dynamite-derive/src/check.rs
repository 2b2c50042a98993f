//! Cross-field checks: keys, indexes, projections and attribute names must describe one valid
//! DynamoDB table. Each problem is reported at the token that caused it.

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
    let mut index_by_name: HashMap<String, usize> = HashMap::new();
    for (i, index) in cont.indexes.iter().enumerate() {
        if index_by_name.insert(index.name.value(), i).is_some() {
            cx.error_spanned_by(
                &index.name,
                format!("duplicate index `{}`", index.name.value()),
            );
            failed = true;
        }
    }

    let set_once = |slot: &mut Option<usize>, field: usize, span: Span, what: &str| {
        if slot.is_some() {
            cx.syn_error(syn::Error::new(
                span,
                format!("only one field can be the {what}"),
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
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, field) in cont.fields.iter().enumerate() {
        if field.skip {
            continue;
        }
        for name in std::iter::once(&field.attr_name).chain(field.aliases.iter()) {
            if let Some(&other) = seen.get(name.as_str()) {
                if other != i {
                    cx.syn_error(syn::Error::new(
                        field.name_span,
                        format!(
                            "attribute name `{name}` is already used by field `{}`",
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
    let mut indexes = Vec::new();
    for (idx, decl) in cont.indexes.iter().enumerate() {
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
                    match cont.fields.iter().find(|f| f.ident == ident && !f.skip) {
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
