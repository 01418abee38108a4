//! Purposes as types, one per purpose of the vocabulary, so a handler states its purpose in its
//! signature (`Scoped<purpose::MarketingEmail>`) and the compiler keeps a handler without one
//! away from records. Stable Rust has no `&'static str` const generics, hence marker types.

/// A purpose as a type.
pub trait PurposeMarker: Send + Sync + 'static {
    /// The purpose.
    const PURPOSE: plenum_consent::Purpose;
}

macro_rules! purposes {
    ($($name:ident),* $(,)?) => {
        $(
            #[doc = concat!("`Purpose::", stringify!($name), "` as a type.")]
            #[derive(Debug, Clone, Copy)]
            pub struct $name;

            impl PurposeMarker for $name {
                const PURPOSE: plenum_consent::Purpose = plenum_consent::Purpose::$name;
            }
        )*
    };
}

purposes!(
    Scheduling,
    Dispatch,
    TechnicianLocation,
    Billing,
    Support,
    Authentication,
    ImproveAggregated,
    SecurityProtection,
    FraudPrevention,
    LegalObligation,
    FinancialRecords,
    RightsFulfilment,
    Audit,
    LegalHold,
    TransactionalCommunications,
    MarketingEmail,
    MarketingSms,
);
