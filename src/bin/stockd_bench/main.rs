//! stockd-bench: load generator (being written).

fn main() {
    eprintln!("stockd-bench: not built yet");
    std::process::exit(2);
}
