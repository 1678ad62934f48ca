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
    /// Cost and Usage Report line items through Athena (only for connections that name a CUR
    /// database and table).
    Cur,
}

impl Collector {
    /// The collectors every connection has; [`Collector::for_connection`] adds the CUR.
    pub const ALL: [Collector; 3] = [
        Collector::Ec2,
        Collector::Cloudwatch,
        Collector::CostExplorer,
    ];

    /// The collectors that apply to a connection: the CUR only when Athena is configured.
    pub fn for_connection(
        connection: &cloudspend_core::connection::AwsConnection,
    ) -> Vec<Collector> {
        let mut collectors = Self::ALL.to_vec();
        if connection.cur.athena_database.is_some() && connection.cur.athena_table.is_some() {
            collectors.push(Collector::Cur);
        }
        collectors
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Collector::Ec2 => "ec2",
            Collector::Cloudwatch => "cloudwatch",
            Collector::CostExplorer => "costexplorer",
            Collector::Cur => "cur",
        }
    }

    /// EC2 and CloudWatch hourly; Cost Explorer every 6 hours, because AWS itself refreshes
    /// cost data only a few times a day and each request costs $0.01.
    pub fn default_interval(self) -> Duration {
        match self {
            Collector::Ec2 | Collector::Cloudwatch => Duration::from_secs(3600),
            Collector::CostExplorer => Duration::from_secs(6 * 3600),
            // AWS delivers the CUR a few times a day; each run costs an Athena scan.
            Collector::Cur => Duration::from_secs(12 * 3600),
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
            "cur" | "athena" => Ok(Collector::Cur),
            other => Err(format!(
                "unknown collector `{other}`: expected ec2, cloudwatch, costexplorer or cur"
            )),
        }
    }
}
