//! Namespaces: the unit that policy (secret-scan rules, access grants) is
//! configured by.
//!
//! A stream's namespace is the part of its name before the first `/`
//! (`ops-hub/deploy-42` is in `ops-hub`); a stream without `/` is in the
//! default namespace, `""`. The rule is deliberately this simple, and one
//! function holds it, so every policy that keys on namespaces agrees on
//! which namespace an event is in.

/// The namespace of `stream`: the text before its first `/`, or `""`.
pub fn namespace_of(stream: &str) -> &str {
    match stream.find('/') {
        Some(slash) => &stream[..slash],
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_is_the_text_before_the_first_slash() {
        assert_eq!(namespace_of("ops-hub/deploy-42"), "ops-hub");
        assert_eq!(namespace_of("task/CUST-WP-0051-T03"), "task");
        assert_eq!(namespace_of("a/b/c"), "a");
        assert_eq!(namespace_of("/leading"), "");
        assert_eq!(namespace_of("trailing/"), "trailing");
        assert_eq!(namespace_of("no-slash"), "");
        assert_eq!(namespace_of(""), "");
        assert_eq!(namespace_of("ünï/x"), "ünï");
    }
}
