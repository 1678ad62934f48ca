//! On-demand list prices for the common EC2 families, used only where the tenant's CUR has no
//! cost rows for an instance (Cost Explorer does not break cost down by instance).
//!
//! Prices are us-east-1 Linux on-demand, USD per hour, for the `large` size of each family
//! (AWS price list, 2026); within a family each size step doubles the price, which holds for
//! every family listed. Other regions cost the same or up to ~30% more, so savings estimated
//! from these are stated as list-price estimates and are on the low side.

use cloudspend_core::Money;

/// Sizes in order with their price in sixteenths of `large` (nano = 1/16, xlarge = 2x), so
/// every price and ratio is integer arithmetic on money, never floating point.
const SIZES: [(&str, i64); 12] = [
    ("nano", 1),
    ("micro", 2),
    ("small", 4),
    ("medium", 8),
    ("large", 16),
    ("xlarge", 32),
    ("2xlarge", 64),
    ("4xlarge", 128),
    ("8xlarge", 256),
    ("12xlarge", 384),
    ("16xlarge", 512),
    ("24xlarge", 768),
];

/// USD per hour of the `large` size, in nano-dollars (exact).
const FAMILIES: [(&str, i64); 20] = [
    ("t2", 92_800_000),
    ("t3", 83_200_000),
    ("t3a", 75_200_000),
    ("t4g", 67_200_000),
    ("m5", 96_000_000),
    ("m5a", 86_000_000),
    ("m6a", 86_400_000),
    ("m6g", 77_000_000),
    ("m6i", 96_000_000),
    ("m7g", 81_600_000),
    ("m7i", 100_800_000),
    ("c5", 85_000_000),
    ("c6g", 68_000_000),
    ("c6i", 85_000_000),
    ("c7g", 72_500_000),
    ("r5", 126_000_000),
    ("r6g", 100_800_000),
    ("r6i", 126_000_000),
    ("r7g", 107_100_000),
    ("i3", 156_000_000),
];

/// Hours AWS bills in an average month (8,760 / 12).
pub const HOURS_PER_MONTH: i64 = 730;

fn split(instance_type: &str) -> Option<(&str, usize)> {
    let (family, size) = instance_type.split_once('.')?;
    let index = SIZES.iter().position(|(s, _)| *s == size)?;
    Some((family, index))
}

/// The monthly on-demand list price, when the family and size are known.
pub fn monthly_list_price(instance_type: &str) -> Option<Money> {
    let (family, index) = split(instance_type)?;
    let (_, large_nanos) = FAMILIES.iter().find(|(f, _)| *f == family)?;
    // Every listed `large` price is a multiple of 16 nano-dollars, so this is exact.
    let hourly = large_nanos * SIZES[index].1 / 16;
    Some(Money::from_nanos(hourly * HOURS_PER_MONTH))
}

/// The next size down in the same family (`m5.xlarge` -> `m5.large`), if there is one.
pub fn next_size_down(instance_type: &str) -> Option<String> {
    let (family, index) = split(instance_type)?;
    let smaller = index.checked_sub(1)?;
    // 12xlarge steps to 8xlarge (x2/3), 24xlarge to 16xlarge; every other step halves.
    Some(format!("{family}.{}", SIZES[smaller].0))
}

/// What `cost` of a `from` instance becomes on a `to` of the same family, exactly (to the
/// nano-dollar, rounded down): half for one step down.
pub fn cost_after_resize(cost: Money, from: &str, to: &str) -> Option<Money> {
    let (_, a) = split(from)?;
    let (_, b) = split(to)?;
    let scaled = i128::from(cost.nanos()) * i128::from(SIZES[b].1) / i128::from(SIZES[a].1);
    Some(Money::from_nanos(scaled as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_prices_scale_by_size() {
        assert_eq!(
            monthly_list_price("t3.large"),
            Some("60.736".parse().unwrap())
        );
        assert_eq!(
            monthly_list_price("t3.micro"),
            Some("7.592".parse().unwrap())
        );
        assert_eq!(
            monthly_list_price("m5.xlarge"),
            Some("140.16".parse().unwrap())
        );
        assert_eq!(monthly_list_price("x9.large"), None);
        assert_eq!(monthly_list_price("m5"), None);
    }

    #[test]
    fn one_size_down_within_the_family() {
        assert_eq!(next_size_down("m5.xlarge").as_deref(), Some("m5.large"));
        assert_eq!(next_size_down("t3.nano"), None);
        assert_eq!(
            next_size_down("c6i.12xlarge").as_deref(),
            Some("c6i.8xlarge")
        );
        let cost: Money = "99.00".parse().unwrap();
        assert_eq!(
            cost_after_resize(cost, "m5.xlarge", "m5.large"),
            Some("49.50".parse().unwrap())
        );
        assert_eq!(
            cost_after_resize(cost, "c6i.12xlarge", "c6i.8xlarge"),
            Some("66.00".parse().unwrap())
        );
    }
}
