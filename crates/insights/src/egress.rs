//! Where CloudSpend may send: tenants' webhook targets and the operator's SMTP relay.
//! CloudSpend sends from inside its operator's network, so a tenant could otherwise aim
//! deliveries at internal services (the cloud metadata endpoint at 169.254.169.254, an admin page
//! on 10.0.0.5) and learn from the delivery log what answers there. The [`EgressPolicy`] says
//! what is allowed:
//! - by default, public addresses only;
//! - `CLOUDSPEND_WEBHOOK_ALLOW_INTERNAL`: internal addresses too, for a receiver on the
//!   operator's private network;
//! - `CLOUDSPEND_EGRESS_ALLOW`: only the listed host names and networks (CIDRs), nothing else,
//!   for an operator who knows where alerts may go, and for the test and fuzzing servers, which
//!   must never send a packet off the machine. A listed network is allowed even when internal
//!   (`127.0.0.1/32` is how a local test receiver is allowed).
//!
//! The check runs twice: on the URL when a subscription is created (literal addresses and host
//! names, a clear 422 at once), and when a delivery is sent: on the URL again (a literal
//! address never reaches a resolver) and on every address a host name resolves to, in the HTTP
//! client's resolver, so a name that later resolves inward (DNS rebinding) is refused too, on
//! the connection actually made.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// True for addresses that are not on the public internet: loopback, private (RFC 1918),
/// carrier-grade NAT, link-local (the metadata endpoint), unique-local IPv6, unspecified,
/// multicast and broadcast, and an internal IPv4 address written inside IPv6 (mapped,
/// compatible, NAT64 or 6to4), which a dual-stack host or a NAT64 gateway would reach.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || a == 0
                // 100.64.0.0/10: carrier-grade NAT, internal to the provider.
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_ipv4(v6) {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7 unique local, fe80::/10 link local.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// The IPv4 address an IPv6 address stands for: mapped (`::ffff:a.b.c.d`), compatible
/// (`::a.b.c.d`, deprecated but still routed by some stacks), NAT64 (`64:ff9b::/96`) and 6to4
/// (`2002:AABB:CCDD::/48`).
fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let compatible = s[..6] == [0; 6] && !v6.is_loopback() && !v6.is_unspecified();
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    if let Some(v4) = v6.to_ipv4_mapped() {
        Some(v4)
    } else if compatible || nat64 {
        Some(low)
    } else if s[0] == 0x2002 {
        Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ))
    } else {
        None
    }
}

/// One entry of `CLOUDSPEND_EGRESS_ALLOW`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allowed {
    /// An address and prefix length (`127.0.0.1/32`, `10.20.0.0/16`, `2001:db8::/32`).
    Network(IpAddr, u8),
    /// A host name, lower case, without a trailing dot; also allows its subdomains when
    /// written with a leading dot (`.hooks.example.com`).
    Host(String),
}

impl Allowed {
    fn contains(&self, ip: IpAddr) -> bool {
        let Allowed::Network(net, bits) = self else {
            return false;
        };
        match (net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*bits)).unwrap_or(0);
                u32::from(*net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*bits)).unwrap_or(0);
                u128::from(*net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }

    fn names(&self, host: &str) -> bool {
        match self {
            Allowed::Host(name) if name.starts_with('.') => {
                host.ends_with(name.as_str()) || host == &name[1..]
            }
            Allowed::Host(name) => host == name,
            Allowed::Network(..) => false,
        }
    }
}

/// What CloudSpend may connect to when it sends alerts (see the module's documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    internal_allowed: bool,
    /// `Some`: only these; `None`: any address the internal rule lets through.
    allow_list: Option<Vec<Allowed>>,
}

impl EgressPolicy {
    /// Public addresses only: the default.
    pub fn public_only() -> Self {
        Self::default()
    }

    /// Internal addresses allowed too (`CLOUDSPEND_WEBHOOK_ALLOW_INTERNAL`).
    pub fn with_internal_allowed(mut self, allowed: bool) -> Self {
        self.internal_allowed = allowed;
        self
    }

