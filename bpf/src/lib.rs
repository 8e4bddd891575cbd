//! meshflow's kernel programs: C eBPF sources and their compiled objects.
//!
//! This crate will hold the C programs (XDP, TC, tracepoints, syscall latency) and a
//! build script that compiles them with clang against a bpftool-generated
//! `vmlinux.h`; see `bpf/README.md`. It has no programs yet.
