//! Where the recording proxy may connect. Without this check the proxy is an
//! open relay: any prover could name the notary's own API, a database on
//! loopback or a cloud metadata address and have the notary connect there.
//!
//! The rule, in order:
//! 1. the preamble's `host:port` must be on the operator's allow-list
//!    (before any DNS lookup, so unlisted names are never resolved);
//! 2. the host is resolved once (an IP literal is not resolved at all);
//! 3. every resolved address is checked: the notary's own listening
//!    addresses are always refused; a special-purpose address (loopback,
//!    private, link-local, unspecified, multicast, shared, documentation,
//!    reserved, ...: RFC 6890 and the IANA special-purpose registries, IPv4
//!    and IPv6, IPv4-mapped IPv6 judged by its IPv4 address) is refused
//!    unless that exact `address:port` is itself on the allow-list;
//! 4. the proxy connects only to the addresses checked in 3, never to the
//!    name again, so a second DNS answer cannot slip past the check.
//!
//! [`check_target`] (steps 1 and 3) does no I/O; [`resolve_checked`] adds
//! the one lookup of step 2.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// One allow-list entry, `host:port` (`[v6]:port` for IPv6 literals). A
/// host name allows that name (compared without case); an IP literal allows
/// that address, which is also what lets a special-purpose address through.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AllowedTarget {
    host: TargetHost,
    port: u16,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum TargetHost {
    /// Lowercase.
    Name(String),
    /// Canonical (IPv4-mapped IPv6 stored as IPv4).
    Ip(IpAddr),
}

impl AllowedTarget {
    /// An entry for one socket address (e.g. a test server on 127.0.0.1:0).
    pub fn addr(addr: SocketAddr) -> Self {
        Self {
            host: TargetHost::Ip(canonical_ip(addr.ip())),
            port: addr.port(),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Does this entry name the preamble's `host` and `port`?
    fn names(&self, host: &str, port: u16) -> bool {
        if self.port != port {
            return false;
        }
        match (&self.host, IpAddr::from_str(host)) {
            (TargetHost::Ip(ip), Ok(h)) => *ip == canonical_ip(h),
            (TargetHost::Name(n), Err(_)) => n.eq_ignore_ascii_case(host),
            _ => false,
        }
    }

    /// Is this entry exactly the (canonical) socket address `addr`?
    fn is_addr(&self, addr: SocketAddr) -> bool {
        self.port == addr.port() && self.host == TargetHost::Ip(addr.ip())
    }
}

impl fmt::Display for AllowedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            TargetHost::Name(n) => write!(f, "{n}:{}", self.port),
            TargetHost::Ip(ip) => write!(f, "{}", SocketAddr::new(*ip, self.port)),
        }
    }
}

impl fmt::Debug for AllowedTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AllowedTarget({self})")
    }
}

/// Why an allow-list entry does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("allowed target {0:?} must be host:port or [ipv6]:port with a port in 1..=65535")]
pub struct BadAllowedTarget(pub String);

impl FromStr for AllowedTarget {
    type Err = BadAllowedTarget;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadAllowedTarget(s.to_string());
        if let Ok(addr) = SocketAddr::from_str(s) {
            return (addr.port() != 0).then(|| Self::addr(addr)).ok_or_else(bad);
        }
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        // The same host syntax as the proxy preamble (see `proxy.rs`).
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if port == 0 || !host_ok {
            return Err(bad());
        }
        let host = match IpAddr::from_str(host) {
            Ok(ip) => TargetHost::Ip(canonical_ip(ip)),
            Err(_) => TargetHost::Name(host.to_ascii_lowercase()),
        };
        Ok(Self { host, port })
    }
}

/// What the proxy may connect to: the allow-list plus the notary's own
/// listening addresses (never relayed to).
#[derive(Clone, Debug, Default)]
pub struct TargetPolicy {
    pub allowed: Vec<AllowedTarget>,
    /// The proxy's and the API's listening addresses.
    pub own: Vec<SocketAddr>,
}

/// Why the proxy refused a target: always the prover's request, never a
/// fault of the site.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetRefusal {
    #[error("{host}:{port} is not on the notary's allow-list")]
    NotAllowed { host: String, port: u16 },
    #[error(
        "{host}:{port} resolves to {addr}, a {class} address, which is not itself on the \
         notary's allow-list"
    )]
    SpecialAddress {
        host: String,
        port: u16,
        addr: SocketAddr,
        class: &'static str,
    },
    #[error("{host}:{port} resolves to {addr}, where the notary itself listens")]
    NotaryItself {
        host: String,
        port: u16,
        addr: SocketAddr,
    },
}

