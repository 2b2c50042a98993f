//! `#[serde(rename_all = "...")]` rules, applied to field names exactly as serde applies them.

use self::RenameRule::*;

#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) enum RenameRule {
    None,
    LowerCase,
    UpperCase,
    PascalCase,
    CamelCase,
    SnakeCase,
    ScreamingSnakeCase,
    KebabCase,
    ScreamingKebabCase,
}

impl RenameRule {
    pub(crate) fn from_str(rule: &str) -> Option<Self> {
        Some(match rule {
            "lowercase" => LowerCase,
            "UPPERCASE" => UpperCase,
            "PascalCase" => PascalCase,
            "camelCase" => CamelCase,
            "snake_case" => SnakeCase,
            "SCREAMING_SNAKE_CASE" => ScreamingSnakeCase,
            "kebab-case" => KebabCase,
            "SCREAMING-KEBAB-CASE" => ScreamingKebabCase,
            _ => return Option::None,
        })
    }

    /// Applies the rule to a (snake_case) Rust field name.
    pub(crate) fn apply_to_field(self, field: &str) -> String {
        match self {
            None | LowerCase | SnakeCase => field.to_owned(),
            UpperCase | ScreamingSnakeCase => field.to_ascii_uppercase(),
            PascalCase => {
                let mut pascal = String::new();
                let mut capitalize = true;
                for ch in field.chars() {
                    if ch == '_' {
                        capitalize = true;
                    } else if capitalize {
                        pascal.push(ch.to_ascii_uppercase());
                        capitalize = false;
                    } else {
                        pascal.push(ch);
                    }
                }
                pascal
            }
            CamelCase => {
                let pascal = PascalCase.apply_to_field(field);
                let mut chars = pascal.chars();
                match chars.next() {
                    Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
                    Option::None => String::new(),
                }
            }
            KebabCase => field.replace('_', "-"),
            ScreamingKebabCase => ScreamingSnakeCase.apply_to_field(field).replace('_', "-"),
        }
    }
}

impl RenameRule {
    /// Applies the rule to a (PascalCase) Rust variant name, as serde does.
    pub(crate) fn apply_to_variant(self, variant: &str) -> String {
        match self {
            None | PascalCase => variant.to_owned(),
            LowerCase => variant.to_ascii_lowercase(),
            UpperCase => variant.to_ascii_uppercase(),
            CamelCase => {
                let mut chars = variant.chars();
                match chars.next() {
                    Some(first) => first.to_ascii_lowercase().to_string() + chars.as_str(),
                    Option::None => String::new(),
                }
            }
            SnakeCase => {
                let mut snake = String::new();
                for (i, ch) in variant.char_indices() {
                    if i > 0 && ch.is_uppercase() {
                        snake.push('_');
                    }
                    snake.push(ch.to_ascii_lowercase());
                }
                snake
            }
            ScreamingSnakeCase => SnakeCase.apply_to_variant(variant).to_ascii_uppercase(),
            KebabCase => SnakeCase.apply_to_variant(variant).replace('_', "-"),
            ScreamingKebabCase => ScreamingSnakeCase
                .apply_to_variant(variant)
                .replace('_', "-"),
        }
    }
}

/// `StatusIndex` / `status-index` / `by_status` -> `STATUS_INDEX` / `STATUS_INDEX` / `BY_STATUS`.
pub(crate) fn screaming_snake(name: &str) -> String {
    let mut out = String::new();
    let mut prev_lower_or_digit = false;
    for ch in name.chars() {
        if ch.is_ascii_alphanumeric() {
            if ch.is_ascii_uppercase() && prev_lower_or_digit {
                out.push('_');
            }
            prev_lower_or_digit = ch.is_ascii_lowercase() || ch.is_ascii_digit();
            out.push(ch.to_ascii_uppercase());
        } else {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            prev_lower_or_digit = false;
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The name of a field's attribute handle constant: `created_at` / `r#type` -> `CREATED_AT` /
/// `TYPE`.
pub(crate) fn field_handle_name(field: &syn::Ident) -> String {
    field
        .to_string()
        .trim_start_matches("r#")
        .to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_rules_match_serde() {
        assert_eq!(CamelCase.apply_to_field("created_at"), "createdAt");
        assert_eq!(PascalCase.apply_to_field("created_at"), "CreatedAt");
        assert_eq!(
            ScreamingKebabCase.apply_to_field("created_at"),
            "CREATED-AT"
        );
        assert_eq!(KebabCase.apply_to_field("created_at"), "created-at");
        assert_eq!(UpperCase.apply_to_field("id"), "ID");
    }

    #[test]
    fn variant_rules_match_serde() {
        let all = [
            (LowerCase, "outofstock"),
            (UpperCase, "OUTOFSTOCK"),
            (PascalCase, "OutOfStock"),
            (CamelCase, "outOfStock"),
            (SnakeCase, "out_of_stock"),
            (ScreamingSnakeCase, "OUT_OF_STOCK"),
            (KebabCase, "out-of-stock"),
            (ScreamingKebabCase, "OUT-OF-STOCK"),
        ];
        for (rule, expected) in all {
            assert_eq!(rule.apply_to_variant("OutOfStock"), expected, "{rule:?}");
        }
    }

    #[test]
    fn field_handle_names() {
        let ident = |text: &str| syn::parse_str::<syn::Ident>(text).expect("an identifier");
        assert_eq!(field_handle_name(&ident("created_at")), "CREATED_AT");
        assert_eq!(field_handle_name(&ident("r#type")), "TYPE");
        assert_eq!(field_handle_name(&ident("id2")), "ID2");
    }

    #[test]
    fn rule_names() {
        assert_eq!(RenameRule::from_str("camelCase"), Some(CamelCase));
        assert_eq!(
            RenameRule::from_str("SCREAMING-KEBAB-CASE"),
            Some(ScreamingKebabCase)
        );
        assert_eq!(RenameRule::from_str("camelcase"), Option::None);
        assert_eq!(RenameRule::from_str(""), Option::None);
    }

    #[test]
    fn every_rule_on_one_name() {
        let applied: Vec<String> = [
            None,
            LowerCase,
            UpperCase,
            PascalCase,
            CamelCase,
            SnakeCase,
            ScreamingSnakeCase,
            KebabCase,
            ScreamingKebabCase,
        ]
        .iter()
        .map(|rule| rule.apply_to_field("user_id_2"))
        .collect();
        assert_eq!(
            applied,
            [
                "user_id_2",
                "user_id_2",
                "USER_ID_2",
                "UserId2",
                "userId2",
                "user_id_2",
                "USER_ID_2",
                "user-id-2",
                "USER-ID-2",
            ]
        );
    }

    #[test]
    fn index_const_names() {
        assert_eq!(screaming_snake("StatusIndex"), "STATUS_INDEX");
        assert_eq!(screaming_snake("by-status.v2"), "BY_STATUS_V2");
        assert_eq!(screaming_snake("GSI1"), "GSI1");
        assert_eq!(screaming_snake("1st"), "_1ST");
        assert_eq!(screaming_snake("by_status"), "BY_STATUS");
        assert_eq!(screaming_snake("--x--"), "X");
    }
}
