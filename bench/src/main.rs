//! ordq benchmarks (being written).
fn main() {
    println!("ordq bench: not yet written");
}
