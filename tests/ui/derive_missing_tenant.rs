use plenum::Record;
use plenum::core::RecordId;

#[derive(Record)]
#[plenum(record_type = "notes")]
struct Note {
    #[plenum(id)]
    id: RecordId,
    #[plenum(category = "system.operations")]
    body: String,
}

fn main() {}
