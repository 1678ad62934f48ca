//! The collectors a tenant has, as the scheduler and the API name them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Collector {
    /// EC2 inventory (DescribeInstances in every configured region).
    Ec2,
    /// CloudWatch CPUUtilization of the known instances.
    Cloudwatch,
    /// Cost Explorer daily UnblendedCost and AmortizedCost.
    CostExplorer,
}

impl Collector {
    pub const ALL: [Collector; 3] = [Collector::Ec2, Collector::Cloudwatch, Collector::CostExplorer];

    pub fn as_str(self) -> &'static str {
        match self {
            Collector::Ec2 => "ec2",
            Collector::Cloudwatch => "cloudwatch",
            Collector::CostExplorer => "costexplorer",
        }
    }

    /// EC2 and CloudWatch hourly; Cost Explorer every 6 hours, because AWS itself refreshes
    /// cost data only a few times a day and each request costs $0.01.
    pub fn default_interval(self) -> Duration {
        match self {
            Collector::Ec2 | Collector::Cloudwatch => Duration::from_secs(3600),
            Collector::CostExplorer => Duration::from_secs(6 * 3600),
        }
    }
}

impl fmt::Display for Collector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Collector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ec2" => Ok(Collector::Ec2),
            "cloudwatch" | "cpu" => Ok(Collector::Cloudwatch),
            "costexplorer" | "cost_explorer" | "ce" => Ok(Collector::CostExplorer),
            other => Err(format!("unknown collector `{other}`: expected ec2, cloudwatch or costexplorer")),
        }
    }
}
