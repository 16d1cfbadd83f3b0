//! The address guard: which hosts a connection may reach.
//!
//! On AWS (`Deployment::Cloud`), a host must resolve only to public addresses, unless an
//! operator allow-list (`MAKO_ALLOWED_DATABASE_NETWORKS`) permits it. Loopback, private,
//! link-local (which includes the cloud metadata addresses 169.254.169.254 and
//! fd00:ec2::254), shared, multicast, documentation and reserved ranges are refused, also
//! when they hide inside IPv6 (IPv4-mapped, 6to4, NAT64, Teredo). The local server also
//! allows loopback and private addresses, but still refuses link-local ones.
//!
//! Drivers connect to the address that was checked, not to the name, so a DNS answer that
//! changes between the check and the connection cannot redirect them. The exception is TLS
//! with full verification, which needs the name: there the server must present a valid
//! certificate for that name, which an internal service reached by a rebound name cannot.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use mako_core::config::{ConnectorSettings, Deployment};

use crate::error::ConnectorError;
use crate::settings::ConnectionConfig;

/// Why an address is not public.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Loopback,
    Private,
    /// Link-local, including cloud metadata endpoints.
    LinkLocal,
    /// Unspecified, multicast, broadcast, documentation, benchmarking and reserved ranges.
    Special,
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        AddressClass::Loopback
    } else if ip.is_private() || (a == 100 && (64..128).contains(&b)) {
        // RFC 1918 and the shared address space of carrier-grade NAT (100.64.0.0/10).
        AddressClass::Private
    } else if ip.is_link_local() {
        AddressClass::LinkLocal
    } else if a == 0
        || ip.is_multicast()
        || ip.is_broadcast()
        || a >= 240
        || (a == 192 && b == 0 && c == 0)
        || (a == 192 && b == 0 && c == 2)
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || (a == 198 && (b == 18 || b == 19))
        || (a == 192 && b == 88 && c == 99)
    {
        AddressClass::Special
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let segments = ip.segments();
    // IPv4 hidden in IPv6: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d), NAT64
    // (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address that decides.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    if segments[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_unspecified() && !ip.is_loopback() {
        return classify_v4(Ipv4Addr::new(
            (segments[6] >> 8) as u8,
            segments[6] as u8,
            (segments[7] >> 8) as u8,
            segments[7] as u8,
        ));
    }
    if segments[0] == 0x64 && segments[1] == 0xff9b && segments[2..6] == [0, 0, 0, 0] {
        return classify_v4(Ipv4Addr::new(
            (segments[6] >> 8) as u8,
            segments[6] as u8,
            (segments[7] >> 8) as u8,
            segments[7] as u8,
        ));
    }
    if segments[0] == 0x2002 {
        return classify_v4(Ipv4Addr::new(
            (segments[1] >> 8) as u8,
            segments[1] as u8,
            (segments[2] >> 8) as u8,
            segments[2] as u8,
        ));
    }

    if ip.is_loopback() {
        AddressClass::Loopback
    } else if segments[0] & 0xfe00 == 0xfc00 || segments[0] & 0xffc0 == 0xfec0 {
        // Unique local (fc00::/7, which contains AWS's fd00:ec2::254) and old site-local.
        AddressClass::Private
    } else if segments[0] & 0xffc0 == 0xfe80 {
        AddressClass::LinkLocal
    } else if ip.is_unspecified()
        || ip.is_multicast()
        || (segments[0] == 0x2001 && segments[1] == 0x0db8)
        // Teredo (2001::/32) hides an obfuscated IPv4 address.
        || (segments[0] == 0x2001 && segments[1] == 0)
        || segments[0] == 0x0100
    {
        AddressClass::Special
    } else {
        AddressClass::Public
    }
}

pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(ip) => classify_v4(ip),
        IpAddr::V6(ip) => classify_v6(ip),
    }
}

/// Returns why `ip` may not be reached, or `None` when it may.
pub fn refusal(ip: IpAddr, policy: &ConnectorSettings) -> Option<&'static str> {
    if policy.allowed_networks.iter().any(|network| network.contains(ip)) {
        return None;
    }
    match (classify(ip), policy.deployment) {
        (AddressClass::Public, _) => None,
        (AddressClass::Loopback | AddressClass::Private, Deployment::Local) => None,
        (AddressClass::Loopback, Deployment::Cloud) => Some("a loopback address"),
        (AddressClass::Private, Deployment::Cloud) => Some("a private network address"),
        (AddressClass::LinkLocal, _) => Some("a link-local address (such as a cloud metadata service)"),
        (AddressClass::Special, _) => Some("a reserved or non-routable address"),
    }
}

