//! rtnetlink, synchronously (as netavark does): links, addresses, default routes and veth
//! pairs, so the daemon needs no iproute2. A [`Netlink`] socket belongs to the network
//! namespace of the thread that opened it: open one on the thread that entered the namespace
//! (`netns::run_in`), never share it across namespaces.
//!
//! Message building is kept apart from the socket (the `msg_*` functions) so it is testable
//! without a kernel.

use ipam::IpNet;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use std::io;
use std::net::IpAddr;
use std::os::unix::io::{AsRawFd, RawFd};
use std::time::Duration;

/// Receive buffer: a dump datagram is at most 32 KiB (NLMSG_GOODSIZE is smaller); twice that.
pub const RECV_BUFFER: usize = 64 * 1024;
/// Bound on waiting for one kernel reply (SO_RCVTIMEO): the kernel answers in microseconds,
/// so hitting this means something is badly wrong, and the caller gets an error, not a hang.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on default routes removed per family by [`Netlink::del_default_routes`].
pub const MAX_DEFAULT_ROUTES: usize = 64;
/// Bound on messages read for one request (a dump of a huge table fails instead of looping).
pub const MAX_REPLY_MESSAGES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("netlink: {op}: {source}")]
    Socket { op: &'static str, source: io::Error },
    #[error("{op}{}: {}", on(ifname), describe_errno(*errno))]
    Kernel {
        op: String,
        ifname: String,
        errno: i32,
    },
    #[error("{op}{}: unexpected reply from the kernel: {detail}", on(ifname))]
    Reply {
        op: String,
        ifname: String,
        detail: String,
    },
    #[error("interface {0} not found")]
    NoSuchLink(String),
    #[error("{0:?} is not a valid MAC address")]
    BadMac(String),
}

/// " on IFNAME" for errors about one interface, nothing for namespace-wide requests.
fn on(ifname: &str) -> String {
    if ifname.is_empty() {
        String::new()
    } else {
        format!(" on {ifname}")
    }
}

impl NetlinkError {
    /// The kernel's errno, when the kernel refused the request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { errno, .. } => Some(*errno),
            NetlinkError::NoSuchLink(_) => Some(libc::ENODEV),
            _ => None,
        }
    }
}

/// What an errno means for a link/address/route request, in words, with its name.
pub fn describe_errno(errno: i32) -> String {
    let what = match errno {
        libc::EEXIST => "already exists (EEXIST)",
        libc::ENODEV => "no such interface (ENODEV)",
        libc::EPERM => "operation not permitted: needs CAP_NET_ADMIN (EPERM)",
        libc::EACCES => "permission denied (EACCES)",
        libc::EBUSY => "device or resource busy (EBUSY)",
        libc::EADDRNOTAVAIL => "address not assigned (EADDRNOTAVAIL)",
        libc::ESRCH => "no such route (ESRCH)",
        libc::ENETUNREACH => "gateway not reachable on that interface (ENETUNREACH)",
        libc::EINVAL => "invalid argument (EINVAL)",
        libc::ERANGE => "value out of range, e.g. MTU too large or small (ERANGE)",
        libc::EOPNOTSUPP => "not supported by this interface or kernel (EOPNOTSUPP)",
        libc::ENOENT => "not found (ENOENT)",
        libc::ENOBUFS => "out of kernel buffers (ENOBUFS)",
        libc::EAFNOSUPPORT => "address family not supported, e.g. IPv6 disabled (EAFNOSUPPORT)",
        libc::ENOSPC => "no space left, e.g. too many addresses (ENOSPC)",
        _ => return format!("{} (errno {errno})", io::Error::from_raw_os_error(errno)),
    };
    what.to_string()
}

/// One interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    pub up: bool,
    /// IFLA_INFO_KIND: "tun" (TAPs too), "veth", …; `None` for plain devices such as `lo`.
    pub kind: Option<String>,
}

/// One address on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    pub net: IpNet,
}

impl Address {
    /// IPv6 link-local (fe80::/10): the kernel's own, never the spec's to remove.
    pub fn is_link_local_v6(&self) -> bool {
        matches!(self.net.addr(), IpAddr::V6(a) if (a.segments()[0] & 0xffc0) == 0xfe80)
    }
}

