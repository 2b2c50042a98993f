//! Reads `#[dynamite(...)]` and the `#[serde(...)]` attributes that change what an item looks
//! like. Serde attributes the derive cannot honour are errors, never silently ignored, and a
//! dynamite option given twice is an error at the second one (see [`Attr`]).
//!
//! serde options given twice are left to `serde_derive`, which reports them itself.

use quote::ToTokens;
use syn::ext::IdentExt as _;
use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::spanned::Spanned as _;
use syn::{Data, DeriveInput, Fields, FieldsNamed, Ident, LitStr};

use crate::ast::{
    CacheDecl, Container, Field, FieldDefault, IndexDecl, IndexKind, KeyPart, ProjectionDecl, Role,
};
use crate::case::RenameRule;
use crate::ctxt::Ctxt;
use crate::symbol::*;

/// An option that may be given at most once: holds the first value, and reports a second one as
/// "duplicate dynamite attribute" at the place it is written.
pub(crate) struct Attr<'c, T> {
    cx: &'c Ctxt,
    name: Symbol,
    value: Option<T>,
}

impl<'c, T> Attr<'c, T> {
    /// An option not given yet.
    pub(crate) fn none(cx: &'c Ctxt, name: Symbol) -> Self {
        Attr {
            cx,
            name,
            value: None,
        }
    }

    /// Records `value`, written at `tokens`. Returns whether it was the first; a second value is
    /// reported at `tokens` and dropped.
    pub(crate) fn set<A: ToTokens>(&mut self, tokens: A, value: T) -> bool {
        if self.value.is_some() {
            self.cx.error_spanned_by(
                tokens,
                format!("duplicate dynamite attribute `{}`", self.name),
            );
            false
        } else {
            self.value = Some(value);
            true
        }
    }

    /// The first value given, if any.
    pub(crate) fn get(self) -> Option<T> {
        self.value
    }
}

/// A flag option (`queries`, `off`, `partition_key`, ...): present or not, at most once.
pub(crate) struct BoolAttr<'c>(Attr<'c, ()>);

impl<'c> BoolAttr<'c> {
    /// A flag not given yet.
    pub(crate) fn none(cx: &'c Ctxt, name: Symbol) -> Self {
        BoolAttr(Attr::none(cx, name))
    }

    /// Records the flag, written at `tokens`; returns whether it was the first time.
    pub(crate) fn set_true<A: ToTokens>(&mut self, tokens: A) -> bool {
        self.0.set(tokens, ())
    }

    /// Whether the flag was given so far.
    pub(crate) fn is_set(&self) -> bool {
        self.0.value.is_some()
    }

    /// Whether the flag was given.
    pub(crate) fn get(self) -> bool {
        self.0.get().is_some()
    }
}

/// The struct-level `#[dynamite(...)]` options, over all `#[dynamite]` attributes of the struct.
struct ContainerAttrs<'c> {
    table: Attr<'c, LitStr>,
    cache: Attr<'c, CacheDecl>,
    stream: Attr<'c, &'static str>,
    indexes: Vec<IndexDecl>,
}

/// The struct-level `#[serde(...)]` options the derive follows.
#[derive(Default)]
struct ContainerSerde {
    rename_all: Option<RenameRule>,
    deny_unknown_fields: bool,
}

