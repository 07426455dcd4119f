//! Kubernetes resource quantities (`100m`, `1Gi`, `1e3`), parsed exactly.
//!
//! `k8s-openapi`'s `Quantity` is a string wrapper with no arithmetic. This module mirrors
//! `k8s.io/apimachinery/pkg/api/resource` (`ParseQuantity`, `Quantity.MilliValue`,
//! `Quantity.Value`, `Quantity.String`) closely enough for validation, the scheduler and the
//! kubelet: a quantity is held as an `i128` count of **nano**-units, which is upstream's
//! smallest scale (anything finer is rounded up, as upstream does). That covers every value
//! from `1n` to about 1.7e29, far beyond any real resource; larger values are rejected with
//! [`QuantityError::TooLarge`] where upstream would fall back to arbitrary precision.
//!
//! ```text
//! <quantity>        ::= <signedNumber><suffix>
//! <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
//! <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
//! <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
//! <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>
//! ```

use std::cmp::Ordering;
use std::fmt;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

/// Nano-units per unit.
const NANO: i128 = 1_000_000_000;

/// How a quantity was written, which decides how it is printed back
/// (mirrors `resource.Format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `Ki`, `Mi`, … (powers of 1024).
    BinarySI,
    /// `m`, `k`, `M`, … or no suffix (powers of 1000).
    DecimalSI,
    /// `1e3`, `5E-3`.
    DecimalExponent,
}

/// Why a string is not a quantity. The messages are upstream's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The string does not have the shape of a quantity at all (`ErrFormatWrong`).
    #[error("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    FormatWrong,
    /// The suffix is not one upstream knows (`ErrSuffix`).
    #[error("unable to parse quantity's suffix")]
    Suffix,
    /// The value does not fit kubeactor's 128-bit nano-unit representation.
    #[error("quantity is too large")]
    TooLarge,
}

/// A parsed quantity: an exact number of nano-units and the format it was written in.
#[derive(Clone, Copy, Debug)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl PartialEq for Quantity {
    /// Quantities compare by value (`1000m == 1`), as upstream's `Cmp`.
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}
impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

impl Quantity {
    /// A quantity of `milli` thousandths (e.g. CPU millicores).
    pub fn from_milli(milli: i64) -> Quantity {
        Quantity {
            nanos: milli as i128 * 1_000_000,
            format: Format::DecimalSI,
        }
    }

    /// The exact value in nano-units.
    pub fn nanos(&self) -> i128 {
        self.nanos
    }

    /// The format the quantity was written in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The value in thousandths, rounded up (away from zero), as upstream's `MilliValue`.
    pub fn milli_value(&self) -> i128 {
        div_away_from_zero(self.nanos, 1_000_000)
    }

    /// The value in units, rounded up (away from zero), as upstream's `Value`.
    pub fn value(&self) -> i128 {
        div_away_from_zero(self.nanos, NANO)
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }
}

fn div_away_from_zero(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d == 0 {
        q
    } else if n > 0 {
        q + 1
    } else {
        q - 1
    }
}

/// Parse a quantity string. Mirrors `ParseQuantity` in
/// `k8s.io/apimachinery/pkg/api/resource/quantity.go`.
pub fn parse_quantity(s: &str) -> Result<Quantity, QuantityError> {
    if s.is_empty() {
        return Err(QuantityError::FormatWrong);
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut negative = false;
    if b[0] == b'+' || b[0] == b'-' {
        negative = b[0] == b'-';
        i = 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_part = &s[int_start..i];
    let mut frac_part = "";
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        frac_part = &s[frac_start..i];
    }
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(QuantityError::FormatWrong);
    }
    // The suffix: letters from upstream's class, then an optional signed integer.
    let suffix_start = i;
    while i < b.len() && b"eEinumkKMGTP".contains(&b[i]) {
        i += 1;
    }
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i != b.len() {
        return Err(QuantityError::FormatWrong);
    }
    let suffix = &s[suffix_start..];

    let (base, exp10, format) = parse_suffix(suffix)?;

    // mantissa = int_part.frac_part as an integer, scaled by 10^-len(frac).
    let int_part = int_part.trim_start_matches('0');
    let frac_trimmed = frac_part.trim_end_matches('0');
    // The digits of `int_part` then `frac_trimmed`, leading zeros dropped, read without
    // building the string (every resource quantity of every pod written is parsed here).
    // At most 38 digits: they always fit an i128.
    let mut mantissa: i128 = 0;
    let mut digits = 0;
    for d in int_part.bytes().chain(frac_trimmed.bytes()) {
        if digits == 0 && d == b'0' {
            continue;
        }
        digits += 1;
        if digits > 38 {
            return Err(QuantityError::TooLarge);
        }
        mantissa = mantissa * 10 + i128::from(d - b'0');
    }
    let numerator = mantissa.checked_mul(base).ok_or(QuantityError::TooLarge)?;
    let pow10 = exp10 as i64 - frac_trimmed.len() as i64 + 9;
    let nanos = if numerator == 0 {
        0
    } else if pow10 >= 0 {
        let scale = checked_pow10(pow10).ok_or(QuantityError::TooLarge)?;
        numerator
            .checked_mul(scale)
            .ok_or(QuantityError::TooLarge)?
    } else {
        // Finer than a nano-unit: round up, as upstream does.
        match checked_pow10(-pow10) {
            Some(scale) => div_away_from_zero(numerator, scale),
            None => 1,
        }
    };
    Ok(Quantity {
        nanos: if negative { -nanos } else { nanos },
        format,
    })
}

