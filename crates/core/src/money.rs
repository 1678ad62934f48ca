//! Exact money. Amounts are integer nano-units (10^-9 of the currency unit) in an `i64`: exact
//! addition, exact sums in SQL on both store backends, and room for +/- 9.2 billion per value.
//! AWS reports amounts as decimal strings with up to 10 fractional digits; they are parsed with
//! a decimal type, never `f64`, and rounded half-to-even to the nano-unit (the error this
//! introduces is below 10^-9 per row, far under a cent for any realistic number of rows).

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub};
use std::str::FromStr;

const NANOS_PER_UNIT: i64 = 1_000_000_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money {
    nanos: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    #[error("`{0}` is not a decimal amount")]
    NotDecimal(String),
    #[error("`{0}` is too large for an amount (limit +/- 9,223,372,036)")]
    OutOfRange(String),
}

impl Money {
    pub const ZERO: Money = Money { nanos: 0 };

    pub const fn from_nanos(nanos: i64) -> Self {
        Self { nanos }
    }

    pub const fn nanos(self) -> i64 {
        self.nanos
    }

    pub fn from_decimal(value: Decimal) -> Result<Self, MoneyError> {
        let scaled = value
            .checked_mul(Decimal::from(NANOS_PER_UNIT))
            .ok_or_else(|| MoneyError::OutOfRange(value.to_string()))?
            .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointNearestEven);
        scaled
            .to_i64()
            .map(Self::from_nanos)
            .ok_or_else(|| MoneyError::OutOfRange(value.to_string()))
    }

    pub fn to_decimal(self) -> Decimal {
        Decimal::from_i128_with_scale(i128::from(self.nanos), 9).normalize()
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.nanos.checked_add(other.nanos).map(Money::from_nanos)
    }

    pub fn is_negative(self) -> bool {
        self.nanos < 0
    }

    pub fn abs(self) -> Money {
        Money::from_nanos(self.nanos.saturating_abs())
    }

    /// Rounded to whole cents (half away from zero, as invoices round), for display.
    pub fn round_to_cents(self) -> Money {
        let cent = NANOS_PER_UNIT / 100;
        let rem = self.nanos % cent;
        let down = self.nanos - rem;
        let nanos = if rem.abs() * 2 >= cent {
            down + rem.signum() * cent
        } else {
            down
        };
        Money::from_nanos(nanos)
    }
}

impl FromStr for Money {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        // Scientific notation ("1.2E-7") appears in some CUR exports; accept it, still exactly.
        let decimal = Decimal::from_str(trimmed)
            .or_else(|_| Decimal::from_scientific(trimmed))
            .map_err(|_| MoneyError::NotDecimal(s.to_string()))?;
        Self::from_decimal(decimal)
    }
}

impl fmt::Display for Money {
    /// At least two fractional digits, more only when the amount has them: `12.50`, `0.000123`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.nanos < 0 { "-" } else { "" };
        let abs = self.nanos.unsigned_abs();
        let whole = abs / NANOS_PER_UNIT as u64;
        let frac = format!("{:09}", abs % NANOS_PER_UNIT as u64);
        let trimmed = frac.trim_end_matches('0');
        let frac = if trimmed.len() < 2 {
            &frac[..2]
        } else {
            trimmed
        };
        write!(f, "{sign}{whole}.{frac}")
    }
}

// Arithmetic never wraps, in release builds too: an amount past ±9.2 billion units stops with
// an error (a panic, which the API answers as a 500 and a collection records as a failure)
// rather than turning into a wrong number. Use `checked_add` where a caller can recover.
const OVERFLOW: &str = "money overflow: an amount beyond ±9,223,372,036 units";

impl Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        self.checked_add(rhs).expect(OVERFLOW)
    }
}

impl AddAssign for Money {
    fn add_assign(&mut self, rhs: Money) {
        *self = *self + rhs;
    }
}

