use super::*;
use crate::session::clock::ManualClock;

fn store() -> (SessionStore, ManualClock) {
    let clock = ManualClock::new(1_000_000);
    (
        SessionStore::new(100, Duration::from_secs(3600), Arc::new(clock.clone())),
        clock,
    )
}

#[test]
fn idle_expiry() {
    let (st, clock) = store();
    let s = st.create(None, Duration::from_secs(3600), Duration::from_secs(60));
    clock.advance(Duration::from_secs(59));
    assert!(st.get(&s.id).is_some());
    clock.advance(Duration::from_secs(59));
    assert!(st.get(&s.id).is_some(), "use refreshes idle");
    clock.advance(Duration::from_secs(60));
    assert!(st.get(&s.id).is_none());
}

#[test]
fn absolute_expiry_despite_activity() {
    let (st, clock) = store();
    let s = st.create(None, Duration::from_secs(100), Duration::from_secs(60));
    for _ in 0..3 {
        clock.advance(Duration::from_secs(30));
        assert!(st.get(&s.id).is_some());
    }
    clock.advance(Duration::from_secs(15));
    assert!(st.get(&s.id).is_none());
}

#[test]
fn anonymous_sessions_never_evict_logged_in_ones() {
    let clock = ManualClock::new(1_000_000);
    let st = SessionStore::with_bounds(10, 20, Duration::from_secs(3600), Arc::new(clock));
    let user = Arc::new(Identity {
        user_id: 1,
        uid: "u".into(),
        username: "alice".into(),
        email: String::new(),
        name: String::new(),
        groups: Vec::new(),
        is_superuser: false,
    });
    let hour = Duration::from_secs(3600);
    let logged: Vec<_> = (0..10).map(|_| st.create(Some(user.clone()), hour, hour)).collect();
    let anon: Vec<_> = (0..1000).map(|_| st.create(None, hour, hour)).collect();
    assert!(logged.iter().all(|s| st.get(&s.id).is_some()));
    assert_eq!(st.len(), 10);
    assert!(st.pending_len() <= 20, "{}", st.pending_len());
    assert!(
        st.get(&anon[0].id).is_none(),
        "the oldest anonymous session was evicted"
    );
    assert!(st.get(&anon[999].id).is_some());
}

#[test]
fn large_unfinished_flows_weigh_more() {
    let clock = ManualClock::new(1_000_000);
    let st = SessionStore::with_bounds(10, 100, Duration::from_secs(3600), Arc::new(clock));
    let hour = Duration::from_secs(3600);
    let anon: Vec<_> = (0..50).map(|_| st.create(None, hour, hour)).collect();
    for s in &anon {
        // Each parks ~20 KiB: weight 11, so at most 9 fit in 100.
        st.set_state_size(s, 20 * 1024);
    }
    st.pending_len();
    let alive: Vec<usize> = (0..50).filter(|i| st.get(&anon[*i].id).is_some()).collect();
    assert!(alive.len() <= 9, "{alive:?} large flows kept");
    assert!(alive.contains(&49), "the newest stays: {alive:?}");
}

#[test]
fn remove_deletes() {
    let (st, _) = store();
    let s = st.create(None, Duration::from_secs(100), Duration::from_secs(60));
    st.remove(&s.id);
    assert!(st.get(&s.id).is_none());
}

#[test]
fn a_session_stays_small() {
    // One allocation per session (docs/decisions/0012): the Arc's two counters and this.
    let size = std::mem::size_of::<Session>();
    assert!(size <= 144, "Session is {size} bytes");
    eprintln!("Session: {size} bytes");
}