/// One default route in the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRouteEntry {
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
}

/// Changes to a link; `None` leaves a field as it is. All of them go in one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkChange {
    pub mac: Option<[u8; 6]>,
    pub mtu: Option<u32>,
    pub up: Option<bool>,
    pub name: Option<String>,
}

/// `02:42:ac:11:00:02` → bytes.
pub fn parse_mac(s: &str) -> Result<[u8; 6], NetlinkError> {
    let bad = || NetlinkError::BadMac(s.to_string());
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        let p = parts.next().ok_or_else(bad)?;
        if p.is_empty() || p.len() > 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(out)
}

pub fn format_mac(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

// ---- message building (pure) --------------------------------------------------------------

/// RTM_GETLINK of one interface by name.
pub fn msg_get_link(name: &str) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_string()));
    m
}

/// RTM_SETLINK body for `change` on interface `index`.
pub fn msg_set_link(index: u32, change: &LinkChange) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    if let Some(up) = change.up {
        m.header.change_mask = LinkFlags::Up;
        if up {
            m.header.flags = LinkFlags::Up;
        }
    }
    if let Some(mac) = change.mac {
        m.attributes.push(LinkAttribute::Address(mac.to_vec()));
    }
    if let Some(mtu) = change.mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(name) = &change.name {
        m.attributes.push(LinkAttribute::IfName(name.clone()));
    }
    m
}

/// RTM_DELLINK of interface `index`.
pub fn msg_del_link(index: u32) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    m
}

/// RTM_NEWLINK of a veth pair: `host` here, `peer` created directly in the namespace `ns_fd`.
pub fn msg_new_veth(host: &str, peer: &str, ns_fd: RawFd) -> LinkMessage {
    let mut p = LinkMessage::default();
    p.attributes.push(LinkAttribute::IfName(peer.to_string()));
    p.attributes.push(LinkAttribute::NetNsFd(ns_fd));
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(host.to_string()));
    m.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
    ]));
    m
}

/// RTM_NEWADDR/RTM_DELADDR body: IPv4 with its broadcast, IPv6 without DAD (the switch
/// already guarantees uniqueness, and DAD would hold the address back).
pub fn msg_address(index: u32, net: IpNet) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.index = index;
    m.header.prefix_len = net.prefix_len();
    match net {
        IpNet::V4(n) => {
            m.header.family = AddressFamily::Inet;
            let a = IpAddr::V4(n.addr());
            m.attributes.push(AddressAttribute::Local(a));
            m.attributes.push(AddressAttribute::Address(a));
            if n.prefix_len() < 31 {
                m.attributes
                    .push(AddressAttribute::Broadcast(n.broadcast()));
            }
        }
        IpNet::V6(n) => {
            m.header.family = AddressFamily::Inet6;
            m.attributes
                .push(AddressAttribute::Address(IpAddr::V6(n.addr())));
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
    }
    m
}

/// RTM_GETADDR dump filter for one interface (the kernel applies it under strict checking,
/// which [`Netlink::open`] asks for; replies are filtered again on our side).
pub fn msg_get_addresses(index: u32) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.index = index;
    m
}

fn route_family(v6: bool) -> AddressFamily {
    if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    }
}

/// RTM_NEWROUTE (with NLM_F_REPLACE) of the default route via `gw` on `oif`.
pub fn msg_default_route(gw: IpAddr, oif: u32) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = route_family(gw.is_ipv6());
    m.header.destination_prefix_length = 0;
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.protocol = RouteProtocol::Boot;
    m.header.scope = RouteScope::Universe;
    m.header.kind = RouteType::Unicast;
    m.attributes
        .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
    m.attributes.push(RouteAttribute::Oif(oif));
    m
}

/// RTM_DELROUTE of (the first) default route of a family, whatever its gateway.
pub fn msg_del_default_route(v6: bool) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = route_family(v6);
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    m.header.scope = RouteScope::NoWhere;
    m
}

/// RTM_GETROUTE dump of a family.
pub fn msg_get_routes(v6: bool) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = route_family(v6);
    m
}

/// Serialize one request with header flags and sequence number.
pub fn encode(msg: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | flags;
    header.sequence_number = seq;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(msg));
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    buf
}

// ---- parsing replies (pure) ---------------------------------------------------------------