impl Sub for Money {
    type Output = Money;
    fn sub(self, rhs: Money) -> Money {
        Money::from_nanos(self.nanos.checked_sub(rhs.nanos).expect(OVERFLOW))
    }
}

impl Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money::from_nanos(self.nanos.checked_neg().expect(OVERFLOW))
    }
}

impl Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Add::add)
    }
}

impl utoipa::PartialSchema for Money {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "Exact decimal amount as a string, e.g. \"1234.56\" or \"-0.000123\"",
            ))
            .examples(["1234.56"])
            .into()
    }
}

impl utoipa::ToSchema for Money {}

/// JSON carries money as a decimal string: a JSON number would be read as a float by most
/// clients and lose cents on large totals.
impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Text(String),
            Integer(i64),
        }
        match Repr::deserialize(deserializer)? {
            Repr::Text(s) => s.parse().map_err(serde::de::Error::custom),
            Repr::Integer(units) => units
                .checked_mul(NANOS_PER_UNIT)
                .map(Money::from_nanos)
                .ok_or_else(|| serde::de::Error::custom("amount out of range")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_aws_amount_strings_exactly() {
        assert_eq!(
            "12.3456789012".parse::<Money>().unwrap().nanos(),
            12_345_678_901
        );
        assert_eq!("-0.01".parse::<Money>().unwrap().nanos(), -10_000_000);
        assert_eq!("0.0000000004".parse::<Money>().unwrap().nanos(), 0);
        assert_eq!("0.0000000015".parse::<Money>().unwrap().nanos(), 2);
        assert_eq!("1.2E-7".parse::<Money>().unwrap().nanos(), 120);
        assert_eq!("0".parse::<Money>().unwrap(), Money::ZERO);
        assert!("ten".parse::<Money>().is_err());
        assert!("99999999999".parse::<Money>().is_err());
    }

    #[test]
    fn arithmetic_past_the_range_is_an_error_not_a_wrap() {
        let max = Money::from_nanos(i64::MAX);
        assert_eq!(max.checked_add(Money::from_nanos(1)), None);
        for overflow in [
            std::panic::catch_unwind(|| max + Money::from_nanos(1)),
            std::panic::catch_unwind(|| Money::from_nanos(i64::MIN) - Money::from_nanos(1)),
            std::panic::catch_unwind(|| -Money::from_nanos(i64::MIN)),
            std::panic::catch_unwind(|| [max, max].into_iter().sum::<Money>()),
        ] {
            assert!(overflow.is_err(), "wrapped instead of failing");
        }
        assert_eq!(max - max, Money::ZERO);
    }

    #[test]
    fn sums_do_not_drift_like_floats_do() {
        let tenth: Money = "0.1".parse().unwrap();
        let total: Money = std::iter::repeat_n(tenth, 10).sum();
        assert_eq!(total, "1".parse().unwrap());
    }

    #[test]
    fn displays_at_least_cents() {
        assert_eq!(Money::from_nanos(12_500_000_000).to_string(), "12.50");
        assert_eq!(Money::from_nanos(123_000).to_string(), "0.000123");
        assert_eq!(Money::from_nanos(-5_000_000_000).to_string(), "-5.00");
        assert_eq!(Money::ZERO.to_string(), "0.00");
    }

    #[test]
    fn rounds_to_cents_half_away_from_zero() {
        assert_eq!(
            "1.005"
                .parse::<Money>()
                .unwrap()
                .round_to_cents()
                .to_string(),
            "1.01"
        );
        assert_eq!(
            "-1.005"
                .parse::<Money>()
                .unwrap()
                .round_to_cents()
                .to_string(),
            "-1.01"
        );
        assert_eq!(
            "1.0049"
                .parse::<Money>()
                .unwrap()
                .round_to_cents()
                .to_string(),
            "1.00"
        );
    }

    #[test]
    fn json_round_trip_is_a_string() {
        let m: Money = "42.42".parse().unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, "\"42.42\"");
        assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), m);
    }
}
