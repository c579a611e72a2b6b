-- The school-health schema (SQLite, the embedded default). Kept equivalent to
-- ../postgres/20261129000001_health_schema.sql. Types as sqlx encodes them for SQLite: a uuid is a
-- 16-byte BLOB, a date 'YYYY-MM-DD' text, a timestamp RFC 3339 text, a boolean 0 or 1.

CREATE TABLE students (
    id             BLOB PRIMARY KEY NOT NULL,
    student_number TEXT NOT NULL UNIQUE,
    first_name     TEXT NOT NULL,
    last_name      TEXT NOT NULL,
    date_of_birth  TEXT NOT NULL,
    grade          TEXT NOT NULL,
    active         INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at     TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE vaccinations (
    id              BLOB PRIMARY KEY NOT NULL DEFAULT (randomblob(16)),
    student_id      BLOB NOT NULL REFERENCES students (id) ON DELETE CASCADE,
    vaccine_name    TEXT NOT NULL,
    dose_number     INTEGER NOT NULL CHECK (dose_number > 0),
    administered_on TEXT NOT NULL,
    administered_by TEXT,
    lot_number      TEXT,
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT vaccinations_natural_key UNIQUE (student_id, vaccine_name, dose_number, administered_on)
);
CREATE INDEX vaccinations_administered_on_idx ON vaccinations (administered_on);

CREATE TABLE allergies (
    id           BLOB PRIMARY KEY NOT NULL DEFAULT (randomblob(16)),
    student_id   BLOB NOT NULL REFERENCES students (id) ON DELETE CASCADE,
    allergen     TEXT NOT NULL,
    severity     TEXT NOT NULL CHECK (severity IN ('MILD', 'MODERATE', 'SEVERE', 'LIFE_THREATENING')),
    reaction     TEXT,
    diagnosed_on TEXT,
    active       INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE UNIQUE INDEX allergies_natural_key ON allergies (student_id, lower(trim(allergen))) WHERE active = 1;
CREATE INDEX allergies_student_idx ON allergies (student_id);
CREATE INDEX allergies_critical_idx ON allergies (student_id)
    WHERE active = 1 AND severity IN ('SEVERE', 'LIFE_THREATENING');

CREATE TABLE chronic_conditions (
    id           BLOB PRIMARY KEY NOT NULL DEFAULT (randomblob(16)),
    student_id   BLOB NOT NULL REFERENCES students (id) ON DELETE CASCADE,
    condition    TEXT NOT NULL,
    icd10_code   TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('ACTIVE', 'MANAGED', 'RESOLVED')),
    diagnosed_on TEXT,
    notes        TEXT,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CONSTRAINT chronic_conditions_natural_key UNIQUE (student_id, icd10_code)
);
CREATE INDEX chronic_conditions_active_idx ON chronic_conditions (student_id) WHERE status = 'ACTIVE';

CREATE TABLE medication_logs (
    id              BLOB PRIMARY KEY NOT NULL DEFAULT (randomblob(16)),
    student_id      BLOB NOT NULL REFERENCES students (id) ON DELETE CASCADE,
    medication      TEXT NOT NULL,
    dosage          TEXT NOT NULL,
    administered_at TEXT NOT NULL,
    administered_by TEXT NOT NULL
);
CREATE INDEX medication_logs_recent_idx ON medication_logs (administered_at DESC);
CREATE INDEX medication_logs_student_idx ON medication_logs (student_id, administered_at DESC);

CREATE TABLE incident_reports (
    id          BLOB PRIMARY KEY NOT NULL DEFAULT (randomblob(16)),
    student_id  BLOB NOT NULL REFERENCES students (id) ON DELETE CASCADE,
    occurred_at TEXT NOT NULL,
    kind        TEXT NOT NULL,
    severity    TEXT NOT NULL CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    description TEXT NOT NULL
);
CREATE INDEX incident_reports_recent_idx ON incident_reports (occurred_at DESC);
CREATE INDEX incident_reports_student_idx ON incident_reports (student_id, occurred_at DESC);

CREATE TABLE appointments (
    id           BLOB PRIMARY KEY NOT NULL DEFAULT (randomblob(16)),
    student_id   BLOB NOT NULL REFERENCES students (id) ON DELETE CASCADE,
    scheduled_at TEXT NOT NULL,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('SCHEDULED', 'COMPLETED', 'CANCELLED', 'NO_SHOW'))
);
CREATE INDEX appointments_upcoming_idx ON appointments (scheduled_at);
CREATE INDEX appointments_student_idx ON appointments (student_id, scheduled_at);