    /// Only the hosts and networks listed, comma or space separated
    /// (`CLOUDSPEND_EGRESS_ALLOW`): `127.0.0.1/32, 10.0.0.0/8, hooks.example.com,
    /// .slack.example.com`. An address without a prefix is one host (`/32`, `/128`).
    pub fn with_allow_list(mut self, list: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for item in list.split([',', ' ', '\n', '\t']).filter(|s| !s.is_empty()) {
            entries.push(parse_allowed(item)?);
        }
        if entries.is_empty() {
            return Err("CLOUDSPEND_EGRESS_ALLOW is empty: list hosts or networks (CIDRs), or unset it to allow any public address".into());
        }
        self.allow_list = Some(entries);
        Ok(self)
    }

    /// Whether a list limits egress (then the SMTP relay must be on it too).
    pub fn is_limited(&self) -> bool {
        self.allow_list.is_some()
    }

    /// Checks a URL's host: at subscription, and again before each delivery. Host names are
    /// resolved only when a delivery is sent (see [`EgressPolicy::resolver`]).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), String> {
        let Some(host) = url.host_str() else {
            return Ok(());
        };
        self.check_host(host)
    }

    /// Checks a host (a name or a literal address) before anything is resolved.
    pub fn check_host(&self, host: &str) -> Result<(), String> {
        // The URL parser has already normalised IPv4 spellings (0x7f000001 is 127.0.0.1) and
        // brackets IPv6 literals.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return self.check_ip(None, ip);
        }
        let name = bare.trim_end_matches('.').to_ascii_lowercase();
        if let Some(list) = &self.allow_list {
            return if list.iter().any(|a| a.names(&name)) {
                Ok(())
            } else {
                Err(not_listed(&name))
            };
        }
        if !self.internal_allowed && (name == "localhost" || name.ends_with(".localhost")) {
            return Err(internal(&name));
        }
        Ok(())
    }

    /// Whether `ip`, reached as `name` when it was resolved from one, may be connected to.
    fn check_ip(&self, name: Option<&str>, ip: IpAddr) -> Result<(), String> {
        if let Some(list) = &self.allow_list {
            if list.iter().any(|a| a.contains(ip)) {
                // Listed networks are allowed even when internal: the operator named them.
                return Ok(());
            }
            if !name.is_some_and(|n| list.iter().any(|a| a.names(n))) {
                return Err(not_listed(&ip.to_string()));
            }
        }
        if !self.internal_allowed && is_internal(ip) {
            return Err(internal(&ip.to_string()));
        }
        Ok(())
    }

    /// The resolver to give the delivery client: keeps only the addresses this policy allows;
    /// a name with none left fails the delivery with the reason in its log.
    pub fn resolver(&self) -> Arc<PolicyResolver> {
        Arc::new(PolicyResolver {
            policy: self.clone(),
        })
    }
}

