//! Reads `#[dynamite(...)]` and the `#[serde(...)]` attributes that change what an item looks
//! like. Serde attributes the derive cannot honour are errors, never silently ignored.

use syn::meta::ParseNestedMeta;
use syn::{Data, DeriveInput, Fields, Ident, LitStr};

use crate::ast::{
    CacheDecl, Container, Field, FieldDefault, IndexDecl, IndexKind, KeyPart, ProjectionDecl, Role,
};
use crate::case::RenameRule;
use crate::ctxt::Ctxt;

const DYNAMITE: &str = "dynamite";
const SERDE: &str = "serde";

/// Parses the derive input into the model. Problems go into `cx`; `None` when the input is not
/// a struct with named fields at all.
pub fn parse<'a>(cx: &Ctxt, input: &'a DeriveInput) -> Option<Container<'a>> {
    let named = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => named,
            _ => {
                cx.error_spanned_by(
                    &input.ident,
                    "#[derive(Entity)] needs a struct with named fields",
                );
                return None;
            }
        },
        _ => {
            cx.error_spanned_by(&input.ident, "#[derive(Entity)] supports structs only");
            return None;
        }
    };
    if !input.generics.params.is_empty() {
        cx.error_spanned_by(
            &input.generics,
            "#[derive(Entity)] does not support generic structs: an entity maps to one table",
        );
    }

    let mut container = Container {
        ident: &input.ident,
        table: None,
        indexes: Vec::new(),
        fields: Vec::new(),
        deny_unknown_fields: false,
        cache: None,
    };
    let mut rename_all = RenameRule::None;

    for attr in &input.attrs {
        if attr.path().is_ident(DYNAMITE) {
            let result = attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("table") {
                    let lit: LitStr = meta.value()?.parse()?;
                    if container.table.is_some() {
                        cx.error_spanned_by(&meta.path, "duplicate `table`");
                    } else {
                        if lit.value().is_empty() {
                            cx.error_spanned_by(&lit, "table name must not be empty");
                        }
                        // Kept even when empty, so no "missing table name" follows.
                        container.table = Some(lit);
                    }
                    Ok(())
                } else if meta.path.is_ident("global_index") || meta.path.is_ident("index") {
                    container.indexes.push(parse_index(cx, &meta, IndexKind::Global)?);
                    Ok(())
                } else if meta.path.is_ident("cache") {
                    container.cache = Some(parse_cache(&meta)?);
                    Ok(())
                } else if meta.path.is_ident("local_index") {
                    container.indexes.push(parse_index(cx, &meta, IndexKind::Local)?);
                    Ok(())
                } else {
                    Err(meta.error(format!(
                        "unknown dynamite option `{}`; expected one of: table, global_index, index, local_index, cache",
                        path_name(&meta.path)
                    )))
                }
            });
            if let Err(err) = result {
                cx.syn_error(err);
            }
        } else if attr.path().is_ident(SERDE) {
            let result = attr.parse_nested_meta(|meta| {
                let name = path_name(&meta.path);
                match name.as_str() {
                    "rename_all" => {
                        let lit = rename_value(&meta)?;
                        match RenameRule::from_str(&lit.value()) {
                            Some(rule) => rename_all = rule,
                            None => cx.error_spanned_by(&lit, format!("unknown rename rule `{}`", lit.value())),
                        }
                    }
                    "deny_unknown_fields" => container.deny_unknown_fields = true,
                    // Only change the Rust side or error messages: nothing on the item changes.
                    "rename" | "bound" | "crate" | "expecting" => skip_value(&meta)?,
                    _ => {
                        skip_value(&meta)?;
                        cx.error_spanned_by(
                            &meta.path,
                            format!("#[derive(Entity)] cannot honour #[serde({name})]: the item it writes would not match the entity's schema"),
                        );
                    }
                }
                Ok(())
            });
            if let Err(err) = result {
                cx.syn_error(err);
            }
        }
    }

    for field in &named.named {
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
        for attr in &field.attrs {
            if attr.path().is_ident(DYNAMITE) {
                if let Err(err) =
                    attr.parse_nested_meta(|meta| parse_field_role(&meta, &mut parsed))
                {
                    cx.syn_error(err);
                }
            } else if attr.path().is_ident(SERDE) {
                let result =
                    attr.parse_nested_meta(|meta| parse_field_serde(cx, &meta, &mut parsed));
                if let Err(err) = result {
                    cx.syn_error(err);
                }
            }
        }
        container.fields.push(parsed);
    }
    Some(container)
}