/// Parses the derive input into the model. Problems go into `cx`; `None` when the input is not
/// a struct with named fields at all.
pub(crate) fn parse<'a>(cx: &Ctxt, input: &'a DeriveInput) -> Option<Container<'a>> {
    let named = named_fields(cx, input)?;
    if !input.generics.params.is_empty() {
        cx.error_spanned_by(
            &input.generics,
            "#[derive(Entity)] does not support generic structs: an entity maps to one table",
        );
    }
    let mut attrs = ContainerAttrs {
        table: Attr::none(cx, TABLE),
        cache: Attr::none(cx, CACHE),
        stream: Attr::none(cx, STREAM),
        indexes: Vec::new(),
    };
    let mut serde = ContainerSerde::default();
    for attr in &input.attrs {
        if attr.path() == DYNAMITE {
            report(
                cx,
                attr.parse_nested_meta(|meta| container_option(cx, &meta, &mut attrs)),
            );
        } else if attr.path() == SERDE {
            report(
                cx,
                attr.parse_nested_meta(|meta| container_serde(cx, &meta, &mut serde)),
            );
        }
    }
    let rename_all = serde.rename_all.unwrap_or(RenameRule::None);
    Some(Container {
        ident: &input.ident,
        table: attrs.table.get(),
        indexes: attrs.indexes,
        fields: named
            .named
            .iter()
            .map(|f| parse_field(cx, f, rename_all))
            .collect(),
        deny_unknown_fields: serde.deny_unknown_fields,
        cache: attrs.cache.get(),
        stream: attrs.stream.get(),
    })
}

/// The named fields of a struct; anything else is reported.
fn named_fields<'a>(cx: &Ctxt, input: &'a DeriveInput) -> Option<&'a FieldsNamed> {
    match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => Some(named),
            _ => {
                cx.error_spanned_by(
                    &input.ident,
                    "#[derive(Entity)] needs a struct with named fields",
                );
                None
            }
        },
        _ => {
            cx.error_spanned_by(&input.ident, "#[derive(Entity)] supports structs only");
            None
        }
    }
}

/// Records an error that stopped the parsing of one attribute.
fn report(cx: &Ctxt, result: syn::Result<()>) {
    if let Err(err) = result {
        cx.syn_error(err);
    }
}

