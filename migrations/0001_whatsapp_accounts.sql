-- The accounts table (SPEC §8) for PostgreSQL and Supabase.
-- Applied by the `postgres` store at start-up (tracked in wa_supervisor_migrations); for the
-- `supabase` store, apply it once with `psql "$DATABASE_URL" -f migrations/0001_whatsapp_accounts.sql`
-- or the Supabase SQL editor. Every statement is idempotent.

CREATE TABLE IF NOT EXISTS whatsapp_accounts (
    id uuid PRIMARY KEY,
    user_id text NOT NULL,
    session_id text NOT NULL UNIQUE,
    status text NOT NULL,
    phone_number text NULL,
    profile_name text NULL,
    name text NULL,
    notify_email text NULL,
    connected_at timestamptz NULL,
    last_seen timestamptz NULL,
    error_message text NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT whatsapp_accounts_status_check CHECK (status IN
        ('initializing', 'qr', 'authenticated', 'ready', 'reconnecting', 'error', 'stopped'))
);

-- A table left by the Node backend has every column but notify_email (added here); a row it
-- wrote stays readable.
ALTER TABLE whatsapp_accounts ADD COLUMN IF NOT EXISTS notify_email text NULL;

-- A dashboard lists its user's accounts; start-up restores by status.
CREATE INDEX IF NOT EXISTS whatsapp_accounts_user_id ON whatsapp_accounts (user_id);
CREATE INDEX IF NOT EXISTS whatsapp_accounts_status ON whatsapp_accounts (status);

-- updated_at follows every change, whoever writes the row.
CREATE OR REPLACE FUNCTION whatsapp_accounts_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS whatsapp_accounts_updated_at ON whatsapp_accounts;
CREATE TRIGGER whatsapp_accounts_updated_at
    BEFORE UPDATE ON whatsapp_accounts
    FOR EACH ROW EXECUTE FUNCTION whatsapp_accounts_touch_updated_at();

-- Row-level security: a dashboard signed in through Supabase Auth (role `authenticated`) may
-- read its own rows and nothing else; writes stay with the supervisor (service role / owner,
-- which bypass RLS). On a plain PostgreSQL without Supabase's `auth.uid()` and roles the
-- table is still protected (RLS on, no policy for anyone but the owner).
ALTER TABLE whatsapp_accounts ENABLE ROW LEVEL SECURITY;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated')
       AND EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                   WHERE n.nspname = 'auth' AND p.proname = 'uid') THEN
        DROP POLICY IF EXISTS whatsapp_accounts_select_own ON whatsapp_accounts;
        CREATE POLICY whatsapp_accounts_select_own ON whatsapp_accounts
            FOR SELECT TO authenticated
            USING (user_id = (SELECT auth.uid())::text);
        GRANT SELECT ON whatsapp_accounts TO authenticated;
    END IF;
END;
$$;
