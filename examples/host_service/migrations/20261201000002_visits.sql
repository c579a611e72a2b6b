-- One visit of a student to a clinic a day: a second one is a 23505 on visits_once_a_day.
CREATE TABLE visits (
    id         BIGSERIAL PRIMARY KEY,
    clinic_id  BIGINT NOT NULL REFERENCES clinics (id),
    student_id BIGINT NOT NULL REFERENCES students (id),
    visit_date DATE NOT NULL,
    reason     TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT 'open',
    CONSTRAINT visits_once_a_day UNIQUE (clinic_id, student_id, visit_date)
);

CREATE INDEX visits_clinic_id_idx ON visits (clinic_id);
