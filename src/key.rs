//! The one canonical encoding of keys as text, for every place where a key becomes a string:
//! batch de-duplication and supersede, transaction duplicate checks, the alignment of batch
//! answers with their keys, and cache scopes and entries.
//!
//! It is injective: every component is length-prefixed and typed, so no value can imitate a
//! separator, and no two distinct keys encode alike. Numbers are normalised by value, as
//! DynamoDB compares them: `1`, `1.0`, `1e0` and `10E-1` are one key. No I/O.

use aws_sdk_dynamodb::types::AttributeValue;

use crate::Item;

/// The canonical text of a key given as an item (attribute name → value), whatever the order
/// of its attributes: `name` and value of each attribute, in name order.
pub(crate) fn encode_item_key(key: &Item) -> String {
    let mut names: Vec<&String> = key.keys().collect();
    names.sort_unstable();
    let mut out = String::with_capacity(16 * names.len() + 16);
    for name in names {
        push_component(&mut out, 'a', name);
        push_value(&mut out, &key[name]);
    }
    out
}

/// The canonical text of a primary key given as its values in key-schema order (partition,
/// then sort).
pub(crate) fn encode_key_values(
    partition: &AttributeValue,
    sort: Option<&AttributeValue>,
) -> String {
    let mut out = String::with_capacity(32);
    write_key_values(&mut out, partition, sort);
    out
}

/// The canonical texts ([`write_key_values`]) of many keys in one buffer: no allocation per key.
#[derive(Debug, Default)]
pub(crate) struct KeyTexts {
    text: String,
    ends: Vec<usize>,
}

impl KeyTexts {
    /// Room for `keys` keys.
    pub(crate) fn with_capacity(keys: usize) -> Self {
        KeyTexts {
            text: String::with_capacity(keys * 32),
            ends: Vec::with_capacity(keys),
        }
    }

    /// The texts of the keys of `items`, whose key attributes are `names` (partition, then
    /// sort); an item without them gets an empty text, which no key has.
    pub(crate) fn of_items(items: &[Item], names: &[&str]) -> Self {
        let mut texts = Self::with_capacity(items.len());
        for item in items {
            texts.push_item(item, names);
        }
        texts
    }

    /// Adds a key's text.
    pub(crate) fn push(&mut self, partition: &AttributeValue, sort: Option<&AttributeValue>) {
        write_key_values(&mut self.text, partition, sort);
        self.ends.push(self.text.len());
    }

    /// Adds a key's text, already encoded.
    pub(crate) fn push_text(&mut self, text: &str) {
        self.text.push_str(text);
        self.ends.push(self.text.len());
    }

    /// Adds the text of `item`'s key (see [`of_items`](Self::of_items)).
    pub(crate) fn push_item(&mut self, item: &Item, names: &[&str]) {
        let start = self.text.len();
        if !item_key_text(&mut self.text, item, names) {
            self.text.truncate(start);
        }
        self.ends.push(self.text.len());
    }

    /// The text of key `i`.
    pub(crate) fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }

    /// Keys held.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }
}

/// Appends the text of `item`'s key, whose attributes are `names` (partition, then sort);
/// `false` when one is missing.
pub(crate) fn item_key_text(out: &mut String, item: &Item, names: &[&str]) -> bool {
    let mut values = names.iter().map(|name| item.get(*name));
    let (Some(Some(partition)), sort) = (values.next(), values.next()) else {
        return false;
    };
    match sort {
        Some(None) => false,
        sort => {
            write_key_values(out, partition, sort.flatten());
            true
        }
    }
}

/// Where an encoding is written: a `String`, or (for cache lookups) a hasher or a comparison
/// against stored text, so that a key can be hashed and matched without being rendered.
pub(crate) trait KeySink {
    /// Appends `text`.
    fn push_str(&mut self, text: &str);

    /// Appends ASCII bytes (digits, separators).
    fn push_ascii(&mut self, ascii: &[u8]) {
        self.push_str(std::str::from_utf8(ascii).expect("ascii"));
    }
}

impl KeySink for String {
    fn push_str(&mut self, text: &str) {
        String::push_str(self, text);
    }
}

