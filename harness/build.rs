//! Embeds `fixtures/images/` (the image recipes and their Go modules) into the binary, so an
//! installed `scs-e2e` builds its images without a checkout, like the lab's module files.

use std::path::{Path, PathBuf};

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("readable fixtures").flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            let rel = p.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
            out.push((rel, p));
        }
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let fixtures = manifest.join("../fixtures");
    let images = fixtures.join("images");
    println!("cargo:rerun-if-changed={}", images.display());
    let mut files = Vec::new();
    if images.is_dir() {
        walk(&fixtures, &images, &mut files);
    }
    let mut code = String::from(
        "/// `(path relative to fixtures/, content)` of every file under fixtures/images.\npub static FILES: &[(&str, &[u8])] = &[\n",
    );
    for (rel, path) in files {
        code.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            path.canonicalize().expect("exists").display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("image_files.rs");
    std::fs::write(out, code).expect("OUT_DIR is writable");
}
