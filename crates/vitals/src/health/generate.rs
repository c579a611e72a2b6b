//! A deterministic synthetic school for tests, benchmarks and the demo.
//!
//! Every name is invented from syllables; every date, dose and reading is drawn from a seeded
//! generator, so the same `(students, seed, reference)` gives the same school, byte for byte, on
//! every machine with this crate's pinned `rand`. No real person's data is involved.

use chrono::{DateTime, Datelike, Duration, NaiveDate, SubsecRound, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::model::*;

/// A generated school: students and their records, ready to load.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct School {
    /// Students.
    pub students: Vec<Student>,
    /// Vaccinations.
    pub vaccinations: Vec<Vaccination>,
    /// Allergies.
    pub allergies: Vec<Allergy>,
    /// Chronic conditions.
    pub chronic_conditions: Vec<ChronicCondition>,
    /// Medication logs.
    pub medication_logs: Vec<MedicationLog>,
    /// Incident reports.
    pub incident_reports: Vec<IncidentReport>,
    /// Appointments.
    pub appointments: Vec<Appointment>,
}

impl School {
    /// All rows, of every table.
    pub fn total_rows(&self) -> usize {
        self.students.len()
            + self.vaccinations.len()
            + self.allergies.len()
            + self.chronic_conditions.len()
            + self.medication_logs.len()
            + self.incident_reports.len()
            + self.appointments.len()
    }
}

/// Builds a [`School`].
///
/// # Example
/// ```
/// use chrono::{TimeZone, Utc};
/// use vitals::health::SchoolGenerator;
/// let at = Utc.with_ymd_and_hms(2026, 9, 1, 8, 0, 0).unwrap();
/// let school = SchoolGenerator::new(50).seed(7).reference(at).generate();
/// assert_eq!(school.students.len(), 50);
/// // The same seed and reference give the same school.
/// assert_eq!(school, SchoolGenerator::new(50).seed(7).reference(at).generate());
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct SchoolGenerator {
    students: usize,
    seed: u64,
    reference: DateTime<Utc>,
}

const FIRST_SYLLABLES: &[&str] = &[
    "Ar", "Bel", "Cor", "Dal", "Eri", "Fen", "Gal", "Hal", "Ira", "Jor", "Kel", "Lun", "Mar",
    "Nor", "Ose", "Pel", "Quin", "Ros", "Sel", "Tam", "Ul", "Ves", "Wyn", "Xan", "Yor", "Zel",
];
const SECOND_SYLLABLES: &[&str] = &[
    "a", "an", "ea", "en", "ia", "ic", "in", "io", "is", "o", "on", "or", "ra", "ri", "us", "yn",
];
const LAST_PARTS: &[&str] = &[
    "Ash", "Birch", "Brook", "Cliff", "Dune", "Elm", "Fern", "Glen", "Heath", "Lark", "Moss",
    "North", "Oak", "Pike", "Reed", "Stone", "Thorn", "Vale", "West", "Wren",
];
const LAST_SUFFIXES: &[&str] = &[
    "ford", "wick", "more", "by", "ley", "ton", "dale", "well", "hart", "wood",
];
const GRADES: &[&str] = &[
    "K", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12",
];
/// Vaccines with the number of doses a school-age child usually has.
const VACCINES: &[(&str, i32)] = &[
    ("DTaP", 5),
    ("Polio", 4),
    ("MMR", 2),
    ("Varicella", 2),
    ("HepB", 3),
    ("Tdap", 1),
    ("MenACWY", 2),
    ("HPV", 2),
    ("Influenza", 1),
];
const ALLERGENS: &[&str] = &[
    "Peanuts",
    "Tree nuts",
    "Penicillin",
    "Bee stings",
    "Latex",
    "Shellfish",
    "Eggs",
    "Milk",
    "Pollen",
    "Sulfa drugs",
];
const REACTIONS: &[&str] = &["Hives", "Swelling", "Anaphylaxis", "Rash", "Wheezing"];
const CONDITIONS: &[(&str, &str)] = &[
    ("Asthma", "J45.909"),
    ("Type 1 diabetes", "E10.9"),
    ("Epilepsy", "G40.909"),
    ("ADHD", "F90.9"),
    ("Eczema", "L30.9"),
    ("Celiac disease", "K90.0"),
    ("Migraine", "G43.909"),
];
const MEDICATIONS: &[(&str, &str)] = &[
    ("Albuterol inhaler", "2 puffs"),
    ("Insulin lispro", "4 units"),
    ("Methylphenidate", "10 mg"),
    ("Ibuprofen", "200 mg"),
    ("Cetirizine", "5 mg"),
];
const STAFF: &[&str] = &["Nurse Orlen", "Nurse Vessa", "Nurse Tamric", "Dr. Quillon"];
const INCIDENT_KINDS: &[&str] = &["injury", "illness", "allergic reaction", "behavioral"];
const INCIDENT_TEXT: &[&str] = &[
    "Fell during recess; ice applied",
    "Felt unwell in class; rested in the health office",
    "Mild reaction after lunch; observed",
    "Headache; parent informed",
];
const APPOINTMENT_KINDS: &[&str] = &["screening", "follow-up", "medication review", "counseling"];