/// One option of `#[dynamite(...)]` on the struct.
fn container_option(
    cx: &Ctxt,
    meta: &ParseNestedMeta,
    attrs: &mut ContainerAttrs,
) -> syn::Result<()> {
    if meta.path == TABLE {
        let lit: LitStr = meta.value()?.parse()?;
        attrs.table.set(&meta.path, lit);
    } else if meta.path == GLOBAL_INDEX || meta.path == INDEX {
        attrs
            .indexes
            .push(parse_index(cx, meta, IndexKind::Global)?);
    } else if meta.path == LOCAL_INDEX {
        attrs.indexes.push(parse_index(cx, meta, IndexKind::Local)?);
    } else if meta.path == CACHE {
        let decl = parse_cache(cx, meta)?;
        attrs.cache.set(&meta.path, decl);
    } else if meta.path == STREAM {
        let lit: LitStr = meta.value()?.parse()?;
        match stream_view(&lit.value()) {
            Some(view) => {
                attrs.stream.set(&meta.path, view);
            }
            None => cx.error_spanned_by(
                &lit,
                format!(
                    "unknown stream view type `{}`; expected one of: {}",
                    lit.value(),
                    STREAM_VIEWS
                        .iter()
                        .map(|(name, _)| *name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    } else {
        return Err(meta.error(format!(
            "unknown dynamite option `{}`; expected one of: {TABLE}, {GLOBAL_INDEX}, {INDEX}, {LOCAL_INDEX}, {CACHE}, {STREAM}",
            path_name(&meta.path)
        )));
    }
    Ok(())
}

/// The stream view types of `stream = "..."`, with their `StreamView` variants.
const STREAM_VIEWS: &[(&str, &str)] = &[
    ("keys_only", "KeysOnly"),
    ("new_image", "NewImage"),
    ("old_image", "OldImage"),
    ("new_and_old_images", "NewAndOldImages"),
];

/// The `StreamView` variant of a view type, named as in `STREAM_VIEWS` or as DynamoDB names
/// it (`NEW_AND_OLD_IMAGES`).
fn stream_view(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    STREAM_VIEWS
        .iter()
        .find(|(view, _)| *view == lower)
        .map(|(_, variant)| *variant)
}

/// One option of `#[serde(...)]` on the struct.
fn container_serde(
    cx: &Ctxt,
    meta: &ParseNestedMeta,
    serde: &mut ContainerSerde,
) -> syn::Result<()> {
    if meta.path == RENAME_ALL {
        let lit: LitStr = meta.value()?.parse()?;
        match RenameRule::from_str(&lit.value()) {
            Some(rule) => serde.rename_all = Some(rule),
            None => cx.error_spanned_by(&lit, format!("unknown rename rule `{}`", lit.value())),
        }
    } else if meta.path == DENY_UNKNOWN_FIELDS {
        serde.deny_unknown_fields = true;
    } else if [RENAME, BOUND, CRATE, EXPECTING]
        .iter()
        .any(|s| meta.path == *s)
    {
        // Only change the Rust side or error messages: nothing on the item changes.
        skip_value(meta)?;
    } else {
        skip_value(meta)?;
        cx.error_spanned_by(
            &meta.path,
            format!(
                "#[derive(Entity)] cannot honour #[serde({})]: the item it writes would not match the entity's schema",
                path_name(&meta.path)
            ),
        );
    }
    Ok(())
}

/// `cache(ttl = "30s", negative_ttl = "5s", queries)` or `cache(off)`.
fn parse_cache(cx: &Ctxt, meta: &ParseNestedMeta) -> syn::Result<CacheDecl> {
    let mut off = BoolAttr::none(cx, OFF);
    let mut queries = BoolAttr::none(cx, QUERIES);
    let mut ttl = Attr::none(cx, TTL);
    let mut negative_ttl = Attr::none(cx, NEGATIVE_TTL);
    meta.parse_nested_meta(|inner| {
        if inner.path == OFF {
            off.set_true(&inner.path);
        } else if inner.path == QUERIES {
            queries.set_true(&inner.path);
        } else if inner.path == TTL {
            ttl.set(&inner.path, parse_duration(&inner.value()?.parse()?)?);
        } else if inner.path == NEGATIVE_TTL {
            negative_ttl.set(&inner.path, parse_duration(&inner.value()?.parse()?)?);
        } else {
            return Err(inner.error(format!(
                "unknown cache option `{}`; expected {TTL} = \"..\", {NEGATIVE_TTL} = \"..\", {QUERIES} or {OFF}",
                path_name(&inner.path)
            )));
        }
        Ok(())
    })?;
    Ok(CacheDecl {
        off: off.get(),
        ttl_ms: ttl.get(),
        negative_ttl_ms: negative_ttl.get(),
        queries: queries.get(),
    })
}

/// `"250ms"`, `"30s"`, `"5m"`, `"1h"` -> milliseconds.
fn parse_duration(lit: &LitStr) -> syn::Result<u64> {
    duration_ms(&lit.value()).ok_or_else(|| {
        syn::Error::new(
            lit.span(),
            "expected a duration like \"250ms\", \"30s\", \"5m\" or \"1h\"",
        )
    })
}

/// `"250ms"`, `"30s"`, `"5m"`, `"1h"` -> milliseconds (saturating); `None` for anything else.
fn duration_ms(text: &str) -> Option<u64> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let factor: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    Some(number.parse::<u64>().ok()?.saturating_mul(factor))
}

/// `global_index(name = "...", projection = ...)` or `local_index(...)`.
fn parse_index(cx: &Ctxt, meta: &ParseNestedMeta, kind: IndexKind) -> syn::Result<IndexDecl> {
    let span = meta.path.span();
    let mut name = Attr::none(cx, NAME);
    let mut projection = Attr::none(cx, PROJECTION);
    meta.parse_nested_meta(|inner| {
        if inner.path == NAME {
            let lit: LitStr = inner.value()?.parse()?;
            name.set(&inner.path, lit);
        } else if inner.path == PROJECTION {
            let decl = parse_projection(inner.value()?)?;
            projection.set(&inner.path, decl);
        } else {
            return Err(inner.error(format!(
                "unknown index option `{}`; expected {NAME} or {PROJECTION}",
                path_name(&inner.path)
            )));
        }
        Ok(())
    })?;
    let name = name
        .get()
        .ok_or_else(|| meta.error(format!("index needs a name: `{NAME} = \"...\"`")))?;
    Ok(IndexDecl {
        name,
        kind,
        projection: projection.get().unwrap_or(ProjectionDecl::All),
        span,
    })
}

/// The value of `projection = all | keys_only | include(field, ...)`.
fn parse_projection(value: ParseStream) -> syn::Result<ProjectionDecl> {
    let kind: Ident = value.parse()?;
    if kind == ALL {
        Ok(ProjectionDecl::All)
    } else if kind == KEYS_ONLY {
        Ok(ProjectionDecl::KeysOnly)
    } else if kind == INCLUDE {
        let content;
        syn::parenthesized!(content in value);
        let fields = content.parse_terminated(Ident::parse_any, syn::Token![,])?;
        Ok(ProjectionDecl::Include(fields.into_iter().collect()))
    } else {
        Err(syn::Error::new(
            kind.span(),
            format!(
                "unknown projection `{kind}`; expected {ALL}, {KEYS_ONLY} or {INCLUDE}(field, ...)"
            ),
        ))
    }
}

/// The `#[dynamite(...)]` roles of one field, over all its `#[dynamite]` attributes.
struct FieldRoles<'c> {
    partition_key: BoolAttr<'c>,
    sort_key: BoolAttr<'c>,
    ttl: BoolAttr<'c>,
    version: BoolAttr<'c>,
    created_at: BoolAttr<'c>,
    updated_at: BoolAttr<'c>,
    /// `(index name, part)` of each `index_key(...)` seen.
    index_keys: Vec<(String, KeyPart)>,
}

impl<'c> FieldRoles<'c> {
    fn new(cx: &'c Ctxt) -> Self {
        FieldRoles {
            partition_key: BoolAttr::none(cx, PARTITION_KEY),
            sort_key: BoolAttr::none(cx, SORT_KEY),
            ttl: BoolAttr::none(cx, TTL),
            version: BoolAttr::none(cx, VERSION),
            created_at: BoolAttr::none(cx, CREATED_AT),
            updated_at: BoolAttr::none(cx, UPDATED_AT),
            index_keys: Vec::new(),
        }
    }
}

/// One named field: its attribute name (after `rename_all` and `rename`), roles and serde
/// options.
fn parse_field<'a>(cx: &Ctxt, field: &'a syn::Field, rename_all: RenameRule) -> Field<'a> {
    let ident = field.ident.as_ref().expect("named field");
    let rust_name = ident.to_string();
    let rust_name = rust_name.strip_prefix("r#").unwrap_or(&rust_name);
    let mut parsed = Field {
        ident,
        ty: &field.ty,
        attr_name: rename_all.apply_to_field(rust_name),
        name_span: ident.span(),
        aliases: Vec::new(),
        roles: Vec::new(),
        default: FieldDefault::None,
        skip: false,
        skip_serializing_if: None,
    };
    let mut roles = FieldRoles::new(cx);
    for attr in &field.attrs {
        if attr.path() == DYNAMITE {
            report(
                cx,
                attr.parse_nested_meta(|meta| field_role(cx, &meta, &mut roles, &mut parsed)),
            );
        } else if attr.path() == SERDE {
            report(
                cx,
                attr.parse_nested_meta(|meta| field_serde(cx, &meta, &mut parsed)),
            );
        }
    }
    parsed
}

