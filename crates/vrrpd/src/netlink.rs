//! Interfaces and addresses through rtnetlink: the interface's index, MAC
//! and primary address, and the VIPs added to and removed from it.

use std::net::IpAddr;

use anyhow::{anyhow, Context};
use futures_util::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::LinkAttribute;
use rtnetlink::Handle;

#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

/// An interface as VRRP needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub mac: Option<[u8; 6]>,
}

/// One address on an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    pub net: IpNet,
    /// IPv4 only: not the first address of its subnet on the interface.
    pub secondary: bool,
}

const ENOENT: i32 = 2;
const EEXIST: i32 = 17;
const ENODEV: i32 = 19;
const EADDRNOTAVAIL: i32 = 99;

impl Netlink {
    /// Opens a netlink socket and drives it on the current runtime.
    pub fn connect() -> anyhow::Result<Netlink> {
        let (conn, handle, _) =
            rtnetlink::new_connection().context("opening a netlink route socket")?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    pub async fn link(&self, name: &str) -> anyhow::Result<Link> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        let msg = match links.try_next().await {
            Ok(Some(msg)) => msg,
            Ok(None) => return Err(anyhow!("no interface named {name:?}")),
            Err(rtnetlink::Error::NetlinkError(e)) if errno(&e) == Some(ENODEV) => {
                return Err(anyhow!("no interface named {name:?}"))
            }
            Err(e) => return Err(e).with_context(|| format!("looking up interface {name:?}")),
        };
        let mac = msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::Address(bytes) => <[u8; 6]>::try_from(bytes.as_slice()).ok(),
            _ => None,
        });
        Ok(Link {
            index: msg.header.index,
            mac,
        })
    }

    pub async fn addresses(&self, index: u32) -> anyhow::Result<Vec<Address>> {
        let mut out = Vec::new();
        let mut msgs = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        while let Some(msg) = msgs.try_next().await.context("listing addresses")? {
            if let Some(a) = to_address(&msg) {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// The address adverts come from: IPv4's first primary address that is
    /// not one of our VIPs; IPv6's link-local address (RFC 5798 §5.1.2.1).
    pub async fn primary(&self, index: u32, v6: bool, vips: &[IpAddr]) -> anyhow::Result<IpAddr> {
        let addrs = self.addresses(index).await?;
        addrs
            .iter()
            .filter(|a| !vips.contains(&a.net.addr()))
            .find(|a| match a.net.addr() {
                IpAddr::V4(_) => !v6 && !a.secondary,
                IpAddr::V6(ip) => v6 && (ip.segments()[0] & 0xffc0) == 0xfe80,
            })
            .map(|a| a.net.addr())
            .ok_or_else(|| {
                anyhow!(
                    "interface {index} has no {} address to send adverts from",
                    if v6 { "IPv6 link-local" } else { "IPv4" }
                )
            })
    }

    /// Adds `net` with an optional label; true when added, false when the
    /// address was already there (a restart or another owner).
    pub async fn add(&self, index: u32, net: IpNet, label: Option<&str>) -> anyhow::Result<bool> {
        let mut req = self
            .handle
            .address()
            .add(index, net.addr(), net.prefix_len());
        if let (Some(label), IpNet::V4(_)) = (label, net) {
            req.message_mut()
                .attributes
                .push(AddressAttribute::Label(label.to_string()));
        }
        match req.execute().await {
            Ok(()) => Ok(true),
            Err(rtnetlink::Error::NetlinkError(e)) if errno(&e) == Some(EEXIST) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("adding {net} to interface {index}")),
        }
    }

    /// Removes `net`; true when removed, false when it was not there.
    pub async fn del(&self, index: u32, net: IpNet) -> anyhow::Result<bool> {
        let mut msgs = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(net.addr())
            .execute();
        let mut removed = false;
        while let Some(msg) = msgs.try_next().await.context("listing addresses")? {
            if to_address(&msg).is_some_and(|a| a.net.addr() == net.addr()) {
                match self.handle.address().del(msg).execute().await {
                    Ok(()) => removed = true,
                    Err(rtnetlink::Error::NetlinkError(e))
                        if matches!(errno(&e), Some(ENOENT | EADDRNOTAVAIL)) => {}
                    Err(e) => {
                        return Err(e)
                            .with_context(|| format!("removing {net} from interface {index}"))
                    }
                }
            }
        }
        Ok(removed)
    }
}

fn errno(e: &netlink_packet_core::ErrorMessage) -> Option<i32> {
    e.code.map(|c| -c.get())
}

fn to_address(msg: &AddressMessage) -> Option<Address> {
    // IFA_LOCAL is the interface's own address on point-to-point links,
    // where IFA_ADDRESS is the peer's; elsewhere they are equal.
    let local = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let address = msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    });
    let ip = local.or(address)?;
    Some(Address {
        net: IpNet::new(ip, msg.header.prefix_len).ok()?,
        secondary: msg.header.flags.contains(AddressHeaderFlags::Secondary),
    })
}
