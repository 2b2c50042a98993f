//! Code generation: the `Entity` impl (schema, item conversion, primary key), the typed key
//! constructor, attribute handles and index handles. One function per generated item.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{DeriveInput, Ident, LitStr};

use crate::ast::{CacheDecl, Container, Field, FieldDefault, IndexKind};
use crate::case::field_handle_name;
use crate::check::{self, Resolved, ResolvedIndex, ResolvedProjection};
use crate::ctxt::Ctxt;

/// Parses, checks, and generates; every error found is returned at once.
pub(crate) fn derive_entity(input: &DeriveInput) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let container = crate::attr::parse(&cx, input);
    let resolved = container.as_ref().and_then(|c| check::check(&cx, c));
    cx.check()?;
    let (Some(cont), Some(resolved)) = (container, resolved) else {
        unreachable!("errors were reported above")
    };
    Ok(generate(&cont, &resolved))
}

/// The `Entity` impl and the inherent impl with the key constructor and handles.
fn generate(cont: &Container, res: &Resolved) -> TokenStream {
    let ident = cont.ident;
    let schema = schema_fn(cont, res);
    let to_item = to_item_fn(cont);
    let from_item = from_item_fn(cont);
    let primary_key = primary_key_fn(cont, res);
    let version = version_fn(cont, res);
    let key = key_constructor(cont, res);
    let attr_handles = attribute_handles(cont);
    let index_handles = index_handles(cont, res);
    quote! {
        #[automatically_derived]
        impl ::dynamite::Entity for #ident {
            #schema
            #to_item
            #from_item
            #primary_key

            #[doc(hidden)]
            fn __clone_for_cache(&self) -> ::core::option::Option<Self> {
                #[allow(unused_imports)]
                use ::dynamite::__private::{CloneNative as _, CloneNone as _};
                (&&::dynamite::__private::Wrap(self)).__dynamite_clone()
            }

            #version
        }

        #[automatically_derived]
        impl #ident {
            #key
            #(#attr_handles)*
            #(#index_handles)*
        }
    }
}