/// One option of `#[dynamite(...)]` on a field; a role given twice is reported, not added.
fn field_role(
    cx: &Ctxt,
    meta: &ParseNestedMeta,
    seen: &mut FieldRoles,
    field: &mut Field,
) -> syn::Result<()> {
    let span = meta.path.span();
    let path = &meta.path;
    let role = if path == PARTITION_KEY || path == HASH_KEY {
        seen.partition_key
            .set_true(path)
            .then_some(Role::PartitionKey(span))
    } else if path == SORT_KEY || path == RANGE_KEY {
        seen.sort_key.set_true(path).then_some(Role::SortKey(span))
    } else if path == TTL {
        seen.ttl.set_true(path).then_some(Role::Ttl(span))
    } else if path == VERSION {
        seen.version.set_true(path).then_some(Role::Version(span))
    } else if path == CREATED_AT {
        seen.created_at
            .set_true(path)
            .then_some(Role::CreatedAt(span))
    } else if path == UPDATED_AT {
        seen.updated_at
            .set_true(path)
            .then_some(Role::UpdatedAt(span))
    } else if path == INDEX_KEY {
        let (index, part) = parse_index_key(cx, meta)?;
        let first = new_index_key(cx, meta, &mut seen.index_keys, &index, part);
        first.then_some(Role::IndexKey { index, part, span })
    } else {
        return Err(meta.error(format!(
            "unknown dynamite option `{}`; expected one of: {PARTITION_KEY}, {SORT_KEY}, {INDEX_KEY}, {TTL}, {VERSION}, {CREATED_AT}, {UPDATED_AT}",
            path_name(path)
        )));
    };
    field.roles.extend(role);
    Ok(())
}

