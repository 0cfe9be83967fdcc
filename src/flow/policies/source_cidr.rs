//! The `source_cidr` policy: the client address is inside a listed network.

use super::{verdict, Decision, PolicyInput};
use ipnet::IpNet;

/// The client address is inside a listed network (no address: no match).
pub(super) fn evaluate(cidrs: &[IpNet], input: &PolicyInput) -> Decision {
    verdict(
        input.client_ip.is_some_and(|ip| cidrs.iter().any(|n| n.contains(&ip))),
        "client address",
    )
}
