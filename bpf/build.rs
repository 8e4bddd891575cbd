//! Builds `meshflow.bpf.o` into `OUT_DIR`.
//!
//! 1. `bpftool btf dump file /sys/kernel/btf/vmlinux format c` -> `$OUT_DIR/vmlinux.h`
//! 2. `clang -target bpf -O2 -g -mcpu=v3 -D__TARGET_ARCH_x86` (CO-RE) -> `meshflow.bpf.o`
//! 3. `llvm-strip -g` drops DWARF (BTF stays) when llvm-strip is installed.
//!
//! Overrides: `MESHFLOW_CLANG`, `MESHFLOW_BPFTOOL`, `MESHFLOW_LLVM_STRIP`,
//! `MESHFLOW_VMLINUX_BTF` (a BTF file to generate `vmlinux.h` from).

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SOURCES: &[&str] = &["src/meshflow.bpf.c", "src/meshflow.h", "src/parse.h"];
const PACKAGES: &str = "apt-get install clang llvm libbpf-dev bpftool";
const DEFAULT_BTF: &str = "/sys/kernel/btf/vmlinux";

fn fail(msg: &str) -> ! {
    eprintln!("\nerror: meshflow-bpf cannot build its eBPF object: {msg}\n");
    std::process::exit(1);
}

/// The program named by `var`, else `name` on PATH, else the first of `extra` that exists.
fn find_tool(var: &str, name: &str, extra: &[&str]) -> Option<PathBuf> {
    println!("cargo:rerun-if-env-changed={var}");
    if let Some(p) = env::var_os(var) {
        return Some(PathBuf::from(p));
    }
    let on_path = env::var_os("PATH").and_then(|paths| {
        env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| extra.iter().map(PathBuf::from).find(|p| p.is_file()))
}

fn run(tool: &Path, args: &[&std::ffi::OsStr]) -> Output {
    Command::new(tool).args(args).output().unwrap_or_else(|e| {
        fail(&format!(
            "could not run {}: {e}. Install the Debian packages: {PACKAGES}",
            tool.display()
        ))
    })
}

fn main() {
    for src in SOURCES {
        println!("cargo:rerun-if-changed={src}");
    }
    println!("cargo:rerun-if-changed=build.rs");

    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if arch != "x86_64" {
        fail(&format!(
            "the programs use x86_64 syscall numbers and pt_regs; target arch is {arch:?}"
        ));
    }

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let src_dir = manifest_dir.join("src");

    println!("cargo:rerun-if-env-changed=MESHFLOW_VMLINUX_BTF");
    let btf = env::var_os("MESHFLOW_VMLINUX_BTF")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_BTF));
    if !btf.is_file() {
        fail(&format!(
            "{} is missing: the kernel must be built with CONFIG_DEBUG_INFO_BTF=y \
             (or set MESHFLOW_VMLINUX_BTF to a BTF file). Tools needed: {PACKAGES}",
            btf.display()
        ));
    }
    println!("cargo:rerun-if-changed={}", btf.display());

    let clang = find_tool("MESHFLOW_CLANG", "clang", &[]).unwrap_or_else(|| {
        fail(&format!(
            "clang not found on PATH. Install the Debian packages: {PACKAGES}"
        ))
    });
    let bpftool = find_tool(
        "MESHFLOW_BPFTOOL",
        "bpftool",
        &["/usr/sbin/bpftool", "/sbin/bpftool"],
    )
    .unwrap_or_else(|| {
        fail(&format!(
            "bpftool not found on PATH, /usr/sbin or /sbin. Install the Debian packages: {PACKAGES}"
        ))
    });

    // 1. vmlinux.h from the running kernel's BTF.
    let vmlinux_h = out_dir.join("vmlinux.h");
    let out = run(
        &bpftool,
        &[
            "btf".as_ref(),
            "dump".as_ref(),
            "file".as_ref(),
            btf.as_os_str(),
            "format".as_ref(),
            "c".as_ref(),
        ],
    );
    if !out.status.success() || out.stdout.is_empty() {
        fail(&format!(
            "`{} btf dump file {} format c` failed ({}):\n{}",
            bpftool.display(),
            btf.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::write(&vmlinux_h, &out.stdout)
        .unwrap_or_else(|e| fail(&format!("writing {}: {e}", vmlinux_h.display())));

    // 2. The programs.
    let object = out_dir.join("meshflow.bpf.o");
    let source = src_dir.join("meshflow.bpf.c");
    let include_out = format!("-I{}", out_dir.display());
    let include_src = format!("-I{}", src_dir.display());
    let out = run(
        &clang,
        &[
            "-target".as_ref(),
            "bpf".as_ref(),
            "-O2".as_ref(),
            "-g".as_ref(),
            "-mcpu=v3".as_ref(),
            "-Wall".as_ref(),
            "-D__TARGET_ARCH_x86".as_ref(),
            include_out.as_ref(),
            include_src.as_ref(),
            "-c".as_ref(),
            source.as_os_str(),
            "-o".as_ref(),
            object.as_os_str(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let hint = if stderr.contains("bpf/bpf_helpers.h") {
            format!("\nlibbpf's headers are missing. Install the Debian packages: {PACKAGES}")
        } else {
            String::new()
        };
        fail(&format!(
            "clang failed to compile {} ({}):\n{stderr}{hint}",
            source.display(),
            out.status
        ));
    }
    for line in stderr.lines().filter(|l| l.contains("warning:")) {
        println!("cargo:warning=clang: {line}");
    }

    // 3. Drop DWARF; aya needs only the .BTF and .BTF.ext sections.
    if let Some(strip) = find_tool("MESHFLOW_LLVM_STRIP", "llvm-strip", &[]) {
        let out = run(&strip, &["-g".as_ref(), object.as_os_str()]);
        if !out.status.success() {
            fail(&format!(
                "`{} -g {}` failed ({}):\n{}",
                strip.display(),
                object.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
}
