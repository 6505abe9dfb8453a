//! [`SessionStore`] in memory.
//!
//! A session is kept as a compact, boxed [`Entry`] (so the map's empty
//! buckets cost a pointer, not a whole entry); the previous refresh hash
//! lives next to the current one. User agents and client addresses are
//! interned: the sessions of one browser share one copy, and a string is
//! dropped with the last session that uses it. One million sessions with
//! typical browser user agents take about 320 MiB, users included (see
//! the `million_sessions` example).

use std::collections::hash_map;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use sentri_core::model::{
    ActiveSession, NewSession, Rotation, Session, SessionId, TokenHash, UserId,
};
use sentri_core::store::{ROTATION_HISTORY, SessionStore, StoreError, StoreResult};

use crate::MemoryStore;

/// One stored session.
pub(crate) struct Entry {
    user_id: UserId,
    refresh: TokenHash,
    /// The hash replaced by the last rotation, and when.
    previous: Option<(TokenHash, DateTime<Utc>)>,
    /// Older replaced hashes, newest first, at most [`ROTATION_HISTORY`]
    /// (empty, without an allocation, until the second rotation).
    history: Box<[TokenHash]>,
    user_agent: Option<Arc<str>>,
    ip: Option<Arc<str>>,
    /// The `amr` values joined by spaces (interned: most sessions share
    /// `"pwd"`); `None` when empty.
    amr: Option<Arc<str>>,
    created_at: DateTime<Utc>,
    last_active_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

impl Entry {
    fn live_at(&self, now: DateTime<Utc>) -> bool {
        now < self.expires_at
    }

    fn to_session(&self, id: SessionId) -> Session {
        Session {
            id,
            user_id: self.user_id,
            user_agent: self.user_agent.as_deref().map(str::to_owned),
            ip: self.ip.as_deref().map(str::to_owned),
            created_at: self.created_at,
            last_active_at: self.last_active_at,
            expires_at: self.expires_at,
            amr: self
                .amr
                .as_deref()
                .map(|joined| joined.split(' ').map(str::to_owned).collect())
                .unwrap_or_default(),
        }
    }
}

/// Sessions by id, with an index by user and the interned strings.
#[derive(Default)]
pub(crate) struct Sessions {
    by_id: HashMap<SessionId, Box<Entry>>,
    by_user: HashMap<UserId, Vec<SessionId>>,
    strings: HashSet<Arc<str>>,
}

impl Sessions {
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// The shared copy of `s`.
    fn intern(&mut self, s: String) -> Arc<str> {
        if let Some(shared) = self.strings.get(s.as_str()) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(s);
        self.strings.insert(shared.clone());
        shared
    }

    /// Drop the interned strings only `entry` used.
    fn release(&mut self, entry: &Entry) {
        for s in [&entry.user_agent, &entry.ip, &entry.amr]
            .into_iter()
            .flatten()
        {
            // The set's copy and the entry's: nobody else uses it.
            if Arc::strong_count(s) == 2 {
                self.strings.remove(s);
            }
        }
    }

    fn remove(&mut self, id: SessionId) -> Option<Box<Entry>> {
        let entry = self.by_id.remove(&id)?;
        if let hash_map::Entry::Occupied(mut ids) = self.by_user.entry(entry.user_id) {
            ids.get_mut().retain(|s| *s != id);
            if ids.get().is_empty() {
                ids.remove();
            }
        }
        self.release(&entry);
        Some(entry)
    }