/// Steps 1 and 3 of the module's rule, without I/O. Step 1 only: whether
/// `host:port` is on the allow-list at all (done before resolving).
pub fn check_listed(policy: &TargetPolicy, host: &str, port: u16) -> Result<(), TargetRefusal> {
    if policy.allowed.iter().any(|a| a.names(host, port)) {
        Ok(())
    } else {
        Err(TargetRefusal::NotAllowed {
            host: host.to_string(),
            port,
        })
    }
}

/// Steps 1 and 3: checks `host:port` and every address it resolved to;
/// returns the addresses the proxy may connect to (canonical: IPv4-mapped
/// IPv6 as IPv4), in resolver order. Refuses the whole target if any one
/// address is refused.
pub fn check_target(
    policy: &TargetPolicy,
    host: &str,
    port: u16,
    resolved: &[SocketAddr],
) -> Result<Vec<SocketAddr>, TargetRefusal> {
    check_listed(policy, host, port)?;
    let mut out = Vec::with_capacity(resolved.len());
    for a in resolved {
        let addr = SocketAddr::new(canonical_ip(a.ip()), a.port());
        if policy.own.iter().any(|own| is_own(*own, addr)) {
            return Err(TargetRefusal::NotaryItself {
                host: host.to_string(),
                port,
                addr,
            });
        }
        if let Some(class) = special_address_class(addr.ip()) {
            if !policy.allowed.iter().any(|e| e.is_addr(addr)) {
                return Err(TargetRefusal::SpecialAddress {
                    host: host.to_string(),
                    port,
                    addr,
                    class,
                });
            }
        }
        if !out.contains(&addr) {
            out.push(addr);
        }
    }
    Ok(out)
}

/// How a target came out of [`resolve_checked`].
#[derive(Debug)]
pub enum Resolved {
    /// Connect to these (checked) addresses, in order.
    Addrs(Vec<SocketAddr>),
    Refused(TargetRefusal),
    /// The name did not resolve (reported like a failed connect).
    Unresolvable,
}

/// The whole rule with its one lookup: an unlisted target is refused before
/// any DNS query; an IP literal is not resolved.
pub async fn resolve_checked(policy: &TargetPolicy, host: &str, port: u16) -> Resolved {
    if let Err(r) = check_listed(policy, host, port) {
        return Resolved::Refused(r);
    }
    let resolved: Vec<SocketAddr> = match IpAddr::from_str(host) {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => match tokio::net::lookup_host((host, port)).await {
            Ok(it) => it.collect(),
            Err(_) => return Resolved::Unresolvable,
        },
    };
    if resolved.is_empty() {
        return Resolved::Unresolvable;
    }
    match check_target(policy, host, port, &resolved) {
        Ok(addrs) => Resolved::Addrs(addrs),
        Err(r) => Resolved::Refused(r),
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is the IPv4 address it carries: a
/// dual-stack socket connecting to it reaches `a.b.c.d`.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Does connecting to `addr` reach a listener bound at `own`? A listener on
/// an unspecified address (`0.0.0.0`, `::`) answers on every local address,
/// which this check cannot enumerate, so every address at that port counts.
fn is_own(own: SocketAddr, addr: SocketAddr) -> bool {
    let own_ip = canonical_ip(own.ip());
    own.port() == addr.port()
        && (own_ip == addr.ip()
            || own_ip.is_unspecified()
            || addr.ip().is_loopback()
            || addr.ip().is_unspecified())
}

/// IPv4 special-purpose blocks (RFC 6890 and the IANA IPv4 Special-Purpose
/// Address Registry), plus multicast and the reserved class E space: none
/// is a public web server.
const V4_SPECIAL: &[(Ipv4Addr, u8, &str)] = &[
    (
        Ipv4Addr::new(0, 0, 0, 0),
        8,
        "\"this network\" (unspecified)",
    ),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private"),
    (
        Ipv4Addr::new(100, 64, 0, 0),
        10,
        "shared (carrier-grade NAT)",
    ),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (Ipv4Addr::new(169, 254, 0, 0), 16, "link-local"),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "IETF protocol assignment"),
    (Ipv4Addr::new(192, 0, 2, 0), 24, "documentation"),
    (Ipv4Addr::new(192, 88, 99, 0), 24, "6to4 relay anycast"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking"),
    (Ipv4Addr::new(198, 51, 100, 0), 24, "documentation"),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "documentation"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved (incl. broadcast)"),
];

/// IPv6: everything outside global unicast `2000::/3` is special (this
/// covers `::`, `::1`, IPv4-compatible `::/96`, NAT64 `64:ff9b::/96`,
/// discard `100::/64`, unique local `fc00::/7`, link-local `fe80::/10`,
/// multicast `ff00::/8`); inside it, these blocks of the IANA IPv6
/// Special-Purpose Address Registry.
const V6_SPECIAL: &[(Ipv6Addr, u8, &str)] = &[
    (
        Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0),
        23,
        "IETF protocol assignment (incl. Teredo)",
    ),
    (
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
        32,
        "documentation",
    ),
    (
        Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0),
        16,
        "6to4 (embeds an IPv4 address)",
    ),
    (
        Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0),
        20,
        "documentation",
    ),
];

