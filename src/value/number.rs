//! Numbers: integers and floats to and from DynamoDB's decimal text, with its limits (38
//! significant digits, exponents from -130 to +125).

use aws_sdk_dynamodb::types::AttributeValue;

use super::{ConvertError, FromAttributeValue, ToAttributeValue};

/// Largest number of significant digits DynamoDB stores.
const MAX_DIGITS: usize = 38;

macro_rules! small_int {
    ($($t:ty),*) => {$(
        impl ToAttributeValue for $t {
            #[inline]
            fn to_attribute_value(&self) -> Result<AttributeValue, ConvertError> {
                Ok(AttributeValue::N(itoa::Buffer::new().format(*self).to_owned()))
            }
        }
        impl FromAttributeValue for $t {
            #[inline]
            fn from_attribute_value(value: AttributeValue) -> Result<Self, ConvertError> {
                match value {
                    AttributeValue::N(n) => parse_int(&n),
                    other => Err(ConvertError::unexpected("N (number)", &other)),
                }
            }
        }
        impl NumberValue for $t {
            const UNSIGNED: bool = <$t>::MIN == 0;
        }
    )*};
}
small_int!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

macro_rules! wide_int {
    ($($t:ty),*) => {$(
        impl ToAttributeValue for $t {
            #[inline]
            fn to_attribute_value(&self) -> Result<AttributeValue, ConvertError> {
                let s = itoa::Buffer::new().format(*self).to_owned();
                if s.trim_start_matches('-').len() > MAX_DIGITS {
                    return Err(ConvertError(format!(
                        "number {s} has more than {MAX_DIGITS} digits, DynamoDB's limit"
                    )));
                }
                Ok(AttributeValue::N(s))
            }
        }
        impl FromAttributeValue for $t {
            #[inline]
            fn from_attribute_value(value: AttributeValue) -> Result<Self, ConvertError> {
                match value {
                    AttributeValue::N(n) => parse_int(&n),
                    other => Err(ConvertError::unexpected("N (number)", &other)),
                }
            }
        }
        impl NumberValue for $t {
            const UNSIGNED: bool = <$t>::MIN == 0;
        }
    )*};
}
wide_int!(i128, u128);

pub(super) fn parse_int<T: std::str::FromStr>(n: &str) -> Result<T, ConvertError> {
    match n.parse::<T>() {
        Ok(v) => Ok(v),
        Err(_) => parse_int_spelled(n),
    }
}

/// An integer spelled with an exponent or a fraction of zeros ("1E+3", "10.0"), as other
/// writers may store it: converted exactly, digit by digit (not through `f64`, which would
/// silently change integers above 2^53).
#[cold]
fn parse_int_spelled<T: std::str::FromStr>(n: &str) -> Result<T, ConvertError> {
    let does_not_fit = || {
        ConvertError(format!(
            "number {n} does not fit {}",
            std::any::type_name::<T>()
        ))
    };
    match integer_digits(n) {
        None => Err(ConvertError(format!("`{n}` is not a number"))),
        Some(None) => Err(does_not_fit()),
        Some(Some(digits)) => digits.parse::<T>().map_err(|_| does_not_fit()),
    }
}

/// The plain integer text of the number `n`: `None` if `n` is not a number, `Some(None)` if it
/// is not an integer or has more digits than any integer type holds.
fn integer_digits(n: &str) -> Option<Option<String>> {
    let (negative, unsigned) = match n.as_bytes().first() {
        Some(b'-') => (true, &n[1..]),
        Some(b'+') => (false, &n[1..]),
        _ => (false, n),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.len() + frac_part.len() == 0 || !all_digits(int_part) || !all_digits(frac_part) {
        return None;
    }
    let exponent: i64 = match exponent {
        None => 0,
        Some(e) => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !all_digits(digits) {
                return None;
            }
            // Beyond any integer type either way; only the sign and zero-ness matter then.
            e.parse().unwrap_or(if e.starts_with('-') {
                i64::MIN / 2
            } else {
                i64::MAX / 2
            })
        }
    };
    let digits = format!("{int_part}{frac_part}");
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Some(Some("0".to_owned()));
    }
    // Digits of `significant` before the decimal point.
    let point = int_part.len() as i64 - (digits.len() - significant.len()) as i64 + exponent;
    // u128::MAX has 39 digits.
    if point <= 0 || point > 39 {
        return Some(None);
    }
    let point = point as usize;
    let mut out = String::with_capacity(point + 1);
    if negative {
        out.push('-');
    }
    if point >= significant.len() {
        out.push_str(significant);
        out.extend(std::iter::repeat_n('0', point - significant.len()));
    } else {
        let (whole, fraction) = significant.split_at(point);
        if fraction.bytes().any(|b| b != b'0') {
            return Some(None);
        }
        out.push_str(whole);
    }
    Some(Some(out))
}