/// Whether this field has not already named itself the same key of the same index; a repeat is
/// reported at the second `index_key`.
fn new_index_key(
    cx: &Ctxt,
    meta: &ParseNestedMeta,
    seen: &mut Vec<(String, KeyPart)>,
    index: &LitStr,
    part: KeyPart,
) -> bool {
    let key = (index.value(), part);
    if seen.contains(&key) {
        let part = match part {
            KeyPart::Partition => PARTITION,
            KeyPart::Sort => SORT,
        };
        cx.error_spanned_by(
            &meta.path,
            format!(
                "duplicate dynamite attribute `{INDEX_KEY}({INDEX} = \"{}\", {part})`",
                key.0
            ),
        );
        false
    } else {
        seen.push(key);
        true
    }
}

/// `index_key(index = "...", partition | sort)`.
fn parse_index_key(cx: &Ctxt, meta: &ParseNestedMeta) -> syn::Result<(LitStr, KeyPart)> {
    let mut index = Attr::none(cx, INDEX);
    let mut partition = BoolAttr::none(cx, PARTITION);
    let mut sort = BoolAttr::none(cx, SORT);
    meta.parse_nested_meta(|inner| {
        if inner.path == INDEX {
            let lit: LitStr = inner.value()?.parse()?;
            index.set(&inner.path, lit);
        } else if inner.path == PARTITION || inner.path == HASH {
            claim_key_part(cx, &inner.path, &mut partition, &sort);
        } else if inner.path == SORT || inner.path == RANGE {
            claim_key_part(cx, &inner.path, &mut sort, &partition);
        } else {
            return Err(inner.error(format!(
                "unknown index_key option `{}`; expected {INDEX} = \"...\", {PARTITION} or {SORT}",
                path_name(&inner.path)
            )));
        }
        Ok(())
    })?;
    let index = index
        .get()
        .ok_or_else(|| meta.error(format!("index_key needs `{INDEX} = \"IndexName\"`")))?;
    let part = match (partition.get(), sort.get()) {
        (true, _) => KeyPart::Partition,
        (_, true) => KeyPart::Sort,
        _ => return Err(meta.error(format!("index_key needs `{PARTITION}` or `{SORT}`"))),
    };
    Ok((index, part))
}

/// `partition` or `sort` inside `index_key(...)`: once, and not both (the first one counts).
fn claim_key_part(cx: &Ctxt, path: &syn::Path, this: &mut BoolAttr, other: &BoolAttr) {
    if other.is_set() {
        cx.error_spanned_by(
            path,
            format!("index_key is either `{PARTITION}` or `{SORT}`, not both: mark the other key on another field"),
        );
    } else {
        this.set_true(path);
    }
}