/// `Some(x)` or `None`, as tokens.
fn option(value: Option<TokenStream>) -> TokenStream {
    match value {
        Some(v) => quote!(::core::option::Option::Some(#v)),
        None => quote!(::core::option::Option::None),
    }
}

/// `Entity::schema`: the static `TableSchema`.
fn schema_fn(cont: &Container, res: &Resolved) -> TokenStream {
    let entity_name = cont.ident.to_string();
    let table = &res.table;
    let fields = &cont.fields;
    let pk = key_schema(&fields[res.partition_key], "KeyAttribute");
    let sk = option(res.sort_key.map(|i| key_schema(&fields[i], "KeyAttribute")));
    let indexes = res.indexes.iter().map(|index| index_schema(cont, index));
    let ttl = checked_attribute(cont, res.ttl, quote!(::dynamite::__private::ttl_attribute));
    let timestamp = || quote!(::dynamite::__private::timestamp_attribute);
    let created_at = checked_attribute(cont, res.created_at, timestamp());
    let updated_at = checked_attribute(cont, res.updated_at, timestamp());
    // The version field's type is checked by the generated `Entity::version` (one error, at
    // the field's type, rather than two).
    let version = option(res.version.map(|i| {
        let name = &fields[i].attr_name;
        quote!(#name)
    }));
    let attributes = fields.iter().filter(|f| !f.skip).map(|f| &f.attr_name);
    let fingerprint = fingerprint(cont, res);
    let cache = option(cont.cache.as_ref().map(cache_settings));
    let stream = option(cont.stream.map(|variant| {
        let variant = format_ident!("{}", variant);
        quote!(::dynamite::StreamView::#variant)
    }));
    quote! {
        fn schema() -> &'static ::dynamite::TableSchema {
            static SCHEMA: ::dynamite::TableSchema = ::dynamite::TableSchema {
                entity: #entity_name,
                table: #table,
                partition_key: #pk,
                sort_key: #sk,
                indexes: &[#(#indexes),*],
                ttl: #ttl,
                created_at: #created_at,
                updated_at: #updated_at,
                version: #version,
                attributes: &[#(#attributes),*],
                fingerprint: #fingerprint,
                cache: #cache,
                stream: #stream,
            };
            &SCHEMA
        }
    }
}

/// A `KeySchema` for a key field; `trait_name` bounds the field's type at its own span.
fn key_schema(f: &Field, trait_name: &str) -> TokenStream {
    let name = &f.attr_name;
    let ty = f.ty;
    let trait_ident = format_ident!("{}", trait_name);
    quote_spanned! {ty.span()=>
        ::dynamite::KeySchema {
            name: #name,
            scalar: <#ty as ::dynamite::#trait_ident>::SCALAR,
        }
    }
}

/// An `IndexSchema`.
fn index_schema(cont: &Container, index: &ResolvedIndex) -> TokenStream {
    let fields = &cont.fields;
    let name = &index.name;
    let kind = match index.kind {
        IndexKind::Global => quote!(::dynamite::IndexKind::Global),
        IndexKind::Local => quote!(::dynamite::IndexKind::Local),
    };
    let pk = key_schema(&fields[index.partition_key], "IndexKeyAttribute");
    let sk = option(
        index
            .sort_key
            .map(|i| key_schema(&fields[i], "IndexKeyAttribute")),
    );
    let projection = match &index.projection {
        ResolvedProjection::All => quote!(::dynamite::Projection::All),
        ResolvedProjection::KeysOnly => quote!(::dynamite::Projection::KeysOnly),
        ResolvedProjection::Include(names) => {
            quote!(::dynamite::Projection::Include(&[#(#names),*]))
        }
    };
    quote! {
        ::dynamite::IndexSchema {
            name: #name,
            kind: #kind,
            partition_key: #pk,
            sort_key: #sk,
            projection: #projection,
        }
    }
}

/// The name of the attribute of `field` (TTL, timestamps), passed through `check`, a const fn
/// whose trait bound checks the field's type at the type's own span.
fn checked_attribute(cont: &Container, field: Option<usize>, check: TokenStream) -> TokenStream {
    let Some(i) = field else {
        return option(None);
    };
    let f = &cont.fields[i];
    let name = &f.attr_name;
    let ty = f.ty;
    quote_spanned! {ty.span()=>
        ::core::option::Option::Some(#check::<#ty>(#name))
    }
}

/// `CacheSettings` from `#[dynamite(cache(...))]`.
fn cache_settings(c: &CacheDecl) -> TokenStream {
    let enabled = !c.off;
    let queries = c.queries;
    let ttl = option(c.ttl_ms.map(|ms| quote!(#ms)));
    let negative = option(c.negative_ttl_ms.map(|ms| quote!(#ms)));
    quote! {
        ::dynamite::CacheSettings {
            enabled: #enabled,
            ttl_ms: #ttl,
            negative_ttl_ms: #negative,
            queries: #queries,
        }
    }
}

/// `Entity::to_item`: every stored field, encoded natively or through serde.
fn to_item_fn(cont: &Container) -> TokenStream {
    let entity_name = cont.ident.to_string();
    let stored = cont.fields.iter().filter(|f| !f.skip);
    let field_count = stored.clone().count();
    let encode_fields = stored.map(|f| encode_field(&entity_name, f));
    quote! {
        fn to_item(&self) -> ::dynamite::Result<::dynamite::Item> {
            #[allow(unused_imports)]
            use ::dynamite::__private::{EncodeNative as _, EncodeSerde as _};
            let mut item = ::dynamite::Item::with_capacity(#field_count);
            #(#encode_fields)*
            ::core::result::Result::Ok(item)
        }
    }
}

/// Inserts one field's attribute, unless it encodes to nothing or `skip_serializing_if` says so.
fn encode_field(entity: &str, f: &Field) -> TokenStream {
    let fi = f.ident;
    let name = &f.attr_name;
    let encode = quote! {
        (&&::dynamite::__private::Wrap(&self.#fi)).__dynamite_insert(&mut item, #entity, #name)?;
    };
    match &f.skip_serializing_if {
        Some(path) => quote! {
            if !#path(&self.#fi) {
                #encode
            }
        },
        None => encode,
    }
}

/// `Entity::from_item`: every field decoded (skipped ones defaulted), after the
/// `deny_unknown_fields` check if asked for.
fn from_item_fn(cont: &Container) -> TokenStream {
    let entity_name = cont.ident.to_string();
    let unknown_check = cont
        .deny_unknown_fields
        .then(|| deny_unknown(&entity_name, &cont.fields));
    let field_idents = cont.fields.iter().map(|f| f.ident);
    let decode_fields = cont.fields.iter().map(|f| decode_field(&entity_name, f));
    quote! {
        fn from_item(mut item: ::dynamite::Item) -> ::dynamite::Result<Self> {
            #[allow(unused_imports)]
            use ::dynamite::__private::{DecodeNative as _, DecodeSerde as _};
            #unknown_check
            ::core::result::Result::Ok(Self {
                #(#field_idents: #decode_fields,)*
            })
        }
    }
}

/// `#[serde(deny_unknown_fields)]`: an item attribute that no field reads (by name or alias) is
/// an error.
fn deny_unknown(entity: &str, fields: &[Field]) -> TokenStream {
    let known: Vec<String> = fields
        .iter()
        .filter(|f| !f.skip)
        .flat_map(|f| {
            std::iter::once(f.attr_name.clone()).chain(f.aliases.iter().map(LitStr::value))
        })
        .collect();
    quote! {
        ::dynamite::__private::deny_unknown(#entity, &item, &[#(#known),*])?;
    }
}

/// One field's value: its attribute (or the first alias present) decoded, else its default.
fn decode_field(entity: &str, f: &Field) -> TokenStream {
    if f.skip {
        return quote!(::core::default::Default::default());
    }
    let ty = f.ty;
    let name = &f.attr_name;
    let aliases: Vec<String> = f.aliases.iter().map(LitStr::value).collect();
    if aliases.is_empty() && matches!(f.default, FieldDefault::None) {
        // The common case: one call into code shared by every field of this type.
        return quote! {
            (&&::dynamite::__private::Decode::<#ty>::new())
                .__dynamite_field(&mut item, #entity, #name)?
        };
    }
    let missing = match &f.default {
        FieldDefault::Default => quote!(::core::default::Default::default()),
        FieldDefault::Path(path) => quote!(#path()),
        FieldDefault::None => quote! {
            ::dynamite::__private::absent_field(
                #entity,
                #name,
                (&&::dynamite::__private::Decode::<#ty>::new()).__dynamite_decode_missing(),
            )?
        },
    };
    quote! {
        match item.remove(#name) #(.or_else(|| item.remove(#aliases)))* {
            ::core::option::Option::Some(value) => ::dynamite::__private::decoded_field(
                #entity,
                #name,
                (&&::dynamite::__private::Decode::<#ty>::new()).__dynamite_decode(value),
            )?,
            ::core::option::Option::None => #missing,
        }
    }
}

/// `Entity::primary_key`: the key of `self`.
fn primary_key_fn(cont: &Container, res: &Resolved) -> TokenStream {
    let key_value = |i: usize| {
        let f = &cont.fields[i];
        let fi = f.ident;
        let ty = f.ty;
        quote!(<#ty as ::dynamite::KeyAttribute>::to_key_value(&self.#fi))
    };
    let pk_value = key_value(res.partition_key);
    let sk_value = option(res.sort_key.map(key_value));
    quote! {
        fn primary_key(&self) -> ::dynamite::Key<Self> {
            ::dynamite::Key::from_values(#pk_value, #sk_value)
        }
    }
}

/// `Entity::version`, when a field is the version attribute.
fn version_fn(cont: &Container, res: &Resolved) -> Option<TokenStream> {
    let f = &cont.fields[res.version?];
    let fi = f.ident;
    let ty = f.ty;
    Some(quote! {
        fn version(&self) -> ::core::option::Option<u64> {
            <#ty as ::dynamite::VersionAttribute>::current(&self.#fi)
        }
    })
}

/// The typed key constructor `Entity::key(pk[, sk])`.
fn key_constructor(cont: &Container, res: &Resolved) -> TokenStream {
    let fields = &cont.fields;
    let pk = &fields[res.partition_key];
    let (pk_param, pk_value) = key_param(pk);
    let sk = res.sort_key.map(|i| &fields[i]);
    let sk_param = sk.map(|f| {
        let (param, _) = key_param(f);
        quote!(, #param)
    });
    let sk_expr = option(sk.map(|f| key_param(f).1));
    let key_doc = key_doc(cont, pk, sk);
    quote! {
        #[doc = #key_doc]
        pub fn key(#pk_param #sk_param) -> ::dynamite::Key<Self> {
            ::dynamite::Key::from_values(#pk_value, #sk_expr)
        }
    }
}

/// A key constructor parameter named after its field, and the key value made of it: `String`
/// keys take `impl Into<String>` (moved into the value, not copied), others their own type.
fn key_param(f: &Field) -> (TokenStream, TokenStream) {
    let param = format_ident!("{}", f.ident.to_string().trim_start_matches("r#"));
    let ty = f.ty;
    if is_string(ty) {
        (
            quote!(#param: impl ::core::convert::Into<::std::string::String>),
            quote!(::dynamite::aws_sdk_dynamodb::types::AttributeValue::S(
                ::core::convert::Into::<::std::string::String>::into(#param)
            )),
        )
    } else {
        (
            quote!(#param: #ty),
            quote!(<#ty as ::dynamite::KeyAttribute>::to_key_value(&#param)),
        )
    }
}

/// The key constructor's doc: which attributes make up the key.
fn key_doc(cont: &Container, pk: &Field, sk: Option<&Field>) -> String {
    let entity_name = cont.ident;
    match sk {
        Some(sk) => format!(
            "The primary key of a `{entity_name}`: partition key `{}`, sort key `{}`.",
            pk.attr_name, sk.attr_name
        ),
        None => format!(
            "The primary key of a `{entity_name}`: partition key `{}`.",
            pk.attr_name
        ),
    }
}

/// One `Attr` constant per stored field, named after the field in SCREAMING_SNAKE_CASE.
fn attribute_handles<'a>(cont: &'a Container) -> impl Iterator<Item = TokenStream> + 'a {
    let ident = cont.ident;
    cont.fields.iter().filter(|f| !f.skip).map(move |f| {
        let const_ident = format_ident!("{}", field_handle_name(f.ident));
        let ty = f.ty;
        let name = &f.attr_name;
        let doc =
            format!("Typed handle of attribute `{name}`, for conditions, updates and projections.");
        quote! {
            #[doc = #doc]
            pub const #const_ident: ::dynamite::Attr<#ident, #ty> = ::dynamite::Attr::new(#name);
        }
    })
}

/// One `IndexHandle` constant per index.
fn index_handles<'a>(
    cont: &'a Container,
    res: &'a Resolved,
) -> impl Iterator<Item = TokenStream> + 'a {
    let ident: &Ident = cont.ident;
    res.indexes.iter().map(move |index| {
        let const_ident = format_ident!("{}", index.const_name);
        let name = &index.name;
        let doc = format!("Typed handle of index `{name}`.");
        quote! {
            #[doc = #doc]
            pub const #const_ident: ::dynamite::IndexHandle<#ident> = ::dynamite::IndexHandle::new(#name);
        }
    })
}

/// `String` as written (not an alias): the key constructor then takes `impl Into<String>`.
fn is_string(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == "String" && s.arguments.is_empty()))
}

/// A stable fingerprint of what an item of this entity looks like: table, keys, and every
/// field's attribute name, Rust type and roles (FNV-1a). Cached values carry it, so entries
/// written by another version of the entity are never read as this one.
fn fingerprint(cont: &Container, res: &Resolved) -> u64 {
    let mut text = format!(
        "{}|{}|{}|{:?}",
        cont.ident,
        res.table.value(),
        res.partition_key,
        res.sort_key
    );
    for f in &cont.fields {
        let ty = f.ty;
        text.push_str(&format!(
            "|{}:{}:{}:{}",
            f.attr_name,
            quote!(#ty),
            f.skip,
            f.roles.len()
        ));
    }
    fnv1a(text.as_bytes())
}

/// 64-bit FNV-1a.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_known_values() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn string_types() {
        let ty = |text: &str| syn::parse_str::<syn::Type>(text).expect("a type");
        assert!(is_string(&ty("String")));
        assert!(is_string(&ty("std::string::String")));
        assert!(!is_string(&ty("&str")));
        assert!(!is_string(&ty("Option<String>")));
    }
}
