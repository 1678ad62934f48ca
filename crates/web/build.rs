//! `include_dir!` cannot tell cargo which files it read (on stable Rust), so without this an
//! edit under web/ would not rebuild the binary. A directory here is scanned recursively.
fn main() {
    println!("cargo:rerun-if-changed=../../web");
}