fn parse_cache(meta: &ParseNestedMeta) -> syn::Result<CacheDecl> {
    let mut decl = CacheDecl {
        off: false,
        ttl_ms: None,
        negative_ttl_ms: None,
        queries: false,
    };
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("off") {
            decl.off = true;
        } else if inner.path.is_ident("queries") {
            decl.queries = true;
        } else if inner.path.is_ident("ttl") {
            decl.ttl_ms = Some(parse_duration(&inner.value()?.parse()?)?);
        } else if inner.path.is_ident("negative_ttl") {
            decl.negative_ttl_ms = Some(parse_duration(&inner.value()?.parse()?)?);
        } else {
            return Err(inner.error(format!(
                "unknown cache option `{}`; expected ttl = \"..\", negative_ttl = \"..\", queries or off",
                path_name(&inner.path)
            )));
        }
        Ok(())
    })?;
    Ok(decl)
}

/// `"250ms"`, `"30s"`, `"5m"`, `"1h"` -> milliseconds.
fn parse_duration(lit: &LitStr) -> syn::Result<u64> {
    let text = lit.value();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let factor = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if factor > 0 => Ok(n.saturating_mul(factor)),
        _ => Err(syn::Error::new(
            lit.span(),
            "expected a duration like \"250ms\", \"30s\", \"5m\" or \"1h\"",
        )),
    }
}

fn parse_index(cx: &Ctxt, meta: &ParseNestedMeta, kind: IndexKind) -> syn::Result<IndexDecl> {
    let span = meta.path.span();
    let mut name: Option<LitStr> = None;
    let mut projection = ProjectionDecl::All;
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("name") {
            let lit: LitStr = inner.value()?.parse()?;
            check_index_name(cx, &lit);
            name = Some(lit);
            Ok(())
        } else if inner.path.is_ident("projection") {
            let value = inner.value()?;
            let kind: Ident = value.parse()?;
            projection = match kind.to_string().as_str() {
                "all" => ProjectionDecl::All,
                "keys_only" => ProjectionDecl::KeysOnly,
                "include" => {
                    let content;
                    syn::parenthesized!(content in value);
                    let fields = content.parse_terminated(Ident::parse_any, syn::Token![,])?;
                    ProjectionDecl::Include(fields.into_iter().collect())
                }
                other => {
                    return Err(syn::Error::new(
                        kind.span(),
                        format!("unknown projection `{other}`; expected all, keys_only or include(field, ...)"),
                    ))
                }
            };
            Ok(())
        } else {
            Err(inner.error(format!(
                "unknown index option `{}`; expected name or projection",
                path_name(&inner.path)
            )))
        }
    })?;
    let name = name.ok_or_else(|| meta.error("index needs a name: `name = \"...\"`"))?;
    Ok(IndexDecl {
        name,
        kind,
        projection,
        span,
    })
}

/// DynamoDB index names: 3 to 255 characters of `[a-zA-Z0-9_.-]`.
fn check_index_name(cx: &Ctxt, lit: &LitStr) {
    let value = lit.value();
    let valid_chars = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !(3..=255).contains(&value.len()) || !valid_chars {
        cx.error_spanned_by(
            lit,
            "DynamoDB index names are 3 to 255 characters of a-z, A-Z, 0-9, '_', '-' and '.'",
        );
    }
}