macro_rules! float {
    ($($t:ty),*) => {$(
        impl ToAttributeValue for $t {
            #[inline]
            fn to_attribute_value(&self) -> Result<AttributeValue, ConvertError> {
                check_float(f64::from(*self))?;
                Ok(AttributeValue::N(ryu::Buffer::new().format_finite(*self).to_owned()))
            }
        }
        impl FromAttributeValue for $t {
            #[inline]
            fn from_attribute_value(value: AttributeValue) -> Result<Self, ConvertError> {
                match value {
                    AttributeValue::N(n) => n
                        .parse::<$t>()
                        .map_err(|_| ConvertError(format!("`{n}` is not a number"))),
                    other => Err(ConvertError::unexpected("N (number)", &other)),
                }
            }
        }
        impl NumberValue for $t {}
    )*};
}
float!(f32, f64);

/// DynamoDB numbers: finite, magnitude between 1E-130 and 9.9999999999999999999999999999999999999E+125.
#[inline]
fn check_float(v: f64) -> Result<(), ConvertError> {
    if !v.is_finite() {
        return Err(ConvertError(format!(
            "{v} is not a number DynamoDB can store (NaN and infinity are not allowed)"
        )));
    }
    let abs = v.abs();
    if abs != 0.0 && !(1e-130..1e126).contains(&abs) {
        return Err(ConvertError(format!(
            "{v} is out of DynamoDB's number range (magnitude 1E-130 to 9.99E+125)"
        )));
    }
    Ok(())
}

/// Checks a number's text against DynamoDB's rules (38 significant digits, magnitude range),
/// exactly: the magnitude is read from the digits and the exponent, not from an `f64` (which
/// would read `1e-400` as zero and round the largest number DynamoDB stores up past its limit).
pub(crate) fn check_number_text(n: &str) -> Result<(), ConvertError> {
    let not_a_number = || ConvertError(format!("`{n}` is not a number"));
    // The syntax; "inf" and "NaN", which parse, are refused as not digits below.
    n.parse::<f64>().map_err(|_| not_a_number())?;
    let (mantissa, exponent) = match n.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (n, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let whole = whole.trim_start_matches(['+', '-']);
    if !whole
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return Err(not_a_number());
    }
    // Digits from the first non-zero one to the last non-zero one, and the power of ten of
    // the first, counted without a copy.
    let (mut counted, mut trailing_zeros, mut first_power) = (0usize, 0usize, None);
    let powers = (0..whole.len())
        .rev()
        .map(|p| p as i64)
        .chain((1..).map(|p: i64| -p));
    for (digit, power) in whole.bytes().chain(fraction.bytes()).zip(powers) {
        if counted == 0 && digit == b'0' {
            continue;
        }
        first_power.get_or_insert(power);
        counted += 1;
        trailing_zeros = if digit == b'0' { trailing_zeros + 1 } else { 0 };
    }
    if counted - trailing_zeros > MAX_DIGITS {
        return Err(ConvertError(format!(
            "number {n} has more than {MAX_DIGITS} significant digits, DynamoDB's limit"
        )));
    }
    let Some(first_power) = first_power else {
        return Ok(()); // zero, whatever its exponent
    };
    // An exponent too long for an i64 is out of range either way (its sign says which end).
    let exponent = match exponent {
        None => 0,
        Some(e) => e.parse::<i64>().unwrap_or(if e.starts_with('-') {
            i64::MIN / 2
        } else {
            i64::MAX / 2
        }),
    };
    if !(-130..=125).contains(&(first_power + exponent)) {
        return Err(ConvertError(format!(
            "{n} is out of DynamoDB's number range (magnitude 1E-130 to 9.99E+125)"
        )));
    }
    Ok(())
}

/// Number types: they can be `ADD`ed, incremented and decremented in updates and stored in
/// number sets.
pub trait NumberValue: ToAttributeValue + FromAttributeValue {
    /// `true` for types without negative values: a
    /// [`decrement`](crate::Update::decrement) of one never takes it below zero.
    const UNSIGNED: bool = false;
}