impl SchoolGenerator {
    /// A school of `students` students, seed 42, activity around now.
    pub fn new(students: usize) -> Self {
        SchoolGenerator {
            students,
            seed: 42,
            reference: Utc::now().trunc_subsecs(6),
        }
    }

    /// The seed: the same seed gives the same school.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The moment "recent" and "upcoming" are measured from (default: now). Fix it to make
    /// timestamps reproducible too. Truncated to microseconds, PostgreSQL's precision, so that
    /// rows read back equal the rows generated.
    pub fn reference(mut self, reference: DateTime<Utc>) -> Self {
        self.reference = reference.trunc_subsecs(6);
        self
    }

    /// Generates the school.
    pub fn generate(&self) -> School {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut school = School::default();
        let today = self.reference.date_naive();
        for index in 0..self.students {
            let student = self.student(&mut rng, index, today);
            let sid = student.id;
            let age_days = (today - student.date_of_birth).num_days();
            school.students.push(student);

            for &(vaccine, doses) in VACCINES {
                if !rng.gen_bool(0.6) {
                    continue;
                }
                let given = rng.gen_range(1..=doses);
                for dose in 1..=given {
                    let days_ago = rng.gen_range(0..age_days.max(1));
                    school.vaccinations.push(Vaccination {
                        id: uuid(&mut rng),
                        student_id: sid,
                        vaccine_name: vaccine.to_string(),
                        dose_number: dose,
                        administered_on: today - Duration::days(days_ago),
                        administered_by: Some(pick(&mut rng, STAFF).to_string()),
                        lot_number: Some(format!("LOT{:05}", rng.gen_range(0..100_000))),
                    });
                }
            }

            if rng.gen_bool(0.3) {
                let count = rng.gen_range(1..=2);
                for allergen in ALLERGENS.choose_multiple(&mut rng, count) {
                    let severity = match rng.gen_range(0..10) {
                        0..=3 => AllergySeverity::Mild,
                        4..=6 => AllergySeverity::Moderate,
                        7..=8 => AllergySeverity::Severe,
                        _ => AllergySeverity::LifeThreatening,
                    };
                    school.allergies.push(Allergy {
                        id: uuid(&mut rng),
                        student_id: sid,
                        allergen: allergen.to_string(),
                        severity,
                        reaction: Some(pick(&mut rng, REACTIONS).to_string()),
                        diagnosed_on: Some(today - Duration::days(rng.gen_range(30..2_000))),
                        active: true,
                    });
                }
            }

            if rng.gen_bool(0.15) {
                let &(condition, code) = pick(&mut rng, CONDITIONS);
                let status = match rng.gen_range(0..3) {
                    0 => ConditionStatus::Active,
                    1 => ConditionStatus::Managed,
                    _ => ConditionStatus::Resolved,
                };
                school.chronic_conditions.push(ChronicCondition {
                    id: uuid(&mut rng),
                    student_id: sid,
                    condition: condition.to_string(),
                    icd10_code: code.to_string(),
                    status,
                    diagnosed_on: Some(today - Duration::days(rng.gen_range(30..3_000))),
                    notes: Some("Care plan on file".to_string()),
                });
            }

            if rng.gen_bool(0.2) {
                let &(medication, dosage) = pick(&mut rng, MEDICATIONS);
                for _ in 0..rng.gen_range(1..=10) {
                    school.medication_logs.push(MedicationLog {
                        id: uuid(&mut rng),
                        student_id: sid,
                        medication: medication.to_string(),
                        dosage: dosage.to_string(),
                        administered_at: self.reference
                            - Duration::minutes(rng.gen_range(10..60 * 24 * 30)),
                        administered_by: pick(&mut rng, STAFF).to_string(),
                    });
                }
            }

            if rng.gen_bool(0.1) {
                for _ in 0..rng.gen_range(1..=3) {
                    let at = rng.gen_range(0..INCIDENT_KINDS.len());
                    school.incident_reports.push(IncidentReport {
                        id: uuid(&mut rng),
                        student_id: sid,
                        occurred_at: self.reference
                            - Duration::minutes(rng.gen_range(10..60 * 24 * 60)),
                        kind: INCIDENT_KINDS[at].to_string(),
                        severity: *pick(&mut rng, IncidentSeverity::ALL),
                        description: INCIDENT_TEXT[at].to_string(),
                    });
                }
            }

            if rng.gen_bool(0.25) {
                for _ in 0..rng.gen_range(1..=2) {
                    let offset = Duration::minutes(rng.gen_range(-60 * 24 * 30..60 * 24 * 30));
                    let scheduled_at = self.reference + offset;
                    let status = if offset > Duration::zero() {
                        AppointmentStatus::Scheduled
                    } else if rng.gen_bool(0.85) {
                        AppointmentStatus::Completed
                    } else {
                        AppointmentStatus::NoShow
                    };
                    school.appointments.push(Appointment {
                        id: uuid(&mut rng),
                        student_id: sid,
                        scheduled_at,
                        kind: pick(&mut rng, APPOINTMENT_KINDS).to_string(),
                        status,
                    });
                }
            }
        }
        school
    }