/// One option of `#[serde(...)]` on a field.
fn field_serde(cx: &Ctxt, meta: &ParseNestedMeta, field: &mut Field) -> syn::Result<()> {
    let path = &meta.path;
    if path == RENAME {
        serde_rename(cx, meta, field)?;
    } else if path == ALIAS {
        field.aliases.push(meta.value()?.parse()?);
    } else if path == DEFAULT {
        field.default = if meta.input.peek(syn::Token![=]) {
            let lit: LitStr = meta.value()?.parse()?;
            FieldDefault::Path(lit.parse()?)
        } else {
            FieldDefault::Default
        };
    } else if path == SKIP {
        field.skip = true;
    } else if path == SKIP_SERIALIZING_IF {
        let lit: LitStr = meta.value()?.parse()?;
        field.skip_serializing_if = Some(lit.parse()?);
    } else if [BOUND, BORROW, GETTER].iter().any(|s| path == *s) {
        skip_value(meta)?;
    } else {
        skip_value(meta)?;
        cx.error_spanned_by(
            path,
            format!(
                "#[derive(Entity)] cannot honour #[serde({})] on a field: the item it writes would not match the entity's schema",
                path_name(path)
            ),
        );
    }
    Ok(())
}

/// `rename = "..."` or `rename(serialize = "...", deserialize = "...")` on a field: the item has
/// one attribute name, so the two must agree.
fn serde_rename(cx: &Ctxt, meta: &ParseNestedMeta, field: &mut Field) -> syn::Result<()> {
    let set_name = |field: &mut Field, lit: LitStr| {
        field.attr_name = lit.value();
        field.name_span = lit.span();
    };
    if meta.input.peek(syn::Token![=]) {
        set_name(field, meta.value()?.parse()?);
        return Ok(());
    }
    let mut ser: Option<LitStr> = None;
    let mut de: Option<LitStr> = None;
    meta.parse_nested_meta(|inner| {
        if inner.path == SERIALIZE {
            ser = Some(inner.value()?.parse()?);
        } else if inner.path == DESERIALIZE {
            de = Some(inner.value()?.parse()?);
        } else {
            return Err(inner.error(format!("expected {SERIALIZE} or {DESERIALIZE}")));
        }
        Ok(())
    })?;
    match (ser, de) {
        (Some(s), Some(d)) if s.value() != d.value() => cx.error_spanned_by(
            &meta.path,
            "#[derive(Entity)] needs one attribute name: serialize and deserialize names differ",
        ),
        (Some(s), _) | (None, Some(s)) => set_name(field, s),
        (None, None) => {}
    }
    Ok(())
}

/// Consumes `= value` or `(...)` after an option we do not interpret.
fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: syn::Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| skip_value(&inner))?;
    }
    Ok(())
}

/// A path as written, `a::b`, for messages.
fn path_name(path: &syn::Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_ms("250ms"), Some(250));
        assert_eq!(duration_ms("30s"), Some(30_000));
        assert_eq!(duration_ms("5m"), Some(300_000));
        assert_eq!(duration_ms("1h"), Some(3_600_000));
        assert_eq!(duration_ms("0s"), Some(0));
        assert_eq!(duration_ms(&format!("{}h", u64::MAX)), Some(u64::MAX));
        for bad in ["", "30", "s", "1.5s", "-1s", "30 s", "30sec", "1d"] {
            assert_eq!(duration_ms(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_second_value_is_reported_and_the_first_kept() {
        let cx = Ctxt::new();
        let mut table = Attr::none(&cx, TABLE);
        assert!(table.set(quote::quote!(table), "a"));
        assert!(!table.set(quote::quote!(table), "b"));
        assert_eq!(table.get(), Some("a"));
        let err = cx.check().expect_err("a duplicate");
        assert_eq!(err.to_string(), "duplicate dynamite attribute `table`");
    }

    #[test]
    fn a_flag_given_once_is_fine() {
        let cx = Ctxt::new();
        let mut off = BoolAttr::none(&cx, OFF);
        assert!(off.set_true(quote::quote!(off)));
        assert!(off.get());
        assert!(!BoolAttr::none(&cx, QUERIES).get());
        cx.check().expect("no errors");
    }
}
