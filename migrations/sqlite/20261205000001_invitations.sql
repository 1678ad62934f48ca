-- Members join by invitation (issue 16): adding an address to a tenant no longer makes a
-- membership for whoever registered that address first. An invitation carries a one-time
-- token (only its SHA-256 is kept) that the invited address's account must present.
CREATE TABLE invitations (
    id          BLOB PRIMARY KEY,
    tenant_id   BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email       TEXT NOT NULL,                 -- lower-cased: only this address's account may accept
    role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'viewer')),
    token_hash  TEXT NOT NULL UNIQUE,          -- hex SHA-256 of the token; the token itself is never stored
    invited_by  BLOB REFERENCES users (id) ON DELETE SET NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    accepted_at TEXT,
    accepted_by BLOB REFERENCES users (id) ON DELETE SET NULL,
    revoked_at  TEXT
);
CREATE INDEX invitations_by_tenant ON invitations (tenant_id, email);

-- Password resets by e-mail: one-time, short-lived, stored hashed.
CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY,               -- hex SHA-256 of the token
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
);
CREATE INDEX password_resets_by_user ON password_resets (user_id);