    fn student(&self, rng: &mut StdRng, index: usize, today: NaiveDate) -> Student {
        let grade_index = rng.gen_range(0..GRADES.len());
        // A child in grade g is about g + 5 years old.
        let age_years = grade_index as i32 + 5;
        let birth_year = today.year() - age_years;
        let date_of_birth = NaiveDate::from_yo_opt(birth_year, rng.gen_range(1..=365))
            .unwrap_or_else(|| today - Duration::days(i64::from(age_years) * 365));
        Student {
            id: uuid(rng),
            student_number: format!("S{:07}", index + 1),
            first_name: format!(
                "{}{}",
                pick(rng, FIRST_SYLLABLES),
                pick(rng, SECOND_SYLLABLES)
            ),
            last_name: format!("{}{}", pick(rng, LAST_PARTS), pick(rng, LAST_SUFFIXES)),
            date_of_birth,
            grade: GRADES[grade_index].to_string(),
            active: rng.gen_bool(0.97),
        }
    }
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    // The tables above are constants and never empty; index in range by construction.
    &items[rng.gen_range(0..items.len())]
}

fn uuid(rng: &mut StdRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.gen()).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn same_seed_same_school_other_seed_other_school() {
        let at = DateTime::parse_from_rfc3339("2026-09-01T08:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap();
        let a = SchoolGenerator::new(100).seed(1).reference(at).generate();
        let b = SchoolGenerator::new(100).seed(1).reference(at).generate();
        let c = SchoolGenerator::new(100).seed(2).reference(at).generate();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn natural_keys_are_unique_and_every_table_has_rows() {
        let school = SchoolGenerator::new(500).generate();
        assert_eq!(school.students.len(), 500);
        for (name, len) in [
            ("vaccinations", school.vaccinations.len()),
            ("allergies", school.allergies.len()),
            ("chronic_conditions", school.chronic_conditions.len()),
            ("medication_logs", school.medication_logs.len()),
            ("incident_reports", school.incident_reports.len()),
            ("appointments", school.appointments.len()),
        ] {
            assert!(len > 0, "{name} is empty");
        }
        let numbers: HashSet<_> = school.students.iter().map(|s| &s.student_number).collect();
        assert_eq!(numbers.len(), 500);
        let vaccinations: HashSet<_> = school
            .vaccinations
            .iter()
            .map(|v| {
                (
                    v.student_id,
                    &v.vaccine_name,
                    v.dose_number,
                    v.administered_on,
                )
            })
            .collect();
        assert_eq!(vaccinations.len(), school.vaccinations.len());
        let allergies: HashSet<_> = school
            .allergies
            .iter()
            .map(|a| (a.student_id, a.allergen.trim().to_lowercase()))
            .collect();
        assert_eq!(allergies.len(), school.allergies.len());
    }
}