#[test]
fn sessions_of_one_user_and_login_share_their_identity_and_shape() {
    let (st, _clock) = store();
    let who = |groups: Vec<String>| {
        Arc::new(Identity {
            user_id: 7,
            uid: "u7".into(),
            username: "carol".into(),
            email: String::new(),
            name: String::new(),
            groups,
            is_superuser: false,
        })
    };
    let shape = || AuthShape {
        flows: ["login"].into_iter().collect(),
        ..Default::default()
    };
    let hour = Duration::from_secs(3600);
    let a = st.create_with_auth(
        Some(who(vec!["g".into()])),
        AuthInfo::new(shape(), 1, new_sign_on()),
        hour,
        hour,
    );
    let b = st.create_with_auth(
        Some(who(vec!["g".into()])),
        AuthInfo::new(shape(), 2, new_sign_on()),
        hour,
        hour,
    );
    assert!(
        Arc::ptr_eq(a.user.as_ref().unwrap(), b.user.as_ref().unwrap()),
        "one identity copy"
    );
    assert!(std::ptr::eq(&*a.auth, &*b.auth), "one shape copy");
    assert_ne!(a.auth.sign_on, b.auth.sign_on);
    // A changed identity is its own copy; nothing is shared by mistake.
    let c = st.create(Some(who(vec!["other".into()])), hour, hour);
    assert_eq!(c.user.as_ref().unwrap().groups, ["other"]);
    assert!(!Arc::ptr_eq(a.user.as_ref().unwrap(), c.user.as_ref().unwrap()));
}

#[tokio::test]
async fn logout_without_a_store_ends_the_cached_sessions_of_the_sign_on() {
    let (st, _clock) = store();
    let user = |id| {
        Arc::new(Identity {
            user_id: id,
            uid: format!("u{id}"),
            username: format!("user{id}"),
            email: String::new(),
            name: String::new(),
            groups: Vec::new(),
            is_superuser: false,
        })
    };
    let hour = Duration::from_secs(3600);
    let (one, other) = (new_sign_on(), new_sign_on());
    let auth = |s: &SignOn| AuthInfo::new(AuthShape::default(), 0, *s);
    let portal = st.create_with_auth(Some(user(1)), auth(&one), hour, hour);
    let derived = st.create_with_auth(Some(user(1)), auth(&one), hour, hour);
    let second_login = st.create_with_auth(Some(user(1)), auth(&other), hour, hour);
    let someone_else = st.create_with_auth(Some(user(2)), auth(&one), hour, hour);
    st.end_sign_on(&portal).await;
    assert!(st.get(&portal.id).is_none() && st.get(&derived.id).is_none());
    assert!(st.get(&second_login.id).is_some(), "another sign-on of the user stays");
    assert!(
        st.get(&someone_else.id).is_some(),
        "the same sign-on id on another user stays"
    );
}

/// A user source that holds each read until released, answering what the user was when the
/// read began.
struct SlowUsers {
    name: std::sync::Mutex<String>,
    reading: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl UserSource for SlowUsers {
    async fn identity(&self, user_id: i64) -> Result<Option<Identity>, String> {
        let name = self.name.lock().unwrap().clone();
        self.reading.notify_one();
        self.release.notified().await;
        Ok(Some(Identity {
            user_id,
            uid: "u".into(),
            username: name,
            email: String::new(),
            name: String::new(),
            groups: Vec::new(),
            is_superuser: false,
        }))
    }
}

#[tokio::test]
async fn a_user_read_that_overlaps_a_change_is_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let backend = crate::session::local::LocalBackend::open(&dir.path().join("s.db"))
        .await
        .unwrap();
    let clock = ManualClock::new(1_000_000);
    let st = SessionStore::with_backend(100, 100, Duration::from_secs(3600), Arc::new(clock), Arc::new(backend));
    let users = Arc::new(SlowUsers {
        name: std::sync::Mutex::new("before".into()),
        reading: tokio::sync::Notify::new(),
        release: tokio::sync::Notify::new(),
    });
    st.set_user_source(users.clone());
    let read = tokio::spawn({
        let st = st.clone();
        async move { st.identity_of_user(7).await }
    });
    users.reading.notified().await;
    // The user changes while the read is in flight.
    *users.name.lock().unwrap() = "after".into();
    st.user_changed(7).await;
    users.release.notify_one();
    let stale = read.await.unwrap().unwrap().unwrap();
    assert_eq!(stale.username, "before", "the overlapping read answers what it read");
    // A permit for the next read of the source, if there is one (a cached answer makes none).
    users.release.notify_one();
    let fresh = st.identity_of_user(7).await.unwrap().unwrap();
    assert_eq!(
        fresh.username, "after",
        "the stale read was not cached: the next one reads again"
    );
}
