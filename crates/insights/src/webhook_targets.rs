//! Where a tenant's webhook may point. CloudSpend sends from inside its operator's network, so a
//! tenant could otherwise aim deliveries at internal services (the cloud metadata endpoint at
//! 169.254.169.254, an admin page on 10.0.0.5) and learn from the delivery log what answers
//! there. Only public addresses are delivered to, unless the operator allows internal ones
//! (`CLOUDSPEND_WEBHOOK_ALLOW_INTERNAL`, for a receiver on the same private network).
//!
//! The check runs twice: on the URL when a subscription is created (literal addresses and
//! `localhost`, a clear 422 at once), and on every address a host name resolves to when a
//! delivery is sent, in the HTTP client's resolver, so a name that later resolves inward (DNS
//! rebinding) is refused too, on the connection actually made.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// True for addresses that are not on the public internet: loopback, private (RFC 1918),
/// carrier-grade NAT, link-local (the metadata endpoint), unique-local IPv6, unspecified,
/// multicast and broadcast, and IPv4 written inside IPv6.
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
            if let Some(v4) = v6.to_ipv4_mapped() {
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

/// Refuses a webhook URL whose host is an internal address or a `localhost` name. Host names
/// are resolved only when a delivery is sent (see [`PublicOnlyResolver`]).
pub fn check_url(url: &reqwest::Url) -> Result<(), String> {
    let refused = |what: &str| {
        Err(format!(
            "{what} is an internal address: CloudSpend delivers webhooks to public addresses only"
        ))
    };
    let Some(host) = url.host_str() else {
        return Ok(());
    };
    // The URL parser has already normalised IPv4 spellings (0x7f000001 is 127.0.0.1) and
    // brackets IPv6 literals.
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return if is_internal(ip) {
            refused(&ip.to_string())
        } else {
            Ok(())
        };
    }
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return refused(&name);
    }
    Ok(())
}

/// Resolves host names for webhook deliveries and keeps only public addresses; a name with none
/// left fails the delivery with the reason in its log.
#[derive(Debug, Default)]
pub struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            // The port is replaced by the URL's own; lookup_host needs one.
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| !is_internal(a.ip()))
                .collect();
            if public.is_empty() {
                let found: Vec<String> = all.iter().map(|a| a.ip().to_string()).collect();
                return Err(format!(
                    "{host} resolves only to internal addresses ({}): CloudSpend delivers webhooks to public addresses only",
                    found.join(", ")
                )
                .into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// The resolver to give the delivery client, shared.
pub fn resolver() -> Arc<PublicOnlyResolver> {
    Arc::new(PublicOnlyResolver)
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
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "52.94.236.248",
            "2600:1f18::1",
        ] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn urls_aimed_inward_are_refused_by_their_host() {
        let check = |u: &str| check_url(&reqwest::Url::parse(u).unwrap());
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
        let err = match PublicOnlyResolver.resolve(name).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("only to internal addresses"), "{err}");
    }
}