/// Writes the canonical text of a primary key given as its values (what
/// [`encode_key_values`] returns) into `out`.
pub(crate) fn write_key_values<S: KeySink + ?Sized>(
    out: &mut S,
    partition: &AttributeValue,
    sort: Option<&AttributeValue>,
) {
    push_value(out, partition);
    if let Some(sort) = sort {
        push_value(out, sort);
    }
}

/// `tag`, the byte length of `text`, `:`, then `text`: a component no content can imitate.
fn push_component<S: KeySink + ?Sized>(out: &mut S, tag: char, text: &str) {
    push_header(out, tag, text.len());
    out.push_str(text);
}

/// `tag`, `len` and `:`: the start of a component whose `len` bytes follow.
fn push_header<S: KeySink + ?Sized>(out: &mut S, tag: char, len: usize) {
    out.push_str(tag.encode_utf8(&mut [0; 4]));
    out.push_str(itoa::Buffer::new().format(len));
    out.push_ascii(b":");
}

fn push_value<S: KeySink + ?Sized>(out: &mut S, value: &AttributeValue) {
    match value {
        AttributeValue::S(s) => push_component(out, 's', s),
        AttributeValue::N(n) => match normalize_number(n) {
            Some(canonical) => push_component(out, 'n', &canonical),
            // Not a number DynamoDB would accept (validation refuses these before sending):
            // kept apart from every valid number.
            None => push_component(out, 'x', n),
        },
        AttributeValue::B(b) => {
            // Lower-case hex, written in pieces (no buffer of the whole value).
            let bytes = b.as_ref();
            push_header(out, 'b', bytes.len() * 2);
            let mut chunk = [0u8; 64];
            for piece in bytes.chunks(chunk.len() / 2) {
                for (i, byte) in piece.iter().enumerate() {
                    chunk[2 * i] = HEX[usize::from(byte >> 4)];
                    chunk[2 * i + 1] = HEX[usize::from(byte & 0xf)];
                }
                out.push_ascii(&chunk[..piece.len() * 2]);
            }
        }
        // Key attributes are S, N or B; anything else gets an unambiguous, typed rendering.
        other => push_component(out, 'o', &format!("{other:?}")),
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Reads back a key written by [`encode_item_key`]: each attribute's name and value, numbers
/// as plain decimals of the same value (see [`plain_number`]; a number component that is not
/// canonical text is kept as written) and binary values as bytes. An error says what is
/// malformed. Whether `text` is the canonical
/// encoding is for the caller to check (`encode_item_key(&decoded) == text`): this reads any
/// well-formed text, so a caller can first say what is wrong with the values themselves.
pub(crate) fn decode_item_key(text: &str) -> Result<Item, String> {
    let mut key = Item::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (tag, name, after) = next_component(rest)?;
        if tag != 'a' {
            return Err(format!(
                "expected an attribute name, found a `{tag}` component"
            ));
        }
        if after.is_empty() {
            return Err(format!("attribute `{name}` has no value"));
        }
        let (tag, value, after) = next_component(after)?;
        let value = decode_value(tag, value).map_err(|e| format!("attribute `{name}`: {e}"))?;
        if key.insert(name.to_owned(), value).is_some() {
            return Err(format!("attribute `{name}` appears twice"));
        }
        rest = after;
    }
    Ok(key)
}

/// The value of a `tag` component with `content`.
fn decode_value(tag: char, content: &str) -> Result<AttributeValue, String> {
    Ok(match tag {
        's' => AttributeValue::S(content.to_owned()),
        'n' => AttributeValue::N(plain_number(content).unwrap_or_else(|| content.to_owned())),
        // A number that did not normalise: kept as written, for the caller to refuse with a
        // reason.
        'x' => AttributeValue::N(content.to_owned()),
        'b' => AttributeValue::B(aws_smithy_types::Blob::new(
            decode_hex(content).ok_or("bad binary value")?,
        )),
        other => return Err(format!("a value of unknown type `{other}`")),
    })
}

/// Reads back a key written by [`write_key_values`]: the partition key value and the sort key
/// value, if any (numbers as plain decimals of the same value).
pub(crate) fn decode_key_values(
    text: &str,
) -> Result<(AttributeValue, Option<AttributeValue>), String> {
    let (tag, content, rest) = next_component(text)?;
    let partition = decode_value(tag, content)?;
    if rest.is_empty() {
        return Ok((partition, None));
    }
    let (tag, content, rest) = next_component(rest)?;
    if !rest.is_empty() {
        return Err("more than two key values".to_owned());
    }
    Ok((partition, Some(decode_value(tag, content)?)))
}

/// The first component of `text`: its tag, its content, and the text after it.
fn next_component(text: &str) -> Result<(char, &str, &str), String> {
    let mut chars = text.chars();
    let tag = chars.next().ok_or("truncated")?;
    let rest = chars.as_str();
    let colon = rest
        .find(':')
        .filter(|&i| (1..=10).contains(&i))
        .ok_or("bad component length")?;
    let digits = &rest[..colon];
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("bad component length".to_owned());
    }
    let len: usize = digits.parse().map_err(|_| "bad component length")?;
    let body = &rest[colon + 1..];
    let content = body.get(..len).ok_or("truncated")?;
    Ok((tag, content, &body[len..]))
}

