-- The school-health schema (PostgreSQL). Kept equivalent to ../sqlite/20261129000001_health_schema.sql:
-- the same tables, columns, constraints and indexes, in each engine's types.

CREATE TABLE students (
    id             uuid PRIMARY KEY,
    student_number text NOT NULL UNIQUE,
    first_name     text NOT NULL,
    last_name      text NOT NULL,
    date_of_birth  date NOT NULL,
    grade          text NOT NULL,
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE vaccinations (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id      uuid NOT NULL REFERENCES students (id) ON DELETE CASCADE,
    vaccine_name    text NOT NULL,
    dose_number     integer NOT NULL CHECK (dose_number > 0),
    administered_on date NOT NULL,
    administered_by text,
    lot_number      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT vaccinations_natural_key UNIQUE (student_id, vaccine_name, dose_number, administered_on)
);
-- The warmer's "vaccinations of the last 6 months".
CREATE INDEX vaccinations_administered_on_idx ON vaccinations (administered_on);

CREATE TABLE allergies (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id   uuid NOT NULL REFERENCES students (id) ON DELETE CASCADE,
    allergen     text NOT NULL,
    severity     text NOT NULL CHECK (severity IN ('MILD', 'MODERATE', 'SEVERE', 'LIFE_THREATENING')),
    reaction     text,
    diagnosed_on date,
    active       boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now()
);
-- One active allergy per student and allergen, compared trimmed and case-insensitively.
CREATE UNIQUE INDEX allergies_natural_key ON allergies (student_id, lower(trim(allergen))) WHERE active;
CREATE INDEX allergies_student_idx ON allergies (student_id);
-- The warmer's "critical allergies".
CREATE INDEX allergies_critical_idx ON allergies (student_id)
    WHERE active AND severity IN ('SEVERE', 'LIFE_THREATENING');

CREATE TABLE chronic_conditions (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id   uuid NOT NULL REFERENCES students (id) ON DELETE CASCADE,
    condition    text NOT NULL,
    icd10_code   text NOT NULL,
    status       text NOT NULL CHECK (status IN ('ACTIVE', 'MANAGED', 'RESOLVED')),
    diagnosed_on date,
    notes        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chronic_conditions_natural_key UNIQUE (student_id, icd10_code)
);
CREATE INDEX chronic_conditions_active_idx ON chronic_conditions (student_id) WHERE status = 'ACTIVE';

CREATE TABLE medication_logs (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id      uuid NOT NULL REFERENCES students (id) ON DELETE CASCADE,
    medication      text NOT NULL,
    dosage          text NOT NULL,
    administered_at timestamptz NOT NULL,
    administered_by text NOT NULL
);
CREATE INDEX medication_logs_recent_idx ON medication_logs (administered_at DESC);
CREATE INDEX medication_logs_student_idx ON medication_logs (student_id, administered_at DESC);

CREATE TABLE incident_reports (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id  uuid NOT NULL REFERENCES students (id) ON DELETE CASCADE,
    occurred_at timestamptz NOT NULL,
    kind        text NOT NULL,
    severity    text NOT NULL CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    description text NOT NULL
);
CREATE INDEX incident_reports_recent_idx ON incident_reports (occurred_at DESC);
CREATE INDEX incident_reports_student_idx ON incident_reports (student_id, occurred_at DESC);

CREATE TABLE appointments (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    student_id   uuid NOT NULL REFERENCES students (id) ON DELETE CASCADE,
    scheduled_at timestamptz NOT NULL,
    kind         text NOT NULL,
    status       text NOT NULL CHECK (status IN ('SCHEDULED', 'COMPLETED', 'CANCELLED', 'NO_SHOW'))
);
CREATE INDEX appointments_upcoming_idx ON appointments (scheduled_at);
CREATE INDEX appointments_student_idx ON appointments (student_id, scheduled_at);