    /// Give back memory after a large purge.
    fn shrink(&mut self) {
        if self.by_id.capacity() > 64 && self.by_id.len() < self.by_id.capacity() / 4 {
            self.by_id.shrink_to_fit();
            self.by_user.shrink_to_fit();
            self.strings.shrink_to_fit();
        }
    }
}

impl MemoryStore {
    /// Join a session with its user's current identifier, roles and email
    /// verification. `None` if the user is gone.
    fn join(&self, session: Session) -> Option<ActiveSession> {
        let users = self.inner.users.read();
        let user = users.get(&session.user_id)?;
        Some(ActiveSession {
            identifier: user.identifier.clone(),
            roles: user.roles.clone(),
            email_verified_at: user.email_verified_at,
            session,
        })
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create_session(&self, new: NewSession) -> StoreResult<Session> {
        // Lock order: users, then sessions (never the other way round).
        let mut users = self.inner.users.write();
        let user = users.get_mut(&new.user_id)?;
        let session = Session {
            id: new.id,
            user_id: new.user_id,
            user_agent: new.user_agent,
            ip: new.ip,
            created_at: new.created_at,
            last_active_at: new.created_at,
            expires_at: new.expires_at,
            amr: new.amr,
        };
        let mut sessions = self.inner.sessions.write();
        if sessions.by_id.contains_key(&new.id) {
            return Err(StoreError::conflict());
        }
        let entry = Box::new(Entry {
            user_id: new.user_id,
            refresh: new.refresh_hash,
            previous: None,
            history: Box::default(),
            user_agent: session.user_agent.clone().map(|s| sessions.intern(s)),
            ip: session.ip.clone().map(|s| sessions.intern(s)),
            amr: (!session.amr.is_empty()).then(|| sessions.intern(session.amr.join(" "))),
            created_at: new.created_at,
            last_active_at: new.created_at,
            expires_at: new.expires_at,
        });
        sessions.by_id.insert(new.id, entry);
        sessions
            .by_user
            .entry(new.user_id)
            .or_default()
            .push(new.id);
        user.last_login_at = Some(new.created_at);
        Ok(session)
    }

    async fn find_active_session(
        &self,
        id: SessionId,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ActiveSession>> {
        let session = {
            let sessions = self.inner.sessions.read();
            match sessions.by_id.get(&id) {
                Some(entry) if entry.live_at(now) => entry.to_session(id),
                _ => return Ok(None),
            }
        };
        Ok(self.join(session))
    }

    async fn rotate_refresh(
        &self,
        id: SessionId,
        presented: &TokenHash,
        next: &TokenHash,
        now: DateTime<Utc>,
        idle_since: Option<DateTime<Utc>>,
    ) -> StoreResult<Rotation> {
        let session = {
            let mut sessions = self.inner.sessions.write();
            let Some(entry) = sessions
                .by_id
                .get_mut(&id)
                .filter(|e| e.live_at(now) && idle_since.is_none_or(|t| e.last_active_at >= t))
            else {
                return Ok(Rotation::Missing);
            };
            if !entry.refresh.ct_eq(presented) {
                return Ok(match entry.previous {
                    Some((previous, rotated_at)) if previous.ct_eq(presented) => {
                        Rotation::Stale { rotated_at }
                    }
                    // Every entry is compared, so the time does not say which.
                    _ if entry
                        .history
                        .iter()
                        .fold(false, |found, h| found | h.ct_eq(presented)) =>
                    {
                        Rotation::Reused
                    }
                    _ => Rotation::Mismatch,
                });
            }
            if let Some((replaced, _)) = entry.previous {
                let keep = entry.history.len().min(ROTATION_HISTORY - 1);
                entry.history = std::iter::once(replaced)
                    .chain(entry.history[..keep].iter().copied())
                    .collect();
            }
            entry.previous = Some((entry.refresh, now));
            entry.refresh = *next;
            entry.last_active_at = now;
            entry.to_session(id)
        };
        Ok(match self.join(session) {
            Some(active) => Rotation::Rotated(active),
            None => Rotation::Missing,
        })
    }

    async fn touch_session(
        &self,
        id: SessionId,
        now: DateTime<Utc>,
        min_interval: Duration,
    ) -> StoreResult<bool> {
        let Some(threshold) = TimeDelta::from_std(min_interval)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
        else {
            return Ok(false);
        };
        let mut sessions = self.inner.sessions.write();
        match sessions.by_id.get_mut(&id) {
            Some(entry) if entry.live_at(now) && entry.last_active_at < threshold => {
                entry.last_active_at = now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        Ok(self
            .inner
            .sessions
            .write()
            .remove(id)
            .map(|entry| entry.to_session(id)))
    }

    async fn delete_session_by_refresh(
        &self,
        id: SessionId,
        presented: &TokenHash,
        previous_since: DateTime<Utc>,
    ) -> StoreResult<Option<Session>> {
        let mut sessions = self.inner.sessions.write();
        let holds = sessions.by_id.get(&id).is_some_and(|entry| {
            let current = entry.refresh.ct_eq(presented);
            let previous = entry
                .previous
                .is_some_and(|(h, at)| h.ct_eq(presented) & (at >= previous_since));
            current | previous
        });
        if !holds {
            return Ok(None);
        }
        Ok(sessions.remove(id).map(|entry| entry.to_session(id)))
    }

    async fn delete_user_session(&self, user: UserId, id: SessionId) -> StoreResult<bool> {
        let mut sessions = self.inner.sessions.write();
        match sessions.by_id.get(&id) {
            Some(entry) if entry.user_id == user => {
                sessions.remove(id);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete_user_sessions(&self, user: UserId) -> StoreResult<u64> {
        let mut sessions = self.inner.sessions.write();
        let Some(ids) = sessions.by_user.remove(&user) else {
            return Ok(0);
        };
        let mut n = 0;
        for id in ids {
            if let Some(entry) = sessions.by_id.remove(&id) {
                sessions.release(&entry);
                n += 1;
            }
        }
        Ok(n)
    }

    async fn delete_user_sessions_except(&self, user: UserId, keep: SessionId) -> StoreResult<u64> {
        let mut sessions = self.inner.sessions.write();
        let others: Vec<SessionId> = sessions
            .by_user
            .get(&user)
            .map(|ids| ids.iter().copied().filter(|id| *id != keep).collect())
            .unwrap_or_default();
        let mut n = 0;
        for id in others {
            if sessions.remove(id).is_some() {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn list_user_sessions(
        &self,
        user: UserId,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Session>> {
        let sessions = self.inner.sessions.read();
        let mut list: Vec<Session> = sessions
            .by_user
            .get(&user)
            .into_iter()
            .flatten()
            .filter_map(|id| {
                sessions
                    .by_id
                    .get(id)
                    .filter(|e| e.live_at(now))
                    .map(|e| e.to_session(*id))
            })
            .collect();
        drop(sessions);
        list.sort_unstable_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(list)
    }

    async fn purge_expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let mut guard = self.inner.sessions.write();
        let sessions = &mut *guard;
        let expired: Vec<Box<Entry>> = sessions
            .by_id
            .extract_if(|_, e| !e.live_at(now))
            .map(|(_, e)| e)
            .collect();
        let n = expired.len();
        for entry in &expired {
            sessions.release(entry);
        }
        drop(expired);
        if n > 0 {
            let by_id = &sessions.by_id;
            sessions.by_user.retain(|_, ids| {
                ids.retain(|id| by_id.contains_key(id));
                !ids.is_empty()
            });
            sessions.shrink();
        }
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use chrono::TimeDelta;
    use sentri_core::model::{NewUser, PasswordHash};
    use sentri_core::store::UserStore;

    fn new_session(user: UserId, ua: &str, ip: &str, expires: DateTime<Utc>) -> NewSession {
        NewSession {
            id: SessionId::new(),
            user_id: user,
            refresh_hash: TokenHash([7; 32]),
            user_agent: Some(ua.to_owned()),
            ip: Some(ip.to_owned()),
            created_at: Utc::now(),
            expires_at: expires,
            amr: vec!["pwd".to_owned()],
        }
    }

    #[tokio::test]
    async fn strings_are_shared_and_dropped_with_their_last_session() {
        let store = MemoryStore::new();
        let now = Utc::now();
        let user = store
            .create_user(NewUser {
                id: UserId::new(),
                identifier: "a".into(),
                identifier_key: "a".into(),
                password_hash: PasswordHash::new("x"),
                roles: vec![],
                name: None,
                created_at: now,
            })
            .await
            .unwrap();
        let later = now + TimeDelta::hours(1);
        let a = new_session(user.id, "Firefox", "192.0.2.1", later);
        let b = new_session(user.id, "Firefox", "192.0.2.2", later);
        let c = new_session(user.id, "Curl", "192.0.2.1", now - TimeDelta::hours(1));
        for s in [&a, &b, &c] {
            store.create_session(s.clone()).await.unwrap();
        }
        let strings = || store.inner.sessions.read().strings.len();
        assert_eq!(strings(), 5, "Firefox, Curl, two addresses and one amr");
        store.delete_session(b.id).await.unwrap();
        assert_eq!(strings(), 4, "192.0.2.2 went with its only session");
        assert_eq!(store.purge_expired_sessions(now).await.unwrap(), 1);
        assert_eq!(strings(), 3, "Curl went with the purged session");
        let left = store.list_user_sessions(user.id, now).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].user_agent.as_deref(), Some("Firefox"));
        assert_eq!(left[0].ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(store.delete_user_sessions(user.id).await.unwrap(), 1);
        assert_eq!(strings(), 0);
        let sessions = store.inner.sessions.read();
        assert!(sessions.by_id.is_empty() && sessions.by_user.is_empty());
    }

    #[tokio::test]
    async fn session_of_an_unknown_user_is_not_found() {
        let store = MemoryStore::new();
        let s = new_session(UserId::new(), "x", "y", Utc::now());
        let err = store.create_session(s).await.unwrap_err();
        assert_eq!(err.kind(), sentri_core::store::StoreErrorKind::NotFound);
    }

    #[test]
    fn session_entry_is_compact() {
        // 1 000 000 sessions must fit in 1 GiB with their strings and the
        // map overhead: keep the fixed part small.
        assert!(
            std::mem::size_of::<Entry>() <= 192,
            "session entry grew to {} bytes",
            std::mem::size_of::<Entry>()
        );
    }
}
