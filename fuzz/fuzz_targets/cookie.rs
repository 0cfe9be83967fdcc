//! The session cookie decoder. Input: `name\nheader` (or just a header, read with the default
//! names). Asserts: a returned id is well formed, lies inside the header, the cookie occurs
//! exactly once, and `strip_cookie` leaves nothing the decoder would find.
#![no_main]

use flowgate::session::{cookie_name, is_well_formed_id, session_id_from_cookie_header, strip_cookie};
use libfuzzer_sys::fuzz_target;

fn check(header: &str, name: &str) {
    if let Some(id) = session_id_from_cookie_header(header, name) {
        assert!(is_well_formed_id(id), "ill-formed id returned: {id:?}");
        let (h, i) = (header.as_ptr() as usize, id.as_ptr() as usize);
        assert!(
            i >= h && i + id.len() <= h + header.len(),
            "id not borrowed from the header"
        );
        let n = header
            .split(';')
            .filter(|p| p.trim().split_once('=').is_some_and(|(k, _)| k.trim() == name))
            .count();
        assert_eq!(n, 1, "id returned although the cookie occurs {n} times");
    }
    if let Some(rest) = strip_cookie(header, name) {
        assert!(
            session_id_from_cookie_header(&rest, name).is_none(),
            "strip_cookie left a session cookie: {rest:?}"
        );
        assert!(!rest.is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match text.split_once('\n') {
        Some((name, header)) => {
            check(header, name);
            let prefixed = cookie_name(name, true);
            assert_eq!(prefixed, format!("__Host-{name}"));
            assert_eq!(cookie_name(name, false), name);
            check(header, &prefixed);
        }
        None => {
            check(text, "flowgate_session");
            check(text, &cookie_name("flowgate_session", true));
        }
    }
});