pub fn link_from(m: &LinkMessage) -> Link {
    let mut l = Link {
        index: m.header.index,
        name: String::new(),
        mac: None,
        mtu: None,
        up: m.header.flags.contains(LinkFlags::Up),
        kind: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n.clone(),
            LinkAttribute::Address(b) if b.len() == 6 => {
                let mut mac = [0; 6];
                mac.copy_from_slice(b);
                l.mac = Some(mac);
            }
            LinkAttribute::Mtu(v) => l.mtu = Some(*v),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        l.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    l
}

pub fn address_from(m: &AddressMessage) -> Option<Address> {
    // IFA_LOCAL is the interface's own address for IPv4 (IFA_ADDRESS is the peer on
    // point-to-point links); IPv6 has only IFA_ADDRESS.
    let mut local = None;
    let mut addr = None;
    for a in &m.attributes {
        match a {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => addr = Some(*ip),
            _ => {}
        }
    }
    let ip = local.or(addr)?;
    let net = IpNet::new(ip, m.header.prefix_len).ok()?;
    Some(Address {
        index: m.header.index,
        net,
    })
}

/// A main-table default route, or `None` for any other route.
pub fn default_route_from(m: &RouteMessage) -> Option<DefaultRouteEntry> {
    let h = &m.header;
    if h.destination_prefix_length != 0 || h.kind != RouteType::Unicast {
        return None;
    }
    let mut table = u32::from(h.table);
    let mut e = DefaultRouteEntry {
        gateway: None,
        oif: None,
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => e.gateway = Some(IpAddr::V4(*g)),
            RouteAttribute::Gateway(RouteAddress::Inet6(g)) => e.gateway = Some(IpAddr::V6(*g)),
            RouteAttribute::Oif(i) => e.oif = Some(*i),
            _ => {}
        }
    }
    (table == u32::from(RouteHeader::RT_TABLE_MAIN)).then_some(e)
}

// ---- the socket -----------------------------------------------------------------------------

