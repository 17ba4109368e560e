//! The Go types of Docker's network API (`network.Inspect` = `network.Summary`, API 1.50)
//! as a static schema, so templates see what the docker CLI sees: Go field names
//! (`.ID`, `.IPAM.Config`), zero values for missing fields, struct printing in field order.

use crate::cli::goval::{FieldTy, StructTy, Ty};

pub static IPAM_CONFIG: StructTy = StructTy {
    name: "network.IPAMConfig",
    fields: &[
        FieldTy::new("Subnet", Ty::String).omitempty(),
        FieldTy::new("IPRange", Ty::String).omitempty(),
        FieldTy::new("Gateway", Ty::String).omitempty(),
        FieldTy::new("AuxAddress", Ty::Map(&Ty::String))
            .json("AuxiliaryAddresses")
            .omitempty(),
    ],
};

pub static IPAM: StructTy = StructTy {
    name: "network.IPAM",
    fields: &[
        FieldTy::new("Driver", Ty::String),
        FieldTy::new("Options", Ty::Map(&Ty::String)),
        FieldTy::new("Config", Ty::Slice(&Ty::Struct(&IPAM_CONFIG))),
    ],
};

pub static CONFIG_REFERENCE: StructTy = StructTy {
    name: "network.ConfigReference",
    fields: &[FieldTy::new("Network", Ty::String)],
};

pub static ENDPOINT_RESOURCE: StructTy = StructTy {
    name: "network.EndpointResource",
    fields: &[
        FieldTy::new("Name", Ty::String),
        FieldTy::new("EndpointID", Ty::String),
        FieldTy::new("MacAddress", Ty::String),
        FieldTy::new("IPv4Address", Ty::String),
        FieldTy::new("IPv6Address", Ty::String),
    ],
};

pub static PEER_INFO: StructTy = StructTy {
    name: "network.PeerInfo",
    fields: &[
        FieldTy::new("Name", Ty::String),
        FieldTy::new("IP", Ty::String),
    ],
};

pub static TASK: StructTy = StructTy {
    name: "network.Task",
    fields: &[
        FieldTy::new("Name", Ty::String),
        FieldTy::new("EndpointID", Ty::String),
        FieldTy::new("EndpointIP", Ty::String),
        FieldTy::new("Info", Ty::Map(&Ty::String)),
    ],
};

pub static SERVICE_INFO: StructTy = StructTy {
    name: "network.ServiceInfo",
    fields: &[
        FieldTy::new("VIP", Ty::String),
        FieldTy::new("Ports", Ty::Slice(&Ty::String)),
        FieldTy::new("LocalLBIndex", Ty::Int),
        FieldTy::new("Tasks", Ty::Slice(&Ty::Struct(&TASK))),
    ],
};

/// `network.Inspect` (also `network.Summary`, the `GET /networks` element).
pub static INSPECT: StructTy = StructTy {
    name: "network.Inspect",
    fields: &[
        FieldTy::new("Name", Ty::String),
        FieldTy::new("ID", Ty::String).json("Id"),
        FieldTy::new("Created", Ty::Time),
        FieldTy::new("Scope", Ty::String),
        FieldTy::new("Driver", Ty::String),
        FieldTy::new("EnableIPv4", Ty::Bool),
        FieldTy::new("EnableIPv6", Ty::Bool),
        FieldTy::new("IPAM", Ty::Struct(&IPAM)),
        FieldTy::new("Internal", Ty::Bool),
        FieldTy::new("Attachable", Ty::Bool),
        FieldTy::new("Ingress", Ty::Bool),
        FieldTy::new("ConfigFrom", Ty::Struct(&CONFIG_REFERENCE)),
        FieldTy::new("ConfigOnly", Ty::Bool),
        FieldTy::new("Containers", Ty::Map(&Ty::Struct(&ENDPOINT_RESOURCE))),
        FieldTy::new("Options", Ty::Map(&Ty::String)),
        FieldTy::new("Labels", Ty::Map(&Ty::String)),
        FieldTy::new("Peers", Ty::Slice(&Ty::Struct(&PEER_INFO))).omitempty(),
        FieldTy::new("Services", Ty::Map(&Ty::Struct(&SERVICE_INFO))).omitempty(),
    ],
};

pub static INSPECT_TY: Ty = Ty::Struct(&INSPECT);

/// `[]network.Summary`
pub static SUMMARY_LIST_TY: Ty = Ty::Slice(&INSPECT_TY);
