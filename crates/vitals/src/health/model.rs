//! Rust types for the rows of the school-health schema.
//!
//! Every type is `serde` (snake_case fields, enums in their database spelling) and `sqlx::FromRow`,
//! and decodes from PostgreSQL and SQLite alike. These hold PHI: never log one.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Declares a text-backed enum: `as_str`, `FromStr`, `Display`, serde, and sqlx encoding as text
/// on any database whose `str` is a text type (PostgreSQL `text`, SQLite `TEXT`).
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling stored in the database and used in files.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::health::ParseEnumError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(crate::health::ParseEnumError {
                        type_name: stringify!($name),
                        expected: concat!($($text, " "),+).trim_end(),
                    }),
                }
            }
        }

        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            str: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as sqlx::Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            &'static str: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&'static str as sqlx::Encode<'q, DB>>::encode_by_ref(&self.as_str(), buf)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(
                value: <DB as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&'r str as sqlx::Decode<'r, DB>>::decode(value)?;
                Ok(text.parse()?)
            }
        }
    };
}

text_enum! {
    /// How severe an allergy is.
    AllergySeverity {
        /// Mild.
        Mild => "MILD",
        /// Moderate.
        Moderate => "MODERATE",
        /// Severe: a critical allergy for the warmer.
        Severe => "SEVERE",
        /// Life-threatening: a critical allergy for the warmer.
        LifeThreatening => "LIFE_THREATENING",
    }
}

impl AllergySeverity {
    /// Severe and life-threatening allergies are the ones a nurse must see first.
    pub fn is_critical(self) -> bool {
        matches!(
            self,
            AllergySeverity::Severe | AllergySeverity::LifeThreatening
        )
    }
}

text_enum! {
    /// Where a chronic condition stands.
    ConditionStatus {
        /// Being treated.
        Active => "ACTIVE",
        /// Under control.
        Managed => "MANAGED",
        /// No longer present.
        Resolved => "RESOLVED",
    }
}

text_enum! {
    /// How serious an incident was.
    IncidentSeverity {
        /// Low.
        Low => "LOW",
        /// Medium.
        Medium => "MEDIUM",
        /// High.
        High => "HIGH",
        /// Critical.
        Critical => "CRITICAL",
    }
}

text_enum! {
    /// Where an appointment stands.
    AppointmentStatus {
        /// Booked, in the future.
        Scheduled => "SCHEDULED",
        /// Took place.
        Completed => "COMPLETED",
        /// Called off.
        Cancelled => "CANCELLED",
        /// The student did not come.
        NoShow => "NO_SHOW",
    }
}

/// A student (`students`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Student {
    /// Primary key.
    pub id: Uuid,
    /// The school's own number, unique.
    pub student_number: String,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
    /// Date of birth.
    pub date_of_birth: NaiveDate,
    /// Grade, such as `K` or `7`.
    pub grade: String,
    /// Whether the student is enrolled.
    pub active: bool,
}

/// A vaccination dose (`vaccinations`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Vaccination {
    /// Primary key.
    pub id: Uuid,
    /// The student.
    pub student_id: Uuid,
    /// Vaccine, such as `MMR`.
    pub vaccine_name: String,
    /// Dose number, from 1.
    pub dose_number: i32,
    /// Day given.
    pub administered_on: NaiveDate,
    /// Who gave it.
    pub administered_by: Option<String>,
    /// The vaccine's lot.
    pub lot_number: Option<String>,
}

/// An allergy (`allergies`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Allergy {
    /// Primary key.
    pub id: Uuid,
    /// The student.
    pub student_id: Uuid,
    /// What the student is allergic to.
    pub allergen: String,
    /// How severe.
    pub severity: AllergySeverity,
    /// What happens on exposure.
    pub reaction: Option<String>,
    /// Day diagnosed.
    pub diagnosed_on: Option<NaiveDate>,
    /// Whether it still applies.
    pub active: bool,
}

/// A chronic condition (`chronic_conditions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct ChronicCondition {
    /// Primary key.
    pub id: Uuid,
    /// The student.
    pub student_id: Uuid,
    /// The condition's name.
    pub condition: String,
    /// Its ICD-10 code.
    pub icd10_code: String,
    /// Where it stands.
    pub status: ConditionStatus,
    /// Day diagnosed.
    pub diagnosed_on: Option<NaiveDate>,
    /// Care notes.
    pub notes: Option<String>,
}

/// A dose of medication given at school (`medication_logs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct MedicationLog {
    /// Primary key.
    pub id: Uuid,
    /// The student.
    pub student_id: Uuid,
    /// The medication.
    pub medication: String,
    /// The dose, such as `5 mg`.
    pub dosage: String,
    /// When it was given.
    pub administered_at: DateTime<Utc>,
    /// Who gave it.
    pub administered_by: String,
}

/// An incident (`incident_reports`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct IncidentReport {
    /// Primary key.
    pub id: Uuid,
    /// The student.
    pub student_id: Uuid,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// What kind, such as `injury`.
    pub kind: String,
    /// How serious.
    pub severity: IncidentSeverity,
    /// What happened.
    pub description: String,
}

/// An appointment with the school nurse (`appointments`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Appointment {
    /// Primary key.
    pub id: Uuid,
    /// The student.
    pub student_id: Uuid,
    /// When.
    pub scheduled_at: DateTime<Utc>,
    /// What kind, such as `screening`.
    pub kind: String,
    /// Where it stands.
    pub status: AppointmentStatus,
}

/// What a nurse sees first about one student: the student and their health records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthSummary {
    /// The student.
    pub student: Student,
    /// Every vaccination, newest first.
    pub vaccinations: Vec<Vaccination>,
    /// Active allergies, most severe first.
    pub allergies: Vec<Allergy>,
    /// Chronic conditions.
    pub chronic_conditions: Vec<ChronicCondition>,
    /// The last medication doses (at most 10), newest first.
    pub recent_medications: Vec<MedicationLog>,
}
