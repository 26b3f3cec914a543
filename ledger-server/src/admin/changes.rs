//! What changed between two versions of the principals file, one line per
//! item, as the `admin.*` events record it. One function describes every
//! change, whichever way it was made (an admin call, `ledgerd auth`, a hand
//! edit), so the audit trail reads the same for all of them.
//!
//! Lines name principals, grants, key ids and dates, never a hash, salt or
//! secret.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::auth::{NamespacePolicy, Principal, Principals};
use crate::quota::LimitOverrides;

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "never".to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

fn grants(p: &Principal) -> String {
    let grants: Vec<String> = p.grants.iter().map(ToString::to_string).collect();
    format!("{grants:?}")
}

fn limits(l: &LimitOverrides) -> String {
    let show = |v: Option<u64>| v.map_or_else(|| "default".to_string(), |v| v.to_string());
    format!(
        "events_per_sec {}, bytes_per_sec {}, max_streams {}",
        show(l.events_per_sec),
        show(l.bytes_per_sec),
        show(l.max_streams.map(u64::from))
    )
}

/// The lines describing how `new` differs from `old` (empty: no change).
pub fn describe(old: &Principals, new: &Principals) -> Vec<String> {
    let by_name = |p: &Principals| -> BTreeMap<String, Principal> {
        p.principals.iter().map(|p| (p.name.clone(), p.clone())).collect()
    };
    let (old_map, new_map) = (by_name(old), by_name(new));
    let mut lines = Vec::new();
    for (name, before) in &old_map {
        if !new_map.contains_key(name) {
            lines.push(format!("principal {name:?} removed"));
            let _ = before;
        }
    }
    let empty = Principal {
        name: String::new(),
        grants: Vec::new(),
        keys: Vec::new(),
        certs: Vec::new(),
        limits: LimitOverrides::default(),
        producer_keys: Vec::new(),
    };
    for (name, after) in &new_map {
        let before = match old_map.get(name) {
            Some(before) => before,
            None => {
                lines.push(format!("principal {name:?} added with grants {}", grants(after)));
                &empty
            }
        };
        principal(name, before, after, &mut lines);
    }
    namespaces(old, new, &mut lines);
    lines
}

fn types(policy: &NamespacePolicy) -> String {
    match &policy.types {
        None => "any type".to_string(),
        Some(types) => {
            let names: Vec<String> = types
                .iter()
                .map(|t| {
                    if t.schema.is_some() {
                        format!("{} (with schema)", t.event_type)
                    } else {
                        t.event_type.clone()
                    }
                })
                .collect();
            format!("types {names:?}")
        }
    }
}

fn namespaces(old: &Principals, new: &Principals, lines: &mut Vec<String>) {
    for before in &old.namespaces {
        if new.namespace(&before.name).is_none() {
            lines.push(format!("namespace {:?}: policy removed", before.name));
        }
    }
    for after in &new.namespaces {
        let name = &after.name;
        let default = NamespacePolicy {
            name: name.clone(),
            require_signatures: false,
            vocabulary_version: 0,
            types: None,
        };
        let before = old.namespace(name).unwrap_or(&default);
        if before.require_signatures != after.require_signatures {
            lines.push(format!(
                "namespace {name:?}: require_signatures {} -> {}",
                before.require_signatures, after.require_signatures
            ));
        }
        if before.vocabulary_version != after.vocabulary_version || before.types != after.types {
            lines.push(format!(
                "namespace {name:?}: vocabulary version {} -> {}: {}",
                before.vocabulary_version,
                after.vocabulary_version,
                types(after)
            ));
        }
    }
}