/// 10^0 … 10^38: every power of ten an `i128` holds.
const POW10: [i128; 39] = {
    let mut t = [1i128; 39];
    let mut i = 1;
    while i < 39 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// 10^`exp`, if an `i128` holds it: a table lookup (`checked_pow` multiplied its way there
/// on every quantity parsed, each `requests`/`limits` entry of every pod written).
fn checked_pow10(exp: i64) -> Option<i128> {
    usize::try_from(exp)
        .ok()
        .and_then(|e| POW10.get(e))
        .copied()
}

/// `(binary multiplier, decimal exponent, format)` of a suffix.
fn parse_suffix(suffix: &str) -> Result<(i128, i32, Format), QuantityError> {
    let binary = |k: u32| Ok((1024i128.pow(k), 0, Format::BinarySI));
    let decimal = |e: i32| Ok((1, e, Format::DecimalSI));
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        _ => {
            let rest = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))
                .ok_or(QuantityError::Suffix)?;
            let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return Err(QuantityError::Suffix);
            }
            let exp: i32 = rest.parse().map_err(|_| QuantityError::Suffix)?;
            Ok((1, exp, Format::DecimalExponent))
        }
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_quantity(s)
    }
}

impl fmt::Display for Quantity {
    /// The canonical form, as upstream's `Quantity.String()`: `1000m` prints `1`, `1024Mi`
    /// prints `1Gi`, `0.5` prints `500m`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0");
        }
        let mut format = self.format;
        if format == Format::BinarySI && (self.nanos.abs() < 1024 * NANO || self.nanos % NANO != 0)
        {
            format = Format::DecimalSI;
        }
        match format {
            Format::BinarySI => {
                let mut amount = self.nanos / NANO;
                let mut k = 0;
                while k < 6 && amount % 1024 == 0 {
                    amount /= 1024;
                    k += 1;
                }
                let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][k];
                write!(f, "{amount}{suffix}")
            }
            Format::DecimalSI | Format::DecimalExponent => {
                // Largest exponent (a multiple of 3, from nano up) leaving an integer mantissa.
                let mut amount = self.nanos;
                let mut exp = -9i32;
                while exp < 18 && amount % 1000 == 0 {
                    amount /= 1000;
                    exp += 3;
                }
                if format == Format::DecimalExponent {
                    if exp == 0 {
                        write!(f, "{amount}")
                    } else {
                        write!(f, "{amount}e{exp}")
                    }
                } else {
                    let suffix = match exp {
                        -9 => "n",
                        -6 => "u",
                        -3 => "m",
                        0 => "",
                        3 => "k",
                        6 => "M",
                        9 => "G",
                        12 => "T",
                        15 => "P",
                        _ => "E",
                    };
                    write!(f, "{amount}{suffix}")
                }
            }
        }
    }
}

/// Parse an API quantity.
pub fn parse(q: &ApiQuantity) -> Result<Quantity, QuantityError> {
    parse_quantity(&q.0)
}

/// CPU in millicores (`500m` → 500, `2` → 2000), rounded up, saturating at `i64` bounds.
pub fn cpu_millis(q: &ApiQuantity) -> Result<i64, QuantityError> {
    Ok(saturate(parse(q)?.milli_value()))
}

/// Memory or storage in bytes (`1Gi` → 1073741824), rounded up, saturating at `i64` bounds.
pub fn bytes(q: &ApiQuantity) -> Result<i64, QuantityError> {
    Ok(saturate(parse(q)?.value()))
}