fn parse_field_role(meta: &ParseNestedMeta, field: &mut Field) -> syn::Result<()> {
    let span = meta.path.span();
    let name = path_name(&meta.path);
    let role = match name.as_str() {
        "partition_key" | "hash_key" => Role::PartitionKey(span),
        "sort_key" | "range_key" => Role::SortKey(span),
        "ttl" => Role::Ttl(span),
        "version" => Role::Version(span),
        "index_key" => {
            let mut index: Option<LitStr> = None;
            let mut part: Option<KeyPart> = None;
            meta.parse_nested_meta(|inner| {
                if inner.path.is_ident("index") {
                    index = Some(inner.value()?.parse()?);
                } else if inner.path.is_ident("partition") || inner.path.is_ident("hash") {
                    part = Some(KeyPart::Partition);
                } else if inner.path.is_ident("sort") || inner.path.is_ident("range") {
                    part = Some(KeyPart::Sort);
                } else {
                    return Err(inner.error(format!(
                        "unknown index_key option `{}`; expected index = \"...\", partition or sort",
                        path_name(&inner.path)
                    )));
                }
                Ok(())
            })?;
            let index = index.ok_or_else(|| meta.error("index_key needs `index = \"IndexName\"`"))?;
            let part = part.ok_or_else(|| meta.error("index_key needs `partition` or `sort`"))?;
            Role::IndexKey { index, part, span }
        }
        _ => {
            return Err(meta.error(format!(
                "unknown dynamite option `{name}`; expected one of: partition_key, sort_key, index_key, ttl, version"
            )))
        }
    };
    field.roles.push(role);
    Ok(())
}

fn parse_field_serde(cx: &Ctxt, meta: &ParseNestedMeta, field: &mut Field) -> syn::Result<()> {
    let name = path_name(&meta.path);
    match name.as_str() {
        "rename" => {
            if meta.input.peek(syn::Token![=]) {
                let lit = rename_value(meta)?;
                field.attr_name = lit.value();
                field.name_span = lit.span();
            } else {
                // rename(serialize = "a", deserialize = "b")
                let mut ser: Option<LitStr> = None;
                let mut de: Option<LitStr> = None;
                meta.parse_nested_meta(|inner| {
                    if inner.path.is_ident("serialize") {
                        ser = Some(inner.value()?.parse()?);
                    } else if inner.path.is_ident("deserialize") {
                        de = Some(inner.value()?.parse()?);
                    } else {
                        return Err(inner.error("expected serialize or deserialize"));
                    }
                    Ok(())
                })?;
                match (ser, de) {
                    (Some(s), Some(d)) if s.value() != d.value() => cx.error_spanned_by(
                        &meta.path,
                        "#[derive(Entity)] needs one attribute name: serialize and deserialize names differ",
                    ),
                    (Some(s), _) | (None, Some(s)) => {
                        field.attr_name = s.value();
                        field.name_span = s.span();
                    }
                    (None, None) => {}
                }
            }
        }
        "alias" => field.aliases.push(rename_value(meta)?),
        "default" => {
            if meta.input.peek(syn::Token![=]) {
                let lit: LitStr = meta.value()?.parse()?;
                field.default = FieldDefault::Path(lit.parse()?);
            } else {
                field.default = FieldDefault::Default;
            }
        }
        "skip" => field.skip = true,
        "skip_serializing_if" => {
            let lit: LitStr = meta.value()?.parse()?;
            field.skip_serializing_if = Some(lit.parse()?);
        }
        "bound" | "borrow" | "getter" => skip_value(meta)?,
        _ => {
            skip_value(meta)?;
            cx.error_spanned_by(
                &meta.path,
                format!("#[derive(Entity)] cannot honour #[serde({name})] on a field: the item it writes would not match the entity's schema"),
            );
        }
    }
    Ok(())
}

fn rename_value(meta: &ParseNestedMeta) -> syn::Result<LitStr> {
    meta.value()?.parse()
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

fn path_name(path: &syn::Path) -> String {
    path.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

use syn::ext::IdentExt as _;
use syn::spanned::Spanned as _;