/// An rtnetlink socket in the calling thread's network namespace.
pub struct Netlink {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// Open a socket in the namespace of the calling thread.
    pub fn open() -> Result<Netlink, NetlinkError> {
        let sys = |op| move |source| NetlinkError::Socket { op, source };
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(sys("socket"))?;
        sock.bind_auto().map_err(sys("bind"))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(sys("connect"))?;
        let tv = libc::timeval {
            tv_sec: REPLY_TIMEOUT.as_secs() as libc::time_t,
            tv_usec: 0,
        };
        // SAFETY: setsockopt with a timeval on our own socket.
        let r = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(sys("SO_RCVTIMEO")(io::Error::last_os_error()));
        }
        // Lets the kernel filter dumps (one link's addresses, not every address of a host with
        // hundreds of networks). Kernels before 4.20 lack it; replies are filtered here too.
        let _ = sock.set_netlink_get_strict_chk(true);
        Ok(Netlink {
            sock,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUFFER),
        })
    }

    /// Send a request and collect its replies (until the ACK, DONE, or the single answer of a
    /// plain GET). Kernel refusals come back as [`NetlinkError::Kernel`].
    fn exchange(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &str,
        ifname: &str,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let ack = flags & NLM_F_ACK != 0;
        let req = encode(msg, flags, seq);
        let sys = |op| move |source| NetlinkError::Socket { op, source };
        self.sock.send(&req, 0).map_err(sys("send"))?;
        let reply_err = |detail: String| NetlinkError::Reply {
            op: op.to_string(),
            ifname: ifname.to_string(),
            detail,
        };
        let mut out = Vec::new();
        let mut seen = 0usize;
        loop {
            self.buf.clear();
            let n = match self.sock.recv(&mut self.buf, libc::MSG_TRUNC) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(reply_err(format!("no answer within {REPLY_TIMEOUT:?}")))
                }
                Err(e) => return Err(sys("recv")(e)),
            };
            if n > self.buf.len() {
                return Err(reply_err(format!("datagram of {n} bytes truncated")));
            }
            let mut off = 0;
            while off < n {
                seen += 1;
                if seen > MAX_REPLY_MESSAGES {
                    return Err(reply_err("too many messages".into()));
                }
                let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..n])
                    .map_err(|e| reply_err(e.to_string()))?;
                let len = m.header.length as usize;
                if len == 0 {
                    return Err(reply_err("zero-length message".into()));
                }
                off += (len + 3) & !3;
                if m.header.sequence_number != seq {
                    continue; // a stale answer to an earlier, abandoned request
                }
                match m.payload {
                    NetlinkPayload::Error(e) => match e.code {
                        Some(code) => {
                            return Err(NetlinkError::Kernel {
                                op: op.to_string(),
                                ifname: ifname.to_string(),
                                errno: -code.get(),
                            })
                        }
                        None => return Ok(out),
                    },
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(inner) => {
                        out.push(inner);
                        if !dump && !ack {
                            return Ok(out);
                        }
                    }
                    NetlinkPayload::Overrun(_) => return Err(reply_err("overrun".into())),
                    _ => {}
                }
            }
        }
    }

    fn ack(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &str,
        ifname: &str,
    ) -> Result<(), NetlinkError> {
        self.exchange(msg, flags | NLM_F_ACK, op, ifname)
            .map(|_| ())
    }

    /// The interface called `name`, or `None` when there is none.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>, NetlinkError> {
        let msg = RouteNetlinkMessage::GetLink(msg_get_link(name));
        match self.exchange(msg, 0, "get link", name) {
            Ok(v) => Ok(v.iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_from(l)),
                _ => None,
            })),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Index of interface `name` (an error naming it when missing).
    pub fn link_index(&mut self, name: &str) -> Result<u32, NetlinkError> {
        self.link(name)?
            .map(|l| l.index)
            .ok_or_else(|| NetlinkError::NoSuchLink(name.to_string()))
    }

    /// Every interface of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>, NetlinkError> {
        let msg = RouteNetlinkMessage::GetLink(LinkMessage::default());
        let v = self.exchange(msg, NLM_F_DUMP, "list links", "")?;
        Ok(v.iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_from(l)),
                _ => None,
            })
            .collect())
    }

    /// The interface with this MAC, if any.
    pub fn link_by_mac(&mut self, mac: [u8; 6]) -> Result<Option<Link>, NetlinkError> {
        Ok(self.links()?.into_iter().find(|l| l.mac == Some(mac)))
    }

    /// Apply `change` (MAC, MTU, up/down, name) to `name` in one request.
    pub fn set_link(&mut self, name: &str, change: &LinkChange) -> Result<(), NetlinkError> {
        let idx = self.link_index(name)?;
        let msg = RouteNetlinkMessage::SetLink(msg_set_link(idx, change));
        self.ack(msg, 0, &describe_change(change), name)
    }

    pub fn set_up(&mut self, name: &str, up: bool) -> Result<(), NetlinkError> {
        self.set_link(
            name,
            &LinkChange {
                up: Some(up),
                ..LinkChange::default()
            },
        )
    }

    pub fn rename(&mut self, name: &str, new_name: &str) -> Result<(), NetlinkError> {
        self.set_link(
            name,
            &LinkChange {
                name: Some(new_name.to_string()),
                ..LinkChange::default()
            },
        )
    }

    /// Move `name` into the namespace open as `ns_fd` (it keeps its name there).
    pub fn move_to_netns(&mut self, name: &str, ns_fd: RawFd) -> Result<(), NetlinkError> {
        let idx = self.link_index(name)?;
        let mut m = LinkMessage::default();
        m.header.index = idx;
        m.attributes.push(LinkAttribute::NetNsFd(ns_fd));
        self.ack(
            RouteNetlinkMessage::SetLink(m),
            0,
            "move to another namespace",
            name,
        )
    }

    /// Delete `name`. Returns whether it existed (a missing link is the state wanted).
    pub fn delete_link(&mut self, name: &str) -> Result<bool, NetlinkError> {
        let Some(l) = self.link(name)? else {
            return Ok(false);
        };
        let msg = RouteNetlinkMessage::DelLink(msg_del_link(l.index));
        match self.ack(msg, 0, "delete link", name) {
            Ok(()) => Ok(true),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A veth pair: `host` in this socket's namespace, `peer` created directly inside the
    /// namespace open as `peer_ns` (no move, no rename).
    pub fn create_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_ns: RawFd,
    ) -> Result<(), NetlinkError> {
        let msg = RouteNetlinkMessage::NewLink(msg_new_veth(host, peer, peer_ns));
        self.ack(
            msg,
            NLM_F_CREATE | NLM_F_EXCL,
            &format!("create veth {host} (peer {peer})"),
            host,
        )
    }

    /// Make `net` an address of `name`; already there is success (NLM_F_REPLACE).
    pub fn add_address(&mut self, name: &str, net: IpNet) -> Result<(), NetlinkError> {
        let idx = self.link_index(name)?;
        let msg = RouteNetlinkMessage::NewAddress(msg_address(idx, net));
        match self.ack(
            msg,
            NLM_F_CREATE | NLM_F_REPLACE,
            &format!("add address {net}"),
            name,
        ) {
            Err(e) if e.errno() == Some(libc::EEXIST) => Ok(()),
            r => r,
        }
    }

    /// Remove `net` from `name`; not there is success.
    pub fn del_address(&mut self, name: &str, net: IpNet) -> Result<(), NetlinkError> {
        let idx = self.link_index(name)?;
        let msg = RouteNetlinkMessage::DelAddress(msg_address(idx, net));
        match self.ack(msg, 0, &format!("delete address {net}"), name) {
            Err(e) if e.errno() == Some(libc::EADDRNOTAVAIL) => Ok(()),
            r => r,
        }
    }

    /// The addresses of `name` (IPv4 and IPv6, link-local included).
    pub fn addresses(&mut self, name: &str) -> Result<Vec<Address>, NetlinkError> {
        let idx = self.link_index(name)?;
        let msg = RouteNetlinkMessage::GetAddress(msg_get_addresses(idx));
        let v = self.exchange(msg, NLM_F_DUMP, "list addresses", name)?;
        Ok(v.iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => address_from(a),
                _ => None,
            })
            .filter(|a| a.index == idx)
            .collect())
    }

    /// Make the default route of `gw`'s family go via `gw` on `dev` (replacing any other).
    pub fn replace_default_route(&mut self, gw: IpAddr, dev: &str) -> Result<(), NetlinkError> {
        let idx = self.link_index(dev)?;
        let msg = RouteNetlinkMessage::NewRoute(msg_default_route(gw, idx));
        self.ack(
            msg,
            NLM_F_CREATE | NLM_F_REPLACE,
            &format!("replace default route via {gw}"),
            dev,
        )
    }

    /// Remove every main-table default route of a family; none is success.
    pub fn del_default_routes(&mut self, v6: bool) -> Result<(), NetlinkError> {
        let fam = if v6 { "IPv6" } else { "IPv4" };
        for _ in 0..MAX_DEFAULT_ROUTES {
            let msg = RouteNetlinkMessage::DelRoute(msg_del_default_route(v6));
            match self.ack(msg, 0, &format!("delete {fam} default route"), "") {
                Ok(()) => {}
                // IPv4 says ESRCH, IPv6 ENOENT.
                Err(e) if matches!(e.errno(), Some(libc::ESRCH | libc::ENOENT)) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The main table's default routes of a family.
    pub fn default_routes(&mut self, v6: bool) -> Result<Vec<DefaultRouteEntry>, NetlinkError> {
        let msg = RouteNetlinkMessage::GetRoute(msg_get_routes(v6));
        let v = self.exchange(msg, NLM_F_DUMP, "list routes", "")?;
        Ok(v.iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => default_route_from(r),
                _ => None,
            })
            .collect())
    }
}

fn describe_change(c: &LinkChange) -> String {
    let mut parts = Vec::new();
    if let Some(m) = c.mac {
        parts.push(format!("address {}", format_mac(&m)));
    }
    if let Some(m) = c.mtu {
        parts.push(format!("mtu {m}"));
    }
    if let Some(n) = &c.name {
        parts.push(format!("name {n}"));
    }
    if let Some(up) = c.up {
        parts.push(if up { "up".into() } else { "down".into() });
    }
    format!("set link {}", parts.join(" "))
}

/// `lo` up in the calling thread's namespace.
pub fn loopback_up() -> Result<(), NetlinkError> {
    Netlink::open()?.set_up("lo", true)
}

#[cfg(test)]
mod tests;
