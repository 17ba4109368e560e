//! VXLAN encapsulation (RFC 7348). Filled in by the overlay issue; the crate exists now so the
//! workspace layout is stable.