fn in_v4(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

/// `Some(class)` if `ip` is not a public unicast address (see the tables
/// above); IPv4-mapped IPv6 is judged by its IPv4 address.
pub fn special_address_class(ip: IpAddr) -> Option<&'static str> {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => V4_SPECIAL
            .iter()
            .find(|(net, len, _)| in_v4(v4, *net, *len))
            .map(|(_, _, class)| *class),
        IpAddr::V6(v6) => {
            let class = if v6.is_loopback() {
                "loopback"
            } else if v6.is_unspecified() {
                "unspecified"
            } else if v6.is_multicast() {
                "multicast"
            } else if in_v6(v6, Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10) {
                "link-local"
            } else if in_v6(v6, Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7) {
                "unique local (private)"
            } else if !in_v6(v6, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3) {
                "non-global IPv6"
            } else {
                return V6_SPECIAL
                    .iter()
                    .find(|(net, len, _)| in_v6(v6, *net, *len))
                    .map(|(_, _, class)| *class);
            };
            Some(class)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn policy(allowed: &[&str], own: &[&str]) -> TargetPolicy {
        TargetPolicy {
            allowed: allowed.iter().map(|a| a.parse().unwrap()).collect(),
            own: own.iter().map(|a| sa(a)).collect(),
        }
    }

    #[test]
    fn special_addresses_ipv4_ipv6_and_mapped() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "127.255.255.254",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "64:ff9b::a00:1",
            "100::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001::1",
            "2001:db8::1",
            "2002:7f00:1::1",
            "3fff::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(special_address_class(ip).is_some(), "{ip} must be special");
        }
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.215.14",
            "172.32.0.1",
            "192.169.0.1",
            "100.128.0.1",
            "223.255.255.255",
            "::ffff:8.8.8.8",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(special_address_class(ip), None, "{ip} is public");
        }
    }

    #[test]
    fn allowed_target_parsing() {
        let t: AllowedTarget = "Example.COM:443".parse().unwrap();
        assert_eq!(t.to_string(), "example.com:443");
        assert!(t.names("example.com", 443) && t.names("EXAMPLE.com", 443));
        assert!(!t.names("example.com", 444) && !t.names("example.org", 443));
        let t: AllowedTarget = "[::1]:8443".parse().unwrap();
        assert_eq!(t.to_string(), "[::1]:8443");
        // IPv4-mapped entries are stored as IPv4.
        let t: AllowedTarget = "[::ffff:127.0.0.1]:8443".parse().unwrap();
        assert_eq!(t.to_string(), "127.0.0.1:8443");
        assert!(t.names("127.0.0.1", 8443) && !t.names("localhost", 8443));
        for bad in [
            "",
            "example.com",
            "example.com:",
            "example.com:0",
            "example.com:65536",
            ":443",
            "ex ample.com:443",
            "a/b:443",
            "127.0.0.1:0",
            "[::1]:0",
            "::1:443",
        ] {
            assert!(bad.parse::<AllowedTarget>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_listed_targets_pass() {
        let p = policy(&["127.0.0.1:8443", "api.example.com:443"], &[]);
        assert_eq!(
            check_target(&p, "127.0.0.1", 8443, &[sa("127.0.0.1:8443")]),
            Ok(vec![sa("127.0.0.1:8443")])
        );
        assert_eq!(
            check_target(&p, "api.example.com", 443, &[sa("93.184.215.14:443")]),
            Ok(vec![sa("93.184.215.14:443")])
        );
        // Another port of an allowed host, another host, an empty list.
        for (h, port) in [("127.0.0.1", 8444), ("other.example.com", 443)] {
            assert!(matches!(
                check_target(&p, h, port, &[sa("93.184.215.14:443")]),
                Err(TargetRefusal::NotAllowed { .. })
            ));
        }
        assert!(matches!(
            check_target(
                &TargetPolicy::default(),
                "127.0.0.1",
                8443,
                &[sa("127.0.0.1:8443")]
            ),
            Err(TargetRefusal::NotAllowed { .. })
        ));
    }

    #[test]
    fn listed_names_resolving_to_special_addresses_are_refused() {
        let p = policy(&["api.example.com:443", "localhost:8443"], &[]);
        for resolved in [
            vec![sa("127.0.0.1:443")],
            vec![sa("[::ffff:169.254.169.254]:443")],
            // One bad answer among good ones spoils the name.
            vec![sa("93.184.215.14:443"), sa("10.0.0.5:443")],
            vec![sa("[2606:4700::1111]:443"), sa("[fd00::1]:443")],
        ] {
            let r = check_target(&p, "api.example.com", 443, &resolved);
            assert!(
                matches!(r, Err(TargetRefusal::SpecialAddress { .. })),
                "{resolved:?}: {r:?}"
            );
        }
        // `localhost:8443` is listed, but its addresses are not: refused.
        let r = check_target(&p, "localhost", 8443, &[sa("127.0.0.1:8443")]);
        assert!(matches!(
            r,
            Err(TargetRefusal::SpecialAddress {
                class: "loopback",
                ..
            })
        ));
        // Listing the exact address lets it through, IPv4-mapped included,
        // and the address returned is the canonical IPv4 one.
        let p = policy(&["localhost:8443", "127.0.0.1:8443"], &[]);
        assert_eq!(
            check_target(
                &p,
                "localhost",
                8443,
                &[sa("127.0.0.1:8443"), sa("[::ffff:127.0.0.1]:8443")]
            ),
            Ok(vec![sa("127.0.0.1:8443")])
        );
        // ... but not another loopback address or port.
        assert!(check_target(&p, "localhost", 8443, &[sa("[::1]:8443")]).is_err());
        assert!(check_target(&p, "localhost", 8443, &[sa("127.0.0.2:8443")]).is_err());
    }

    #[test]
    fn the_notary_itself_is_never_a_target() {
        // Even when the operator lists it.
        let p = policy(
            &["127.0.0.1:7000", "127.0.0.1:7001", "notary.example.com:443"],
            &["127.0.0.1:7000", "127.0.0.1:7001"],
        );
        for port in [7000, 7001] {
            let r = check_target(
                &p,
                "127.0.0.1",
                port,
                &[SocketAddr::new([127, 0, 0, 1].into(), port)],
            );
            assert!(
                matches!(r, Err(TargetRefusal::NotaryItself { .. })),
                "{r:?}"
            );
        }
        // A listener on 0.0.0.0 answers on every address at its port.
        let p = policy(&["notary.example.com:443"], &["0.0.0.0:443"]);
        let r = check_target(&p, "notary.example.com", 443, &[sa("93.184.215.14:443")]);
        assert!(
            matches!(r, Err(TargetRefusal::NotaryItself { .. })),
            "{r:?}"
        );
        let p = policy(&["notary.example.com:443"], &["[::]:443"]);
        let r = check_target(
            &p,
            "notary.example.com",
            443,
            &[sa("[::ffff:93.184.215.14]:443")],
        );
        assert!(
            matches!(r, Err(TargetRefusal::NotaryItself { .. })),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn unlisted_names_are_not_resolved_and_literals_not_looked_up() {
        let p = policy(&["127.0.0.1:9"], &[]);
        // Unlisted: refused before resolution (an unresolvable name gives
        // NotAllowed, not Unresolvable).
        assert!(matches!(
            resolve_checked(&p, "no-such-host.invalid", 443).await,
            Resolved::Refused(TargetRefusal::NotAllowed { .. })
        ));
        assert!(matches!(
            resolve_checked(&p, "127.0.0.1", 9).await,
            Resolved::Addrs(a) if a == vec![sa("127.0.0.1:9")]
        ));
        let p = policy(&["no-such-host.invalid:443"], &[]);
        assert!(matches!(
            resolve_checked(&p, "no-such-host.invalid", 443).await,
            Resolved::Unresolvable
        ));
    }
}
