//! The main job (being written).
fn main() {
    println!("ordq demo: not yet written");
}
