use plenum::Record;
use plenum::core::RecordId;

#[derive(Record)]
#[plenum(record_type = "notes")]
struct Note {
    #[plenum(id)]
    id: RecordId,
    body: String,
}

fn main() {}