fn saturate(v: i128) -> i64 {
    v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table holds exactly the powers `checked_pow` gives, and nothing beyond them.
    #[test]
    fn powers_of_ten_match_checked_pow() {
        for exp in -3..=45i64 {
            let want = u32::try_from(exp).ok().and_then(|e| 10i128.checked_pow(e));
            assert_eq!(checked_pow10(exp), want, "10^{exp}");
        }
    }

    /// Parsing: each string's exact value in nano-units and its canonical form.
    #[test]
    fn parses_and_canonicalizes() {
        let cases: &[(&str, i128, &str)] = &[
            ("0", 0, "0"),
            ("1", NANO, "1"),
            ("100m", 100_000_000, "100m"),
            ("1000m", NANO, "1"),
            ("1500m", 1_500_000_000, "1500m"),
            ("0.5", 500_000_000, "500m"),
            (".5", 500_000_000, "500m"),
            ("5.", 5 * NANO, "5"),
            ("+2", 2 * NANO, "2"),
            ("-1", -NANO, "-1"),
            ("1k", 1000 * NANO, "1k"),
            ("1500", 1500 * NANO, "1500"),
            ("1M", 1_000_000 * NANO, "1M"),
            ("1G", 1_000_000_000 * NANO, "1G"),
            ("1Ki", 1024 * NANO, "1Ki"),
            ("1Gi", 1024 * 1024 * 1024 * NANO, "1Gi"),
            ("1024Mi", 1024 * 1024 * 1024 * NANO, "1Gi"),
            ("1.5Gi", 1536 * 1024 * 1024 * NANO, "1536Mi"),
            ("512", 512 * NANO, "512"),
            ("100Ki", 102_400 * NANO, "100Ki"),
            ("1e3", 1000 * NANO, "1e3"),
            ("1E3", 1000 * NANO, "1e3"),
            ("5e-3", 5_000_000, "5e-3"),
            ("1e0", NANO, "1"),
            ("1n", 1, "1n"),
            ("1u", 1000, "1u"),
            ("0.1n", 1, "1n"),
            ("1E", 1_000_000_000_000_000_000 * NANO, "1E"),
            ("007", 7 * NANO, "7"),
        ];
        for (s, nanos, canonical) in cases {
            let q = parse_quantity(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(q.nanos(), *nanos, "{s}");
            assert_eq!(q.to_string(), *canonical, "{s}");
        }
    }

    /// Malformed strings fail with upstream's error kinds.
    #[test]
    fn rejects_malformed_quantities() {
        let cases: &[(&str, QuantityError)] = &[
            ("", QuantityError::FormatWrong),
            ("abc", QuantityError::FormatWrong),
            ("1 Gi", QuantityError::FormatWrong),
            ("1.2.3", QuantityError::FormatWrong),
            (".", QuantityError::FormatWrong),
            ("1Gb", QuantityError::FormatWrong),
            ("1K", QuantityError::Suffix),
            ("1Mb", QuantityError::FormatWrong),
            ("1ki", QuantityError::Suffix),
            ("1e", QuantityError::Suffix),
            ("1kk", QuantityError::Suffix),
            ("1e999", QuantityError::TooLarge),
        ];
        for (s, err) in cases {
            assert_eq!(parse_quantity(s).unwrap_err(), *err, "{s:?}");
        }
    }

    /// MilliValue and Value round up, like upstream.
    #[test]
    fn milli_and_unit_values_round_up() {
        assert_eq!(parse_quantity("100m").unwrap().milli_value(), 100);
        assert_eq!(parse_quantity("2").unwrap().milli_value(), 2000);
        assert_eq!(parse_quantity("1n").unwrap().milli_value(), 1);
        assert_eq!(parse_quantity("1500m").unwrap().value(), 2);
        assert_eq!(parse_quantity("-1500m").unwrap().value(), -2);
        assert_eq!(cpu_millis(&ApiQuantity("250m".into())), Ok(250));
        assert_eq!(bytes(&ApiQuantity("1Gi".into())), Ok(1 << 30));
        assert_eq!(bytes(&ApiQuantity("128974848".into())), Ok(128_974_848));
        assert_eq!(bytes(&ApiQuantity("129e6".into())), Ok(129_000_000));
        assert_eq!(bytes(&ApiQuantity("123Mi".into())), Ok(128_974_848));
    }

    /// Comparison is by value, not by spelling.
    #[test]
    fn compares_by_value() {
        let q = |s| parse_quantity(s).unwrap();
        assert_eq!(q("1000m"), q("1"));
        assert_eq!(q("1Ki"), q("1024"));
        assert!(q("2") > q("1"));
        assert!(q("999m") < q("1"));
    }
}
