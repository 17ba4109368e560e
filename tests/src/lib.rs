//! Test harness: builds namespaces and runs vswitchd inside them.