/// Resolves `host` and checks every address it resolves to. Returns the addresses, all
/// allowed, in resolver order.
pub async fn check_host(
    host: &str,
    port: u16,
    policy: &ConnectorSettings,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, ConnectorError> {
    let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            let lookup = tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await;
            match lookup {
                Ok(Ok(found)) => found.collect(),
                Ok(Err(error)) => {
                    return Err(ConnectorError::Unreachable {
                        target: format!("{host}:{port}"),
                        reason: format!("the host name does not resolve ({error})"),
                    });
                }
                Err(_) => {
                    return Err(ConnectorError::Unreachable {
                        target: format!("{host}:{port}"),
                        reason: "resolving the host name timed out".into(),
                    });
                }
            }
        }
    };
    if addresses.is_empty() {
        return Err(ConnectorError::Unreachable {
            target: format!("{host}:{port}"),
            reason: "the host name has no addresses".into(),
        });
    }

    // Every address must pass, so a name cannot mix a public address with an internal one.
    for address in &addresses {
        if let Some(reason) = refusal(address.ip(), policy) {
            return Err(ConnectorError::AddressRefused {
                message: format!(
                    "Connections to {host} are not allowed: it resolves to {}, {reason}. An operator can allow the network with MAKO_ALLOWED_DATABASE_NETWORKS.",
                    address.ip()
                ),
            });
        }
    }
    Ok(addresses)
}

/// Refuses a configuration whose hosts are IP addresses the guard does not allow, so such a
/// connection is not even saved. Host names are checked when they are resolved, at connect
/// time.
pub fn check_literal_hosts(config: &ConnectionConfig, policy: &ConnectorSettings) -> Result<(), ConnectorError> {
    let hosts: Vec<&str> = match config {
        ConnectionConfig::Postgres(server) | ConnectionConfig::Mysql(server) => vec![server.host.as_str()],
        ConnectionConfig::Mongodb(mongo) => mongo.hosts.iter().map(|(host, _)| host.as_str()).collect(),
        ConnectionConfig::Sqlite { .. } => Vec::new(),
    };
    for host in hosts {
        if let Ok(ip) = host.parse::<IpAddr>()
            && let Some(reason) = refusal(ip, policy)
        {
            return Err(ConnectorError::AddressRefused {
                message: format!(
                    "Connections to {ip} are not allowed: it is {reason}. An operator can allow the network with MAKO_ALLOWED_DATABASE_NETWORKS."
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(deployment: Deployment, allowed: &[&str]) -> ConnectorSettings {
        let mut settings = mako_core::config::Config::from_lookup(&std::collections::HashMap::new())
            .expect("config")
            .connectors;
        settings.deployment = deployment;
        settings.allowed_networks = allowed.iter().map(|cidr| cidr.parse().expect("cidr")).collect();
        settings
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn cloud_refuses_internal_addresses() {
        let cloud = policy(Deployment::Cloud, &[]);
        for address in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:169.254.169.254",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378::1",
            "2001:db8::1",
            "ff02::1",
        ] {
            assert!(refusal(ip(address), &cloud).is_some(), "{address} must be refused");
        }
        for address in ["8.8.8.8", "34.1.2.3", "2600:1f18::1", "64:ff9b::808:808"] {
            assert_eq!(refusal(ip(address), &cloud), None, "{address} is public");
        }
    }

    #[test]
    fn local_allows_loopback_but_not_metadata() {
        let local = policy(Deployment::Local, &[]);
        assert_eq!(refusal(ip("127.0.0.1"), &local), None);
        assert_eq!(refusal(ip("192.168.1.10"), &local), None);
        assert!(refusal(ip("169.254.169.254"), &local).is_some());
        assert!(
            refusal(ip("fd00:ec2::254"), &local).is_none(),
            "unique-local IPv6 is a private network"
        );
        assert!(refusal(ip("fe80::1"), &local).is_some());
    }

    #[test]
    fn allow_list_opens_a_network() {
        let cloud = policy(Deployment::Cloud, &["10.20.0.0/16"]);
        assert_eq!(refusal(ip("10.20.5.5"), &cloud), None);
        assert!(refusal(ip("10.21.0.1"), &cloud).is_some());
    }

    #[tokio::test]
    async fn host_names_are_resolved_and_checked() {
        let cloud = policy(Deployment::Cloud, &[]);
        let refused = check_host("localhost", 5432, &cloud, Duration::from_secs(5)).await;
        assert!(
            matches!(refused, Err(ConnectorError::AddressRefused { .. })),
            "{refused:?}"
        );

        let local = policy(Deployment::Local, &[]);
        let allowed = check_host("localhost", 5432, &local, Duration::from_secs(5))
            .await
            .expect("allowed");
        assert!(allowed.iter().all(|address| address.ip().is_loopback()));

        let literal = check_host("169.254.169.254", 80, &local, Duration::from_secs(5)).await;
        assert!(matches!(literal, Err(ConnectorError::AddressRefused { .. })));
    }
}
