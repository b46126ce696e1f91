//! The example Rust job: built by a Petrel worker with `cargo build --locked --release`,
//! bit-for-bit the same on every build.

fn main() {
    let who = std::env::args().nth(1).unwrap_or_else(|| "world".to_string());
    println!("Hello, {who}! (built reproducibly by Petrel)");
}
