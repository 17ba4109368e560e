//! Tunnel hosts over loopback (no root needed): see below.