fn principal(name: &str, before: &Principal, after: &Principal, lines: &mut Vec<String>) {
    if !before.name.is_empty() && before.grants != after.grants {
        lines.push(format!(
            "principal {name:?}: grants {} -> {}",
            grants(before),
            grants(after)
        ));
    }
    if before.limits != after.limits {
        lines.push(format!(
            "principal {name:?}: limits {} -> {}",
            limits(&before.limits),
            limits(&after.limits)
        ));
    }
    for key in &after.keys {
        match before.keys.iter().find(|k| k.id == key.id) {
            None => lines.push(format!(
                "principal {name:?}: API key {} added, expires {}{}",
                key.id,
                when(key.expires_at),
                key.revoked_at
                    .map_or(String::new(), |t| format!(", revoked {}", when(Some(t))))
            )),
            Some(old) => {
                if old.revoked_at != key.revoked_at {
                    lines.push(format!(
                        "principal {name:?}: API key {} revoked {} (was {})",
                        key.id,
                        when(key.revoked_at),
                        when(old.revoked_at)
                    ));
                }
                if old.expires_at != key.expires_at {
                    lines.push(format!(
                        "principal {name:?}: API key {} expires {} (was {})",
                        key.id,
                        when(key.expires_at),
                        when(old.expires_at)
                    ));
                }
                if old.hash != key.hash || old.salt != key.salt {
                    lines.push(format!("principal {name:?}: API key {} replaced", key.id));
                }
            }
        }
    }
    for key in &before.keys {
        if !after.keys.iter().any(|k| k.id == key.id) {
            lines.push(format!("principal {name:?}: API key {} removed", key.id));
        }
    }
    for cert in &after.certs {
        match before.certs.iter().find(|c| c.sha256 == cert.sha256) {
            None => lines.push(format!(
                "principal {name:?}: client certificate sha256:{} bound{}",
                cert.sha256,
                cert.revoked_at
                    .map_or(String::new(), |t| format!(", revoked {}", when(Some(t))))
            )),
            Some(old) if old.revoked_at != cert.revoked_at => lines.push(format!(
                "principal {name:?}: client certificate sha256:{} revoked {} (was {})",
                cert.sha256,
                when(cert.revoked_at),
                when(old.revoked_at)
            )),
            Some(_) => {}
        }
    }
    for cert in &before.certs {
        if !after.certs.iter().any(|c| c.sha256 == cert.sha256) {
            lines.push(format!(
                "principal {name:?}: client certificate sha256:{} unbound",
                cert.sha256
            ));
        }
    }
    for key in &after.producer_keys {
        match before.producer_keys.iter().find(|k| k.id == key.id) {
            None => lines.push(format!(
                "principal {name:?}: producer key {:?} added, public key {}",
                key.id,
                key.public_key_base64()
            )),
            Some(old) => {
                if old.revoked_at != key.revoked_at {
                    lines.push(format!(
                        "principal {name:?}: producer key {:?} revoked {} (was {})",
                        key.id,
                        when(key.revoked_at),
                        when(old.revoked_at)
                    ));
                }
                if old.public_key != key.public_key {
                    lines.push(format!(
                        "principal {name:?}: producer key {:?} public key {} -> {}",
                        key.id,
                        old.public_key_base64(),
                        key.public_key_base64()
                    ));
                }
            }
        }
    }
    for key in &before.producer_keys {
        if !after.producer_keys.iter().any(|k| k.id == key.id) {
            lines.push(format!("principal {name:?}: producer key {:?} removed", key.id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Grant;

    #[test]
    fn every_kind_of_change_gets_a_line_and_no_secret() -> Result<(), Box<dyn std::error::Error>> {
        let now = Utc::now();
        let mut old = Principals::default();
        old.add_principal("probe", vec![Grant::parse("ops-hub:append")?])?;
        old.add_principal("gone", vec![])?;
        let key = old.add_key("probe", now, None)?;
        assert!(describe(&old, &old).is_empty());

        let mut new = old.clone();
        new.principals.retain(|p| p.name != "gone");
        new.add_principal("auditor", vec![Grant::parse("*:read")?])?;
        new.set_grants("probe", vec![Grant::parse("ops-hub:read,append")?])?;
        new.revoke_key(&key.entry().id, now)?;
        let second = new.add_key("probe", now, None)?;
        let lines = describe(&old, &new);
        let text = lines.join("\n");
        for expected in [
            "principal \"gone\" removed",
            "principal \"auditor\" added with grants [\"*:read\"]",
            "principal \"probe\": grants [\"ops-hub:append\"] -> [\"ops-hub:read,append\"]",
            &format!("API key {} revoked", key.entry().id),
            &format!("API key {} added", second.entry().id),
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
        for secret in [key.expose(), second.expose()] {
            let secret_part = secret.rsplit('_').next().unwrap_or_default().to_string();
            assert!(!text.contains(&secret_part), "a secret in\n{text}");
        }
        assert!(!text.contains(&second.entry().hash.to_hex().to_string()));
        Ok(())
    }
}
