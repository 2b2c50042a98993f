//! The model of an entity, as read from the struct and its attributes.

use proc_macro2::Span;
use syn::{Ident, LitStr, Type};

/// The struct `#[derive(Entity)]` is applied to.
pub(crate) struct Container<'a> {
    pub ident: &'a Ident,
    /// `#[dynamite(table = "...")]`.
    pub table: Option<LitStr>,
    pub indexes: Vec<IndexDecl>,
    pub fields: Vec<Field<'a>>,
    /// `#[serde(deny_unknown_fields)]`.
    pub deny_unknown_fields: bool,
    /// `#[dynamite(cache(...))]`.
    pub cache: Option<CacheDecl>,
    /// `#[dynamite(stream = "...")]`: the `StreamView` variant's name.
    pub stream: Option<&'static str>,
}

/// `#[dynamite(cache(ttl = "30s", queries, negative_ttl = "5s"))]` or `cache(off)`.
pub(crate) struct CacheDecl {
    pub off: bool,
    pub ttl_ms: Option<u64>,
    pub negative_ttl_ms: Option<u64>,
    pub queries: bool,
}

/// An index declared on the struct with `#[dynamite(global_index(...))]` or `local_index(...)`.
pub(crate) struct IndexDecl {
    pub name: LitStr,
    pub kind: IndexKind,
    pub projection: ProjectionDecl,
    pub span: Span,
}

#[derive(Copy, Clone, PartialEq, Eq)]
pub(crate) enum IndexKind {
    Global,
    Local,
}

pub(crate) enum ProjectionDecl {
    All,
    KeysOnly,
    /// Field identifiers, resolved to attribute names by the checks.
    Include(Vec<Ident>),
}

/// A named field of the struct.
pub(crate) struct Field<'a> {
    pub ident: &'a Ident,
    pub ty: &'a Type,
    /// The attribute name serde writes (after `rename` / `rename_all`).
    pub attr_name: String,
    /// Where the name came from, for error spans.
    pub name_span: Span,
    /// `#[serde(alias = "...")]` names accepted on read, as written (for error spans).
    pub aliases: Vec<LitStr>,
    pub roles: Vec<Role>,
    pub default: FieldDefault,
    /// `#[serde(skip)]`: neither written nor read.
    pub skip: bool,
    /// `#[serde(skip_serializing_if = "path")]`.
    pub skip_serializing_if: Option<syn::ExprPath>,
}

/// What a missing attribute becomes on read.
pub(crate) enum FieldDefault {
    /// The type's own rule (`Option` -> `None`, sets -> empty), else an error.
    None,
    /// `#[serde(default)]`.
    Default,
    /// `#[serde(default = "path")]`.
    Path(syn::ExprPath),
}

/// A key or special role a field plays, with the span of the attribute that gave it.
#[derive(Clone)]
pub(crate) enum Role {
    PartitionKey(Span),
    SortKey(Span),
    IndexKey {
        index: LitStr,
        part: KeyPart,
        span: Span,
    },
    Ttl(Span),
    Version(Span),
    CreatedAt(Span),
    UpdatedAt(Span),
}

#[derive(Copy, Clone, PartialEq, Eq)]
pub(crate) enum KeyPart {
    Partition,
    Sort,
}
