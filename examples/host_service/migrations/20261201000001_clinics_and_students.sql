-- The host's own tables, in the database's default schema (public). `students` is the host's:
-- other columns than vitals' students, which live in vitals' own schema.
CREATE TABLE clinics (
    id   BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    CONSTRAINT clinics_name_key UNIQUE (name)
);

CREATE TABLE students (
    id           BIGSERIAL PRIMARY KEY,
    badge        TEXT NOT NULL,
    display_name TEXT NOT NULL,
    CONSTRAINT students_badge_key UNIQUE (badge)
);
