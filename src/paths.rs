//! Lexical path cleaning, as Go's filepath.Clean does it: no empty parts, no ".", and ".."
//! removing the part before it (never climbing above the start).

/// The parts of `path` once cleaned; "/a//b/../c" gives ["a", "c"].
pub fn lexical_parts(path: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_clean_like_go() {
        assert_eq!(
            super::lexical_parts("/var//run/../run/./docker.sock"),
            ["var", "run", "docker.sock"]
        );
        assert_eq!(super::lexical_parts("../../a"), ["a"]);
        assert!(super::lexical_parts("/").is_empty());
    }
}
