//! Link settings for release builds of the `hearth` binary on x86_64 Linux (glibc), both about
//! the memory the binary's own pages take while the server runs (resident code counts in it).
//!
//! 1. A linker script made from `hot-code.txt` (written by `scripts/hot-code-order`) places the
//!    functions a running server executes together in front of the rest of the code. The kernel
//!    maps code in runs of 64 KiB or more around each page that executes, so scattered hot
//!    functions kept most of the 13 MB of code resident; packed, about 4-5 MiB is.
//! 2. Relative relocations are packed (`-z pack-relative-relocs`, DT_RELR) when the C library
//!    here can load them (glibc 2.36 or later): their table shrinks from about 1 MB, all read at
//!    start-up and kept resident, to a few KiB.
//!
//! Neither changes what the program does; debug builds and other targets link as usual.

use std::{env, fmt::Write as _, fs, path::Path, process::Command};

fn main() {
    println!("cargo:rerun-if-changed=hot-code.txt");
    println!("cargo:rerun-if-changed=build.rs");
    // x86_64 Linux with glibc, where Rust links with its own lld: the script below is written
    // for, and tried with, lld's handling of `INSERT`.
    let release = env::var("PROFILE").as_deref() == Ok("release");
    let target = env::var("TARGET").unwrap_or_default();
    if !release || target != "x86_64-unknown-linux-gnu" {
        return;
    }
    let out_dir = env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let script = Path::new(&out_dir).join("hot-code.ld");
    let names = fs::read_to_string("hot-code.txt").expect("homeserver/hot-code.txt is readable");
    fs::write(&script, linker_script(&names)).expect("OUT_DIR is writable");
    println!("cargo:rustc-link-arg-bin=hearth=-Wl,-T,{}", script.display());
    let native = env::var("HOST").ok() == env::var("TARGET").ok();
    if native && glibc_loads_relr() {
        println!("cargo:rustc-link-arg-bin=hearth=-Wl,-z,pack-relative-relocs");
    }
}

/// The code section, holding first the sections of the listed functions in the listed order:
/// `.text.<name>`, or `.text.unlikely.<name>` where the compiler judged a function unlikely to
/// run (`#[cold]` ones, such as a vector's growth, still run now and then); then all other code,
/// as the linker's own layout has it. `INSERT BEFORE` keeps that layout for everything else. One
/// section rather than a separate hot one, so that tools which only read symbols in `.text`
/// (valgrind, which `scripts/hot-code-order` uses) still see every function.
fn linker_script(names: &str) -> String {
    let mut script = String::from("SECTIONS {\n  .text : {\n");
    for name in names.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')) {
        let _ = writeln!(script, "    *(.text.{name} .text.unlikely.{name})");
    }
    script.push_str("    *(.text .text.*)\n  }\n} INSERT BEFORE .init;\n");
    script
}

/// Whether this machine's glibc is 2.36 or later (`getconf GNU_LIBC_VERSION` prints e.g.
/// "glibc 2.36"); a binary with packed relocations does not start on an older one.
fn glibc_loads_relr() -> bool {
    let Ok(output) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|part| part.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 36)
}