fn parse_allowed(item: &str) -> Result<Allowed, String> {
    let bad = |why: &str| {
        format!(
            "CLOUDSPEND_EGRESS_ALLOW entry `{item}` {why}: use a host name, an address or a network such as 10.0.0.0/8"
        )
    };
    if let Some((address, bits)) = item.split_once('/') {
        let ip: IpAddr = address.parse().map_err(|_| bad("is not a network"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let bits: u8 = bits
            .parse()
            .ok()
            .filter(|b| *b <= max)
            .ok_or_else(|| bad("has no valid prefix length"))?;
        return Ok(Allowed::Network(ip, bits));
    }
    if let Ok(ip) = item
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(Allowed::Network(ip, if ip.is_ipv4() { 32 } else { 128 }));
    }
    let name = item.trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.trim_start_matches('.').split('.').all(label_ok) {
        Ok(Allowed::Host(name))
    } else {
        Err(bad("is not a host name"))
    }
}

fn internal(what: &str) -> String {
    format!("{what} is an internal address: CloudSpend delivers webhooks to public addresses only")
}

fn not_listed(what: &str) -> String {
    format!("{what} is not among the hosts this CloudSpend may send to (CLOUDSPEND_EGRESS_ALLOW)")
}

/// Resolves host names for deliveries and keeps only the addresses the policy allows.
#[derive(Debug)]
pub struct PolicyResolver {
    policy: EgressPolicy,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
            // A name not listed is refused before it is looked up: no DNS query leaves either.
            policy.check_host(&host)?;
            // The port is replaced by the URL's own; lookup_host needs one.
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| match policy.check_ip(Some(&host), a.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refusal.get_or_insert(e);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let found: Vec<String> = all.iter().map(|a| a.ip().to_string()).collect();
                return Err(format!(
                    "{host} resolves only to addresses CloudSpend may not send to ({}): {}",
                    found.join(", "),
                    refusal.unwrap_or_else(|| "no address".into())
                )
                .into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:a00:5::1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "52.94.236.248",
            "2600:1f18::1",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn urls_aimed_inward_are_refused_by_their_host() {
        let policy = EgressPolicy::public_only();
        let check = |u: &str| policy.check_url(&reqwest::Url::parse(u).unwrap());
        for refused in [
            "http://127.0.0.1:8080/hook",
            "http://169.254.169.254/latest/meta-data/",
            "https://[::1]/x",
            "http://localhost:3000/",
            "http://LOCALHOST./",
            "http://api.localhost/",
            "http://10.0.0.5/admin",
            "http://0x7f000001/",
        ] {
            let err = check(refused).unwrap_err();
            assert!(err.contains("internal address"), "{refused}: {err}");
        }
        for allowed in ["https://hooks.example.com/cloudspend", "http://8.8.8.8/x"] {
            assert_eq!(check(allowed), Ok(()), "{allowed}");
        }
    }

    #[tokio::test]
    async fn the_resolver_drops_internal_addresses_and_fails_when_none_is_left() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let err = match EgressPolicy::public_only().resolver().resolve(name).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("internal address"), "{err}");
    }

    #[test]
    fn an_allow_list_admits_its_hosts_and_networks_and_nothing_else() {
        let policy = EgressPolicy::public_only()
            .with_allow_list("127.0.0.1/32, 10.20.0.0/16 hooks.example.com,.chat.example.org")
            .unwrap();
        let check = |u: &str| policy.check_url(&reqwest::Url::parse(u).unwrap());
        for allowed in [
            "http://127.0.0.1:8080/hook",
            "http://10.20.3.4/x",
            "https://hooks.example.com/a",
            "https://HOOKS.example.com./a",
            "https://chat.example.org/",
            "https://team.chat.example.org/",
        ] {
            assert_eq!(check(allowed), Ok(()), "{allowed}");
        }
        for refused in [
            "http://127.0.0.2/",
            "http://10.21.0.1/",
            "http://8.8.8.8/",
            "https://example.com/",
            "https://evilhooks.example.com/",
            "http://localhost/",
            "http://[::1]/",
        ] {
            let err = check(refused).unwrap_err();
            assert!(err.contains("CLOUDSPEND_EGRESS_ALLOW"), "{refused}: {err}");
        }
        // A listed name is still held to the internal rule where it resolves, unless its
        // network is listed too.
        assert!(
            policy
                .check_ip(Some("hooks.example.com"), "52.1.2.3".parse().unwrap())
                .is_ok()
        );
        assert!(
            policy
                .check_ip(Some("hooks.example.com"), "192.168.1.1".parse().unwrap())
                .is_err()
        );
        assert!(
            policy
                .check_ip(Some("other.example.com"), "52.1.2.3".parse().unwrap())
                .is_err()
        );
        assert!(policy.check_ip(None, "10.20.9.9".parse().unwrap()).is_ok());
    }

    #[test]
    fn a_bad_allow_list_entry_is_named() {
        for bad in [
            "10.0.0.0/33",
            "300.1.1.1/8",
            "hooks_example.com",
            "http://x.com",
            "",
        ] {
            let err = EgressPolicy::public_only()
                .with_allow_list(bad)
                .unwrap_err();
            assert!(err.contains("CLOUDSPEND_EGRESS_ALLOW"), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_off_the_list_before_looking_it_up() {
        use reqwest::dns::Resolve;
        let policy = EgressPolicy::public_only()
            .with_allow_list("127.0.0.1/32")
            .unwrap();
        let name: reqwest::dns::Name = "example.com".parse().unwrap();
        let err = match policy.resolver().resolve(name).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("CLOUDSPEND_EGRESS_ALLOW"), "{err}");
    }
}