/// Lower- or upper-case hex to bytes (the canonical check refuses upper case later).
fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    hex.as_bytes()
        .chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// A canonical number (from [`normalize_number`]) as plain decimal text, the way DynamoDB
/// writes numbers (`15e0` → `1.5`, `1e2` → `100`, `-25e-2` → `-0.25`). `None` when `canonical`
/// is not canonical text or its exponent is beyond any DynamoDB number (|exponent| > 130), so
/// the text stays short.
pub(crate) fn plain_number(canonical: &str) -> Option<String> {
    if canonical == "0" {
        return Some("0".to_owned());
    }
    let (negative, unsigned) = match canonical.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, canonical),
    };
    let (digits, power) = unsigned.split_once('e')?;
    let power: i64 = power.parse().ok()?;
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || digits.starts_with('0')
        || digits.ends_with('0')
        || !(-130..=130).contains(&power)
    {
        return None;
    }
    let count = i64::try_from(digits.len()).ok()?;
    let mut out = String::with_capacity(digits.len() + 136);
    if negative {
        out.push('-');
    }
    if power < 0 {
        // 0.000ddd: -power - 1 zeros after the point.
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', usize::try_from(-power - 1).ok()?));
        out.push_str(digits);
    } else if power + 1 >= count {
        // An integer: the digits, then zeros.
        out.push_str(digits);
        out.extend(std::iter::repeat_n(
            '0',
            usize::try_from(power + 1 - count).ok()?,
        ));
    } else {
        let point = usize::try_from(power + 1).ok()?;
        out.push_str(&digits[..point]);
        out.push('.');
        out.push_str(&digits[point..]);
    }
    Some(out)
}

/// DynamoDB's order of two sort-key values of one type: strings and binaries by their bytes
/// (UTF-8 for strings), numbers by value. Values of different types (which one key attribute
/// never holds) order by type: B, N, S.
pub(crate) fn compare_key_values(a: &AttributeValue, b: &AttributeValue) -> std::cmp::Ordering {
    match (a, b) {
        (AttributeValue::S(a), AttributeValue::S(b)) => a.as_bytes().cmp(b.as_bytes()),
        (AttributeValue::B(a), AttributeValue::B(b)) => a.as_ref().cmp(b.as_ref()),
        (AttributeValue::N(a), AttributeValue::N(b)) => compare_numbers(a, b),
        _ => type_rank(a).cmp(&type_rank(b)),
    }
}

fn type_rank(value: &AttributeValue) -> u8 {
    match value {
        AttributeValue::B(_) => 0,
        AttributeValue::N(_) => 1,
        AttributeValue::S(_) => 2,
        _ => 3,
    }
}

/// Two numbers' texts by value (text that is not a number orders after every number).
pub(crate) fn compare_numbers(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    /// Sign (-1, 0, 1), exponent of the first digit, significant digits.
    fn parts(text: &str) -> Option<(i8, i64, String)> {
        let canonical = normalize_number(text)?;
        if canonical == "0" {
            return Some((0, 0, String::new()));
        }
        let (sign, unsigned) = match canonical.strip_prefix('-') {
            Some(rest) => (-1, rest),
            None => (1, canonical.as_str()),
        };
        let (digits, power) = unsigned.split_once('e')?;
        Some((sign, power.parse().ok()?, digits.to_owned()))
    }
    match (parts(a), parts(b)) {
        (Some((sa, pa, da)), Some((sb, pb, db))) => {
            if sa != sb {
                return sa.cmp(&sb);
            }
            // Same sign: a larger exponent, then larger digits, mean a larger magnitude
            // (canonical digits have no trailing zeros, so they compare as text).
            let magnitude = pa.cmp(&pb).then_with(|| da.cmp(&db));
            if sa < 0 {
                magnitude.reverse()
            } else {
                magnitude
            }
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// A number's canonical text: `0`, or an optional `-`, the significant digits without leading
/// or trailing zeros, `e`, and the exponent of the first digit (`1.5` → `15e0`, `100` →
/// `1e2`, `-0.025` → `-25e-2`). `None` when `text` is not a decimal number.
pub(crate) fn normalize_number(text: &str) -> Option<String> {
    let text = text.trim();
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], unsigned[i + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (int, frac) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits: String = int.chars().chain(frac.chars()).collect();
    let Some(first) = digits.find(|c| c != '0') else {
        return Some("0".to_owned());
    };
    let significant = digits[first..].trim_end_matches('0');
    // The first significant digit's power of ten: its position relative to the decimal point.
    let point = i64::try_from(int.len()).ok()?;
    let position = i64::try_from(first).ok()?;
    let power = point - position - 1 + exponent;
    let mut out = String::with_capacity(significant.len() + 8);
    if negative {
        out.push('-');
    }
    out.push_str(significant);
    out.push('e');
    out.push_str(itoa::Buffer::new().format(power));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(text: &str) -> String {
        normalize_number(text).unwrap_or_else(|| panic!("{text} is a number"))
    }

    #[test]
    fn numbers_compare_by_value() {
        use std::cmp::Ordering::*;
        for (a, b, want) in [
            ("1", "2", Less),
            ("1.5", "1.51", Less),
            ("2", "15", Less),
            ("10", "9.99", Greater),
            ("-1", "1", Less),
            ("-10", "-9", Less),
            ("-0.5", "0", Less),
            ("0", "0.0", Equal),
            ("1e2", "100", Equal),
            ("1E-130", "0", Greater),
            ("-2.5", "-2.45", Less),
        ] {
            assert_eq!(compare_numbers(a, b), want, "{a} vs {b}");
            assert_eq!(compare_numbers(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    proptest! {
        #[test]
        fn numbers_compare_as_integers_do(a in -1_000_000i64..1_000_000, b in -1_000_000i64..1_000_000) {
            prop_assert_eq!(compare_numbers(&a.to_string(), &b.to_string()), a.cmp(&b));
        }

        #[test]
        fn decimals_compare_as_scaled_integers_do(a in -1_000_000i64..1_000_000, b in -1_000_000i64..1_000_000) {
            let text = |n: i64| format!("{}{}.{:03}", if n < 0 { "-" } else { "" }, n.abs() / 1000, n.abs() % 1000);
            prop_assert_eq!(compare_numbers(&text(a), &text(b)), a.cmp(&b));
        }

        #[test]
        fn strings_compare_by_utf8_bytes(a in ".{0,8}", b in ".{0,8}") {
            let (x, y) = (AttributeValue::S(a.clone()), AttributeValue::S(b.clone()));
            prop_assert_eq!(compare_key_values(&x, &y), a.as_bytes().cmp(b.as_bytes()));
        }
    }

    #[test]
    fn numbers_equal_by_value_normalise_alike() {
        for same in [
            &["1", "1.0", "1e0", "10E-1", "+1", "001.000", "0.1e1"][..],
            &["0", "0.0", "-0", "0e5", "000"],
            &["-25e-3", "-0.025", "-2.5E-2"],
            &["100", "1e2", "1E+2", "100.00"],
            &[
                "123456789012345678901234567890123456.78",
                "1.2345678901234567890123456789012345678e35",
            ],
        ] {
            let first = n(same[0]);
            for other in &same[1..] {
                assert_eq!(n(other), first, "{other} vs {}", same[0]);
            }
        }
        assert_eq!(n("1.5"), "15e0");
        assert_eq!(n("100"), "1e2");
        assert_eq!(n("-0.025"), "-25e-2");
        assert_ne!(n("1"), n("-1"));
        assert_ne!(n("1"), n("10"));
        assert_ne!(n("0.1"), n("1"));
        for bad in ["", "-", ".", "e5", "1e", "1.2.3", "abc", "1e5x", "--1"] {
            assert_eq!(normalize_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn separators_inside_values_cannot_imitate_other_keys() {
        let s = |v: &str| AttributeValue::S(v.to_owned());
        // The collisions of the old encodings: a separator or `=` or NUL inside a value.
        assert_ne!(
            encode_key_values(&s("a\u{1f}Sb"), None),
            encode_key_values(&s("a"), Some(&s("b")))
        );
        let item = |pairs: &[(&str, &str)]| -> Item {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), s(v))).collect()
        };
        assert_ne!(
            encode_item_key(&item(&[("id", "a\u{0}sk=Sb")])),
            encode_item_key(&item(&[("id", "a"), ("sk", "b")]))
        );
        assert_ne!(
            encode_item_key(&item(&[("a=Sb", "c")])),
            encode_item_key(&item(&[("a", "b=c")]))
        );
        // Types are part of the key: the string "1" is not the number 1.
        assert_ne!(
            encode_key_values(&s("1"), None),
            encode_key_values(&AttributeValue::N("1".into()), None)
        );
    }

    #[test]
    fn decoding_reads_back_what_was_encoded() {
        let key: Item = [
            ("id".to_owned(), AttributeValue::S("a:1\u{0}é".into())),
            ("n".to_owned(), AttributeValue::N("1.50".into())),
            (
                "b".to_owned(),
                AttributeValue::B(aws_smithy_types::Blob::new(vec![0, 255, 16])),
            ),
        ]
        .into();
        let text = encode_item_key(&key);
        let back = decode_item_key(&text).unwrap();
        assert_eq!(back["id"], key["id"]);
        assert_eq!(back["b"], key["b"]);
        assert_eq!(back["n"], AttributeValue::N("1.5".into()));
        assert_eq!(encode_item_key(&back), text);
        for bad in [
            "a2:id",
            "s2:ab",
            "a2:ids1:",
            "a2:idz1:x",
            "a2:ids9:x",
            "a2:ids:x",
            "a2:ids-1:x",
            "a2:idb1:x",
            "a2:idb2:zz",
            "a2:ids1:xa2:ids1:y",
        ] {
            assert!(decode_item_key(bad).is_err(), "{bad:?}");
        }
        assert_eq!(decode_item_key("").unwrap(), Item::new());
    }

    #[test]
    fn key_values_read_back_as_written() {
        let values = [
            AttributeValue::S("a|b\u{1}c".into()),
            AttributeValue::S(String::new()),
            AttributeValue::N("1.50".into()),
            AttributeValue::N("-2e3".into()),
            AttributeValue::B(vec![0u8, 255, 16].into()),
        ];
        let mut texts = KeyTexts::default();
        let mut expected = Vec::new();
        for partition in &values {
            for sort in std::iter::once(None).chain(values.iter().map(Some)) {
                texts.push(partition, sort);
                expected.push((partition.clone(), sort.cloned()));
            }
        }
        for (i, (partition, sort)) in expected.iter().enumerate() {
            let (p, s) = decode_key_values(texts.get(i)).unwrap();
            // Numbers come back as plain decimals of the same value.
            assert_eq!(encode_key_values(&p, s.as_ref()), texts.get(i));
            assert_eq!(encode_key_values(partition, sort.as_ref()), texts.get(i));
        }
        assert_eq!(
            decode_key_values(texts.get(0)).unwrap(),
            (AttributeValue::S("a|b\u{1}c".into()), None)
        );
        assert!(decode_key_values("s1:as1:bs1:c").is_err(), "three values");
    }

    #[test]
    fn plain_numbers() {
        for (text, plain) in [
            ("0", "0"),
            ("1.5", "1.5"),
            ("100", "100"),
            ("-0.025", "-0.025"),
            ("123.456", "123.456"),
            ("1e-130", &format!("0.{}1", "0".repeat(129))),
            ("12345", "12345"),
        ] {
            assert_eq!(plain_number(&n(text)).as_deref(), Some(plain), "{text}");
            assert_eq!(n(plain), n(text));
        }
        for bad in [
            "", "1.5", "15", "e1", "10e1", "01e1", "1e999", "-", "1e-131", "x1e1",
        ] {
            assert_eq!(plain_number(bad), None, "{bad:?}");
        }
    }

    fn value() -> impl Strategy<Value = AttributeValue> {
        prop_oneof![
            ".{0,12}".prop_map(AttributeValue::S),
            (-1_000_000i64..1_000_000, 0u32..4).prop_map(|(m, scale)| {
                // The same value written in several ways: m / 10^scale.
                let text = if scale == 0 {
                    m.to_string()
                } else {
                    format!("{}e-{scale}", m)
                };
                AttributeValue::N(text)
            }),
            proptest::collection::vec(any::<u8>(), 0..8)
                .prop_map(|b| AttributeValue::B(aws_smithy_types::Blob::new(b))),
        ]
    }

    /// DynamoDB's equality of key values: numbers by value.
    fn same_value(a: &AttributeValue, b: &AttributeValue) -> bool {
        match (a, b) {
            (AttributeValue::N(x), AttributeValue::N(y)) => {
                normalize_number(x) == normalize_number(y)
            }
            _ => a == b,
        }
    }

    fn key() -> impl Strategy<Value = Item> {
        proptest::collection::hash_map("[a-z=\u{0}\u{1f}.]{1,4}", value(), 1..3)
    }

    fn same_key(a: &Item, b: &Item) -> bool {
        a.len() == b.len()
            && a.iter()
                .all(|(name, v)| b.get(name).is_some_and(|w| same_value(v, w)))
    }

    proptest! {
        #[test]
        fn keys_encode_alike_exactly_when_dynamodb_sees_one_key(a in key(), b in key()) {
            prop_assert_eq!(encode_item_key(&a) == encode_item_key(&b), same_key(&a, &b));
        }

        #[test]
        fn a_key_rewritten_in_other_number_notations_encodes_alike(a in key()) {
            // Every number written another way: `m` as `m.0`, `m e-k` as `m0 e-(k+1)`.
            let b: Item = a
                .iter()
                .map(|(name, v)| {
                    let v = match v {
                        AttributeValue::N(text) => AttributeValue::N(match text.split_once("e-") {
                            Some((m, k)) => format!("{m}0e-{}", k.parse::<u32>().unwrap() + 1),
                            None => format!("{text}.0"),
                        }),
                        other => other.clone(),
                    };
                    (name.clone(), v)
                })
                .collect();
            prop_assert_eq!(encode_item_key(&a), encode_item_key(&b));
        }

        #[test]
        fn key_values_encode_alike_exactly_when_equal(
            p1 in value(), s1 in proptest::option::of(value()),
            p2 in value(), s2 in proptest::option::of(value()),
        ) {
            let same = same_value(&p1, &p2)
                && match (&s1, &s2) {
                    (None, None) => true,
                    (Some(x), Some(y)) => same_value(x, y),
                    _ => false,
                };
            prop_assert_eq!(
                encode_key_values(&p1, s1.as_ref()) == encode_key_values(&p2, s2.as_ref()),
                same
            );
        }

        #[test]
        fn scaled_integers_normalise_by_value(m in -1_000_000i64..1_000_000, k in 0u32..6) {
            // m * 10^k written as an integer and in scientific notation.
            let plain = format!("{m}{}", "0".repeat(k as usize));
            let scientific = format!("{m}e{k}");
            prop_assert_eq!(normalize_number(&plain), normalize_number(&scientific));
        }
    }
}
